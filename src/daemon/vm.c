/*
 * vm.c - the daemon's VM table: start (connect + preamble + fork), accept
 * (fork a backup worker), worker status lines, reaping, stop, failover,
 * status.  Every HA transition is logged once, with its stable token.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "daemon/kv.h"

#define CONNECT_TIMEOUT_S   5
#define PREAMBLE_TIMEOUT_S  10
#define STOP_TIMEOUT_S	    15
#define FAILOVER_TIMEOUT_S  10
#define MAX_UNNAMED_BACKUPS 16

enum wait_kind { W_NONE, W_START, W_STOP, W_FAILOVER };

struct hr_dvm {
	struct hr_dvm *next;
	char name[HR_VM_NAME_MAX + 1]; /* "" until a backup worker names it */
	enum hr_role_side side;
	enum hr_role_state state; /* as the worker last reported it */
	pid_t pid;
	struct bufferevent *bev; /* status channel */
	char peer[160];
	uint64_t started_ns;
	struct hr_epoch_stats last;
	int have_stats;
	uint64_t nr_epochs;
	char last_token[24];
	char error[256];
	int failover_requested, stop_requested;
	/* a control request waiting on this VM */
	struct hr_ctl_conn *waiter;
	enum wait_kind wait;
	struct event *timer;
	/* primary: connection being set up */
	int peer_fd;
	struct event *conn_ev;
	/* primary: configuration */
	const struct hr_backend_ops *ops;
	char *backend, *kernel, *cmdline, *console_spec;
	uint64_t mem_bytes, epoch_us;
	unsigned nr_vcpus;
};

static struct event_base *base;
static struct hr_dvm *vms;

static const char *role_name(const struct hr_dvm *vm)
{
	return hr_role_side_name(vm->side, vm->state);
}

static const char *state_name(const struct hr_dvm *vm)
{
	return hr_role_state_name(vm->state);
}

static int final_state(enum hr_role_state s)
{
	return s == HR_RS_STOPPED || s == HR_RS_FAILED || s == HR_RS_DEMOTED;
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
	base = b;
}

static int alive(const struct hr_dvm *vm)
{
	return vm->pid > 0 || !final_state(vm->state);
}

static struct hr_dvm *find_vm(const char *name)
{
	for (struct hr_dvm *vm = vms; vm; vm = vm->next)
		if (vm->name[0] && !strcmp(vm->name, name))
			return vm;
	return NULL;
}

static const char *vm_log_name(const struct hr_dvm *vm)
{
	return vm->name[0] ? vm->name : NULL;
}

static struct hr_dvm *vm_new(const char *name, enum hr_role_side side, enum hr_role_state st)
{
	struct hr_dvm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->side = side;
	vm->state = st;
	vm->peer_fd = -1;
	vm->started_ns = hr_now_ns();
	vm->next = vms;
	vms = vm;
	return vm;
}

static void reply(struct hr_dvm *vm, const char *body, const char *err)
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

void hr_vms_ctl_gone(struct hr_dvm *vm)
{
	vm->waiter = NULL;
}

