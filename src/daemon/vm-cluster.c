/*
 * vm-cluster.c - `promote` and `demote`: what a cluster manager's resource
 * agent (contrib/ocf/hareplicate) asks of this host's copy of a VM.
 *
 *   promote, a backup holding a committed epoch: as `failover` (the guest
 *       continues here from that epoch); answered once it runs.
 *   promote, a primary (or an already promoted backup): the cluster confirms
 *       that the peer's copy is gone (its instance was stopped or its node
 *       fenced), so without a backup the guest's output may leave
 *       (hr_engine_cluster_release; cluster mode only).  Answered at once.
 *   demote, a primary: its guest stops here as if its host had crashed -
 *       output of unacknowledged epochs is dropped, never released - so the
 *       backup's committed copy is exactly what the world has seen, and the
 *       cluster promotes it; the promoted peer then asks this host for a new
 *       backup.  Answered once the worker has ended.
 *   demote, a backup or no running copy: nothing to do (success).
 */
#include <signal.h>
#include <stdio.h>

#include <event2/event.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/vm-internal.h"

#define DEMOTE_TIMEOUT_S 10

static int runs_guest(const struct hr_dvm *vm)
{
	return vm->side == HR_SIDE_PRIMARY || vm->state == HR_RS_PROMOTED;
}

void hr_vms_cmd_promote(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[400];

	if (!vm || !runs_guest(vm)) {
		hr_vms_cmd_failover(cc, name); /* says why when it cannot */
		return;
	}
	if (vm->pid <= 0 || vm->stop_requested) {
		snprintf(msg, sizeof(msg), "%s does not run here (%s)", vm->name,
			 hr_dvm_state_name(vm));
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (!hr_dopts.cluster_mode) {
		snprintf(msg, sizeof(msg),
			 "%s runs here; only a daemon in --cluster-mode takes the cluster's word "
			 "to release output without a backup",
			 vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	log_info(vm->name, "the cluster confirms the peer holds no copy: output may leave "
			   "without a backup");
	kill(vm->pid, HR_SIG_CLUSTER_RELEASE);
	snprintf(msg, sizeof(msg), "%s runs here (%s); without a backup its output is released\n",
		 vm->name, hr_dvm_state_name(vm));
	hr_ctl_reply(cc, msg, NULL);
}

static void demote_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	if (vm->pid > 0) {
		log_warnx(vm->name, "worker %d did not end within %d s of demote; SIGKILL",
			  (int)vm->pid, DEMOTE_TIMEOUT_S);
		kill(vm->pid, SIGKILL);
	}
}

void hr_vms_cmd_demote(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[400];

	if (!name || !hr_vm_name_ok(name)) {
		hr_ctl_reply(cc, NULL, "demote: a VM name is needed");
		return;
	}
	if (!vm || vm->pid <= 0 || !runs_guest(vm)) {
		snprintf(msg, sizeof(msg), "%s: no guest runs here (%s): nothing to demote\n", name,
			 vm ? hr_dvm_state_name(vm) : "no such VM");
		hr_ctl_reply(cc, msg, NULL);
		return;
	}
	if (vm->waiter) {
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	log_info(vm->name,
		 "demote: the guest stops here, unacknowledged output is dropped "
		 "(worker %d)",
		 (int)vm->pid);
	vm->stop_requested = 1;
	kill(vm->pid, HR_SIG_DEMOTE);
	hr_dvm_wait(vm, cc, W_DEMOTE);
	hr_dvm_arm_timer(vm, demote_timeout, DEMOTE_TIMEOUT_S);
}
