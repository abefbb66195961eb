/*
 * t-engine.c - the epoch engine end to end in one process: a primary and a
 * backup engine (threads) over a socketpair, real KVM, memwalk.  Checks
 * output commit (nothing reaches the sink before its epoch is acked), that
 * epochs flow at the configured rate, and promotion: after the primary's
 * stream is cut, the backup runs the guest from its last commit and the
 * console stream seen by the sink is gap-free and consistent.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest-harness.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"
#include "core/engine.h"

/* The outside world: bytes by offset; repeats must match, gaps are errors. */
struct sink {
	pthread_mutex_t lock;
	char *buf;
	size_t len, cap;
	int gaps, conflicts;
	uint64_t acked_epochs; /* primary's acks seen when the last byte arrived */
};

static struct sink out;
static uint64_t primary_acked;

static void sink_fn(void *opaque, uint64_t off, const void *p, size_t n)
{
	struct sink *s = opaque;
	pthread_mutex_lock(&s->lock);
	if (off > s->len) {
		s->gaps++;
	} else {
		size_t overlap = s->len - off < n ? s->len - off : n;
		if (overlap && memcmp(s->buf + off, p, overlap))
			s->conflicts++;
		size_t add = n - overlap;
		if (s->len + add + 1 > s->cap) {
			s->cap = (s->len + add + 1) * 2;
			s->buf = realloc(s->buf, s->cap);
		}
		memcpy(s->buf + s->len, (const char *)p + overlap, add);
		s->len += add;
		s->buf[s->len] = 0;
	}
	pthread_mutex_unlock(&s->lock);
}

static volatile int promoted, primary_events;

static void p_event(void *o, enum hr_engine_event ev, const struct hr_epoch_stats *st)
{
	if (ev == HR_EV_EPOCH || ev == HR_EV_SYNCED)
		__atomic_add_fetch(&primary_acked, 1, __ATOMIC_SEQ_CST);
	primary_events++;
}

static void b_event(void *o, enum hr_engine_event ev, const struct hr_epoch_stats *st)
{
	if (ev == HR_EV_PROMOTED)
		promoted = 1;
}

struct runner {
	struct hr_engine *eng;
	int fd, backup, rc;
};

static void *run(void *arg)
{
	struct runner *r = arg;
	r->rc =
	    r->backup ? hr_engine_run_backup(r->eng, r->fd) : hr_engine_run_primary(r->eng, r->fd);
	return NULL;
}

static uint64_t last_seq(const char *s)
{
	uint64_t seq = 0;
	const char *p = s;
	while ((p = strstr(p, "seq=")))
		seq = strtoull(p += 4, NULL, 10);
	return seq;
}

