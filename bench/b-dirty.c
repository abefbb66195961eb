/*
 * b-dirty.c - benchmarks of the KVM backend's checkpoint primitives against
 * the memwalk guest (tests/guests/memwalk.c):
 *
 *  1. dirty-log collection cost, bitmap vs ring, for 1 GiB and 16 GiB guests
 *     at several dirty rates: every 25 ms pause, time dirty_fetch, resume.
 *  2. pause latency (ops->pause() call to return) with 1 and 2 vCPUs, and
 *     side by side QEMU's `stop` latency over QMP for the same guest.
 *
 * Timings on a small, shared machine are noisy: we print medians and p99,
 * and ratios of figures measured in this same run.  See bench/README.md.
 *
 * Usage: b-dirty [--quick] [--only dirty|pause] [--no-qemu]
 * Environment: top_builddir (where tests/guests/memwalk.elf is), QEMU.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "qmp.h"
#include "core/dirtyset.h"
#include "common/stats.h"
#include "common/err.h"

#define FETCH_INTERVAL_NS (25 * 1000000ll)
#define WARMUP_FETCHES	  4
#define PAUSE_GAP_US	  5000 /* guest runs this long between pause cycles */
#define BOOT_TIMEOUT_S	  60

struct opts {
	int quick;
	int dirty, pause, qemu;
	unsigned dirty_samples, pause_cycles;
};

static const struct hr_backend_ops *ops;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000ll, .tv_nsec = t_ns % 1000000000ll};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t popcount_bm(const uint64_t *bm, uint64_t nwords)
{
	uint64_t n = 0;
	for (uint64_t w = 0; w < nwords; w++)
		n += (uint64_t)__builtin_popcountll(bm[w]);
	return n;
}

/* ---- shared: boot memwalk on our KVM backend ------------------------- */

struct guest {
	struct gh g;
	struct hr_vm *vm;
	size_t at;
};

static int guest_boot(struct guest *gu, const char *name, uint64_t mem_bytes, unsigned nr_vcpus,
		      int ring, const char *cmdline)
{
	struct hr_vm_config cfg = {.name = name,
				   .mem_bytes = mem_bytes,
				   .nr_vcpus = nr_vcpus,
				   .kernel_path = gh_guest("memwalk.elf"),
				   .cmdline = cmdline,
				   .options = ring ? "dirty=ring" : "dirty=bitmap"};
	int rc;

	memset(gu, 0, sizeof(*gu));
	gh_init(&gu->g, &cfg);
	rc = ops->open(&gu->vm, &cfg);
	if (rc) {
		fprintf(stderr, "b-dirty: open %s: %s (%s)\n", name, hr_strerror(rc),
			gu->vm && ops->last_error ? ops->last_error(gu->vm) : "");
		return rc;
	}
	if ((rc = ops->resume(gu->vm)))
		return rc;
	/* The first progress line means the working set is stamped and the
	 * walk is running in ring 3. */
	if (!gh_wait(&gu->g, "memwalk: seq=1 ", &gu->at, BOOT_TIMEOUT_S)) {
		fprintf(stderr, "b-dirty: %s: guest did not start walking (exited=%d)\n", name,
			gu->g.exited);
		return -ETIMEDOUT;
	}
	return 0;
}

static void guest_close(struct guest *gu)
{
	if (gu->vm)
		ops->close(gu->vm);
	gu->vm = NULL;
	free(gu->g.buf);
	gu->g.buf = NULL;
}

/* ---- 1. dirty-log collection cost ------------------------------------ */

struct dirty_cell {
	int64_t fetch_p50_ns, fetch_p99_ns, pages_p50;
	double pages_per_s;
	unsigned n;
};

static int dirty_cell(uint64_t mem_bytes, int ring, unsigned rate, unsigned nr_samples,
		      struct dirty_cell *res)
{
	char cmdline[128];
	struct guest gu;
	const struct hr_mem_region *reg;
	unsigned nreg, n = 0;
	uint64_t *bm = NULL, nwords, total_pages = 0;
	int64_t *fetch_ns = NULL, *pages = NULL, t_start = 0, t_end = 0, next;
	int rc;

