/* outbuf.c - output commit buffer. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "common/log.h"
#include "core/outbuf.h"

#define CHUNK_BYTES 4096u

struct chunk {
	struct chunk *next;
	uint64_t epoch;
	size_t len, cap;
	uint8_t data[];
};

struct hr_outbuf {
	pthread_mutex_t lock;
	pthread_cond_t room; /* signalled when bytes are freed */
	char *vm;
	struct chunk *head, *tail;
	uint64_t open_epoch;
	size_t held_bytes, cap_bytes;
	uint64_t released_bytes;
	uint64_t nr_full;
	hr_outbuf_full_fn full_fn;
	void *full_opaque;
};

int hr_outbuf_new(struct hr_outbuf **ob_r, const char *vm, size_t cap_bytes, uint64_t first_epoch)
{
	struct hr_outbuf *ob;
	pthread_condattr_t ca;

	*ob_r = NULL;
	if (!cap_bytes)
		return -EINVAL;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->vm = strdup(vm ? vm : "-");
	if (!ob->vm) {
		free(ob);
		return -ENOMEM;
	}
	pthread_mutex_init(&ob->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ob->room, &ca);
	pthread_condattr_destroy(&ca);
	ob->cap_bytes = cap_bytes;
	ob->open_epoch = first_epoch;
	*ob_r = ob;
	return 0;
}

static void free_chain(struct chunk *c)
{
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
}

void hr_outbuf_free(struct hr_outbuf *ob)
{
	if (!ob)
		return;
	free_chain(ob->head);
	pthread_cond_destroy(&ob->room);
	pthread_mutex_destroy(&ob->lock);
	free(ob->vm);
	free(ob);
}

void hr_outbuf_set_full_cb(struct hr_outbuf *ob, hr_outbuf_full_fn fn, void *opaque)
{
	pthread_mutex_lock(&ob->lock);
	ob->full_fn = fn;
	ob->full_opaque = opaque;
	pthread_mutex_unlock(&ob->lock);
}

/* Locked.  0, -ENOBUFS, -ENOMEM. */
static int append_locked(struct hr_outbuf *ob, const uint8_t *buf, size_t len)
{
	struct chunk *t = ob->tail;

	if (len > ob->cap_bytes - ob->held_bytes)
		return -ENOBUFS;
	if (t && t->epoch == ob->open_epoch && t->cap - t->len >= len) {
		memcpy(t->data + t->len, buf, len);
		t->len += len;
	} else {
		/* Fill what the tail of this epoch still holds, then one new chunk. */
		size_t n = 0, cap;
		struct chunk *c;

		if (t && t->epoch == ob->open_epoch)
			n = t->cap - t->len;
		cap = len - n > CHUNK_BYTES ? len - n : CHUNK_BYTES;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return -ENOMEM;
		if (n) {
			memcpy(t->data + t->len, buf, n);
			t->len += n;
		}
		c->next = NULL;
		c->epoch = ob->open_epoch;
		c->cap = cap;
		c->len = len - n;
		memcpy(c->data, buf + n, len - n);
		if (t)
			t->next = c;
		else
			ob->head = c;
		ob->tail = c;
	}
	ob->held_bytes += len;
	return 0;
}

