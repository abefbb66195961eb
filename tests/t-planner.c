/*
 * t-planner.c - the live-phase planner (core/planner.h) on the in-memory
 * backend, with a hand-stepped guest and a fake clock, and no network: the
 * pages a chunk names are copied into a replica's memory at once, and the
 * final stop-and-copy (epoch 0) copies what is still dirty.  Checks: the
 * never-sent set only shrinks; a guest writing between every chunk costs
 * at most 2 x RAM (+ one chunk) of live data and the phase ends by itself;
 * a slow writer's backlog is drained by tail rounds;
 * a quiet guest's memory travels once; zero pages stay home; extend keeps
 * the phase going until end_now, which ends it at the next boundary;
 * pre-copy ends by its round limit; the replica equals the primary page by
 * page after epoch 0 every time.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "backends/mem/mem.h"
#include "core/planner.h"

#define MEM_BYTES (16u << 20)
#define NR_PAGES  (MEM_BYTES / HR_PAGE_SIZE)
#define CHUNK_NS  1000000ull /* fake time a chunk takes */

struct rig {
	struct hr_vm *pvm, *rvm;
	struct hr_guestmem pgm, rgm;
	struct hr_dirtyset *dirty;
	uint64_t *gfns;
	uint64_t now_ns;
};

/* fill_pages: that many pages (from 0) hold data before tracking starts */
static int rig_open(struct rig *g, uint64_t fill_pages)
{
	const struct hr_backend_ops *ops = &hr_mem_ops;
	struct hr_vm_config pc = {
	    .name = "t-planner", .mem_bytes = MEM_BYTES, .nr_vcpus = 1, .kernel_path = "none"};
	struct hr_vm_config rc = {.name = "t-planner-r", .mem_bytes = MEM_BYTES, .nr_vcpus = 1};

	memset(g, 0, sizeof(*g));
	g->now_ns = 1000000000ull;
	if (ops->open(&g->pvm, &pc) < 0 || ops->open(&g->rvm, &rc) < 0 ||
	    hr_guestmem_init(&g->pgm, ops, g->pvm) < 0 ||
	    hr_guestmem_init(&g->rgm, ops, g->rvm) < 0 ||
	    hr_dirtyset_new(&g->dirty, g->pgm.nr_gfns) < 0 ||
	    !(g->gfns = malloc(g->pgm.nr_gfns * sizeof(uint64_t))))
		return -1;
	for (uint64_t i = 0; i < fill_pages; i++)
		memset(g->pgm.regions[0].hva + i * HR_PAGE_SIZE, (int)(i % 255) + 1, HR_PAGE_SIZE);
	if (ops->dirty_start(g->pvm) < 0 || ops->resume(g->pvm) < 0)
		return -1;
	return 0;
}

static void rig_close(struct rig *g)
{
	hr_mem_ops.close(g->pvm);
	hr_mem_ops.close(g->rvm);
	hr_dirtyset_free(g->dirty);
	free(g->gfns);
}

static void copy_pages(struct rig *g, const uint64_t *gfns, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		memcpy(g->rgm.regions[0].hva + gfns[i] * HR_PAGE_SIZE,
		       g->pgm.regions[0].hva + gfns[i] * HR_PAGE_SIZE, HR_PAGE_SIZE);
}

/* Epoch 0: the guest stops, what is dirty is copied.  Pages copied. */
static uint64_t stop_and_copy(struct rig *g)
{
	hr_mem_ops.pause(g->pvm);
	hr_mem_ops.dirty_fetch(g->pvm, hr_dirtyset_bits(g->dirty));
	uint64_t n = hr_dirtyset_take(g->dirty, g->gfns);
	copy_pages(g, g->gfns, n);
	return n;
}

static int same_memory(const struct rig *g)
{
	return !memcmp(g->pgm.regions[0].hva, g->rgm.regions[0].hva, MEM_BYTES);
}

struct run {
	uint64_t rounds, pages, dirty_pages, zero_pages, epoch0_pages, max_round_pages;
	int shrink_only, ended, final_left_zero;
	struct hr_live_round last;
};

/*
 * Drive a live phase: writes_per_chunk guest writes before every chunk;
 * stop after max_rounds rounds if it has not ended (ended = 0).  At round
 * end_at (if non-zero) end_now is set.
 */
