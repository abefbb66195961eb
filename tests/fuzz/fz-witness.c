/*
 * fz-witness.c - fuzz target: the witness's line format (ha/witness-wire.c).
 *
 * Input: the bytes of one line, or of a saved table.  They go through
 *  - hr_wit_req_parse (what the witness reads from a client); a request
 *    that parses is formatted again and must parse to the same request,
 *    and is applied to a table as the witness would;
 *  - hr_wit_reply_parse (what a client reads back); a granted reply is
 *    formatted again and must parse to the same fields;
 *  - hr_wit_table_load (the witness's saved table); a table that loads is
 *    dumped and must load again with as many records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/witness.h"
#include "fuzz.h"

static void req(const char *line, size_t len, struct hr_wit_table *t)
{
	struct hr_wit_req a, b;
	struct hr_wit_reply rep;
	char err[160], buf[HR_WIT_LINE_MAX];
	unsigned ev;
	int n;

	memset(&a, 0, sizeof(a));
	if (hr_wit_req_parse(line, len, &a, err, sizeof(err)) < 0)
		return;
	n = hr_wit_req_format(&a, buf, sizeof(buf));
	if (n >= 0) {
		memset(&b, 0, sizeof(b));
		if (hr_wit_req_parse(buf, (size_t)n, &b, err, sizeof(err)) < 0 || a.op != b.op ||
		    strcmp(a.vm, b.vm) || strcmp(a.node, b.node) || strcmp(a.peer, b.peer) ||
		    a.lease_ms != b.lease_ms)
			__builtin_trap();
	}
	hr_wit_table_apply(t, &a, 1000, &rep, &ev);
	hr_wit_table_expire(t, 1000 + HR_WIT_LEASE_MAX_MS + 1, NULL, NULL);
}

static void reply(const char *line, size_t len)
{
	struct hr_wit_reply a, b;
	char buf[HR_WIT_LINE_MAX];
	int n;

	memset(&a, 0, sizeof(a));
	if (hr_wit_reply_parse(line, len, &a) < 0 || !a.granted)
		return;
	n = hr_wit_reply_format(&a, buf, sizeof(buf));
	if (n < 0)
		return;
	memset(&b, 0, sizeof(b));
	if (hr_wit_reply_parse(buf, (size_t)n, &b) < 0 || b.granted != a.granted ||
	    strcmp(a.owner, b.owner) || strcmp(a.backup, b.backup) || strcmp(a.holder, b.holder) ||
	    a.term != b.term || a.lease_ms != b.lease_ms)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hr_wit_table t, u;
	unsigned bad;
	char *text;
	size_t len;

	hr_wit_table_init(&t);
	if (hr_wit_table_load(&t, (const char *)data, size, 5000, &bad) == 0 &&
	    hr_wit_table_dump(&t, &text, &len) == 0) {
		hr_wit_table_init(&u);
		if (hr_wit_table_load(&u, text, len, 5000, &bad) < 0 || u.nr != t.nr)
			__builtin_trap();
		hr_wit_table_free(&u);
		free(text);
	}
	req((const char *)data, size, &t);
	reply((const char *)data, size);
	hr_wit_table_free(&t);
	return 0;
}

int fz_make_seeds(const char *dir)
{
	static const struct hr_wit_req reqs[] = {
	    {HR_WIT_REGISTER, "web-1", "node-a", "node-b", 0},
	    {HR_WIT_CLAIM, "web-1", "node-a", "", 3000},
	    {HR_WIT_CLAIM, "web-1", "node-b", "node-a", 3000},
	    {HR_WIT_RELEASE, "web-1", "node-a", "", 0},
	    {HR_WIT_FORGET, "web-1", "node-a", "", 0},
	    {HR_WIT_QUERY, "web-1", "node-b", "", 0},
	};
	struct hr_wit_table t;
	struct hr_wit_reply rep;
	char buf[HR_WIT_LINE_MAX], name[32], *text;
	size_t len;
	unsigned ev;
	int n, rc = 0;

	/* each request, the witness's reply to it, and the table it leaves */
	hr_wit_table_init(&t);
	for (size_t i = 0; !rc && i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		if ((n = hr_wit_req_format(&reqs[i], buf, sizeof(buf))) < 0)
			rc = n;
		snprintf(name, sizeof(name), "req-%zu-%s", i, hr_wit_op_name(reqs[i].op));
		rc = rc ?: fz_seed(dir, name, buf, (size_t)n);
		hr_wit_table_apply(&t, &reqs[i], 1000 * (i + 1), &rep, &ev);
		if (!rc && (n = hr_wit_reply_format(&rep, buf, sizeof(buf))) >= 0) {
			snprintf(name, sizeof(name), "reply-%zu", i);
			rc = fz_seed(dir, name, buf, (size_t)n);
		}
		if (!rc && i == 2 && !(rc = hr_wit_table_dump(&t, &text, &len))) {
			rc = fz_seed(dir, "table", text, len);
			free(text);
		}
	}
	hr_wit_table_free(&t);
	if (!rc && (n = hr_wit_error_format("unknown vm", buf, sizeof(buf))) >= 0)
		rc = fz_seed(dir, "error", buf, (size_t)n);
	return rc;
}
