/*
 * vm-cluster.c - `promote` and `demote`: what a cluster manager's resource
 * agent (contrib/ocf/hareplicate) asks of this host's copy of a VM.
 *
 *   promote, a backup holding a committed epoch: as `failover` (the guest
 *       continues here from that epoch); answered once it runs.
 *   promote, a standby (demoted here): the paused guest runs on from where
 *       it paused - the newest state there is (the peer's copy is the same
 *       epoch, and in cluster mode it never promotes itself); answered once
 *       it runs.
 *   promote, a primary (or an already promoted backup): the cluster confirms
 *       that the peer's copy is gone (its instance was stopped or its node
 *       fenced), so without a backup the guest's output may leave
 *       (hr_engine_cluster_release; cluster mode only).  Answered at once.
 *   demote, a running guest: a planned switchover (core/engine-standby.c).
 *       At the next epoch boundary the guest pauses, a final epoch goes to
 *       the backup and its ack releases that epoch's output: the backup's
 *       copy is exactly the paused guest, nothing the world saw is lost.
 *       The VM then waits in standby (paused, output held, the session
 *       open); answered then.  A final epoch not acknowledged within
 *       DEMOTE_TIMEOUT_S (a silent backup) falls back to a drop.
 *   demote, a standby, a backup or no copy: nothing to do (success).
 *   demote drop=1 (the agent's stop): this host's copy of a guest (running
 *       or standby) ends as after a crash - unacknowledged output dropped,
 *       the peer's copy untouched (an orderly `stop` would end that too).
 *       Answered once the worker has ended.
 */
#include <signal.h>
#include <stdio.h>

#include <event2/event.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/vm-internal.h"
#include "ha/request.h"

#define DEMOTE_TIMEOUT_S 10 /* the final epoch's ack */
#define RESUME_TIMEOUT_S 10
#define DROP_TIMEOUT_S	 5 /* then SIGKILL */

/* What the daemon knows of vm (NULL: none), for ha/request.c. */
static struct hr_ha_request evidence(const struct hr_dvm *vm)
{
	struct hr_ha_request rq = {.request_waiting = vm && vm->waiter,
				   .cluster_mode = hr_dopts.cluster_mode};
	hr_dvm_evidence(vm, &rq.vm);
	return rq;
}

static void resume_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	char msg[300];
	snprintf(msg, sizeof(msg),
		 "%s: resume requested but not confirmed within %d s; see `hareplicate status %s`",
		 vm->name, RESUME_TIMEOUT_S, vm->name);
	hr_dvm_reply(vm, NULL, msg);
}

void hr_vms_cmd_promote(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[400];

	struct hr_ha_request rq = evidence(vm);
	switch (hr_ha_promote(&rq, NULL)) { /* ha/request.c decides */
	case HR_HA_PROMOTE_BUSY:
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	case HR_HA_PROMOTE_RESUME:
		log_info(vm->name, "promote: the standby guest resumes (worker %d)", (int)vm->pid);
		kill(vm->pid, HR_SIG_RESUME);
		hr_dvm_wait(vm, cc, W_RESUME);
		hr_dvm_arm_timer(vm, resume_timeout, RESUME_TIMEOUT_S);
		return;
	case HR_HA_PROMOTE_FAILOVER:
		hr_vms_cmd_failover(cc, name); /* says why when it cannot */
		return;
	case HR_HA_PROMOTE_NOT_HERE:
		snprintf(msg, sizeof(msg), "%s does not run here (%s)", vm->name,
			 hr_dvm_state_name(vm));
		hr_ctl_reply(cc, NULL, msg);
		return;
	case HR_HA_PROMOTE_NOT_CLUSTER:
		snprintf(msg, sizeof(msg),
			 "%s runs here; only a daemon in --cluster-mode takes the cluster's word "
			 "to release output without a backup",
			 vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	default: /* HR_HA_PROMOTE_RELEASE */
		break;
	}
	log_info(vm->name, "the cluster confirms the peer holds no copy: output may leave "
			   "without a backup");
	kill(vm->pid, HR_SIG_CLUSTER_RELEASE);
	snprintf(msg, sizeof(msg), "%s runs here (%s); without a backup its output is released\n",
		 vm->name, hr_dvm_state_name(vm));
	hr_ctl_reply(cc, msg, NULL);
}

static void drop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	if (vm->pid > 0) {
		log_warnx(vm->name, "worker %d did not end within %d s of the drop; SIGKILL",
			  (int)vm->pid, DROP_TIMEOUT_S);
		kill(vm->pid, SIGKILL);
	}
}

