/*
 * vm-stop.c - `stop`: SIGTERM to the VM's worker, answered once it has
 * exited (SIGKILL if it does not within STOP_TIMEOUT_S); a VM whose worker
 * has ended is just removed.  Also stops every worker when the daemon exits.
 */
#include <signal.h>
#include <stdio.h>

#include <event2/event.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/vm-internal.h"

#define STOP_TIMEOUT_S 15

static void stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	if (vm->pid > 0) {
		log_warnx(vm->name, "worker %d did not stop within %d s; SIGKILL", (int)vm->pid,
			  STOP_TIMEOUT_S);
		kill(vm->pid, SIGKILL);
	}
}

void hr_vms_cmd_stop(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? hr_dvm_find(name) : NULL;
	char msg[256];

	if (!vm) {
		snprintf(msg, sizeof(msg), "no VM named %s here", name ? name : "(none)");
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (vm->waiter) {
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (vm->pid <= 0) {
		snprintf(msg, sizeof(msg), "removed %s (it was %s, not running)\n", vm->name,
			 hr_dvm_state_name(vm));
		log_info(vm->name, "removed (%s)", hr_dvm_state_name(vm));
		hr_vm_state_remove(vm->name);
		hr_dvm_free(vm);
		hr_ctl_reply(cc, msg, NULL);
		return;
	}
	log_info(vm->name, "stop requested: SIGTERM to worker %d", (int)vm->pid);
	vm->stop_requested = 1;
	kill(vm->pid, SIGTERM);
	hr_dvm_wait(vm, cc, W_STOP);
	hr_dvm_arm_timer(vm, stop_timeout, STOP_TIMEOUT_S);
}