static void drive(struct rig *g, struct hr_planner *pl, unsigned writes_per_chunk,
		  unsigned max_rounds, unsigned end_at, struct run *r)
{
	uint64_t n, prev_left = UINT64_MAX;
	struct hr_live_round done;

	memset(r, 0, sizeof(*r));
	r->shrink_only = 1;
	hr_planner_start(pl, &g->pgm, g->now_ns);
	for (unsigned k = 0; k < 100000; k++) {
		hr_mem_ops.dirty_fetch(g->pvm, hr_dirtyset_bits(hr_planner_fresh(pl)));
		if (end_at && pl->round == end_at)
			pl->end_now = 1;
		int more = hr_planner_round(pl, &g->pgm, g->dirty, g->now_ns, &done);
		uint64_t left = hr_dirtyset_count(pl->never_sent);
		r->shrink_only &= left <= prev_left;
		prev_left = left;
		if (done.round_us) {
			r->last = done;
			uint64_t rp = done.never_sent_pages + done.dirty_pages;
			if (rp > r->max_round_pages)
				r->max_round_pages = rp;
		}
		if (!more) {
			r->ended = 1;
			break;
		}
		if (pl->round > max_rounds)
			break;
		for (;;) {
			if (writes_per_chunk)
				hr_mem_guest_step(g->pvm, writes_per_chunk);
			int c = hr_planner_chunk(pl, &g->pgm, g->dirty, g->now_ns, g->gfns, &n);
			if (c <= 0) {
				g->now_ns += hr_planner_wait_ns(pl, g->now_ns);
				break;
			}
			g->now_ns += CHUNK_NS;
			copy_pages(g, g->gfns, n);
			left = hr_dirtyset_count(pl->never_sent);
			r->shrink_only &= left <= prev_left;
			prev_left = left;
		}
	}
	r->rounds = pl->round;
	r->pages = pl->pages_sent;
	r->dirty_pages = pl->dirty_sent;
	r->final_left_zero = !hr_dirtyset_count(pl->never_sent);
}

static struct hr_live_config mplm(uint64_t round_ms, int extend)
{
	struct hr_live_config c = {.mode = HR_LIVE_MPLM, .round_ms = round_ms, .extend = extend};
	return c;
}