static void vm_free(struct hr_dvm *vm)
{
	for (struct hr_dvm **p = &vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	if (vm->waiter)
		reply(vm, NULL, "the VM went away");
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
	free(vm->cmdline);
	free(vm->console_spec);
	free(vm);
}

static void set_state(struct hr_dvm *vm, enum hr_role_state st)
{
	vm->state = st;
	snprintf(vm->last_token, sizeof(vm->last_token), "%s", hr_role_state_token(st));
}

static void arm_timer(struct hr_dvm *vm, event_callback_fn cb, int seconds)
{
	struct timeval tv = {seconds, 0};
	if (vm->timer)
		event_free(vm->timer);
	vm->timer = evtimer_new(base, cb, vm);
	if (vm->timer)
		evtimer_add(vm->timer, &tv);
}

/* ---- worker status lines ---- */

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
		const char *name = hr_kv_get(&kv, "vm");
		struct hr_dvm *other = name ? find_vm(name) : NULL;
		char ans[256];
		if (vm->name[0] || !name || !hr_vm_name_ok(name)) {
			snprintf(ans, sizeof(ans), "refuse invalid VM name\n");
		} else if (other && alive(other)) {
			snprintf(
			    ans, sizeof(ans),
			    "refuse a VM named %s already exists on the backup host (%s, %s)\n",
			    name, role_name(other), state_name(other));
			log_warnx(name,
				  "refused a second replica from %s: the name is taken (%s, %s)",
				  vm->peer, role_name(other), state_name(other));
		} else {
			if (other)
				vm_free(other); /* an exited entry: replaced */
			snprintf(vm->name, sizeof(vm->name), "%s", name);
			vm->started_ns = hr_now_ns();
			snprintf(ans, sizeof(ans), "accept\n");
			log_info(vm->name, "backup replica for the primary at %s (worker %d)",
				 vm->peer, (int)vm->pid);
		}
		bufferevent_write(vm->bev, ans, strlen(ans));
	} else if (!strcmp(ev, "state")) {
		enum hr_role_state st;
		const char *name = hr_kv_get(&kv, "state");
		if (!name || hr_role_state_parse(name, &st) < 0) {
			log_warnx(vm_log_name(vm), "worker %d: unknown state '%s'", (int)vm->pid,
				  name ? name : "");
		} else {
			set_state(vm, st);
			if (st == HR_RS_PROMOTED && vm->wait == W_FAILOVER) {
				char body[128];
				snprintf(body, sizeof(body), "%s %s runs here from epoch %llu\n",
					 hr_role_state_token(st), vm->name,
					 (unsigned long long)vm->last.epoch);
				reply(vm, body, NULL);
			}
		}
	} else if (!strcmp(ev, "epoch")) {
		/* stats taken above */
	} else if (!strcmp(ev, "guest-exit")) {
		log_info(vm->name, "guest exited on its own");
		snprintf(vm->error, sizeof(vm->error), "guest exited");
	} else if (!strcmp(ev, "exit")) {
		const char *e = hr_kv_get(&kv, "error");
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

static void status_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		status_drain(vm);
		bufferevent_free(vm->bev);
		vm->bev = NULL;
	}
}

/* ---- forking a worker ---- */

static int spawn_worker(struct hr_dvm *vm, struct hr_worker_args *a)
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
		/* Child: drop everything of the daemon's, keep stdio, peer, status. */
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
	vm->bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (!vm->bev) {
		close(sv[0]);
		return 0; /* the worker runs; we just don't hear it */
	}
	bufferevent_setcb(vm->bev, status_read_cb, NULL, status_event_cb, vm);
	bufferevent_enable(vm->bev, EV_READ | EV_WRITE);
	return 0;
}

/* ---- start (primary) ---- */

