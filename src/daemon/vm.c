/*
 * vm.c - the daemon's VM table and worker supervision: entries (new, find,
 * free), replies to the control request waiting on a VM, the worker's
 * status lines, forking and reaping workers.  The commands live in vm-*.c
 * (vm-internal.h lists them).  Every HA transition is logged once, with its
 * stable token.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "daemon/vm-internal.h"

struct event_base *hr_dvm_base;
struct hr_dvm *hr_dvms;

const char *hr_dvm_role_name(const struct hr_dvm *vm)
{
	return hr_role_side_name(vm->side, vm->state);
}

const char *hr_dvm_state_name(const struct hr_dvm *vm)
{
	return hr_role_state_name(vm->state);
}

int hr_vm_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (!len || len > HR_VM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
	       len;
}

void hr_vms_init(struct event_base *b)
{
	hr_dvm_base = b;
}

int hr_dvm_alive(const struct hr_dvm *vm)
{
	struct hr_ha_local here;
	hr_dvm_evidence(vm, &here);
	return hr_ha_local_alive(&here); /* the rule accept decides by */
}

struct hr_dvm *hr_dvm_find(const char *name)
{
	for (struct hr_dvm *vm = hr_dvms; vm; vm = vm->next)
		if (vm->name[0] && !strcmp(vm->name, name))
			return vm;
	return NULL;
}

static const char *vm_log_name(const struct hr_dvm *vm)
{
	return vm->name[0] ? vm->name : NULL;
}

struct hr_dvm *hr_dvm_new(const char *name, enum hr_role_side side, enum hr_role_state st)
{
	struct hr_dvm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->side = side;
	vm->state = st;
	vm->peer_fd = -1;
	vm->exit_clean = -1;
	vm->started_ns = hr_now_ns();
	vm->next = hr_dvms;
	hr_dvms = vm;
	return vm;
}

void hr_dvm_reply(struct hr_dvm *vm, const char *body, const char *err)
{
	struct hr_ctl_conn *cc = vm->waiter;
	vm->waiter = NULL;
	vm->wait = W_NONE;
	if (vm->timer) {
		event_free(vm->timer);
		vm->timer = NULL;
	}
	if (cc) {
		hr_ctl_set_vm(cc, NULL);
		hr_ctl_reply(cc, body, err);
	}
}

void hr_dvm_wait(struct hr_dvm *vm, struct hr_ctl_conn *cc, enum wait_kind wait)
{
	vm->waiter = cc;
	vm->wait = wait;
	hr_ctl_set_vm(cc, vm);
}

void hr_vms_ctl_gone(struct hr_dvm *vm)
{
	vm->waiter = NULL;
	if (vm->wait == W_MIGRATE)
		hr_dvm_migrate_ctl_gone(vm);
}

