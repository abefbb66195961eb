/* cmd-cluster.c - `hareplicate promote` and `demote`: what a cluster
 * manager's resource agent asks (contrib/ocf/hareplicate, daemon/vm-cluster.c). */
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/ctl.h"

static const char promote_help[] =
    "What the cluster manager's resource agent runs where the cluster promotes\n"
    "VM.  On a host holding a backup copy: promote it, as `failover` (the guest\n"
    "continues here from its last committed epoch).  On the host where the guest\n"
    "runs (a hareplicated in --cluster-mode): the cluster confirms that the\n"
    "peer's copy is gone (its instance stopped or its node fenced), so without a\n"
    "backup the guest's output is released; until a new backup has synchronised.\n"
    "Run it only when that holds: two hosts must never release one VM's output.\n\n"
    "  --control PATH  hareplicated's control socket (default\n"
    "                  $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "Exit status: 0 done, 1 refused, 2 bad usage, 69 hareplicated not reachable,\n"
    "busy or not answering.\n";

static const char demote_help[] =
    "What the cluster manager's resource agent runs where the cluster demotes\n"
    "VM.  Where the guest runs: it stops here as if the host had crashed - output\n"
    "of epochs the backup has not acknowledged is dropped, never released - so\n"
    "the backup's copy is exactly what the world has seen and the cluster can\n"
    "promote it; the promoted peer then asks this host for a new backup.\n"
    "Returns once the guest has stopped.  Where the guest does not run (a backup\n"
    "copy, nothing): nothing to do, success.\n\n"
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
	return hr_ctl_vm_command(&hr_cmd_demote, argc, argv);
}

const struct hr_cmd hr_cmd_promote = {"promote", "VM", promote_help, cmd_promote};
const struct hr_cmd hr_cmd_demote = {"demote", "VM", demote_help, cmd_demote};