	snprintf(cmdline, sizeof(cmdline), "rate=%u wss=256M pattern=random interval_ms=500", rate);
	rc = guest_boot(&gu, "b-dirty", mem_bytes, 1, ring, cmdline);
	if (rc)
		goto out;
	if ((rc = ops->mem_layout(gu.vm, &reg, &nreg)))
		goto out;
	nwords = (hr_layout_nr_gfns(reg, nreg) + 63) / 64;
	struct hr_dirtyset *ds = NULL;
	hr_dirtyset_new(&ds, nwords * 64);
	bm = ds ? hr_dirtyset_bits(ds)->bitmap : NULL;
	fetch_ns = calloc(nr_samples, sizeof(*fetch_ns));
	pages = calloc(nr_samples, sizeof(*pages));
	if (!bm || !fetch_ns || !pages) {
		rc = -ENOMEM;
		goto out;
	}

	ops->pause(gu.vm);
	rc = ops->dirty_start(gu.vm);
	ops->resume(gu.vm);
	if (rc)
		goto out;

	next = now_ns();
	for (unsigned i = 0; i < WARMUP_FETCHES + nr_samples; i++) {
		next += FETCH_INTERVAL_NS;
		hr_dirtyset_clear(ds);
		sleep_until_ns(next);
		ops->pause(gu.vm);
		int64_t t0 = now_ns();
		rc = ops->dirty_fetch(gu.vm, hr_dirtyset_bits(ds));
		int64_t t1 = now_ns();
		ops->resume(gu.vm);
		if (rc)
			goto out;
		if (gu.g.exited) {
			fprintf(stderr, "b-dirty: guest exited during the run\n");
			rc = -ECHILD;
			goto out;
		}
		if (i < WARMUP_FETCHES) {
			t_start = t1;
			continue;
		}
		fetch_ns[n] = t1 - t0;
		pages[n] = (int64_t)popcount_bm(bm, nwords);
		total_pages += (uint64_t)pages[n];
		t_end = t1;
		n++;
		if (next < now_ns()) /* fell behind: keep the 25 ms spacing from now */
			next = now_ns();
	}
	res->n = n;
	res->fetch_p50_ns = hr_percentile_i64(fetch_ns, n, 50);
	res->fetch_p99_ns = hr_percentile_i64(fetch_ns, n, 99);
	res->pages_p50 = hr_percentile_i64(pages, n, 50);
	res->pages_per_s =
	    t_end > t_start ? (double)total_pages * 1e9 / (double)(t_end - t_start) : 0;
	ops->pause(gu.vm);
	ops->dirty_stop(gu.vm);
out:
	guest_close(&gu);
	hr_dirtyset_free(ds);
	free(fetch_ns);
	free(pages);
	return rc;
}

/* Value of "key=<u64>" in the first line at or after `from` that starts with `prefix`. */
static int console_u64(const char *buf, const char *prefix, const char *key, uint64_t *v_r)
{
	const char *l = strstr(buf, prefix), *k;
	if (!l || !(k = strstr(l, key)))
		return -ENOENT;
	*v_r = strtoull(k + strlen(key), NULL, 10);
	return 0;
}

/*
 * The guest's own write rate with rate=0 and no dirty tracking, from its
 * progress lines (dirtied= and tsc= of seq=2 and seq=4, tsc_khz).
 */
static int untracked_rate(double *pages_per_s_r)
{
	struct guest gu;
	uint64_t khz, d2, d4, t2, t4;
	size_t at2, at4;
	int rc;

	rc = guest_boot(&gu, "b-base", 1ull << 30, 1, 0,
			"rate=0 wss=256M pattern=random interval_ms=500");
	if (rc)
		goto out;
	/* The console arrives byte by byte: wait for the end of each line too. */
	at2 = gu.at;
	if (!gh_wait(&gu.g, "memwalk: seq=2 ", &at2, 10)) {
		rc = -ETIMEDOUT;
		goto out;
	}
	at4 = at2;
	if (!gh_wait(&gu.g, "memwalk: seq=4 ", &at4, 10)) {
		rc = -ETIMEDOUT;
		goto out;
	}
	size_t end = at4;
	if (!gh_wait(&gu.g, " errors=", &end, 5)) {
		rc = -ETIMEDOUT;
		goto out;
	}
	pthread_mutex_lock(&gu.g.lock);
	rc = console_u64(gu.g.buf, "memwalk: tsc_khz=", "tsc_khz=", &khz);
	if (!rc)
		rc = console_u64(gu.g.buf + at2, "", "tsc=", &t2);
	if (!rc)
		rc = console_u64(gu.g.buf + at2, "", "dirtied=", &d2);
	if (!rc)
		rc = console_u64(gu.g.buf + at4, "", "tsc=", &t4);
	if (!rc)
		rc = console_u64(gu.g.buf + at4, "", "dirtied=", &d4);
	pthread_mutex_unlock(&gu.g.lock);
	if (!rc && (t4 <= t2 || !khz))
		rc = -ERANGE;
	if (!rc)
		*pages_per_s_r = (double)(d4 - d2) * (double)khz * 1e3 / (double)(t4 - t2);
out:
	guest_close(&gu);
	return rc;
}

