/* cmd-failover.c - `hareplicate failover`: promote the replica on this (backup) host. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "daemon/kv.h"

static const char failover_help[] =
    "Run on the BACKUP host: promote the replica of VM now, from its last\n"
    "committed epoch; the guest continues here.  On the primary host the daemon\n"
    "refuses and says where to run it.  Returns once the promotion is done (or\n"
    "with an error after 10 s).  Make sure the old primary is stopped or cut off\n"
    "first: only one host may release the VM's output.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 promoted, 1 refused, 69 hareplicated not reachable.\n";

static int cmd_failover(int argc, char **argv)
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
			printf("usage: hareplicate failover %s\n\n%s", hr_cmd_failover.usage,
			       failover_help);
			return 0;
		default:
			return hr_cmd_usage(&hr_cmd_failover);
		}
	}
	if (argc - optind != 1)
		return hr_cmd_usage(&hr_cmd_failover);
	hr_kv_add(&req, "vm", argv[optind]);
	rc = hr_ctl_request(hr_ctl_path(control), "failover", &req, stdout);
	hr_sbuf_free(&req);
	return rc;
}

const struct hr_cmd hr_cmd_failover = {"failover", "VM", failover_help, cmd_failover};
