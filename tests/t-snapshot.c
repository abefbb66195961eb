/*
 * t-snapshot.c - snapshot files with the mem backend: round trip, then every
 * kind of damage refused with the right code, then sparse and huge guests.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "common/unaligned.h"
#include "backends/backend.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/snapshot.h"
#include "tap.h"

#define MEM_BYTES (64ull << 20)

static const struct hr_backend_ops *ops = &hr_mem_ops;
static unsigned replica_vcpus = 2; /* what a restorer would take from hr_snapshot_read_info */

static struct hr_vm_config make_cfg(const char *name, uint64_t mem_bytes, const char *kernel)
{
	struct hr_vm_config cfg = {
	    .name = name, .mem_bytes = mem_bytes, .nr_vcpus = 2, .kernel_path = kernel};
	return cfg;
}

static struct hr_vm *open_vm(const char *name, uint64_t mem_bytes, const char *kernel)
{
	struct hr_vm_config cfg = make_cfg(name, mem_bytes, kernel);
	struct hr_vm *vm = NULL;

	if (!kernel)
		cfg.nr_vcpus = replica_vcpus;
	if (ops->open(&vm, &cfg) < 0)
		bail("cannot open mem vm %s", name);
	return vm;
}

static const struct hr_mem_region *layout(struct hr_vm *vm)
{
	const struct hr_mem_region *rg;
	unsigned nr;

	ops->mem_layout(vm, &rg, &nr);
	return rg;
}

static void run(struct hr_vm *vm, unsigned nr_steps, unsigned nr_writes)
{
	ops->resume(vm);
	for (unsigned i = 0; i < nr_steps; i++)
		if (hr_mem_guest_step(vm, nr_writes) < 0)
			bail("step failed");
	ops->pause(vm);
}

