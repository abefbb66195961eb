/*
 * fz-snapshot.c - fuzz target: the snapshot loader (docs/snapshot-format.md).
 *
 * Input: one mode byte, then a snapshot file.  Mode bit 0: first recompute
 * every checksum of the file (header_sum, each record's sum, END's count
 * and sum) wherever the lengths allow, so that mutations get past the
 * checksums to the record logic and the backend's load_state.  The file
 * goes through hr_snapshot_read_info and hr_snapshot_read into a fresh
 * replica of the mem backend (1 MiB, 1 vCPU), from a memfd.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "backends/mem/mem.h"
#include "common/unaligned.h"
#include "common/util.h"
#include "core/snapshot.h"
#include "fuzz.h"

#define MEM_BYTES	(1u << 20)
#define HDR_FIXED_BYTES 112u
#define REC_HDR_BYTES	32u
#define STATE_MAX_BYTES (64u << 20)

static const struct hr_backend_ops *ops = &hr_mem_ops;

/* Make every checksum of the file in p right, where the lengths fit. */
static void fix_sums(uint8_t *p, size_t len)
{
	uint32_t hdr_bytes, type;
	uint64_t a, b, payload, nr = 0;
	XXH3_state_t *all;
	size_t off;

	if (len < HDR_FIXED_BYTES + 8)
		return;
	hdr_bytes = hr_get_le32(p + 12);
	if (hdr_bytes < HDR_FIXED_BYTES + 8 || hdr_bytes > len)
		return;
	hr_put_le64(p + hdr_bytes - 8, XXH3_64bits(p, hdr_bytes - 8));
	if (!(all = XXH3_createState()))
		return;
	XXH3_64bits_reset(all);
	for (off = hdr_bytes; len - off >= REC_HDR_BYTES; off += REC_HDR_BYTES + payload) {
		type = hr_get_le32(p + off);
		a = hr_get_le64(p + off + 8);
		b = hr_get_le64(p + off + 16);
		payload = type == 1 && b <= len / HR_PAGE_SIZE ? b * HR_PAGE_SIZE
			  : type == 2 && a <= STATE_MAX_BYTES  ? a
							       : 0;
		if (payload > len - off - REC_HDR_BYTES)
			break;
		if (type == 3) {
			hr_put_le64(p + off + 8, nr);
			hr_put_le64(p + off + 16, XXH3_64bits_digest(all));
		}
		XXH3_state_t *one = XXH3_createState();
		if (!one)
			break;
		XXH3_64bits_reset(one);
		XXH3_64bits_update(one, p + off, 24);
		XXH3_64bits_update(one, p + off + REC_HDR_BYTES, payload);
		hr_put_le64(p + off + 24, XXH3_64bits_digest(one));
		XXH3_freeState(one);
		XXH3_64bits_update(all, p + off + 24, 8);
		nr++;
		if (type == 3)
			break;
	}
	XXH3_freeState(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hr_vm_config cfg = {.name = "fz-r", .mem_bytes = MEM_BYTES, .nr_vcpus = 1};
	struct hr_snapshot_info info;
	struct hr_vm *vm = NULL;
	uint8_t *file;
	int fd;

	if (size < 1 || !(file = malloc(size)))
		return 0;
	memcpy(file, data + 1, size - 1);
	if (data[0] & 1)
		fix_sums(file, size - 1);
	fd = memfd_create("fz-snapshot", MFD_CLOEXEC);
	if (fd < 0 || hr_write_all(fd, file, size - 1) < 0)
		goto out;
	lseek(fd, 0, SEEK_SET);
	hr_snapshot_read_info(fd, &info);
	lseek(fd, 0, SEEK_SET);
	if (ops->open(&vm, &cfg) == 0)
		hr_snapshot_read(ops, vm, fd);
out:
	if (vm)
		ops->close(vm);
	if (fd >= 0)
		close(fd);
	free(file);
	return 0;
}

int fz_make_seeds(const char *dir)
{
	struct hr_vm_config cfg = {
	    .name = "fz", .mem_bytes = MEM_BYTES, .nr_vcpus = 1, .kernel_path = "none"};
	struct hr_vm *vm = NULL;
	uint8_t *file = NULL;
	off_t len;
	int fd = -1, rc;

	if ((rc = ops->open(&vm, &cfg)) < 0)
		return rc;
	/* a guest that ran a few steps (some pages written, console output) */
	ops->resume(vm);
	for (int i = 0; i < 3 && !rc; i++)
		rc = hr_mem_guest_step(vm, 2);
	ops->pause(vm);
	if (rc < 0)
		goto out;
	if ((fd = memfd_create("fz-seed", MFD_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = hr_snapshot_write(ops, vm, &cfg, fd)) < 0)
		goto out;
	len = lseek(fd, 0, SEEK_CUR);
	if (!(file = malloc((size_t)len + 1))) {
		rc = -ENOMEM;
		goto out;
	}
	lseek(fd, 0, SEEK_SET);
	if ((rc = hr_read_all(fd, file + 1, (uint64_t)len)) < 0)
		goto out;
	file[0] = 0; /* as written */
	rc = fz_seed(dir, "snapshot", file, (size_t)len + 1);
	file[0] = 1; /* checksums fixed up by the target */
	rc = rc ?: fz_seed(dir, "snapshot-fixsums", file, (size_t)len + 1);
out:
	free(file);
	if (fd >= 0)
		close(fd);
	ops->close(vm);
	return rc;
}
