/* cmd-witness.c - `hareplicate witness`: show a witness's table, or ask it one thing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "common/err.h"
#include "common/util.h"
#include "ha/witness.h"
#include "net/tls.h"

static const char witness_help[] =
    "Ask the witness at ADDR (HOST, HOST:PORT or [V6ADDR]:PORT; default port 7788;\n"
    "a `hareplicated --serve-witness`).  Without VM: its whole table, one line\n"
    "per VM.  With VM: that VM's record (a query), or with one of the options\n"
    "below the request it names, as a host's daemon would send it (for tests and\n"
    "for repairs by hand: a claim can make a node the owner).  Output, one line\n"
    "per VM:\n"
    "\n"
    "  VM owner=NODE backup=NODE|- holder=NODE|- term=N lease_ms=N remaining_ms=N\n"
    "\n"
    "and for one VM also granted=0|1 and why=TEXT (to the end of the line);\n"
    "remaining_ms is what is left of the holder's lease as the witness sees it.\n"
    "\n"
    "  --register NODE   NODE runs VM as its protected primary; with\n"
    "  --backup NODE     the node that holds its complete copy\n"
    "  --claim NODE      NODE asks for the lease: as VM's primary, or with\n"
    "  --primary NODE    as the backup of that primary, to promote\n"
    "  --lease-ms MS     the lease asked for (default 1000)\n"
    "  --release NODE    NODE gives its lease back\n"
    "  --forget NODE     the owner NODE stopped VM on purpose: drop the record\n"
    "  --timeout MS      give up after MS (default 3000)\n"
    "\n"
    "The link is TLS 1.3 as between the daemons; give the same options as this\n"
    "host's hareplicated (the witness checks that a request names the node the\n"
    "link authenticated as):\n"
    "  --tls-cert FILE --tls-key FILE with --tls-ca FILE or --tls-pin SHA256[,..]\n"
    "  --tls-psk FILE --node NAME       (pre-shared key; NAME is the identity)\n"
    "  --insecure                       plain TCP, to a witness run --insecure\n"
    "\n"
    "Exit status: 0 granted (or the record exists), 1 denied (or no such VM),\n"
    "2 bad usage, 69 the witness could not be asked.\n";

static const char *dash(const char *s)
{
	return *s ? s : "-";
}

static void print_rec(const struct hr_wit_reply *rep)
{
	printf("%s owner=%s backup=%s holder=%s term=%llu lease_ms=%llu remaining_ms=%llu",
	       dash(rep->vm), dash(rep->owner), dash(rep->backup), dash(rep->holder),
	       (unsigned long long)rep->term, (unsigned long long)rep->lease_ms,
	       (unsigned long long)rep->remaining_ms);
}

static void list_cb(void *arg, const struct hr_wit_reply *rep)
{
	print_rec(rep);
	printf("\n");
}

static int set_op(struct hr_wit_req *req, enum hr_wit_op op, const char *node, int *nr_ops)
{
	(*nr_ops)++;
	req->op = op;
	snprintf(req->node, sizeof(req->node), "%s", node);
	return strlen(node) <= HR_WIT_NAME_MAX && hr_wit_name_ok(node) ? 0 : -1;
}

/* Ask and print; the exit status. */
static int run(struct hr_tls_ctx *tls, const char *addr, const char *vm, const char *peer,
	       struct hr_wit_req *req, uint64_t timeout_ms)
{
	struct hr_wit_reply rep;
	int rc;

	if (!vm) {
		rc = hr_witness_list(tls, addr, (int)timeout_ms, list_cb, NULL);
		if (rc < 0) {
			fprintf(stderr, "hareplicate witness: cannot ask the witness at %s: %s\n",
				addr, hr_strerror(rc));
			return HR_CTL_EXIT_UNREACHABLE;
		}
		return 0;
	}
	if (!hr_wit_name_ok(vm) || (peer && !hr_wit_name_ok(peer))) {
		fprintf(stderr,
			"hareplicate witness: bad VM or node name ([A-Za-z0-9_.-], 1..64)\n");
		return 2;
	}
	snprintf(req->vm, sizeof(req->vm), "%s", vm);
	snprintf(req->peer, sizeof(req->peer), "%s", peer ? peer : "");
	rc = hr_witness_ask(tls, addr, req, &rep, (int)timeout_ms);
	if (rc == -EINVAL) {
		fprintf(stderr, "hareplicate witness: the witness refused the request: %s\n",
			rep.why);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "hareplicate witness: cannot ask the witness at %s: %s\n", addr,
			hr_strerror(rc));
		return HR_CTL_EXIT_UNREACHABLE;
	}
	if (!rep.vm[0])
		snprintf(rep.vm, sizeof(rep.vm), "%s", req->vm);
	print_rec(&rep);
	printf(" granted=%d%s%s\n", rep.granted, rep.why[0] ? " why=" : "", rep.why);
	return rep.granted ? 0 : 1;
}

