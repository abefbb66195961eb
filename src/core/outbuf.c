/* outbuf.c - output commit buffer: records with their own offsets, per channel. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "core/outbuf.h"

#define RUN_BYTES 4096u /* console runs grow to this much before a new record starts */
/*
 * Byte-stream output (the console) stays in a replay list for a while after
 * its release: the sink that took it (a TCP writer thread, say) may not
 * have delivered it when this host dies, so every epoch's held output also
 * carries the last REPLAY_MS / REPLAY_BYTES released, and a promoted backup
 * hands them out again (a reader assembling by offset drops repeats).
 * Record channels (network frames) are not replayed: a lost frame is a
 * lost packet, which the network's own protocols already survive.
 */
#define REPLAY_BYTES (16u << 10)
#define REPLAY_MS    1000u

/* One record, or one run of console bytes; immutable once its epoch is sealed. */
struct rec {
	struct rec *next;
	uint64_t epoch;
	uint64_t offset;      /* channel offset of data[0]: set at append, never recomputed */
	uint64_t released_ns; /* in the replay list: when it was released */
	unsigned chan;
	size_t len, cap;
	uint8_t data[];
};

struct hr_outbuf {
	pthread_mutex_t lock;
	pthread_cond_t room; /* signalled when bytes are freed */
	char *vm;
	struct hr_chan_desc chans[HR_MAX_CHANNELS];
	unsigned nr_chans;
	uint64_t next_offset[HR_MAX_CHANNELS];	 /* offset of the next byte appended */
	uint64_t sealed_offset[HR_MAX_CHANNELS]; /* next_offset when the last epoch was sealed */
	struct rec *head, *tail;
	struct rec *replay_head, *replay_tail; /* released recently, oldest first */
	size_t replay_bytes;
	struct rec *open_run[HR_MAX_CHANNELS]; /* console: run that appends may extend */
	uint64_t open_epoch;
	size_t held_bytes, cap_bytes;
	uint64_t released_bytes;
	uint64_t nr_full;
	hr_outbuf_full_fn full_fn;
	void *full_opaque;
	uint64_t net_since_ns; /* first network record of the open epoch (0: none) */
	hr_outbuf_net_fn net_fn;
	void *net_opaque;
	int any_told;		 /* the open epoch's first record was told to any_fn */
	hr_outbuf_net_fn any_fn; /* ... of any channel (hr_outbuf_set_any_cb) */
	void *any_opaque;
};