static void start_fail(struct hr_dvm *vm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void start_fail(struct hr_dvm *vm, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx(vm->name, "start failed: %s", msg);
	reply(vm, NULL, msg);
	vm_free(vm);
}

static void start_fork(struct hr_dvm *vm)
{
	struct hr_worker_args a = {0};
	char body[512];
	int rc;

	event_free(vm->conn_ev);
	vm->conn_ev = NULL;
	fcntl(vm->peer_fd, F_SETFL, fcntl(vm->peer_fd, F_GETFL) & ~O_NONBLOCK);
	a.side = HR_SIDE_PRIMARY;
	a.peer_fd = vm->peer_fd;
	snprintf(a.name, sizeof(a.name), "%s", vm->name);
	a.peer_desc = vm->peer;
	a.ops = vm->ops;
	a.vm.name = vm->name;
	a.vm.mem_bytes = vm->mem_bytes;
	a.vm.nr_vcpus = vm->nr_vcpus;
	a.vm.kernel_path = vm->kernel;
	a.vm.cmdline = vm->cmdline;
	a.epoch_us = vm->epoch_us;
	a.console_spec = vm->console_spec;
	rc = spawn_worker(vm, &a);
	close(vm->peer_fd);
	vm->peer_fd = -1;
	if (rc < 0) {
		start_fail(vm, "cannot fork a worker: %s", hr_strerror(rc));
		return;
	}
	vm->started_ns = hr_now_ns();
	log_info(vm->name, "started: primary, worker %d, backup at %s, epoch %llu us", (int)vm->pid,
		 vm->peer, (unsigned long long)vm->epoch_us);
	snprintf(body, sizeof(body),
		 "started %s: primary (worker %d), replicating to %s; "
		 "`hareplicate status %s` shows when it is protected\n",
		 vm->name, (int)vm->pid, vm->peer, vm->name);
	reply(vm, body, NULL);
}

static void preamble_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	char buf[HR_PREAMBLE_MAX];
	struct hr_kvline kv;
	ssize_t n;
	char *nl;

	if (what & EV_TIMEOUT) {
		start_fail(vm, "peer %s accepted the connection but did not answer within %d s",
			   vm->peer, PREAMBLE_TIMEOUT_S);
		return;
	}
	n = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		start_fail(vm, "peer %s closed the connection (%s); is it a hareplicated?",
			   vm->peer, n < 0 ? strerror(errno) : "end of stream");
		return;
	}
	buf[n] = '\0';
	nl = memchr(buf, '\n', (size_t)n);
	if (!nl) {
		if ((size_t)n == sizeof(buf) - 1)
			start_fail(vm, "peer %s sent an oversized preamble; is it a hareplicated?",
				   vm->peer);
		return;
	}
	/* consume exactly the line: what follows belongs to the engine */
	(void)!recv(fd, buf, (size_t)(nl - buf + 1), 0);
	if (hr_kv_parse(&kv, buf, (size_t)(nl - buf)) < 0 || !hr_kv_get(&kv, "hrd") ||
	    !hr_kv_get(&kv, "status")) {
		hr_kv_free(&kv);
		start_fail(vm,
			   "peer %s answered with something that is not a hareplicated preamble",
			   vm->peer);
		return;
	}
	if (strcmp(hr_kv_get(&kv, "status"), "ok")) {
		const char *e = hr_kv_get(&kv, "error");
		start_fail(vm, "peer %s refused: %s", vm->peer, e ? e : "no reason given");
		hr_kv_free(&kv);
		return;
	}
	hr_kv_free(&kv);
	start_fork(vm);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	struct timeval tv = {PREAMBLE_TIMEOUT_S, 0};
	struct hr_sbuf sb = {0};
	int err = 0;
	socklen_t len = sizeof(err);

	if (what & EV_TIMEOUT) {
		start_fail(vm,
			   "cannot reach peer %s: no answer within %d s; start again when it is up",
			   vm->peer, CONNECT_TIMEOUT_S);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		start_fail(vm,
			   "cannot reach peer %s: %s (is hareplicated running there?); "
			   "nothing was started, retry when the peer is up",
			   vm->peer, strerror(err));
		return;
	}
	hr_kv_add(&sb, "hrd", "1");
	hr_kv_add(&sb, "vm", vm->name);
	hr_sbuf_add(&sb, "\n", 1);
	ssize_t n = sb.oom ? -1 : send(fd, sb.p, sb.len, MSG_NOSIGNAL);
	int send_ok = n == (ssize_t)sb.len;
	hr_sbuf_free(&sb);
	if (!send_ok) {
		start_fail(vm, "peer %s: sending the preamble failed", vm->peer);
		return;
	}
	event_free(vm->conn_ev);
	vm->conn_ev = event_new(base, fd, EV_READ | EV_PERSIST, preamble_cb, vm);
	if (!vm->conn_ev) {
		start_fail(vm, "out of memory");
		return;
	}
	event_add(vm->conn_ev, &tv);
}