/* This host's copy ends as after a crash; the waiting request (if any) is
 * answered when the worker has ended (vm.c). */
static void drop(struct hr_dvm *vm, const char *why)
{
	log_warnx(vm->name,
		  "drop: %s; this host's copy ends as after a crash, unacknowledged "
		  "output dropped, the peer's copy untouched (worker %d)",
		  why, (int)vm->pid);
	vm->stop_requested = 1;
	vm->wait = vm->waiter ? W_DROP : W_NONE;
	kill(vm->pid, HR_SIG_DROP);
	hr_dvm_arm_timer(vm, drop_timeout, DROP_TIMEOUT_S);
}

static void demote_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	char why[96];
	if (vm->pid <= 0)
		return;
	snprintf(why, sizeof(why), "the final epoch was not acknowledged within %d s",
		 DEMOTE_TIMEOUT_S);
	drop(vm, why);
}

void hr_vms_cmd_demote(struct hr_ctl_conn *cc, const char *name, int drop_copy)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[400];

	if (!name || !hr_vm_name_ok(name)) {
		hr_ctl_reply(cc, NULL, "demote: a VM name is needed");
		return;
	}
	struct hr_ha_request rq = evidence(vm);
	switch (hr_ha_demote(&rq, drop_copy, NULL)) { /* ha/request.c decides */
	case HR_HA_DEMOTE_BUSY:
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	case HR_HA_DEMOTE_ALREADY:
		snprintf(msg, sizeof(msg),
			 "%s is demoted already (standby: paused at epoch %llu)\n", vm->name,
			 (unsigned long long)vm->last.epoch);
		hr_ctl_reply(cc, msg, NULL);
		return;
	case HR_HA_DEMOTE_NOTHING:
		snprintf(msg, sizeof(msg), "%s: no guest runs here (%s): nothing to %s\n", name,
			 vm ? hr_dvm_state_name(vm) : "no such VM", drop_copy ? "drop" : "demote");
		hr_ctl_reply(cc, msg, NULL);
		return;
	default: /* HR_HA_DEMOTE, HR_HA_DEMOTE_DROP */
		break;
	}
	hr_dvm_wait(vm, cc, W_DEMOTE);
	if (drop_copy) {
		drop(vm, "asked");
		return;
	}
	log_info(vm->name,
		 "demote: the guest pauses at the next epoch boundary, the backup gets a final "
		 "epoch (worker %d)",
		 (int)vm->pid);
	kill(vm->pid, HR_SIG_DEMOTE);
	hr_dvm_arm_timer(vm, demote_timeout, DEMOTE_TIMEOUT_S);
}

void hr_dvm_cluster_state(struct hr_dvm *vm, enum hr_role_state st)
{
	char body[300];

	if (vm->wait == W_DEMOTE && st == HR_RS_STANDBY) {
		snprintf(body, sizeof(body),
			 "demoted %s: standby, the guest paused after epoch %llu, output held\n",
			 vm->name, (unsigned long long)vm->last.epoch);
		hr_dvm_reply(vm, body, NULL);
	} else if (vm->wait == W_RESUME && st != HR_RS_STANDBY) {
		if (st == HR_RS_PROTECTED || st == HR_RS_UNPROTECTED || st == HR_RS_PROMOTED) {
			snprintf(body, sizeof(body), "%s runs here again (%s)\n", vm->name,
				 hr_role_state_name(st));
			hr_dvm_reply(vm, body, NULL);
		} else {
			snprintf(body, sizeof(body), "%s did not resume: %s", vm->name,
				 hr_role_state_name(st));
			hr_dvm_reply(vm, NULL, body);
		}
	}
}
