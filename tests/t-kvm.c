/*
 * t-kvm.c - the KVM backend against real /dev/kvm and the memwalk guest:
 * boot and console, dirty-log exactness (bitmap and ring), pause/resume,
 * in-process state save/load round trip (also from an odd address), bad state
 * blobs refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-harness.h"
#include "tap.h"
#include "core/dirtyset.h"
#include "common/err.h"

#define WSS_BASE_GFN (0x1000000ull >> 12)

static const struct hr_backend_ops *ops;

/* The pages memwalk's exact mode writes in round r (tests/guests/README.md). */
static unsigned exact_set(unsigned r, unsigned wss_pages, uint8_t *mark)
{
	unsigned n = 0;
	memset(mark, 0, wss_pages);
	for (unsigned k = 0; k < 32 + r % 32; k++) {
		unsigned p = (unsigned)(((uint64_t)r * 7 + (uint64_t)k * k * 13) % wss_pages);
		if (!mark[p]) {
			mark[p] = 1;
			n++;
		}
	}
	return n;
}

static int test_boot(void)
{
	struct hr_vm_config cfg = {.name = "t-boot",
				   .mem_bytes = 128 << 20,
				   .nr_vcpus = 1,
				   .kernel_path = gh_guest("memwalk.elf"),
				   .cmdline = "rate=2000 wss=4M interval_ms=50"};
	struct gh g;
	struct hr_vm *vm = NULL;
	size_t at = 0;

	gh_init(&g, &cfg);
	int rc = ops->open(&vm, &cfg);
	ok(rc == 0, "open a 128 MiB VM with memwalk (%s)", hr_strerror(rc));
	if (rc) {
		ops->close(vm);
		return 1;
	}
	ok(ops->resume(vm) == 0, "resume starts the vCPU");
	ok(gh_wait(&g, "memwalk: boot", &at, 30), "console shows the boot banner");
	ok(gh_wait(&g, "cmdline=\"", &at, 5) && gh_wait(&g, "rate=2000 wss=4M", &at, 5),
	   "the guest read its multiboot command line");
	ok(gh_wait(&g, "seq=3 ", &at, 30), "progress lines arrive (seq=3)");
	ok(strstr(g.buf, "errors=0") != NULL, "self-check reports no errors");

	/* pause really stops the guest: no console output while paused */
	ok(ops->pause(vm) == 0, "pause");
	pthread_mutex_lock(&g.lock);
	size_t len_paused = g.len;
	pthread_mutex_unlock(&g.lock);
	usleep(300 * 1000);
	pthread_mutex_lock(&g.lock);
	size_t len_later = g.len;
	pthread_mutex_unlock(&g.lock);
	ok(len_paused == len_later, "no console output while paused (%zu -> %zu bytes)", len_paused,
	   len_later);
	ok(ops->resume(vm) == 0, "resume after pause");
	at = len_later;
	ok(gh_wait(&g, "seq=", &at, 10), "progress continues after resume");
	ops->close(vm);
	free(g.buf);
	return 0;
}

static void test_exact(const char *mname)
{
	char opts[32];
	snprintf(opts, sizeof(opts), "dirty=%s", mname);
	const unsigned wss_pages = 4096; /* wss=16M */
	struct hr_vm_config cfg = {.name = "t-exact",
				   .mem_bytes = 256 << 20,
				   .nr_vcpus = 1,
				   .kernel_path = gh_guest("memwalk.elf"),
				   .cmdline = "mode=exact wss=16M",
				   .options = opts};
	struct gh g;
	struct hr_vm *vm = NULL;
	size_t at = 0;
	const struct hr_mem_region *reg;
	unsigned nreg;

	gh_init(&g, &cfg);
	int rc = ops->open(&vm, &cfg);
	ok(rc == 0, "%s: open (%s)", mname, hr_strerror(rc));
	if (rc) {
		ops->close(vm);
		return;
	}
	ops->mem_layout(vm, &reg, &nreg);
	uint64_t nr_gfns = hr_layout_nr_gfns(reg, nreg);
	struct hr_dirtyset *ds = NULL;
	hr_dirtyset_new(&ds, nr_gfns);
	const uint64_t *bm = hr_dirtyset_bits(ds)->bitmap;
	uint8_t *want = malloc(wss_pages);

	ops->resume(vm);
	ok(gh_wait(&g, "exact ready", &at, 30), "%s: guest ready", mname);
	ops->pause(vm);
	ok(ops->dirty_start(vm) == 0, "%s: dirty tracking on", mname);
	ops->resume(vm);

	int all_exact = 1;
	for (unsigned r = 1; r <= 6; r++) {
		char done[64];
		snprintf(done, sizeof(done), "exact done round=%u ", r);
		ops->console_in(vm, "x", 1);
		if (!gh_wait(&g, done, &at, 20)) {
			ok(0, "%s: round %u finished", mname, r);
			all_exact = 0;
			break;
		}
		ops->pause(vm);
		hr_dirtyset_clear(ds);
		rc = ops->dirty_fetch(vm, hr_dirtyset_bits(ds));
		ops->resume(vm);
		unsigned n_want = exact_set(r, wss_pages, want), missing = 0, extra = 0, seen = 0;
		for (unsigned p = 0; p < wss_pages; p++) {
			uint64_t gfn = WSS_BASE_GFN + p;
			int d = (bm[gfn / 64] >> (gfn % 64)) & 1;
			seen += d;
			if (want[p] && !d)
				missing++;
			if (!want[p] && d)
				extra++;
		}
		if (rc || missing || extra) {
			all_exact = 0;
			diag("%s round %u: rc=%d want %u seen %u missing %u extra %u", mname, r, rc,
			     n_want, seen, missing, extra);
		}
	}
	ok(all_exact, "%s: 6 rounds, the working-set pages reported are exactly those written",
	   mname);
	ops->pause(vm);
	ok(ops->dirty_stop(vm) == 0, "%s: dirty tracking off", mname);
	ops->close(vm);
	hr_dirtyset_free(ds);
	free(want);
	free(g.buf);
}

