/* cmd-stop.c - `hareplicate stop`: stop a VM's worker on this host. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "daemon/kv.h"

static const char stop_help[] =
    "Stop VM on this host and forget it: the worker gets SIGTERM (SIGKILL after\n"
    "15 s) and the command returns once it has exited.  On the primary this\n"
    "stops the guest and ends the replication cleanly (the backup discards its\n"
    "replica instead of promoting it); on the backup it drops the replica (the\n"
    "primary goes on unprotected).  A VM that already exited is just removed.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 stopped, 1 no such VM, 69 hareplicated not reachable.\n";

static int cmd_stop(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"control", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *control = NULL;
	struct hr_sbuf req = {0};
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case 'h':
			printf("usage: hareplicate stop %s\n\n%s", hr_cmd_stop.usage, stop_help);
			return 0;
		default:
			return hr_cmd_usage(&hr_cmd_stop);
		}
	}
	if (argc - optind != 1)
		return hr_cmd_usage(&hr_cmd_stop);
	hr_kv_add(&req, "vm", argv[optind]);
	rc = hr_ctl_request(hr_ctl_path(control), "stop", &req, stdout);
	hr_sbuf_free(&req);
	return rc;
}

const struct hr_cmd hr_cmd_stop = {"stop", "VM", stop_help, cmd_stop};
