/*
 * disk-sync.h - bringing the backup's images to the primary's at the start
 * of every session (docs/stream-format.md section 3, "Disk
 * synchronisation"; docs/design.md section 7, "Synchronisation").
 *
 * The primary asks (DISK_SYNC BEGIN: block size, a hash seed); the backup
 * hashes every block of its images (XXH3-64 with that seed; a block in a
 * hole is the known zero-block hash, never read) and sends the hashes
 * (DISK_HASHES); the primary hashes its own, and sends only the blocks
 * whose hashes differ (DISK_BLOCKS: data, or a zero range where its block
 * reads as zero), then DISK_SYNC END with the totals.
 *
 * It runs while the guest runs, after the session's write log was turned
 * on (engine-primary.c): a guest write that races a block read is in the
 * log, and travels in the session's first epoch, which the backup applies
 * at its commit - after the sync blocks, which it writes straight into its
 * images on receipt.  Nothing is committed before that first epoch, so the
 * backup never promotes from a half-synchronised image (its failover
 * needs a committed epoch: receiver.h have_commit), and it refuses an
 * epoch of a session whose disks were not synchronised.
 */
#ifndef HR_CORE_DISK_SYNC_H
#define HR_CORE_DISK_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/disk-staging.h"
#include "core/peer.h"

/* the default block is the smallest (4 KiB) that keeps a VM's hashes at
 * most this many (16 Mi: 128 MiB; 4 KiB blocks up to 64 GiB of disks) */
#define HR_DISK_SYNC_MAX_HASHES	  (16ull << 20)
#define HR_DISK_SYNC_MIN_BLOCK	  (4u << 10)
#define HR_DISK_SYNC_MAX_BLOCK	  (4u << 20)
#define HR_DISK_SYNC_FRAME_HASHES 8192u	     /* hashes per DISK_HASHES frame */
#define HR_DISK_SYNC_FRAME_BYTES  (4u << 20) /* data per DISK_BLOCKS frame */
#define HR_DISK_SYNC_FRAME_BLOCKS 1024u	     /* entries per DISK_BLOCKS frame */

/* What one synchronisation did (the primary's side; the backup counts
 * blocks and bytes too). */
struct hr_disk_sync_stats {
	uint64_t nr_blocks;	/* blocks compared, every disk */
	uint64_t blocks_data;	/* ... sent with their data */
	uint64_t blocks_zeroed; /* ... sent as zero ranges (no data) */
	uint64_t blocks_resent; /* ... sent again: the guest wrote them (drained writes) */
	uint64_t nr_drains;	/* the write log drained into blocks to resend */
	uint64_t data_bytes;	/* data bytes sent */
	uint64_t wire_bytes;	/* bytes of every sync frame, both ways (headers too) */
	uint64_t hash_bytes;	/* ... of them, the backup's DISK_HASHES frames */
	uint64_t local_hash_ms; /* the primary hashing its images */
	uint64_t ms;		/* the whole synchronisation */
};

/*
 * The primary's hooks (all OPTIONAL):
 *  - ctl(opaque, c): a control byte arrived while waiting for the backup;
 *    < 0 ends the sync (-EINTR with *ctl_r = c is returned then).
 *  - drain(opaque, &b): the session's write log holds much (a long sync
 *    under a writing guest): return 1 with *b the writes cut from it (they
 *    completed: the image holds them), 0 when there is nothing to drain.
 *    Their blocks are sent again, read after the cut, in a later pass; the
 *    log keeps what came after, for the first epoch.  drain is called only
 *    where such a pass follows, so no drained write is lost.
 */
struct hr_disk_batch;
struct hr_disk_sync_hooks {
	int (*ctl)(void *opaque, int c);
	int (*drain)(void *opaque, const struct hr_disk_batch **b_r);
	void *opaque;
};
#define HR_DISK_SYNC_PASSES 4 /* passes over drained blocks; later writes stay logged */

/*
 * The primary's side, on a session's link after the handshake: the
 * images at disks[0..nr) (opened read-only here) against the backup's.
 * timeout_ms: the backup silent that long is lost.  hooks may be NULL.
 * 0 with *st filled, or -errno (the session is over), or -EINTR (ctl).
 */
int hr_disk_sync_primary(struct hr_peer *p, const char *vm, const struct hr_disk_spec *disks,
			 unsigned nr, uint32_t block_bytes, int timeout_ms,
			 const struct hr_disk_sync_hooks *hooks, int *ctl_r,
			 struct hr_disk_sync_stats *st);

/* The backup's side (receiver.c feeds it every sync frame). */
enum { HR_DSYNC_NONE = 0, HR_DSYNC_RUNNING = 1, HR_DSYNC_DONE = 2 };
struct hr_disk_sync_rx {
	const char *vm;
	struct hr_disk_target *dt;
	struct hr_peer *peer; /* frames go out under its send lock (NULL: fd) */
	int fd;
	int state;
	uint32_t block_bytes;
	uint64_t seed;
	uint64_t nr_blocks, data_bytes; /* received */
	char why[256];			/* why a frame was refused */
};

/*
 * One sync frame (DISK_SYNC, DISK_BLOCKS): BEGIN hashes the images and
 * answers with DISK_HASHES; blocks are written into the images at once;
 * END checks the totals (and flushes the images under HR_DISK_FLUSH).
 * 0, -HR_EPROTO (out of order, outside an image, counts or checksum
 * wrong; why says which) or -errno (I/O: the images are marked invalid).
 */
int hr_disk_sync_rx_frame(struct hr_disk_sync_rx *s, const struct hr_frame *f);

/* XXH3-64 (seeded) of one block, and the sum of a DISK_BLOCKS frame. */
uint64_t hr_disk_block_hash(const void *buf, size_t len, uint64_t seed);

#endif
