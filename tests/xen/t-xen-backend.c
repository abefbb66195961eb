/*
 * t-xen-backend - the Xen backend's hooks against a real PVH domain, run in
 * dom0 of the nested Xen host (make check-xen; tests/xen/README.md).
 *
 * The domain is created with `xl create` (HR_XEN_CFG) and runs the counter
 * guest (domu-init.sh: "HRCOUNT n" lines on its PV console).  The backend
 * attaches to it by name and is its console reader (no xenconsoled runs).
 * Checked: attach + layout, console bytes through emit, pause stops the
 * guest, log-dirty reports the counter's writes and nothing while paused,
 * batched foreign maps read the guest kernel's text, save/load of the state
 * blob (and refusal of a bad one), a replica built by libxl with the same
 * shape and layout, filled with the primary's pages and state, and what the
 * replica does once the primary domain is destroyed and it is promoted.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "tap.h"

extern const struct hr_backend_ops hr_xen_ops;
static const struct hr_backend_ops *ops = &hr_xen_ops;

#define DOMU	"hrxt"
#define MEM_MIB 128
#define CON_CAP (1u << 20)

struct con {
	pthread_mutex_t lock;
	char buf[CON_CAP];
	size_t len;
};

static int emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct con *c = opaque;
	pthread_mutex_lock(&c->lock);
	if (chan == 0 && c->len + len < CON_CAP) {
		memcpy(c->buf + c->len, buf, len);
		c->len += len;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static size_t con_len(struct con *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->len;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * The counter in console bytes: every "HRCOUNT n" line must follow the
 * previous one by exactly 1 (from `first` on, when first > 0).  Returns
 * the last n, 0 if none, -1 on a gap or a repeat (diag says where).
 */
static long counter_check(struct con *c, size_t from, long first)
{
	long last = first > 0 ? first - 1 : 0;
	int seen = 0;

	pthread_mutex_lock(&c->lock);
	c->buf[c->len] = '\0';
	for (char *p = c->buf + from; (p = strstr(p, "HRCOUNT ")); p++) {
		char *nl = strchr(p, '\n');
		if (!nl)
			break; /* a line still being written */
		long n = strtol(p + 8, NULL, 10);
		if ((seen || first > 0) && n != last + 1) {
			pthread_mutex_unlock(&c->lock);
			diag("counter went from %ld to %ld", last, n);
			return -1;
		}
		last = n;
		seen = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return seen ? last : 0;
}

/* Wait (bounded) until the counter passes `target`. */
static long wait_counter(struct con *c, size_t from, long first, long target, double timeout_s)
{
	uint64_t until = hr_now_ns() + (uint64_t)(timeout_s * 1e9);
	long n;
	while ((n = counter_check(c, from, first)) >= 0 && n < target && hr_now_ns() < until)
		usleep(50000);
	return n;
}

static int run(const char *cmd)
{
	diag("$ %s", cmd);
	return system(cmd);
}

static uint64_t popcount_set(struct hr_dirty_bits *d)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < d->nr_words; i++)
		n += (uint64_t)__builtin_popcountll(d->bitmap[d->words[i]]);
	return n;
}

static void dirty_reset(struct hr_dirty_bits *d)
{
	for (uint64_t i = 0; i < d->nr_words; i++)
		d->bitmap[d->words[i]] = 0;
	d->nr_words = 0;
}