/* HOST[:PORT] or [V6]:PORT -> host, port (default 7788). */
static int split_peer(const char *peer, char *host, size_t hsz, char *port, size_t psz)
{
	const char *colon = NULL;
	if (peer[0] == '[') {
		const char *rb = strchr(peer, ']');
		if (!rb || (rb[1] && rb[1] != ':'))
			return -EINVAL;
		snprintf(host, hsz, "%.*s", (int)(rb - peer - 1), peer + 1);
		colon = rb[1] ? rb + 1 : NULL;
	} else {
		colon = strchr(peer, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL; /* bare IPv6: use [addr]:port */
		snprintf(host, hsz, "%.*s", colon ? (int)(colon - peer) : (int)strlen(peer), peer);
	}
	snprintf(port, psz, "%s", colon ? colon + 1 : HR_DEFAULT_PORT);
	if (!host[0] || !port[0] || strspn(port, "0123456789") != strlen(port) || atoi(port) < 1 ||
	    atoi(port) > 65535)
		return -EINVAL;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void hr_vms_cmd_start(struct hr_ctl_conn *cc, const struct hr_kvline *req)
{
	const char *name = hr_kv_get(req, "vm"), *backend = hr_kv_get(req, "backend");
	const char *peer = hr_kv_get(req, "peer"), *kernel = hr_kv_get(req, "kernel");
	const char *console = hr_kv_get(req, "console");
	uint64_t mem_bytes = 256ull << 20, epoch_us = 25000, nr_vcpus = 1;
	char host[256], port[16], err[1536], spec[1024];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	struct hr_dvm *vm, *old;
	const struct hr_backend_ops *ops;
	struct timeval tv = {CONNECT_TIMEOUT_S, 0};
	int fd = -1, gai;

	if (!name || !hr_vm_name_ok(name)) {
		hr_ctl_reply(cc, NULL,
			     "vm= missing or invalid (letters, digits, '_', '.', '-'; up to 64)");
		return;
	}
	if (!backend)
		backend = "kvm";
	ops = hr_backend_find(backend);
	if (!ops) {
		const char *flag = hr_backend_why_missing(backend);
		if (flag)
			snprintf(err, sizeof(err), "backend '%s' is not available: %s", backend,
				 flag);
		else
			snprintf(err, sizeof(err), "unknown backend '%s'", backend);
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	if (!peer || split_peer(peer, host, sizeof(host), port, sizeof(port)) < 0) {
		hr_ctl_reply(cc, NULL, "peer= missing or invalid (HOST[:PORT], [V6ADDR]:PORT)");
		return;
	}
	if (!kernel || kernel[0] != '/' || access(kernel, R_OK) < 0) {
		snprintf(err, sizeof(err), "kernel %s: %s", kernel ? kernel : "(none)",
			 !kernel	    ? "kernel= is required"
			 : kernel[0] != '/' ? "give an absolute path"
					    : strerror(errno));
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	if ((hr_kv_get(req, "memory_bytes") && hr_kv_getu(req, "memory_bytes", &mem_bytes) < 0) ||
	    mem_bytes < (2u << 20) || mem_bytes > (1ull << 40) ||
	    (hr_kv_get(req, "epoch_us") && hr_kv_getu(req, "epoch_us", &epoch_us) < 0) ||
	    epoch_us < 1000 || epoch_us > 10000000 ||
	    (hr_kv_get(req, "vcpus") && hr_kv_getu(req, "vcpus", &nr_vcpus) < 0) || nr_vcpus < 1 ||
	    nr_vcpus > HR_MAX_VCPUS) {
		hr_ctl_reply(
		    cc, NULL,
		    "bad memory_bytes (2 MiB..1 TiB), epoch_us (1000..10000000) or vcpus (1..64)");
		return;
	}
	if (!console) {
		snprintf(spec, sizeof(spec), "file:%s/%s.console", hr_dopts.state_dir, name);
		console = spec;
	}
	if (hr_console_check_spec(console) < 0) {
		snprintf(err, sizeof(err), "bad console '%s' (file:/ABS/PATH or tcp:HOST:PORT)",
			 console);
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	old = find_vm(name);
	if (old && alive(old)) {
		snprintf(err, sizeof(err), "a VM named %s already exists here (%s, %s)", name,
			 role_name(old), state_name(old));
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	if (old)
		vm_free(old);

	vm = vm_new(name, HR_SIDE_PRIMARY, HR_RS_CONNECTING);
	if (!vm) {
		hr_ctl_reply(cc, NULL, "out of memory");
		return;
	}
	snprintf(vm->peer, sizeof(vm->peer), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	vm->ops = ops;
	vm->backend = strdup(backend);
	vm->kernel = strdup(kernel);
	vm->cmdline = dup_or_null(hr_kv_get(req, "append"));
	vm->console_spec = strdup(console);
	vm->mem_bytes = mem_bytes;
	vm->epoch_us = epoch_us;
	vm->nr_vcpus = (unsigned)nr_vcpus;
	vm->waiter = cc;
	vm->wait = W_START;
	hr_ctl_set_vm(cc, vm);

	gai = getaddrinfo(host, port, &hints, &res);
	if (gai) {
		start_fail(vm, "cannot resolve peer %s: %s", host, gai_strerror(gai));
		return;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)) {
		int e = errno;
		freeaddrinfo(res);
		if (fd >= 0)
			close(fd);
		start_fail(vm, "cannot reach peer %s: %s (is hareplicated running there?)",
			   vm->peer, strerror(e));
		return;
	}
	freeaddrinfo(res);
	vm->peer_fd = fd;
	vm->conn_ev = event_new(base, fd, EV_WRITE, connect_cb, vm);
	if (!vm->conn_ev) {
		start_fail(vm, "out of memory");
		return;
	}
	event_add(vm->conn_ev, &tv);
}

/* ---- accept (backup) ---- */

void hr_vms_accept(int fd, const char *peer_desc)
{
	struct hr_worker_args a = {0};
	unsigned unnamed = 0;
	struct hr_dvm *vm;
	int rc;

	for (vm = vms; vm; vm = vm->next)
		unnamed += !vm->name[0];
	if (unnamed >= MAX_UNNAMED_BACKUPS) {
		log_warnx(NULL, "replication connection from %s refused: %u handshakes in progress",
			  peer_desc, unnamed);
		close(fd);
		return;
	}
	vm = vm_new("", HR_SIDE_BACKUP, HR_RS_CONNECTING);
	if (!vm) {
		close(fd);
		return;
	}
	snprintf(vm->peer, sizeof(vm->peer), "%s", peer_desc);
	a.side = HR_SIDE_BACKUP;
	a.peer_fd = fd;
	a.peer_desc = vm->peer;
	a.silence_ms = hr_dopts.failover_timeout_ms;
	a.console_pattern = hr_dopts.console_pattern;
	a.vm.mem_bytes = 0; /* the engine learns the shape from the Hello */
	a.vm.nr_vcpus = 1;
	rc = spawn_worker(vm, &a);
	close(fd);
	if (rc < 0) {
		log_err(NULL, "replication connection from %s: cannot fork a worker: %s", peer_desc,
			hr_strerror(rc));
		vm_free(vm);
		return;
	}
	log_debug(NULL, "replication connection from %s: worker %d", peer_desc, (int)vm->pid);
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
		vm_free(vm);
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
	if (!final_state(vm->state))
		set_state(vm, clean || vm->stop_requested ? HR_RS_STOPPED : HR_RS_FAILED);

	if (vm->wait == W_STOP) {
		char body[160];
		snprintf(body, sizeof(body), "stopped %s\n", vm->name);
		reply(vm, body, NULL);
		vm_free(vm);
	} else if (vm->wait == W_FAILOVER) {
		reply(vm, NULL, "the worker ended before the promotion was confirmed");
	}
}

void hr_vms_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (struct hr_dvm *vm = vms; vm; vm = vm->next)
			if (vm->pid == pid) {
				worker_ended(vm, status);
				break;
			}
	}
}

unsigned hr_vms_nr_workers(void)
{
	unsigned n = 0;
	for (struct hr_dvm *vm = vms; vm; vm = vm->next)
		n += vm->pid > 0;
	return n;
}

void hr_vms_stop_all(void)
{
	for (struct hr_dvm *vm = vms; vm; vm = vm->next) {
		if (vm->pid > 0) {
			vm->stop_requested = 1;
			kill(vm->pid, SIGTERM);
		}
	}
}

/* ---- stop / failover ---- */

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
	struct hr_dvm *vm = name ? find_vm(name) : NULL;
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
			 state_name(vm));
		log_info(vm->name, "removed (%s)", state_name(vm));
		vm_free(vm);
		hr_ctl_reply(cc, msg, NULL);
		return;
	}
	log_info(vm->name, "stop requested: SIGTERM to worker %d", (int)vm->pid);
	vm->stop_requested = 1;
	kill(vm->pid, SIGTERM);
	vm->waiter = cc;
	vm->wait = W_STOP;
	hr_ctl_set_vm(cc, vm);
	arm_timer(vm, stop_timeout, STOP_TIMEOUT_S);
}

static void failover_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	char msg[400];
	snprintf(
	    msg, sizeof(msg),
	    "promotion of %s requested but not confirmed within %d s; see `hareplicate status %s`",
	    vm->name, FAILOVER_TIMEOUT_S, vm->name);
	reply(vm, NULL, msg);
}

