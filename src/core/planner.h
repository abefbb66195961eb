/*
 * planner.h - the live-phase policy: which pages go in each live round
 * (while the guest runs) and when the live phase ends; what is still dirty
 * then travels in epoch 0, with the guest paused (stop-and-copy).
 *
 * MPLM (the default; Memory-bounded Pre-copy Live Migration, Chanchio):
 *
 *   never_sent   one bit per gfn: "never sent and never written since the
 *                live phase began".  It starts as all of RAM and only
 *                shrinks: a page leaves it when it is sent, when the guest
 *                writes it (it is then a dirty page), or when it is found
 *                to be zero (below).
 *   dirty        pages written and not sent since (the engine's set,
 *                carried into epoch 0).
 *
 * Every round lasts round_ms and interleaves the two sets chunk by chunk:
 * dirty_pct of a chunk's pages come from dirty (when it has them), the
 * rest from never_sent.  The live phase ends at the first round boundary
 * where never_sent is empty.  Each chunk takes at least (100 - dirty_pct)%
 * of its pages from never_sent, so the dirty pages sent until never_sent
 * is empty are at most RAM * dirty_pct / (100 - dirty_pct) plus one chunk.
 * Then, if the guest writes slower than the link sends, a tail of
 * dirty-only rounds drains the backlog as pre-copy would (each round sends
 * the backlog found at its start), for as long as the backlog shrinks, is
 * at least done_pages and fits in the budget RAM * 100 / (100 - dirty_pct);
 * a guest writing faster than the link gets no tail.  So at the default
 * 50/50 the live phase sends at most about 2 x RAM, however fast the guest
 * writes, and a slow writer still leaves a small epoch 0.  With extend set the phase does not end
 * by itself: once never_sent is empty, rounds keep sending dirty pages (a round with nothing to
 * send waits for its end) until end_now.  end_now ends the phase at the next round boundary; pages
 * then still in never_sent are scanned (zero ones dropped, the others moved to dirty) for epoch 0.
 *
 * Zero pages.  A fresh replica is all zero, so a page of never_sent that
 * is zero need not travel.  A page taken from never_sent is looked at
 * before it is sent: with a host mapping (KVM, mem: private anonymous
 * memory), /proc/self/pagemap says whether it was ever populated (present
 * or swapped); a page that is neither was never touched and is zero
 * without reading it (no fault, no allocation); a populated page is read
 * and dropped if all zero.  Without pagemap, or with batched mappings
 * (Xen), every page is read.  A zero page the guest writes later is
 * reported by a later fetch and sent as a dirty page.
 *
 * Pre-copy (mode HR_LIVE_PRECOPY, kept for comparison and for guests whose
 * dirty set is small and whose link is fast): round 0 sends every non-zero
 * page of never_sent, untimed; later rounds send the whole dirty set
 * fetched at their start, until a round would be smaller than done_pages
 * or max_rounds is reached.  A guest writing faster than the link never
 * makes a round small: it ends by the round limit with a large epoch 0.
 *
 * The caller (engine-primary.c) drives it:
 *
 *     hr_planner_init; hr_planner_start
 *     loop: fetch the guest's writes into hr_planner_fresh(p)
 *           hr_planner_round()        0: the phase is over -> epoch 0
 *           while hr_planner_chunk() == 1: send its pages (maybe none)
 *           hr_planner_wait_ns() > 0: sleep that long (extend, idle)
 *     hr_planner_fini
 *
 * Time is passed in (now_ns), so the planner runs without a clock in tests.
 * Not thread-safe; the engine turns thread-safe requests into extend /
 * end_now between calls.
 */
#ifndef HR_CORE_PLANNER_H
#define HR_CORE_PLANNER_H

#include <stdint.h>

#include "core/dirtyset.h"
#include "core/guestmem.h"

enum hr_live_mode {
	HR_LIVE_MPLM = 0,    /* bounded rounds (default) */
	HR_LIVE_PRECOPY = 1, /* classic pre-copy with a round limit */
};

/* Defaults: see planner.c for why. */
#define HR_LIVE_ROUND_MS_DEFAULT  1000u
#define HR_LIVE_DIRTY_PCT_DEFAULT 50u
#define HR_LIVE_DIRTY_PCT_MAX	  90u
#define HR_LIVE_CHUNK_PAGES	  256u /* one PAGE_BATCH frame (1 MiB) */

