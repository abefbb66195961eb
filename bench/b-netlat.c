/*
 * b-netlat.c - what output commit costs a network service, with its peers
 * in the same run: tests/guests/netsvc on virtio-net, each configuration
 * on a TAP of its own in a private network namespace, clients on the host
 * side of the TAP through the host's TCP/UDP stack (as tests/netprobe):
 *
 *   (a) unprotected: the KVM backend alone, frames straight to the TAP
 *       (what `hareplicate run` does);
 *   (b) protected at fixed 25 ms epochs: a primary and a backup engine in
 *       this process over loopback TCP (tests/engine-pair.h), the backup's
 *       replica on a TAP of its own;
 *   (c) the same with output-triggered epochs (min_epoch_us);
 *   (d) the same netsvc.elf under QEMU (microvm, -accel kvm), unprotected.
 *
 * Per configuration: UDP request/response latency (the counter service),
 * TCP request/response latency (the running-sum service, one line in
 * flight), both p50/p99 over many samples, and TCP throughput (answered
 * lines per second with many lines pipelined on one connection).  Ratios
 * and added latency against (a).  Exits 77 without /dev/kvm, root or
 * /dev/net/tun.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "core/engine.h"
#include "engine-pair.h"

static const char *guest_path, *qemu_path;
static int quick;
static unsigned rr_count = 500;
static double pipe_secs = 4;
static unsigned min_epoch_us = 2000;

/* ---------- setup ---------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return st == 0 ? 0 : -1;
}

/* One TAP per configuration, each its own /24: 10.0.N.1 here, .2 the guest. */
enum { NET_PLAIN = 1, NET_PROT = 2, NET_QEMU = 3 };
static const char *const tap_of[] = {NULL, "hrnA", "hrnP", "hrnQ"};
#define TAP_REPLICA "hrnR" /* the backup's replica: never speaks here */

static int net_setup(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		perror("b-netlat: unshare(CLONE_NEWNET)");
		return -1;
	}
	if (sh("ip link set lo up") < 0)
		return -1;
	for (int i = NET_PLAIN; i <= NET_QEMU; i++)
		if (sh("ip tuntap add dev %s mode tap && ip addr add 10.0.%d.1/24 dev %s && "
		       "ip link set %s up",
		       tap_of[i], i, tap_of[i], tap_of[i]) < 0)
			return -1;
	return sh("ip tuntap add dev %s mode tap && ip link set %s up", TAP_REPLICA, TAP_REPLICA);
}

/* ---------- clients (the host's stack) ---------- */

struct result {
	const char *label;
	int ok;
	/* [0] back to back, [1] spaced by a random gap (uncorrelated with the epochs) */
	uint64_t udp_ns[2][4096], tcp_ns[2][4096];
	size_t nr_udp[2], nr_tcp[2];
	unsigned udp_lost;
	double lines_s;
	uint64_t epochs, by_output; /* protected: during the measurement */
	double secs;
};

static int addr_of(int net, int port, struct sockaddr_in *a)
{
	char ip[32];
	snprintf(ip, sizeof(ip), "10.0.%d.2", net);
	*a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

static int wait_in(int fd, uint64_t deadline_ns)
{
	uint64_t now = hr_now_ns();
	if (now >= deadline_ns)
		return 0;
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, (int)((deadline_ns - now) / 1000000) + 1);
}

/* Between two requests of the spaced kind: uniform in [0, GAP_MAX_US), a
 * whole fixed epoch, so that requests arrive at any phase of an epoch. */
#define GAP_MAX_US 25000
static unsigned gap_seed;

static void gap(int spaced)
{
	if (spaced)
		usleep((useconds_t)(rand_r(&gap_seed) % GAP_MAX_US));
}