void hr_vms_cmd_failover(struct hr_ctl_conn *cc, const char *name)
{
	struct hr_dvm *vm = name ? find_vm(name) : NULL;
	char msg[600];

	if (!vm) {
		snprintf(msg, sizeof(msg), "no VM named %s here", name ? name : "(none)");
	} else if (vm->side == HR_SIDE_PRIMARY) {
		snprintf(
		    msg, sizeof(msg),
		    "%s is the primary on this host; run `hareplicate failover %s` on the backup "
		    "host (%s) to move it there",
		    vm->name, vm->name, vm->peer);
	} else if (vm->state == HR_RS_PROMOTING || vm->state == HR_RS_PROMOTED) {
		snprintf(msg, sizeof(msg), "%s is already promoted and runs here", vm->name);
	} else if (vm->pid <= 0 || vm->stop_requested) {
		snprintf(msg, sizeof(msg), "%s has no running replica here (%s)", vm->name,
			 state_name(vm));
	} else if (vm->state != HR_RS_BACKUP) {
		snprintf(msg, sizeof(msg),
			 "%s has no committed copy yet (%s); promoting now would lose the guest",
			 vm->name, state_name(vm));
	} else if (vm->waiter) {
		snprintf(msg, sizeof(msg), "another request for %s is in progress", vm->name);
	} else {
		log_info(vm->name, "manual failover requested (primary was %s)", vm->peer);
		vm->failover_requested = 1;
		kill(vm->pid, SIGUSR1);
		vm->waiter = cc;
		vm->wait = W_FAILOVER;
		hr_ctl_set_vm(cc, vm);
		arm_timer(vm, failover_timeout, FAILOVER_TIMEOUT_S);
		return;
	}
	hr_ctl_reply(cc, NULL, msg);
}