/* Every "memwalk: seq=N" line in order, N = previous + 1, errors=0. */
static int check_stream(const char *s, uint64_t *lines_r)
{
	uint64_t prev = 0, n = 0;
	const char *p = s;
	while ((p = strstr(p, "memwalk: seq="))) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			break;
		uint64_t seq = strtoull(p + 13, NULL, 10);
		if (prev && seq != prev + 1)
			return 0;
		if (!strstr(p, "errors=0") || strstr(p, "errors=0") > eol)
			return 0;
		prev = seq;
		n++;
		p = eol;
	}
	*lines_r = n;
	return n > 0;
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	plan(9);
	pthread_mutex_init(&out.lock, NULL);

	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	const struct hr_backend_ops *kvm = hr_backend_find("kvm");
	struct hr_engine_config pc = {
	    .name = "t-engine",
	    .ops = kvm,
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .console_sink = sink_fn,
	    .console_opaque = &out,
	    .on_event = p_event,
	    .vm = {.mem_bytes = 128 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = gh_guest("memwalk.elf"),
		   .cmdline = "rate=20000 wss=32M interval_ms=20"},
	};
	struct hr_engine_config bc = {
	    .name = "t-engine-b",
	    .ops = kvm,
	    .silence_ms = 300,
	    .auto_promote = 1,
	    .console_sink = sink_fn,
	    .console_opaque = &out,
	    .on_event = b_event,
	};
	struct runner p = {.fd = sv[0]}, b = {.fd = sv[1], .backup = 1};
	ok(hr_engine_new(&p.eng, &pc) == 0 && hr_engine_new(&b.eng, &bc) == 0, "engines built");
	pthread_t tp, tb;
	pthread_create(&tb, NULL, run, &b);
	pthread_create(&tp, NULL, run, &p);

	uint64_t t0 = hr_now_ns();
	while (__atomic_load_n(&primary_acked, __ATOMIC_SEQ_CST) < 80 && hr_now_ns() - t0 < 30e9)
		usleep(10000);
	uint64_t acked = primary_acked;
	double secs = (hr_now_ns() - t0) / 1e9;
	ok(acked >= 80, "80 epochs acknowledged (%llu in %.1f s)", (unsigned long long)acked, secs);
	struct hr_epoch_stats st;
	uint64_t nr;
	hr_engine_stats(p.eng, &st, &nr);
	diag("last epoch: interval %llu us, pause %llu us, %llu dirty pages, %llu bytes, ack %llu "
	     "us",
	     (unsigned long long)st.interval_us, (unsigned long long)st.pause_us,
	     (unsigned long long)st.dirty_pages, (unsigned long long)st.bytes,
	     (unsigned long long)st.ack_us);
	ok(st.dirty_pages > 0 && st.interval_us > 0, "epochs carry dirty pages");

	pthread_mutex_lock(&out.lock);
	uint64_t seen_seq = last_seq(out.buf ? out.buf : "");
	pthread_mutex_unlock(&out.lock);
	ok(seen_seq > 10, "released console output reaches the outside (seq %llu)",
	   (unsigned long long)seen_seq);

	/* Cut the primary off mid-run: as if its host died.  The primary's guest
	 * is stopped first so that only the backup's copy can produce output. */
	hr_engine_abort(p.eng);
	pthread_join(tp, NULL);
	uint64_t t_kill = hr_now_ns();
	shutdown(sv[0], SHUT_RDWR);
	close(sv[0]);
	pthread_mutex_lock(&out.lock);
	size_t len_at_kill = out.len;
	uint64_t seq_at_kill = last_seq(out.buf);
	pthread_mutex_unlock(&out.lock);

	while (!promoted && hr_now_ns() - t_kill < 10e9)
		usleep(1000);
	ok(promoted, "backup promoted after the primary's stream ended (%.1f ms)",
	   (hr_now_ns() - t_kill) / 1e6);
	uint64_t want = seq_at_kill + 20;
	while (hr_now_ns() - t_kill < 20e9) {
		pthread_mutex_lock(&out.lock);
		uint64_t s = last_seq(out.buf);
		pthread_mutex_unlock(&out.lock);
		if (s >= want)
			break;
		usleep(10000);
	}
	hr_engine_stop(b.eng);
	pthread_join(tb, NULL);

	uint64_t lines = 0;
	ok(out.len > len_at_kill, "the promoted guest continues the console stream");
	ok(out.gaps == 0 && out.conflicts == 0,
	   "no gap and no offset with two contents (gaps %d, conflicts %d)", out.gaps,
	   out.conflicts);
	int stream_ok = check_stream(out.buf, &lines);
	ok(stream_ok && lines > 40,
	   "progress numbering never skips or goes back, 0 errors "
	   "(%llu lines)",
	   (unsigned long long)lines);
	ok(last_seq(out.buf) >= want,
	   "guest ran at least 20 lines past the failover (%llu -> %llu)",
	   (unsigned long long)seq_at_kill, (unsigned long long)last_seq(out.buf));
	if (tap_failed) {
		FILE *f = fopen("t-engine.console", "w");
		if (f) {
			fputs(out.buf ? out.buf : "", f);
			fclose(f);
		}
	}
	hr_engine_free(p.eng);
	hr_engine_free(b.eng);
	return tap_done();
}
