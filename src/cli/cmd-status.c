/* cmd-status.c - `hareplicate status`: what hareplicated on this host is doing. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "daemon/kv.h"

static const char status_help[] =
    "Show every VM hareplicated on this host knows (or just VM): its name, role\n"
    "(primary, backup, promoted), state (connecting, syncing, protected,\n"
    "unprotected, backup, promoting, promoted, standby, demoted, stopped,\n"
    "failed), the HA event behind the last change (+protected, +backup-lost,\n"
    "+primary-lost, +failover-start, ...), the peer, how long the VM has been in\n"
    "its state and protected, the age of the last sign of life from the peer (heartbeats run\n"
    "beside the epochs), whether output is held, the witness standing and the\n"
    "lease left (with --witness), where it is migrating to (while `hareplicate\n"
    "migrate` runs), the worker pid, uptime, the number of\n"
    "acknowledged epochs and the last epoch's interval, pause, dirty pages,\n"
    "bytes and ack latency.  A console sink that cannot write (a full disk, a\n"
    "closed collector) shows its last error, since when it fails, the bytes\n"
    "held for it and the retries: its output is held and written once it can\n"
    "be, never dropped (at the bound the guest waits).\n"
    "\n"
    "  --json          one JSON document: {\"daemon\": {...}, \"vms\": [...]}\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0, 1 (no such VM), 2 bad usage, 69 hareplicated not reachable,\n"
    "busy or not answering.\n";

static int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"control", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *control = NULL;
	struct hr_sbuf req = {0};
	int json = 0, c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'C':
			control = optarg;
			break;
		case 'h':
			printf("usage: hareplicate status %s\n\n%s", hr_cmd_status.usage,
			       status_help);
			return 0;
		default:
			return hr_cmd_usage(&hr_cmd_status);
		}
	}
	if (argc - optind > 1)
		return hr_cmd_usage(&hr_cmd_status);
	if (optind < argc)
		hr_kv_add(&req, "vm", argv[optind]);
	if (json)
		hr_kv_add(&req, "json", "1");
	rc = hr_ctl_request(hr_ctl_path(control), "status", &req, stdout);
	hr_sbuf_free(&req);
	return rc;
}

const struct hr_cmd hr_cmd_status = {"status", "[VM] [--json]", status_help, cmd_status};
