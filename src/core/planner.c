/* planner.c - the pre-copy live-phase policy (planner.h). */
#include <string.h>
#include <sys/mman.h>

#include "core/planner.h"

#define DEFAULT_MAX_ROUNDS 8
#define DEFAULT_DONE_PAGES 2048u

void hr_planner_init(struct hr_planner *p)
{
	memset(p, 0, sizeof(*p));
	p->max_rounds = DEFAULT_MAX_ROUNDS;
	p->done_pages = DEFAULT_DONE_PAGES;
}

static int page_is_zero(const uint8_t *pg)
{
	uint64_t w[HR_PAGE_SIZE / 8];
	memcpy(w, pg, sizeof(w));
	for (unsigned i = 0; i < HR_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* Round 0: every resident, non-zero page of RAM. */
static uint64_t touched_pages(struct hr_guestmem *gm, uint64_t *gfns)
{
	uint64_t n = 0;

	for (unsigned r = 0; r < gm->nr_regions; r++) {
		const struct hr_mem_region *reg = &gm->regions[r];
		uint64_t pages = reg->bytes >> HR_PAGE_SHIFT, first = reg->gpa >> HR_PAGE_SHIFT;
		unsigned char vec[4096];

		for (uint64_t p = 0; p < pages; p += sizeof(vec)) {
			uint64_t cnt = pages - p < sizeof(vec) ? pages - p : sizeof(vec);
			if (!reg->hva ||
			    mincore(reg->hva + p * HR_PAGE_SIZE, cnt * HR_PAGE_SIZE, vec) < 0)
				memset(vec, 1, cnt); /* unknown: look at every page */
			for (uint64_t i = 0; i < cnt; i++) {
				if (!(vec[i] & 1))
					continue;
				uint64_t g = first + p + i;
				uint8_t *pg;
				if (hr_guestmem_map(gm, &g, 1, 0, &pg) < 0)
					continue;
				if (pg && !page_is_zero(pg))
					gfns[n++] = g;
				hr_guestmem_unmap(gm);
			}
		}
	}
	return n;
}

int hr_planner_next(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		    uint64_t *gfns, uint64_t *nr_r)
{
	uint64_t n;

	if (p->round == 0) {
		n = touched_pages(gm, gfns);
	} else {
		if (p->round > p->max_rounds || hr_dirtyset_count(dirty) < p->done_pages)
			return 0;
		n = hr_dirtyset_take(dirty, gfns);
	}
	p->round++;
	p->pages_sent += n;
	p->last_round_pages = n;
	*nr_r = n;
	return 1;
}