static void test_state_roundtrip(void)
{
	struct hr_vm_config cfg = {.name = "t-state",
				   .mem_bytes = 64 << 20,
				   .nr_vcpus = 2,
				   .kernel_path = gh_guest("memwalk.elf"),
				   .cmdline = "rate=1000 wss=2M interval_ms=50"};
	struct gh g;
	struct hr_vm *vm = NULL;
	size_t at = 0;
	void *blob = NULL, *blob2 = NULL;
	int rc;
	size_t len = 0, len2 = 0;

	gh_init(&g, &cfg);
	if (ops->open(&vm, &cfg)) {
		ok(0, "open a 2-vCPU VM");
		ops->close(vm);
		return;
	}
	ops->resume(vm);
	ok(gh_wait(&g, "seq=2 ", &at, 30), "2-vCPU VM runs");
	ops->pause(vm);
	rc = ops->save_state(vm, &blob, &len);
	ok(rc == 0 && len > 0, "save_state: %zu bytes", len);
	ok(ops->load_state(vm, blob, len) == 0, "load_state of its own blob");
	ok(ops->save_state(vm, &blob2, &len2) == 0 && len2 == len, "saved again");
	/* The blob after a load equals the blob before but for the clocks that run on
	 * while the VM is paused (TSC, LAPIC/PIT counters): a handful of bytes. */
	size_t ndiff = 0;
	for (size_t i = 0; len2 == len && i < len; i++)
		ndiff += ((uint8_t *)blob)[i] != ((uint8_t *)blob2)[i];
	ok(len2 == len && ndiff <= 64,
	   "state unchanged across save -> load -> save (%zu bytes "
	   "differ, all clocks)",
	   ndiff);

	/* A blob need not be aligned: the engine hands the backend a blob that sits
	 * after a variable-length console prefix.  Load one at an odd address. */
	uint8_t *odd = malloc(len + 1);
	if (odd)
		memcpy(odd + 1, blob, len);
	ok(odd && ops->load_state(vm, odd + 1, len) == 0,
	   "load_state of a blob at an odd address (malloc'd buffer + 1)");
	free(odd);

	uint32_t *hdr = blob;
	hdr[1] = 99; /* version */
	ok(ops->load_state(vm, blob, len) == -HR_EBADSTATE, "blob of another version refused");
	hdr[1] = 1;
	hdr[2] = 3; /* nr_vcpus */
	ok(ops->load_state(vm, blob, len) == -HR_EBADSTATE, "blob of another shape refused");
	hdr[2] = 2;
	ok(ops->load_state(vm, blob, len / 2) == -HR_EBADSTATE, "truncated blob refused");
	ok(ops->load_state(vm, blob, 7) == -HR_EBADSTATE, "7-byte blob refused");
	ok(ops->resume(vm) == 0 && gh_wait(&g, "seq=", &at, 10), "guest still runs after refusals");
	ops->close(vm);
	free(blob);
	free(blob2);
	free(g.buf);
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	if (access(gh_guest("memwalk.elf"), R_OK))
		bail("tests/guests/memwalk.elf not built");
	ops = hr_backend_find("kvm");
	plan(10 + 2 * 5 + 11);
	if (test_boot())
		return 1;
	test_exact("bitmap");
	test_exact("ring");
	test_state_roundtrip();
	return tap_done();
}
