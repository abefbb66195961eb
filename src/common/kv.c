/* kv.c - the `key=value` line codec (see kv.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/kv.h"

static int sbuf_grow(struct hr_sbuf *sb, size_t more)
{
	if (sb->oom)
		return -ENOMEM;
	if (sb->len + more + 1 <= sb->cap)
		return 0;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + more + 1)
		cap *= 2;
	char *p = realloc(sb->p, cap);
	if (!p) {
		sb->oom = 1;
		return -ENOMEM;
	}
	sb->p = p;
	sb->cap = cap;
	return 0;
}

void hr_sbuf_add(struct hr_sbuf *sb, const char *s, size_t len)
{
	if (sbuf_grow(sb, len) < 0)
		return;
	memcpy(sb->p + sb->len, s, len);
	sb->len += len;
	sb->p[sb->len] = '\0';
}

static void sbuf_vaddf(struct hr_sbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || sbuf_grow(sb, (size_t)n) < 0)
		return;
	vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void hr_sbuf_addf(struct hr_sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void hr_sbuf_free(struct hr_sbuf *sb)
{
	free(sb->p);
	memset(sb, 0, sizeof(*sb));
}

static void add_escaped(struct hr_sbuf *sb, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c > ' ' && *c <= '~' && *c != '%' && *c != '=') {
			hr_sbuf_add(sb, (const char *)c, 1);
		} else {
			char esc[4];
			snprintf(esc, sizeof(esc), "%%%02X", *c);
			hr_sbuf_add(sb, esc, 3);
		}
	}
}

void hr_kv_add(struct hr_sbuf *sb, const char *key, const char *val)
{
	if (sb->len)
		hr_sbuf_add(sb, " ", 1);
	add_escaped(sb, key);
	hr_sbuf_add(sb, "=", 1);
	add_escaped(sb, val ? val : "");
}

void hr_kv_addf(struct hr_sbuf *sb, const char *key, const char *fmt, ...)
{
	struct hr_sbuf v = {0};
	va_list ap;
	va_start(ap, fmt);
	sbuf_vaddf(&v, fmt, ap);
	va_end(ap);
	hr_kv_add(sb, key, v.p ? v.p : "");
	if (v.oom)
		sb->oom = 1;
	hr_sbuf_free(&v);
}

void hr_kv_addu(struct hr_sbuf *sb, const char *key, uint64_t val)
{
	hr_kv_addf(sb, key, "%llu", (unsigned long long)val);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX in place; -EINVAL on a bad escape or a raw byte that must be escaped. */
static int unescape(char *s)
{
	char *out = s;
	for (char *in = s; *in; in++) {
		if (*in == '%') {
			int hi = hexval(in[1]), lo = hi < 0 ? -1 : hexval(in[2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			*out++ = (char)(hi << 4 | lo);
			in += 2;
		} else if ((unsigned char)*in <= ' ' || (unsigned char)*in > '~') {
			return -EINVAL;
		} else {
			*out++ = *in;
		}
	}
	*out = '\0';
	return 0;
}

int hr_kv_parse(struct hr_kvline *l, const char *line, size_t len)
{
	memset(l, 0, sizeof(*l));
	if (len > HR_KV_MAX_LINE)
		return -E2BIG;
	l->buf = malloc(len + 1);
	if (!l->buf)
		return -ENOMEM;
	memcpy(l->buf, line, len);
	l->buf[len] = '\0';
	if (len && l->buf[len - 1] == '\r')
		l->buf[len - 1] = '\0';
	if (memchr(line, '\0', len))
		goto bad;

	char *save = NULL;
	for (char *tok = strtok_r(l->buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			goto bad;
		if (l->nr == HR_KV_MAX_PAIRS) {
			hr_kv_free(l);
			return -E2BIG;
		}
		*eq = '\0';
		if (unescape(tok) < 0 || unescape(eq + 1) < 0)
			goto bad;
		l->kv[l->nr].key = tok;
		l->kv[l->nr].val = eq + 1;
		l->nr++;
	}
	return 0;
bad:
	hr_kv_free(l);
	return -EINVAL;
}

void hr_kv_free(struct hr_kvline *l)
{
	free(l->buf);
	memset(l, 0, sizeof(*l));
}

const char *hr_kv_get(const struct hr_kvline *l, const char *key)
{
	for (unsigned i = 0; i < l->nr; i++)
		if (!strcmp(l->kv[i].key, key))
			return l->kv[i].val;
	return NULL;
}

int hr_kv_getu(const struct hr_kvline *l, const char *key, uint64_t *val_r)
{
	const char *v = hr_kv_get(l, key);
	if (!v)
		return -ENOENT;
	return hr_parse_count(v, 0, UINT64_MAX, val_r) < 0 ? -EINVAL : 0;
}
