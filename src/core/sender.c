/* sender.c - live batches, whole epochs and ack tracking (sender.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/envelope.h"
#include "core/peer.h"
#include "core/sender.h"

void hr_sender_init(struct hr_sender *s, const char *vm, int fd)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	s->fd = fd;
}

void hr_sender_use_peer(struct hr_sender *s, struct hr_peer *peer)
{
	s->peer = peer;
}

/* Frames go out whole under the link's send lock (core/peer.h). */
static int send_frame(struct hr_sender *s, uint16_t type, const ProtobufCMessage *msg,
		      const struct iovec *iov, int nr_iov)
{
	if (s->peer)
		hr_peer_tx_lock(s->peer);
	int rc = hr_stream_send(s->fd, type, HR_FRAME_MANDATORY, msg, iov, nr_iov);
	if (s->peer)
		hr_peer_tx_unlock(s->peer);
	return rc;
}

static int send_pages(struct hr_sender *s, uint64_t epoch, const uint64_t *gfns,
		      const uint8_t *const *pages, unsigned nr, unsigned flags)
{
	if (s->peer) {
		hr_peer_tx_lock(s->peer);
		hr_peer_progress(s->peer); /* a long epoch of many batches is progress */
	}
	int rc = hr_stream_send_pages(s->fd, epoch, gfns, pages, nr, flags);
	if (s->peer)
		hr_peer_tx_unlock(s->peer);
	return rc;
}

void hr_sender_fini(struct hr_sender *s)
{
	free(s->bounce);
	s->bounce = NULL;
}

int hr_sender_send_live(struct hr_sender *s, struct hr_guestmem *gm, const uint64_t *gfns,
			uint64_t nr)
{
	uint8_t *ptrs[HR_SENDER_BATCH_PAGES];
	const uint8_t *ram[HR_SENDER_BATCH_PAGES];
	uint64_t g[HR_SENDER_BATCH_PAGES];
	int rc;

	if (!s->bounce && !(s->bounce = malloc((size_t)HR_SENDER_BATCH_PAGES * HR_PAGE_SIZE)))
		return -ENOMEM;
	for (uint64_t i = 0; i < nr; i += HR_SENDER_BATCH_PAGES) {
		unsigned n =
		    nr - i < HR_SENDER_BATCH_PAGES ? (unsigned)(nr - i) : HR_SENDER_BATCH_PAGES;
		unsigned k = 0;
		if ((rc = hr_guestmem_map(gm, gfns + i, n, 0, ptrs)) < 0)
			return rc;
		for (unsigned j = 0; j < n; j++) {
			if (!ptrs[j])
				continue; /* not RAM */
			uint8_t *copy = s->bounce + (size_t)k * HR_PAGE_SIZE;
			memcpy(copy, ptrs[j], HR_PAGE_SIZE);
			g[k] = gfns[i + j];
			ram[k++] = copy;
		}
		hr_guestmem_unmap(gm);
		rc = k ? send_pages(s, 0, g, ram, k, HR_PAGES_SUMMED) : 0;
		if (rc < 0)
			return rc;
		s->live_bytes += (uint64_t)k * HR_PAGE_SIZE;
	}
	return 0;
}

/*
 * The epoch's disk writes, in completion order, as DISK_WRITES frames of at
 * most HR_SENDER_DISK_FRAME_WRITES writes and HR_SENDER_DISK_FRAME_BYTES
 * of data (a larger write is split: the same bytes at the same offsets).
 * Each write as sent goes into the epoch's checksum.
 */
static int send_disk(struct hr_sender *s, struct hr_epoch *ep, uint64_t *nr_r, uint64_t *bytes_r)
{
	const struct hr_disk_batch *b = ep->disk;
	Hr__DiskWrite w[HR_SENDER_DISK_FRAME_WRITES], *wp[HR_SENDER_DISK_FRAME_WRITES];
	struct iovec iov[HR_SENDER_DISK_FRAME_WRITES];
	size_t i = 0;
	uint64_t done = 0; /* bytes of recs[i] already sent */
	int rc = 0;

	*nr_r = *bytes_r = 0;
	while (b && i < b->nr && !rc) {
		unsigned n = 0, nio = 0;
		uint64_t data = 0;
		while (i < b->nr && n < HR_SENDER_DISK_FRAME_WRITES) {
			const struct hr_disk_rec *r = &b->recs[i];
			uint64_t len = r->bytes - done;
			const uint8_t *d = hr_disk_rec_data(b, r);
			if (d && data + len > HR_SENDER_DISK_FRAME_BYTES) {
				if (data)
					break; /* the next frame */
				len = HR_SENDER_DISK_FRAME_BYTES;
			}
			hr__disk_write__init(&w[n]);
			w[n].disk = r->disk;
			w[n].offset = r->off + done;
			w[n].bytes = d ? len : r->bytes;
			w[n].has_flags = r->flags != 0;
			w[n].flags = r->flags;
			wp[n] = &w[n];
			hr_epoch_sum_disk(&ep->sum, r->disk, w[n].offset, w[n].bytes, r->flags,
					  d ? d + done : NULL);
			if (d) {
				iov[nio++] = (struct iovec){(void *)(d + done), len};
				data += len;
			}
			n++;
			if (d && done + len < r->bytes) {
				done += len;
			} else {
				done = 0;
				i++;
			}
		}
		Hr__DiskWrites dw = HR__DISK_WRITES__INIT;
		dw.epoch = ep->epoch;
		dw.n_writes = n;
		dw.writes = wp;
		rc = send_frame(s, HR_FT_DISK_WRITES, &dw.base, iov, (int)nio);
		*nr_r += n;
		*bytes_r += data;
	}
	return rc;
}

