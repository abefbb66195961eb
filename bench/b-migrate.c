/*
 * b-migrate.c - live migration, ours against QEMU's, in the same run
 * (issue 10).  The same guest (tests/guests/memwalk.elf, 1 GiB, 1 vCPU)
 * migrated by both VMMs in three scenarios:
 *
 *  1. loopback, memwalk rewriting a 768 MiB working set flat out
 *     (rate=0 wss=768M pattern=random);
 *  2. the same over a 1 Gbit/s link: a veth pair between two network
 *     namespaces, `tc ... tbf rate 1gbit burst 256k latency 50ms` on both
 *     ends (if the namespaces cannot be made: our live phase paced with
 *     cfg.live.max_bytes_per_s and QEMU's max-bandwidth at 125 MB/s);
 *  3. a quiet guest (rate=1000 wss=768M), loopback.
 *
 * Ours: an in-process migration between two engines, as
 * tests/t-migrate-engine.c does: a source engine runs memwalk on the kvm
 * backend (a primary without a backup), hr_engine_migrate, its
 * migrate_connect hands over a TCP connection to a destination engine
 * (hr_engine_run_backup, which the HELLO makes a MIGRATION target).  The
 * figures are the engine's struct hr_migration_report.
 *
 * QEMU: qemu-system-x86_64 -accel kvm with the same multiboot image and
 * command line, a second one with -incoming tcp:..., QMP `migrate`, then
 * `query-migrate` every 100 ms until it completed (total-time, downtime,
 * ram.transferred as QEMU reports them) or a bound passed (then
 * migrate_cancel: "did not finish").
 *
 *   b-migrate [--quick] [--reps N] [--bound S] [--warm S] [--no-qemu] [--no-netns]
 *             [--only 1|2|3]
 * Environment: top_builddir (tests/guests/memwalk.elf), QEMU.
 * Exit 77 without /dev/kvm or root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "core/engine.h"
#include "guest-harness.h"
#include "b-migrate.h"

static int quick, use_qemu = 1, use_netns = 1, reps;
double bound_s, warm_s = 2;
const char *qemu_bin, *kernel;

/* ---------- network namespaces: the 1 Gbit/s link ---------- */

char ns_a[32], ns_b[32];
int nsfd_a = -1, nsfd_b = -1, netns_up;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void netns_down(void)
{
	if (!netns_up)
		return;
	if (nsfd_a >= 0)
		close(nsfd_a);
	if (nsfd_b >= 0)
		close(nsfd_b);
	nsfd_a = nsfd_b = -1;
	sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns_a, ns_b);
	netns_up = 0;
}

/* Two namespaces, a veth pair between them, tbf at 1 Gbit/s on both ends. */
static int netns_setup(void)
{
	char p[64];
	int pid = (int)getpid();
	snprintf(ns_a, sizeof(ns_a), "hrbm-a-%d", pid);
	snprintf(ns_b, sizeof(ns_b), "hrbm-b-%d", pid);
	netns_up = 1;
	if (sh("ip netns add %s && ip netns add %s && "
	       "ip link add bmA%d netns %s type veth peer name bmB%d netns %s && "
	       "ip -n %s addr add " NS_IP_A "/24 dev bmA%d && "
	       "ip -n %s addr add " NS_IP_B "/24 dev bmB%d && "
	       "ip -n %s link set bmA%d up && ip -n %s link set bmB%d up && "
	       "ip -n %s link set lo up && ip -n %s link set lo up && "
	       "ip netns exec %s tc qdisc add dev bmA%d root tbf rate 1gbit burst 256k latency "
	       "50ms && "
	       "ip netns exec %s tc qdisc add dev bmB%d root tbf rate 1gbit burst 256k latency "
	       "50ms",
	       ns_a, ns_b, pid, ns_a, pid, ns_b, ns_a, pid, ns_b, pid, ns_a, pid, ns_b, pid, ns_a,
	       ns_b, ns_a, pid, ns_b, pid)) {
		netns_down();
		return -1;
	}
	snprintf(p, sizeof(p), "/var/run/netns/%s", ns_a);
	nsfd_a = open(p, O_RDONLY | O_CLOEXEC);
	snprintf(p, sizeof(p), "/var/run/netns/%s", ns_b);
	nsfd_b = open(p, O_RDONLY | O_CLOEXEC);
	if (nsfd_a < 0 || nsfd_b < 0) {
		netns_down();
		return -1;
	}
	return 0;
}

