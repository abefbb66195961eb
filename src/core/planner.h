/*
 * planner.h - the live-phase policy: which pages go in the next live round
 * and when the live phase ends (the rest then travels in epoch 0, with the
 * guest paused).  Today's policy is pre-copy: round 0 sends every page the
 * guest has touched (a fresh replica is all zero), later rounds send what
 * was written meanwhile, until a round is small or a round limit is hit.
 * MPLM (bounded rounds, a never-sent set that only shrinks) is another
 * planner behind the same calls.
 */
#ifndef HR_CORE_PLANNER_H
#define HR_CORE_PLANNER_H

#include <stdint.h>

#include "core/dirtyset.h"
#include "core/guestmem.h"

struct hr_planner {
	unsigned round;
	unsigned max_rounds; /* default 8 */
	uint64_t done_pages; /* a round smaller than this ends the phase (default 2048) */
	uint64_t pages_sent; /* so far */
	uint64_t last_round_pages;
};

void hr_planner_init(struct hr_planner *p);

/*
 * The next live round.  dirty: pages written since the previous round (the
 * caller fetched them; round 0 ignores it and scans memory).  Returns 1
 * with *nr_r pages in gfns to send now (taken out of dirty), or 0 when the
 * live phase is over: whatever dirty still holds goes into epoch 0.
 */
int hr_planner_next(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		    uint64_t *gfns, uint64_t *nr_r);

#endif