/* The live phase's knobs (hr_engine_config.live); all 0 = MPLM defaults. */
struct hr_live_config {
	unsigned mode;		  /* enum hr_live_mode */
	uint64_t round_ms;	  /* MPLM round length (0 = HR_LIVE_ROUND_MS_DEFAULT) */
	unsigned dirty_pct;	  /* MPLM: dirty pages' share of a round, 1..90 (0 = 50) */
	int extend;		  /* MPLM: the phase does not end by itself (see above) */
	uint64_t max_bytes_per_s; /* pace the live phase's page data (0 = as fast as the link) */
};

/* One live round's figures (hr_engine_config.on_round). */
struct hr_live_round {
	uint64_t round;		   /* 0, 1, ... */
	uint64_t never_sent_pages; /* pages sent from the never-sent set */
	uint64_t dirty_pages;	   /* pages sent from the dirty set */
	uint64_t zero_pages;	   /* left the never-sent set as zero, not sent */
	uint64_t bytes;		   /* page data sent in the round */
	uint64_t never_sent_left;  /* the never-sent set after the round */
	uint64_t dirty_left;	   /* dirty pages waiting after the round */
	uint64_t dirty_rate;	   /* distinct pages the guest wrote per second in it */
	uint64_t round_us;	   /* its length */
	uint64_t elapsed_us;	   /* since the live phase began, at its end */
	uint64_t total_bytes;	   /* page data sent in the live phase so far */
};

struct hr_planner {
	struct hr_live_config cfg; /* defaults filled in */
	int extend;		   /* may change between calls */
	int end_now;		   /* set: the phase ends at the next boundary */
	unsigned max_rounds;	   /* pre-copy: default 8 */
	uint64_t done_pages;	   /* a backlog smaller than this ends the phase (default 2048) */

	unsigned round;			/* rounds started */
	int in_round, over;		/* a round runs; the phase ended */
	uint64_t start_ns;		/* the phase */
	uint64_t round_ns;		/* the running round's start */
	uint64_t pages_sent;		/* so far, both sets */
	uint64_t dirty_sent;		/* so far, from dirty */
	uint64_t nr_pages_ram;		/* never_sent's first size */
	uint64_t write_rate, send_rate; /* pages/s in the last round */
	int tail;			/* MPLM: in a dirty-only tail round */
	uint64_t tail_prev_pages;	/* the backlog when it began */
	struct hr_live_round cur;
	struct hr_dirtyset *never_sent, *fresh;
	uint64_t *scratch; /* HR_LIVE_CHUNK_PAGES */
	int pagemap_fd;	   /* /proc/self/pagemap, -1: read every page */
};

/* cfg NULL = defaults.  Nothing allocated yet. */
void hr_planner_init(struct hr_planner *p, const struct hr_live_config *cfg);

/* Size the sets for gm; never_sent = all of RAM.  0 or -ENOMEM. */
int hr_planner_start(struct hr_planner *p, struct hr_guestmem *gm, uint64_t now_ns);
void hr_planner_fini(struct hr_planner *p);

/* Where the caller collects the guest's writes before hr_planner_round
 * (pass hr_dirtyset_bits() of it to dirty_fetch). */
struct hr_dirtyset *hr_planner_fresh(struct hr_planner *p);

/*
 * A round boundary: the fresh writes join dirty and leave never_sent; the
 * round that ran (if any) is closed into *done_r (done_r->round_us == 0
 * when none ran).  Returns 1 when a new round starts, 0 when the live
 * phase is over (never_sent is then empty: what it held is in dirty or
 * was zero).  -errno if scanning memory failed.
 */
int hr_planner_round(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		     uint64_t now_ns, struct hr_live_round *done_r);

/*
 * The next chunk of the running round: 1 with *nr_r pages (at most
 * HR_LIVE_CHUNK_PAGES, possibly 0 when all were zero) in gfns to send now,
 * taken out of their sets; 0 when the round has nothing more to send (its
 * time is up, or its sets are empty).  -errno if mapping memory failed.
 */
int hr_planner_chunk(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		     uint64_t now_ns, uint64_t *gfns, uint64_t *nr_r);

/* After hr_planner_chunk returned 0: how long to wait before the next
 * boundary (an extended phase with nothing to send waits for the round's
 * end; otherwise 0). */
uint64_t hr_planner_wait_ns(const struct hr_planner *p, uint64_t now_ns);

/* Every non-zero page of RAM, ascending, into gfns (room for all gfns):
 * what a fresh replica lacks.  For tools and tests; -errno or the count. */
int64_t hr_planner_touched(struct hr_guestmem *gm, uint64_t *gfns);

#endif