/* count UDP requests, one in flight: "<counter> <payload>" answers */
static void udp_rr(int net, unsigned count, int k, struct result *r)
{
	struct sockaddr_in a;
	char msg[64], buf[2048];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || addr_of(net, 7001, &a) || connect(fd, (void *)&a, sizeof(a)) < 0)
		goto out;
	for (unsigned i = 1; i <= count && r->nr_udp[k] < 4096; i++) {
		gap(k);
		int n = snprintf(msg, sizeof(msg), "bn %u", i);
		uint64_t t0 = hr_now_ns(), deadline = t0 + 2000000000ull;
		if (send(fd, msg, (size_t)n, 0) != n)
			break;
		for (;;) {
			if (wait_in(fd, deadline) <= 0) {
				r->udp_lost++;
				break;
			}
			ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
			if (got <= 0)
				continue;
			buf[got] = 0;
			char *sp = strchr(buf, ' ');
			if (sp && !strcmp(sp + 1, msg)) { /* an older answer: keep waiting */
				r->udp_ns[k][r->nr_udp[k]++] = hr_now_ns() - t0;
				break;
			}
		}
	}
out:
	if (fd >= 0)
		close(fd);
}

static int tcp_open(int net)
{
	struct sockaddr_in a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || addr_of(net, 7000, &a))
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (void *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* count lines, one in flight, each answer checked ("seq=<i> sum=<sum>") */
static void tcp_rr(int net, unsigned count, int k, struct result *r)
{
	char buf[256], want[64], msg[32];
	int64_t sum = 0;
	int fd = tcp_open(net);
	if (fd < 0)
		return;
	for (unsigned i = 1; i <= count && r->nr_tcp[k] < 4096; i++) {
		gap(k);
		int v = (int)(i * 7919 % 2001) - 1000;
		int n = snprintf(msg, sizeof(msg), "%d\n", v);
		sum += v;
		snprintf(want, sizeof(want), "seq=%u sum=%" PRId64 "\n", i, sum);
		uint64_t t0 = hr_now_ns();
		if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) != n)
			break;
		size_t len = 0;
		while (!memchr(buf, '\n', len) && len < sizeof(buf) - 1) {
			ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (got <= 0)
				goto out;
			len += (size_t)got;
		}
		buf[len] = 0;
		if (strcmp(buf, want)) {
			fprintf(stderr, "b-netlat: tcp: got \"%s\", want \"%s\"\n", buf, want);
			goto out;
		}
		r->tcp_ns[k][r->nr_tcp[k]++] = hr_now_ns() - t0;
	}
out:
	close(fd);
}

/* Lines answered per second over secs, up to `window` lines in flight on
 * one connection (the guest's receive ring is 8 KiB: 4-byte lines fit). */
static double tcp_pipelined(int net, double secs, unsigned window)
{
	char in[65536], out[8192];
	uint64_t sent = 0, answered = 0;
	int fd = tcp_open(net);
	if (fd < 0)
		return 0;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uint64_t t0 = hr_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
	for (size_t i = 0; i + 4 <= sizeof(out); i += 4)
		memcpy(out + i, "+12\n", 4);
	while (hr_now_ns() < end) {
		struct pollfd p = {fd, POLLIN | (sent - answered < window ? POLLOUT : 0), 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (p.revents & POLLOUT) {
			size_t lines = window - (sent - answered);
			lines = lines * 4 > sizeof(out) ? sizeof(out) / 4 : lines;
			ssize_t n = send(fd, out, lines * 4, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN)
				break;
			sent += n > 0 ? (uint64_t)n / 4 : 0; /* whole lines: 4-byte writes */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, in, sizeof(in));
			if (n == 0 || (n < 0 && errno != EAGAIN))
				break;
			for (ssize_t k = 0; k < n; k++)
				answered += in[k] == '\n';
		}
	}
	double rate = answered / ((hr_now_ns() - t0) / 1e9);
	close(fd);
	return rate;
}

