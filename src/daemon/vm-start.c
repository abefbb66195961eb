/*
 * vm-start.c - `start`: protect a new VM from this host (the primary side).
 *
 * Connect to the peer daemon's replication port (non-blocking, under the
 * event loop), then fork the primary worker with the connected socket; the
 * worker does the TLS handshake and the preamble `hrd=1 vm=NAME`
 * (hr_peer_open), so that the link belongs to the worker and survives a
 * restart of this daemon.  The control request is answered once the worker
 * reports its first state, or with the reason nothing was started (a
 * refused handshake or preamble is the worker's exit line).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "daemon/vm-internal.h"
#include "disk/image.h"
#include "disk/spec.h"

#define CONNECT_TIMEOUT_S 5
/* the worker builds the VM and does the handshake within this, or start
 * answers that it is still coming up */
#define OUTCOME_TIMEOUT_S 30

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
	hr_dvm_reply(vm, NULL, msg);
	hr_dvm_free(vm);
}

static void outcome_timeout_cb(evutil_socket_t fd, short what, void *arg);

static void start_fork(struct hr_dvm *vm)
{
	struct hr_worker_args a = {0};
	int rc;

	event_free(vm->conn_ev);
	vm->conn_ev = NULL;
	fcntl(vm->peer_fd, F_SETFL, fcntl(vm->peer_fd, F_GETFL) & ~O_NONBLOCK);
	a.side = HR_SIDE_PRIMARY;
	a.silence_ms =
	    hr_dopts.failover_timeout_ms; /* heartbeats well within the backup's timeout */
	a.peer_fd = vm->peer_fd;
	snprintf(a.name, sizeof(a.name), "%s", vm->name);
	a.peer_desc = vm->peer;
	snprintf(a.reconnect_addr, sizeof(a.reconnect_addr), "%s", vm->peer);
	snprintf(a.peer_node, sizeof(a.peer_node), "%s", vm->peer_node);
	a.ops = vm->ops;
	a.vm.name = vm->name;
	a.vm.mem_bytes = vm->mem_bytes;
	a.vm.nr_vcpus = vm->nr_vcpus;
	a.vm.kernel_path = vm->kernel;
	a.vm.attach = vm->attach;
	a.vm.initrd_path = vm->initrd;
	a.vm.cmdline = vm->cmdline;
	a.vm.options = vm->net;
	a.vm.disks = vm->nr_disks ? vm->disk : NULL;
	a.vm.nr_disks = vm->nr_disks;
	a.epoch_us = vm->epoch_us;
	a.min_epoch_us = vm->min_epoch_us;
	a.console_spec = vm->console_spec;
	rc = hr_dvm_spawn_worker(vm, &a);
	close(vm->peer_fd);
	vm->peer_fd = -1;
	if (rc < 0) {
		start_fail(vm, "cannot fork a worker: %s", hr_strerror(rc));
		return;
	}
	vm->started_ns = hr_now_ns();
	log_info(
	    vm->name,
	    "worker %d builds the VM (primary, backup at %s, epoch %llu us, min epoch %llu us)",
	    (int)vm->pid, vm->peer, (unsigned long long)vm->epoch_us,
	    (unsigned long long)vm->min_epoch_us);
	/* the answer waits for the worker's first state (hr_dvm_start_state) */
	hr_dvm_arm_timer(vm, outcome_timeout_cb, OUTCOME_TIMEOUT_S);
}

static void reply_started(struct hr_dvm *vm, const char *note)
{
	char body[512];
	snprintf(body, sizeof(body),
		 "started %s: primary (worker %d), replicating to %s%s; "
		 "`hareplicate status %s` shows when it is protected\n",
		 vm->name, (int)vm->pid, vm->peer, note, vm->name);
	hr_dvm_reply(vm, body, NULL);
}

static void outcome_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	(void)fd;
	(void)what;
	reply_started(vm, " (still connecting)");
}

