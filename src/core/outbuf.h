/*
 * outbuf.h - output commit buffer (DESIGN.md contract 2).
 *
 * Bytes the guest emits during epoch N are held until the backup has
 * acknowledged epoch N, then handed to a sink in the order they were
 * emitted.
 *
 * Threads: any number of producers (vCPU threads, via the console hook)
 * call hr_outbuf_append; ONE consumer (the engine) calls seal and release.
 * All calls are serialised by an internal mutex; the sink runs outside it,
 * so a slow sink never blocks a vCPU.
 *
 * Epochs: append tags bytes with the open epoch.  hr_outbuf_seal(N) closes
 * the open epoch N; later bytes belong to N+1.  Seal while the vCPUs are
 * paused and the split is exact.
 *
 * Memory is capped: an append that would exceed the cap stores nothing and
 * returns -ENOBUFS (and calls the full callback) so that the engine can
 * force an early checkpoint.  Bytes are never dropped silently: the
 * producer either retries (hr_outbuf_append_wait) or knows it failed.
 */
#ifndef HR_CORE_OUTBUF_H
#define HR_CORE_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

struct hr_outbuf;

/* Receives released bytes; 0 or -errno.  On error the bytes stay buffered. */
typedef int (*hr_outbuf_sink_fn)(void *opaque, uint64_t epoch, const void *buf, size_t len);
/* Called (from the producer thread, outside the lock) when an append hits the cap. */
typedef void (*hr_outbuf_full_fn)(void *opaque, size_t held_bytes);

/* cap_bytes: most payload bytes held at once (> 0).  first_epoch: the open epoch. */
int hr_outbuf_new(struct hr_outbuf **ob_r, const char *vm, size_t cap_bytes, uint64_t first_epoch);
void hr_outbuf_free(struct hr_outbuf *ob);

/* OPTIONAL: be told when the buffer is full. */
void hr_outbuf_set_full_cb(struct hr_outbuf *ob, hr_outbuf_full_fn fn, void *opaque);

/*
 * Append len bytes to the open epoch, all or nothing.  0, -ENOBUFS (would
 * exceed the cap; nothing stored), -EMSGSIZE (len > cap: can never fit),
 * -ENOMEM.
 */
int hr_outbuf_append(struct hr_outbuf *ob, const void *buf, size_t len);

/*
 * As hr_outbuf_append, but on -ENOBUFS wait up to timeout_ms (-1 = forever)
 * for a release to make room.  Do not call it from a thread the engine must
 * pause to make progress unless the engine can pause it while it waits.
 */
int hr_outbuf_append_wait(struct hr_outbuf *ob, const void *buf, size_t len, int timeout_ms);

/* Close the open epoch, which must be `epoch` (-EINVAL otherwise); epoch+1 opens. */
int hr_outbuf_seal(struct hr_outbuf *ob, uint64_t epoch);

/*
 * Hand every byte of the sealed epochs <= epoch to sink, oldest first, and
 * free them.  epoch must be sealed (-EINVAL if it is still open).  If sink
 * fails, release stops and returns its error; the unsent bytes (including
 * the failed chunk) stay buffered, in order, for the next release.
 */
int hr_outbuf_release(struct hr_outbuf *ob, uint64_t epoch, hr_outbuf_sink_fn sink, void *opaque);

/* Drop every held byte of epochs >= epoch (failover: output never acked). */
void hr_outbuf_drop_from(struct hr_outbuf *ob, uint64_t epoch);

struct hr_outbuf_stats {
	uint64_t open_epoch;
	size_t held_bytes;
	size_t cap_bytes;
	uint64_t released_bytes;
	uint64_t nr_full; /* appends refused with -ENOBUFS */
};
void hr_outbuf_get_stats(struct hr_outbuf *ob, struct hr_outbuf_stats *s);

/*
 * Copy (without releasing) the held bytes of every sealed epoch <= epoch, in
 * order, into a malloc'd buffer; *offset_r is the stream offset of the first
 * of them (= bytes released so far).  The epoch engine ships these with each
 * checkpoint so that a promoted backup can release what the primary could not.
 */
int hr_outbuf_copy_held(struct hr_outbuf *ob, uint64_t epoch, uint8_t **buf_r, size_t *len_r,
			uint64_t *offset_r);

#endif