/* The guest answers UDP (ARP done, service up) within timeout_s. */
static int warm_up(int net, double timeout_s)
{
	uint64_t t0 = hr_now_ns();
	while ((hr_now_ns() - t0) / 1e9 < timeout_s) {
		struct result *w = calloc(1, sizeof(*w));
		udp_rr(net, 1, 0, w);
		int ok = w->nr_udp[0] == 1;
		free(w);
		if (ok)
			return 0;
	}
	return -1;
}

static volatile uint64_t cur_epochs, cur_by_output;

static void measure(int net, struct result *r)
{
	if (warm_up(net, 20) < 0) {
		fprintf(stderr, "b-netlat: %s: the guest does not answer\n", r->label);
		return;
	}
	struct result *w = calloc(1, sizeof(*w));
	udp_rr(net, 20, 0, w); /* warm */
	tcp_rr(net, 20, 0, w);
	free(w);
	gap_seed = 1; /* the same gaps for every configuration */
	uint64_t e0 = cur_epochs, o0 = cur_by_output, t0 = hr_now_ns();
	for (int k = 0; k < 2; k++) {
		udp_rr(net, rr_count, k, r);
		tcp_rr(net, rr_count, k, r);
	}
	r->lines_s = tcp_pipelined(net, pipe_secs, 1024);
	r->secs = (hr_now_ns() - t0) / 1e9;
	r->epochs = cur_epochs - e0;
	r->by_output = cur_by_output - o0;
	r->ok = r->nr_udp[0] && r->nr_tcp[0] && r->nr_udp[1] && r->nr_tcp[1];
}

/* ---------- (a) unprotected ---------- */

struct console {
	pthread_mutex_t lock;
	char buf[1 << 16];
	size_t len;
};

static int console_has(struct console *c, const char *s)
{
	pthread_mutex_lock(&c->lock);
	int has = strstr(c->buf, s) != NULL;
	pthread_mutex_unlock(&c->lock);
	return has;
}

static void console_add(struct console *c, const void *buf, size_t n)
{
	pthread_mutex_lock(&c->lock);
	if (c->len + n < sizeof(c->buf)) {
		memcpy(c->buf + c->len, buf, n);
		c->len += n;
		c->buf[c->len] = 0;
	}
	pthread_mutex_unlock(&c->lock);
}

static struct hr_vm *plain_vm;
static const struct hr_backend_ops *kvm;

static int plain_emit(void *o, unsigned chan, const void *buf, size_t n)
{
	struct hr_vm *vm = __atomic_load_n(&plain_vm, __ATOMIC_ACQUIRE);
	if (chan == 0)
		console_add(o, buf, n);
	else if (vm)
		kvm->output_deliver(vm, chan, buf, n);
	return 0;
}

static int wait_ready(struct console *c, double timeout_s)
{
	uint64_t t0 = hr_now_ns();
	while (!console_has(c, "netsvc: ready") && (hr_now_ns() - t0) / 1e9 < timeout_s)
		usleep(5000);
	return console_has(c, "netsvc: ready") ? 0 : -1;
}

static void run_plain(struct result *r)
{
	static struct console con = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char opts[64], cmd[64];
	snprintf(opts, sizeof(opts), "tap=%s", tap_of[NET_PLAIN]);
	snprintf(cmd, sizeof(cmd), "ip=10.0.%d.2/24", NET_PLAIN);
	struct hr_vm_config cfg = {.name = "netlat-plain",
				   .mem_bytes = 64 << 20,
				   .nr_vcpus = 1,
				   .kernel_path = guest_path,
				   .cmdline = cmd,
				   .options = opts,
				   .emit = plain_emit,
				   .emit_opaque = &con};
	struct hr_vm *vm = NULL;
	if (kvm->open(&vm, &cfg) < 0) {
		fprintf(stderr, "b-netlat: unprotected VM: %s\n",
			vm && kvm->last_error ? kvm->last_error(vm) : "open failed");
		kvm->close(vm);
		return;
	}
	__atomic_store_n(&plain_vm, vm, __ATOMIC_RELEASE);
	kvm->resume(vm);
	if (wait_ready(&con, 60) == 0)
		measure(NET_PLAIN, r);
	else
		fprintf(stderr, "b-netlat: unprotected netsvc never ready:\n%s\n", con.buf);
	kvm->pause(vm);
	__atomic_store_n(&plain_vm, NULL, __ATOMIC_RELEASE);
	kvm->close(vm);
}

