/*
 * aio.c - asynchronous image I/O (aio.h): io_uring with a reaper thread,
 * or a pool of worker threads doing the same I/O synchronously.
 *
 * Every accepted request is counted in `inflight` until its callback has
 * returned; hr_aio_drain waits on that count.  Requests that need no I/O
 * (refused by the image, injected faults) and zeroing go to the pool in
 * both engines, so a callback never runs on the submitter's stack.
 */
#include "disk/aio.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_THREADS 4

struct hr_aio {
	struct hr_image *img;
	int use_uring;
	struct io_uring ring;
	int ring_ok;
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t sq_lock; /* the ring's submission side */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t work, idle;
	struct hr_aio_req *q_head, *q_tail;
	pthread_t workers[POOL_THREADS];
	unsigned nr_workers;
	unsigned inflight;
	int stop;
	unsigned inj_mask, inj_count;
	int inj_err;
};

static void finish(struct hr_aio *aio, struct hr_aio_req *req, int result)
{
	req->done(req, result);
	pthread_mutex_lock(&aio->lock);
	if (--aio->inflight == 0)
		pthread_cond_broadcast(&aio->idle);
	pthread_mutex_unlock(&aio->lock);
}

/* Drop n moved bytes from the front of req's iovec. */
static void advance(struct hr_aio_req *req, uint64_t n)
{
	while (n && req->nr_iov) {
		if (n < req->iov->iov_len) {
			req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
			req->iov->iov_len -= n;
			break;
		}
		n -= req->iov->iov_len;
		req->iov++;
		req->nr_iov--;
	}
	/* skip empty entries so that the next transfer moves bytes */
	while (req->nr_iov && !req->iov->iov_len)
		req->iov++, req->nr_iov--;
}

/* ---- the pool ---------------------------------------------------------- */

static int sync_rw(struct hr_aio *aio, struct hr_aio_req *req)
{
	while (req->len) {
		int n = req->nr_iov < IOV_MAX ? (int)req->nr_iov : IOV_MAX;
		ssize_t r = req->op == HR_AIO_READ
				? preadv(aio->img->fd, req->iov, n, (off_t)req->off)
				: pwritev(aio->img->fd, req->iov, n, (off_t)req->off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* the image shrank under us */
		advance(req, (uint64_t)r);
		req->off += (uint64_t)r;
		req->len -= (uint64_t)r;
	}
	return 0;
}

static int run_sync(struct hr_aio *aio, struct hr_aio_req *req)
{
	if (req->preset)
		return req->preset;
	switch (req->op) {
	case HR_AIO_READ:
	case HR_AIO_WRITE:
		return sync_rw(aio, req);
	case HR_AIO_FLUSH:
		return hr_image_flush(aio->img);
	case HR_AIO_ZERO:
		return hr_image_zero(aio->img, req->off, req->len);
	}
	return -EINVAL;
}

static void *worker_main(void *arg)
{
	struct hr_aio *aio = arg;

	pthread_mutex_lock(&aio->lock);
	for (;;) {
		while (!aio->q_head && !aio->stop)
			pthread_cond_wait(&aio->work, &aio->lock);
		if (!aio->q_head)
			break; /* stopping and nothing left */
		struct hr_aio_req *req = aio->q_head;
		aio->q_head = req->next;
		if (!aio->q_head)
			aio->q_tail = NULL;
		pthread_mutex_unlock(&aio->lock);
		finish(aio, req, run_sync(aio, req));
		pthread_mutex_lock(&aio->lock);
	}
	pthread_mutex_unlock(&aio->lock);
	return NULL;
}

/* Lock held. */
static void pool_queue(struct hr_aio *aio, struct hr_aio_req *req)
{
	req->next = NULL;
	if (aio->q_tail)
		aio->q_tail->next = req;
	else
		aio->q_head = req;
	aio->q_tail = req;
	pthread_cond_signal(&aio->work);
}

/* ---- io_uring ---------------------------------------------------------- */

/* Put req (or the stop marker, NULL) on the ring. */
static int uring_push(struct hr_aio *aio, struct hr_aio_req *req)
{
	pthread_mutex_lock(&aio->sq_lock);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&aio->ring);
	if (!sqe) {
		io_uring_submit(&aio->ring);
		sqe = io_uring_get_sqe(&aio->ring);
	}
	if (!sqe) {
		pthread_mutex_unlock(&aio->sq_lock);
		return -EBUSY;
	}
	if (!req)
		io_uring_prep_nop(sqe);
	else if (req->op == HR_AIO_READ)
		io_uring_prep_readv(sqe, aio->img->fd, req->iov, req->nr_iov, req->off);
	else if (req->op == HR_AIO_WRITE)
		io_uring_prep_writev(sqe, aio->img->fd, req->iov, req->nr_iov, req->off);
	else
		io_uring_prep_fsync(sqe, aio->img->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, req);
	/* from here req is the reaper's: the kernel orders it, this pair with
	 * the reaper's acquire says so to readers and to ThreadSanitizer */
	if (req)
		__atomic_add_fetch(&req->posted, 1, __ATOMIC_RELEASE);
	int r;
	do
		r = io_uring_submit(&aio->ring);
	while (r == -EINTR || r == -EAGAIN);
	pthread_mutex_unlock(&aio->sq_lock);
	return r < 0 ? r : 0;
}

