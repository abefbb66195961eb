/*
 * transport.c - the daemon's peer-link security: the --tls-* / --insecure
 * options, the one hr_tls_ctx of the process (built at start-up, inherited
 * by every forked worker), and the check that a peer claims (in its
 * preamble, in a witness request) the node name it authenticated as.  src/net/tls.h does the TLS
 * itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "ha/witness.h"
#include "net/tls.h"

struct hr_tls_ctx *hr_tls;

/* Checks the combination of options; 0 or -EINVAL with err set. */
static int check_opts(char *err, size_t errlen)
{
	const struct hr_daemon_opts *o = &hr_dopts;
	int certs = o->tls_cert || o->tls_key, peers = !!o->tls_ca + !!o->tls_pin;

	if (o->insecure && (certs || peers || o->tls_psk)) {
		snprintf(err, errlen, "--insecure and --tls-* options exclude each other");
		return -EINVAL;
	}
	if (o->insecure)
		return 0;
	if (!certs && !peers && !o->tls_psk) {
		snprintf(err, errlen,
			 "peer links need authentication: give --tls-cert FILE --tls-key FILE "
			 "with --tls-ca FILE or --tls-pin SHA256[,SHA256...], or --tls-psk FILE, "
			 "or --insecure for plain TCP (not authenticated, not encrypted)");
		return -EINVAL;
	}
	if (o->tls_psk && (certs || peers)) {
		snprintf(err, errlen,
			 "--tls-psk excludes --tls-cert, --tls-key, --tls-ca and "
			 "--tls-pin");
		return -EINVAL;
	}
	if (o->tls_psk) {
		if (!o->node || !hr_wit_name_ok(o->node)) {
			snprintf(err, errlen,
				 "--tls-psk: the PSK identity is --node, and '%s' is no valid "
				 "node name; give --node NAME",
				 o->node ? o->node : "");
			return -EINVAL;
		}
		return 0;
	}
	if (!o->tls_cert || !o->tls_key) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together");
		return -EINVAL;
	}
	if (peers != 1) {
		snprintf(err, errlen,
			 "--tls-cert/--tls-key need exactly one of --tls-ca FILE (peers signed "
			 "by that CA) or --tls-pin SHA256[,SHA256...] (pinned peer certificates)");
		return -EINVAL;
	}
	return 0;
}

int hr_transport_init(char *err, size_t errlen)
{
	const struct hr_daemon_opts *o = &hr_dopts;
	struct hr_tls_config cfg = {
	    .cert_file = o->tls_cert,
	    .key_file = o->tls_key,
	    .ca_file = o->tls_ca,
	    .peer_fingerprints = o->tls_pin,
	    .psk_file = o->tls_psk,
	    .node_name = o->node,
	    .insecure = o->insecure,
	};
	char why[512] = "";
	int rc;

	rc = check_opts(err, errlen);
	if (rc < 0)
		return rc;
	rc = hr_tls_ctx_new(&hr_tls, &cfg, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "TLS set-up failed: %s", why[0] ? why : hr_strerror(rc));
		return rc == -EINVAL ? -HR_ETLS : rc;
	}
	return 0;
}

const char *hr_transport_name(void)
{
	if (!hr_tls)
		return "none";
	if (hr_dopts.insecure)
		return "insecure";
	if (hr_dopts.tls_psk)
		return "tls-psk";
	return hr_dopts.tls_ca ? "tls-ca" : "tls-pin";
}

int hr_transport_check_node(const char *vm, const char *desc, const char *auth_name,
			    const char *claimed)
{
	/* pinned certificates are identified by their fingerprint, not a name */
	if (!hr_tls || hr_dopts.insecure || hr_dopts.tls_pin)
		return 0;
	/* PSK: only the client sends an identity; the server proved it holds
	 * the cluster's key, which is all a client can know of it */
	if (hr_dopts.tls_psk && !auth_name[0])
		return 0;
	if (claimed && !strcmp(claimed, auth_name))
		return 0;
	log_warnx(vm, "peer %s refused: it authenticated as '%s' but claims to be node '%s'", desc,
		  auth_name, claimed ? claimed : "(none)");
	return -HR_EAUTH;
}