int hr_sender_send_epoch(struct hr_sender *s, struct hr_epoch *ep)
{
	uint64_t nr_dw = 0, dw_bytes = 0;
	struct hr_envelope_out env;
	const uint8_t *ptrs[HR_SENDER_BATCH_PAGES];
	int rc;

	if (s->nr_inflight == HR_SENDER_MAX_INFLIGHT)
		return -EBUSY;
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = ep->epoch;
	eb.nr_pages = ep->nr_pages;
	eb.has_full = s->nr_epochs == 0;
	eb.full = s->nr_epochs == 0;
	eb.has_handoff = ep->handoff != 0;
	eb.handoff = ep->handoff != 0;
	rc = send_frame(s, HR_FT_EPOCH_BEGIN, &eb.base, NULL, 0);
	for (uint64_t i = 0; !rc && i < ep->nr_pages; i += HR_SENDER_BATCH_PAGES) {
		unsigned n = ep->nr_pages - i < HR_SENDER_BATCH_PAGES ? (unsigned)(ep->nr_pages - i)
								      : HR_SENDER_BATCH_PAGES;
		for (unsigned j = 0; j < n; j++) {
			ptrs[j] = hr_capture_page(ep->pages, i + j);
			/* the guest runs again; the batch is hashed just before it is sent */
			hr_epoch_sum_page(&ep->sum, ep->gfns[i + j], ptrs[j]);
		}
		rc = send_pages(s, ep->epoch, ep->gfns + i, ptrs, n, 0);
	}
	if (!rc)
		rc = send_disk(s, ep, &nr_dw, &dw_bytes);
	if (rc)
		goto out;
	/* the state frame: the envelope points at the held output and the blob */
	if ((rc = hr_envelope_build(&env, &ep->out, ep->blob, ep->blob_bytes)) < 0)
		goto out;
	hr_epoch_sum_state_iov(&ep->sum, env.iov, env.nr_iov, env.bytes);
	Hr__State sm = HR__STATE__INIT;
	sm.epoch = ep->epoch;
	sm.blob_bytes = env.bytes;
	rc = send_frame(s, HR_FT_STATE, &sm.base, env.iov, env.nr_iov);
	ep->st.bytes = ep->nr_pages * HR_PAGE_SIZE + env.bytes + dw_bytes;
	hr_envelope_out_free(&env);
	if (rc)
		goto out;
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	ee.epoch = ep->epoch;
	ee.nr_pages = ep->nr_pages;
	ee.bytes = ep->st.bytes;
	ee.xxh3 = hr_epoch_sum_value(&ep->sum);
	ee.has_nr_disk_writes = ee.has_disk_bytes = nr_dw != 0;
	ee.nr_disk_writes = nr_dw;
	ee.disk_bytes = dw_bytes;
	rc = send_frame(s, HR_FT_EPOCH_END, &ee.base, NULL, 0);
	if (!rc) {
		s->inflight[s->nr_inflight].epoch = ep->epoch;
		s->inflight[s->nr_inflight++].sent_ns = hr_now_ns();
		s->nr_epochs++;
		s->disk_writes += nr_dw;
		s->disk_bytes += dw_bytes;
	}
out:
	if (rc)
		log_warnx(s->vm, "sending epoch %" PRIu64 " failed: %s", ep->epoch,
			  hr_strerror(rc));
	return rc;
}

int hr_sender_ack(struct hr_sender *s, uint64_t epoch, uint64_t *sent_ns_r)
{
	if (!s->nr_inflight || s->inflight[0].epoch != epoch) {
		log_err(s->vm, "ack for epoch %" PRIu64 ", expected %s%" PRIu64, epoch,
			s->nr_inflight ? "" : "none after ", s->inflight[0].epoch);
		return -HR_EPROTO;
	}
	if (sent_ns_r)
		*sent_ns_r = s->inflight[0].sent_ns;
	memmove(&s->inflight[0], &s->inflight[1], (--s->nr_inflight) * sizeof(s->inflight[0]));
	return 0;
}
