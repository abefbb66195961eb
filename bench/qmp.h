/*
 * qmp.h - the benchmarks' QEMU Machine Protocol client (b-dirty, b-migrate):
 * one Unix-socket connection, one line at a time, events skipped.
 */
#ifndef HR_BENCH_QMP_H
#define HR_BENCH_QMP_H

#include <stddef.h>

struct qmp {
	int fd;
	char buf[65536];
	size_t len;
};

/* Connect to QEMU's `-qmp unix:PATH,server=on,wait=off` (retrying until
 * timeout_s), read the greeting and enter command mode.  0 or -errno. */
int qmp_open(struct qmp *q, const char *path, double timeout_s);
/* One '\n'-terminated line into line (NUL-terminated, no newline; an
 * over-long one is dropped), waiting at most timeout_ms.  0 or -errno. */
int qmp_line(struct qmp *q, char *line, size_t cap, int timeout_ms);
/* Send cmd and wait for its reply line (events skipped) into reply (may be
 * NULL).  0, -EPROTO on an "error" reply (printed, prefixed with who). */
int qmp_cmd(struct qmp *q, const char *who, const char *cmd, char *reply, size_t cap);
/* Does the first 64 KiB of the file at path contain needle? */
int file_has(const char *path, const char *needle);

#endif
