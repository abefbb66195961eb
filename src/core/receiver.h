/*
 * receiver.h - the backup's receiving side: frames in, live-phase pages
 * applied (after their own checksum), epoch frames staged, a verified
 * epoch committed whole and acknowledged (docs/design.md contract 1).
 */
#ifndef HR_CORE_RECEIVER_H
#define HR_CORE_RECEIVER_H

#include <stdint.h>

#include "core/disk-sync.h"
#include "core/epoch.h"
#include "core/guestmem.h"
#include "core/staging.h"
#include "core/stream.h"

struct hr_receiver {
	const char *vm;
	int fd;		      /* acks go here */
	struct hr_peer *peer; /* NULL, or the link whose send lock frames take */
	struct hr_guestmem *gm;
	struct hr_staging *st;
	int in_epoch;	 /* an EPOCH_BEGIN was staged, no END yet */
	int have_commit; /* at least one epoch committed */
	uint64_t epoch_t0_ns;
	uint64_t last_commit_ns;
	struct hr_epoch_stats last; /* of the last committed epoch */
	uint64_t nr_epochs;
	int end_code; /* HR_RX_END: the primary's code (0 = stopped on purpose) */
	int handoff;  /* the open epoch is a migration's final one (EpochBegin.handoff) */
	struct hr_disk_target *dt;   /* the backup's disks (NULL: none) */
	int disk_failed;	     /* < 0: a commit's disk apply failed (dt->why); the
				      * copy is invalid, the primary was told (ERROR) */
	struct hr_disk_sync_rx sync; /* the images' synchronisation (disk-sync.h): with
				      * disks, no epoch is taken before it is done */
};

enum {
	HR_RX_OK = 0,	     /* consumed */
	HR_RX_COMMITTED = 1, /* an epoch was committed and acked: see last */
	HR_RX_END = 2,	     /* the primary said goodbye (end_code) */
	HR_RX_HANDOFF = 3,   /* a migration's final epoch was committed and acked: run it */
};

/* gm: the replica's memory; st: its staging.  Both must outlive r. */
void hr_receiver_init(struct hr_receiver *r, const char *vm, int fd, struct hr_guestmem *gm,
		      struct hr_staging *st);

/* Send acks and errors under peer's send lock (its fd is r->fd). */
struct hr_peer;
void hr_receiver_use_peer(struct hr_receiver *r, struct hr_peer *peer);

/*
 * Take one frame (the caller releases it).  HR_RX_* (>= 0), or < 0 when
 * the stream must end: a bad live batch (-HR_EPROTO / -HR_ECHECKSUM; an
 * ERROR frame was sent to the primary), or a failed ack (-errno).  A torn
 * or a commit whose disk writes could not be applied (disk_failed: the
 * primary was sent an ERROR with copy_dropped; the copy must never run).
 * A torn or corrupt epoch is not an error here: staging drops it, the committed
 * epoch stays, and the next good one is accepted.
 */
int hr_receiver_frame(struct hr_receiver *r, const struct hr_frame *f);

/* The backup's disks: staging applies committed writes to them; a failed
 * apply ends the stream (hr_receiver_frame returns disk_failed). */
struct hr_disk_target;
void hr_receiver_use_disks(struct hr_receiver *r, struct hr_disk_target *dt);

/* A frame reader's placer (stream.h): an epoch's page batches are read
 * from the socket straight into staging (opaque: the receiver). */
int hr_receiver_place(void *opaque, const struct hr_frame *f, struct iovec **iov_r, int *nr_r);

/* The stream ended or broke: drop a half-received epoch. */
void hr_receiver_abandon(struct hr_receiver *r);

#endif
