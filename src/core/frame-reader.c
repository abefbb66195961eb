/*
 * frame-reader.c - the incremental frame reader (stream.h): bytes in from a
 * non-blocking fd or by hand, whole frames out; a placer may have a
 * frame's data read straight to where it belongs (the backup's staging).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>
#include "config.h"
#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"
#include "common/util.h"
#include "core/stream-internal.h"

#define READ_CHUNK_BYTES (64u << 10)

void hr_frame_reader_init(struct hr_frame_reader *r, const char *vm)
{
	memset(r, 0, sizeof(*r));
	r->vm = vm;
}

void hr_frame_reader_fini(struct hr_frame_reader *r)
{
	hr_frame_release(&r->placing);
	free(r->buf);
	r->buf = NULL;
	r->cap = r->len = r->off = 0;
}

size_t hr_frame_reader_pending(const struct hr_frame_reader *r)
{
	return r->len - r->off + (size_t)r->skip_bytes + (r->premain ? 1 : 0);
}

void hr_frame_reader_set_placer(struct hr_frame_reader *r, hr_frame_place_fn fn, void *opaque)
{
	r->place = fn;
	r->place_opaque = opaque;
}

/* Copy up to len bytes into the placing iovecs; returns bytes taken. */
static size_t place_bytes(struct hr_frame_reader *r, const uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len && r->pnr > 0) {
		size_t n = r->piov->iov_len < len - done ? r->piov->iov_len : len - done;
		memcpy(r->piov->iov_base, p + done, n);
		r->piov->iov_base = (uint8_t *)r->piov->iov_base + n;
		r->piov->iov_len -= n;
		done += n;
		if (!r->piov->iov_len) {
			r->piov++;
			r->pnr--;
		}
	}
	r->premain -= done;
	return done;
}

/* Advance the placing iovecs past n bytes that readv wrote. */
static void place_advance(struct hr_frame_reader *r, size_t n)
{
	r->premain -= n;
	while (n && r->pnr > 0) {
		size_t k = r->piov->iov_len < n ? r->piov->iov_len : n;
		r->piov->iov_base = (uint8_t *)r->piov->iov_base + k;
		r->piov->iov_len -= k;
		n -= k;
		if (!r->piov->iov_len) {
			r->piov++;
			r->pnr--;
		}
	}
}

