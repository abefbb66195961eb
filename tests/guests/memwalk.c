/*
 * memwalk.c - memory-dirtying test guest with self-verification.
 *
 * Ring 0 (emulated under PVM, slow) only sets up and prints the banner;
 * the workload runs in ring 3 (native).  See README.md for the command
 * line and the console line formats.
 *
 * Memory: the working set is wss_pages pages starting at WSS_BASE (16 MiB,
 * guest-physical = virtual).  The expected generation of every working-set
 * page is a uint32_t table at GEN_BASE (4 MiB), below the working set.
 * Word w of page p at generation g holds page_hash(p, g) ^ (w * WORD_MUL),
 * so a page that went back in time or is corrupt fails verification.
 *
 * Exact mode (the host's dirty-log exactness test reimplements this):
 * for round r = 1, 2, ... (one round per byte received on COM1) the guest
 * writes one 8-byte word, value (r << 32) | k, at offset 0 of page
 *     p = (r * 7 + k * k * 13) % wss_pages      for k = 0 .. 31 + r % 32
 * (all arithmetic in uint64_t; 32 + r % 32 writes, duplicates possible),
 * i.e. guest-physical WSS_BASE + p * 4096, and nothing else in the
 * working set.  It then prints "memwalk: exact done round=<r> pages=<n>",
 * n = number of distinct pages written in that round.
 */
#include "rt.h"

#define WSS_BASE	0x1000000ull /* 16 MiB */
#define GEN_BASE	0x400000ull  /* 4 MiB: generation table, up to WSS_BASE */
#define GEN_MAX_PAGES	((WSS_BASE - GEN_BASE) / sizeof(uint32_t))
#define IDENTITY_END	(4ull << 30) /* boot.S maps 0..4 GiB */
#define PAGE_SIZE	4096u
#define PAGE_WORDS	(PAGE_SIZE / 8)
#define WORD_MUL	0x9E3779B97F4A7C15ull
#define SWEEP_EVERY	16 /* progress lines between full verifications */
#define MAX_ERROR_LINES 20

enum pattern { PAT_SEQ, PAT_STRIDE, PAT_RANDOM };
static const char *const pattern_names[] = {"seq", "stride", "random"};

/* Configuration (ring 0 fills it, ring 3 reads it). */
static uint64_t wss_pages, rate = 1000, interval_ms = 100, seconds, tsc_khz;
static enum pattern pattern = PAT_SEQ;
static int exact_mode;

/* Workload state: all of it lives in guest memory, so it survives a
 * snapshot/restore and the guest simply continues. */
static uint64_t seq = 1, dirtied, errors, sweeps, cursor, rng = 0x2545F4914F6CDD1Dull;
static unsigned int error_lines;

static char stack3[65536] __attribute__((section(".stack"), aligned(16)));
extern char __image_end[];

static inline uint32_t *gen_table(void)
{
	return (uint32_t *)(uintptr_t)GEN_BASE;
}

static inline uint64_t *page_ptr(uint64_t p)
{
	return (uint64_t *)(uintptr_t)(WSS_BASE + p * PAGE_SIZE);
}

static inline uint64_t page_hash(uint64_t p, uint32_t g)
{
	uint64_t x = (p << 32) ^ g ^ 0x6d656d77616c6b00ull; /* "memwalk" */
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBull;
	x ^= x >> 31;
	return x;
}

static void fill_page(uint64_t p, uint32_t g)
{
	uint64_t *w = page_ptr(p), h = page_hash(p, g), k = 0;
	for (unsigned int i = 0; i < PAGE_WORDS; i++, k += WORD_MUL)
		w[i] = h ^ k;
}

/* Returns 1 if page p holds generation g; reports the first bad word. */
static int check_page(uint64_t p, uint32_t g)
{
	const volatile uint64_t *w = page_ptr(p);
	uint64_t h = page_hash(p, g), k = 0, bad = 0;
	for (unsigned int i = 0; i < PAGE_WORDS; i++, k += WORD_MUL)
		bad |= w[i] ^ h ^ k;
	if (!bad)
		return 1;
	errors++;
	if (error_lines < MAX_ERROR_LINES) {
		error_lines++;
		k = 0;
		for (unsigned int i = 0; i < PAGE_WORDS; i++, k += WORD_MUL) {
			if (w[i] != (h ^ k)) {
				rt_printf("memwalk: ERROR page=%lu gen=%u word=%u got=0x%lx "
					  "want=0x%lx\n",
					  p, g, i, w[i], h ^ k);
				break;
			}
		}
	}
	return 0;
}

