/*
 * t-live.c - the primary's live phase end to end (engine + MPLM planner +
 * sender + backup) on the mem backend, seen through on_round: a guest
 * writing as fast as it can costs at most 2 x RAM (+ one round) of live
 * data and the phase ends by itself; extend keeps it going until
 * hr_engine_live_request(HR_LIVE_END), which ends it at the next round; a
 * full held output ends it too; a quiet guest sends its memory about once;
 * on KVM, memwalk synced warm checks its own memory after a failover; max_bytes_per_s paces
 * it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "engine-pair.h"
#include "guest-harness.h"
#include "backends/mem/mem.h"
#include "common/util.h"

#define MEM_BYTES  (32ull << 20)
#define MAX_ROUNDS 4096

struct rounds {
	pthread_mutex_t lock;
	struct hr_live_round r[MAX_ROUNDS];
	volatile uint64_t n;
};

static void on_round(void *opaque, const struct hr_live_round *r)
{
	struct rounds *rs = opaque;
	pthread_mutex_lock(&rs->lock);
	if (rs->n < MAX_ROUNDS)
		rs->r[rs->n] = *r;
	__atomic_add_fetch(&rs->n, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&rs->lock);
}

struct sum {
	uint64_t bytes, max_round_bytes, never_sent_pages, dirty_pages, zero_pages;
	int shrink_only;
	struct hr_live_round last;
};

static void sum_rounds(struct rounds *rs, struct sum *s)
{
	uint64_t prev = UINT64_MAX;

	memset(s, 0, sizeof(*s));
	s->shrink_only = 1;
	pthread_mutex_lock(&rs->lock);
	for (uint64_t i = 0; i < rs->n && i < MAX_ROUNDS; i++) {
		const struct hr_live_round *r = &rs->r[i];
		s->bytes += r->bytes;
		if (r->bytes > s->max_round_bytes)
			s->max_round_bytes = r->bytes;
		s->never_sent_pages += r->never_sent_pages;
		s->dirty_pages += r->dirty_pages;
		s->zero_pages += r->zero_pages;
		s->shrink_only &= r->never_sent_left <= prev && r->round == i;
		prev = r->never_sent_left;
		s->last = *r;
	}
	pthread_mutex_unlock(&rs->lock);
}

static void show(const char *what, struct rounds *rs, const struct sum *s)
{
	diag("%s: %llu rounds, %.2f x RAM live (%llu never-sent + %llu dirty pages, %llu zero), "
	     "last round: %llu never-sent left, %llu dirty left, %llu pages/s written, %llu ms in",
	     what, (unsigned long long)rs->n, (double)s->bytes / MEM_BYTES,
	     (unsigned long long)s->never_sent_pages, (unsigned long long)s->dirty_pages,
	     (unsigned long long)s->zero_pages, (unsigned long long)s->last.never_sent_left,
	     (unsigned long long)s->last.dirty_left, (unsigned long long)s->last.dirty_rate,
	     (unsigned long long)s->last.elapsed_us / 1000);
}

/* The guests: FAST writes far more pages a second than the link takes (and
 * little output: a flood of console lines would fill the held output and
 * end the live phase early); QUIET hardly writes. */
#define FAST	 "steps_per_s=200 writes=4000"
#define QUIET	 "steps_per_s=20 writes=4"
#define FLAT_OUT "steps_per_s=0 writes=1000"

static void start(struct ep_pair *ep, struct rounds *rs, const char *cmdline,
		  struct hr_live_config live)
{
	struct hr_engine_config pc = {
	    .name = "t-live",
	    .ops = &hr_mem_ops,
	    .epoch_us = 25000,
	    .silence_ms = 2000,
	    .vm = {.mem_bytes = MEM_BYTES,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = cmdline,
		   .options = "fill=1"},
	    .live = live,
	    .on_round = on_round,
	    .round_opaque = rs,
	};
	struct hr_engine_config bc = {.name = "t-live-b", .silence_ms = 2000};

	memset(ep, 0, sizeof(*ep));
	memset(rs, 0, sizeof(*rs));
	pthread_mutex_init(&rs->lock, NULL);
	ok(ep_start(ep, pc, bc, EP_SOCKETPAIR) == 0, "%s: engines started", cmdline);
}

