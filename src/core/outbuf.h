/*
 * outbuf.h - output commit buffer (docs/design.md contract 2), one per VM,
 * with one stream of offsets per output channel (backend.h: struct
 * hr_chan_desc).
 *
 * What the guest emits on channel c during epoch N is held until the backup
 * has acknowledged epoch N, then handed to a sink in the order it was
 * emitted.
 *
 * Offsets have one owner: each byte gets its offset (per channel, counted
 * from the VM's first start) when it is appended, and the offset travels
 * with the bytes from then on - into the epoch's envelope, to the sink.
 * Nothing recomputes an offset later.
 *
 * Records: on a record channel (network frames, disk completions) one
 * append is one record and is never split or merged; on the console (a
 * byte stream) consecutive appends of one epoch are merged into runs.
 *
 * Threads: any number of producers (vCPU threads, via the backend's emit)
 * call hr_outbuf_append; ONE consumer (the engine) calls seal, held and
 * release.  All calls are serialised by an internal mutex; the sink runs
 * outside it, so a slow sink never blocks a vCPU.
 *
 * Epochs: append tags records with the open epoch.  hr_outbuf_seal(N)
 * closes the open epoch N; later output belongs to N+1.  Seal while the
 * vCPUs are paused and the split is exact.
 *
 * Memory is capped: an append that would exceed the cap stores nothing and
 * returns -ENOBUFS (and calls the full callback) so that the engine can
 * force an early checkpoint.  Output is never dropped silently: the
 * producer either retries (hr_outbuf_append_wait) or knows it failed.
 */
#ifndef HR_CORE_OUTBUF_H
#define HR_CORE_OUTBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backends/backend.h"

struct hr_outbuf;

/* Receives released output: one record (or console run) with its offset.
 * 0 or -errno; on error that record and everything after it stay held. */
typedef int (*hr_outbuf_sink_fn)(void *opaque, unsigned chan, uint64_t offset, const void *buf,
				 size_t len);
/* Called (from the producer thread, outside the lock) when an append hits the cap. */
typedef void (*hr_outbuf_full_fn)(void *opaque, size_t held_bytes);

/*
 * chans / nr_chans: the VM's channels (copied; 1..HR_MAX_CHANNELS).
 * cap_bytes: most payload bytes held at once (> 0).  first_epoch: the open
 * epoch.  Every channel's next offset starts at 0 (see hr_outbuf_set_offsets).
 */
int hr_outbuf_new(struct hr_outbuf **ob_r, const char *vm, const struct hr_chan_desc *chans,
		  unsigned nr_chans, size_t cap_bytes, uint64_t first_epoch);
void hr_outbuf_free(struct hr_outbuf *ob);

/* OPTIONAL: be told when the buffer is full. */
void hr_outbuf_set_full_cb(struct hr_outbuf *ob, hr_outbuf_full_fn fn, void *opaque);

/*
 * OPTIONAL: be told when the open epoch gets its first record on a network
 * channel (HR_CHAN_NET): once per epoch at most, from the producer thread,
 * outside the lock.  The engine uses it to end such an epoch early.
 */
typedef void (*hr_outbuf_net_fn)(void *opaque);
void hr_outbuf_set_net_cb(struct hr_outbuf *ob, hr_outbuf_net_fn fn, void *opaque);
/* OPTIONAL: the same for the open epoch's first record on any channel (a
 * speaking primary without a backup releases its output at once). */
void hr_outbuf_set_any_cb(struct hr_outbuf *ob, hr_outbuf_net_fn fn, void *opaque);
/* When the open epoch's first network record was appended (hr_now_ns()),
 * 0 if it holds none.  Seal starts the next epoch at 0. */
uint64_t hr_outbuf_net_since_ns(struct hr_outbuf *ob);

/* A promoted replica continues each channel at the offsets the primary reached. */
void hr_outbuf_set_offsets(struct hr_outbuf *ob, const uint64_t *next_offsets, unsigned nr);

/*
 * Append len bytes (one record on a record channel) to the open epoch, all
 * or nothing.  0, -ENOBUFS (would exceed the cap; nothing stored),
 * -EMSGSIZE (len > cap, or a record longer than the channel's
 * max_record_bytes), -EINVAL (no such channel), -ENOMEM.
 */
int hr_outbuf_append(struct hr_outbuf *ob, unsigned chan, const void *buf, size_t len);

/*
 * As hr_outbuf_append, but on -ENOBUFS wait up to timeout_ms (-1 = forever)
 * for a release to make room.  Do not call it from a thread the engine must
 * pause to make progress unless the engine can pause it while it waits.
 */
int hr_outbuf_append_wait(struct hr_outbuf *ob, unsigned chan, const void *buf, size_t len,
			  int timeout_ms);

/* Close the open epoch, which must be `epoch` (-EINVAL otherwise); epoch+1 opens. */
int hr_outbuf_seal(struct hr_outbuf *ob, uint64_t epoch);

/*
 * Hand every record of the sealed epochs <= epoch to sink, oldest first,
 * and free them.  epoch must be sealed (-EINVAL if it is still open).  If
 * sink fails, release stops and returns its error; the unsent records
 * (including the failed one) stay buffered, in order, for the next release.
 */
int hr_outbuf_release(struct hr_outbuf *ob, uint64_t epoch, hr_outbuf_sink_fn sink, void *opaque);

/* Drop every held record of epochs >= epoch (output that will never be acked). */
void hr_outbuf_drop_from(struct hr_outbuf *ob, uint64_t epoch);

/*
 * The held output of the sealed epochs <= epoch, without copying it: one
 * descriptor per record and an iovec per record pointing into the buffer.
 * The pointers stay valid until the next hr_outbuf_release or drop_from
 * (only the consumer calls those, so the consumer may send them first).
 * next_offsets[c]: channel c's offset after the last byte appended so far
 * in the sealed epochs.  Free with hr_outbuf_held_free.
 */
struct hr_out_record {
	uint32_t chan;
	uint32_t len;
	uint64_t offset;
};
struct hr_out_held {
	unsigned nr_chans;
	uint64_t next_offsets[HR_MAX_CHANNELS];
	size_t nr_records;
	struct hr_out_record *records;
	struct iovec *iov; /* nr_records entries: the records' bytes */
	uint64_t bytes;	   /* sum of the records' lengths */
};
int hr_outbuf_held(struct hr_outbuf *ob, uint64_t epoch, struct hr_out_held *h);
void hr_outbuf_held_free(struct hr_out_held *h);

struct hr_outbuf_stats {
	uint64_t open_epoch;
	size_t held_bytes;
	size_t cap_bytes;
	uint64_t released_bytes; /* all channels */
	uint64_t nr_full;	 /* appends refused with -ENOBUFS */
};
void hr_outbuf_get_stats(struct hr_outbuf *ob, struct hr_outbuf_stats *s);

#endif