/* ---------- (b), (c) protected ---------- */

static void p_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	__atomic_add_fetch(&cur_epochs, 1, __ATOMIC_RELAXED);
	if (st->trigger == HR_EPOCH_END_OUTPUT)
		__atomic_add_fetch(&cur_by_output, 1, __ATOMIC_RELAXED);
}

static void run_protected(struct result *r, uint64_t epoch_us, uint64_t min_us)
{
	struct ep_pair ep = {0};
	char opts[64], cmd[64];
	snprintf(opts, sizeof(opts), "tap=%s", tap_of[NET_PROT]);
	snprintf(cmd, sizeof(cmd), "ip=10.0.%d.2/24", NET_PROT);
	struct hr_engine_config pc = {
	    .name = "netlat",
	    .ops = kvm,
	    .epoch_us = epoch_us,
	    .min_epoch_us = min_us,
	    .silence_ms = 2000,
	    .vm = {.mem_bytes = 64 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = guest_path,
		   .cmdline = cmd,
		   .options = opts},
	};
	struct hr_engine_config bc = {
	    .name = "netlat-b", .ops = kvm, .silence_ms = 2000, .replica_tap = TAP_REPLICA};
	ep.on_p_epoch = p_epoch;
	if (ep_start(&ep, pc, bc, EP_TCP) < 0) {
		fprintf(stderr, "b-netlat: %s: engines not started\n", r->label);
		return;
	}
	uint64_t t0 = hr_now_ns();
	int ready = 0;
	while (!ready && (hr_now_ns() - t0) / 1e9 < 60 && ep.p_state != HR_RS_FAILED) {
		pthread_mutex_lock(&ep.lock);
		ready = ep.out[0].buf && strstr(ep.out[0].buf, "netsvc: ready");
		pthread_mutex_unlock(&ep.lock);
		usleep(5000);
	}
	if (ready && ep.p_state == HR_RS_PROTECTED)
		measure(NET_PROT, r);
	else
		fprintf(stderr, "b-netlat: %s: netsvc never ready (primary %s)\n", r->label,
			hr_role_state_name(ep.p_state));
	ep_finish(&ep);
}

/* ---------- (d) QEMU ---------- */

static void run_qemu(struct result *r)
{
	char con_path[] = "/tmp/b-netlat-qemu.XXXXXX", serial[64], netdev[128], cmd[64];
	int cfd = mkstemp(con_path);
	if (cfd < 0)
		return;
	close(cfd);
	snprintf(serial, sizeof(serial), "file:%s", con_path);
	snprintf(netdev, sizeof(netdev), "tap,id=n0,ifname=%s,script=no,downscript=no",
		 tap_of[NET_QEMU]);
	snprintf(cmd, sizeof(cmd), "ip=10.0.%d.2/24", NET_QEMU);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(qemu_path, qemu_path, "-M", "microvm,acpi=off", "-accel", "kvm", "-m", "64",
		      "-smp", "1", "-display", "none", "-nodefaults", "-no-reboot", "-serial",
		      serial, "-global", "virtio-mmio.force-legacy=false", "-netdev", netdev,
		      "-device", "virtio-net-device,netdev=n0,mac=52:54:00:4e:53:01", "-kernel",
		      guest_path, "-append", cmd, (char *)NULL);
		_exit(127);
	}
	uint64_t t0 = hr_now_ns();
	int ready = 0;
	while (pid > 0 && !ready && (hr_now_ns() - t0) / 1e9 < 60) {
		char buf[8192] = "";
		FILE *f = fopen(con_path, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = 0;
			fclose(f);
		}
		ready = strstr(buf, "netsvc: ready") != NULL;
		if (!ready && waitpid(pid, NULL, WNOHANG) == pid) {
			pid = -1;
			break;
		}
		usleep(10000);
	}
	if (ready)
		measure(NET_QEMU, r);
	else
		fprintf(stderr, "b-netlat: QEMU: netsvc never ready (console %s)\n", con_path);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (ready)
		unlink(con_path);
}

