/* cmd-cluster.c - `hareplicate promote` and `demote`: what a cluster
 * manager's resource agent asks (contrib/ocf/hareplicate, daemon/vm-cluster.c). */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "common/util.h"
#include "common/kv.h"

static const char promote_help[] =
    "What the cluster manager's resource agent runs where the cluster promotes\n"
    "VM.  On a host holding a backup copy: promote it, as `failover` (the guest\n"
    "continues here from its last committed epoch).  On a host where VM was\n"
    "demoted (standby): the paused guest runs on from where it paused, the\n"
    "newest state there is.  On the host where the guest runs (a hareplicated in\n"
    "--cluster-mode): the cluster confirms that the peer's copy is gone (its\n"
    "instance stopped or its node fenced), so without a backup the guest's\n"
    "output is released; until a new backup has synchronised.  Run it only when\n"
    "that holds: two hosts must never release one VM's output.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 done, 1 refused, 2 bad usage, 69 hareplicated not reachable,\n"
    "busy or not answering.\n";

static const char demote_help[] =
    "What the cluster manager's resource agent runs where the cluster demotes\n"
    "VM.  Where the guest runs: a planned switchover - at the next epoch boundary\n"
    "the guest pauses and a final epoch goes to the backup; its acknowledgement\n"
    "releases that epoch's output, so the backup's copy is exactly the paused\n"
    "guest and nothing the world saw is lost.  VM then waits here in standby\n"
    "(paused, output held, the link to the backup open): `promote` here resumes\n"
    "it; if the cluster promotes the backup instead, the paused guest is dropped\n"
    "here and this host becomes the new primary's backup.  A final epoch not\n"
    "acknowledged within 10 s (a silent backup) falls back to --drop.  Returns\n"
    "once VM is in standby.  Where no guest runs (a standby, a backup copy,\n"
    "nothing): nothing to do, success.\n\n"
    "  --drop          end this host's copy of the guest (running or standby) as\n"
    "                  after a crash: output the backup has not acknowledged is\n"
    "                  dropped, the peer's copy is left alone (`stop` would end\n"
    "                  it too); returns once it has ended\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 done, 1 refused, 2 bad usage, 69 hareplicated not reachable,\n"
    "busy or not answering.\n";

static int cmd_promote(int argc, char **argv)
{
	return hr_ctl_vm_command(&hr_cmd_promote, argc, argv);
}

static int cmd_demote(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"control", required_argument, NULL, 'C'},
	    {"drop", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *control = NULL;
	struct hr_sbuf req = {0};
	int c, rc, drop = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case 'D':
			drop = 1;
			break;
		case 'h':
			return hr_cmd_help(&hr_cmd_demote);
		default:
			return hr_cmd_usage(&hr_cmd_demote);
		}
	}
	if (argc - optind != 1)
		return hr_cmd_usage(&hr_cmd_demote);
	hr_kv_add(&req, "vm", argv[optind]);
	if (drop)
		hr_kv_add(&req, "drop", "1");
	rc = hr_ctl_request(hr_ctl_path(control), hr_cmd_demote.name, &req, stdout);
	hr_sbuf_free(&req);
	return rc;
}

const struct hr_cmd hr_cmd_promote = {"promote", "VM", promote_help, cmd_promote};
const struct hr_cmd hr_cmd_demote = {"demote", "[--drop] VM", demote_help, cmd_demote};
