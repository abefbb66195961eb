/* dirtyset.c - sets of guest pages: bitmap + list of non-zero words. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/dirtyset.h"

struct hr_dirtyset {
	struct hr_dirty_bits b;
	uint64_t nr_gfns;
	uint64_t nr_bitmap_words;
	int sorted; /* b.words is ascending */
};

int hr_dirtyset_new(struct hr_dirtyset **ds_r, uint64_t nr_gfns)
{
	struct hr_dirtyset *ds = calloc(1, sizeof(*ds));

	*ds_r = NULL;
	if (!ds)
		return -ENOMEM;
	ds->nr_gfns = nr_gfns;
	ds->nr_bitmap_words = (nr_gfns + 63) / 64;
	ds->b.bitmap = calloc(ds->nr_bitmap_words ? ds->nr_bitmap_words : 1, 8);
	ds->b.words = malloc((ds->nr_bitmap_words ? ds->nr_bitmap_words : 1) * 8);
	if (!ds->b.bitmap || !ds->b.words) {
		hr_dirtyset_free(ds);
		return -ENOMEM;
	}
	ds->sorted = 1;
	*ds_r = ds;
	return 0;
}

void hr_dirtyset_free(struct hr_dirtyset *ds)
{
	if (!ds)
		return;
	free(ds->b.bitmap);
	free(ds->b.words);
	free(ds);
}

struct hr_dirty_bits *hr_dirtyset_bits(struct hr_dirtyset *ds)
{
	ds->sorted = 0; /* a backend appends words in its own order */
	return &ds->b;
}

uint64_t hr_dirtyset_nr_gfns(const struct hr_dirtyset *ds)
{
	return ds->nr_gfns;
}

uint64_t hr_dirtyset_count(const struct hr_dirtyset *ds)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < ds->b.nr_words; i++)
		n += (uint64_t)__builtin_popcountll(ds->b.bitmap[ds->b.words[i]]);
	return n;
}

void hr_dirtyset_add(struct hr_dirtyset *ds, uint64_t gfn)
{
	if (gfn >= ds->nr_gfns)
		return;
	if (ds->b.nr_words && !ds->b.bitmap[gfn / 64] && ds->b.words[ds->b.nr_words - 1] > gfn / 64)
		ds->sorted = 0;
	hr_dirty_mark_word(&ds->b, gfn / 64, 1ull << (gfn % 64));
}

int hr_dirtyset_test(const struct hr_dirtyset *ds, uint64_t gfn)
{
	return gfn < ds->nr_gfns && (ds->b.bitmap[gfn / 64] >> (gfn % 64)) & 1;
}

static void add_range(struct hr_dirtyset *ds, uint64_t first, uint64_t nr)
{
	uint64_t end = first + nr > ds->nr_gfns ? ds->nr_gfns : first + nr;
	for (uint64_t g = first; g < end;) {
		uint64_t w = g / 64, bit = g % 64;
		uint64_t n = 64 - bit < end - g ? 64 - bit : end - g;
		uint64_t mask = n == 64 ? ~0ull : ((1ull << n) - 1) << bit;
		hr_dirty_mark_word(&ds->b, w, mask);
		g += n;
	}
}

void hr_dirtyset_fill(struct hr_dirtyset *ds, const struct hr_mem_region *regions, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		add_range(ds, regions[i].gpa >> HR_PAGE_SHIFT, regions[i].bytes >> HR_PAGE_SHIFT);
	ds->sorted = 0;
}

/* Drop the listed words that became zero. */
static void compact(struct hr_dirtyset *ds)
{
	uint64_t j = 0;
	for (uint64_t i = 0; i < ds->b.nr_words; i++)
		if (ds->b.bitmap[ds->b.words[i]])
			ds->b.words[j++] = ds->b.words[i];
	ds->b.nr_words = j;
}

int hr_dirtyset_or(struct hr_dirtyset *ds, const struct hr_dirtyset *other)
{
	if (ds->nr_gfns != other->nr_gfns)
		return -EINVAL;
	for (uint64_t i = 0; i < other->b.nr_words; i++) {
		uint64_t w = other->b.words[i];
		hr_dirty_mark_word(&ds->b, w, other->b.bitmap[w]);
	}
	ds->sorted = 0;
	return 0;
}

int hr_dirtyset_andnot(struct hr_dirtyset *ds, const struct hr_dirtyset *other)
{
	if (ds->nr_gfns != other->nr_gfns)
		return -EINVAL;
	for (uint64_t i = 0; i < ds->b.nr_words; i++) {
		uint64_t w = ds->b.words[i];
		ds->b.bitmap[w] &= ~other->b.bitmap[w];
	}
	compact(ds);
	return 0;
}

void hr_dirtyset_remove_list(struct hr_dirtyset *ds, const uint64_t *gfns, uint64_t nr)
{
	for (uint64_t i = 0; i < nr; i++)
		if (gfns[i] < ds->nr_gfns)
			ds->b.bitmap[gfns[i] / 64] &= ~(1ull << (gfns[i] % 64));
	compact(ds);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Put the word list in ascending order: sort a short list; rebuild a long
 * one (more than 1/16 of all words) with one linear pass over the bitmap,
 * which is cheaper than sorting it (a 1 GiB guest has 4096 words). */
static void sort_words(struct hr_dirtyset *ds)
{
	if (ds->sorted)
		return;
	if (ds->b.nr_words > ds->nr_bitmap_words / 16) {
		uint64_t n = 0;
		for (uint64_t w = 0; w < ds->nr_bitmap_words; w++)
			if (ds->b.bitmap[w])
				ds->b.words[n++] = w;
		ds->b.nr_words = n;
	} else {
		qsort(ds->b.words, ds->b.nr_words, 8, cmp_u64);
	}
	ds->sorted = 1;
}

static uint64_t emit_word(uint64_t w, uint64_t bits, uint64_t *gfns)
{
	uint64_t n = 0;
	while (bits) {
		gfns[n++] = w * 64 + (uint64_t)__builtin_ctzll(bits);
		bits &= bits - 1;
	}
	return n;
}

uint64_t hr_dirtyset_list(const struct hr_dirtyset *ds, uint64_t *gfns)
{
	sort_words((struct hr_dirtyset *)ds); /* order only: the set is unchanged */
	uint64_t n = 0;
	for (uint64_t i = 0; i < ds->b.nr_words; i++)
		n += emit_word(ds->b.words[i], ds->b.bitmap[ds->b.words[i]], gfns + n);
	return n;
}

uint64_t hr_dirtyset_take(struct hr_dirtyset *ds, uint64_t *gfns)
{
	uint64_t n = hr_dirtyset_list(ds, gfns);
	hr_dirtyset_clear(ds);
	return n;
}

uint64_t hr_dirtyset_take_some(struct hr_dirtyset *ds, uint64_t *gfns, uint64_t max)
{
	uint64_t n = 0, i;

	sort_words(ds);
	for (i = 0; i < ds->b.nr_words && n < max; i++) {
		uint64_t w = ds->b.words[i];
		uint64_t bits = ds->b.bitmap[w];
		while (bits && n < max) {
			gfns[n++] = w * 64 + (uint64_t)__builtin_ctzll(bits);
			bits &= bits - 1;
		}
		ds->b.bitmap[w] = bits;
	}
	compact(ds);
	return n;
}

void hr_dirtyset_clear(struct hr_dirtyset *ds)
{
	for (uint64_t i = 0; i < ds->b.nr_words; i++)
		ds->b.bitmap[ds->b.words[i]] = 0;
	ds->b.nr_words = 0;
	ds->sorted = 1;
}