/* ---- status ---- */

static void json_str(struct hr_sbuf *sb, const char *s)
{
	hr_sbuf_add(sb, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			hr_sbuf_addf(sb, "\\%c", *c);
		else if (*c < 0x20 || *c >= 0x7f)
			hr_sbuf_addf(sb, "\\u%04x", *c);
		else
			hr_sbuf_add(sb, (const char *)c, 1);
	}
	hr_sbuf_add(sb, "\"", 1);
}

static void status_json(struct hr_sbuf *sb, const struct hr_dvm *vm, uint64_t now_ns)
{
	hr_sbuf_add(sb, "{\"name\": ", 9);
	json_str(sb, vm->name);
	hr_sbuf_addf(sb, ", \"role\": \"%s\", \"state\": \"%s\", \"last_event\": ", role_name(vm),
		     state_name(vm));
	json_str(sb, vm->last_token);
	hr_sbuf_add(sb, ", \"peer\": ", 10);
	json_str(sb, vm->peer);
	hr_sbuf_addf(sb, ", \"pid\": %d, \"uptime_s\": %llu, \"nr_epochs\": %llu", (int)vm->pid,
		     (unsigned long long)((now_ns - vm->started_ns) / 1000000000),
		     (unsigned long long)vm->nr_epochs);
	if (vm->side == HR_SIDE_PRIMARY && vm->kernel)
		hr_sbuf_addf(sb, ", \"epoch_us\": %llu, \"memory_bytes\": %llu, \"vcpus\": %u",
			     (unsigned long long)vm->epoch_us, (unsigned long long)vm->mem_bytes,
			     vm->nr_vcpus);
	if (vm->have_stats)
		hr_sbuf_addf(
		    sb,
		    ", \"last_epoch\": {\"epoch\": %llu, \"interval_us\": %llu, \"pause_us\": "
		    "%llu, \"dirty_pages\": %llu, \"bytes\": %llu, \"ack_us\": %llu}",
		    (unsigned long long)vm->last.epoch, (unsigned long long)vm->last.interval_us,
		    (unsigned long long)vm->last.pause_us, (unsigned long long)vm->last.dirty_pages,
		    (unsigned long long)vm->last.bytes, (unsigned long long)vm->last.ack_us);
	else
		hr_sbuf_add(sb, ", \"last_epoch\": null", 20);
	hr_sbuf_add(sb, ", \"error\": ", 11);
	if (vm->error[0])
		json_str(sb, vm->error);
	else
		hr_sbuf_add(sb, "null", 4);
	hr_sbuf_add(sb, "}", 1);
}

