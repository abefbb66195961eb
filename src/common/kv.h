/*
 * kv.h - the line codec shared by the control protocol, the worker status
 * channel and the witness: one line of space-separated `key=value` pairs.
 * In keys and values every byte outside '!'..'~', and '%', '=' and ' ', is
 * written %XX (two hex digits), so a value may hold anything and a line
 * never holds a newline.  Decoding is strict: a bad escape or a pair without '=' is an error.
 */
#ifndef HR_COMMON_KV_H
#define HR_COMMON_KV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define HR_KV_MAX_PAIRS 64
#define HR_KV_MAX_LINE	(64 * 1024) /* longest line either side accepts */

/* A growing string (always NUL-terminated once anything was added). */
struct hr_sbuf {
	char *p;
	size_t len, cap;
	int oom; /* an allocation failed: contents truncated */
};

void hr_sbuf_addf(struct hr_sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hr_sbuf_add(struct hr_sbuf *sb, const char *s, size_t len);
void hr_sbuf_free(struct hr_sbuf *sb);

/* Append " key=value" (no leading space for the first pair), escaping both. */
void hr_kv_add(struct hr_sbuf *sb, const char *key, const char *val);
void hr_kv_addf(struct hr_sbuf *sb, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hr_kv_addu(struct hr_sbuf *sb, const char *key, uint64_t val);

/* A decoded line; keys and values point into buf. */
struct hr_kvline {
	char *buf;
	unsigned nr;
	struct {
		const char *key, *val;
	} kv[HR_KV_MAX_PAIRS];
};

/* Decode len bytes (no newline).  0, -EINVAL (malformed), -E2BIG, -ENOMEM. */
int hr_kv_parse(struct hr_kvline *l, const char *line, size_t len);
void hr_kv_free(struct hr_kvline *l);
/* Value of key, or NULL. */
const char *hr_kv_get(const struct hr_kvline *l, const char *key);
/* Unsigned decimal value of key: 0, -ENOENT, -EINVAL. */
int hr_kv_getu(const struct hr_kvline *l, const char *key, uint64_t *val_r);

#endif
