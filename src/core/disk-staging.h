/*
 * disk-staging.h - the backup's disks: its own images of the VM's disks,
 * to which a committed epoch's writes are applied (staging.c calls
 * hr_disk_apply from hr_staging_commit, before the epoch's pages go into
 * the replica, and before it is acknowledged).
 *
 * Durability of an acknowledged epoch (engine config disk_durability):
 *  - HR_DISK_ACK (default): applied with pwrite, in the backup's page
 *    cache when the ACK leaves.  Survives the primary's host crashing (the
 *    backup's kernel writes it back), not both hosts losing power.
 *  - HR_DISK_FLUSH: an epoch holding a guest flush (HR_DW_FLUSH) is made
 *    stable (fdatasync of every image) before the ACK, so a flush
 *    the guest saw complete survives both hosts losing power too; costs a
 *    sync per such epoch.
 *
 * A failed apply (ENOSPC, EIO) leaves the image half-applied: the copy is
 * marked invalid for good (no later epoch is applied, the backup must
 * never run it) and why names the disk, offset and error.
 */
#ifndef HR_CORE_DISK_STAGING_H
#define HR_CORE_DISK_STAGING_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/disklog.h"
#include "disk/image.h"

enum hr_disk_durability { HR_DISK_ACK = 0, HR_DISK_FLUSH = 1 };

struct hr_disk_target {
	const char *vm;
	struct hr_image img[HR_MAX_DISKS];
	unsigned nr;
	enum hr_disk_durability durability;
	int invalid;	     /* an apply failed: the images are no copy of anything */
	char why[256];	     /* ... why */
	uint64_t fail_after; /* tests: the apply of write number fail_after (1-based,
			      * counted over the target's life) fails with -EIO; 0 never */
	uint64_t nr_applied; /* writes applied */
	uint64_t nr_flushes; /* fdatasyncs made for HR_DISK_FLUSH */
};

/* "ack" / "flush" (NULL: ack).  0 or -EINVAL. */
int hr_disk_durability_parse(const char *s, enum hr_disk_durability *d_r);

/* Open the backup's images (read-write).  0 or -errno with why set. */
int hr_disk_target_open(struct hr_disk_target *t, const char *vm, const struct hr_disk_spec *disks,
			unsigned nr, enum hr_disk_durability durability);
void hr_disk_target_close(struct hr_disk_target *t);

/* Is the write inside disk's image?  (The receiver's check, before staging.) */
int hr_disk_target_fits(const struct hr_disk_target *t, unsigned disk, uint64_t off,
			uint64_t bytes);

/* Apply b in order (then flush, see above).  0, or -errno: t->invalid is
 * set and t->why says why; every later call fails at once. */
int hr_disk_apply(struct hr_disk_target *t, const struct hr_disk_batch *b);

#endif