static void dirty_page(uint64_t p)
{
	uint32_t *gen = gen_table(), g = gen[p];
	check_page(p, g);
	if (++g == 0)
		g = 1;
	fill_page(p, g);
	gen[p] = g;
	dirtied++;
}

static uint64_t next_page(void)
{
	switch (pattern) {
	case PAT_STRIDE:
		cursor = (cursor + 17) % wss_pages;
		break;
	case PAT_RANDOM:
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		cursor = rng % wss_pages;
		break;
	default:
		cursor = (cursor + 1) % wss_pages;
	}
	return cursor;
}

static void sweep(void)
{
	const uint32_t *gen = gen_table();
	for (uint64_t p = 0; p < wss_pages; p++)
		check_page(p, gen[p]);
	sweeps++;
}

static void walk(void)
{
	uint64_t hz = tsc_khz * 1000, interval = interval_ms * tsc_khz;
	uint64_t per_page_fp = rate ? (hz << 16) / rate : 0, acc_fp = 0;
	uint64_t vt = 0, target = 0, next_print = interval, end = seconds * hz;
	uint64_t last, lines = 0;

	/* Stamp every page with generation 1 (native speed in ring 3). */
	for (uint64_t p = 0; p < wss_pages; p++) {
		fill_page(p, 1);
		gen_table()[p] = 1;
	}

	/* vt is a TSC-based clock that ignores jumps (backwards, or more than
	 * 2 s forwards, e.g. across a save/restore), so pacing and seconds= keep
	 * working after the guest was moved. */
	last = rdtsc();
	for (;;) {
		uint64_t now = rdtsc(), d = now - last;
		last = now;
		if ((int64_t)d > 0 && d < 2 * hz)
			vt += d;

		if (vt >= next_print) {
			rt_printf("memwalk: seq=%lu tsc=%lu dirtied=%lu errors=%lu\n", seq, now,
				  dirtied, errors);
			seq++;
			next_print += interval;
			if (next_print <= vt) /* fell behind by more than a line */
				next_print = vt + interval;
			if (++lines % SWEEP_EVERY == 0)
				sweep();
			continue;
		}
		if (end && vt >= end)
			break;
		if (!rate) {
			dirty_page(next_page());
			continue;
		}
		if (vt >= target) {
			dirty_page(next_page());
			acc_fp += per_page_fp;
			target += acc_fp >> 16;
			acc_fp &= 0xffff;
			if (vt > target + hz / 10) /* never burst more than 100 ms */
				target = vt;
		} else {
			cpu_relax();
		}
	}
	sweep();
	rt_printf("memwalk: done seq=%lu dirtied=%lu errors=%lu sweeps=%lu\n", seq - 1, dirtied,
		  errors, sweeps);
	rt_exit(errors ? 1 : 0);
}

static uint64_t exact_page(uint64_t r, uint64_t k)
{
	return (r * 7 + k * k * 13) % wss_pages;
}

static void exact(void)
{
	rt_printf("memwalk: exact ready\n");
	for (uint64_t r = 1;; r++) {
		uint64_t n = 32 + r % 32, distinct = 0;
		rt_getc();
		for (uint64_t k = 0; k < n; k++) {
			uint64_t p = exact_page(r, k), j;
			*page_ptr(p) = (r << 32) | k;
			for (j = 0; j < k && exact_page(r, j) != p; j++)
				;
			distinct += j == k;
		}
		rt_printf("memwalk: exact done round=%lu pages=%lu\n", r, distinct);
	}
}

static void ring3_main(void)
{
	if (exact_mode)
		exact();
	else
		walk();
	rt_exit(2);
}

