/*
 * witness-wire.c - the witness's lines (witness.h, docs/witness.md):
 * requests, replies and the persisted table, in the kv.h encoding.  Every
 * parser here is strict and bounded: a line it does not fully understand
 * is an error, never a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/kv.h"
#include "ha/witness.h"

static const char *const op_names[] = {
    [HR_WIT_REGISTER] = "register", [HR_WIT_CLAIM] = "claim", [HR_WIT_RELEASE] = "release",
    [HR_WIT_FORGET] = "forget",	    [HR_WIT_QUERY] = "query", [HR_WIT_LIST] = "list",
};

const char *hr_wit_op_name(enum hr_wit_op op)
{
	return (unsigned)op < sizeof(op_names) / sizeof(op_names[0]) ? op_names[op] : "?";
}

int hr_wit_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (!len || len > HR_WIT_NAME_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
	       len;
}

/* Copy sb into buf (size with NUL): the length, or -E2BIG / -ENOMEM. */
static int sbuf_out(struct hr_sbuf *sb, char *buf, size_t size)
{
	int rc = sb->oom ? -ENOMEM : sb->len >= size ? -E2BIG : (int)sb->len;
	if (rc >= 0)
		memcpy(buf, sb->p, sb->len + 1);
	hr_sbuf_free(sb);
	return rc;
}

int hr_wit_req_format(const struct hr_wit_req *req, char *buf, size_t size)
{
	struct hr_sbuf sb = {0};

	if ((unsigned)req->op > HR_WIT_LIST)
		return -EINVAL;
	hr_kv_add(&sb, "hrw", "1");
	hr_kv_add(&sb, "op", hr_wit_op_name(req->op));
	if (req->op != HR_WIT_LIST)
		hr_kv_add(&sb, "vm", req->vm);
	if (req->op != HR_WIT_LIST && req->op != HR_WIT_QUERY)
		hr_kv_add(&sb, "node", req->node);
	if (req->op == HR_WIT_REGISTER)
		hr_kv_add(&sb, "backup", req->peer);
	if (req->op == HR_WIT_CLAIM) {
		hr_kv_add(&sb, "primary", req->peer);
		hr_kv_addu(&sb, "lease_ms", req->lease_ms);
	}
	return sbuf_out(&sb, buf, size);
}

