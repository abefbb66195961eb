/*
 * dirtyset.h - a set of guest pages (gfns): the dirty set of an epoch, the
 * pages a live round still has to send, MPLM's "never sent and never
 * written" set.
 *
 * A bitmap with one bit per gfn plus the list of its non-zero words, so
 * that taking 30 pages out of a 16 GiB guest's set costs 30 pages, not a
 * scan of 64 K words.  The backend fills it through its dirty_fetch hook
 * (hr_dirtyset_bits + hr_dirty_mark_word, backend.h).
 *
 * Not thread-safe: one owner.
 */
#ifndef HR_CORE_DIRTYSET_H
#define HR_CORE_DIRTYSET_H

#include <stdint.h>

#include "backends/backend.h"

struct hr_dirtyset;

/* An empty set for gfns 0 .. nr_gfns-1.  0 or -ENOMEM. */
int hr_dirtyset_new(struct hr_dirtyset **ds_r, uint64_t nr_gfns);
void hr_dirtyset_free(struct hr_dirtyset *ds);

/* The set as a backend fills it (pass to ops->dirty_fetch). */
struct hr_dirty_bits *hr_dirtyset_bits(struct hr_dirtyset *ds);

uint64_t hr_dirtyset_nr_gfns(const struct hr_dirtyset *ds);

/* Pages in the set. */
uint64_t hr_dirtyset_count(const struct hr_dirtyset *ds);

/* Add one gfn (ignored if >= nr_gfns); is a gfn in the set? */
void hr_dirtyset_add(struct hr_dirtyset *ds, uint64_t gfn);
int hr_dirtyset_test(const struct hr_dirtyset *ds, uint64_t gfn);

/* Every gfn of a layout's RAM (MPLM's never-sent set starts so). */
void hr_dirtyset_fill(struct hr_dirtyset *ds, const struct hr_mem_region *regions, unsigned nr);

/* ds |= other; ds &= ~other.  Same nr_gfns (else -EINVAL). */
int hr_dirtyset_or(struct hr_dirtyset *ds, const struct hr_dirtyset *other);
int hr_dirtyset_andnot(struct hr_dirtyset *ds, const struct hr_dirtyset *other);

/* Remove every gfn of a list. */
void hr_dirtyset_remove_list(struct hr_dirtyset *ds, const uint64_t *gfns, uint64_t nr);

/*
 * Write the set into gfns (ascending; room for hr_dirtyset_count) and empty
 * it.  Returns the count.  hr_dirtyset_list does the same without emptying.
 */
uint64_t hr_dirtyset_take(struct hr_dirtyset *ds, uint64_t *gfns);
uint64_t hr_dirtyset_list(const struct hr_dirtyset *ds, uint64_t *gfns);

/* Take at most max gfns, lowest first, out of the set.  Returns how many. */
uint64_t hr_dirtyset_take_some(struct hr_dirtyset *ds, uint64_t *gfns, uint64_t max);

/* Empty the set (cost follows the set's size, not the guest's). */
void hr_dirtyset_clear(struct hr_dirtyset *ds);

#endif
