/*
 * spec.c - the --disk argument (spec.h).
 */
#include "disk/spec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int serial_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > HR_DISK_SERIAL_MAX)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~')
			return 0;
	return 1;
}

int hr_disk_arg_parse(const char *arg, struct hr_disk_arg *d, char *why, size_t why_size)
{
	memset(d, 0, sizeof(*d));
	if (!arg || !*arg || *arg == ',') {
		snprintf(why, why_size, "a disk needs a path (PATH[,readonly][,serial=S])");
		return -EINVAL;
	}
	if (strlen(arg) >= sizeof(d->buf)) {
		snprintf(why, why_size, "too long");
		return -EINVAL;
	}
	memcpy(d->buf, arg, strlen(arg) + 1);
	char *save = NULL, *tok = strtok_r(d->buf, ",", &save);
	d->spec.path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "readonly") || !strcmp(tok, "ro")) {
			if (d->spec.readonly) {
				snprintf(why, why_size, "readonly given twice");
				return -EINVAL;
			}
			d->spec.readonly = 1;
		} else if (!strncmp(tok, "serial=", 7)) {
			if (d->spec.serial) {
				snprintf(why, why_size, "serial given twice");
				return -EINVAL;
			}
			if (!serial_ok(tok + 7)) {
				snprintf(why, why_size,
					 "serial '%s': 1..%d printable characters, no spaces",
					 tok + 7, HR_DISK_SERIAL_MAX);
				return -EINVAL;
			}
			d->spec.serial = tok + 7;
		} else {
			snprintf(why, why_size,
				 "unknown disk option '%s' (readonly, serial=S; a path cannot "
				 "contain a comma)",
				 tok);
			return -EINVAL;
		}
	}
	return 0;
}

int hr_disk_arg_format(const struct hr_disk_spec *s, char *out, size_t out_size)
{
	int n = snprintf(out, out_size, "%s%s%s%s", s->path, s->readonly ? ",readonly" : "",
			 s->serial ? ",serial=" : "", s->serial ? s->serial : "");
	return n < 0 || (size_t)n >= out_size ? -ENAMETOOLONG : 0;
}