/* A TCP socket in the namespace nsfd (-1: this one).  setns changes the
 * calling thread's namespace only; we go back at once. */
static int tcp_socket_in(int nsfd)
{
	if (nsfd < 0)
		return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), s = -1;
	if (self < 0)
		return -1;
	if (setns(nsfd, CLONE_NEWNET) == 0) {
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (setns(self, CLONE_NEWNET)) {
			fprintf(stderr, "b-migrate: cannot return to our network namespace\n");
			abort();
		}
	}
	close(self);
	return s;
}

/* A connected pair: fds[0] in namespace A (source), fds[1] in B (destination). */
static int tcp_pair(int capped, int fds[2])
{
	const char *ip = capped ? NS_IP_B : "127.0.0.1";
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int l = tcp_socket_in(capped ? nsfd_b : -1), one = 1;
	inet_pton(AF_INET, ip, &a.sin_addr);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al))
		return -1;
	fds[0] = tcp_socket_in(capped ? nsfd_a : -1);
	if (fds[0] < 0 || connect(fds[0], (void *)&a, sizeof(a)))
		return -1;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fds[1] < 0 ? -1 : 0;
}

/* A port free now on ip in the namespace (for QEMU's -incoming). */
int free_port(int nsfd, const char *ip)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int s = tcp_socket_in(nsfd), port = -1;
	inet_pton(AF_INET, ip, &a.sin_addr);
	if (s >= 0 && !bind(s, (void *)&a, sizeof(a)) && !getsockname(s, (void *)&a, &al))
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

/* ---------- ours ---------- */

struct ours {
	pthread_mutex_t lock;
	char line[256];
	size_t llen;
	uint64_t have; /* console bytes seen (offset dedup) */
	volatile uint64_t lines;
	struct hr_engine *src, *dst, *bak;
	pthread_t ts, td, tb;
	int rc_s, rc_d, rc_b, fds[2], bfds[2], dst_started;
	volatile uint64_t acked; /* epochs acknowledged (the first backup's, then ours) */
	volatile int reported, result;
	struct hr_migration_report rep;
	uint64_t rounds, nr_epochs, e0_pages, rate_sum;
	volatile int migrating;
	double e0_pause_ms;
};

static void o_sink(void *o, unsigned chan, uint64_t off, const void *buf, size_t n)
{
	struct ours *m = o;
	if (chan != 0)
		return;
	pthread_mutex_lock(&m->lock);
	if (off + n > m->have) {
		size_t skip = off < m->have ? (size_t)(m->have - off) : 0;
		const char *s = (const char *)buf + skip;
		for (size_t i = 0; i < n - skip; i++) {
			if (s[i] == '\n') {
				m->line[m->llen] = 0;
				if (strstr(m->line, "memwalk: seq="))
					m->lines++;
				m->llen = 0;
			} else if (m->llen < sizeof(m->line) - 1) {
				m->line[m->llen++] = s[i];
			}
		}
		m->have = off + n;
	}
	pthread_mutex_unlock(&m->lock);
}

static void o_round(void *o, const struct hr_live_round *r)
{
	struct ours *m = o;
	if (m->migrating) {
		m->rounds = r->round + 1;
		m->rate_sum += r->dirty_rate;
	}
	if (getenv("B_MIGRATE_ROUNDS"))
		fprintf(stderr,
			"b-migrate: round %llu: %llu never-sent + %llu dirty pages, %llu MiB, "
			"dirty rate %llu pages/s, %llu never-sent and %llu dirty left, %llu ms "
			"(console lines %llu)\n",
			(unsigned long long)r->round, (unsigned long long)r->never_sent_pages,
			(unsigned long long)r->dirty_pages, (unsigned long long)(r->bytes >> 20),
			(unsigned long long)r->dirty_rate, (unsigned long long)r->never_sent_left,
			(unsigned long long)r->dirty_left, (unsigned long long)(r->round_us / 1000),
			(unsigned long long)m->lines);
}

static void o_epoch(void *o, const struct hr_epoch_stats *st)
{
	struct ours *m = o;
	__atomic_add_fetch(&m->acked, 1, __ATOMIC_SEQ_CST);
	if (!m->migrating)
		return;
	if (!m->nr_epochs++) {
		m->e0_pause_ms = st->pause_us / 1e3;
		m->e0_pages = st->dirty_pages;
	}
}

static void *o_run_dst(void *a)
{
	struct ours *m = a;
	m->rc_d = hr_engine_run_backup(m->dst, m->fds[1]);
	return NULL;
}

