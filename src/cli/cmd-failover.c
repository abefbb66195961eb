/* cmd-failover.c - `hareplicate failover`: promote the replica on this (backup) host. */
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"

static const char failover_help[] =
    "Run on the BACKUP host: promote the replica of VM now, from its last\n"
    "committed epoch; the guest continues here.  On the primary host the daemon\n"
    "refuses and says where to run it.  Returns once the promotion is done (or\n"
    "with an error after 10 s).  Make sure the old primary is stopped or cut off\n"
    "first: only one host may release the VM's output.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 promoted, 1 refused, 2 bad usage, 69 hareplicated not\n"
    "reachable, busy or not answering.\n";

static int cmd_failover(int argc, char **argv)
{
	return hr_ctl_vm_command(&hr_cmd_failover, argc, argv);
}

const struct hr_cmd hr_cmd_failover = {"failover", "VM", failover_help, cmd_failover};