static int bench_dirty(const struct opts *o)
{
	static const uint64_t sizes_gib[] = {1, 16};
	static const unsigned rates[] = {1000, 10000, 40000, 0};
	const int nr_rates = sizeof(rates) / sizeof(rates[0]);
	int64_t t0 = now_ns();

	printf("\n== 1. Dirty-log collection cost: dirty_fetch (collect-and-clear) with the VM "
	       "paused, every 25 ms ==\n");
	printf("   memwalk wss=256M pattern=random, 1 vCPU; %u samples per cell after %d "
	       "warm-up fetches\n\n",
	       o->dirty_samples, WARMUP_FETCHES);
	printf("%-6s %-10s | %-33s | %-33s | %-9s\n", "", "", "bitmap (GET+CLEAR_DIRTY_LOG)",
	       "ring (harvest + RESET_RINGS)", "ring/bmp");
	printf("%-6s %-10s | %9s %9s %6s %7s | %9s %9s %6s %7s | %9s\n", "guest", "rate", "p50 us",
	       "p99 us", "pages", "kpg/s", "p50 us", "p99 us", "pages", "kpg/s", "p50");
	printf("%-6s %-10s | %9s %9s %6s %7s | %9s %9s %6s %7s | %9s\n", "", "(pages/s)", "", "",
	       "(p50)", "", "", "", "(p50)", "", "");
	for (unsigned s = 0; s < sizeof(sizes_gib) / sizeof(sizes_gib[0]); s++) {
		for (int r = 0; r < nr_rates; r++) {
			if (o->quick && (rates[r] == 1000 || rates[r] == 10000))
				continue;
			struct dirty_cell c[2] = {{0}};
			int rc[2];
			for (int m = 0; m < 2; m++)
				rc[m] = dirty_cell(sizes_gib[s] << 30, m, rates[r],
						   o->dirty_samples, &c[m]);
			char rate_s[16], gsz[16];
			snprintf(gsz, sizeof(gsz), "%" PRIu64 "G", sizes_gib[s]);
			if (rates[r])
				snprintf(rate_s, sizeof(rate_s), "%u", rates[r]);
			else
				snprintf(rate_s, sizeof(rate_s), "max");
			printf("%-6s %-10s |", gsz, rate_s);
			for (int m = 0; m < 2; m++) {
				if (rc[m])
					printf(" %-33s |", hr_strerror(rc[m]));
				else
					printf(" %9.1f %9.1f %6" PRId64 " %7.1f |",
					       c[m].fetch_p50_ns / 1e3, c[m].fetch_p99_ns / 1e3,
					       c[m].pages_p50, c[m].pages_per_s / 1e3);
			}
			if (!rc[0] && !rc[1] && c[0].fetch_p50_ns)
				printf(" %9.2f\n",
				       (double)c[1].fetch_p50_ns / (double)c[0].fetch_p50_ns);
			else
				printf(" %9s\n", "-");
			fflush(stdout);
		}
	}
	double base = 0;
	int rc = untracked_rate(&base);
	if (rc)
		printf("   untracked baseline: %s\n", hr_strerror(rc));
	else
		printf("   untracked baseline (1G, rate=max, no dirty tracking, guest-reported): "
		       "%.1f kpg/s written\n",
		       base / 1e3);
	printf("   (section took %.0f s)\n", (now_ns() - t0) / 1e9);
	return 0;
}