void hr_dvm_start_state(struct hr_dvm *vm, enum hr_role_state st)
{
	if (vm->wait != W_START || !vm->pid)
		return;
	/* ha/accept.c decides; failed: the worker exits, hr_dvm_start_ended answers */
	switch (hr_ha_start(st, vm->stop_requested, NULL)) {
	case HR_HA_START_UP:
		log_info(vm->name, "started: primary, worker %d, backup at %s", (int)vm->pid,
			 vm->peer);
		reply_started(vm, "");
		break;
	case HR_HA_START_ABORT:
		/* the first session failed (the backup refused the VM): nothing
		 * runs unprotected on a start; the exit line says why */
		vm->stop_requested = 1;
		kill(vm->pid, SIGTERM);
		break;
	default:
		break;
	}
}

void hr_dvm_start_ended(struct hr_dvm *vm)
{
	char msg[600];
	snprintf(msg, sizeof(msg), "%s did not come up: %s", vm->name,
		 vm->error[0] ? vm->error : "the worker ended");
	log_warnx(vm->name, "start failed: %s", vm->error[0] ? vm->error : "the worker ended");
	hr_dvm_reply(vm, NULL, msg);
	hr_dvm_free(vm);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
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
	/* the worker does TLS and the preamble (hr_peer_open): the link is
	 * its own, and outlives this daemon like the rest of the worker */
	start_fork(vm);
}

/* The request's disk0..diskN: each parses, is absolute, opens as a raw
 * image (so that a missing file or a bad size is refused now, by name),
 * and the backend has disks at all. */
static int disks_check(const struct hr_kvline *req, const struct hr_backend_ops *ops,
		       struct hr_disk_arg *d, unsigned *nr_r, char *err, size_t errlen)
{
	char key[16], why[300];
	unsigned n = 0;

	for (;; n++) {
		snprintf(key, sizeof(key), "disk%u", n);
		const char *v = hr_kv_get(req, key);
		if (!v)
			break;
		if (n == HR_MAX_DISKS) {
			snprintf(err, errlen, "more than %d disks", HR_MAX_DISKS);
			return -EINVAL;
		}
		if (hr_disk_arg_parse(v, &d[n], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "bad disk '%s': %s", v, why);
			return -EINVAL;
		}
		if (d[n].spec.path[0] != '/') {
			snprintf(err, errlen, "disk %s: give an absolute path", d[n].spec.path);
			return -EINVAL;
		}
		struct hr_image img;
		int rc = hr_image_open(&img, d[n].spec.path, d[n].spec.readonly, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s", why);
			return rc;
		}
		hr_image_close(&img);
	}
	if (n && !(ops->features & HR_BF_DISKS)) {
		snprintf(err, errlen, "the %s backend has no disks (--disk)", ops->name);
		return -EOPNOTSUPP;
	}
	*nr_r = n;
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
	uint64_t mem_bytes = 256ull << 20, epoch_us = 25000, min_epoch_us = 0, nr_vcpus = 1;
	char host[256], port[16], err[1536], spec[1024];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	struct hr_dvm *vm, *old;
	const struct hr_backend_ops *ops;
	struct timeval tv = {CONNECT_TIMEOUT_S, 0};
	char why[160];
	int fd = -1, gai;