int main(void)
{
	struct rig g;
	struct hr_planner pl;
	struct run r;

	plan(28);

	/* 1. a guest that writes between every chunk, far faster than pages go */
	ok(rig_open(&g, NR_PAGES) == 0, "a primary and a replica (%u pages)", NR_PAGES);
	struct hr_live_config c = mplm(2, 0); /* 2 chunks a round */
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 400, 10000, 0, &r);
	ok(r.ended, "fast writer: the live phase ends by itself (%llu rounds)",
	   (unsigned long long)r.rounds);
	ok(r.shrink_only, "fast writer: the never-sent set only shrinks");
	ok(r.final_left_zero && r.last.never_sent_left == 0,
	   "fast writer: it ends with the never-sent set empty");
	ok(r.pages <= 2ull * NR_PAGES + HR_LIVE_CHUNK_PAGES,
	   "fast writer: live pages %llu <= 2 x RAM (%u) + one chunk", (unsigned long long)r.pages,
	   2 * NR_PAGES);
	ok(r.dirty_pages > 0, "fast writer: dirty pages went live too (%llu)",
	   (unsigned long long)r.dirty_pages);
	ok(r.last.dirty_rate > 0 && r.last.round_us > 0 && r.last.elapsed_us >= r.last.round_us,
	   "fast writer: round figures (rate %llu pages/s, %llu us)",
	   (unsigned long long)r.last.dirty_rate, (unsigned long long)r.last.round_us);
	r.epoch0_pages = stop_and_copy(&g);
	ok(same_memory(&g), "fast writer: replica == primary after epoch 0 (%llu pages)",
	   (unsigned long long)r.epoch0_pages);
	diag("fast writer: %.2f x RAM live in %llu rounds, epoch 0 %llu pages",
	     (double)r.pages / NR_PAGES, (unsigned long long)r.rounds,
	     (unsigned long long)r.epoch0_pages);
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 2. a quiet guest: memory written once, then nothing */
	rig_open(&g, NR_PAGES / 2);
	int64_t touched = hr_planner_touched(&g.pgm, g.gfns);
	c = mplm(100, 0);
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 0, 10000, 0, &r);
	ok(r.ended && r.rounds == 1, "quiet: ends by itself in %llu rounds",
	   (unsigned long long)r.rounds);
	ok(touched == NR_PAGES / 2 && r.pages == (uint64_t)touched,
	   "quiet: every touched page travels once (%llu of %lld touched, %u RAM)",
	   (unsigned long long)r.pages, (long long)touched, NR_PAGES);
	ok(r.dirty_pages == 0, "quiet: no dirty page sent");
	ok(r.last.zero_pages + r.pages == NR_PAGES,
	   "quiet: the untouched pages stay home (%llu zero)",
	   (unsigned long long)r.last.zero_pages);
	r.epoch0_pages = stop_and_copy(&g);
	ok(r.epoch0_pages == 0 && same_memory(&g), "quiet: replica == primary, epoch 0 empty");
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 3. extend: the phase goes on after the set is empty, until end_now */
	rig_open(&g, NR_PAGES);
	c = mplm(20, 1);
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 50, 60, 0, &r);
	ok(!r.ended && r.rounds > 60 && r.final_left_zero,
	   "extend: still live after %llu rounds, never-sent set empty",
	   (unsigned long long)r.rounds);
	ok(r.shrink_only, "extend: the never-sent set only shrank");
	hr_planner_fini(&pl);
	rig_close(&g);

	rig_open(&g, NR_PAGES);
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 50, 10000, 40, &r);
	ok(r.ended && r.rounds == 40, "extend + end_now at round 40: ended at that boundary (%llu)",
	   (unsigned long long)r.rounds);
	r.epoch0_pages = stop_and_copy(&g);
	ok(same_memory(&g), "extend: replica == primary after epoch 0");
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 4. end_now before the set is empty: the rest goes in epoch 0 */
	rig_open(&g, NR_PAGES);
	c = mplm(2, 0); /* 2 chunks a round */
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 10, 10000, 2, &r);
	ok(r.ended && r.rounds == 2 && r.final_left_zero,
	   "end_now early: ends at round 2, never-sent set emptied");
	r.epoch0_pages = stop_and_copy(&g);
	ok(r.epoch0_pages > 0 && same_memory(&g),
	   "end_now early: replica == primary (epoch 0 %llu pages)",
	   (unsigned long long)r.epoch0_pages);
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 5. share: 25 % dirty pages bounds the live phase to 4/3 RAM */
	rig_open(&g, NR_PAGES);
	c = mplm(2, 0);
	c.dirty_pct = 25;
	hr_planner_init(&pl, &c);
	drive(&g, &pl, 400, 10000, 0, &r);
	ok(r.ended && r.pages <= NR_PAGES * 4 / 3 + HR_LIVE_CHUNK_PAGES,
	   "dirty_pct 25: %llu pages <= 4/3 RAM + one chunk", (unsigned long long)r.pages);
	stop_and_copy(&g);
	ok(same_memory(&g), "dirty_pct 25: replica == primary");
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 5b. a slow writer: after the never-sent set, a tail drains the backlog */
	rig_open(&g, NR_PAGES);
	c = mplm(4, 0);
	hr_planner_init(&pl, &c);
	pl.done_pages = 64;
	drive(&g, &pl, 60, 10000, 0, &r);
	r.epoch0_pages = stop_and_copy(&g);
	ok(r.ended && r.pages <= 2ull * NR_PAGES && r.epoch0_pages < 64 + 4 * 60,
	   "slow writer: tail rounds leave a small epoch 0 (%llu pages, %.2f x RAM live, "
	   "%llu rounds)",
	   (unsigned long long)r.epoch0_pages, (double)r.pages / NR_PAGES,
	   (unsigned long long)r.rounds);
	ok(same_memory(&g), "slow writer: replica == primary");
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 6. pre-copy: a fast writer never converges, the round limit ends it */
	rig_open(&g, NR_PAGES);
	c = (struct hr_live_config){.mode = HR_LIVE_PRECOPY};
	hr_planner_init(&pl, &c);
	pl.done_pages = 64; /* this RAM is smaller than the default */
	drive(&g, &pl, 400, 10000, 0, &r);
	ok(r.ended && r.rounds == pl.max_rounds + 1, "pre-copy: ends by its round limit (%llu)",
	   (unsigned long long)r.rounds);
	ok(r.shrink_only, "pre-copy: the never-sent set only shrinks");
	r.epoch0_pages = stop_and_copy(&g);
	ok(same_memory(&g), "pre-copy: replica == primary (%.2f x RAM live, epoch 0 %llu pages)",
	   (double)r.pages / NR_PAGES, (unsigned long long)r.epoch0_pages);
	hr_planner_fini(&pl);
	rig_close(&g);

	/* 7. pre-copy, quiet guest: one round, then a small dirty set ends it */
	rig_open(&g, NR_PAGES);
	hr_planner_init(&pl, &c);
	pl.done_pages = 64;
	drive(&g, &pl, 0, 10000, 0, &r);
	ok(r.ended && r.rounds == 1, "pre-copy quiet: %llu rounds", (unsigned long long)r.rounds);
	stop_and_copy(&g);
	ok(same_memory(&g), "pre-copy quiet: replica == primary");
	hr_planner_fini(&pl);
	rig_close(&g);
	return tap_failed ? 1 : 0;
}
