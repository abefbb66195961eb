/*
 * console.h - where a worker sends the guest's released console output.
 *
 * SPEC is `file:PATH` (each chunk is written at its stream offset with
 * pwrite, so a repeat after a failover overwrites identical bytes) or
 * `tcp:HOST:PORT` (frames `u64 offset LE | u32 len LE | bytes`; on a failed
 * connection the sender reconnects every second and resends what was not
 * sent; the receiver drops offsets it already has).  The TCP sender runs in
 * its own thread so a slow receiver never stalls the epoch engine; it holds
 * at most HR_CONSOLE_MAX_PENDING bytes and drops (with a warning) beyond that.
 */
#ifndef HR_DAEMON_CONSOLE_H
#define HR_DAEMON_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#define HR_CONSOLE_MAX_PENDING (64u << 20)

struct hr_console;

/* Syntax check only: 0 or -EINVAL. */
int hr_console_check_spec(const char *spec);

/* Open a sink for VM vm.  0, -EINVAL (bad spec), -errno (file). */
int hr_console_open(struct hr_console **c_r, const char *spec, const char *vm);

/* An hr_console_sink_fn: opaque is the struct hr_console. */
void hr_console_sink(void *opaque, uint64_t offset, const void *buf, size_t len);

/* Flush (TCP: wait up to flush_ms for the sender) and free. */
void hr_console_close(struct hr_console *c, unsigned flush_ms);

#endif
