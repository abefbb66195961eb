/*
 * t-mem-backend.c - the in-memory backend: life cycle, dirty exactness and
 * state blobs with the hand-stepped guest; then the booted guest on its own
 * vCPU thread: pacing, pause, live dirty fetch, replica determinism and
 * stop_after, batched mapping, record channels, refused options.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "tap.h"

#define MEM_BYTES (4u << 20)
#define NR_GFNS	  (MEM_BYTES >> HR_PAGE_SHIFT)

static char console[256];
static size_t console_len;

static int console_out(void *opaque, unsigned chan, const void *buf, size_t len)
{
	if (chan == 0 && console_len + len < sizeof(console)) {
		memcpy(console + console_len, buf, len);
		console_len += len;
	}
	return 0;
}

static int open_vm(struct hr_vm **vm_r, const char *name, uint64_t mem_bytes, unsigned nr_vcpus,
		   const char *kernel)
{
	struct hr_vm_config cfg = {
	    .name = name,
	    .mem_bytes = mem_bytes,
	    .nr_vcpus = nr_vcpus,
	    .kernel_path = kernel,
	    .emit = console_out,
	};
	return hr_mem_ops.open(vm_r, &cfg);
}

/* The hand-stepped guest (kernel "none"): what t-snapshot relies on. */
static void test_hand(void)
{
	const struct hr_mem_region *rg;
	struct hr_vm *vm = NULL, *rep = NULL;
	unsigned nr;
	uint64_t bitmap[NR_GFNS / 64];
	uint64_t words[NR_GFNS / 64];
	struct hr_dirty_bits db = {bitmap, words, 0};
	uint8_t *before;
	void *blob, *blob2;
	size_t len, len2;
	int rc;

	/* open / close, including failed opens */
	ok(!strcmp(hr_mem_ops.name, "mem"), "backend is named mem");
	rc = open_vm(&vm, "bad", 12345, 1, "none");
	ok(rc == -EINVAL, "unaligned mem_bytes refused (%s)", hr_strerror(rc));
	hr_mem_ops.close(vm);
	vm = NULL;
	rc = open_vm(&vm, "bad", MEM_BYTES, 0, "none");
	ok(rc == -EINVAL, "0 vcpus refused (%s)", hr_strerror(rc));
	hr_mem_ops.close(vm);
	hr_mem_ops.close(NULL);

	rc = open_vm(&vm, "vm1", MEM_BYTES, 2, "none");
	ok(rc == 0, "open 4 MiB, 2 vcpus");
	rc = hr_mem_ops.mem_layout(vm, &rg, &nr);
	ok(rc == 0 && nr == 1 && rg[0].gpa == 0 && rg[0].bytes == MEM_BYTES && rg[0].hva,
	   "one region at gpa 0");
	ok(hr_mem_guest_step(vm, 1) == -EBUSY, "step refused while paused");

	/* dirty exactness: writes before dirty_start are not reported */
	hr_mem_ops.resume(vm);
	ok(hr_mem_guest_step(vm, 50) == 0, "step while running");
	ok(console_len && !strcmp(console, "mem: step=1\n"), "console line \"%.*s\"",
	   (int)(console_len ? console_len - 1 : 0), console);
	hr_mem_ops.pause(vm);
	ok(hr_mem_ops.dirty_start(vm) == 0, "dirty_start");
	before = malloc(MEM_BYTES);
	memcpy(before, rg[0].hva, MEM_BYTES);
	hr_mem_ops.resume(vm);
	hr_mem_guest_step(vm, 300);
	hr_mem_guest_step(vm, 200);
	memset(bitmap, 0, sizeof(bitmap));
	db.nr_words = 0;
	ok(hr_mem_ops.dirty_fetch(vm, &db) == 0 && db.nr_words > 0,
	   "dirty_fetch while running (HR_BF_DIRTY_LIVE)");
	hr_mem_guest_step(vm, 100);
	hr_mem_ops.pause(vm);
	ok(hr_mem_ops.dirty_fetch(vm, &db) == 0, "dirty_fetch after pause, into the same set");
	unsigned nr_wrong = 0, nr_dirty = 0;
	for (unsigned g = 0; g < NR_GFNS; g++) {
		int changed = memcmp(before + (size_t)g * HR_PAGE_SIZE,
				     rg[0].hva + (size_t)g * HR_PAGE_SIZE, HR_PAGE_SIZE) != 0;
		int dirty = (bitmap[g / 64] >> (g % 64)) & 1;
		nr_dirty += dirty;
		nr_wrong += changed != dirty;
	}
	ok(nr_wrong == 0 && nr_dirty > 300,
	   "dirty set == changed pages exactly (%u dirty, %u wrong)", nr_dirty, nr_wrong);
	memset(bitmap, 0, sizeof(bitmap));
	db.nr_words = 0;
	hr_mem_ops.dirty_fetch(vm, &db);
	unsigned nr_again = 0;
	for (unsigned i = 0; i < NR_GFNS / 64; i++)
		nr_again += bitmap[i] != 0;
	ok(nr_again == 0, "fetch cleared the dirty set");
	bitmap[0] = 1; /* OR semantics: an existing bit stays */
	words[0] = 0;
	db.nr_words = 1;
	hr_mem_ops.dirty_fetch(vm, &db);
	ok(bitmap[0] == 1, "dirty_fetch ORs into the caller's bitmap");
	ok(hr_mem_ops.dirty_stop(vm) == 0, "dirty_stop");

	/* state round trip */
	rc = hr_mem_ops.save_state(vm, &blob, &len);
	ok(rc == 0 && len > 0, "save_state (%zu bytes)", len);
	rc = open_vm(&rep, "vm1-replica", MEM_BYTES, 2, NULL);
	ok(rc == 0, "open replica");
	ok(hr_mem_ops.load_state(rep, blob, len) == 0, "load_state into replica");
	hr_mem_ops.save_state(rep, &blob2, &len2);
	ok(len2 == len && !memcmp(blob, blob2, len), "replica state identical");
	free(blob2);

	/* rejections */
	uint8_t *bad = malloc(len);
	memcpy(bad, blob, len);
	bad[4] = 99; /* version field (le32 at offset 4) */
	rc = hr_mem_ops.load_state(rep, bad, len);
	ok(rc == -HR_EBADSTATE, "blob of another version refused (%s)", hr_strerror(rc));
	rc = hr_mem_ops.load_state(rep, blob, len - 1);
	ok(rc == -HR_EBADSTATE, "short blob refused (%s)", hr_strerror(rc));
	hr_mem_ops.close(rep);
	rep = NULL;

	open_vm(&rep, "vm1-big", MEM_BYTES * 2, 2, NULL);
	rc = hr_mem_ops.load_state(rep, blob, len);
	ok(rc == -HR_EBADSTATE, "blob into other mem_bytes refused (%s)", hr_strerror(rc));
	hr_mem_ops.close(rep);
	rep = NULL;
	open_vm(&rep, "vm1-1cpu", MEM_BYTES, 1, NULL);
	rc = hr_mem_ops.load_state(rep, blob, len);
	ok(rc == -HR_EBADSTATE, "blob into other nr_vcpus refused (%s)", hr_strerror(rc));
	hr_mem_ops.resume(rep);
	ok(hr_mem_ops.load_state(rep, blob, len) == -EBUSY, "load_state refused while running");
	hr_mem_ops.close(rep);

	free(bad);
	free(blob);
	free(before);
	hr_mem_ops.close(vm);
}

