/* t-mem-backend.c - the in-memory backend: life cycle, dirty exactness, state blobs. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "common/log.h"
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

int main(void)
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

	hr_log_init("t-mem-backend", 1, 0);
	plan(24);

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
	return tap_done();
}
