/* cmd-status.c - `hareplicate status`: what hareplicated on this host is doing. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "common/kv.h"

static const char status_help[] =
    "Show every VM hareplicated on this host knows (or just VM): its name, role\n"
    "(primary, backup, promoted), state (connecting, syncing, protected,\n"
    "backup-silent, unprotected, backup, promoting, promoted, standby, demoted,\n"
    "stopped, failed), the HA event behind the last change (its token as logged;\n"
    "`hareplicated --help` lists them), the peer, how long the VM has been in its\n"
    "state and protected, the age of the last sign of life from the peer\n"
    "(heartbeats run beside the epochs), whether output is held, the witness\n"
    "standing and the lease left (with --witness), where it is migrating to\n"
    "(while `hareplicate migrate` runs), the worker pid, uptime, the number of\n"
    "acknowledged epochs and the last epoch's interval, pause, dirty pages, bytes\n"
    "and ack latency.  A console sink that cannot write (a full disk, a closed\n"
    "collector) shows its last error, since when it fails, the bytes held for\n"
    "it and the retries: its output is held and written once it can be, never\n"
    "dropped (at the bound the guest waits).  Output held without a backup\n"
    "shows why and for how long, and when the next re-protection comes.\n"
    "Each disk the VM's worker uses shows its path and size (a primary's --disk\n"
    "images; a backup's copies in hareplicated --disk-dir, or the VM's own\n"
    "images when this host started it).  A primary whose backup dropped its\n"
    "copy because of its disk (a failed write there: EIO, ENOSPC) says why,\n"
    "until a new backup holds a complete copy (JSON: \"disks\": [{\"path\",\n"
    "\"bytes\"}], \"backup_dropped_why\").\n"
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