/*
 * KVM: memwalk (it checks every page of its working set against its own
 * generation table and counts errors) runs in an extended live phase for
 * 2 s, so the sync meets a warm guest; HR_LIVE_END, epochs, the primary
 * dies, the backup promotes: the guest must go on with errors=0.
 */
static int kvm_memwalk(void)
{
	struct ep_pair ep = {0};
	static struct rounds rs;
	struct hr_engine_config pc = {
	    .name = "t-live-kvm",
	    .ops = hr_backend_find("kvm"),
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .vm = {.mem_bytes = 128ull << 20,
		   .nr_vcpus = 1,
		   .kernel_path = gh_guest("memwalk.elf"),
		   .cmdline = "rate=20000 wss=32M interval_ms=20"},
	    .live = {.round_ms = 200, .extend = 1},
	    .on_round = on_round,
	    .round_opaque = &rs,
	};
	struct hr_engine_config bc = {.name = "t-live-kvm-b", .silence_ms = 300, .auto_promote = 1};

	pthread_mutex_init(&rs.lock, NULL);
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "kvm: engines started");
	ep_wait_u64(&rs.n, 10, 30);
	hr_engine_live_request(ep.p, HR_LIVE_END);
	ok(ep_wait_u64(&ep.p_acked, 20, 30), "kvm: warm sync after %llu extended rounds, 20 epochs",
	   (unsigned long long)rs.n);
	ep_kill_primary(&ep);
	uint64_t t_kill = hr_now_ns();
	while (ep.b_state != HR_RS_PROMOTED && hr_now_ns() - t_kill < 10e9)
		usleep(1000);
	int promoted = ep.b_state == HR_RS_PROMOTED;
	pthread_mutex_lock(&ep.lock);
	size_t at_kill = ep.out[0].len;
	pthread_mutex_unlock(&ep.lock);
	usleep(1500000); /* 75 lines, 4 sweeps of the working set */
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	ep.fds[0] = -1;
	struct ep_chan *c = &ep.out[0];
	const char *tail = c->buf ? c->buf + at_kill : "";
	unsigned lines = 0, bad = 0;
	for (const char *l = strstr(tail, "memwalk: seq="); l; l = strstr(l + 1, "memwalk: seq=")) {
		const char *e = strstr(l, "errors=");
		lines++;
		bad += !e || e[7] != '0';
	}
	ok(promoted && lines > 20 && !bad,
	   "kvm: the promoted guest checks its memory: %u lines, %u with errors", lines, bad);
	hr_engine_free(ep.p);
	hr_engine_free(ep.b);
	for (unsigned i = 0; i < HR_MAX_CHANNELS; i++)
		free(ep.out[i].buf);
	return 0;
}