static int cmd_witness(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"register", required_argument, NULL, 'r'},
	    {"backup", required_argument, NULL, 'b'},
	    {"claim", required_argument, NULL, 'c'},
	    {"primary", required_argument, NULL, 'p'},
	    {"lease-ms", required_argument, NULL, 'l'},
	    {"release", required_argument, NULL, 'R'},
	    {"forget", required_argument, NULL, 'F'},
	    {"timeout", required_argument, NULL, 't'},
	    {"tls-cert", required_argument, NULL, 'C'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"tls-ca", required_argument, NULL, 'A'},
	    {"tls-pin", required_argument, NULL, 'P'},
	    {"tls-psk", required_argument, NULL, 'S'},
	    {"node", required_argument, NULL, 'N'},
	    {"insecure", no_argument, NULL, 'I'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct hr_tls_config tc = {0};
	struct hr_tls_ctx *tls = NULL;
	char why[512] = "";
	struct hr_wit_req req = {.op = HR_WIT_QUERY, .lease_ms = 1000};
	const char *peer = NULL, *addr;
	int c, nr_ops = 0, bad = 0, rc;
	uint64_t timeout_ms = 3000;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			bad |= set_op(&req, HR_WIT_REGISTER, optarg, &nr_ops);
			break;
		case 'c':
			bad |= set_op(&req, HR_WIT_CLAIM, optarg, &nr_ops);
			break;
		case 'R':
			bad |= set_op(&req, HR_WIT_RELEASE, optarg, &nr_ops);
			break;
		case 'F':
			bad |= set_op(&req, HR_WIT_FORGET, optarg, &nr_ops);
			break;
		case 'b':
		case 'p':
			peer = optarg;
			break;
		case 'l':
			bad |= hr_parse_count(optarg, 0, UINT64_MAX, &req.lease_ms) < 0;
			break;
		case 't':
			bad |= hr_parse_count(optarg, 1, 600000, &timeout_ms) < 0;
			break;
		case 'C':
			tc.cert_file = optarg;
			break;
		case 'K':
			tc.key_file = optarg;
			break;
		case 'A':
			tc.ca_file = optarg;
			break;
		case 'P':
			tc.peer_fingerprints = optarg;
			break;
		case 'S':
			tc.psk_file = optarg;
			break;
		case 'N':
			tc.node_name = optarg;
			break;
		case 'I':
			tc.insecure = 1;
			break;
		case 'h':
			return hr_cmd_help(&hr_cmd_witness);
		default:
			return hr_cmd_usage(&hr_cmd_witness);
		}
	}
	if (bad || nr_ops > 1 || argc - optind < 1 || argc - optind > 2 ||
	    (nr_ops && argc - optind != 2) ||
	    (peer && req.op != HR_WIT_REGISTER && req.op != HR_WIT_CLAIM))
		return hr_cmd_usage(&hr_cmd_witness);
	if (!tc.insecure && !tc.cert_file && !tc.key_file && !tc.psk_file) {
		fprintf(stderr, "hareplicate witness: give the link's --tls-* options (as the "
				"daemon's) or --insecure\n");
		return 2;
	}
	if (tc.insecure &&
	    (tc.cert_file || tc.key_file || tc.ca_file || tc.peer_fingerprints || tc.psk_file)) {
		fprintf(stderr, "hareplicate witness: --insecure and --tls-* exclude each other\n");
		return 2;
	}
	rc = hr_tls_ctx_new(&tls, &tc, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "hareplicate witness: TLS set-up failed: %s\n",
			why[0] ? why : hr_strerror(rc));
		return 2;
	}
	addr = argv[optind];
	rc = run(tls, addr, argc - optind == 2 ? argv[optind + 1] : NULL, peer, &req, timeout_ms);
	hr_tls_ctx_free(tls);
	return rc;
}

const struct hr_cmd hr_cmd_witness = {
    "witness",
    "ADDR [VM [--register NODE [--backup NODE] | --claim NODE [--primary NODE] "
    "[--lease-ms MS] | --release NODE | --forget NODE]]",
    witness_help, cmd_witness};