int hr_outbuf_new(struct hr_outbuf **ob_r, const char *vm, const struct hr_chan_desc *chans,
		  unsigned nr_chans, size_t cap_bytes, uint64_t first_epoch)
{
	struct hr_outbuf *ob;
	pthread_condattr_t ca;

	*ob_r = NULL;
	if (!cap_bytes || !nr_chans || nr_chans > HR_MAX_CHANNELS || !chans)
		return -EINVAL;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->vm = strdup(vm ? vm : "-");
	if (!ob->vm) {
		free(ob);
		return -ENOMEM;
	}
	memcpy(ob->chans, chans, nr_chans * sizeof(*chans));
	ob->nr_chans = nr_chans;
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

static void free_chain(struct rec *r)
{
	while (r) {
		struct rec *n = r->next;
		free(r);
		r = n;
	}
}

void hr_outbuf_free(struct hr_outbuf *ob)
{
	if (!ob)
		return;
	free_chain(ob->head);
	free_chain(ob->replay_head);
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

void hr_outbuf_set_net_cb(struct hr_outbuf *ob, hr_outbuf_net_fn fn, void *opaque)
{
	pthread_mutex_lock(&ob->lock);
	ob->net_fn = fn;
	ob->net_opaque = opaque;
	pthread_mutex_unlock(&ob->lock);
}

void hr_outbuf_set_any_cb(struct hr_outbuf *ob, hr_outbuf_net_fn fn, void *opaque)
{
	pthread_mutex_lock(&ob->lock);
	ob->any_fn = fn;
	ob->any_opaque = opaque;
	ob->any_told = 0;
	pthread_mutex_unlock(&ob->lock);
}

uint64_t hr_outbuf_net_since_ns(struct hr_outbuf *ob)
{
	pthread_mutex_lock(&ob->lock);
	uint64_t ns = ob->net_since_ns;
	pthread_mutex_unlock(&ob->lock);
	return ns;
}

void hr_outbuf_set_offsets(struct hr_outbuf *ob, const uint64_t *next_offsets, unsigned nr)
{
	pthread_mutex_lock(&ob->lock);
	for (unsigned c = 0; c < nr && c < ob->nr_chans; c++) {
		ob->next_offset[c] = next_offsets[c];
		ob->sealed_offset[c] = next_offsets[c];
		ob->open_run[c] = NULL;
	}
	pthread_mutex_unlock(&ob->lock);
}

static void link_tail(struct hr_outbuf *ob, struct rec *r)
{
	r->next = NULL;
	if (ob->tail)
		ob->tail->next = r;
	else
		ob->head = r;
	ob->tail = r;
}

/* Locked.  0, -ENOBUFS, -ENOMEM. */
static int append_locked(struct hr_outbuf *ob, unsigned chan, const uint8_t *buf, size_t len)
{
	int records = hr_chan_is_records(&ob->chans[chan]);

	if (len > ob->cap_bytes - ob->held_bytes)
		return -ENOBUFS;
	while (len) {
		struct rec *r = records ? NULL : ob->open_run[chan];
		size_t n;

		if (r && r->epoch == ob->open_epoch && r->len < r->cap) {
			n = r->cap - r->len < len ? r->cap - r->len : len;
		} else {
			size_t cap = records || len > RUN_BYTES ? len : RUN_BYTES;
			r = malloc(sizeof(*r) + cap);
			if (!r)
				return -ENOMEM; /* what was stored stays: offsets are consistent */
			r->epoch = ob->open_epoch;
			r->offset = ob->next_offset[chan];
			r->chan = chan;
			r->len = 0;
			r->cap = cap;
			link_tail(ob, r);
			if (!records)
				ob->open_run[chan] = r;
			n = len;
		}
		memcpy(r->data + r->len, buf, n);
		r->len += n;
		ob->next_offset[chan] += n;
		ob->held_bytes += n;
		buf += n;
		len -= n;
	}
	return 0;
}

static int append(struct hr_outbuf *ob, unsigned chan, const void *buf, size_t len, int timeout_ms)
{
	struct timespec deadline;
	hr_outbuf_net_fn net_fn = NULL;
	int notified = 0, rc;

	if (chan >= ob->nr_chans)
		return -EINVAL;
	if (!len)
		return 0;
	if (len > ob->cap_bytes ||
	    (hr_chan_is_records(&ob->chans[chan]) && ob->chans[chan].max_record_bytes &&
	     len > ob->chans[chan].max_record_bytes))
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
		rc = append_locked(ob, chan, buf, len);
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
			rc = append_locked(ob, chan, buf, len);
			break;
		}
	}
	if (!rc && ob->chans[chan].kind == HR_CHAN_NET && !ob->net_since_ns) {
		ob->net_since_ns = hr_now_ns(); /* once per epoch: the trigger's time */
		net_fn = ob->net_fn;
	}
	void *net_opaque = ob->net_opaque;
	hr_outbuf_net_fn any_fn = NULL;
	void *any_opaque = ob->any_opaque;
	if (!rc && ob->any_fn && !ob->any_told) {
		ob->any_told = 1;
		any_fn = ob->any_fn;
	}
	pthread_mutex_unlock(&ob->lock);
	if (net_fn)
		net_fn(net_opaque);
	if (any_fn && (any_fn != net_fn || any_opaque != net_opaque))
		any_fn(any_opaque);
	return rc;
}

int hr_outbuf_append(struct hr_outbuf *ob, unsigned chan, const void *buf, size_t len)
{
	return append(ob, chan, buf, len, 0);
}