/* Does any RAM page hold `needle`?  (batched maps, HR_MAP_BATCH_PAGES at once) */
static int find_in_guest(struct hr_vm *vm, const struct hr_mem_region *r, unsigned nr_r,
			 const char *needle, uint64_t *gfn_r, unsigned *nr_null_r)
{
	static uint64_t gfns[HR_MAP_BATCH_PAGES];
	static uint8_t *ptrs[HR_MAP_BATCH_PAGES];
	size_t nl = strlen(needle);

	*nr_null_r = 0;
	for (unsigned i = 0; i < nr_r; i++) {
		uint64_t g0 = r[i].gpa >> HR_PAGE_SHIFT, n = r[i].bytes >> HR_PAGE_SHIFT;
		for (uint64_t g = 0; g < n; g += HR_MAP_BATCH_PAGES) {
			unsigned k =
			    n - g < HR_MAP_BATCH_PAGES ? (unsigned)(n - g) : HR_MAP_BATCH_PAGES;
			void *cookie;
			for (unsigned j = 0; j < k; j++)
				gfns[j] = g0 + g + j;
			if (ops->map_pages(vm, gfns, k, 0, ptrs, &cookie) < 0)
				return -1;
			for (unsigned j = 0; j < k; j++) {
				if (!ptrs[j]) {
					(*nr_null_r)++;
					continue;
				}
				if (memmem(ptrs[j], HR_PAGE_SIZE - nl, needle, nl)) {
					*gfn_r = gfns[j];
					ops->unmap_pages(vm, cookie);
					return 1;
				}
			}
			ops->unmap_pages(vm, cookie);
		}
	}
	return 0;
}