/* ---- the booted guest on its own vCPU thread ---- */

/* What one vm emitted, checked as it arrives (emit runs on the vCPU thread). */
struct capture {
	pthread_mutex_t lock;
	size_t want_line_bytes; /* 0: any */
	uint64_t nr_lines, console_bytes;
	uint64_t first_step, last_step; /* from the console lines */
	unsigned bad_lines;		/* unparsable, out of sequence or of the wrong length */
	uint64_t nr_records[HR_MAX_CHANNELS], last_rec_step[HR_MAX_CHANNELS];
	size_t min_rec_bytes, max_rec_bytes;
	unsigned bad_records;
	int nr_exits, exit_code;
	enum hr_exit_reason exit_why;
};

static void capture_init(struct capture *c, size_t want_line_bytes)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->want_line_bytes = want_line_bytes;
	c->min_rec_bytes = SIZE_MAX;
}

/* The record of channel ch at step s, computed here from mem.h's description. */
static int record_ok(unsigned ch, uint64_t s, const uint8_t *p, size_t len)
{
	uint64_t s_le = htole64(s);
	uint32_t ch_le = htole32(ch);

	if (len != 60 + (s * 7 + ch * 131) % 1455 || memcmp(p, &s_le, 8) ||
	    memcmp(p + 8, &ch_le, 4))
		return 0;
	for (size_t i = 12; i < len; i++)
		if (p[i] != (uint8_t)(s * 131 + ch * 31 + i))
			return 0;
	return 1;
}

