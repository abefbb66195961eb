/* t-dirtyset.c - page sets: bitmap + word list, backend filling, set algebra. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "core/dirtyset.h"

static int ascending(const uint64_t *g, uint64_t n)
{
	for (uint64_t i = 1; i < n; i++)
		if (g[i] <= g[i - 1])
			return 0;
	return 1;
}

int main(void)
{
	const uint64_t nr_gfns = 1u << 20; /* a 4 GiB guest */
	struct hr_dirtyset *a, *b;
	uint64_t *g = malloc(nr_gfns * sizeof(*g));

	plan(15);
	ok(hr_dirtyset_new(&a, nr_gfns) == 0 && hr_dirtyset_new(&b, nr_gfns) == 0, "two sets");
	ok(hr_dirtyset_count(a) == 0 && hr_dirtyset_take(a, g) == 0, "a new set is empty");

	/* a backend fills it out of order, word by word */
	struct hr_dirty_bits *d = hr_dirtyset_bits(a);
	hr_dirty_mark_word(d, 1000, 0x5);
	hr_dirty_mark_word(d, 3, 1ull << 63);
	hr_dirty_mark_word(d, 1000, 0x2);
	hr_dirty_mark_word(d, 7, 0);
	ok(d->nr_words == 2 && hr_dirtyset_count(a) == 4, "marks: 2 words listed once, 4 pages");
	uint64_t n = hr_dirtyset_take(a, g);
	ok(n == 4 && g[0] == 3 * 64 + 63 && g[1] == 64000 && g[3] == 64002 && ascending(g, n),
	   "take: ascending gfns");
	ok(hr_dirtyset_count(a) == 0 && d->nr_words == 0 && !d->bitmap[1000],
	   "take empties the set and its bitmap");

	/* a large set (over 1/16 of all words) filled backwards: still ascending */
	d = hr_dirtyset_bits(a);
	for (uint64_t w = nr_gfns / 64; w-- > 0;)
		if (w % 3 == 0)
			hr_dirty_mark_word(d, w, 1ull << (w % 64));
	n = hr_dirtyset_take(a, g);
	ok(n == (nr_gfns / 64 + 2) / 3 && ascending(g, n), "a large set comes out ascending (%llu)",
	   (unsigned long long)n);

	/* hostile values: a gfn past the end never lands anywhere */
	hr_dirtyset_add(a, nr_gfns);
	hr_dirtyset_add(a, UINT64_MAX);
	hr_dirtyset_add(a, (1ull << 52) + 5);
	ok(hr_dirtyset_count(a) == 0 && !hr_dirtyset_test(a, UINT64_MAX),
	   "gfns beyond the set are ignored, never wrapped");

	hr_dirtyset_add(a, 5);
	hr_dirtyset_add(a, 1);
	hr_dirtyset_add(a, nr_gfns - 1);
	ok(hr_dirtyset_test(a, 5) && !hr_dirtyset_test(a, 4) && hr_dirtyset_count(a) == 3,
	   "add / test");
	n = hr_dirtyset_list(a, g);
	ok(n == 3 && g[0] == 1 && g[2] == nr_gfns - 1 && hr_dirtyset_count(a) == 3,
	   "list leaves the set as it was");

	/* fill from a layout with a hole, as KVM's below and above 4 GiB */
	struct hr_mem_region regs[2] = {{0, 64 << 12, NULL}, {1000 << 12, 36 << 12, NULL}};
	hr_dirtyset_clear(b);
	hr_dirtyset_fill(b, regs, 2);
	ok(hr_dirtyset_count(b) == 100 && hr_dirtyset_test(b, 63) && !hr_dirtyset_test(b, 64) &&
	       hr_dirtyset_test(b, 1035) && !hr_dirtyset_test(b, 1036),
	   "fill covers exactly the RAM of the layout (100 pages)");

	/* MPLM's set algebra */
	hr_dirtyset_andnot(b, a); /* a holds 1, 5, nr_gfns-1 */
	ok(hr_dirtyset_count(b) == 98 && !hr_dirtyset_test(b, 5), "andnot removes 2 pages");
	uint64_t rm[] = {0,  2,	 3,  4,	 6,  7,	 8,  9,	 10, 11, 12, 13, 14, 15, 16, 17,
			 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33,
			 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
			 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
	hr_dirtyset_remove_list(b, rm, sizeof(rm) / sizeof(rm[0]));
	ok(hr_dirtyset_count(b) == 36 && hr_dirtyset_bits(b)->nr_words == 2,
	   "remove_list drops the emptied word 0 from the list (words 15, 16 stay)");
	hr_dirtyset_add(b, 0); /* word 0 again: listed once, not twice */
	ok(hr_dirtyset_bits(b)->nr_words == 3 && hr_dirtyset_count(b) == 37,
	   "a word that became empty is listed once when it fills again");
	uint64_t part[10];
	n = hr_dirtyset_take_some(b, part, 10);
	ok(n == 10 && part[0] == 0 && part[1] == 1000 && hr_dirtyset_count(b) == 27,
	   "take_some: the lowest 10, the rest stays");
	struct hr_dirtyset *c;
	hr_dirtyset_new(&c, 64);
	ok(hr_dirtyset_or(b, a) == 0 && hr_dirtyset_count(b) == 30 && hr_dirtyset_or(b, c) < 0 &&
	       hr_dirtyset_andnot(b, c) < 0,
	   "or adds the other set (27 + 3); sets of another size are refused");
	hr_dirtyset_free(c);
	hr_dirtyset_free(a);
	hr_dirtyset_free(b);
	free(g);
	return tap_done();
}