void hr_dvm_free(struct hr_dvm *vm)
{
	for (struct hr_dvm **p = &hr_dvms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	if (vm->waiter)
		hr_dvm_reply(vm, NULL, "the VM went away");
	if (vm->timer)
		event_free(vm->timer);
	if (vm->conn_ev)
		event_free(vm->conn_ev);
	if (vm->peer_fd >= 0)
		close(vm->peer_fd);
	if (vm->bev)
		bufferevent_free(vm->bev);
	free(vm->backend);
	free(vm->kernel);
	free(vm->initrd);
	free(vm->attach);
	free(vm->cmdline);
	free(vm->net);
	free(vm->console_spec);
	free(vm);
}

/* token: the HA event that caused the change (+backup-lost, ...), else the
 * new state's own token; status shows it as last_event. */
static void set_state(struct hr_dvm *vm, enum hr_role_state st, const char *token)
{
	vm->state = st;
	snprintf(vm->last_token, sizeof(vm->last_token), "%s",
		 token && token[0] == '+' ? token : hr_role_state_token(st));
}

void hr_dvm_arm_timer(struct hr_dvm *vm, event_callback_fn cb, int seconds)
{
	struct timeval tv = {seconds, 0};
	if (vm->timer)
		event_free(vm->timer);
	vm->timer = evtimer_new(hr_dvm_base, cb, vm);
	if (vm->timer)
		evtimer_add(vm->timer, &tv);
}

/* ---- the worker's status lines ---- */

static void status_line(struct hr_dvm *vm, const char *line, size_t len)
{
	struct hr_kvline kv;
	const char *ev;
	uint64_t u;

	if (hr_kv_parse(&kv, line, len) < 0 || !(ev = hr_kv_get(&kv, "event"))) {
		log_warnx(vm_log_name(vm), "worker %d: unreadable status line", (int)vm->pid);
		hr_kv_free(&kv);
		return;
	}
	if (!hr_kv_getu(&kv, "epoch", &vm->last.epoch)) {
		vm->have_stats = 1;
#define HR_X_GET(f) hr_kv_getu(&kv, #f, &vm->last.f);
		HR_EPOCH_STATS_FIELDS(HR_X_GET)
#undef HR_X_GET
	}
	if (!hr_kv_getu(&kv, "nr_epochs", &u))
		vm->nr_epochs = u;

	if (!strcmp(ev, "backup")) {
		const char *sp = hr_kv_get(&kv, "speaking");
		hr_dvm_name_backup(vm, hr_kv_get(&kv, "vm"), sp && !strcmp(sp, "1"));
	} else if (!strcmp(ev, "state")) {
		enum hr_role_state st;
		const char *name = hr_kv_get(&kv, "state");
		if (!name || hr_role_state_parse(name, &st) < 0) {
			log_warnx(vm_log_name(vm), "worker %d: unknown state '%s'", (int)vm->pid,
				  name ? name : "");
		} else {
			const char *side = hr_kv_get(&kv, "side");
			if (side)
				vm->side =
				    strcmp(side, "backup") ? HR_SIDE_PRIMARY : HR_SIDE_BACKUP;
			if (!hr_kv_getu(&kv, "held", &u))
				vm->held = u != 0;
			const char *peer = hr_kv_get(&kv, "peer");
			if (peer && vm->side == HR_SIDE_PRIMARY)
				snprintf(vm->peer, sizeof(vm->peer), "%s", peer);
			set_state(vm, st, hr_kv_get(&kv, "token"));
			hr_dvm_start_state(vm, st);
			hr_dvm_cluster_state(vm, st);
			if (st == HR_RS_PROMOTED && vm->wait == W_FAILOVER) {
				char body[128];
				snprintf(body, sizeof(body), "%s %s runs here from epoch %llu\n",
					 hr_role_state_token(st), vm->name,
					 (unsigned long long)vm->last.epoch);
				hr_dvm_reply(vm, body, NULL);
			}
		}
	} else if (!strcmp(ev, "migration")) {
		hr_dvm_migration_event(vm, &kv);
	} else if (!strcmp(ev, "round")) {
		hr_dvm_migrate_progress(vm, &kv); /* a migration's live round ended */
	} else if (!strcmp(ev, "live")) {
		hr_dvm_migrate_progress(vm, &kv);
		vm->live_ns = hr_now_ns();
		if (hr_kv_getu(&kv, "state_age_ms", &vm->state_age_ms))
			vm->state_age_ms = 0;
		if (hr_kv_getu(&kv, "peer_silent_ms", &vm->peer_silent_ms))
			vm->peer_silent_ms = UINT64_MAX;
		const char *wit = hr_kv_get(&kv, "witness"), *pn = hr_kv_get(&kv, "peer_node");
		if (pn && hr_vm_name_ok(pn))
			snprintf(vm->peer_node, sizeof(vm->peer_node), "%s", pn);
		snprintf(vm->witness, sizeof(vm->witness), "%s", wit ? wit : "");
		if (hr_kv_getu(&kv, "lease_left_ms", &vm->lease_left_ms))
			vm->lease_left_ms = 0;
		if (hr_kv_getu(&kv, "witness_contact_ms", &vm->witness_contact_ms))
			vm->witness_contact_ms = UINT64_MAX;
		const char *hw = hr_kv_get(&kv, "held_why");
		snprintf(vm->held_why, sizeof(vm->held_why), "%s", hw ? hw : "");
		if (hr_kv_getu(&kv, "held_ms", &vm->held_ms))
			vm->held_ms = 0;
		if (hr_kv_getu(&kv, "next_reprotect_ms", &vm->next_reprotect_ms))
			vm->next_reprotect_ms = 0;
		const char *dw = hr_kv_get(&kv, "dropped_why");
		snprintf(vm->dropped_why, sizeof(vm->dropped_why), "%s", dw ? dw : "");
		hr_dvm_live_disks(vm, &kv);
		const char *con = hr_kv_get(&kv, "console"),
			   *cerr = hr_kv_get(&kv, "console_error");
		snprintf(vm->console, sizeof(vm->console), "%s", con ? con : "");
		snprintf(vm->console_error, sizeof(vm->console_error), "%s", cerr ? cerr : "");
		if (hr_kv_getu(&kv, "console_held_bytes", &vm->console_held_bytes))
			vm->console_held_bytes = 0;
		if (hr_kv_getu(&kv, "console_retries", &vm->console_retries))
			vm->console_retries = 0;
		if (hr_kv_getu(&kv, "console_failing_since_s", &vm->console_failing_since_s))
			vm->console_failing_since_s = 0;
	} else if (!strcmp(ev, "epoch")) {
		/* stats taken above */
	} else if (!strcmp(ev, "guest-exit")) {
		log_info(vm->name, "guest exited on its own");
		snprintf(vm->error, sizeof(vm->error), "guest exited");
	} else if (!strcmp(ev, "adopt")) {
		const char *side = hr_kv_get(&kv, "side"), *peer = hr_kv_get(&kv, "peer");
		const char *st = hr_kv_get(&kv, "state");
		enum hr_role_state rs;
		uint64_t pid = 0;
		hr_kv_getu(&kv, "pid", &pid);
		vm->pid = (pid_t)pid;
		vm->side = side && !strcmp(side, "backup") ? HR_SIDE_BACKUP : HR_SIDE_PRIMARY;
		snprintf(vm->peer, sizeof(vm->peer), "%s", peer ? peer : "");
		hr_kv_getu(&kv, "epoch_us", &vm->epoch_us);
		hr_kv_getu(&kv, "min_epoch_us", &vm->min_epoch_us);
		hr_kv_getu(&kv, "memory_bytes", &vm->mem_bytes);
		if (!hr_kv_getu(&kv, "held", &u))
			vm->held = u != 0;
		if (st && !hr_role_state_parse(st, &rs))
			set_state(vm, rs, hr_kv_get(&kv, "token"));
		log_info(vm->name, "adopted worker %d (%s, %s)", (int)vm->pid, hr_dvm_role_name(vm),
			 hr_dvm_state_name(vm));
	} else if (!strcmp(ev, "exit")) {
		const char *e = hr_kv_get(&kv, "error");
		const char *stopped = hr_kv_get(&kv, "stopped");
		int64_t rc = 0;
		const char *rcs = hr_kv_get(&kv, "rc");
		if (rcs)
			rc = strtoll(rcs, NULL, 10);
		vm->exit_clean = rc >= 0 || (stopped && !strcmp(stopped, "1"));
		if (e && !vm->error[0])
			snprintf(vm->error, sizeof(vm->error), "%s", e);
	} else {
		log_debug(vm_log_name(vm), "worker: unknown event '%s'", ev);
	}
	hr_kv_free(&kv);
}

static void status_drain(struct hr_dvm *vm)
{
	struct evbuffer *in = bufferevent_get_input(vm->bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		status_line(vm, line, len);
		free(line);
		if (!vm->bev)
			return;
	}
	if (evbuffer_get_length(in) > HR_KV_MAX_LINE) {
		log_warnx(vm_log_name(vm), "worker %d: status line too long; dropped",
			  (int)vm->pid);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
}

static void status_read_cb(struct bufferevent *bev, void *arg)
{
	status_drain(arg);
}

static void worker_ended(struct hr_dvm *vm, int status);

static void status_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		status_drain(vm);
		bufferevent_free(vm->bev);
		vm->bev = NULL;
		/* not our child: no SIGCHLD will come; the worker's last word decides */
		if (vm->adopted && vm->pid > 0)
			worker_ended(vm, vm->exit_clean == 1   ? 0
					 : vm->exit_clean == 0 ? 1 << 8
							       : SIGKILL);
	}
}

