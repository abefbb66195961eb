/*
 * console.h - where a worker sends the guest's released console output.
 *
 * SPEC is `file:PATH` (appended, in offset order: the file holds the stream
 * without a gap or a repeat, after whatever it held before) or
 * `tcp:HOST:PORT` (frames `u64 offset LE | u32 len LE | bytes`; the receiver
 * drops offsets it already has).
 *
 * Nothing is dropped while the sink lives.  Output its destination refuses
 * (a full or failing disk: ENOSPC, EDQUOT, EIO; a closed or refusing
 * collector) is held here, in order, and a thread of the sink retries
 * (after 100 ms, doubling to 1 s between attempts) until it is written.
 * The sink logs once when it starts failing and once when everything held
 * has been written; hr_console_get_stats says where it stands.
 *
 * Held output is bounded by pushback, not by dropping: hr_console_sink
 * always takes what it is given, and hr_console_room tells the caller
 * whether it should give more.  The engine asks before it releases held
 * output (engine.h: output_room), so at the bound the output waits in the
 * engine - and, once the engine's cap is reached too, the guest with it.
 * A worker's exit gives the sink hr_console_close's flush time; what it
 * still holds then is lost, and logged.
 */
#ifndef HR_DAEMON_CONSOLE_H
#define HR_DAEMON_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

/* Held bytes at which hr_console_room says "no more" (the default bound). */
#define HR_CONSOLE_MAX_HELD_BYTES (64u << 20)

struct hr_console;

/* Syntax check only: 0 or -EINVAL. */
int hr_console_check_spec(const char *spec);

/* Open a sink for VM vm.  0, -EINVAL (bad spec), -errno (file). */
int hr_console_open(struct hr_console **c_r, const char *spec, const char *vm);

/* An hr_output_sink_fn: opaque is the struct hr_console.  Takes every
 * byte (see hr_console_room); a byte whose offset it was given before is
 * skipped. */
void hr_console_sink(void *opaque, uint64_t offset, const void *buf, size_t len);

/* 0 while fewer than the bound's bytes are held (the caller may hand
 * more), -EAGAIN at the bound; waits up to timeout_ms (0: not at all) for
 * the sink to drain below it.  Closing the sink ends a wait (0). */
int hr_console_room(struct hr_console *c, int timeout_ms);

/* Tests: the bound (> 0) in place of HR_CONSOLE_MAX_HELD_BYTES. */
void hr_console_set_max_held(struct hr_console *c, size_t bytes);

struct hr_console_stats {
	int error;		  /* 0, or the last failure (-errno) while output is held */
	uint64_t held_bytes;	  /* taken, not yet written or sent */
	uint64_t retries;	  /* attempts since the failure started */
	uint64_t failing_since_s; /* wall clock (Unix seconds) it started failing; 0 none */
	uint64_t written_bytes;	  /* written or sent since open */
};
void hr_console_get_stats(struct hr_console *c, struct hr_console_stats *s);

/* Let the sink write what it holds for up to flush_ms, then free it. */
void hr_console_close(struct hr_console *c, unsigned flush_ms);

#endif