int main(void)
{
	static struct con con1 = {.lock = PTHREAD_MUTEX_INITIALIZER};
	static struct con con2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
	const char *cfg = getenv("HR_XEN_CFG"), *kernel = getenv("HR_XEN_KERNEL");
	struct hr_vm *vm = NULL, *rep = NULL;
	const struct hr_mem_region *regs, *rregs;
	unsigned nr_regs = 0, nr_rregs = 0;
	int rc;

	hr_log_init("t-xen-backend", 1, 0);
	if (access("/dev/xen/privcmd", R_OK) && access("/proc/xen/privcmd", R_OK))
		skip_all("no Xen control interface here (runs in dom0: make check-xen)");
	if (!cfg || !kernel)
		skip_all("HR_XEN_CFG / HR_XEN_KERNEL not set (make check-xen sets them)");
	plan(26);

	/* the protected domain, as an operator would have it: created by xl */
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "xl create %s >/tmp/xl-create.out 2>&1; r=$?; tail -3 /tmp/xl-create.out | "
		 "sed 's/^/# /'; exit $r",
		 cfg);
	ok(run(cmd) == 0, "xl create of the counter domain");

	/* a bad attach target is refused with a reason */
	struct hr_vm_config vc = {.name = DOMU,
				  .mem_bytes = (uint64_t)MEM_MIB << 20,
				  .nr_vcpus = 1,
				  .attach = "no-such-domain",
				  .emit = emit,
				  .emit_opaque = &con1};
	rc = ops->open(&vm, &vc);
	ok(rc == -ENOENT && vm && strstr(ops->last_error(vm), "no-such-domain"),
	   "attach to a missing domain: %s (%s)", hr_strerror(rc), vm ? ops->last_error(vm) : "");
	ops->close(vm);
	vm = NULL;

	vc.attach = DOMU;
	uint64_t t0 = hr_now_ns();
	rc = ops->open(&vm, &vc);
	ok(rc == 0, "attach to domain %s: %s %s", DOMU, hr_strerror(rc),
	   rc && vm ? ops->last_error(vm) : "");
	if (rc)
		bail("cannot attach");
	diag("attach (layout probe) took %.2f s", (hr_now_ns() - t0) / 1e9);
	ops->mem_layout(vm, &regs, &nr_regs);
	uint64_t ram = 0;
	for (unsigned i = 0; i < nr_regs; i++) {
		diag("region %u: %#" PRIx64 " + %" PRIu64 " KiB", i, regs[i].gpa,
		     regs[i].bytes >> 10);
		ram += regs[i].bytes;
	}
	ok(nr_regs >= 1 && !regs[0].hva && ram >= ((uint64_t)MEM_MIB << 20) - (4u << 20),
	   "layout: %u regions, %" PRIu64 " KiB mappable, no permanent mapping (batched)", nr_regs,
	   ram >> 10);

	ok(ops->resume(vm) == 0, "resume");
	long n = wait_counter(&con1, 0, 0, 5, 240);
	ok(n >= 5, "the guest's console reaches the backend's emit (counter at %ld)", n);

	/* pause: nothing more comes out */
	ok(ops->pause(vm) == 0, "pause");
	size_t l1 = con_len(&con1);
	usleep(1500000);
	ok(con_len(&con1) == l1, "paused: no console output for 1.5 s (%zu bytes)", l1);

	/* log-dirty */
	struct hr_dirty_bits d;
	uint64_t top = hr_layout_nr_gfns(regs, nr_regs), nw = (top + 63) / 64;
	d.bitmap = calloc(nw, 8);
	d.words = calloc(nw, 8);
	d.nr_words = 0;
	ok(ops->dirty_start(vm) == 0, "dirty_start (HAP log-dirty)");
	long before = counter_check(&con1, 0, 0);
	ops->resume(vm);
	n = wait_counter(&con1, 0, 0, before + 3, 60);
	ops->pause(vm);
	rc = ops->dirty_fetch(vm, &d);
	uint64_t nd = popcount_set(&d);
	ok(rc == 0 && nd > 0, "dirty_fetch after the counter ran (%ld -> %ld): %" PRIu64 " pages",
	   before, n, nd);
	dirty_reset(&d);
	rc = ops->dirty_fetch(vm, &d);
	ok(rc == 0 && popcount_set(&d) == 0, "a second fetch while paused: %" PRIu64 " pages",
	   popcount_set(&d));

	/* batched foreign maps: the kernel's banner is in guest RAM */
	uint64_t gfn = 0;
	unsigned nr_null = 0;
	t0 = hr_now_ns();
	rc = find_in_guest(vm, regs, nr_regs, "Linux version 6.", &gfn, &nr_null);
	ok(rc == 1, "map_pages: the kernel banner found at gfn %#" PRIx64 " (%.2f s)", gfn,
	   (hr_now_ns() - t0) / 1e9);
	uint64_t far[2] = {0, top + 10};
	uint8_t *fp[2];
	void *ck;
	rc = ops->map_pages(vm, far, 2, 0, fp, &ck);
	ok(rc == 0 && fp[0] && !fp[1], "map_pages: gfn 0 mapped, a gfn past the p2m is NULL");
	ops->unmap_pages(vm, ck);

	/* state blob */
	void *blob = NULL;
	size_t blob_len = 0;
	rc = ops->save_state(vm, &blob, &blob_len);
	ok(rc == 0 && blob_len > 40, "save_state: %zu bytes", blob_len);
	ok(ops->load_state(vm, blob, blob_len - 1) == -HR_EBADSTATE,
	   "load_state refuses a truncated blob");
	rc = ops->load_state(vm, blob, blob_len);
	ok(rc == 0, "load_state of the same blob into the paused domain: %s", hr_strerror(rc));
	size_t mark = con_len(&con1);
	long last = counter_check(&con1, 0, 0);
	ops->resume(vm);
	n = wait_counter(&con1, mark, last + 1, last + 3, 60);
	ok(n >= last + 3, "after load_state the counter goes on without a gap (%ld -> %ld)", last,
	   n);

	/* the replica: same shape, built paused by libxl */
	struct hr_vm_config rc_cfg = {.name = DOMU,
				      .mem_bytes = (uint64_t)MEM_MIB << 20,
				      .nr_vcpus = 1,
				      .options = NULL,
				      .emit = emit,
				      .emit_opaque = &con2};
	/* the replica is built from the installed replica shell (no kernel= option) */
	char opts[300];
	snprintf(opts, sizeof(opts), "replica_name=%s-replica", DOMU);
	rc_cfg.options = opts;
	t0 = hr_now_ns();
	rc = ops->open(&rep, &rc_cfg);
	ok(rc == 0, "replica built (%.1f s): %s %s", (hr_now_ns() - t0) / 1e9, hr_strerror(rc),
	   rc && rep ? ops->last_error(rep) : "");
	if (rc)
		bail("no replica");
	ops->mem_layout(rep, &rregs, &nr_rregs);
	int same = nr_rregs == nr_regs;
	for (unsigned i = 0; same && i < nr_regs; i++)
		same = rregs[i].gpa == regs[i].gpa && rregs[i].bytes == regs[i].bytes;
	ok(same && rregs[0].hva, "replica: the same layout, host-mapped for staging");

	/* fill it as a committed epoch would: every page, then the state */
	ops->pause(vm);
	uint64_t copied = 0;
	static uint64_t gfns[HR_MAP_BATCH_PAGES];
	static uint8_t *ptrs[HR_MAP_BATCH_PAGES];
	for (unsigned i = 0; i < nr_regs; i++) {
		uint64_t g0 = regs[i].gpa >> HR_PAGE_SHIFT, np = regs[i].bytes >> HR_PAGE_SHIFT;
		for (uint64_t g = 0; g < np; g += HR_MAP_BATCH_PAGES) {
			unsigned k =
			    np - g < HR_MAP_BATCH_PAGES ? (unsigned)(np - g) : HR_MAP_BATCH_PAGES;
			for (unsigned j = 0; j < k; j++)
				gfns[j] = g0 + g + j;
			if (ops->map_pages(vm, gfns, k, 0, ptrs, &ck) < 0)
				continue;
			for (unsigned j = 0; j < k; j++) {
				uint8_t *dst = hr_layout_gfn_hva(rregs, nr_rregs, gfns[j]);
				if (ptrs[j] && dst) {
					memcpy(dst, ptrs[j], HR_PAGE_SIZE);
					copied++;
				}
			}
			ops->unmap_pages(vm, ck);
		}
	}
	free(blob);
	blob = NULL;
	rc = ops->save_state(vm, &blob, &blob_len);
	if (!rc)
		rc = ops->load_state(rep, blob, blob_len);
	ok(rc == 0, "replica: %" PRIu64 " pages copied, state loaded: %s %s", copied,
	   hr_strerror(rc), rc ? ops->last_error(rep) : "");
	last = counter_check(&con1, 0, 0);

	/* the primary side dies: its domain is destroyed */
	ops->close(vm);
	vm = NULL;
	ok(run("xl destroy " DOMU) == 0, "xl destroy of the primary domain");
	rc = ops->resume(rep);
	ok(rc == 0, "replica promoted (unpaused): %s", hr_strerror(rc));
	ok(run("i=0; while [ $i -lt 100 ]; do xl list | grep -q '^" DOMU " ' && exit 0; "
	       "i=$((i + 1)); usleep 100000; done; exit 1") == 0,
	   "the promoted replica takes the name %s (within 10 s)", DOMU);
	t0 = hr_now_ns();
	n = wait_counter(&con2, 0, last + 1, last + 1, 60);
	double first_s = (hr_now_ns() - t0) / 1e9;
	n = wait_counter(&con2, 0, last + 1, last + 20, 120);
	ok(n >= last + 20,
	   "the replica's console continues the counter from %ld without a gap (reached %ld; "
	   "first line %.2f s after the unpause)",
	   last + 1, n, first_s);
	if (n < last + 20) {
		pthread_mutex_lock(&con2.lock);
		diag("replica console (%zu bytes): %.*s", con2.len,
		     (int)(con2.len < 400 ? con2.len : 400), con2.buf);
		pthread_mutex_unlock(&con2.lock);
		run("xl list; xl debug-keys q; xl dmesg | tail -20");
	}
	ok(counter_check(&con2, 0, last + 1) >= 0, "nothing the primary released is contradicted");
	ops->close(rep);
	ok(run("! xl list | grep -q " DOMU) == 0, "close destroyed the replica it built");
	free(blob);
	free(d.bitmap);
	free(d.words);
	return tap_failed ? 1 : 0;
}