int hr_vms_adopt(const char *name, int fd)
{
	struct hr_dvm *vm = hr_dvm_find(name);

	if (vm && hr_dvm_alive(vm)) {
		log_warnx(name, "a worker offers itself for adoption but %s is known here; ignored",
			  name);
		close(fd);
		return -EEXIST;
	}
	if (vm)
		hr_dvm_free(vm);
	vm = hr_dvm_new(name, HR_SIDE_PRIMARY, HR_RS_CONNECTING);
	if (!vm) {
		close(fd);
		return -ENOMEM;
	}
	vm->adopted = 1;
	evutil_make_socket_nonblocking(fd);
	vm->bev = bufferevent_socket_new(hr_dvm_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!vm->bev) {
		close(fd);
		hr_dvm_free(vm);
		return -ENOMEM;
	}
	bufferevent_setcb(vm->bev, status_read_cb, NULL, status_event_cb, vm);
	bufferevent_enable(vm->bev, EV_READ | EV_WRITE);
	return 0;
}

/* ---- forking a worker ---- */

int hr_dvm_spawn_worker(struct hr_dvm *vm, struct hr_worker_args *a)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0) {
		/* Child: drop everything of the daemon's, keep stdio, peer, status;
		 * a session of its own, so that what ends the daemon spares it. */
		setsid();
		sigset_t all;
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		closelog();
		long max = sysconf(_SC_OPEN_MAX);
		if (max < 0 || max > 65536)
			max = 65536;
		for (int fd = 3; fd < max; fd++)
			if (fd != sv[1] && fd != a->peer_fd)
				close(fd);
		a->status_fd = sv[1];
		_exit(hr_worker_main(a));
	}
	close(sv[1]);
	vm->pid = pid;
	evutil_make_socket_nonblocking(sv[0]);
	vm->bev = bufferevent_socket_new(hr_dvm_base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (!vm->bev) {
		close(sv[0]);
		return 0; /* the worker runs; we just don't hear it */
	}
	bufferevent_setcb(vm->bev, status_read_cb, NULL, status_event_cb, vm);
	bufferevent_enable(vm->bev, EV_READ | EV_WRITE);
	return 0;
}