static int memfd_with(const uint8_t *buf, size_t len)
{
	int fd = memfd_create("snap", MFD_CLOEXEC);

	if (fd < 0 || hr_write_all(fd, buf, len) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		bail("memfd");
	return fd;
}

static uint8_t *slurp(int fd, size_t *len_r)
{
	struct stat st;
	uint8_t *buf;

	fstat(fd, &st);
	buf = malloc((size_t)st.st_size + 1);
	lseek(fd, 0, SEEK_SET);
	if (hr_read_all(fd, buf, (uint64_t)st.st_size) < 0)
		bail("slurp");
	*len_r = (size_t)st.st_size;
	return buf;
}

/* Walk the records as docs/snapshot-format.md describes them. */
struct rec {
	size_t off, payload_off, payload_len;
	uint32_t type;
};

static unsigned walk(const uint8_t *img, size_t len, struct rec *recs, unsigned max)
{
	size_t off = hr_get_le32(img + 12);
	unsigned n = 0;

	while (off + 32 <= len && n < max) {
		struct rec *r = &recs[n++];
		r->off = off;
		r->type = hr_get_le32(img + off);
		r->payload_off = off + 32;
		r->payload_len = r->type == 1	? hr_get_le64(img + off + 16) * HR_PAGE_SIZE
				 : r->type == 2 ? hr_get_le64(img + off + 8)
						: 0;
		off = r->payload_off + r->payload_len;
		if (r->type == 3)
			break;
	}
	return n;
}

/* Restore img (len bytes) into a fresh replica; returns the code, checks the replica stayed
 * unloaded. */
static int restore_img(const uint8_t *img, size_t len, uint64_t mem_bytes, int *state_untouched_r)
{
	struct hr_vm *rep = open_vm("vm1-replica", mem_bytes, NULL);
	struct hr_vm *fresh = open_vm("fresh", mem_bytes, NULL);
	void *b1, *b2;
	size_t l1, l2;
	int fd = memfd_with(img, len);
	int rc = hr_snapshot_read(ops, rep, fd);

	ops->save_state(rep, &b1, &l1);
	ops->save_state(fresh, &b2, &l2);
	if (state_untouched_r)
		*state_untouched_r = l1 == l2 && !memcmp(b1, b2, l1);
	free(b1);
	free(b2);
	close(fd);
	ops->close(rep);
	ops->close(fresh);
	return rc;
}

static int expect(const uint8_t *img, size_t len, uint64_t mem_bytes, int want, const char *what)
{
	int untouched = 0;
	int rc = restore_img(img, len, mem_bytes, &untouched);

	return ok(rc == want && (rc == 0 || untouched), "%s: %s (want %s)%s", what, hr_strerror(rc),
		  hr_strerror(want), rc == 0 || untouched ? "" : ", BUT THE STATE WAS LOADED");
}

static int same_memory(struct hr_vm *a, struct hr_vm *b, uint64_t mem_bytes, uint64_t *nr_nonzero_r)
{
	const uint8_t *pa = layout(a)->hva, *pb = layout(b)->hva;
	static const uint8_t zero[HR_PAGE_SIZE];
	uint64_t nr_pages = mem_bytes / HR_PAGE_SIZE, nr_nonzero = 0;
	unsigned char *va = malloc(nr_pages), *vb = malloc(nr_pages);
	int same = 1;

	/* Pages resident in neither are untouched, hence zero in both: skip them. */
	if (mincore((void *)pa, mem_bytes, va) < 0 || mincore((void *)pb, mem_bytes, vb) < 0)
		memset(va, 1, nr_pages);
	for (uint64_t g = 0; g < nr_pages; g++) {
		if (!(va[g] & 1) && !(vb[g] & 1))
			continue;
		if (memcmp(pa + g * HR_PAGE_SIZE, pb + g * HR_PAGE_SIZE, HR_PAGE_SIZE))
			same = 0;
		nr_nonzero += memcmp(pa + g * HR_PAGE_SIZE, zero, HR_PAGE_SIZE) != 0;
	}
	free(va);
	free(vb);
	if (nr_nonzero_r)
		*nr_nonzero_r = nr_nonzero;
	return same;
}

static int same_state(struct hr_vm *a, struct hr_vm *b)
{
	void *b1, *b2;
	size_t l1, l2;
	int same;

	if (ops->save_state(a, &b1, &l1) < 0 || ops->save_state(b, &b2, &l2) < 0)
		return 0;
	same = l1 == l2 && !memcmp(b1, b2, l1);
	free(b1);
	free(b2);
	return same;
}

static void recompute_header_sum(uint8_t *img)
{
	uint32_t hdr_bytes = hr_get_le32(img + 12);
	uint64_t sum = XXH3_64bits(img, hdr_bytes - 8);

	memcpy(img + hdr_bytes - 8, &sum, 8);
}

int main(void)
{
	struct hr_vm_config cfg = make_cfg("vm1", MEM_BYTES, "none");
	struct hr_snapshot_info info;
	struct hr_vm *src, *rep;
	struct rec recs[4096];
	uint64_t nr_nonzero;
	uint8_t *img, *bad;
	size_t len;
	int fd, rc;

	hr_log_init("t-snapshot", 1, 0);
	plan(43);

	/* ---- round trip ---- */
	src = open_vm("vm1", MEM_BYTES, "none");
	run(src, 20, 500);
	fd = memfd_create("snap", MFD_CLOEXEC);
	ops->resume(src);
	rc = hr_snapshot_write(ops, src, &cfg, fd);
	ok(rc == -EBUSY, "snapshot of a running vm refused (%s)", hr_strerror(rc));
	ops->pause(src);
	ftruncate(fd, 0);
	lseek(fd, 0, SEEK_SET);
	rc = hr_snapshot_write(ops, src, &cfg, fd);
	ok(rc == 0, "snapshot written (%s)", hr_strerror(rc));
	img = slurp(fd, &len);
	diag("snapshot of a 64 MiB vm after 10000 writes: %zu bytes", len);

	lseek(fd, 0, SEEK_SET);
	rc = hr_snapshot_read_info(fd, &info);
	ok(rc == 0 && !strcmp(info.backend, "mem") && info.mem_bytes == MEM_BYTES &&
	       info.nr_vcpus == 2 && info.version == 1 && !strcmp(info.vm_name, "vm1"),
	   "read_info: %s %s %llu bytes %u vcpus v%u", info.backend, info.vm_name,
	   (unsigned long long)info.mem_bytes, info.nr_vcpus, info.version);

	rep = open_vm("vm1-replica", MEM_BYTES, NULL);
	lseek(fd, 0, SEEK_SET);
	rc = hr_snapshot_read(ops, rep, fd);
	ok(rc == 0, "restored into a replica (%s)", hr_strerror(rc));
	close(fd);
	int same = same_memory(src, rep, MEM_BYTES, &nr_nonzero);
	ok(same && nr_nonzero > 5000, "every page identical (%llu non-zero)",
	   (unsigned long long)nr_nonzero);
	ok(same_state(src, rep), "state identical");
	run(src, 10, 700);
	run(rep, 10, 700);
	ok(same_memory(src, rep, MEM_BYTES, NULL) && same_state(src, rep),
	   "stepping both gives identical pages and state");
	ops->close(rep);
	ops->close(src);

	/* ---- damage ---- */
	unsigned nr_recs = walk(img, len, recs, 4096);
	uint32_t hdr_bytes = hr_get_le32(img + 12);
	struct rec *first = &recs[0], *state = &recs[nr_recs - 2], *end = &recs[nr_recs - 1];
	ok(nr_recs >= 3 && first->type == 1 && state->type == 2 && end->type == 3 &&
	       end->off + 32 == len,
	   "file walks as documented: %u records, header %u bytes", nr_recs, hdr_bytes);
	bad = malloc(len + 1);

#define DAMAGE(stmt, want, what)                                                                   \
	do {                                                                                       \
		memcpy(bad, img, len);                                                             \
		size_t blen = len;                                                                 \
		stmt;                                                                              \
		expect(bad, blen, MEM_BYTES, want, what);                                          \
	} while (0)

	DAMAGE((void)0, 0, "undamaged copy restores");
	DAMAGE(bad[0] ^= 1, -HR_EBADSNAP, "flipped magic");
	DAMAGE(bad[40] ^= 0x20, -HR_ECHECKSUM, "flipped byte in vm name");
	DAMAGE(bad[100] ^= 1, -HR_ECHECKSUM, "flipped byte in mem_bytes");
	DAMAGE(bad[hdr_bytes - 1] ^= 1, -HR_ECHECKSUM, "flipped byte in header checksum");
	DAMAGE(bad[first->payload_off + 5000] ^= 0x80, -HR_ECHECKSUM, "flipped byte in page data");
	DAMAGE(bad[recs[nr_recs / 2].payload_off + 17] ^= 1, -HR_ECHECKSUM,
	       "flipped byte in a middle page record");
	DAMAGE(bad[first->off + 16] ^= 1, -HR_ECHECKSUM, "flipped bit in a page count");
	DAMAGE(bad[first->off + 15] ^= 0x40, -HR_EBADSNAP, "page run moved outside the layout");
	DAMAGE(bad[state->payload_off + 20] ^= 1, -HR_ECHECKSUM, "flipped byte in state blob");
	DAMAGE(bad[end->off + 8] ^= 1, -HR_ECHECKSUM, "flipped byte in end record");
	DAMAGE(bad[4] = '2', -HR_EBADSNAP, "magic HRSNAP21");

	/* a whole record dropped, with the file otherwise intact */
	memcpy(bad, img, len);
	size_t gap = recs[1].off - recs[0].off;
	memmove(bad + recs[0].off, img + recs[1].off, len - recs[1].off);
	expect(bad, len - gap, MEM_BYTES, -HR_EBADSNAP, "a page record dropped");

	/* truncation at many places */
	const size_t cuts[] = {0,
			       1,
			       7,
			       50,
			       hdr_bytes - 1,
			       hdr_bytes,
			       hdr_bytes + 10,
			       first->payload_off + 4096,
			       state->off,
			       state->payload_off + 3,
			       end->off,
			       end->off + 31};
	for (unsigned i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "truncated to %zu of %zu bytes", cuts[i], len);
		expect(img, cuts[i], MEM_BYTES, -HR_EBADSNAP, what);
	}
	DAMAGE((bad[len] = 0, blen = len + 1), -HR_EBADSNAP, "one trailing byte");

	/* version and shape, with a valid header checksum */
	DAMAGE((bad[8] = 2, recompute_header_sum(bad)), -HR_EVERSION, "format version 2");
	DAMAGE((memcpy(bad + 16, "kvm", 3), recompute_header_sum(bad)), -HR_ESHAPE,
	       "written by another backend");
	expect(img, len, MEM_BYTES / 2, -HR_ESHAPE, "replica with half the memory");
	replica_vcpus = 3; /* the restorer builds what the header says */
	DAMAGE((bad[104] = 3, recompute_header_sum(bad)), -HR_EBADSTATE,
	       "header and replica say 3 vcpus, blob says 2 (load_state refuses)");
	replica_vcpus = 2;
	free(bad);
	free(img);

	/* ---- sparse guests ---- */
	src = open_vm("empty", MEM_BYTES, "none");
	cfg = make_cfg("empty", MEM_BYTES, "none");
	memset(layout(src)->hva + (8 << 20), 0, 4 << 20); /* resident but zero */
	fd = memfd_create("snap", MFD_CLOEXEC);
	rc = hr_snapshot_write(ops, src, &cfg, fd);
	img = slurp(fd, &len);
	ok(rc == 0 && len < 1024, "all-zero vm: %zu byte snapshot", len);
	rep = open_vm("empty-replica", MEM_BYTES, NULL);
	lseek(fd, 0, SEEK_SET);
	rc = hr_snapshot_read(ops, rep, fd);
	ok(rc == 0 && same_state(src, rep), "all-zero vm restores (%s)", hr_strerror(rc));
	close(fd);
	free(img);
	ops->close(rep);
	ops->close(src);

	const uint64_t big_bytes = 16ull << 30;
	src = open_vm("big", big_bytes, "none");
	cfg = make_cfg("big", big_bytes, "none");
	run(src, 4, 25);
	fd = memfd_create("snap", MFD_CLOEXEC);
	uint64_t t0 = hr_now_ns();
	rc = hr_snapshot_write(ops, src, &cfg, fd);
	uint64_t write_ms = (hr_now_ns() - t0) / 1000000;
	img = slurp(fd, &len);
	ok(rc == 0 && len < (1u << 20) && write_ms < 2000,
	   "16 GiB vm, 100 writes: %zu byte snapshot in %llu ms", len,
	   (unsigned long long)write_ms);
	rep = open_vm("big-replica", big_bytes, NULL);
	lseek(fd, 0, SEEK_SET);
	t0 = hr_now_ns();
	rc = hr_snapshot_read(ops, rep, fd);
	ok(rc == 0, "16 GiB vm restores in %llu ms (%s)",
	   (unsigned long long)((hr_now_ns() - t0) / 1000000), hr_strerror(rc));
	run(src, 2, 50);
	run(rep, 2, 50);
	same = same_memory(src, rep, big_bytes, &nr_nonzero);
	ok(same && same_state(src, rep) && nr_nonzero > 100,
	   "16 GiB replica identical after stepping both (%llu non-zero pages)",
	   (unsigned long long)nr_nonzero);
	close(fd);
	free(img);
	ops->close(rep);
	ops->close(src);
	return tap_done();
}