int main(void)
{
	static struct rounds rs;
	struct ep_pair ep;
	struct sum s;

	int kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	plan(kvm ? 27 : 24);

	/* 1. as fast as it can: a write-only loop over all of RAM */
	/* the link paced to 64 MiB/s: the guest writes many times faster */
	start(&ep, &rs, FLAT_OUT,
	      (struct hr_live_config){.round_ms = 100, .max_bytes_per_s = 64ull << 20});
	ok(ep_wait_u64(&ep.p_acked, 1, 60), "fast: the live phase ended by itself, epoch 0 acked");
	sum_rounds(&rs, &s);
	show("fast", &rs, &s);
	ok(s.shrink_only && s.last.never_sent_left == 0,
	   "fast: rounds numbered, never-sent set only shrank, empty at the end");
	ok(s.bytes <= 2 * MEM_BYTES + s.max_round_bytes,
	   "fast: %.2f x RAM live <= 2 x RAM + one round", (double)s.bytes / MEM_BYTES);
	ok(s.last.dirty_rate > 0 && s.last.total_bytes == s.bytes && s.last.elapsed_us > 0,
	   "fast: round figures (dirty rate, total bytes, elapsed)");
	ep_finish(&ep);

	/* 1b. writing 20 k pages/s, the link paced to 16 k pages/s: rounds
	 * interleave the two sets */
	start(&ep, &rs, "steps_per_s=1000 writes=20",
	      (struct hr_live_config){.round_ms = 100, .max_bytes_per_s = 64ull << 20});
	ok(ep_wait_u64(&ep.p_acked, 1, 60), "faster than the link: ended by itself");
	sum_rounds(&rs, &s);
	show("faster than the link", &rs, &s);
	ok(rs.n > 1 && s.dirty_pages > 0 && s.shrink_only && s.last.never_sent_left == 0,
	   "faster than the link: %llu rounds, dirty pages interleaved", (unsigned long long)rs.n);
	ok(s.bytes <= 2 * MEM_BYTES + s.max_round_bytes,
	   "faster than the link: %.2f x RAM live <= 2 x RAM + one round",
	   (double)s.bytes / MEM_BYTES);
	ep_finish(&ep);

	/* 2. extend: live until asked to end */
	start(&ep, &rs, FAST, (struct hr_live_config){.round_ms = 50, .extend = 1});
	ep_wait_u64(&rs.n, 20, 60);
	sum_rounds(&rs, &s);
	ok(rs.n >= 20 && s.last.never_sent_left == 0 && ep.p_acked == 0,
	   "extend: still live after %llu rounds with the never-sent set empty",
	   (unsigned long long)rs.n);
	show("extend", &rs, &s);
	ok(s.last.dirty_pages > 0, "extend: rounds keep sending dirty pages (%llu)",
	   (unsigned long long)s.last.dirty_pages);
	uint64_t at = rs.n;
	hr_engine_live_request(ep.p, HR_LIVE_END);
	ok(ep_wait_u64(&ep.p_acked, 1, 10), "extend: HR_LIVE_END ends it, epoch 0 acked");
	ok(rs.n <= at + 2, "extend: at the next round boundary (%llu rounds after the request)",
	   (unsigned long long)(rs.n - at));
	ep_finish(&ep);

	/* 3. extend turned off by a request: ends once the set is empty */
	start(&ep, &rs, FAST, (struct hr_live_config){.round_ms = 50, .extend = 1});
	ep_wait_u64(&rs.n, 5, 60);
	hr_engine_live_request(ep.p, HR_LIVE_NO_EXTEND);
	ok(ep_wait_u64(&ep.p_acked, 1, 10), "extend off by request: the phase ends");
	ep_finish(&ep);

	/* 3b. extended, but the guest's held output fills: the phase ends */
	start(&ep, &rs, "steps_per_s=0 writes=64",
	      (struct hr_live_config){.round_ms = 1000, .extend = 1});
	ok(ep_wait_u64(&ep.p_acked, 1, 20), "extend + output full: ended, epoch 0 acked");
	ep_finish(&ep);

	/* 4. a quiet guest: its memory travels about once */
	start(&ep, &rs, QUIET, (struct hr_live_config){0});
	ok(ep_wait_u64(&ep.p_acked, 1, 30), "quiet: epoch 0 acked");
	sum_rounds(&rs, &s);
	show("quiet", &rs, &s);
	ok(rs.n <= 2 && s.bytes <= MEM_BYTES + s.dirty_pages * HR_PAGE_SIZE &&
	       s.never_sent_pages + s.zero_pages >= MEM_BYTES / HR_PAGE_SIZE - s.dirty_pages,
	   "quiet: %llu rounds, %.3f x RAM", (unsigned long long)rs.n, (double)s.bytes / MEM_BYTES);
	ep_finish(&ep);

	/* 5. paced: 32 MiB/s */
	uint64_t cap = 32ull << 20;
	start(&ep, &rs, QUIET, (struct hr_live_config){.round_ms = 100, .max_bytes_per_s = cap});
	ok(ep_wait_u64(&ep.p_acked, 1, 60), "paced: epoch 0 acked");
	sum_rounds(&rs, &s);
	show("paced", &rs, &s);
	double want_s = (double)s.bytes / cap, got_s = s.last.elapsed_us / 1e6;
	ok(s.bytes > MEM_BYTES / 2 && got_s >= want_s * 0.9 && got_s <= want_s + 1.0,
	   "paced: %.1f MiB in %.2f s (%.2f s at the cap)", s.bytes / 1048576.0, got_s, want_s);
	ep_finish(&ep);
	if (kvm)
		kvm_memwalk();
	else
		diag("/dev/kvm not usable: the KVM run is skipped");
	return tap_done();
}