static int append(struct hr_outbuf *ob, const void *buf, size_t len, int timeout_ms)
{
	struct timespec deadline;
	int notified = 0, rc;

	if (!len)
		return 0;
	if (len > ob->cap_bytes)
		return -EMSGSIZE;
	if (timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&ob->lock);
	for (;;) {
		rc = append_locked(ob, buf, len);
		if (rc != -ENOBUFS)
			break;
		if (!notified) {
			/* One full event per refused append; tell the engine outside the lock. */
			hr_outbuf_full_fn fn = ob->full_fn;
			void *opaque = ob->full_opaque;
			size_t held = ob->held_bytes;

			notified = 1;
			ob->nr_full++;
			if (fn) {
				pthread_mutex_unlock(&ob->lock);
				fn(opaque, held);
				pthread_mutex_lock(&ob->lock);
				continue;
			}
		}
		if (timeout_ms == 0)
			break;
		if (timeout_ms < 0) {
			pthread_cond_wait(&ob->room, &ob->lock);
		} else if (pthread_cond_timedwait(&ob->room, &ob->lock, &deadline) == ETIMEDOUT) {
			rc = append_locked(ob, buf, len);
			break;
		}
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int hr_outbuf_append(struct hr_outbuf *ob, const void *buf, size_t len)
{
	return append(ob, buf, len, 0);
}

int hr_outbuf_append_wait(struct hr_outbuf *ob, const void *buf, size_t len, int timeout_ms)
{
	return append(ob, buf, len, timeout_ms);
}

int hr_outbuf_seal(struct hr_outbuf *ob, uint64_t epoch)
{
	int rc = 0;

	pthread_mutex_lock(&ob->lock);
	if (epoch != ob->open_epoch) {
		log_warnx(ob->vm, "outbuf: seal of epoch %" PRIu64 " but epoch %" PRIu64 " is open",
			  epoch, ob->open_epoch);
		rc = -EINVAL;
	} else {
		ob->open_epoch++;
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int hr_outbuf_release(struct hr_outbuf *ob, uint64_t epoch, hr_outbuf_sink_fn sink, void *opaque)
{
	struct chunk *chain, *last = NULL, *c;
	size_t freed = 0;
	int rc = 0;

	pthread_mutex_lock(&ob->lock);
	if (epoch >= ob->open_epoch) {
		log_warnx(ob->vm,
			  "outbuf: release of epoch %" PRIu64 " which is not sealed "
			  "(epoch %" PRIu64 " is open)",
			  epoch, ob->open_epoch);
		pthread_mutex_unlock(&ob->lock);
		return -EINVAL;
	}
	/* Detach the leading chunks of epochs <= epoch; producers only touch the tail. */
	chain = ob->head;
	for (c = ob->head; c && c->epoch <= epoch; c = c->next)
		last = c;
	if (!last) {
		pthread_mutex_unlock(&ob->lock);
		return 0;
	}
	ob->head = last->next;
	if (!ob->head)
		ob->tail = NULL;
	last->next = NULL;
	pthread_mutex_unlock(&ob->lock);

	while (chain) {
		c = chain;
		if (c->len) {
			rc = sink(opaque, c->epoch, c->data, c->len);
			if (rc)
				break;
		}
		freed += c->len;
		chain = c->next;
		free(c);
	}

	pthread_mutex_lock(&ob->lock);
	if (chain) {
		/* Sink failed: put the rest back in front, order kept. */
		for (last = chain; last->next; last = last->next)
			;
		last->next = ob->head;
		if (!ob->head)
			ob->tail = last;
		ob->head = chain;
	}
	ob->held_bytes -= freed;
	ob->released_bytes += freed;
	if (freed)
		pthread_cond_broadcast(&ob->room);
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

void hr_outbuf_drop_from(struct hr_outbuf *ob, uint64_t epoch)
{
	struct chunk **pp, *c;
	size_t dropped = 0;

	pthread_mutex_lock(&ob->lock);
	ob->tail = NULL;
	for (pp = &ob->head; (c = *pp);) {
		if (c->epoch >= epoch) {
			*pp = c->next;
			dropped += c->len;
			free(c);
		} else {
			ob->tail = c;
			pp = &c->next;
		}
	}
	ob->held_bytes -= dropped;
	if (dropped) {
		log_info(ob->vm, "outbuf: dropped %zu unacknowledged bytes of epochs >= %" PRIu64,
			 dropped, epoch);
		pthread_cond_broadcast(&ob->room);
	}
	pthread_mutex_unlock(&ob->lock);
}

void hr_outbuf_get_stats(struct hr_outbuf *ob, struct hr_outbuf_stats *s)
{
	pthread_mutex_lock(&ob->lock);
	s->open_epoch = ob->open_epoch;
	s->held_bytes = ob->held_bytes;
	s->cap_bytes = ob->cap_bytes;
	s->released_bytes = ob->released_bytes;
	s->nr_full = ob->nr_full;
	pthread_mutex_unlock(&ob->lock);
}

int hr_outbuf_copy_held(struct hr_outbuf *ob, uint64_t epoch, uint8_t **buf_r, size_t *len_r,
			uint64_t *offset_r)
{
	size_t n = 0;
	struct chunk *c;

	pthread_mutex_lock(&ob->lock);
	for (c = ob->head; c && c->epoch <= epoch; c = c->next)
		n += c->len;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		pthread_mutex_unlock(&ob->lock);
		return -ENOMEM;
	}
	n = 0;
	for (c = ob->head; c && c->epoch <= epoch; c = c->next) {
		memcpy(buf + n, c->data, c->len);
		n += c->len;
	}
	*offset_r = ob->released_bytes;
	pthread_mutex_unlock(&ob->lock);
	*buf_r = buf;
	*len_r = n;
	return 0;
}
