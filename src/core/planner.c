/*
 * planner.c - the live-phase policy (planner.h): MPLM bounded rounds, or
 * classic pre-copy.
 *
 * Why a 1 s round (MPLM's own is 3 s): here a round boundary is also when
 * the dirty set is fetched, and the fetch is what takes pages out of the
 * never-sent set - a longer round sends more never-sent pages the guest
 * has already rewritten (sent twice), a shorter one re-arms write
 * protection more often (each hot page faults again after every fetch:
 * ~23 us each on this machine's PVM, ~1 us with PML), and a round is the
 * unit of the operator's view: one progress line and the end-live
 * latency.  1 s gives a progress line a second and an end-live answer
 * within a second, at a fetch cost far below the 25 ms epochs that follow.
 * The 50/50 share is MPLM's: it bounds the live phase to 2 x RAM and lets
 * a fast writer's dirty pages go out as fast as the never-sent ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/planner.h"

#define DEFAULT_MAX_ROUNDS 8
#define DEFAULT_DONE_PAGES 2048u
#define PM_PRESENT	   (1ull << 63)
#define PM_SWAPPED	   (1ull << 62)

void hr_planner_init(struct hr_planner *p, const struct hr_live_config *cfg)
{
	memset(p, 0, sizeof(*p));
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.round_ms)
		p->cfg.round_ms = HR_LIVE_ROUND_MS_DEFAULT;
	if (!p->cfg.dirty_pct)
		p->cfg.dirty_pct = HR_LIVE_DIRTY_PCT_DEFAULT;
	if (p->cfg.dirty_pct > HR_LIVE_DIRTY_PCT_MAX)
		p->cfg.dirty_pct = HR_LIVE_DIRTY_PCT_MAX;
	p->extend = p->cfg.mode == HR_LIVE_MPLM && p->cfg.extend;
	p->max_rounds = DEFAULT_MAX_ROUNDS;
	p->done_pages = DEFAULT_DONE_PAGES;
	p->pagemap_fd = -1;
}

int hr_planner_start(struct hr_planner *p, struct hr_guestmem *gm, uint64_t now_ns)
{
	int rc;

	if ((rc = hr_dirtyset_new(&p->never_sent, gm->nr_gfns)) < 0 ||
	    (rc = hr_dirtyset_new(&p->fresh, gm->nr_gfns)) < 0)
		return rc;
	if (!(p->scratch = malloc(HR_LIVE_CHUNK_PAGES * sizeof(uint64_t))))
		return -ENOMEM;
	hr_dirtyset_fill(p->never_sent, gm->regions, gm->nr_regions);
	p->nr_pages_ram = hr_dirtyset_count(p->never_sent);
	p->cur.never_sent_left = p->nr_pages_ram;
	if (!gm->batched)
		p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	p->start_ns = now_ns;
	return 0;
}

void hr_planner_fini(struct hr_planner *p)
{
	hr_dirtyset_free(p->never_sent);
	hr_dirtyset_free(p->fresh);
	free(p->scratch);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	p->never_sent = p->fresh = NULL;
	p->scratch = NULL;
	p->pagemap_fd = -1;
}

struct hr_dirtyset *hr_planner_fresh(struct hr_planner *p)
{
	return p->fresh;
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

/* pop[i]: may gfns[i] hold data?  0 only when pagemap says the page of the
 * host mapping was never populated (neither present nor swapped out). */
static void populated(int pm_fd, struct hr_guestmem *gm, const uint64_t *gfns, unsigned n,
		      uint8_t *pop)
{
	uint64_t ent[HR_LIVE_CHUNK_PAGES];

	memset(pop, 1, n);
	if (pm_fd < 0 || gm->batched)
		return;
	for (unsigned i = 0; i < n;) {
		uint8_t *hva = hr_layout_gfn_hva(gm->regions, gm->nr_regions, gfns[i]);
		unsigned run = 1;
		if (!hva) {
			i++;
			continue;
		}
		while (i + run < n && gfns[i + run] == gfns[i] + run &&
		       hr_layout_gfn_hva(gm->regions, gm->nr_regions, gfns[i + run]) ==
			   hva + (size_t)run * HR_PAGE_SIZE)
			run++;
		off_t off = (off_t)((uintptr_t)hva / HR_PAGE_SIZE * 8);
		if (pread(pm_fd, ent, run * 8u, off) == (ssize_t)(run * 8u))
			for (unsigned j = 0; j < run; j++)
				pop[i + j] = !!(ent[j] & (PM_PRESENT | PM_SWAPPED));
		i += run;
	}
}

/* Keep the gfns of in[0..n) that are RAM and not zero (in order) in out;
 * *zeros_r counts the others.  Returns how many were kept, or -errno. */