/* RAM usable from WSS_BASE upwards, from the memory map or mem_upper. */
static uint64_t ram_above_base(void)
{
	const struct rt_boot *b = &rt_boot;
	uint64_t end = 0;
	if (b->nr_mmap) {
		for (unsigned int i = 0; i < b->nr_mmap; i++) {
			const struct rt_mmap *m = &b->mmap[i];
			if (m->type == 1 && m->base <= WSS_BASE && m->base + m->len > WSS_BASE)
				end = m->base + m->len;
		}
	} else if (b->flags & 1u) {
		end = 0x100000ull + ((uint64_t)b->mem_upper << 10);
	}
	if (end > IDENTITY_END)
		end = IDENTITY_END;
	return end > WSS_BASE ? end - WSS_BASE : 0;
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void opt_u64(const char *key, uint64_t *v, int suffix)
{
	char buf[64];
	if (rt_cmdline_get(key, buf, sizeof(buf)) && rt_parse_u64(buf, v, suffix))
		rt_printf("memwalk: bad %s=%s, using the default\n", key, buf);
}

void kmain(void);
void kmain(void)
{
	char buf[64];
	uint64_t wss = 64ull << 20, avail;

	rt_init("memwalk");
	rt_printf("memwalk: boot mem_lower=%u mem_upper=%u cmdline=\"%s\"\n", rt_boot.mem_lower,
		  rt_boot.mem_upper, rt_boot.cmdline);
	if (rt_boot.magic != MB_BOOT_MAGIC) {
		rt_printf("memwalk: FAIL bad multiboot magic 0x%x\n", rt_boot.magic);
		rt_exit(1);
	}
	if ((uint64_t)(uintptr_t)__image_end > GEN_BASE) {
		rt_printf("memwalk: FAIL image overlaps the generation table\n");
		rt_exit(1);
	}
	tsc_khz = rt_boot.tsc_khz;
	if (!rt_boot.tsc_khz_pit)
		rt_printf("memwalk: WARNING port 0x61 PIT calibration failed, tsc from %s\n",
			  rt_boot.tsc_source);
	if (!tsc_khz) {
		tsc_khz = 2000000;
		rt_printf("memwalk: WARNING no TSC frequency, assuming 2 GHz\n");
	}
	rt_printf("memwalk: tsc_khz=%lu\n", tsc_khz);

	opt_u64("rate", &rate, 0);
	opt_u64("wss", &wss, 1);
	opt_u64("interval_ms", &interval_ms, 0);
	opt_u64("seconds", &seconds, 0);
	if (!interval_ms)
		interval_ms = 1;
	if (rt_cmdline_get("pattern", buf, sizeof(buf))) {
		int i = 2;
		while (i > 0 && !streq(buf, pattern_names[i]))
			i--;
		if (i == 0 && !streq(buf, "seq"))
			rt_printf("memwalk: bad pattern=%s, using seq\n", buf);
		pattern = (enum pattern)i;
	}
	if (rt_cmdline_get("mode", buf, sizeof(buf))) {
		exact_mode = streq(buf, "exact");
		if (!exact_mode && !streq(buf, "walk"))
			rt_printf("memwalk: bad mode=%s, using walk\n", buf);
	}

	wss_pages = wss / PAGE_SIZE;
	avail = ram_above_base() / PAGE_SIZE;
	if (wss_pages > avail)
		wss_pages = avail;
	if (wss_pages > GEN_MAX_PAGES)
		wss_pages = GEN_MAX_PAGES;
	cursor = wss_pages ? wss_pages - 1 : 0; /* seq starts at page 0 */
	rt_printf("memwalk: wss_base=0x%lx wss_pages=%lu rate=%lu pattern=%s interval_ms=%lu\n",
		  (uint64_t)WSS_BASE, wss_pages, rate, pattern_names[pattern], interval_ms);
	rt_printf("memwalk: mode=%s seconds=%lu\n", exact_mode ? "exact" : "walk", seconds);
	if (!wss_pages) {
		rt_printf("memwalk: FAIL no RAM above wss_base\n");
		rt_exit(1);
	}
	rt_printf("memwalk: ring3\n");
	rt_enter_ring3(ring3_main, stack3 + sizeof(stack3));
}