static void status_text(struct hr_sbuf *sb, const struct hr_dvm *vm, uint64_t now_ns)
{
	hr_sbuf_addf(
	    sb, "%s role=%s state=%s last_event=%s peer=%s pid=%d uptime_s=%llu nr_epochs=%llu\n",
	    vm->name, role_name(vm), state_name(vm), vm->last_token[0] ? vm->last_token : "-",
	    vm->peer[0] ? vm->peer : "-", (int)vm->pid,
	    (unsigned long long)((now_ns - vm->started_ns) / 1000000000),
	    (unsigned long long)vm->nr_epochs);
	if (vm->have_stats)
		hr_sbuf_addf(
		    sb,
		    "  last epoch=%llu interval_us=%llu pause_us=%llu dirty_pages=%llu "
		    "bytes=%llu ack_us=%llu\n",
		    (unsigned long long)vm->last.epoch, (unsigned long long)vm->last.interval_us,
		    (unsigned long long)vm->last.pause_us, (unsigned long long)vm->last.dirty_pages,
		    (unsigned long long)vm->last.bytes, (unsigned long long)vm->last.ack_us);
	if (vm->error[0])
		hr_sbuf_addf(sb, "  error: %s\n", vm->error);
}

void hr_vms_cmd_status(struct hr_ctl_conn *cc, const char *name, int json)
{
	struct hr_sbuf sb = {0};
	uint64_t now_ns = hr_now_ns();
	unsigned n = 0;

	if (name && !find_vm(name)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "no VM named %s here", name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (json)
		hr_sbuf_addf(&sb, "{\"daemon\": {\"pid\": %d, \"listen\": ", (int)getpid());
	if (json) {
		json_str(&sb, hr_dopts.listen);
		hr_sbuf_addf(&sb, ", \"workers\": %u}, \"vms\": [", hr_vms_nr_workers());
	}
	for (struct hr_dvm *vm = vms; vm; vm = vm->next) {
		if (!vm->name[0] || (name && strcmp(name, vm->name)))
			continue;
		if (json) {
			if (n)
				hr_sbuf_add(&sb, ", ", 2);
			status_json(&sb, vm, now_ns);
		} else {
			status_text(&sb, vm, now_ns);
		}
		n++;
	}
	if (json)
		hr_sbuf_add(&sb, "]}\n", 3);
	else if (!n)
		hr_sbuf_add(&sb, "no VMs\n", 7);
	if (sb.oom)
		hr_ctl_reply(cc, NULL, "out of memory");
	else
		hr_ctl_reply(cc, sb.p, NULL);
	hr_sbuf_free(&sb);
}