static int64_t drop_zero(int pm_fd, struct hr_guestmem *gm, const uint64_t *in, unsigned n,
			 uint64_t *out, uint64_t *zeros_r)
{
	uint8_t pop[HR_LIVE_CHUNK_PAGES], *ptrs[HR_LIVE_CHUNK_PAGES];
	uint64_t look[HR_LIVE_CHUNK_PAGES];
	unsigned nl = 0, k = 0;
	int rc;

	populated(pm_fd, gm, in, n, pop);
	for (unsigned i = 0; i < n; i++)
		if (pop[i])
			look[nl++] = in[i];
	*zeros_r += n - nl;
	if (!nl)
		return 0;
	if ((rc = hr_guestmem_map(gm, look, nl, 0, ptrs)) < 0)
		return rc;
	for (unsigned i = 0; i < nl; i++) {
		if (ptrs[i] && !page_is_zero(ptrs[i]))
			out[k++] = look[i];
		else
			(*zeros_r)++;
	}
	hr_guestmem_unmap(gm);
	return k;
}

/* Up to max pages out of never_sent; the non-zero ones into out. */
static int64_t take_never_sent(struct hr_planner *p, struct hr_guestmem *gm, uint64_t *out,
			       uint64_t max)
{
	uint64_t m = hr_dirtyset_take_some(p->never_sent, p->scratch,
					   max < HR_LIVE_CHUNK_PAGES ? max : HR_LIVE_CHUNK_PAGES);
	p->cur.never_sent_left -= m;
	return drop_zero(p->pagemap_fd, gm, p->scratch, (unsigned)m, out, &p->cur.zero_pages);
}

int64_t hr_planner_touched(struct hr_guestmem *gm, uint64_t *gfns)
{
	int pm_fd = gm->batched ? -1 : open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t in[HR_LIVE_CHUNK_PAGES], zeros = 0;
	int64_t n = 0;

	for (unsigned r = 0; r < gm->nr_regions && n >= 0; r++) {
		uint64_t first = gm->regions[r].gpa >> HR_PAGE_SHIFT;
		uint64_t pages = gm->regions[r].bytes >> HR_PAGE_SHIFT;
		for (uint64_t g = 0; g < pages;) {
			unsigned c = 0;
			while (c < HR_LIVE_CHUNK_PAGES && g < pages)
				in[c++] = first + g++;
			int64_t k = drop_zero(pm_fd, gm, in, c, gfns + n, &zeros);
			if (k < 0) {
				n = k;
				break;
			}
			n += k;
		}
	}
	if (pm_fd >= 0)
		close(pm_fd);
	return n;
}

/* The phase ends early (end_now): what never_sent still holds and is not
 * zero becomes dirty, for epoch 0. */
static int flush_never_sent(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty)
{
	uint64_t out[HR_LIVE_CHUNK_PAGES];

	while (p->cur.never_sent_left) {
		uint64_t left = p->cur.never_sent_left;
		int64_t k = take_never_sent(p, gm, out, HR_LIVE_CHUNK_PAGES);
		if (k < 0)
			return (int)k;
		for (int64_t i = 0; i < k; i++)
			hr_dirtyset_add(dirty, out[i]);
		if (p->cur.never_sent_left == left)
			break; /* the set is empty */
	}
	p->cur.never_sent_left = 0;
	return 0;
}

/*
 * MPLM's tail.  Once never_sent is empty the dirty backlog goes into
 * epoch 0 - unless the guest writes slower than the link: then the link
 * drains it, as pre-copy would, in dirty-only rounds.  A tail round runs
 * when the backlog is at least done_pages, fits in the budget (the whole
 * live phase stays within RAM * 100 / (100 - dirty_pct), 2 x RAM at
 * 50/50), and either (first) the guest wrote fewer pages a second than the
 * last round sent, or (later) the backlog shrank over the last round.
 */
static int tail_round(struct hr_planner *p, struct hr_dirtyset *dirty)
{
	uint64_t d = hr_dirtyset_count(dirty);
	uint64_t budget = p->nr_pages_ram * 100 / (100 - p->cfg.dirty_pct);
	int go = d >= p->done_pages && p->pages_sent + d <= budget &&
		 (p->tail ? d < p->tail_prev_pages : p->write_rate < p->send_rate);

	p->tail = go;
	p->tail_prev_pages = d;
	return go;
}

static int phase_over(struct hr_planner *p, struct hr_dirtyset *dirty)
{
	if (p->end_now)
		return 1;
	if (p->cfg.mode == HR_LIVE_PRECOPY)
		return p->round > 0 &&
		       (p->round > p->max_rounds || hr_dirtyset_count(dirty) < p->done_pages);
	if (!p->round || p->cur.never_sent_left || p->extend)
		return 0;
	return !tail_round(p, dirty);
}

