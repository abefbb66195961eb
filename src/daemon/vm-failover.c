/*
 * vm-failover.c - `failover`: promote the backup replica on this host by
 * hand.  SIGUSR1 asks the worker's engine to promote; the request is
 * answered when the worker reports the promoted state (vm.c), or with an
 * error after FAILOVER_TIMEOUT_S.
 */
#include <signal.h>
#include <stdio.h>

#include <event2/event.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/vm-internal.h"
#include "ha/request.h"

#define FAILOVER_TIMEOUT_S 10

static void failover_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	char msg[400];
	snprintf(
	    msg, sizeof(msg),
	    "promotion of %s requested but not confirmed within %d s; see `hareplicate status %s`",
	    vm->name, FAILOVER_TIMEOUT_S, vm->name);
	hr_dvm_reply(vm, NULL, msg);
}

void hr_vms_cmd_failover(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[600];

	struct hr_ha_request rq = {.request_waiting = vm && vm->waiter};
	hr_dvm_evidence(vm, &rq.vm);
	switch (hr_ha_failover(&rq, NULL)) { /* ha/request.c decides */
	case HR_HA_FAILOVER_NO_VM:
		snprintf(msg, sizeof(msg), "no VM named %s here", name ? name : "(none)");
		break;
	case HR_HA_FAILOVER_IS_PRIMARY:
		snprintf(
		    msg, sizeof(msg),
		    "%s is the primary on this host; run `hareplicate failover %s` on the backup "
		    "host (%s) to move it there",
		    vm->name, vm->name, vm->peer);
		break;
	case HR_HA_FAILOVER_ALREADY:
		snprintf(msg, sizeof(msg), "%s is already promoted and runs here", vm->name);
		break;
	case HR_HA_FAILOVER_NO_REPLICA:
		snprintf(msg, sizeof(msg), "%s has no running replica here (%s)", vm->name,
			 hr_dvm_state_name(vm));
		break;
	case HR_HA_FAILOVER_NO_COMMIT:
		snprintf(msg, sizeof(msg),
			 "%s has no committed copy yet (%s); promoting now would lose the guest",
			 vm->name, hr_dvm_state_name(vm));
		break;
	case HR_HA_FAILOVER_BUSY:
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
		break;
	default: /* HR_HA_FAILOVER */
		log_info(vm->name, "manual failover requested (primary was %s)", vm->peer);
		vm->failover_requested = 1;
		kill(vm->pid, SIGUSR1);
		hr_dvm_wait(vm, cc, W_FAILOVER);
		hr_dvm_arm_timer(vm, failover_timeout, FAILOVER_TIMEOUT_S);
		return;
	}
	hr_ctl_reply(cc, NULL, msg);
}
