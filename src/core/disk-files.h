/*
 * disk-files.h - a backup's own images of a primary's disks, in a
 * directory of this host (engine.h, cfg.backup_disk_dir): DIR/disk<i>.img,
 * created sparse with the sizes the primary's HELLO announced.  The paths
 * are made here from DIR and the disk's index only: never from anything
 * the peer names.
 */
#ifndef HR_CORE_DISK_FILES_H
#define HR_CORE_DISK_FILES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

struct hr_disk_files {
	char path[HR_MAX_DISKS][PATH_MAX];
	struct hr_disk_spec spec[HR_MAX_DISKS]; /* .path into path[] */
	unsigned nr;
};

/*
 * Fill df with DIR/disk0.img .. DIR/disk<nr-1>.img: DIR is created (mode
 * 0700, with its missing parents) and each image that does not exist is
 * created (O_EXCL, mode 0600) and truncated to bytes[i] (sparse).  An
 * existing image must be exactly bytes[i] long: else -HR_ESHAPE with why
 * naming the path and both sizes.  0 or -errno / -HR_E*, why filled; each
 * image used is logged naming vm.
 */
int hr_disk_files_prepare(struct hr_disk_files *df, const char *vm, const char *dir,
			  const uint64_t *bytes, unsigned nr, char *why, size_t why_size);

#endif
