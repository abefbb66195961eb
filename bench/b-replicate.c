/*
 * b-replicate.c - the replication engine measured, with its peers in the same
 * run: memwalk in a 1 GiB guest protected at 25 ms epochs over TCP between
 * loopback (both ends and the plain-TCP peer share it), at several dirty
 * rates.  Prints pause and achieved-interval p50/p99, guest progress
 * protected vs unprotected (ratio, same run), replication throughput vs a
 * plain TCP stream between the same endpoints (ratio, same run), and
 * failover time (abort of the primary -> first new console line from the
 * backup) p50 over N runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "core/engine.h"
#include "core/envelope.h"
#include "engine-pair.h"
#include "core/stream.h"
#include "backends/mem/mem.h"

static const char *guest_path;
static int quick;

/* ---------- statistics ---------- */

/* ---------- console: count memwalk progress ---------- */

struct console {
	pthread_mutex_t lock;
	char line[512];
	size_t len;
	uint64_t last_dirtied, first_dirtied, first_ns, last_ns;
	uint64_t lines;
	uint64_t first_line_after_ns; /* set: time of first line after mark */
	int marked;
};

static void console_byte_line(struct console *c)
{
	c->line[c->len] = 0;
	char *p = strstr(c->line, "dirtied=");
	if (!p)
		return;
	uint64_t d = strtoull(p + 8, NULL, 10), now = hr_now_ns();
	if (!c->lines) {
		c->first_dirtied = d;
		c->first_ns = now;
	}
	c->last_dirtied = d;
	c->last_ns = now;
	c->lines++;
	if (c->marked && !c->first_line_after_ns)
		c->first_line_after_ns = now;
}