/* One completion: 1 when req is done with *result_r, 0 when resubmitted. */
static int uring_result(struct hr_aio *aio, struct hr_aio_req *req, int res, int *result_r)
{
	if (res == -EINTR || res == -EAGAIN)
		goto again;
	if (res < 0 || req->op == HR_AIO_FLUSH) {
		*result_r = res < 0 ? res : 0;
		return 1;
	}
	if (res == 0 && req->len) {
		*result_r = -EIO;
		return 1;
	}
	advance(req, (uint64_t)res);
	req->off += (uint64_t)res;
	req->len -= (uint64_t)res;
	if (!req->len) {
		*result_r = 0;
		return 1;
	}
again : {
	int rc = uring_push(aio, req);
	if (rc < 0) {
		*result_r = rc;
		return 1;
	}
	return 0;
}
}

static void *reaper_main(void *arg)
{
	struct hr_aio *aio = arg;

	for (;;) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&aio->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0) {
			/* cannot happen with a live ring; do not spin */
			usleep(1000);
			continue;
		}
		struct hr_aio_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&aio->ring, cqe);
		if (!req)
			break; /* the stop marker */
		(void)__atomic_load_n(&req->posted, __ATOMIC_ACQUIRE);
		int result;
		if (uring_result(aio, req, res, &result))
			finish(aio, req, result);
	}
	return NULL;
}

/* ---- the interface ----------------------------------------------------- */

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

int hr_aio_create(struct hr_aio **aio_r, struct hr_image *img, unsigned depth, char *why,
		  size_t why_size)
{
	const char *env = getenv("HR_DISK_AIO");
	int rc;

	*aio_r = NULL;
	if (env && *env && strcmp(env, "threads") && strcmp(env, "io_uring")) {
		snprintf(why, why_size, "HR_DISK_AIO=%s: want io_uring or threads", env);
		return -EINVAL;
	}
	struct hr_aio *aio = calloc(1, sizeof(*aio));
	if (!aio)
		return -ENOMEM;
	aio->img = img;
	pthread_mutex_init(&aio->lock, NULL);
	pthread_mutex_init(&aio->sq_lock, NULL);
	pthread_cond_init(&aio->work, NULL);
	pthread_cond_init(&aio->idle, NULL);
	if (!(env && !strcmp(env, "threads"))) {
		rc = io_uring_queue_init(depth ? depth : 64, &aio->ring, 0);
		aio->ring_ok = rc == 0;
		aio->use_uring = aio->ring_ok;
	}
	if (aio->use_uring) {
		if ((rc = start_thread(&aio->reaper, reaper_main, aio)) < 0) {
			snprintf(why, why_size, "disk %s: cannot start the io_uring reaper",
				 img->path);
			hr_aio_destroy(aio);
			return rc;
		}
		aio->reaper_started = 1;
	}
	unsigned want = aio->use_uring ? 1 : POOL_THREADS;
	for (unsigned i = 0; i < want; i++) {
		if ((rc = start_thread(&aio->workers[i], worker_main, aio)) < 0) {
			snprintf(why, why_size, "disk %s: cannot start an I/O thread", img->path);
			hr_aio_destroy(aio);
			return rc;
		}
		aio->nr_workers++;
	}
	*aio_r = aio;
	return 0;
}