int hr_outbuf_append_wait(struct hr_outbuf *ob, unsigned chan, const void *buf, size_t len,
			  int timeout_ms)
{
	return append(ob, chan, buf, len, timeout_ms);
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
		ob->net_since_ns = 0;
		ob->any_told = 0;
		memcpy(ob->sealed_offset, ob->next_offset, sizeof(ob->sealed_offset));
		memset(ob->open_run, 0, sizeof(ob->open_run));
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

/* Append released records to the replay list and trim it by age and size
 * (lock held; only the consumer gets here, so held() pointers stay valid
 * until its next release, as documented). */
static void replay_keep(struct hr_outbuf *ob, struct rec *kept, uint64_t now)
{
	for (struct rec *r = kept; r; r = r->next)
		ob->replay_bytes += r->len;
	if (kept) {
		if (ob->replay_tail)
			ob->replay_tail->next = kept;
		else
			ob->replay_head = kept;
		struct rec *t = kept;
		while (t->next)
			t = t->next;
		ob->replay_tail = t;
	}
	while (ob->replay_head && (ob->replay_bytes > REPLAY_BYTES ||
				   now - ob->replay_head->released_ns > REPLAY_MS * 1000000ull)) {
		struct rec *r = ob->replay_head;
		ob->replay_head = r->next;
		if (!ob->replay_head)
			ob->replay_tail = NULL;
		ob->replay_bytes -= r->len;
		free(r);
	}
}

int hr_outbuf_release(struct hr_outbuf *ob, uint64_t epoch, hr_outbuf_sink_fn sink, void *opaque)
{
	struct rec *chain, *last = NULL, *r;
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
	/* Detach the leading records of epochs <= epoch; producers only touch the tail. */
	chain = ob->head;
	for (r = ob->head; r && r->epoch <= epoch; r = r->next)
		last = r;
	if (!last) {
		pthread_mutex_unlock(&ob->lock);
		return 0;
	}
	ob->head = last->next;
	if (!ob->head)
		ob->tail = NULL;
	last->next = NULL;
	pthread_mutex_unlock(&ob->lock);

	struct rec *kept = NULL, **kept_end = &kept;
	uint64_t now = hr_now_ns();
	while (chain) {
		r = chain;
		if (r->len && (rc = sink(opaque, r->chan, r->offset, r->data, r->len)) != 0)
			break;
		freed += r->len;
		chain = r->next;
		if (r->len && !hr_chan_is_records(&ob->chans[r->chan])) {
			r->next = NULL;
			r->released_ns = now;
			*kept_end = r;
			kept_end = &r->next;
		} else {
			free(r);
		}
	}

	pthread_mutex_lock(&ob->lock);
	replay_keep(ob, kept, now);
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
	struct rec **pp, *r;
	size_t dropped = 0;

	pthread_mutex_lock(&ob->lock);
	ob->tail = NULL;
	for (pp = &ob->head; (r = *pp);) {
		if (r->epoch >= epoch) {
			*pp = r->next;
			dropped += r->len;
			for (unsigned c = 0; c < ob->nr_chans; c++)
				if (ob->open_run[c] == r)
					ob->open_run[c] = NULL;
			free(r);
		} else {
			ob->tail = r;
			pp = &r->next;
		}
	}
	ob->held_bytes -= dropped;
	if (epoch <= ob->open_epoch)
		ob->net_since_ns = 0;
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

int hr_outbuf_held(struct hr_outbuf *ob, uint64_t epoch, struct hr_out_held *h)
{
	size_t n = 0;
	struct rec *r;

	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&ob->lock);
	for (r = ob->replay_head; r; r = r->next)
		n++;
	for (r = ob->head; r && r->epoch <= epoch; r = r->next)
		n++;
	h->records = malloc((n ? n : 1) * sizeof(*h->records));
	h->iov = malloc((n ? n : 1) * sizeof(*h->iov));
	if (!h->records || !h->iov) {
		pthread_mutex_unlock(&ob->lock);
		hr_outbuf_held_free(h);
		return -ENOMEM;
	}
	n = 0;
	for (r = ob->replay_head; r; r = r->next, n++) { /* released already: replayed */
		h->records[n] = (struct hr_out_record){r->chan, (uint32_t)r->len, r->offset};
		h->iov[n] = (struct iovec){r->data, r->len};
		h->bytes += r->len;
	}
	for (r = ob->head; r && r->epoch <= epoch; r = r->next, n++) {
		h->records[n] = (struct hr_out_record){r->chan, (uint32_t)r->len, r->offset};
		h->iov[n] = (struct iovec){r->data, r->len};
		h->bytes += r->len;
	}
	h->nr_records = n;
	h->nr_chans = ob->nr_chans;
	memcpy(h->next_offsets, ob->sealed_offset, sizeof(h->next_offsets));
	pthread_mutex_unlock(&ob->lock);
	return 0;
}

void hr_outbuf_held_free(struct hr_out_held *h)
{
	free(h->records);
	free(h->iov);
	memset(h, 0, sizeof(*h));
}