	if (!name || !hr_vm_name_ok(name)) {
		hr_ctl_reply(cc, NULL,
			     "vm= missing or invalid (letters, digits, '_', '.', '-'; up to 64)");
		return;
	}
	if (!backend)
		backend = "kvm";
	ops = hr_backend_find(backend);
	if (!ops || hr_backend_why_missing(backend)) {
		const char *flag = hr_backend_why_missing(backend);
		if (flag)
			snprintf(err, sizeof(err), "backend '%s' is not available: %s", backend,
				 flag);
		else
			snprintf(err, sizeof(err), "unknown backend '%s'", backend);
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	char norm[sizeof(vm->peer)];
	if (!peer ||
	    hr_addr_norm(peer, norm, sizeof(norm), host, sizeof(host), port, sizeof(port)) < 0) {
		hr_ctl_reply(cc, NULL, "peer= missing or invalid (HOST[:PORT], [V6ADDR]:PORT)");
		return;
	}
	const char *attach = hr_kv_get(req, "attach");
	if (attach && (kernel || !(ops->features & HR_BF_ATTACH) || !*attach)) {
		snprintf(err, sizeof(err), "attach=%s: %s", attach,
			 kernel	   ? "give kernel= or attach=, not both"
			 : *attach ? "this backend cannot drive a VM it did not start"
				   : "name the VM to attach to");
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	if (!attach && !(kernel && *kernel && (ops->features & HR_BF_BUILTIN_GUEST)) &&
	    (!kernel || kernel[0] != '/' || access(kernel, R_OK) < 0)) {
		snprintf(err, sizeof(err), "kernel %s: %s", kernel ? kernel : "(none)",
			 !kernel	    ? "kernel= (or attach=) is required"
			 : kernel[0] != '/' ? "give an absolute path"
					    : strerror(errno));
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	const char *initrd = hr_kv_get(req, "initrd");
	if (initrd && (initrd[0] != '/' || access(initrd, R_OK) < 0)) {
		snprintf(err, sizeof(err), "initrd %s: %s", initrd,
			 initrd[0] != '/' ? "give an absolute path" : strerror(errno));
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
	if ((hr_kv_get(req, "min_epoch_us") &&
	     hr_kv_getu(req, "min_epoch_us", &min_epoch_us) < 0) ||
	    (min_epoch_us && (min_epoch_us < 100 || min_epoch_us > epoch_us))) {
		hr_ctl_reply(cc, NULL, "bad min_epoch_us (0 = off, or 100..epoch_us)");
		return;
	}
	if (hr_kv_get(req, "net") && hr_net_spec_check(hr_kv_get(req, "net"), why, sizeof(why))) {
		snprintf(err, sizeof(err), "bad net '%s': %s", hr_kv_get(req, "net"), why);
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	struct hr_disk_arg disk_arg[HR_MAX_DISKS];
	unsigned nr_disks = 0;
	if (disks_check(req, ops, disk_arg, &nr_disks, err, sizeof(err)) < 0) {
		hr_ctl_reply(cc, NULL, err);
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
	old = hr_dvm_find(name);
	if (old && hr_dvm_alive(old)) {
		snprintf(err, sizeof(err), "a VM named %s already exists here (%s, %s)", name,
			 hr_dvm_role_name(old), hr_dvm_state_name(old));
		hr_ctl_reply(cc, NULL, err);
		return;
	}
	if (old)
		hr_dvm_free(old);

	vm = hr_dvm_new(name, HR_SIDE_PRIMARY, HR_RS_CONNECTING);
	if (!vm) {
		hr_ctl_reply(cc, NULL, "out of memory");
		return;
	}
	snprintf(vm->peer, sizeof(vm->peer), "%s", norm);
	vm->ops = ops;
	vm->backend = strdup(backend);
	vm->kernel = dup_or_null(kernel);
	vm->attach = dup_or_null(attach);
	vm->initrd = dup_or_null(initrd);
	vm->cmdline = dup_or_null(hr_kv_get(req, "append"));
	vm->net = dup_or_null(hr_kv_get(req, "net"));
	memcpy(vm->disk_arg, disk_arg, sizeof(disk_arg));
	for (unsigned i = 0; i < nr_disks; i++) {
		/* the specs' strings point into the VM's own copy of the args */
		struct hr_disk_arg *d = &vm->disk_arg[i];
		vm->disk[i] = d->spec;
		vm->disk[i].path = d->buf + (disk_arg[i].spec.path - disk_arg[i].buf);
		if (d->spec.serial)
			vm->disk[i].serial = d->buf + (disk_arg[i].spec.serial - disk_arg[i].buf);
	}
	vm->nr_disks = nr_disks;
	vm->console_spec = strdup(console);
	vm->mem_bytes = mem_bytes;
	vm->epoch_us = epoch_us;
	vm->min_epoch_us = min_epoch_us;
	vm->nr_vcpus = (unsigned)nr_vcpus;
	hr_dvm_wait(vm, cc, W_START);

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
	vm->conn_ev = event_new(hr_dvm_base, fd, EV_WRITE, connect_cb, vm);
	if (!vm->conn_ev) {
		start_fail(vm, "out of memory");
		return;
	}
	event_add(vm->conn_ev, &tv);
}