static void console_feed(struct console *c, const void *buf, size_t n)
{
	const char *s = buf;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			console_byte_line(c);
			c->len = 0;
		} else if (c->len < sizeof(c->line) - 1) {
			c->line[c->len++] = s[i];
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static int vm_console(void *o, unsigned chan, const void *buf, size_t n)
{
	if (chan == 0)
		console_feed(o, buf, n);
	return 0;
}

/* The sink dedups by offset like any outside observer would. */
struct sink {
	struct console con;
	uint64_t have;
	struct run_stats *rs;
};

static void sink_fn(struct ep_pair *ep, unsigned chan, uint64_t off, const void *buf, size_t n)
{
	struct sink *s = ep->user;
	if (chan != 0)
		return;
	if (off + n <= s->have)
		return;
	size_t skip = off < s->have ? (size_t)(s->have - off) : 0;
	console_feed(&s->con, (const char *)buf + skip, n - skip);
	s->have = off + n;
}

static double progress_rate(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	double r = c->last_ns > c->first_ns ? (double)(c->last_dirtied - c->first_dirtied) /
						  ((c->last_ns - c->first_ns) / 1e9)
					    : 0;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ---------- connections ---------- */

#define MAX_EPOCHS 4096

struct run_stats {
	pthread_mutex_t lock;
	uint64_t pause_us[MAX_EPOCHS], interval_us[MAX_EPOCHS], bytes[MAX_EPOCHS],
	    dirty[MAX_EPOCHS], ack_us[MAX_EPOCHS];
	size_t n;
	int synced, promoted;
	struct console *con; /* record epochs only once the guest is in its loop */
	uint64_t synced_ns, sync_start_ns;
};

static void p_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	struct run_stats *r = ((struct sink *)ep->user)->rs;
	pthread_mutex_lock(&r->lock);
	if (st->epoch == 0) {
		r->synced = 1;
		r->synced_ns = hr_now_ns();
	}
	int steady = 0;
	if (r->con) {
		pthread_mutex_lock(&r->con->lock);
		steady = r->con->lines >= 2;
		pthread_mutex_unlock(&r->con->lock);
	}
	if (st->epoch > 0 && steady && r->n < MAX_EPOCHS) {
		r->pause_us[r->n] = st->pause_us;
		r->interval_us[r->n] = st->interval_us;
		r->bytes[r->n] = st->bytes;
		r->dirty[r->n] = st->dirty_pages;
		r->ack_us[r->n] = st->ack_us;
		r->n++;
	}
	pthread_mutex_unlock(&r->lock);
}

static double unprotected_progress(uint64_t mem, const char *cmdline, double secs)
{
	struct console c = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct hr_vm_config cfg = {.name = "bench-plain",
				   .mem_bytes = mem,
				   .nr_vcpus = 1,
				   .kernel_path = guest_path,
				   .cmdline = cmdline,
				   .emit = vm_console,
				   .emit_opaque = &c};
	const struct hr_backend_ops *ops = hr_backend_find("kvm");
	struct hr_vm *vm = NULL;
	if (ops->open(&vm, &cfg)) {
		ops->close(vm);
		return 0;
	}
	ops->resume(vm);
	uint64_t t0 = hr_now_ns();
	while (c.lines < 2 && hr_now_ns() - t0 < 60e9)
		usleep(1000);
	pthread_mutex_lock(&c.lock);
	c.lines = 0;
	pthread_mutex_unlock(&c.lock);
	t0 = hr_now_ns();
	while (hr_now_ns() - t0 < (uint64_t)(secs * 1e9))
		usleep(20000);
	double r = progress_rate(&c);
	ops->close(vm);
	return r;
}

static int protected_run(uint64_t mem, const char *cmdline, double secs, struct run_stats *rs,
			 double *progress_r, uint64_t *failover_us_r, int link)
{
	struct ep_pair ep = {0};
	struct sink sk = {.con = {.lock = PTHREAD_MUTEX_INITIALIZER}, .rs = rs};
	rs->con = &sk.con;
	const struct hr_backend_ops *kvm = hr_backend_find("kvm");
	struct hr_engine_config pc = {
	    .name = "bench",
	    .ops = kvm,
	    .epoch_us = 25000,
	    .silence_ms = 500,
	    .vm = {.mem_bytes = mem, .nr_vcpus = 1, .kernel_path = guest_path, .cmdline = cmdline},
	};
	struct hr_engine_config bc = {
	    .name = "bench-b", .ops = kvm, .silence_ms = 500, .auto_promote = 1};
	ep.user = &sk;
	ep.on_output = sink_fn;
	ep.on_p_epoch = p_epoch;
	rs->sync_start_ns = hr_now_ns();
	if (ep_start(&ep, pc, bc, link) < 0)
		return -1;
	uint64_t t0 = hr_now_ns();
	while (!rs->synced && hr_now_ns() - t0 < 60e9)
		usleep(1000);
	while (sk.con.lines < 2 && hr_now_ns() - t0 < 60e9)
		usleep(1000);
	pthread_mutex_lock(&sk.con.lock);
	sk.con.lines = 0; /* progress is measured from here */
	pthread_mutex_unlock(&sk.con.lock);
	uint64_t t1 = hr_now_ns();
	while (hr_now_ns() - t1 < (uint64_t)(secs * 1e9))
		usleep(20000);
	*progress_r = progress_rate(&sk.con);
	rs->con = NULL;

	/* failover: the primary dies; time to the first new console line */
	pthread_mutex_lock(&sk.con.lock);
	sk.con.marked = 1;
	sk.con.first_line_after_ns = 0;
	pthread_mutex_unlock(&sk.con.lock);
	uint64_t tk = hr_now_ns();
	ep_kill_primary(&ep);
	while (!sk.con.first_line_after_ns && hr_now_ns() - tk < 10e9)
		usleep(200);
	*failover_us_r = sk.con.first_line_after_ns ? (sk.con.first_line_after_ns - tk) / 1000 : 0;
	rs->promoted = ep.b_state == HR_RS_PROMOTED;
	ep_finish(&ep);
	return 0;
}

/*
 * The replication data path alone: one epoch of nr_pages pages sent by a
 * minimal primary (framing + XXH3 as the engine does) to a real backup engine
 * (mem backend replica: receive, stage, verify, apply, ack).  MB/s from the
 * first byte to the ack.
 */

struct bthr {
	struct hr_engine *e;
	int fd;
};

static void *backup_thr(void *a)
{
	struct bthr *b = a;
	hr_engine_run_backup(b->e, b->fd);
	return NULL;
}

/* Send one epoch; with live = 1 the pages go before EPOCH_BEGIN, as the
 * engine's live sync does (applied straight to the replica), and the epoch
 * itself carries only the state.  Returns MB/s from first byte to ack. */
static double send_epoch_mbps(int fd, uint64_t epoch, uint64_t nr_pages, int live,
			      const uint8_t *pages, const uint8_t *state, size_t slen)
{
	uint64_t gfns[256];
	const uint8_t *ptrs[256];
	struct hr_epoch_sum sum;
	struct hr_frame f;
	uint64_t t0 = hr_now_ns();

	hr_epoch_sum_init(&sum, epoch);
	if (live) {
		for (uint64_t g = 0; g < nr_pages; g += 256) {
			for (unsigned j = 0; j < 256; j++) {
				gfns[j] = g + j;
				ptrs[j] = pages + j * HR_PAGE_SIZE;
			}
			hr_stream_send_pages(fd, 0, gfns, ptrs, 256, HR_PAGES_SUMMED);
		}
	}
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = epoch;
	eb.nr_pages = live ? 0 : nr_pages;
	hr_stream_send(fd, HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);
	for (uint64_t g = 0; !live && g < nr_pages; g += 256) {
		for (unsigned j = 0; j < 256; j++) {
			gfns[j] = g + j;
			ptrs[j] = pages + j * HR_PAGE_SIZE;
			hr_epoch_sum_page(&sum, gfns[j], ptrs[j]);
		}
		hr_stream_send_pages(fd, epoch, gfns, ptrs, 256, 0);
	}
	hr_epoch_sum_state(&sum, state, slen);
	Hr__State sm = HR__STATE__INIT;
	sm.epoch = epoch;
	sm.blob_bytes = slen;
	struct iovec iov = {(void *)state, slen};
	hr_stream_send(fd, HR_FT_STATE, HR_FRAME_MANDATORY, &sm.base, &iov, 1);
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	ee.epoch = epoch;
	ee.nr_pages = live ? 0 : nr_pages;
	ee.bytes = (live ? 0 : nr_pages * HR_PAGE_SIZE) + slen;
	ee.xxh3 = hr_epoch_sum_value(&sum);
	hr_stream_send(fd, HR_FT_EPOCH_END, HR_FRAME_MANDATORY, &ee.base, NULL, 0);
	hr_epoch_sum_fini(&sum);
	int acked = hr_stream_recv_data(fd, "b", &f) == 0 && f.type == HR_FT_ACK;
	if (acked)
		hr_frame_release(&f);
	uint64_t t1 = hr_now_ns();
	return acked ? (double)(nr_pages * HR_PAGE_SIZE) / ((t1 - t0) / 1e3) : 0;
}

/* MB/s of: [0] live sync of nr_pages, [1] an epoch of nr_pages into cold
 * staging, [2] the same again (staging and replica memory warm). */
static int path_mbps(uint64_t nr_pages, double mbps[3], int link)
{
	uint64_t mem = nr_pages * HR_PAGE_SIZE;
	struct hr_vm_config mc = {.name = "b-src", .mem_bytes = mem, .nr_vcpus = 1};
	struct hr_vm *src = NULL;
	void *blob = NULL;
	size_t blob_len = 0;
	if (hr_mem_ops.open(&src, &mc) || hr_mem_ops.save_state(src, &blob, &blob_len))
		return -1;
	hr_mem_ops.close(src);
	int fds[2];
	if (ep_connect(fds, 1) < 0 || (link == EP_TLS && ep_tls_wrap(fds) < 0))
		return -1;
	struct hr_engine_config bc = {.name = "b-path", .auto_promote = 0};
	struct bthr b = {.fd = fds[1]};
	hr_engine_new(&b.e, &bc);
	pthread_t t;
	pthread_create(&t, NULL, backup_thr, &b);

	struct hr_mem_region layout = {0, mem, NULL};
	struct hr_frame f;
	hr_stream_send_hello(fds[0], HR__ROLE__ROLE_PRIMARY, "b-path", "mem", mem, 1, &layout, 1,
			     0);
	if (hr_stream_recv(fds[0], "b", &f) < 0)
		return -1;
	hr_frame_release(&f);

	uint8_t *pages = malloc(256 * HR_PAGE_SIZE);
	for (size_t i = 0; i < 256 * HR_PAGE_SIZE; i++)
		pages[i] = (uint8_t)(i * 31 + 7);
	uint8_t *state;
	size_t slen;
	struct hr_out_held none = {.nr_chans = 1};
	if (hr_envelope_pack(&none, blob, blob_len, &state, &slen))
		return -1;

	mbps[0] = send_epoch_mbps(fds[0], 0, nr_pages, 1, pages, state, slen);
	mbps[1] = send_epoch_mbps(fds[0], 1, nr_pages, 0, pages, state, slen);
	mbps[2] = send_epoch_mbps(fds[0], 2, nr_pages, 0, pages, state, slen);

	Hr__Error bye = HR__ERROR__INIT;
	bye.text = "bench done";
	hr_stream_send(fds[0], HR_FT_ERROR, HR_FRAME_MANDATORY, &bye.base, NULL, 0);
	pthread_join(t, NULL);
	close(fds[0]);
	hr_engine_free(b.e);
	free(pages);
	free(state);
	free(blob);
	return 0;
}

/* Plain TCP between the same endpoints: bytes/s of large writes. */
/*
 * Plain TCP between the same endpoints.  mem_to_mem = 0: the same hot 1 MiB
 * buffer on both sides (the wire alone); 1: from a pre-faulted region of
 * `bytes` into another one, as replication moves guest memory (the fair
 * peer for the warm replication figures).
 */
static double plain_tcp_mbps(uint64_t bytes, int mem_to_mem)
{
	int fds[2];
	if (ep_connect(fds, 1) < 0)
		return 0;
	static char hot[1 << 20];
	char *src = hot;
	uint64_t src_bytes = sizeof(hot);
	if (mem_to_mem) {
		src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (src == MAP_FAILED)
			return 0;
		src_bytes = bytes;
	}
	memset(src, 0x5a, src_bytes);
	int ready[2];
	if (pipe(ready) < 0)
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		char *dst = hot;
		uint64_t dst_bytes = sizeof(hot);
		if (mem_to_mem) {
			dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				   -1, 0);
			if (dst == MAP_FAILED)
				_exit(1);
			memset(dst, 0, bytes);
			dst_bytes = bytes;
		}
		(void)!write(ready[1], "r", 1);
		uint64_t got = 0;
		while (got < bytes) {
			uint64_t off = got % dst_bytes;
			size_t want =
			    (size_t)(dst_bytes - off < (1u << 20) ? dst_bytes - off : (1u << 20));
			ssize_t n = read(fds[1], dst + off, want);
			if (n <= 0)
				_exit(1);
			got += (uint64_t)n;
		}
		_exit(0);
	}
	close(fds[1]);
	char c;
	(void)!read(ready[0], &c, 1);
	close(ready[0]);
	close(ready[1]);
	uint64_t t0 = hr_now_ns();
	for (uint64_t sent = 0; sent < bytes; sent += 1u << 20)
		if (hr_write_all(fds[0], src + sent % src_bytes, 1u << 20))
			break;
	int st;
	waitpid(pid, &st, 0);
	uint64_t t1 = hr_now_ns();
	close(fds[0]);
	if (mem_to_mem)
		munmap(src, bytes);
	return (double)bytes / ((t1 - t0) / 1e9) / 1e6;
}