static void *o_run_src(void *a)
{
	struct ours *m = a;
	m->rc_s = hr_engine_run_primary(m->src, m->bfds[0]);
	return NULL;
}

static void *o_run_bak(void *a)
{
	struct ours *m = a;
	m->rc_b = hr_engine_run_backup(m->bak, m->bfds[1]);
	return NULL;
}

static int o_connect(void *opaque, int *fd_r)
{
	struct ours *m = opaque;
	if (m->fds[0] < 0)
		return -ECONNREFUSED;
	m->dst_started = pthread_create(&m->td, NULL, o_run_dst, m) == 0;
	*fd_r = m->fds[0];
	m->fds[0] = -1;
	return 0;
}

static void o_migration(void *opaque, int rc, int in_doubt, const struct hr_migration_report *r)
{
	struct ours *m = opaque;
	(void)in_doubt;
	if (r)
		m->rep = *r;
	m->result = rc;
	__atomic_store_n(&m->reported, 1, __ATOMIC_SEQ_CST);
}

static int wait_flag(volatile int *f, double s)
{
	uint64_t t0 = hr_now_ns();
	while (!__atomic_load_n(f, __ATOMIC_SEQ_CST) && hr_now_ns() - t0 < s * 1e9)
		usleep(5000);
	return *f;
}

static void ours_run(const char *cmdline, int capped, int paced, struct result *res)
{
	struct ours m = {
	    .lock = PTHREAD_MUTEX_INITIALIZER, .fds = {-1, -1}, .bfds = {-1, -1}, .result = 1};
	struct hr_engine_config sc = {
	    .name = "b-mig-src",
	    .ops = hr_backend_find("kvm"),
	    .epoch_us = 25000,
	    .silence_ms = 5000,
	    .unprotected_release = 1, /* no backup: the console must come out */
	    .vm = {.mem_bytes = MEM_BYTES,
		   .nr_vcpus = 1,
		   .kernel_path = kernel,
		   .cmdline = cmdline},
	    .live = {.max_bytes_per_s = paced ? LINK_BPS : 0},
	    .output_sink = o_sink,
	    .output_opaque = &m,
	    .on_round = o_round,
	    .round_opaque = &m,
	    .on_epoch = o_epoch,
	    .epoch_opaque = &m,
	    .migrate_connect = o_connect,
	    .on_migration = o_migration,
	    .migrate_opaque = &m,
	};
	struct hr_engine_config dc = {.name = "b-mig-dst", .silence_ms = 5000, .auto_promote = 1};
	struct hr_engine_config bc = {.name = "b-mig-boot", .silence_ms = 5000};

	memset(res, 0, sizeof(*res));
	res->done = -1;
	/*
	 * A primary only starts its guest in a session with a backup: a first
	 * backup (socketpair) syncs the cold guest, then dies once memwalk
	 * walks, and the source runs on alone, as b-live does.  Its dirty
	 * logging stays on from then on.
	 */
	if (hr_engine_new(&m.src, &sc) < 0 || hr_engine_new(&m.dst, &dc) < 0 ||
	    hr_engine_new(&m.bak, &bc) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, m.bfds)) {
		snprintf(res->why, sizeof(res->why), "hr_engine_new failed");
		goto out;
	}
	pthread_create(&m.tb, NULL, o_run_bak, &m);
	pthread_create(&m.ts, NULL, o_run_src, &m);
	uint64_t t0 = hr_now_ns();
	while ((m.lines < 1 || m.acked < 1) && hr_now_ns() - t0 < 120e9)
		usleep(10000);
	hr_engine_abort(m.bak); /* the backup dies; the source runs on alone */
	pthread_join(m.tb, NULL);
	shutdown(m.bfds[1], SHUT_RDWR);
	close(m.bfds[1]);
	hr_engine_free(m.bak);
	m.bak = NULL;
	if (m.lines < 1) {
		snprintf(res->why, sizeof(res->why), "the guest did not start walking (%s)",
			 hr_engine_error(m.src));
		hr_engine_stop(m.src);
		pthread_join(m.ts, NULL);
		goto out;
	}
	usleep((useconds_t)(warm_s * 1e6));
	if (tcp_pair(capped, m.fds) < 0) {
		snprintf(res->why, sizeof(res->why), "no TCP connection: %s", strerror(errno));
		hr_engine_stop(m.src);
		pthread_join(m.ts, NULL);
		goto out;
	}
	m.nr_epochs = 0;
	m.rounds = 0;
	m.migrating = 1;
	hr_engine_migrate(m.src, 0);
	/* ours gets a generous bound: it must finish, a hang is a failure */
	if (!wait_flag(&m.reported, bound_s * 4)) {
		hr_engine_migrate_cancel(m.src);
		wait_flag(&m.reported, 30);
		snprintf(res->why, sizeof(res->why), "not finished after %.0f s", bound_s * 4);
		res->done = 0;
	} else if (m.result != 0) {
		snprintf(res->why, sizeof(res->why), "migration failed: %s", hr_strerror(m.result));
	} else {
		res->done = 1;
	}
	pthread_join(m.ts, NULL);
	if (m.dst_started) {
		if (res->done == 1) { /* the destination runs the VM */
			uint64_t t1 = hr_now_ns();
			while (hr_engine_state(m.dst) != HR_RS_UNPROTECTED &&
			       hr_now_ns() - t1 < 5e9)
				usleep(5000);
			if (hr_engine_state(m.dst) != HR_RS_UNPROTECTED) {
				res->done = -1;
				snprintf(res->why, sizeof(res->why),
					 "the destination does not run the VM (%s)",
					 hr_role_state_name(hr_engine_state(m.dst)));
			}
		}
		hr_engine_stop(m.dst);
		pthread_join(m.td, NULL);
	}
	res->total_ms = (double)m.rep.total_ms;
	res->down_ms = m.rep.downtime_us / 1e3;
	res->live_bytes = m.rep.live_bytes;
	res->epoch_bytes = m.rep.epoch_bytes;
	res->bytes = (double)(m.rep.live_bytes + m.rep.epoch_bytes);
	res->final_pages = m.rep.final_pages;
	res->nr_epochs = m.rep.nr_epochs;
	res->rounds = m.rounds;
	res->dirty_rate = m.rounds ? (double)m.rate_sum / m.rounds : 0;
	res->e0_pause_ms = m.e0_pause_ms;
	res->e0_pages = m.e0_pages;