/* ---- 2. pause latency: ours ------------------------------------------ */

struct lat {
	int64_t p50_ns, p99_ns, max_ns;
	unsigned n;
};

static void lat_from(struct lat *l, int64_t *v, unsigned n)
{
	l->n = n;
	l->p50_ns = hr_percentile_i64(v, n, 50);
	l->p99_ns = hr_percentile_i64(v, n, 99);
	l->max_ns = n ? v[n - 1] : 0;
}

static const char pause_cmdline[] = "rate=0 wss=256M pattern=random interval_ms=500";

static int ours_pause(unsigned nr_vcpus, unsigned cycles, struct lat *res)
{
	struct guest gu;
	int64_t *v = calloc(cycles, sizeof(*v));
	int rc;

	if (!v)
		return -ENOMEM;
	rc = guest_boot(&gu, "b-pause", 1ull << 30, nr_vcpus, 0, pause_cmdline);
	if (rc)
		goto out;
	for (unsigned i = 0; i < cycles; i++) {
		usleep(PAUSE_GAP_US);
		int64_t t0 = now_ns();
		rc = ops->pause(gu.vm);
		int64_t t1 = now_ns();
		if (rc)
			goto out;
		v[i] = t1 - t0;
		if ((rc = ops->resume(gu.vm)))
			goto out;
	}
	if (gu.g.exited) {
		rc = -ECHILD;
		goto out;
	}
	lat_from(res, v, cycles);
out:
	guest_close(&gu);
	free(v);
	return rc;
}

/* ---- 2. pause latency: QEMU over QMP ---------------------------------- */

static int qemu_pause(const char *qemu, unsigned nr_vcpus, unsigned cycles, struct lat *stop_r,
		      struct lat *cont_r, struct lat *rtt_r)
{
	char dir[] = "/tmp/b-dirty.XXXXXX", sock[64], serial[64], errlog[64], serial_arg[80],
	     qmp_arg[96], smp[16], append[128];
	struct qmp q = {.fd = -1};
	int64_t *vs = NULL, *vc = NULL, *vr = NULL;
	pid_t pid = -1;
	int rc = 0, status;

	if (!mkdtemp(dir))
		return -errno;
	snprintf(sock, sizeof(sock), "%s/qmp", dir);
	snprintf(serial, sizeof(serial), "%s/serial", dir);
	snprintf(errlog, sizeof(errlog), "%s/stderr", dir);
	snprintf(serial_arg, sizeof(serial_arg), "file:%s", serial);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", sock);
	snprintf(smp, sizeof(smp), "%u", nr_vcpus);
	snprintf(append, sizeof(append), "%s", pause_cmdline);

	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		int errfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		if (errfd >= 0)
			dup2(errfd, 2); /* QEMU's CPUID warnings: shown only on failure */
		execlp(qemu, qemu, "-accel", "kvm", "-m", "1G", "-smp", smp, "-kernel",
		       gh_guest("memwalk.elf"), "-append", append, "-serial", serial_arg,
		       "-display", "none", "-monitor", "none", "-qmp", qmp_arg, "-device",
		       "isa-debug-exit,iobase=0xf4,iosize=0x04", (char *)NULL);
		fprintf(stderr, "b-dirty: exec %s: %s\n", qemu, strerror(errno));
		_exit(127);
	}

	/* Wait until memwalk walks, as for our guest. */
	int64_t deadline = now_ns() + BOOT_TIMEOUT_S * 1000000000ll;
	while (!file_has(serial, "memwalk: seq=1 ")) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = -1;
			fprintf(stderr, "b-dirty: QEMU exited before the guest ran\n");
			rc = -ECHILD;
			goto out;
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "b-dirty: QEMU guest did not start walking\n");
			rc = -ETIMEDOUT;
			goto out;
		}
		usleep(20000);
	}

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	q.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q.fd < 0 || connect(q.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		fprintf(stderr, "b-dirty: connect to QMP %s: %s\n", sock, strerror(errno));
		goto out;
	}
	char line[8192];
	if ((rc = qmp_line(&q, line, sizeof(line), 5000))) /* greeting */
		goto out;
	if ((rc = qmp_cmd(&q, "b-dirty", "{\"execute\":\"qmp_capabilities\"}\n", NULL, 0)))
		goto out;

	vs = calloc(cycles, sizeof(*vs));
	vc = calloc(cycles, sizeof(*vc));
	vr = calloc(cycles, sizeof(*vr));
	if (!vs || !vc || !vr) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < cycles; i++) {
		usleep(PAUSE_GAP_US);
		/* a no-op command: the QMP round trip alone, while running */
		int64_t t0 = now_ns();
		if ((rc = qmp_cmd(&q, "b-dirty", "{\"execute\":\"query-status\"}\n", NULL, 0)))
			goto out;
		int64_t t1 = now_ns();
		if ((rc = qmp_cmd(&q, "b-dirty", "{\"execute\":\"stop\"}\n", NULL, 0)))
			goto out;
		int64_t t2 = now_ns();
		if ((rc = qmp_cmd(&q, "b-dirty", "{\"execute\":\"cont\"}\n", NULL, 0)))
			goto out;
		int64_t t3 = now_ns();
		vr[i] = t1 - t0;
		vs[i] = t2 - t1;
		vc[i] = t3 - t2;
	}
	lat_from(stop_r, vs, cycles);
	lat_from(cont_r, vc, cycles);
	lat_from(rtt_r, vr, cycles);
	qmp_cmd(&q, "b-dirty", "{\"execute\":\"quit\"}\n", NULL, 0);
