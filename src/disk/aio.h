/*
 * aio.h - asynchronous I/O on one disk image (image.h) for a device
 * (KVM's virtio-blk): reads and writes of iovecs, flushes, and zeroing
 * (write-zeroes and discard) at byte offsets, each completed by a callback.
 *
 * Engines: io_uring (liburing) by default; a small pthread pool when
 * io_uring_queue_init fails or the environment has HR_DISK_AIO=threads.
 * Zeroing always runs on a pool thread (hr_image_zero: punch a hole, fall
 * back to writing zeros), whatever the engine.
 *
 * Contract:
 *  - submit never blocks on the I/O and never calls the callback itself:
 *    every accepted request completes exactly once, with 0 (every byte
 *    moved) or a negative errno, from one of the aio's own threads.
 *    Requests the image cannot take (a write to a readonly image, a range
 *    past its end) complete with -EROFS / -EINVAL the same way.
 *  - A callback must not call hr_aio_drain or hr_aio_destroy; it may take
 *    the device's locks (nothing of the aio is held while it runs).
 *  - hr_aio_drain returns when no request is in flight (all callbacks have
 *    returned); destroy drains first.
 *  - The request struct belongs to the caller and must stay valid, with its
 *    iovec array, until its callback has been called.
 */
#ifndef HR_DISK_AIO_H
#define HR_DISK_AIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "disk/image.h"

enum hr_aio_op {
	HR_AIO_READ = 1,
	HR_AIO_WRITE = 2,
	HR_AIO_FLUSH = 3,
	HR_AIO_ZERO = 4, /* write-zeroes and discard: len bytes at off read as zero */
};

#define HR_AIO_MAX_IOV 256

struct hr_aio_req;
typedef void (*hr_aio_done_fn)(struct hr_aio_req *req, int result);

struct hr_aio_req {
	enum hr_aio_op op;
	uint64_t off;	     /* byte offset in the image */
	struct iovec *iov;   /* READ/WRITE: advanced in place as bytes move */
	unsigned nr_iov;     /* READ/WRITE: 1..HR_AIO_MAX_IOV */
	uint64_t len;	     /* ZERO: bytes; READ/WRITE: set by submit (sum of iov) */
	hr_aio_done_fn done; /* required */
	void *opaque;	     /* the caller's */
	/* private to aio.c */
	struct hr_aio_req *next; /* pool queue */
	int preset;		 /* pool: complete with this result without I/O */
	unsigned posted;	 /* ring: release/acquire pair around the kernel */
};

struct hr_aio;

/* Start the aio of img (which outlives it) with room for depth requests in
 * flight on io_uring (more wait in the submitter's queue).  why names the
 * failure. */
int hr_aio_create(struct hr_aio **aio_r, struct hr_image *img, unsigned depth, char *why,
		  size_t why_size);
void hr_aio_destroy(struct hr_aio *aio);

/* "io_uring" or "threads". */
const char *hr_aio_engine(const struct hr_aio *aio);

/* Queue req (0), or -EINVAL for a malformed request (no callback then). */
int hr_aio_submit(struct hr_aio *aio, struct hr_aio_req *req);

/* Wait until nothing is in flight. */
void hr_aio_drain(struct hr_aio *aio);

/* Requests in flight now. */
unsigned hr_aio_inflight(struct hr_aio *aio);

/* Fault injection for tests: the next count submitted requests of the ops in
 * op_mask (1u << HR_AIO_*) complete with err (< 0) without I/O. */
void hr_aio_inject(struct hr_aio *aio, unsigned op_mask, int err, unsigned count);

#endif
