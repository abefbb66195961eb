/* cmd-stop.c - `hareplicate stop`: stop a VM's worker on this host. */
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"

static const char stop_help[] =
    "Stop VM on this host and forget it: the worker gets SIGTERM (SIGKILL after\n"
    "15 s) and the command returns once it has exited.  On the primary this\n"
    "stops the guest and ends the replication cleanly (the backup discards its\n"
    "replica instead of promoting it); on the backup it drops the replica (the\n"
    "primary goes on unprotected).  A VM that already exited is just removed.\n"
    "The daemon's files for VM in its state directory go too (VM.epochs,\n"
    "VM.epochs.1, VM.worker); its console file stays: it is the VM's output.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 stopped, 1 no such VM, 2 bad usage, 69 hareplicated not\n"
    "reachable, busy or not answering.\n";

static int cmd_stop(int argc, char **argv)
{
	return hr_ctl_vm_command(&hr_cmd_stop, argc, argv);
}

const struct hr_cmd hr_cmd_stop = {"stop", "VM", stop_help, cmd_stop};
