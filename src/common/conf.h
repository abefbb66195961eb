/*
 * conf.h - the reader of `key = value` configuration files (hareplicated's
 * hareplicated.conf(5)).  The reader knows the syntax; what a key means and
 * which values it takes is the caller's, through the same strict parsers
 * that check the command line (util.h).
 *
 * Syntax: one setting a line, `KEY = VALUE` (blanks around '=' optional);
 * KEY is [a-z0-9_-]; VALUE is the rest of the line without its leading and
 * trailing blanks, not empty, taken as it is (no quoting, and a '#' inside
 * it is part of it).  Blank lines and lines whose first non-blank is '#'
 * are comments.  A line is at most HR_CONF_LINE_MAX bytes; control
 * characters other than tab (and NUL) are refused.  A key may appear once.
 */
#ifndef HR_CONF_H
#define HR_CONF_H

#include <stddef.h>

#define HR_CONF_LINE_MAX 4096

/* Called for each setting in file order; 0 to go on, or a negative errno
 * with the reason (a sentence without the file and line) in why. */
typedef int (*hr_conf_fn)(void *arg, const char *key, const char *val, char *why, size_t n);

/* Read path and call fn for every setting.  0; -errno when the file cannot
 * be read (err: "PATH: reason"); -EINVAL for a syntax error, a repeated key
 * or a setting fn refused (err: "PATH:LINE: reason", fn's return value is
 * passed on). */
int hr_conf_read(const char *path, hr_conf_fn fn, void *arg, char *err, size_t errlen);

#endif