static __attribute__((format(printf, 3, 4))) int fail(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;
	if (size) {
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A name-valued key: must be there; empty only when may_be_empty. */
static int get_name(const struct hr_kvline *l, const char *key, int may_be_empty, char *dst)
{
	const char *v = hr_kv_get(l, key);
	if (!v || (!*v && !may_be_empty) || (*v && !hr_wit_name_ok(v)))
		return -EINVAL;
	snprintf(dst, HR_WIT_NAME_MAX + 1, "%s", v);
	return 0;
}

int hr_wit_req_parse(const char *line, size_t len, struct hr_wit_req *req, char *err,
		     size_t err_size)
{
	struct hr_kvline l;
	const char *v;
	unsigned op;
	int rc;

	memset(req, 0, sizeof(*req));
	if (len >= HR_WIT_LINE_MAX) {
		fail(err, err_size, "request line too long (limit %d bytes)", HR_WIT_LINE_MAX);
		return -E2BIG;
	}
	rc = hr_kv_parse(&l, line, len);
	if (rc < 0)
		return fail(err, err_size, "malformed request (key=value pairs, %%XX escapes)");
	v = hr_kv_get(&l, "hrw");
	if (!v || strcmp(v, "1")) {
		fail(err, err_size, "unsupported protocol version (this witness speaks hrw=1)");
		rc = -HR_EVERSION;
		goto out;
	}
	v = hr_kv_get(&l, "op");
	for (op = 0; op <= HR_WIT_LIST && v; op++)
		if (!strcmp(v, op_names[op]))
			break;
	if (!v || op > HR_WIT_LIST) {
		rc = fail(err, err_size,
			  "unknown op (register, claim, release, forget, query, list)");
		goto out;
	}
	req->op = (enum hr_wit_op)op;
	rc = -EINVAL;
	if (req->op != HR_WIT_LIST && get_name(&l, "vm", 0, req->vm) < 0) {
		fail(err, err_size, "missing or bad vm= (names: [A-Za-z0-9_.-], 1..64)");
		goto out;
	}
	if (req->op != HR_WIT_LIST && req->op != HR_WIT_QUERY &&
	    get_name(&l, "node", 0, req->node) < 0) {
		fail(err, err_size, "missing or bad node= (names: [A-Za-z0-9_.-], 1..64)");
		goto out;
	}
	if (req->op == HR_WIT_REGISTER && get_name(&l, "backup", 1, req->peer) < 0) {
		fail(err, err_size, "missing or bad backup= (a node name, or empty)");
		goto out;
	}
	if (req->op == HR_WIT_CLAIM) {
		if (get_name(&l, "primary", 1, req->peer) < 0) {
			fail(err, err_size, "missing or bad primary= (a node name, or empty)");
			goto out;
		}
		if (hr_kv_getu(&l, "lease_ms", &req->lease_ms) < 0) {
			fail(err, err_size, "missing or bad lease_ms= (decimal milliseconds)");
			goto out;
		}
	}
	if (req->peer[0] && !strcmp(req->peer, req->node)) {
		fail(err, err_size, "a node cannot be its own primary or backup");
		goto out;
	}
	rc = 0;
out:
	hr_kv_free(&l);
	return rc;
}

static void reply_pairs(struct hr_sbuf *sb, const struct hr_wit_reply *rep, size_t why_max)
{
	hr_kv_add(sb, "hrw", "1");
	hr_kv_addu(sb, "granted", rep->granted ? 1 : 0);
	if (rep->vm[0])
		hr_kv_add(sb, "vm", rep->vm);
	hr_kv_add(sb, "owner", rep->owner);
	hr_kv_add(sb, "backup", rep->backup);
	hr_kv_add(sb, "holder", rep->holder);
	hr_kv_addu(sb, "term", rep->term);
	hr_kv_addu(sb, "lease_ms", rep->lease_ms);
	hr_kv_addu(sb, "remaining_ms", rep->remaining_ms);
	if (rep->why[0])
		hr_kv_addf(sb, "why", "%.*s", (int)why_max, rep->why);
}

int hr_wit_reply_format(const struct hr_wit_reply *rep, char *buf, size_t size)
{
	/* names are bounded; only why can make the line long: cut it until it fits */
	for (size_t why_max = sizeof(rep->why);; why_max = why_max > 16 ? why_max - 16 : 0) {
		struct hr_sbuf sb = {0};
		reply_pairs(&sb, rep, why_max);
		int rc = sbuf_out(&sb, buf, size);
		if (rc != -E2BIG || !why_max)
			return rc;
	}
}

int hr_wit_error_format(const char *err, char *buf, size_t size)
{
	struct hr_sbuf sb = {0};
	hr_kv_add(&sb, "hrw", "1");
	hr_kv_addf(&sb, "error", "%.150s", err);
	return sbuf_out(&sb, buf, size);
}

static int get_u64(const struct hr_kvline *l, const char *key, uint64_t *v)
{
	return hr_kv_getu(l, key, v) < 0 ? -HR_EPROTO : 0;
}

int hr_wit_reply_parse(const char *line, size_t len, struct hr_wit_reply *rep)
{
	struct hr_kvline l;
	const char *v, *g;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (len >= HR_WIT_LINE_MAX || hr_kv_parse(&l, line, len) < 0)
		return -HR_EPROTO;
	v = hr_kv_get(&l, "hrw");
	rc = -HR_EVERSION;
	if (!v || strcmp(v, "1"))
		goto out;
	v = hr_kv_get(&l, "error");
	if (v) {
		snprintf(rep->why, sizeof(rep->why), "%s", v);
		rc = -EINVAL;
		goto out;
	}
	rc = -HR_EPROTO;
	g = hr_kv_get(&l, "granted");
	if (!g || (strcmp(g, "0") && strcmp(g, "1")))
		goto out;
	rep->granted = g[0] == '1';
	if (get_name(&l, "owner", 1, rep->owner) < 0 ||
	    get_name(&l, "backup", 1, rep->backup) < 0 ||
	    get_name(&l, "holder", 1, rep->holder) < 0 || get_u64(&l, "term", &rep->term) < 0 ||
	    get_u64(&l, "lease_ms", &rep->lease_ms) < 0 ||
	    get_u64(&l, "remaining_ms", &rep->remaining_ms) < 0)
		goto out;
	if (hr_kv_get(&l, "vm") && get_name(&l, "vm", 0, rep->vm) < 0)
		goto out;
	v = hr_kv_get(&l, "why");
	snprintf(rep->why, sizeof(rep->why), "%s", v ? v : "");
	rc = 0;
out:
	hr_kv_free(&l);
	return rc;
}

int hr_wit_table_dump(const struct hr_wit_table *t, char **text_r, size_t *len_r)
{
	struct hr_sbuf sb = {0};

	hr_sbuf_add(&sb, "hrw-table=1\n", 12);
	for (unsigned i = 0; i < t->nr; i++) {
		const struct hr_wit_rec *r = &t->recs[i];
		struct hr_sbuf line = {0};
		hr_kv_add(&line, "vm", r->vm);
		hr_kv_add(&line, "owner", r->owner);
		hr_kv_add(&line, "backup", r->backup);
		hr_kv_add(&line, "holder", r->holder);
		hr_kv_addu(&line, "term", r->term);
		hr_kv_addu(&line, "lease_ms", r->lease_ms);
		hr_sbuf_addf(&sb, "%s\n", line.p ? line.p : "");
		if (line.oom)
			sb.oom = 1;
		hr_sbuf_free(&line);
	}
	if (sb.oom) {
		hr_sbuf_free(&sb);
		return -ENOMEM;
	}
	*text_r = sb.p;
	*len_r = sb.len;
	return 0;
}

static int load_line(struct hr_wit_table *t, const char *line, size_t len, uint64_t now_ms)
{
	struct hr_wit_rec r = {0};
	struct hr_kvline l;
	int rc = -EINVAL;

	if (hr_kv_parse(&l, line, len) < 0)
		return -EINVAL;
	if (get_name(&l, "vm", 0, r.vm) < 0 || get_name(&l, "owner", 0, r.owner) < 0 ||
	    get_name(&l, "backup", 1, r.backup) < 0 || get_name(&l, "holder", 1, r.holder) < 0 ||
	    hr_kv_getu(&l, "term", &r.term) < 0 || hr_kv_getu(&l, "lease_ms", &r.lease_ms) < 0 ||
	    !r.term || hr_wit_table_find(t, r.vm))
		goto out;
	if (r.holder[0]) {
		/* held at the last save: a full lease from now, the longest it may run */
		if (r.lease_ms < HR_WIT_LEASE_MIN_MS || r.lease_ms > HR_WIT_LEASE_MAX_MS)
			goto out;
		r.expiry_ms = now_ms + r.lease_ms;
	}
	rc = -ENOSPC;
	if (t->nr == HR_WIT_MAX_RECORDS)
		goto out;
	if (t->nr == t->cap) {
		unsigned cap = t->cap ? 2 * t->cap : 16;
		struct hr_wit_rec *p = realloc(t->recs, cap * sizeof(*p));
		rc = -ENOMEM;
		if (!p)
			goto out;
		t->recs = p;
		t->cap = cap;
	}
	t->recs[t->nr++] = r;
	rc = 0;
out:
	hr_kv_free(&l);
	return rc;
}

int hr_wit_table_load(struct hr_wit_table *t, const char *text, size_t len, uint64_t now_ms,
		      unsigned *line_r)
{
	const char *p = text, *end = text + len;
	unsigned n = 0;
	int rc = 0;

	hr_wit_table_init(t);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		n++;
		if (!nl || ll >= HR_WIT_LINE_MAX)
			rc = -EINVAL; /* every line ends in a newline: a cut file is bad */
		else if (n == 1)
			rc = ll == 11 && !memcmp(p, "hrw-table=1", 11) ? 0 : -EINVAL;
		else
			rc = load_line(t, p, ll, now_ms);
		if (rc < 0)
			break;
		p += ll + 1;
	}
	if (!rc && !n)
		rc = -EINVAL; /* not even the header */
	if (rc < 0) {
		hr_wit_table_free(t);
		*line_r = n ? n : 1;
	}
	return rc;
}