/*
 * The same replication over plain TCP and over TLS 1.3 (net/tls.h, PSK
 * mode: AES-128-GCM, the pump thread per end, as the daemons run it),
 * alternated in one run: pause and epoch throughput at the highest dirty
 * rate, and a 1 GiB live sync and epoch.
 */
static void tls_vs_plain_rate(double secs, const char *label, const char *cmd, int with_path)
{
	static const int links[2] = {EP_TCP, EP_TLS};
	struct run_stats *rs[2];
	double prog[2] = {0, 0}, path[2][3] = {{0}}, mbps[2];
	unsigned reps = quick ? 1 : 3;

	printf("\n== TLS 1.3 (PSK, AES-128-GCM, pump) vs plain TCP: memwalk %s, 1 GiB, 25 ms "
	       "epochs; %u x %.0f s each, alternated ==\n",
	       label, reps, secs);
	for (int k = 0; k < 2; k++) {
		rs[k] = calloc(1, sizeof(*rs[k]));
		pthread_mutex_init(&rs[k]->lock, NULL);
	}
	for (unsigned r = 0; r < reps; r++)
		for (int k = 0; k < 2; k++) {
			double p = 0;
			uint64_t fo = 0;
			rs[k]->synced = rs[k]->promoted = 0;
			if (protected_run(1ull << 30, cmd, secs, rs[k], &p, &fo, links[k]) < 0)
				printf("  (%s run %u failed)\n", k ? "TLS" : "plain", r);
			prog[k] += p / reps;
		}
	for (int k = 0; k < 2; k++) {
		uint64_t bsum = 0, asum = 0;
		for (size_t i = 0; i < rs[k]->n; i++) {
			bsum += rs[k]->bytes[i];
			asum += rs[k]->ack_us[i];
		}
		mbps[k] = asum ? (double)bsum / asum : 0;
	}
	for (unsigned r = 0; with_path && r < reps; r++)
		for (int k = 0; k < 2; k++) {
			double pm[3] = {0, 0, 0};
			path_mbps(262144, pm, links[k]);
			for (int j = 0; j < 3; j++)
				path[k][j] += pm[j] / reps;
		}
#define ROW(label, a, b, fmt)                                                                      \
	printf("  %-44s " fmt " " fmt "  %9.2f\n", label, a, b, (a) > 0 ? (double)(b) / (a) : 0)
	printf("  %-44s %10s %10s  %9s\n", "", "plain", "TLS", "TLS/plain");
	ROW("epochs (n)", (double)rs[0]->n, (double)rs[1]->n, "%10.0f");
	ROW("pause p50 (us)", (double)hr_percentile_u64(rs[0]->pause_us, rs[0]->n, 50),
	    (double)hr_percentile_u64(rs[1]->pause_us, rs[1]->n, 50), "%10.0f");
	ROW("pause p99 (us)", (double)hr_percentile_u64(rs[0]->pause_us, rs[0]->n, 99),
	    (double)hr_percentile_u64(rs[1]->pause_us, rs[1]->n, 99), "%10.0f");
	ROW("interval p50 (ms)", hr_percentile_u64(rs[0]->interval_us, rs[0]->n, 50) / 1e3,
	    hr_percentile_u64(rs[1]->interval_us, rs[1]->n, 50) / 1e3, "%10.1f");
	ROW("interval p99 (ms)", hr_percentile_u64(rs[0]->interval_us, rs[0]->n, 99) / 1e3,
	    hr_percentile_u64(rs[1]->interval_us, rs[1]->n, 99) / 1e3, "%10.1f");
	ROW("KiB per epoch p50", (double)(hr_percentile_u64(rs[0]->bytes, rs[0]->n, 50) >> 10),
	    (double)(hr_percentile_u64(rs[1]->bytes, rs[1]->n, 50) >> 10), "%10.0f");
	ROW("epoch throughput, bytes / (send..ack) MB/s", mbps[0], mbps[1], "%10.0f");
	ROW("guest progress (pages/s)", prog[0], prog[1], "%10.0f");
	if (with_path) {
		ROW("live sync of 1 GiB (MB/s)", path[0][0], path[1][0], "%10.0f");
		ROW("one 1 GiB epoch, cold (MB/s)", path[0][1], path[1][1], "%10.0f");
		ROW("one 1 GiB epoch, warm (MB/s)", path[0][2], path[1][2], "%10.0f");
	}
#undef ROW
	for (int k = 0; k < 2; k++)
		free(rs[k]);
}

