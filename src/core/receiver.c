/* receiver.c - the backup's frame handling (receiver.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/peer.h"
#include "core/disk-staging.h"
#include "core/receiver.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

void hr_receiver_init(struct hr_receiver *r, const char *vm, int fd, struct hr_guestmem *gm,
		      struct hr_staging *st)
{
	memset(r, 0, sizeof(*r));
	r->vm = vm;
	r->fd = fd;
	r->gm = gm;
	r->st = st;
	r->sync.vm = vm;
	r->sync.fd = fd;
}

/*
 * A live-phase batch goes straight into the replica (nothing is committed
 * yet, so nothing can be torn): every gfn must be RAM of this layout and
 * the batch's own checksum must match before a byte is written.
 */
static int apply_live_batch(struct hr_receiver *r, const struct hr_frame *f)
{
	const Hr__PageBatch *pb = (const Hr__PageBatch *)f->msg;
	uint8_t *ptrs[HR_MAP_BATCH_PAGES];
	const uint8_t *src[HR_MAP_BATCH_PAGES];
	size_t n = pb->n_gfns;
	int rc;

	if (pb->n_runs || n != pb->count || n > HR_MAP_BATCH_PAGES || pb->epoch != 0 ||
	    (uint64_t)f->data_len != (uint64_t)n * HR_PAGE_SIZE)
		return -HR_EPROTO;
	if (!pb->has_xxh3)
		return -HR_EPROTO;
	for (size_t i = 0; i < n; i++)
		src[i] = f->data + i * HR_PAGE_SIZE;
	if (hr_batch_sum(0, pb->gfns, src, (unsigned)n) != pb->xxh3)
		return -HR_ECHECKSUM;
	if ((rc = hr_guestmem_map(r->gm, pb->gfns, (unsigned)n, 1, ptrs)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!ptrs[i]) {
			log_err(r->vm, "live batch: gfn 0x%" PRIx64 " is not RAM of this VM",
				pb->gfns[i]);
			hr_guestmem_unmap(r->gm);
			return -HR_EPROTO;
		}
	/* A contiguous batch (the usual case in the first round) lands in fresh
	 * replica memory: populate it with one call, not a fault per page. */
	if (n > 1 && ptrs[n - 1] == ptrs[0] + (n - 1) * HR_PAGE_SIZE &&
	    pb->gfns[n - 1] - pb->gfns[0] == n - 1)
		madvise(ptrs[0], n * HR_PAGE_SIZE, MADV_POPULATE_WRITE);
	for (size_t i = 0; i < n; i++)
		memcpy(ptrs[i], src[i], HR_PAGE_SIZE);
	hr_guestmem_unmap(r->gm);
	return 0;
}

void hr_receiver_use_disks(struct hr_receiver *r, struct hr_disk_target *dt)
{
	r->dt = dt;
	r->sync.dt = dt;
	hr_staging_set_disks(r->st, dt);
}

void hr_receiver_use_peer(struct hr_receiver *r, struct hr_peer *peer)
{
	r->peer = peer;
	r->sync.peer = peer;
}

/* Under the link's send lock when there is one (core/peer.h). */
static int send_frame(struct hr_receiver *r, uint16_t type, const ProtobufCMessage *msg)
{
	if (r->peer)
		return hr_peer_send(r->peer, type, HR_FRAME_MANDATORY, msg, NULL, 0);
	return hr_stream_send(r->fd, type, HR_FRAME_MANDATORY, msg, NULL, 0);
}

static void send_error(struct hr_receiver *r, int code, const char *text)
{
	Hr__Error er = HR__ERROR__INIT;
	er.code = code;
	er.text = (char *)text;
	send_frame(r, HR_FT_ERROR, &er.base);
}

static int commit(struct hr_receiver *r)
{
	uint64_t ep;
	int rc;

	r->in_epoch = 0;
	uint64_t c0 = hr_now_ns();
	if ((rc = hr_staging_commit(r->st, &ep, NULL, NULL)) < 0) {
		log_err(r->vm, "commit failed: %s", hr_strerror(rc));
		if (!r->dt || !r->dt->invalid)
			return HR_RX_OK;
		/* not acked, and this copy never runs: the primary goes on alone */
		Hr__Error er = HR__ERROR__INIT;
		er.code = rc;
		er.text = r->dt->why;
		er.has_copy_dropped = 1;
		er.copy_dropped = 1;
		send_frame(r, HR_FT_ERROR, &er.base);
		r->disk_failed = rc;
		return rc;
	}
	r->have_commit = 1;
	uint64_t now = hr_now_ns();
	log_debug(r->vm,
		  "epoch %" PRIu64 ": received in %" PRIu64 " us, committed in %" PRIu64 " us", ep,
		  (c0 - r->epoch_t0_ns) / 1000, (now - c0) / 1000);
	Hr__Ack ack = HR__ACK__INIT;
	ack.epoch = ep;
	ack.has_commit_ns = 1;
	ack.commit_ns = now - r->epoch_t0_ns;
	rc = send_frame(r, HR_FT_ACK, &ack.base);

	struct hr_staging_stats ss;
	hr_staging_get_stats(r->st, &ss);
	r->last = (struct hr_epoch_stats){
	    .epoch = ep,
	    .dirty_pages = ss.last_commit_pages,
	    .bytes = ss.last_commit_bytes,
	    .ack_us = ack.commit_ns / 1000,
	    .interval_us = r->last_commit_ns ? (now - r->last_commit_ns) / 1000 : 0};
	r->last_commit_ns = now;
	r->nr_epochs++;
	int handoff = r->handoff;
	r->handoff = 0;
	return rc < 0 ? rc : handoff ? HR_RX_HANDOFF : HR_RX_COMMITTED;
}

int hr_receiver_frame(struct hr_receiver *r, const struct hr_frame *f)
{
	int rc;

	switch (f->type) {
	case HR_FT_PAGE_BATCH:
		if (r->in_epoch || r->have_commit)
			break; /* an epoch's batch: staging */
		if ((rc = apply_live_batch(r, f)) < 0) {
			log_err(r->vm, "bad live-phase page batch: %s", hr_strerror(rc));
			send_error(r, rc, "bad live-phase page batch");
		}
		return rc;
	case HR_FT_ERROR: {
		const Hr__Error *er = (const Hr__Error *)f->msg;
		log_info(r->vm, "primary ends replication: %s", er->text ? er->text : "no reason");
		r->end_code = er->code;
		return er->code == 0 ? HR_RX_END : HR_RX_OK;
	}
	case HR_FT_HEARTBEAT:
		return HR_RX_OK;
	case HR_FT_DISK_SYNC:
	case HR_FT_DISK_BLOCKS:
		/* before the session's first epoch: written straight into the
		 * images, which cannot be promoted before that epoch commits */
		if (r->in_epoch || r->have_commit)
			rc = -HR_EPROTO, snprintf(r->sync.why, sizeof(r->sync.why),
						  "disk synchronisation after the first epoch");
		else
			rc = hr_disk_sync_rx_frame(&r->sync, f);
		if (rc < 0) {
			log_err(r->vm, "%s (%s)",
				r->sync.why[0] ? r->sync.why : "disk synchronisation",
				hr_strerror(rc));
			send_error(r, rc,
				   r->sync.why[0] ? r->sync.why : "disk synchronisation failed");
		}
		return rc < 0 ? rc : HR_RX_OK;
	case HR_FT_EPOCH_BEGIN: {
		if (r->dt && r->dt->nr && !r->have_commit && r->sync.state != HR_DSYNC_DONE) {
			/* a primary that does not synchronise (or did not finish):
			 * the images may differ, its epochs must not be applied */
			log_err(r->vm, "an epoch before the disks were synchronised");
			send_error(r, -HR_EPROTO, "an epoch before the disks were synchronised");
			return -HR_EPROTO;
		}
		const Hr__EpochBegin *eb = (const Hr__EpochBegin *)f->msg;
		r->handoff = eb->has_handoff && eb->handoff;
		r->in_epoch = 1;
		r->epoch_t0_ns = hr_now_ns();
		break;
	}
	default:
		break;
	}
	rc = hr_staging_frame(r->st, f);
	if (rc < 0) {
		/* torn or corrupt: staging discarded it, N-1 stays committed */
		r->in_epoch = 0;
		r->handoff = 0;
		log_err(r->vm, "epoch discarded: %s", hr_strerror(rc));
		return HR_RX_OK;
	}
	return rc == 1 ? commit(r) : HR_RX_OK;
}

int hr_receiver_place(void *opaque, const struct hr_frame *f, struct iovec **iov_r, int *nr_r)
{
	struct hr_receiver *r = opaque;

	if (f->type != HR_FT_PAGE_BATCH || !r->in_epoch)
		return 0; /* live batches are checked before they touch memory */
	return hr_staging_place(r->st, (const Hr__PageBatch *)f->msg, iov_r, nr_r);
}

void hr_receiver_abandon(struct hr_receiver *r)
{
	if (r->in_epoch)
		hr_staging_discard(r->st);
	r->in_epoch = 0;
}