/* ---------- report ---------- */

static double pct_us(uint64_t *v, size_t n, double p)
{
	return n ? hr_percentile_u64(v, n, p) / 1e3 : 0;
}

/* One row: a figure per configuration (nan: not measured). */
static void row(const char *what, const double *v, int nr, const char *fmt)
{
	printf("%-40s", what);
	for (int i = 0; i < nr; i++) {
		if (v[i] != v[i])
			printf(" %12s", "-");
		else
			printf(fmt, v[i]);
	}
	printf("\n");
}

static void report(struct result *res, int nr)
{
	static const char *const kind[2] = {"back to back", "spaced"};
	double v[4];
	const double nan = 0.0 / 0.0;

	printf("\n%-40s", "");
	for (int i = 0; i < nr; i++)
		printf(" %12.12s", res[i].label);
	printf("\n");
	for (int k = 0; k < 2; k++) {
		static const char *const proto[2] = {"UDP", "TCP"};
		for (int pr = 0; pr < 2; pr++) {
			for (int pc = 0; pc < 2; pc++) {
				char what[64];
				snprintf(what, sizeof(what), "%s RR %s p%d (us)", proto[pr],
					 kind[k], pc ? 99 : 50);
				for (int i = 0; i < nr; i++) {
					struct result *r = &res[i];
					v[i] =
					    !r->ok ? nan
					    : pr ? pct_us(r->tcp_ns[k], r->nr_tcp[k], pc ? 99 : 50)
						 : pct_us(r->udp_ns[k], r->nr_udp[k], pc ? 99 : 50);
				}
				row(what, v, nr, " %12.0f");
			}
		}
	}
	for (int i = 0; i < nr; i++)
		v[i] = res[i].ok ? res[i].lines_s : nan;
	row("TCP pipelined (lines answered /s)", v, nr, " %12.0f");
	for (int i = 0; i < nr; i++)
		v[i] = res[i].ok && res[i].epochs ? res[i].epochs / res[i].secs : nan;
	row("checkpoints /s while measured", v, nr, " %12.0f");
	for (int i = 0; i < nr; i++)
		v[i] = res[i].ok && res[i].epochs ? 100.0 * res[i].by_output / res[i].epochs : nan;
	row("  of which ended by a frame (%)", v, nr, " %12.0f");

	struct result *a = &res[0];
	if (!a->ok)
		return;
	printf("\nagainst (a), p50 of each minus (a)'s, and ratios:\n");
	for (int k = 0; k < 2; k++)
		for (int pr = 0; pr < 2; pr++) {
			char what[64];
			snprintf(what, sizeof(what), "%s RR %s: added p50 (ms)", pr ? "TCP" : "UDP",
				 kind[k]);
			double base = pr ? pct_us(a->tcp_ns[k], a->nr_tcp[k], 50)
					 : pct_us(a->udp_ns[k], a->nr_udp[k], 50);
			for (int i = 0; i < nr; i++) {
				struct result *r = &res[i];
				double x = pr ? pct_us(r->tcp_ns[k], r->nr_tcp[k], 50)
					      : pct_us(r->udp_ns[k], r->nr_udp[k], 50);
				v[i] = r->ok ? (x - base) / 1e3 : nan;
			}
			row(what, v, nr, " %12.2f");
			snprintf(what, sizeof(what), "%s RR %s: p50 ratio", pr ? "TCP" : "UDP",
				 kind[k]);
			for (int i = 0; i < nr; i++) {
				struct result *r = &res[i];
				double x = pr ? pct_us(r->tcp_ns[k], r->nr_tcp[k], 50)
					      : pct_us(r->udp_ns[k], r->nr_udp[k], 50);
				v[i] = r->ok && base > 0 ? x / base : nan;
			}
			row(what, v, nr, " %12.1f");
		}
	for (int i = 0; i < nr; i++)
		v[i] = res[i].ok && a->lines_s > 0 ? res[i].lines_s / a->lines_s : nan;
	row("TCP pipelined: ratio", v, nr, " %12.3f");
	for (int i = 0; i < nr; i++)
		if (res[i].udp_lost)
			printf("  %s: %u UDP requests unanswered within 2 s (not in the figures)\n",
			       res[i].label, res[i].udp_lost);
}