/* Make room for `want` more bytes after the buffered ones. */
static int reader_reserve(struct hr_frame_reader *r, size_t want)
{
	size_t avail = r->len - r->off;
	uint8_t *nb;
	size_t ncap;

	if (r->cap - r->len >= want)
		return 0;
	if (r->off) {
		memmove(r->buf, r->buf + r->off, avail);
		r->len = avail;
		r->off = 0;
		if (r->cap - r->len >= want)
			return 0;
	}
	ncap = r->cap ? r->cap : 4096;
	while (ncap - r->len < want)
		ncap *= 2;
	nb = realloc(r->buf, ncap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	r->cap = ncap;
	return 0;
}

int hr_frame_reader_feed(struct hr_frame_reader *r, const void *buf, size_t len)
{
	int rc;

	if (r->err)
		return r->err;
	if (r->premain) {
		size_t n = place_bytes(r, buf, len);
		buf = (const uint8_t *)buf + n;
		len -= n;
	}
	if (r->off == r->len)
		r->off = r->len = 0;
	rc = reader_reserve(r, len);
	if (rc)
		return rc;
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	return 0;
}

ssize_t hr_frame_reader_fill(struct hr_frame_reader *r, int fd)
{
	size_t avail, want = READ_CHUNK_BYTES;
	struct frame_hdr h;
	ssize_t n;
	int rc;

	if (r->err)
		return r->err;
	if (r->premain) {
		/* the rest of a placed frame's data: straight to its destination */
		do
			n = readv(fd, r->piov, r->pnr > IOV_MAX ? IOV_MAX : r->pnr);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		place_advance(r, (size_t)n);
		return n;
	}
	if (r->off == r->len)
		r->off = r->len = 0;
	avail = r->len - r->off;
	/* Size the read for the frame in progress once its header is known. */
	if (!r->skip_bytes && avail >= HR_FRAME_HDR_BYTES &&
	    !hr_frame_hdr_get(r->buf + r->off, &h, NULL) && hr_frame_descriptor(h.type)) {
		size_t total = HR_FRAME_HDR_BYTES + (size_t)h.hdr_len + h.data_len;
		if (total > avail && total - avail > want)
			want = total - avail;
	}
	rc = reader_reserve(r, want);
	if (rc)
		return rc;
	do
		n = read(fd, r->buf + r->len, r->cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	r->len += n;
	return n;
}

/*
 * The header and message of the frame at r->off are buffered, its data not
 * all: ask the placer.  On yes, buffered data goes to the destination now
 * and fill() reads the rest there.  Returns 0 (more bytes needed) or < 0.
 */
static int start_placing(struct hr_frame_reader *r, const struct frame_hdr *h)
{
	struct hr_frame pf = {0};
	hr_frame_fill(&pf, h, NULL);
	int rc = hr_frame_hdr_unpack(h, r->buf + r->off + HR_FRAME_HDR_BYTES, &pf.msg, r->vm);

	if (rc) {
		r->err = rc;
		return rc;
	}
	if (r->place(r->place_opaque, &pf, &r->piov, &r->pnr) != 1) {
		hr_frame_release(&pf);
		r->declined = 1; /* buffer this one as usual */
		r->declined_off = r->off;
		return 0;
	}
	r->off += HR_FRAME_HDR_BYTES + h->hdr_len;
	r->premain = h->data_len;
	r->off += place_bytes(r, r->buf + r->off, r->len - r->off);
	pf.placed = 1;
	r->placing = pf;
	r->declined = 0;
	return 0;
}

int hr_frame_reader_next(struct hr_frame_reader *r, struct hr_frame *f)
{
	struct frame_hdr h;
	size_t avail, total;
	int rc;

	memset(f, 0, sizeof(*f));
	if (r->err)
		return r->err;
	if (r->premain)
		return 0;
	if (r->placing.msg) {
		/* a placed frame is complete */
		*f = r->placing;
		memset(&r->placing, 0, sizeof(r->placing));
		r->nr_frames++;
		return 1;
	}
	for (;;) {
		avail = r->len - r->off;
		if (r->skip_bytes) {
			size_t n = avail < r->skip_bytes ? avail : (size_t)r->skip_bytes;
			r->off += n;
			r->skip_bytes -= n;
			if (r->skip_bytes)
				return 0;
			continue;
		}
		if (avail < HR_FRAME_HDR_BYTES)
			return 0;
		rc = hr_frame_hdr_get(r->buf + r->off, &h, r->vm);
		if (rc)
			goto fail;
		if (!hr_frame_descriptor(h.type)) {
			log_debug(r->vm,
				  "stream: skipping unknown optional frame type %u (%u+%u bytes)",
				  h.type, h.hdr_len, h.data_len);
			r->off += HR_FRAME_HDR_BYTES;
			r->skip_bytes = (uint64_t)h.hdr_len + h.data_len;
			r->nr_skipped++;
			continue;
		}
		total = HR_FRAME_HDR_BYTES + (size_t)h.hdr_len + h.data_len;
		if (avail < total) {
			if (r->place && avail >= HR_FRAME_HDR_BYTES + h.hdr_len &&
			    !(r->declined && r->declined_off == r->off))
				return start_placing(r, &h);
			return 0;
		}
		rc = hr_frame_hdr_unpack(&h, r->buf + r->off + HR_FRAME_HDR_BYTES, &f->msg, r->vm);
		if (rc)
			goto fail;
		hr_frame_fill(f, &h, r->buf + r->off + HR_FRAME_HDR_BYTES + h.hdr_len);
		r->off += total;
		r->declined = 0;
		r->nr_frames++;
		return 1;
	}
fail:
	r->err = rc;
	return rc;
}