out:
	if (m.fds[0] >= 0)
		close(m.fds[0]);
	if (m.src)
		hr_engine_free(m.src);
	if (m.dst)
		hr_engine_free(m.dst);
}

/* ---------- the table ---------- */

static double median(double *v, int n)
{
	/* small n: insertion sort */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

struct row {
	const char *who;
	int n, nr_done;
	double total, down, bytes; /* medians over the completed runs */
	double e0_pause;	   /* ours: epoch 0's pause (median) */
	double nf_bytes;	   /* median bytes of the runs that did not finish */
	char why[160];
};

static void summarize(struct row *r, const char *who, struct result *res, int n)
{
	double t[16], d[16], b[16], nb[16], e[16];
	int k = 0, nk = 0;
	memset(r, 0, sizeof(*r));
	r->who = who;
	r->n = n;
	for (int i = 0; i < n; i++) {
		if (res[i].done == 1) {
			t[k] = res[i].total_ms;
			d[k] = res[i].down_ms;
			b[k] = res[i].bytes;
			e[k] = res[i].e0_pause_ms;
			k++;
		} else {
			if (res[i].done == 0)
				nb[nk++] = res[i].bytes;
			snprintf(r->why, sizeof(r->why), "%s", res[i].why);
		}
	}
	r->nr_done = k;
	r->total = median(t, k);
	r->down = median(d, k);
	r->bytes = median(b, k);
	r->nf_bytes = median(nb, nk);
	r->e0_pause = median(e, k);
}

static void print_goal(const struct row *a, const struct row *b)
{
	if (!a->nr_done || !b->nr_done) {
		printf("  goal vs %s: %s\n", b->who,
		       a->nr_done ? "QEMU did not finish, ours did" : "ours did not finish");
		return;
	}
	printf("  goal vs %s (total <= QEMU's, downtime <= 0.5 x QEMU's): total %s, downtime "
	       "%s\n",
	       b->who, a->total <= b->total ? "met" : "NOT met",
	       a->down <= 0.5 * b->down ? "met" : "NOT met");
}

static void print_row(const struct row *r)
{
	if (r->nr_done)
		printf("  %-34s %9.0f %11.1f %9.0f %6.2f   %d/%d\n", r->who, r->total, r->down,
		       r->bytes / (1 << 20), r->bytes / MEM_BYTES, r->nr_done, r->n);
	else if (r->nf_bytes > 0)
		printf("  %-34s %9s %11s %9.0f %6.2f   0/%d  (%s)\n", r->who, "n/f", "-",
		       r->nf_bytes / (1 << 20), r->nf_bytes / MEM_BYTES, r->n, r->why);
	else
		printf("  %-34s %9s %11s %9s %6s   0/%d  (%s)\n", r->who, "-", "-", "-", "-", r->n,
		       r->why);
}

static void print_ratio(const struct row *a, const struct row *b)
{
	char name[64];
	snprintf(name, sizeof(name), "ratio ours / %s", b->who);
	if (!a->nr_done || !b->nr_done) {
		printf("  %-34s %9s %11s %9s   (%s did not finish)\n", name, "-", "-", "-",
		       a->nr_done ? b->who : a->who);
		return;
	}
	printf("  %-34s %9.2f %11.2f %9.2f\n", name, a->total / b->total,
	       b->down > 0 ? a->down / b->down : 0, a->bytes / b->bytes);
}

struct scenario {
	int id;
	const char *title, *cmdline;
	int capped;
	int qemu_unlimited; /* also QEMU with max-bandwidth raised */
};

/* One QEMU run's line. */
static void print_qemu(int id, int rep, const char *label, const struct result *r)
{
	printf("    [%d.%d] QEMU %s: %s total %.0f ms, downtime %.1f ms, %.0f MiB (dirty syncs "
	       "%.0f, normal %.0f, zero %.0f pages; dirty-pages-rate %.0f) %s\n",
	       id, rep, label,
	       r->done == 1 ? "done"
	       : r->done    ? "FAILED"
			    : "NOT FINISHED",
	       r->total_ms, r->down_ms, r->bytes / (1 << 20), r->syncs, r->normal, r->duplicate,
	       r->dirty_rate, r->why);
}
int main(int argc, char **argv)
{
	int only = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--no-qemu"))
			use_qemu = 0;
		else if (!strcmp(argv[i], "--no-netns"))
			use_netns = 0;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bound") && i + 1 < argc)
			bound_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--warm") && i + 1 < argc)
			warm_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = atoi(argv[++i]);
			if (only < 1 || only > 3) { /* another bench's section (make bench) */
				fprintf(stderr,
					"b-migrate: --only %s is not mine (1|2|3): skipped\n",
					argv[i]);
				return 77;
			}
		} else {
			fprintf(stderr, "usage: b-migrate [--quick] [--reps N] [--bound S] "
					"[--warm S] [--no-qemu] [--no-netns] [--only 1|2|3]\n");
			return 2;
		}
	}
	if (reps <= 0)
		reps = quick ? 1 : 3;
	if (reps > 16)
		reps = 16;
	if (bound_s <= 0)
		bound_s = quick ? 30 : 60;
	if (access("/dev/kvm", R_OK | W_OK) || geteuid() != 0) {
		fprintf(stderr, "b-migrate: needs /dev/kvm and root (network namespaces)\n");
		return 77;
	}
	kernel = gh_guest("memwalk.elf");
	if (access(kernel, R_OK)) {
		fprintf(stderr, "b-migrate: %s not built (run make, or set top_builddir)\n",
			kernel);
		return 1;
	}
	qemu_bin = getenv("QEMU");
	if (!qemu_bin || !*qemu_bin)
		qemu_bin = "qemu-system-x86_64";
	hr_log_init("b-migrate", 1, 0);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	int netns_ok = use_netns && netns_setup() == 0;
	printf("b-migrate: our migration vs QEMU's (%s), %s run, %d rep(s), %ld CPUs\n", qemu_bin,
	       quick ? "quick" : "full", reps, sysconf(_SC_NPROCESSORS_ONLN));
	printf("  guest: memwalk.elf, 1 GiB, 1 vCPU; %.0f s of running after its first progress "
	       "line before each migration\n",
	       warm_s);
	printf("  1 Gbit/s link: %s\n",
	       netns_ok ? "veth between two network namespaces, tbf rate 1gbit burst 256k "
			  "latency 50ms on both ends (everything capped)"
			: "NO namespaces: our live phase paced (cfg.live.max_bytes_per_s "
			  "125 MB/s, its epochs unpaced) and QEMU max-bandwidth 125 MB/s");

	static const struct scenario sc[] = {
	    {1, "1. loopback, memwalk rate=0 wss=768M pattern=random (flat out)",
	     "rate=0 wss=768M pattern=random interval_ms=100", 0, 1},
	    {2, "2. 1 Gbit/s link, memwalk rate=0 wss=768M pattern=random (flat out)",
	     "rate=0 wss=768M pattern=random interval_ms=100", 1, 0},
	    {3, "3. loopback, quiet guest: memwalk rate=1000 wss=768M pattern=random",
	     "rate=1000 wss=768M pattern=random interval_ms=100", 0, 1},
	};
	uint64_t tstart = hr_now_ns();
	for (unsigned s = 0; s < sizeof(sc) / sizeof(sc[0]); s++) {
		if (only && only != sc[s].id)
			continue;
		struct result ro[16], rq[16], ru[16];
		int capped = sc[s].capped, paced = capped && !netns_ok;
		uint64_t ts = hr_now_ns();
		for (int i = 0; i < reps; i++) {
			ours_run(sc[s].cmdline, capped && netns_ok, paced, &ro[i]);
			printf(
			    "    [%d.%d] ours: %s total %.0f ms, downtime %.1f ms, %.0f MiB (live "
			    "%.0f MiB in %llu rounds, %llu epochs %.0f MiB, epoch 0 %llu pages "
			    "paused %.1f ms, final %llu pages; guest dirty rate %.0f pages/s) %s\n",
			    sc[s].id, i + 1,
			    ro[i].done == 1 ? "done"
			    : ro[i].done    ? "FAILED"
					    : "NOT FINISHED",
			    ro[i].total_ms, ro[i].down_ms, ro[i].bytes / (1 << 20),
			    ro[i].live_bytes / 1048576.0, (unsigned long long)ro[i].rounds,
			    (unsigned long long)ro[i].nr_epochs, ro[i].epoch_bytes / 1048576.0,
			    (unsigned long long)ro[i].e0_pages, ro[i].e0_pause_ms,
			    (unsigned long long)ro[i].final_pages, ro[i].dirty_rate, ro[i].why);
			if (!use_qemu)
				continue;
			qemu_run(sc[s].cmdline, capped, paced ? LINK_BPS : 0, &rq[i]);
			print_qemu(sc[s].id, i + 1, paced ? "max-bandwidth 125M" : "defaults",
				   &rq[i]);
			if (sc[s].qemu_unlimited) {
				qemu_run(sc[s].cmdline, capped, 100000000000ull, &ru[i]);
				print_qemu(sc[s].id, i + 1, "max-bandwidth 100G", &ru[i]);
			}
		}
		struct row a, b, c;
		printf("\n%s\n", sc[s].title);
		printf("  %-34s %9s %11s %9s %6s   %s\n", "", "total ms", "downtime ms", "MiB",
		       "x RAM", "done");
		summarize(&a, "ours", ro, reps);
		print_row(&a);
		if (a.nr_done)
			printf(
			    "  %-34s %9s %11.1f   (the guest also paused for epoch 0's capture)\n",
			    "ours: epoch 0 pause", "", a.e0_pause);
		if (use_qemu) {
			summarize(&b, paced ? "QEMU max-bandwidth 125M" : "QEMU defaults", rq,
				  reps);
			print_row(&b);
			if (sc[s].qemu_unlimited) {
				summarize(&c, "QEMU max-bandwidth 100G", ru, reps);
				print_row(&c);
			}
			print_ratio(&a, &b);
			if (sc[s].qemu_unlimited)
				print_ratio(&a, &c);
		}
		if (sc[s].id == 1 && use_qemu) {
			print_goal(&a, &b);
			print_goal(&a, &c);
		}
		if (sc[s].id == 2 && a.nr_done) {
			double lim = 2.0 * MEM_BYTES, fin = 0;
			int ok = 1;
			for (int i = 0; i < reps; i++)
				if (ro[i].done == 1) {
					fin = ro[i].final_pages * 4096.0;
					ok &= ro[i].bytes <= lim + fin;
				}
			printf("  ours: bytes <= 2 x RAM + the final copy in every completed run: "
			       "%s\n",
			       ok ? "yes" : "NO");
		}
		printf("  (scenario took %.0f s)\n\n", (hr_now_ns() - ts) / 1e9);
	}
	netns_down();
	printf("Notes: medians over the completed runs (n/f: did not finish within the bound; "
	       "then MiB is what it had sent).\n"
	       "ours: hr_migration_report: total = hr_engine_migrate until the destination "
	       "confirmed; downtime = the final pause\n"
	       "until the confirmation (one network delay included); MiB = live phase + epochs "
	       "(page data and epoch frames).\n"
	       "QEMU: query-migrate's total-time, downtime and ram.transferred.\n"
	       "total %.0f s\n",
	       (hr_now_ns() - tstart) / 1e9);
	return 0;
}