int main(int argc, char **argv)
{
	static char path[4096];
	int no_qemu = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--no-qemu"))
			no_qemu = 1;
		else if (!strcmp(argv[i], "--guest") && i + 1 < argc)
			guest_path = argv[++i];
		else if (!strcmp(argv[i], "--min-epoch-us") && i + 1 < argc)
			min_epoch_us = (unsigned)strtoul(argv[++i], NULL, 10);
	}
	if (!guest_path) {
		const char *b = getenv("top_builddir");
		snprintf(path, sizeof(path), "%s/tests/guests/netsvc.elf", b ? b : ".");
		guest_path = path;
	}
	if (access("/dev/kvm", R_OK | W_OK) || geteuid() != 0 ||
	    access("/dev/net/tun", R_OK | W_OK) || access(guest_path, R_OK)) {
		fprintf(stderr, "b-netlat: needs /dev/kvm, root, /dev/net/tun and %s\n",
			guest_path);
		return 77;
	}
	if (quick) {
		rr_count = 150;
		pipe_secs = 2;
	}
	qemu_path = getenv("QEMU");
	if (!qemu_path || !*qemu_path || access(qemu_path, X_OK))
		qemu_path = access("/usr/bin/qemu-system-x86_64", X_OK)
				? NULL
				: "/usr/bin/qemu-system-x86_64";
	if (no_qemu)
		qemu_path = NULL;
	hr_log_init("b-netlat", 1, 0);
	kvm = hr_backend_find("kvm");
	if (!kvm || net_setup() < 0) {
		fprintf(stderr, "b-netlat: no KVM backend or no network namespace with TAPs\n");
		return 77;
	}
	char lc[64];
	snprintf(lc, sizeof(lc), "(c) min%.1fms", min_epoch_us / 1e3);
	static struct result res[4];
	res[0].label = "(a) unprot";
	res[1].label = "(b) 25ms";
	res[2].label = lc;
	res[3].label = "(d) QEMU";
	printf("b-netlat: netsvc (64 MiB, 1 vCPU) on a TAP, clients on the host side, %ld CPUs\n"
	       "  (a) unprotected, kvm backend alone   (b) protected, 25 ms epochs\n"
	       "  (c) protected, 25 ms epochs, min_epoch %u us (output-triggered)\n"
	       "  (d) QEMU microvm -accel kvm, unprotected;  engines over loopback TCP\n"
	       "per configuration: %u UDP and %u TCP requests one at a time, back to back and "
	       "then\nspaced by a random 0..%d ms gap; %.0f s of pipelined TCP (1024 lines in "
	       "flight)\n",
	       sysconf(_SC_NPROCESSORS_ONLN), min_epoch_us, rr_count, rr_count, GAP_MAX_US / 1000,
	       pipe_secs);
	uint64_t t0 = hr_now_ns();
	run_plain(&res[0]);
	run_protected(&res[1], 25000, 0);
	run_protected(&res[2], 25000, min_epoch_us);
	if (qemu_path)
		run_qemu(&res[3]);
	report(res, qemu_path ? 4 : 3);
	printf("total %.0f s\n", (hr_now_ns() - t0) / 1e9);
	return res[0].ok && res[1].ok && res[2].ok ? 0 : 1;
}
