/* disklog.c - the running epoch's disk writes (disklog.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/disklog.h"

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < want)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int hr_disk_batch_add(struct hr_disk_batch *b, unsigned disk, uint64_t off, const void *buf,
		      uint64_t len, unsigned flags)
{
	int has_data = !flags;

	if (grow((void **)&b->recs, &b->cap, b->nr + 1, sizeof(*b->recs)) < 0 ||
	    (has_data && grow((void **)&b->data, &b->data_cap, b->data_len + len, 1) < 0))
		return -ENOMEM;
	b->recs[b->nr++] = (struct hr_disk_rec){
	    .disk = disk, .flags = flags, .off = off, .bytes = len, .data_off = b->data_len};
	if (has_data) {
		memcpy(b->data + b->data_len, buf, len);
		b->data_len += len;
	}
	return 0;
}

void hr_disk_batch_reset(struct hr_disk_batch *b)
{
	b->nr = 0;
	b->data_len = 0;
}

void hr_disk_batch_fini(struct hr_disk_batch *b)
{
	free(b->recs);
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static uint64_t cost(const struct hr_disk_batch *b)
{
	return b->data_len + (uint64_t)b->nr * HR_DISKLOG_REC_BYTES;
}

int hr_disklog_init(struct hr_disklog *l, const char *vm, unsigned nr_disks, uint64_t soft_bytes,
		    uint64_t hard_bytes, void (*soft_cb)(void *), void *soft_opaque)
{
	memset(l, 0, sizeof(*l));
	l->vm = vm;
	l->nr_disks = nr_disks;
	l->soft_bytes = soft_bytes ? soft_bytes : HR_DISKLOG_SOFT_BYTES;
	l->hard_bytes = hard_bytes ? hard_bytes : HR_DISKLOG_HARD_BYTES;
	if (l->soft_bytes > l->hard_bytes)
		return -EINVAL;
	l->next_soft = l->soft_bytes;
	l->soft_cb = soft_cb;
	l->soft_opaque = soft_opaque;
	pthread_mutex_init(&l->lock, NULL);
	return 0;
}

void hr_disklog_fini(struct hr_disklog *l)
{
	if (!l->hard_bytes)
		return; /* never initialised */
	hr_disk_batch_fini(&l->cur);
	pthread_mutex_destroy(&l->lock);
	l->hard_bytes = 0;
}

int hr_disklog_write(void *opaque, unsigned disk, uint64_t off, const void *buf, size_t len,
		     unsigned flags)
{
	struct hr_disklog *l = opaque;
	int rc = 0, fire = 0;

	if (disk >= l->nr_disks || (flags & ~(HR_DW_ZEROES | HR_DW_FLUSH)) ||
	    (!flags && !buf && len) || ((flags & HR_DW_FLUSH) && len))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	if (l->discard) {
		l->nr_discarded++;
		goto out;
	}
	uint64_t add = (flags ? 0 : len) + HR_DISKLOG_REC_BYTES;
	if (cost(&l->cur) + add > l->hard_bytes) {
		l->nr_refused++;
		rc = -ENOBUFS;
		fire = 1; /* the checkpoint empties the log */
		goto out;
	}
	rc = hr_disk_batch_add(&l->cur, disk, off, buf, len, flags);
	if (!rc && cost(&l->cur) >= l->next_soft) {
		/* again every quarter of the soft limit: a request may be lost
		 * while the engine waits for an ack */
		l->next_soft = cost(&l->cur) + l->soft_bytes / 4 + 1;
		fire = 1;
	}
out:
	pthread_mutex_unlock(&l->lock);
	if (fire && l->soft_cb)
		l->soft_cb(l->soft_opaque);
	return rc;
}

void hr_disklog_cut(struct hr_disklog *l, struct hr_disk_batch *out)
{
	struct hr_disk_batch spare = *out;

	hr_disk_batch_reset(&spare);
	pthread_mutex_lock(&l->lock);
	*out = l->cur;
	l->cur = spare;
	l->next_soft = l->soft_bytes;
	pthread_mutex_unlock(&l->lock);
}

uint64_t hr_disklog_set_discard(struct hr_disklog *l, int on)
{
	uint64_t n;

	pthread_mutex_lock(&l->lock);
	n = l->nr_discarded;
	l->discard = on;
	if (on) {
		l->nr_discarded = 0;
		hr_disk_batch_reset(&l->cur);
		l->next_soft = l->soft_bytes;
	}
	pthread_mutex_unlock(&l->lock);
	return n;
}

uint64_t hr_disklog_bytes(struct hr_disklog *l)
{
	pthread_mutex_lock(&l->lock);
	uint64_t n = cost(&l->cur);
	pthread_mutex_unlock(&l->lock);
	return n;
}
