/*
 * spec.h - the `--disk PATH[,readonly][,serial=S]` argument, one grammar for
 * every command and file that takes it (run, start, the VM definition).
 */
#ifndef HR_DISK_SPEC_H
#define HR_DISK_SPEC_H

#include <stddef.h>

#include "backends/backend.h"

#define HR_DISK_SERIAL_MAX 20 /* virtio-blk's GET_ID answer */

/* A parsed --disk: spec's strings point into buf. */
struct hr_disk_arg {
	struct hr_disk_spec spec;
	char buf[4096 + HR_DISK_SERIAL_MAX + 2];
};

/*
 * Parse "PATH[,readonly][,serial=S]" (a PATH with a comma cannot be
 * given).  S is 1..20 printable ASCII characters without spaces.  0, or
 * -EINVAL with why naming what is wrong.  The path is taken as given:
 * the caller makes it absolute (a daemon runs in /).
 */
int hr_disk_arg_parse(const char *arg, struct hr_disk_arg *d, char *why, size_t why_size);

/* The same argument back, for a request or a log ("PATH,readonly,serial=S"). */
int hr_disk_arg_format(const struct hr_disk_spec *s, char *out, size_t out_size);

#endif