out:
	if (q.fd >= 0)
		close(q.fd);
	if (pid > 0) {
		int64_t dl = now_ns() + 3000000000ll;
		while (waitpid(pid, &status, WNOHANG) != pid) {
			if (now_ns() > dl) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				break;
			}
			usleep(10000);
		}
	}
	if (rc) {
		char buf[2048];
		int fd = open(errlog, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (n > 0) {
			buf[n] = 0;
			fprintf(stderr, "b-dirty: QEMU stderr:\n%s", buf);
		}
		if (fd >= 0)
			close(fd);
	}
	unlink(sock);
	unlink(serial);
	unlink(errlog);
	rmdir(dir);
	free(vs);
	free(vc);
	free(vr);
	return rc;
}

static void print_lat(const char *who, unsigned nr_vcpus, const struct lat *l, int rc)
{
	if (rc)
		printf("%-34s %5u | %-28s\n", who, nr_vcpus, hr_strerror(rc));
	else
		printf("%-34s %5u | %8.1f %8.1f %9.1f %5u\n", who, nr_vcpus, l->p50_ns / 1e3,
		       l->p99_ns / 1e3, l->max_ns / 1e3, l->n);
}

static int bench_pause(const struct opts *o)
{
	const char *qemu = getenv("QEMU");
	struct lat ours[2] = {{0}}, qstop[2] = {{0}}, qcont[2] = {{0}}, qrtt[2] = {{0}};
	int rc_ours[2], rc_q[2] = {-ENOENT, -ENOENT};
	int64_t t0 = now_ns();

	if (!qemu || !*qemu)
		qemu = "qemu-system-x86_64";
	for (unsigned v = 0; v < 2; v++) {
		rc_ours[v] = ours_pause(v + 1, o->pause_cycles, &ours[v]);
		if (o->qemu)
			rc_q[v] = qemu_pause(qemu, v + 1, o->pause_cycles, &qstop[v], &qcont[v],
					     &qrtt[v]);
	}

	printf("\n== 2. Pause latency: pause request until every vCPU is out of KVM_RUN ==\n");
	printf("   memwalk %s, 1 GiB, %u pause/resume cycles, %d ms of running between "
	       "them\n\n",
	       pause_cmdline, o->pause_cycles, PAUSE_GAP_US / 1000);
	printf("%-34s %5s | %8s %8s %9s %5s\n", "what", "vCPUs", "p50 us", "p99 us", "max us", "n");
	for (unsigned v = 0; v < 2; v++)
		print_lat("ours: ops->pause() (in-process)", v + 1, &ours[v], rc_ours[v]);
	if (o->qemu) {
		for (unsigned v = 0; v < 2; v++) {
			print_lat("QEMU: QMP stop (incl. QMP RTT)", v + 1, &qstop[v], rc_q[v]);
			print_lat("QEMU: QMP cont (incl. QMP RTT)", v + 1, &qcont[v], rc_q[v]);
			print_lat("QEMU: QMP query-status (RTT only)", v + 1, &qrtt[v], rc_q[v]);
		}
		printf("\n%-34s %5s | %8s %8s\n", "ratio", "vCPUs", "p50", "p99");
		for (unsigned v = 0; v < 2; v++) {
			if (rc_ours[v] || rc_q[v] || !qstop[v].p50_ns || !qstop[v].p99_ns)
				continue;
			printf("%-34s %5u | %8.2f %8.2f\n", "ours / QEMU stop", v + 1,
			       (double)ours[v].p50_ns / (double)qstop[v].p50_ns,
			       (double)ours[v].p99_ns / (double)qstop[v].p99_ns);
			int64_t net50 = qstop[v].p50_ns - qrtt[v].p50_ns;
			if (net50 > 0)
				printf("%-34s %5u | %8.2f %8s\n", "ours / (QEMU stop - RTT) [est.]",
				       v + 1, (double)ours[v].p50_ns / (double)net50, "-");
		}
	}
	printf("   (section took %.0f s)\n", (now_ns() - t0) / 1e9);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: b-dirty [--quick] [--only dirty|pause] [--no-qemu]\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.dirty = 1, .pause = 1, .qemu = 1};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o.quick = 1;
		} else if (!strcmp(argv[i], "--no-qemu")) {
			o.qemu = 0;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			i++;
			o.dirty = !strcmp(argv[i], "dirty");
			o.pause = !strcmp(argv[i], "pause");
			if (!o.dirty && !o.pause) {
				usage();
				return 2;
			}
		} else {
			usage();
			return 2;
		}
	}
	o.dirty_samples = o.quick ? 30 : 160;
	o.pause_cycles = o.quick ? 80 : 300;

	if (access("/dev/kvm", R_OK | W_OK)) {
		fprintf(stderr, "b-dirty: /dev/kvm not usable, nothing to measure\n");
		return 77;
	}
	if (access(gh_guest("memwalk.elf"), R_OK)) {
		fprintf(stderr, "b-dirty: %s not built (run make, or set top_builddir)\n",
			gh_guest("memwalk.elf"));
		return 1;
	}
	ops = hr_backend_find("kvm");
	if (!ops) {
		fprintf(stderr, "b-dirty: the kvm backend is not built into this binary\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("b-dirty: KVM backend vs itself (bitmap/ring) and vs QEMU; %s run, %ld CPUs\n",
	       o.quick ? "quick" : "full", sysconf(_SC_NPROCESSORS_ONLN));

	int64_t t0 = now_ns();
	if (o.dirty)
		bench_dirty(&o);
	if (o.pause)
		bench_pause(&o);

	printf("\nNotes: times are CLOCK_MONOTONIC around the call, medians (p50) and "
	       "nearest-rank p99 over the samples of one cell.\n"
	       "Table 1: the VM is paused before and resumed after each timed dirty_fetch; "
	       "'pages' is the median number of distinct\n"
	       "dirty gfns per 25 ms fetch, 'kpg/s' the distinct dirty pages per second "
	       "over the cell; 'max' = memwalk rate=0 (as fast\n"
	       "as it can).  In ring mode, full rings are also harvested by the vCPU "
	       "threads between fetches (KVM_EXIT_DIRTY_RING_FULL),\n"
	       "which this table does not count.  Cells run one after another in this "
	       "process, not concurrently.\n"
	       "Table 2: 'ours' times ops->pause() in-process (signal kick + wait for every "
	       "vCPU thread to park).  QEMU's figure is\n"
	       "the wall time from writing {\"execute\":\"stop\"} on its QMP Unix socket to "
	       "reading {\"return\": {}}: it INCLUDES a QMP\n"
	       "round trip (JSON parse, main-loop wakeup, socket I/O both ways); "
	       "query-status gives that round trip alone for reference.\n"
	       "With 2 vCPUs memwalk runs on vCPU 0 only; the guest never starts vCPU 1 "
	       "(it idles in KVM_RUN, in both VMMs).\n");
	printf("total %.0f s\n", (now_ns() - t0) / 1e9);
	return 0;
}