int hr_planner_round(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		     uint64_t now_ns, struct hr_live_round *done_r)
{
	uint64_t nr_fresh = hr_dirtyset_count(p->fresh);
	int rc;

	memset(done_r, 0, sizeof(*done_r));
	if (p->over)
		return 0;
	/* written pages are dirty pages now, never "never written" */
	if ((rc = hr_dirtyset_or(dirty, p->fresh)) < 0 ||
	    (rc = hr_dirtyset_andnot(p->never_sent, p->fresh)) < 0)
		return rc;
	hr_dirtyset_clear(p->fresh);
	if (!p->round && (rc = hr_dirtyset_andnot(p->never_sent, dirty)) < 0)
		return rc; /* pages already dirty (a re-protection) go as such */
	p->cur.never_sent_left = hr_dirtyset_count(p->never_sent);
	if (p->in_round) {
		uint64_t dt = now_ns > p->round_ns ? now_ns - p->round_ns : 1;
		p->cur.round_us = dt / 1000 ? dt / 1000 : 1;
		p->cur.elapsed_us = (now_ns - p->start_ns) / 1000;
		p->cur.dirty_rate = nr_fresh * 1000000000ull / dt;
		p->cur.bytes = (p->cur.never_sent_pages + p->cur.dirty_pages) * HR_PAGE_SIZE;
		p->cur.total_bytes = p->pages_sent * HR_PAGE_SIZE;
		p->cur.dirty_left = hr_dirtyset_count(dirty);
		p->write_rate = p->cur.dirty_rate;
		p->send_rate = (p->cur.never_sent_pages + p->cur.dirty_pages) * 1000000000ull / dt;
		*done_r = p->cur;
		p->in_round = 0;
	}
	if (phase_over(p, dirty)) {
		p->over = 1;
		if ((rc = flush_never_sent(p, gm, dirty)) < 0)
			return rc;
		return 0;
	}
	uint64_t left = p->cur.never_sent_left;
	memset(&p->cur, 0, sizeof(p->cur));
	p->cur.round = p->round++;
	p->cur.never_sent_left = left;
	p->round_ns = now_ns;
	p->in_round = 1;
	return 1;
}

int hr_planner_chunk(struct hr_planner *p, struct hr_guestmem *gm, struct hr_dirtyset *dirty,
		     uint64_t now_ns, uint64_t *gfns, uint64_t *nr_r)
{
	uint64_t nd = 0, want_d;
	int64_t nu = 0;

	*nr_r = 0;
	if (!p->in_round)
		return 0;
	if (p->cfg.mode == HR_LIVE_PRECOPY) {
		if (p->cur.round == 0) {
			if (!p->cur.never_sent_left)
				return 0;
			nu = take_never_sent(p, gm, gfns, HR_LIVE_CHUNK_PAGES);
		} else if (!(nd = hr_dirtyset_take_some(dirty, gfns, HR_LIVE_CHUNK_PAGES))) {
			return 0;
		}
	} else {
		if (now_ns >= p->round_ns + p->cfg.round_ms * 1000000ull)
			return 0;
		if (!p->cur.never_sent_left && !p->extend && !p->tail)
			return 0; /* the phase ends at the boundary that follows */
		want_d = p->cur.never_sent_left ? HR_LIVE_CHUNK_PAGES * p->cfg.dirty_pct / 100
						: HR_LIVE_CHUNK_PAGES;
		nd = hr_dirtyset_take_some(dirty, gfns, want_d);
		if (p->cur.never_sent_left)
			nu = take_never_sent(p, gm, gfns + nd, HR_LIVE_CHUNK_PAGES - nd);
		else if (!nd)
			return 0; /* extended and idle: wait for the round's end */
	}
	if (nu < 0)
		return (int)nu;
	p->cur.dirty_pages += nd;
	p->cur.never_sent_pages += (uint64_t)nu;
	p->dirty_sent += nd;
	p->pages_sent += nd + (uint64_t)nu;
	*nr_r = nd + (uint64_t)nu;
	return 1;
}

uint64_t hr_planner_wait_ns(const struct hr_planner *p, uint64_t now_ns)
{
	if (!p->in_round || p->cfg.mode != HR_LIVE_MPLM || !p->extend || p->end_now ||
	    p->cur.never_sent_left)
		return 0;
	uint64_t due = p->round_ns + p->cfg.round_ms * 1000000ull;
	return due > now_ns ? due - now_ns : 0;
}