static void tls_vs_plain(double secs)
{
	tls_vs_plain_rate(secs, "rate=40000 (40k pages/s)",
			  "rate=40000 wss=256M pattern=random interval_ms=10", 0);
	tls_vs_plain_rate(secs, "rate=0 (as fast as it can)",
			  "rate=0 wss=256M pattern=random interval_ms=10", 1);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--guest") && i + 1 < argc)
			guest_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
	}
	static char path[4096];
	if (!guest_path) {
		const char *b = getenv("top_builddir");
		snprintf(path, sizeof(path), "%s/tests/guests/memwalk.elf", b ? b : ".");
		guest_path = path;
	}
	if (access("/dev/kvm", R_OK | W_OK) || access(guest_path, R_OK)) {
		fprintf(stderr, "b-replicate: needs /dev/kvm and %s\n", guest_path);
		return 77;
	}
	hr_log_init("b-replicate", 1, 0);
	double secs = quick ? 3 : 8;
	uint64_t mem = 1ull << 30;
	if (only && !strcmp(only, "tls")) {
		tls_vs_plain(secs);
		return 0;
	}
	static const struct {
		const char *label;
		const char *cmd;
	} rates[] = {
	    {"1k pages/s", "rate=1000 wss=256M pattern=random interval_ms=10"},
	    {"40k pages/s", "rate=40000 wss=256M pattern=random interval_ms=10"},
	    {"max (rate=0)", "rate=0 wss=256M pattern=random interval_ms=10"},
	};

	printf("b-replicate: memwalk, 1 GiB guest, epoch 25 ms, TCP loopback, %.0f s per cell\n\n",
	       secs);
	printf("%-14s %9s %9s %9s %9s %10s %10s %11s %11s %7s %9s\n", "dirty rate", "pause p50",
	       "pause p99", "intvl p50", "intvl p99", "pages/ep", "KiB/ep", "prog prot",
	       "prog unprot", "ratio", "failover");
	printf("%-14s %9s %9s %9s %9s %10s %10s %11s %11s %7s %9s\n", "", "(us)", "(us)", "(ms)",
	       "(ms)", "(p50)", "(p50)", "(pages/s)", "(pages/s)", "", "(ms)");
	uint64_t failovers[64];
	size_t nf = 0;
	double repl_mbps = 0;
	for (unsigned i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct run_stats *rs = calloc(1, sizeof(*rs));
		pthread_mutex_init(&rs->lock, NULL);
		double prot = 0, unprot;
		uint64_t fo = 0;
		unprot = unprotected_progress(mem, rates[i].cmd, secs);
		protected_run(mem, rates[i].cmd, secs, rs, &prot, &fo, EP_TCP);
		if (fo)
			failovers[nf++] = fo;
		uint64_t bsum = 0, asum = 0;
		for (size_t k = 0; k < rs->n; k++) {
			bsum += rs->bytes[k];
			asum += rs->ack_us[k];
		}
		if (asum)
			repl_mbps =
			    (double)bsum / asum; /* bytes/us = MB/s; the last (max) cell wins */
		printf("%-14s %9llu %9llu %9.1f %9.1f %10llu %10llu %11.0f %11.0f %7.2f %9.1f\n",
		       rates[i].label,
		       (unsigned long long)hr_percentile_u64(rs->pause_us, rs->n, 50),
		       (unsigned long long)hr_percentile_u64(rs->pause_us, rs->n, 99),
		       hr_percentile_u64(rs->interval_us, rs->n, 50) / 1e3,
		       hr_percentile_u64(rs->interval_us, rs->n, 99) / 1e3,
		       (unsigned long long)hr_percentile_u64(rs->dirty, rs->n, 50),
		       (unsigned long long)(hr_percentile_u64(rs->bytes, rs->n, 50) >> 10), prot,
		       unprot, unprot > 0 ? prot / unprot : 0, fo / 1e3);
		free(rs);
	}

	/* more failovers for a p50 over >= 10 */
	unsigned extra = quick ? 3 : 10;
	for (unsigned k = 0; k < extra && nf < 64; k++) {
		struct run_stats *rs = calloc(1, sizeof(*rs));
		pthread_mutex_init(&rs->lock, NULL);
		double prot;
		uint64_t fo = 0;
		protected_run(256ull << 20, "rate=20000 wss=64M interval_ms=10", 1, rs, &prot, &fo,
			      EP_TCP);
		if (fo)
			failovers[nf++] = fo;
		free(rs);
	}
	printf(
	    "\nfailover (abort of the primary -> first new console line), %zu runs: p50 %.1f ms, "
	    "max %.1f ms\n",
	    nf, hr_percentile_u64(failovers, nf, 50) / 1e3,
	    hr_percentile_u64(failovers, nf, 100) / 1e3);

	/* throughput: full sync of a guest whose memory is all touched, vs plain TCP */
	double tcp_hot = plain_tcp_mbps(1ull << 30, 0);
	double tcp = plain_tcp_mbps(1ull << 30, 1);
	double pm[3] = {0, 0, 0};
	path_mbps(262144, pm, EP_TCP); /* 1 GiB */
	printf("throughput over the same loopback, 1 GiB each (MB/s); ratios against plain TCP "
	       "memory-to-memory:\n"
	       "  plain TCP, one hot 1 MiB buffer both sides (the wire)    %6.0f\n"
	       "  plain TCP, 1 GiB region to 1 GiB region (warm)          %6.0f  ratio 1.00\n"
	       "  live sync (frames -> replica memory, ack)               %6.0f  ratio %.2f\n"
	       "  one 1 GiB epoch, cold (stage, verify, apply, ack)       %6.0f  ratio %.2f\n"
	       "  one 1 GiB epoch, warm staging and replica               %6.0f  ratio %.2f\n",
	       tcp_hot, tcp, pm[0], tcp > 0 ? pm[0] / tcp : 0, pm[1], tcp > 0 ? pm[1] / tcp : 0,
	       pm[2], tcp > 0 ? pm[2] / tcp : 0);
	printf("throughput of the epochs at max dirty rate (epoch bytes / (send + verify + apply + "
	       "ack)): %.0f MB/s\n",
	       repl_mbps);
	tls_vs_plain(secs);
	return 0;
}