static int capture_emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct capture *c = opaque;
	const uint8_t *p = buf;

	pthread_mutex_lock(&c->lock);
	if (chan == 0) {
		char line[80];
		unsigned long long step;

		snprintf(line, sizeof(line), "%.*s", (int)(len < 79 ? len : 79), (const char *)buf);
		if (sscanf(line, "mem: step=%llu", &step) != 1 || p[len - 1] != '\n' ||
		    (c->want_line_bytes && len != c->want_line_bytes) ||
		    (c->nr_lines && step != c->last_step + 1))
			c->bad_lines++;
		if (!c->nr_lines)
			c->first_step = step;
		c->last_step = step;
		c->nr_lines++;
		c->console_bytes += len;
	} else if (chan < HR_MAX_CHANNELS) {
		uint64_t s = len >= 8 ? le64toh(*(const uint64_t *)buf) : 0;

		if (!record_ok(chan, s, p, len) ||
		    (c->nr_records[chan] && s != c->last_rec_step[chan] + 1))
			c->bad_records++;
		c->last_rec_step[chan] = s;
		c->nr_records[chan]++;
		c->min_rec_bytes = len < c->min_rec_bytes ? len : c->min_rec_bytes;
		c->max_rec_bytes = len > c->max_rec_bytes ? len : c->max_rec_bytes;
	} else {
		c->bad_records++;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void capture_exit(void *opaque, enum hr_exit_reason why, int code)
{
	struct capture *c = opaque;

	pthread_mutex_lock(&c->lock);
	c->nr_exits++;
	c->exit_why = why;
	c->exit_code = code;
	pthread_mutex_unlock(&c->lock);
}

static struct capture capture_get(struct capture *c)
{
	struct capture copy;

	pthread_mutex_lock(&c->lock);
	copy = *c;
	pthread_mutex_unlock(&c->lock);
	return copy;
}

/* Wait up to timeout_ms for the guest to stop on its own. */
static int wait_exit(struct capture *c, int timeout_ms)
{
	for (int i = 0; i < timeout_ms; i++) {
		if (capture_get(c).nr_exits)
			return 1;
		usleep(1000);
	}
	return 0;
}

static int open_guest(struct hr_vm **vm_r, const char *name, uint64_t mem_bytes, const char *kernel,
		      const char *cmdline, const char *options, struct capture *c)
{
	struct hr_vm_config cfg = {
	    .name = name,
	    .mem_bytes = mem_bytes,
	    .nr_vcpus = 1,
	    .kernel_path = kernel,
	    .cmdline = cmdline,
	    .options = options,
	    .emit = c ? capture_emit : NULL,
	    .emit_opaque = c,
	    .on_exit = c ? capture_exit : NULL,
	    .exit_opaque = c,
	};
	*vm_r = NULL;
	return hr_mem_ops.open(vm_r, &cfg);
}

static uint8_t *ram_of(struct hr_vm *vm)
{
	const struct hr_mem_region *rg;
	unsigned nr;

	hr_mem_ops.mem_layout(vm, &rg, &nr);
	return rg[0].hva;
}

static void test_thread_pacing_and_pause(void)
{
	struct capture c;
	struct hr_vm *vm;
	struct capture a, b;
	uint8_t *ram, *snap;

	capture_init(&c, 40);
	ok(open_guest(&vm, "paced", MEM_BYTES, "mem:", "steps_per_s=2000 writes=8 line_bytes=40",
		      NULL, &c) == 0,
	   "open a booted guest (kernel \"mem:\", 2000 steps/s, 40-byte lines)");
	ram = ram_of(vm);
	usleep(50000);
	ok(capture_get(&c).nr_lines == 0, "nothing runs before the first resume");
	ok(hr_mem_ops.resume(vm) == 0, "resume starts the vCPU thread");
	ok(hr_mem_guest_step(vm, 1) == -EBUSY, "hand step refused: the guest has its own thread");
	usleep(300000);
	ok(hr_mem_ops.pause(vm) == 0, "pause");
	a = capture_get(&c);
	ok(a.nr_lines >= 240 && a.nr_lines <= 780, "%llu steps in 300 ms at 2000/s",
	   (unsigned long long)a.nr_lines);
	ok(a.bad_lines == 0 && a.first_step == 1 && a.console_bytes == a.nr_lines * 40,
	   "lines \"mem: step=N...\" of 40 bytes, N = 1, 2, 3, ... (%u bad)", a.bad_lines);

	/* a paused guest neither writes memory nor emits */
	snap = malloc(MEM_BYTES);
	memcpy(snap, ram, MEM_BYTES);
	usleep(100000);
	b = capture_get(&c);
	ok(b.nr_lines == a.nr_lines && !memcmp(snap, ram, MEM_BYTES),
	   "paused for 100 ms: no output, no page write");
	ok(hr_mem_ops.pause(vm) == 0, "pausing a paused vm is a no-op");
	hr_mem_ops.resume(vm);
	usleep(50000);
	hr_mem_ops.pause(vm);
	b = capture_get(&c);
	ok(b.nr_lines > a.nr_lines && b.bad_lines == 0 && memcmp(snap, ram, MEM_BYTES),
	   "resumed: output continues the sequence (step %llu -> %llu), memory changes",
	   (unsigned long long)a.last_step, (unsigned long long)b.last_step);
	free(snap);
	hr_mem_ops.close(vm);
}

/*
 * Live dirty fetch: copy every reported page into a shadow after each
 * fetch, as the core does.  At the end (paused, final fetch) the shadow must
 * equal the guest's memory: no write was lost by a fetch it raced with.
 */
static void test_live_dirty(void)
{
	enum { BYTES = 16u << 20, GFNS = BYTES >> HR_PAGE_SHIFT };
	static uint64_t bitmap[GFNS / 64], words[GFNS / 64];
	struct hr_dirty_bits db = {bitmap, words, 0};
	struct capture c;
	struct hr_vm *vm;
	uint8_t *ram, *shadow, *start;
	unsigned nr_fetches = 0, nr_busy = 0, nr_failed = 0, nr_reported = 0;
	unsigned nr_changed = 0, nr_missed = 0;
	static uint8_t ever[GFNS];

	capture_init(&c, 0);
	ok(hr_mem_ops.features & HR_BF_DIRTY_LIVE, "mem advertises HR_BF_DIRTY_LIVE");
	open_guest(&vm, "live", BYTES, "mem:", "steps_per_s=0 writes=8", NULL, &c);
	ram = ram_of(vm);
	hr_mem_ops.resume(vm); /* some writes before tracking starts */
	usleep(5000);
	hr_mem_ops.pause(vm);
	ok(hr_mem_ops.dirty_start(vm) == 0, "dirty_start (paused)");
	shadow = malloc(BYTES);
	start = malloc(BYTES);
	memcpy(shadow, ram, BYTES);
	memcpy(start, ram, BYTES);
	hr_mem_ops.resume(vm);
	/* at least 200 fetches and 100 that saw writes; a loaded machine may
	 * give the guest thread little time, so the bound is in time (10 s) */
	uint64_t t_end = hr_now_ns() + 10000000000ull;
	for (int round = 0;; round++) {
		int last = (round >= 200 && nr_busy > 100) || hr_now_ns() > t_end;
		if (last)
			hr_mem_ops.pause(vm); /* final fetch of a quiescent guest */
		memset(bitmap, 0, sizeof(bitmap));
		db.nr_words = 0;
		if (hr_mem_ops.dirty_fetch(vm, &db) < 0) {
			nr_failed++;
			continue;
		}
		nr_fetches++;
		nr_busy += db.nr_words > 0;
		for (uint64_t i = 0; i < db.nr_words; i++)
			for (unsigned bit = 0; bit < 64; bit++)
				if (bitmap[words[i]] >> bit & 1) {
					uint64_t g = words[i] * 64 + bit;
					memcpy(shadow + g * HR_PAGE_SIZE, ram + g * HR_PAGE_SIZE,
					       HR_PAGE_SIZE);
					ever[g] = 1;
					nr_reported++;
				}
		if (last)
			break;
		usleep(300);
	}
	for (unsigned g = 0; g < GFNS; g++) {
		int changed = memcmp(start + (size_t)g * HR_PAGE_SIZE,
				     ram + (size_t)g * HR_PAGE_SIZE, HR_PAGE_SIZE) != 0;
		nr_changed += changed;
		nr_missed += changed && !ever[g];
	}
	ok(nr_failed == 0 && nr_busy > 100,
	   "%u fetches while the guest writes as fast as it can (%u non-empty)", nr_fetches,
	   nr_busy);
	ok(nr_changed > 0 && nr_missed == 0,
	   "every page changed since dirty_start was reported (%u changed, %u missed)", nr_changed,
	   nr_missed);
	ok(!memcmp(shadow, ram, BYTES),
	   "pages copied after each fetch == guest memory: no write lost (%u reports, %llu "
	   "steps)",
	   nr_reported, (unsigned long long)capture_get(&c).last_step);
	free(shadow);
	free(start);
	hr_mem_ops.close(vm);
}

/*
 * A replica loaded from the primary's paused state continues the same
 * sequence on its own thread; both stop on their own after step 3000.
 */
static void test_replica_determinism(void)
{
	struct capture cp, cr, a, b;
	struct hr_vm *pri, *rep;
	void *blob, *blob_p, *blob_r;
	size_t len, len_p, len_r;
	uint64_t at_step;

	capture_init(&cp, 0);
	capture_init(&cr, 0);
	open_guest(&pri, "det", MEM_BYTES, "mem:", "steps_per_s=20000 writes=32 stop_after=3000",
		   NULL, &cp);
	hr_mem_ops.resume(pri);
	usleep(30000);
	hr_mem_ops.pause(pri);
	at_step = capture_get(&cp).last_step;
	ok(at_step > 0 && at_step < 3000, "primary paused at step %llu",
	   (unsigned long long)at_step);
	hr_mem_ops.save_state(pri, &blob, &len);
	ok(open_guest(&rep, "det-replica", MEM_BYTES, NULL, NULL, NULL, &cr) == 0 &&
	       hr_mem_ops.load_state(rep, blob, len) == 0,
	   "replica (no kernel, no cmdline) loads the state");
	memcpy(ram_of(rep), ram_of(pri), MEM_BYTES);
	ok(hr_mem_ops.resume(rep) == 0 && hr_mem_ops.resume(pri) == 0,
	   "resume replica (promotion) and primary");
	ok(wait_exit(&cp, 20000) && wait_exit(&cr, 20000), "both guests stop on their own");
	hr_mem_ops.pause(pri);
	hr_mem_ops.pause(rep);
	a = capture_get(&cp);
	b = capture_get(&cr);
	ok(a.nr_exits == 1 && a.exit_why == HR_EXIT_DEBUG_PORT && a.exit_code == 1 &&
	       a.last_step == 3000 && a.bad_lines == 0,
	   "primary: on_exit(debug port, code 1) once, after step %llu",
	   (unsigned long long)a.last_step);
	ok(b.nr_exits == 1 && b.first_step == at_step + 1 && b.last_step == 3000 &&
	       b.bad_lines == 0,
	   "replica: steps %llu..%llu, then on_exit once", (unsigned long long)b.first_step,
	   (unsigned long long)b.last_step);
	ok(!memcmp(ram_of(pri), ram_of(rep), MEM_BYTES),
	   "replica wrote the same pages with the same values");
	hr_mem_ops.save_state(pri, &blob_p, &len_p);
	hr_mem_ops.save_state(rep, &blob_r, &len_r);
	ok(len_p == len_r && !memcmp(blob_p, blob_r, len_p), "same final state");
	hr_mem_ops.resume(pri);
	usleep(20000);
	hr_mem_ops.pause(pri);
	ok(capture_get(&cp).last_step == 3000, "an exited guest stays stopped when resumed");
	free(blob);
	free(blob_p);
	free(blob_r);
	hr_mem_ops.close(rep);
	hr_mem_ops.close(pri);
}

static void test_map_batch(void)
{
	struct hr_vm *vm;
	const struct hr_mem_region *rg;
	unsigned nr;
	uint64_t gfns[HR_MAP_BATCH_PAGES + 1];
	uint8_t *ptrs[HR_MAP_BATCH_PAGES + 1], *ptrs2[1];
	void *ck, *ck2;
	int rc;

	ok(hr_mem_ops.features & HR_BF_MAP_BATCH, "mem advertises HR_BF_MAP_BATCH");
	rc = open_guest(&vm, "batch", MEM_BYTES, "none", NULL, "map=batch", NULL);
	hr_mem_ops.mem_layout(vm, &rg, &nr);
	ok(rc == 0 && nr == 1 && rg[0].bytes == MEM_BYTES && !rg[0].hva,
	   "map=batch: one region, hva NULL");
	hr_mem_ops.resume(vm);
	hr_mem_guest_step(vm, 500);
	hr_mem_ops.pause(vm);

	gfns[0] = 0;
	gfns[1] = 5;
	gfns[2] = NR_GFNS - 1;
	gfns[3] = NR_GFNS;
	gfns[4] = 1ull << 40;
	rc = hr_mem_ops.map_pages(vm, gfns, 5, 1, ptrs, &ck);
	ok(rc == 0 && ptrs[0] && ptrs[1] && ptrs[2] && !ptrs[3] && !ptrs[4] &&
	       hr_mem_live_maps(vm) == 1,
	   "map_pages: RAM pages mapped, gfns beyond RAM NULL");
	memset(ptrs[1], 0xa5, HR_PAGE_SIZE);
	rc = hr_mem_ops.map_pages(vm, &gfns[1], 1, 0, ptrs2, &ck2);
	ok(rc == 0 && ptrs2[0][0] == 0xa5 && ptrs2[0][HR_PAGE_SIZE - 1] == 0xa5 &&
	       hr_mem_live_maps(vm) == 2,
	   "a second mapping sees what was written through the first");
	hr_mem_ops.unmap_pages(vm, ck);
	hr_mem_ops.unmap_pages(vm, ck2);
	ok(hr_mem_live_maps(vm) == 0, "every mapping released");
	for (unsigned i = 0; i <= HR_MAP_BATCH_PAGES; i++)
		gfns[i] = i % NR_GFNS;
	rc = hr_mem_ops.map_pages(vm, gfns, HR_MAP_BATCH_PAGES + 1, 0, ptrs, &ck);
	ok(rc == -EINVAL && hr_mem_live_maps(vm) == 0, "more than %u pages at once refused (%s)",
	   HR_MAP_BATCH_PAGES, hr_strerror(rc));
	rc = hr_mem_ops.map_pages(vm, gfns, HR_MAP_BATCH_PAGES, 0, ptrs, &ck);
	ok(rc == 0 && ptrs[HR_MAP_BATCH_PAGES - 1], "%u pages at once", HR_MAP_BATCH_PAGES);
	hr_mem_ops.unmap_pages(vm, ck);
	ok(hr_mem_live_maps(vm) == 0, "released again");
	hr_mem_ops.close(vm);

	open_guest(&vm, "direct", MEM_BYTES, "none", NULL, "map=direct", NULL);
	ok(ram_of(vm) != NULL, "map=direct: hva set");
	hr_mem_ops.close(vm);
}

static void test_channels(void)
{
	const struct hr_chan_desc *ch;
	struct capture c, a;
	struct hr_vm *vm, *rep;
	void *blob;
	size_t len;
	unsigned nr;
	int rc;

	capture_init(&c, 0);
	rc = open_guest(&vm, "chans", MEM_BYTES, "mem:", "steps_per_s=0 writes=4 stop_after=2000",
			"chans=3", &c);
	hr_mem_ops.channels(vm, &ch, &nr);
	ok(rc == 0 && nr == 3 && !strcmp(ch[0].name, "console") && ch[0].kind == HR_CHAN_CONSOLE &&
	       !strcmp(ch[1].name, "net1") && ch[1].kind == HR_CHAN_NET &&
	       ch[1].max_record_bytes == 1514 && !strcmp(ch[2].name, "net2") &&
	       ch[2].kind == HR_CHAN_NET && hr_chan_is_records(&ch[2]),
	   "chans=3: console, net1, net2 (records of at most 1514 bytes)");
	hr_mem_ops.resume(vm);
	wait_exit(&c, 20000);
	hr_mem_ops.pause(vm);
	a = capture_get(&c);
	ok(a.nr_records[1] == 2000 && a.nr_records[2] == 2000 && a.nr_lines == 2000,
	   "one record per channel per step (%llu, %llu records, %llu lines)",
	   (unsigned long long)a.nr_records[1], (unsigned long long)a.nr_records[2],
	   (unsigned long long)a.nr_lines);
	ok(a.bad_records == 0 && a.min_rec_bytes == 60 && a.max_rec_bytes == 1514,
	   "every record has the documented length and bytes (%zu..%zu bytes, %u bad)",
	   a.min_rec_bytes, a.max_rec_bytes, a.bad_records);

	hr_mem_ops.save_state(vm, &blob, &len);
	open_guest(&rep, "chans-replica", MEM_BYTES, NULL, NULL, NULL, NULL);
	rc = hr_mem_ops.load_state(rep, blob, len);
	ok(rc == -HR_EBADSTATE && strstr(hr_mem_ops.last_error(rep), "channels"),
	   "replica with another channel count refuses the state (%s)", hr_mem_ops.last_error(rep));
	hr_mem_ops.close(rep);
	free(blob);
	hr_mem_ops.close(vm);
}

/* open must fail with -EINVAL and a last_error containing `needle`. */
static void refused(const char *kernel, const char *cmdline, const char *options,
		    const char *needle)
{
	struct hr_vm *vm;
	int rc = open_guest(&vm, "refused", MEM_BYTES, kernel, cmdline, options, NULL);
	const char *why = vm ? hr_mem_ops.last_error(vm) : "";

	ok(rc == -EINVAL && strstr(why, needle), "%s%s%s refused: %s",
	   options ? "options " : "cmdline ", options ? options : cmdline, "", why);
	hr_mem_ops.close(vm);
}

static void test_refusals(void)
{
	refused("mem:", NULL, "map=foo", "map=foo");
	refused("mem:", NULL, "colour=red", "colour");
	refused("mem:", NULL, "chans=0", "chans=0");
	refused("mem:", NULL, "chans=9", "chans=9");
	refused("mem:", NULL, "map", "malformed");
	refused("mem:", "steps_per_s=10 speed=3", NULL, "'speed'");
	refused("mem:", "steps_per_s=fast", NULL, "steps_per_s=fast");
	refused(NULL, "line_bytes=99999999", NULL, "line_bytes");
	refused("none", "quiet", NULL, "'quiet'");
}

/* A version-1 blob (before guest modes) still loads, as a hand-stepped guest. */
static void test_blob_v1(void)
{
	struct hr_vm *vm, *rep;
	uint8_t *blob;
	size_t len;
	void *b;

	open_guest(&vm, "v1", MEM_BYTES, "mem:", NULL, NULL, NULL);
	hr_mem_ops.save_state(vm, &b, &len);
	blob = b;
	blob[4] = 1;   /* version */
	blob[12] = 48; /* blob_bytes: version 1 ends after nr_writes */
	open_guest(&rep, "v1-replica", MEM_BYTES, NULL, NULL, NULL, NULL);
	ok(hr_mem_ops.load_state(rep, blob, 48) == 0, "a version-1 blob loads");
	hr_mem_ops.resume(rep);
	ok(hr_mem_guest_step(rep, 3) == 0, "... as a hand-stepped guest");
	hr_mem_ops.pause(rep);
	free(b);
	hr_mem_ops.close(rep);
	hr_mem_ops.close(vm);
}

int main(void)
{
	hr_log_init("t-mem-backend", 1, 0);
	plan(24 + 10 + 5 + 9 + 9 + 4 + 9 + 2);
	test_hand();
	test_thread_pacing_and_pause();
	test_live_dirty();
	test_replica_determinism();
	test_map_batch();
	test_channels();
	test_refusals();
	test_blob_v1();
	return tap_done();
}