void hr_aio_destroy(struct hr_aio *aio)
{
	if (!aio)
		return;
	hr_aio_drain(aio);
	pthread_mutex_lock(&aio->lock);
	aio->stop = 1;
	pthread_cond_broadcast(&aio->work);
	pthread_mutex_unlock(&aio->lock);
	for (unsigned i = 0; i < aio->nr_workers; i++)
		pthread_join(aio->workers[i], NULL);
	if (aio->reaper_started) {
		while (uring_push(aio, NULL) < 0)
			usleep(1000);
		pthread_join(aio->reaper, NULL);
	}
	if (aio->ring_ok)
		io_uring_queue_exit(&aio->ring);
	pthread_cond_destroy(&aio->work);
	pthread_cond_destroy(&aio->idle);
	pthread_mutex_destroy(&aio->lock);
	pthread_mutex_destroy(&aio->sq_lock);
	free(aio);
}

const char *hr_aio_engine(const struct hr_aio *aio)
{
	return aio->use_uring ? "io_uring" : "threads";
}

int hr_aio_submit(struct hr_aio *aio, struct hr_aio_req *req)
{
	if (!req->done || req->op < HR_AIO_READ || req->op > HR_AIO_ZERO)
		return -EINVAL;
	if (req->op == HR_AIO_READ || req->op == HR_AIO_WRITE) {
		if (!req->iov || !req->nr_iov || req->nr_iov > HR_AIO_MAX_IOV)
			return -EINVAL;
		req->len = 0;
		for (unsigned i = 0; i < req->nr_iov; i++)
			req->len += req->iov[i].iov_len;
	}
	req->preset = 0;
	req->next = NULL;
	pthread_mutex_lock(&aio->lock);
	if (aio->inj_count && (aio->inj_mask & (1u << req->op))) {
		aio->inj_count--;
		req->preset = aio->inj_err;
	} else if (req->op != HR_AIO_READ && req->op != HR_AIO_FLUSH && aio->img->readonly) {
		req->preset = -EROFS;
	} else if (req->op != HR_AIO_FLUSH &&
		   (req->off > aio->img->bytes || req->len > aio->img->bytes - req->off)) {
		req->preset = -EINVAL;
	}
	aio->inflight++;
	if (req->preset || req->op == HR_AIO_ZERO || !aio->use_uring ||
	    (req->op != HR_AIO_FLUSH && !req->len)) {
		pool_queue(aio, req);
		pthread_mutex_unlock(&aio->lock);
		return 0;
	}
	pthread_mutex_unlock(&aio->lock);
	int rc = uring_push(aio, req);
	if (rc < 0) {
		/* the ring refused it: complete with the error all the same */
		pthread_mutex_lock(&aio->lock);
		req->preset = rc;
		pool_queue(aio, req);
		pthread_mutex_unlock(&aio->lock);
	}
	return 0;
}

void hr_aio_drain(struct hr_aio *aio)
{
	pthread_mutex_lock(&aio->lock);
	while (aio->inflight)
		pthread_cond_wait(&aio->idle, &aio->lock);
	pthread_mutex_unlock(&aio->lock);
}

unsigned hr_aio_inflight(struct hr_aio *aio)
{
	pthread_mutex_lock(&aio->lock);
	unsigned n = aio->inflight;
	pthread_mutex_unlock(&aio->lock);
	return n;
}

void hr_aio_inject(struct hr_aio *aio, unsigned op_mask, int err, unsigned count)
{
	pthread_mutex_lock(&aio->lock);
	aio->inj_mask = op_mask;
	aio->inj_err = err < 0 ? err : -EIO;
	aio->inj_count = count;
	pthread_mutex_unlock(&aio->lock);
}
