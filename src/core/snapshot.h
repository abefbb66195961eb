/*
 * snapshot.h - write and read whole-VM snapshot files (guest memory + the
 * backend's state blob), backend-agnostic.  The format is specified in
 * docs/snapshot-format.md.
 *
 * Files are written and read sequentially from the fd's current position
 * (a pipe works too), little-endian, versioned, every record checksummed
 * with XXH3-64.
 */
#ifndef HR_SNAPSHOT_H
#define HR_SNAPSHOT_H

#include <stdint.h>

#include "backends/backend.h"

#define HR_SNAP_VERSION	    1u
#define HR_SNAP_MAX_REGIONS 64u

struct hr_snapshot_info {
	char backend[16]; /* NUL-terminated */
	uint64_t mem_bytes;
	uint32_t nr_vcpus;
	uint32_t version;
	char vm_name[64]; /* NUL-terminated */
};

/*
 * Write a snapshot of a PAUSED vm (memory + state blob) to fd.  cfg is the
 * configuration the vm was opened with: it names the VM and gives the shape
 * recorded in the header (the backend interface does not expose nr_vcpus).
 * All-zero pages and pages never touched (not resident, not swapped) are
 * skipped.  0 or -errno / -HR_E*; on error the file content is undefined.
 */
int hr_snapshot_write(const struct hr_backend_ops *ops, struct hr_vm *vm,
		      const struct hr_vm_config *cfg, int fd);

/*
 * Read and verify the file header only (magic, version, checksum), to learn
 * backend and shape before building the vm.  Leaves fd after the header.
 * 0, -HR_EBADSNAP (not a snapshot / truncated), -HR_EVERSION,
 * -HR_ECHECKSUM, or -errno.
 */
int hr_snapshot_read_info(int fd, struct hr_snapshot_info *info_r);

/*
 * Restore a snapshot (fd at the start of the file) into a freshly opened,
 * paused replica (kernel_path NULL) of the same backend and shape, whose
 * memory is still all zero.  Every record is verified; memory pages are
 * streamed into the vm's mapping as their record is read, and the state
 * blob is loaded only after the whole file (up to and including the end
 * record) has verified.  The vm is never resumed here.
 *
 * On error the vm's memory is GARBAGE (partially restored): the caller must
 * close it, never resume it.  Errors: -HR_EBADSNAP (bad magic, malformed or
 * truncated), -HR_EVERSION, -HR_ECHECKSUM, -HR_ESHAPE (backend or memory
 * layout differs from the vm), -HR_EBADSTATE (from load_state), -errno.
 */
int hr_snapshot_read(const struct hr_backend_ops *ops, struct hr_vm *vm, int fd);

#endif