/* ---- reaping ---- */

static void worker_ended(struct hr_dvm *vm, int status)
{
	char why[96];
	int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
	vm->pid = 0;
	if (vm->bev) {
		/* read what the worker said last before judging */
		struct evbuffer *in = bufferevent_get_input(vm->bev);
		int fd = bufferevent_getfd(vm->bev);
		while (evbuffer_read(in, fd, 65536) > 0)
			;
		status_drain(vm);
	}
	if (!vm->name[0]) {
		log_info(NULL, "replication connection from %s ended before a VM was named (%s)",
			 vm->peer, why);
		hr_dvm_free(vm);
		return;
	}
	if (vm->migrated) {
		log_info(vm->name, "worker ended (%s): the VM runs on %s now", why, vm->mig_to);
		hr_dvm_migrated_ended(vm);
		return;
	}
	if (vm->stop_requested) {
		log_info(vm->name, "stopped (%s)", why);
	} else if (vm->side == HR_SIDE_BACKUP && vm->state != HR_RS_PROMOTED) {
		log_warnx(vm->name,
			  "replica worker ended (%s%s%s); this host no longer holds a copy", why,
			  vm->error[0] ? ": " : "", vm->error);
	} else {
		log_warnx(vm->name, "worker ended (%s%s%s); the guest no longer runs here", why,
			  vm->error[0] ? ": " : "", vm->error);
	}
	if (!vm->error[0] && !clean)
		snprintf(vm->error, sizeof(vm->error), "worker %s", why);
	/* the worker's end, through the role table: stopped (clean, or asked)
	 * or failed; a final state stays */
	int st = hr_role_next(vm->side, vm->state,
			      clean || vm->stop_requested ? HR_RE_STOP : HR_RE_ERROR);
	if (st >= 0 && st != (int)vm->state)
		set_state(vm, (enum hr_role_state)st, NULL);

	if (vm->wait == W_START) {
		hr_dvm_start_ended(vm);
	} else if (vm->wait == W_STOP) {
		char body[160];
		/* stopped on purpose: the daemon's files for it go, its console stays */
		hr_vm_state_remove(vm->name);
		snprintf(body, sizeof(body), "stopped %s\n", vm->name);
		hr_dvm_reply(vm, body, NULL);
		hr_dvm_free(vm);
	} else if (vm->wait == W_DEMOTE || vm->wait == W_DROP) {
		char body[200];
		/* a demote that ended the worker: the backup took over meanwhile (or
		 * it failed); a drop: what was asked */
		snprintf(body, sizeof(body), "%s %s: its guest no longer runs here (%s)\n",
			 vm->wait == W_DROP ? "dropped" : "demoted", vm->name,
			 hr_dvm_state_name(vm));
		hr_dvm_reply(vm, body, NULL);
	} else if (vm->wait == W_RESUME) {
		hr_dvm_reply(vm, NULL, "the worker ended before the guest resumed");
	} else if (vm->wait == W_FAILOVER) {
		hr_dvm_reply(vm, NULL, "the worker ended before the promotion was confirmed");
	} else if (vm->wait == W_MIGRATE) {
		hr_dvm_reply(vm, NULL, "the worker ended during the migration");
	}
}

void hr_vms_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (struct hr_dvm *vm = hr_dvms; vm; vm = vm->next)
			if (vm->pid == pid) {
				worker_ended(vm, status);
				break;
			}
	}
}

unsigned hr_vms_nr_workers(void)
{
	unsigned n = 0;
	for (struct hr_dvm *vm = hr_dvms; vm; vm = vm->next)
		n += vm->pid > 0;
	return n;
}
