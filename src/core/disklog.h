/*
 * disklog.h - the primary's log of the running epoch's disk writes.
 *
 * A backend with HR_BF_DISKS reports every completed guest write to
 * cfg->disk_write (backend.h, "Disks") before the guest can see it done,
 * from whichever of its threads completes it.  The engine's callback
 * appends it here (a copy of the data); at the checkpoint, with the guest
 * paused (pause drains the disks, so every write the guest can have seen
 * is reported), the epoch's log is cut: the writes travel inside that
 * epoch (DISK_WRITES frames) and the backup applies them when it commits
 * it, so its disks and its memory are always the same moment of the guest.
 *
 * Memory is bounded: past soft_bytes the log asks for an early checkpoint
 * (soft_cb, as a full output buffer does), past hard_bytes an append fails
 * with -ENOBUFS and the guest's request fails with an I/O error.
 *
 * Thread-safe: appends from any thread, cut from the engine thread.
 */
#ifndef HR_CORE_DISKLOG_H
#define HR_CORE_DISKLOG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define HR_DISKLOG_SOFT_BYTES (16u << 20) /* default: ask for a checkpoint */
#define HR_DISKLOG_HARD_BYTES (64u << 20) /* default: refuse writes */
#define HR_DISKLOG_REC_BYTES  32u	  /* what a write costs beyond its data */

/* One logged write: data_off indexes the batch's data (bytes of it) when
 * flags has neither HR_DW_ZEROES nor HR_DW_FLUSH. */
struct hr_disk_rec {
	uint32_t disk;
	uint32_t flags;
	uint64_t off;
	uint64_t bytes;
	uint64_t data_off;
};

/* The writes of one epoch, in completion order (buffers reused). */
struct hr_disk_batch {
	struct hr_disk_rec *recs;
	size_t nr, cap;
	uint8_t *data;
	size_t data_len, data_cap;
};

static inline const uint8_t *hr_disk_rec_data(const struct hr_disk_batch *b,
					      const struct hr_disk_rec *r)
{
	return r->flags ? NULL : b->data + r->data_off;
}

/* Append one write to b (copying buf).  0 or -ENOMEM. */
int hr_disk_batch_add(struct hr_disk_batch *b, unsigned disk, uint64_t off, const void *buf,
		      uint64_t len, unsigned flags);
void hr_disk_batch_reset(struct hr_disk_batch *b);
void hr_disk_batch_fini(struct hr_disk_batch *b);

struct hr_disklog {
	pthread_mutex_t lock;
	const char *vm;
	unsigned nr_disks;
	struct hr_disk_batch cur;
	uint64_t soft_bytes, hard_bytes;
	uint64_t next_soft; /* cost at which soft_cb is called next */
	void (*soft_cb)(void *opaque);
	void *soft_opaque;
	int discard;	       /* no backup: writes are counted, not kept */
	uint64_t nr_discarded; /* writes counted so */
	uint64_t nr_refused;   /* appends refused at hard_bytes */
};

/* soft/hard 0: the defaults.  0 or -EINVAL (soft above hard). */
int hr_disklog_init(struct hr_disklog *l, const char *vm, unsigned nr_disks, uint64_t soft_bytes,
		    uint64_t hard_bytes, void (*soft_cb)(void *), void *soft_opaque);
void hr_disklog_fini(struct hr_disklog *l);

/* One completed guest write (an hr_disk_write_fn with opaque = the log):
 * 0, -EINVAL (no such disk, flags unknown), -ENOBUFS (past hard_bytes) or
 * -ENOMEM. */
int hr_disklog_write(void *opaque, unsigned disk, uint64_t off, const void *buf, size_t len,
		     unsigned flags);

/* The log so far becomes *out (whose previous content is dropped); the
 * log starts empty.  Call with the guest paused. */
void hr_disklog_cut(struct hr_disklog *l, struct hr_disk_batch *out);

/* Without a backup nothing is kept (on 1), until a session starts again
 * (on 0).  Returns the writes discarded since the last call with on 1. */
uint64_t hr_disklog_set_discard(struct hr_disklog *l, int on);

/* Bytes the log holds (data + per-write cost). */
uint64_t hr_disklog_bytes(struct hr_disklog *l);

#endif
