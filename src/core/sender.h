/*
 * sender.h - the primary's sending side: live-phase page batches (each with
 * its own checksum) and whole epochs as frames (EPOCH_BEGIN, PAGE_BATCH...,
 * STATE, EPOCH_END; docs/stream-format.md), plus tracking of which epochs
 * are in flight so that acks are checked against them.  The tracking
 * allows pipelining (several epochs sent before the first ack; acks must
 * come in order), but the engine keeps one epoch in flight: it waits for
 * each ack before it takes the next epoch (core/engine-primary.c).
 */
#ifndef HR_CORE_SENDER_H
#define HR_CORE_SENDER_H

#include <stdint.h>

#include "core/epoch.h"
#include "core/guestmem.h"

#define HR_SENDER_MAX_INFLIGHT 8
#define HR_SENDER_BATCH_PAGES  256u /* pages per PAGE_BATCH frame (1 MiB) */

struct hr_peer;

struct hr_sender {
	const char *vm;
	int fd;
	struct hr_peer *peer; /* NULL, or the link whose send lock frames take */
	struct {
		uint64_t epoch;
		uint64_t sent_ns; /* when its last frame left */
	} inflight[HR_SENDER_MAX_INFLIGHT];
	unsigned nr_inflight;
	uint64_t live_bytes;  /* sent in the live phase */
	uint64_t nr_epochs;   /* whole epochs sent; the first completes the sync */
	uint8_t *bounce;      /* live phase: a stable copy of one batch (checksummed) */
	uint64_t disk_writes; /* disk writes sent in epochs */
	uint64_t disk_bytes;  /* ... their data bytes */
};
#define HR_SENDER_DISK_FRAME_BYTES  (4u << 20) /* disk data per DISK_WRITES frame */
#define HR_SENDER_DISK_FRAME_WRITES 1024u      /* writes per DISK_WRITES frame */

void hr_sender_init(struct hr_sender *s, const char *vm, int fd);
void hr_sender_fini(struct hr_sender *s);
/* Send every frame under peer's send lock (its fd is s->fd). */
void hr_sender_use_peer(struct hr_sender *s, struct hr_peer *peer);

/* Pages of guest memory while the guest runs (the live phase).  Each batch
 * is copied first, so that its checksum and its bytes agree although the
 * guest keeps writing.  live_bytes grows by what was sent.  0 or -errno. */
int hr_sender_send_live(struct hr_sender *s, struct hr_guestmem *gm, const uint64_t *gfns,
			uint64_t nr);

/* Send a whole epoch; ep->st.bytes is set.  -EBUSY when too many are in
 * flight; else 0 or -errno (the connection is then unusable). */
int hr_sender_send_epoch(struct hr_sender *s, struct hr_epoch *ep);

/* An ack arrived: it must be for the oldest epoch in flight (-HR_EPROTO
 * otherwise).  *sent_ns_r: when that epoch was sent. */
int hr_sender_ack(struct hr_sender *s, uint64_t epoch, uint64_t *sent_ns_r);

/* Oldest epoch in flight; 0 when none (check nr_inflight). */
static inline uint64_t hr_sender_oldest(const struct hr_sender *s)
{
	return s->nr_inflight ? s->inflight[0].epoch : 0;
}

#endif
