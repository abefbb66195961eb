/* cmd-cert.c - `hareplicate cert`: the keys and certificates for TLS peer links. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "common/err.h"
#include "net/cert.h"

static const char cert_help[] =
    "Make the files the peer links' TLS reads (see docs/tls.md).  Nothing is\n"
    "ever overwritten; keys are created mode 0600.\n\n"
    "  cert ca DIR [--name NAME]          a CA: DIR/ca.key, DIR/ca.crt (EC P-256,\n"
    "                                     10 years; NAME defaults to hareplicate-ca)\n"
    "  cert host DIR --name NODE [--ca CADIR]\n"
    "                                     DIR/host.key, DIR/host.crt with CN=NODE,\n"
    "                                     signed by the CA in CADIR (ca.crt is copied\n"
    "                                     to DIR), or self-signed without --ca (for\n"
    "                                     pinned fingerprints)\n"
    "  cert fingerprint FILE              the SHA-256 of a certificate, to pin\n"
    "  cert psk FILE                      a random 32-byte pre-shared key (hex)\n\n"
    "Keep CA keys off the nodes once the host certificates are made.\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.\n";

static int cmd_cert(int argc, char **argv)
{
	const char *name = NULL, *ca = NULL, *what, *arg;
	char err[512] = "", fp[128];
	int rc;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		return hr_cmd_help(&hr_cmd_cert);
	}
	if (argc < 3)
		return hr_cmd_usage(&hr_cmd_cert);
	what = argv[1];
	arg = argv[2];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--ca") && i + 1 < argc)
			ca = argv[++i];
		else
			return hr_cmd_usage(&hr_cmd_cert);
	}
	if (!strcmp(what, "ca") && !ca) {
		rc = hr_cert_make_ca(arg, name ? name : "hareplicate-ca", err, sizeof(err));
		if (!rc)
			printf("%s/ca.key and %s/ca.crt made\n", arg, arg);
	} else if (!strcmp(what, "host") && name) {
		rc = hr_cert_make_host(arg, ca, name, err, sizeof(err));
		if (!rc)
			printf("%s/host.key and %s/host.crt made for %s (%s)\n", arg, arg, name,
			       ca ? "signed by the CA" : "self-signed");
	} else if (!strcmp(what, "fingerprint") && !name && !ca) {
		rc = hr_cert_fingerprint(arg, fp, sizeof(fp), err, sizeof(err));
		if (!rc)
			printf("%s\n", fp);
	} else if (!strcmp(what, "psk") && !name && !ca) {
		rc = hr_cert_make_psk(arg, err, sizeof(err));
		if (!rc)
			printf("%s made (mode 0600); copy it to every node, same mode\n", arg);
	} else {
		return hr_cmd_usage(&hr_cmd_cert);
	}
	if (rc) {
		fprintf(stderr, "hareplicate cert %s: %s\n", what, err[0] ? err : hr_strerror(rc));
		return 1;
	}
	return 0;
}

const struct hr_cmd hr_cmd_cert = {"cert",
				   "ca DIR | host DIR --name NODE [--ca CADIR] | fingerprint FILE "
				   "| psk FILE",
				   cert_help, cmd_cert};
