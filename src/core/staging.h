/*
 * staging.h - the backup's receive side of one epoch (backend-agnostic).
 *
 * Frames of epoch N (EPOCH_BEGIN, PAGE_BATCH..., STATE, EPOCH_END) are
 * copied into a staging area; nothing touches the replica until EPOCH_END
 * has verified sequence (N == last committed + 1), page count, byte count
 * and the XXH3-64 checksum.  Then hr_staging_commit() copies the staged
 * pages into the replica's mapped memory and hands back the state blob.
 *
 * Any failure (torn, truncated, corrupt, out-of-order epoch, gfn outside
 * the layout) discards the staged epoch, leaves the replica memory and the
 * committed state untouched, and returns an error; the next correct epoch
 * (still numbered last committed + 1) is accepted.
 *
 * Memory: one staging slot per distinct gfn of the epoch (a page written
 * twice in an epoch keeps the later copy), in 2 MiB chunks kept across
 * epochs, plus a 4-byte index per guest page.  Epoch 0 (full sync) needs
 * staging space for all of guest RAM.  An epoch's disk writes (DISK_WRITES,
 * protocol 3) are staged whole in memory too (bounded by the primary's
 * write log, core/disklog.h) and applied to the backup's images, in order,
 * by hr_staging_commit (core/disk-staging.h); a discarded epoch applies
 * none.
 *
 * Not thread-safe: one receiving thread per vm.
 */
#ifndef HR_CORE_STAGING_H
#define HR_CORE_STAGING_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/stream.h"

struct hr_staging;

/*
 * regions: the replica's layout (from the backend's mem_layout, must stay
 * valid); it is copied.  next_epoch: the first epoch expected (0 for a
 * fresh replica: the full sync).
 */
int hr_staging_new(struct hr_staging **st_r, const char *vm, const struct hr_mem_region *regions,
		   unsigned nr_regions, uint64_t next_epoch);
void hr_staging_free(struct hr_staging *st);

/*
 * Feed one received frame (EPOCH_BEGIN, PAGE_BATCH, STATE, EPOCH_END).
 * Returns 0 when accepted, 1 when EPOCH_END verified the epoch (call
 * hr_staging_commit), or < 0: the open epoch is discarded (-HR_EPROTO,
 * -HR_ECHECKSUM, -ENOMEM).  Other frame types: -EINVAL, nothing changes.
 */
int hr_staging_frame(struct hr_staging *st, const struct hr_frame *f);

/* The same, one message at a time (data = the frame's raw bytes). */
int hr_staging_begin(struct hr_staging *st, const Hr__EpochBegin *m);
int hr_staging_pages(struct hr_staging *st, const Hr__PageBatch *m, const uint8_t *data,
		     size_t data_len);
int hr_staging_state(struct hr_staging *st, const Hr__State *m, const uint8_t *data,
		     size_t data_len);
int hr_staging_end(struct hr_staging *st, const Hr__EpochEnd *m);
/* DISK_WRITES (protocol 3): every write inside its image (the target set
 * with hr_staging_set_disks; none set: -HR_EPROTO), data_len the sum of
 * the data writes' bytes. */
int hr_staging_disk(struct hr_staging *st, const Hr__DiskWrites *m, const uint8_t *data,
		    size_t data_len);

/*
 * The backup's disks (core/disk-staging.h; must outlive st): a verified
 * epoch's disk writes are applied to them by hr_staging_commit, in order,
 * before its pages.  A failed apply makes hr_staging_commit fail (the
 * epoch is not committed, dt->invalid says the images are no copy).
 */
struct hr_disk_target;
void hr_staging_set_disks(struct hr_staging *st, struct hr_disk_target *dt);

/*
 * Apply the verified epoch: copy its pages into the replica (the replica
 * must be paused) and make it the committed epoch.  *epoch_r = its number;
 * *state_r / *state_len_r = its state blob (NULL / 0 if the epoch carried
 * none: the previously committed blob stays current), valid until the
 * next commit.  Any out-parameter may be NULL.  -EINVAL if no verified epoch;
 * -errno when its disk writes could not be applied (the staged epoch is
 * dropped, nothing of it is committed, the disks are invalid).
 */
int hr_staging_commit(struct hr_staging *st, uint64_t *epoch_r, const void **state_r,
		      size_t *state_len_r);

/*
 * Direct placement (a frame reader's placer, stream.h): for a PAGE_BATCH
 * of the open epoch whose gfns are RAM of the layout and strictly
 * ascending, the staging slot of each page, so that its bytes are read
 * from the socket straight into staging.  1 with *iov_r / *nr_r (valid
 * until the next call), or 0: let the frame be buffered (the usual path
 * then accepts or refuses it).  The frame, when it comes back with
 * placed = 1, goes to hr_staging_frame like any other; a placed epoch
 * that turns out torn or corrupt is discarded the same way.
 */
int hr_staging_place(struct hr_staging *st, const Hr__PageBatch *m, struct iovec **iov_r,
		     int *nr_r);

/* Drop the open epoch (peer gone mid-epoch).  No-op if none is open. */
void hr_staging_discard(struct hr_staging *st);

/* Epoch the next EPOCH_BEGIN must carry (last committed + 1). */
uint64_t hr_staging_next_epoch(const struct hr_staging *st);

/* Latest committed state blob (NULL / 0 if none yet); valid until the next commit. */
void hr_staging_committed_state(const struct hr_staging *st, const void **state_r,
				size_t *state_len_r);

/* Counters: epochs committed and discarded. */
struct hr_staging_stats {
	uint64_t nr_committed;
	uint64_t nr_discarded;
	uint64_t last_commit_pages;
	uint64_t last_commit_bytes;
	uint64_t last_commit_disk_writes; /* disk writes of the last committed epoch */
	uint64_t last_commit_disk_bytes;  /* ... their data bytes */
};
void hr_staging_get_stats(const struct hr_staging *st, struct hr_staging_stats *s);

#endif
