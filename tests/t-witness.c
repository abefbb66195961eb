/*
 * t-witness.c - the witness's decision table with a fake clock (every rule
 * of docs/witness.md), the persisted table, the client's lease arithmetic,
 * and the line parsers fed hostile input: over-long lines, missing keys,
 * bad names, unknown ops, other versions, garbage bytes, huge numbers.
 * Each must be answered with an error, never a crash or a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "common/err.h"
#include "ha/witness.h"

static struct hr_wit_table T;
static struct hr_wit_reply R;
static unsigned EV;

static int do_req(enum hr_wit_op op, const char *vm, const char *node, const char *peer,
		  uint64_t lease_ms, uint64_t now_ms)
{
	struct hr_wit_req req = {.op = op, .lease_ms = lease_ms};
	snprintf(req.vm, sizeof(req.vm), "%s", vm);
	snprintf(req.node, sizeof(req.node), "%s", node);
	snprintf(req.peer, sizeof(req.peer), "%s", peer);
	return hr_wit_table_apply(&T, &req, now_ms, &R, &EV);
}

#define REG(vm, node, backup, now)	  do_req(HR_WIT_REGISTER, vm, node, backup, 0, now)
#define CLAIM(vm, node, primary, ms, now) do_req(HR_WIT_CLAIM, vm, node, primary, ms, now)

static int is(const char *owner, const char *backup, const char *holder, uint64_t term)
{
	int good = !strcmp(R.owner, owner) && !strcmp(R.backup, backup) &&
		   !strcmp(R.holder, holder) && R.term == term;
	if (!good)
		diag("got granted=%d owner=%s backup=%s holder=%s term=%llu why=%s", R.granted,
		     R.owner, R.backup, R.holder, (unsigned long long)R.term, R.why);
	return good;
}

static void test_table(void)
{
	uint64_t t = 1000000; /* the fake clock, ms */

	hr_wit_table_init(&T);
	ok(!REG("vm1", "A", "B", t) && R.granted && is("A", "B", "", 1) &&
	       (EV & HR_WIT_EV_CREATED) && (EV & HR_WIT_EV_PERSIST),
	   "register: a new record, owner A backup B term 1");
	ok(!REG("vm1", "A", "B", t) && R.granted && is("A", "B", "", 1) &&
	       !(EV & HR_WIT_EV_PERSIST),
	   "register again: nothing changes, nothing to save");
	ok(!REG("vm1", "B", "A", t) && !R.granted && !strcmp(R.why, "owner is A") &&
	       (EV & HR_WIT_EV_DENIED),
	   "register by another node: denied, owner is A (a stale primary)");
	ok(!REG("vm1", "A", "C", t) && R.granted && is("A", "C", "", 2),
	   "register with a new backup: term + 1");
	ok(!CLAIM("vm1", "B", "A", 1500, t) && !R.granted &&
	       !strcmp(R.why, "stale backup: owner A's backup is C") && is("A", "C", "", 2),
	   "claim by an old backup: denied, names the real backup");
	ok(!CLAIM("vm1", "C", "A", 1500, t) && R.granted && is("C", "", "C", 3) &&
	       R.lease_ms == 1500 && R.remaining_ms == 1500 && (EV & HR_WIT_EV_OWNER) &&
	       (EV & HR_WIT_EV_LEASE_NEW),
	   "claim by the backup: granted, C owns without backup, term 3, lease 1500 ms");
	ok(!CLAIM("vm1", "A", "", 1500, t + 500) && !R.granted &&
	       !strcmp(R.why, "lease held by C for 1000 ms"),
	   "claim by the old primary during C's lease: denied, lease held by C for 1000 ms");
	ok(!CLAIM("vm1", "C", "A", 1500, t + 10) && R.granted && is("C", "", "C", 3),
	   "the backup's claim asked again (reply lost): granted, nothing changes");
	ok(!CLAIM("vm1", "C", "", 1500, t + 1000) && R.granted && (EV & HR_WIT_EV_RENEWED) &&
	       !(EV & HR_WIT_EV_PERSIST) && R.remaining_ms == 1500,
	   "the holder renews: granted from now, same length: nothing to save");
	ok(hr_wit_table_next_expiry(&T) == t + 2500, "next expiry is the renewed lease's end");
	ok(!CLAIM("vm1", "A", "", 1500, t + 2500) && !R.granted &&
	       !strcmp(R.why, "stale primary: owner is C") && (EV & HR_WIT_EV_EXPIRED) &&
	       is("C", "", "", 3),
	   "after the lease ends the old primary is still denied: owner is C");
	ok(!CLAIM("vm1", "C", "", 5, t + 3000) && R.lease_ms == HR_WIT_LEASE_MIN_MS &&
	       !CLAIM("vm1", "C", "", 1ull << 62, t + 3000) && R.lease_ms == HR_WIT_LEASE_MAX_MS,
	   "requested leases are clamped to [100, 60000] ms");

	/* expiry, then the backup of a registered pair takes over */
	ok(!REG("vm2", "A", "B", t) && !CLAIM("vm2", "A", "", 2000, t) && R.granted &&
	       is("A", "", "A", 2),
	   "the primary claims (its backup is lost): granted, backup dropped, term 2");
	ok(!CLAIM("vm2", "B", "A", 2000, t + 100) && !R.granted &&
	       !strncmp(R.why, "lease held by A", 15),
	   "its backup cannot promote while the primary holds the lease");
	unsigned n = 0;
	ok(hr_wit_table_expire(&T, t + 1999, NULL, NULL) == 0, "expire before the end: nothing");
	n = hr_wit_table_expire(&T, t + 2000, NULL, NULL);
	ok(n == 1 && !hr_wit_table_find(&T, "vm2")->holder[0] &&
	       hr_wit_table_next_expiry(&T) == t + 3000 + HR_WIT_LEASE_MAX_MS,
	   "expire at the end clears that lease, not vm1's 60 s one (%u)", n);
	ok(!CLAIM("vm2", "B", "A", 2000, t + 2001) && !R.granted &&
	       !strcmp(R.why, "stale backup: owner A has no backup"),
	   "...and then the backup is stale: owner A has no backup (its copy fell behind)");

	/* a registered pair: backup promotes after the primary died, no lease around */
	ok(!REG("vm3", "A", "B", t) && !CLAIM("vm3", "B", "A", 1000, t) && R.granted &&
	       is("B", "", "B", 2),
	   "backup of a protected pair promotes: owner B, term 2");
	ok(!CLAIM("vm3", "B", "A", 1000, t + 500) && R.granted && (EV & HR_WIT_EV_RENEWED),
	   "...and renews with the same request");
	ok(!REG("vm3", "B", "A", t + 600) && R.granted && is("B", "A", "", 3) &&
	       (EV & HR_WIT_EV_DROPPED),
	   "B registers A as its new backup: protected again, its lease dropped, term 3");
	ok(!REG("vm3", "A", "B", t + 700) && !R.granted && !strcmp(R.why, "owner is B"),
	   "the old primary's register is denied");

	/* unknown VMs */
	ok(!CLAIM("vm4", "B", "A", 1000, t) && !R.granted && !strncmp(R.why, "unknown VM", 10) &&
	       !hr_wit_table_find(&T, "vm4"),
	   "claim to promote an unknown VM: denied, no record");
	ok(!CLAIM("vm4", "A", "", 1000, t) && R.granted && is("A", "", "A", 1),
	   "claim by the primary of an unknown VM: created, A holds");
	ok(!do_req(HR_WIT_QUERY, "nope", "", "", 0, t) && !R.granted &&
	       !strcmp(R.why, "unknown VM"),
	   "query of an unknown VM: not granted");
	ok(!do_req(HR_WIT_QUERY, "vm4", "", "", 0, t + 400) && R.granted && is("A", "", "A", 1) &&
	       R.remaining_ms == 600 && !(EV & HR_WIT_EV_PERSIST),
	   "query: the record and the lease left (600 ms), read only");

	/* release and forget */
	ok(!do_req(HR_WIT_RELEASE, "vm4", "B", "", 0, t) && !R.granted && is("A", "", "A", 1),
	   "release by a node that holds nothing: a no-op");
	ok(!do_req(HR_WIT_RELEASE, "vm4", "A", "", 0, t) && R.granted && is("A", "", "", 1) &&
	       (EV & HR_WIT_EV_DROPPED),
	   "release by the holder: lease gone");
	ok(!do_req(HR_WIT_FORGET, "vm4", "B", "", 0, t) && !R.granted &&
	       hr_wit_table_find(&T, "vm4"),
	   "forget by a node that does not own the VM: denied");
	ok(!do_req(HR_WIT_FORGET, "vm4", "A", "", 0, t) && R.granted &&
	       !hr_wit_table_find(&T, "vm4") && (EV & HR_WIT_EV_DELETED),
	   "forget by the owner: the record is gone");
	ok(!do_req(HR_WIT_FORGET, "vm4", "A", "", 0, t) && R.granted, "forget again: fine");

	/* malformed requests */
	ok(do_req(HR_WIT_REGISTER, "../etc", "A", "", 0, t) == -EINVAL &&
	       do_req(HR_WIT_REGISTER, "vm5", "-A", "", 0, t) == -EINVAL &&
	       do_req(HR_WIT_REGISTER, "vm5", "A", "A", 0, t) == -EINVAL &&
	       do_req(HR_WIT_CLAIM, "vm5", "A", "b c", 1000, t) == -EINVAL &&
	       do_req((enum hr_wit_op)77, "vm5", "A", "", 0, t) == -EINVAL &&
	       do_req(HR_WIT_LIST, "vm5", "A", "", 0, t) == -EINVAL &&
	       !hr_wit_table_find(&T, "vm5"),
	   "bad names, own backup, unknown op: -EINVAL, table untouched");

	/* persistence */
	char *text;
	size_t len;
	struct hr_wit_table back;
	unsigned line;
	CLAIM("vm1", "C", "", 1500, t + 5000); /* C holds vm1 again */
	ok(!hr_wit_table_dump(&T, &text, &len) && !strncmp(text, "hrw-table=1\n", 12) &&
	       !hr_wit_table_load(&back, text, len, 50, &line) && back.nr == T.nr,
	   "the table dumps and loads back (%u records)", T.nr);
	struct hr_wit_rec *r1 = hr_wit_table_find(&back, "vm1"),
			  *r3 = hr_wit_table_find(&back, "vm3");
	ok(r1 && !strcmp(r1->holder, "C") && r1->expiry_ms == 50 + 1500 && r1->term == 3 && r3 &&
	       !strcmp(r3->owner, "B") && !strcmp(r3->backup, "A") && !r3->holder[0],
	   "loaded: a held lease runs a full lease from the load, the rest as saved");
	hr_wit_table_free(&back);
	free(text);
	static const char *const bad_tables[] = {
	    "",
	    "hrw-table=2\n",
	    "hrw-table=1\nvm=a owner=A backup= holder= term=1 lease_ms=0", /* cut */
	    "hrw-table=1\nvm=a owner=A backup= holder= term=0 lease_ms=0\n",
	    "hrw-table=1\nvm=a owner=A backup= holder=A term=1 lease_ms=0\n",
	    "hrw-table=1\nvm=a owner= backup= holder= term=1 lease_ms=0\n",
	    "hrw-table=1\nvm=a owner=A backup= holder= term=1 lease_ms=0\n"
	    "vm=a owner=B backup= holder= term=1 lease_ms=0\n",
	    "hrw-table=1\nvm=a owner=A backup= holder= term=1\n",
	    "hrw-table=1\n\xff\xfe\n",
	};
	int all_bad = 1;
	for (unsigned i = 0; i < sizeof(bad_tables) / sizeof(bad_tables[0]); i++) {
		int rc = hr_wit_table_load(&back, bad_tables[i], strlen(bad_tables[i]), 0, &line);
		if (rc != -EINVAL || back.nr) {
			diag("bad table %u loaded (rc %d)", i, rc);
			all_bad = 0;
		}
	}
	ok(all_bad, "cut, duplicate, versioned and malformed tables are refused");

	/* a full table */
	hr_wit_table_free(&T);
	int full_ok = 1;
	for (unsigned i = 0; i < HR_WIT_MAX_RECORDS && full_ok; i++) {
		char vm[16];
		snprintf(vm, sizeof(vm), "v%u", i);
		full_ok = !REG(vm, "A", "", t) && R.granted;
	}
	ok(full_ok && REG("one-more", "A", "", t) == -ENOSPC && !R.granted &&
	       CLAIM("one-more", "A", "", 1000, t) == -ENOSPC && T.nr == HR_WIT_MAX_RECORDS,
	   "the table stops at %u VMs: -ENOSPC, denied", HR_WIT_MAX_RECORDS);
	hr_wit_table_free(&T);
}

static void test_lease_math(void)
{
	uint64_t s = 5000000000ull;
	ok(hr_witness_lease_expiry_ns(s, 1500) == s + 1350 * 1000000ull &&
	       hr_witness_lease_expiry_ns(s, 300) == s + 250 * 1000000ull &&
	       hr_witness_lease_expiry_ns(s, 50) == s && hr_witness_lease_expiry_ns(s, 0) == s,
	   "client expiry: sent + lease - max(lease/10, 50 ms); a tiny lease is expired at once");
	int before = 1;
	for (uint64_t ms = HR_WIT_LEASE_MIN_MS; ms <= HR_WIT_LEASE_MAX_MS; ms += 7)
		before &= hr_witness_lease_expiry_ns(s, ms) < s + ms * 1000000ull;
	ok(before, "for every lease length the client's end comes before the witness's");
	ok(hr_witness_lease_ms(0, 500) == 1000 && hr_witness_lease_ms(0, 2000) == 4000 &&
	       hr_witness_lease_ms(300, 2000) == 300 && hr_witness_lease_ms(0, 1000000) == 60000,
	   "default lease: 2 x failover timeout, at least 1000, at most 60000");
}

#define RP(s) hr_wit_reply_parse(s, strlen(s), &rback)

static int parse(const char *line, struct hr_wit_req *req)
{
	char err[160];
	return hr_wit_req_parse(line, strlen(line), req, err, sizeof(err));
}

static void test_wire(void)
{
	struct hr_wit_req req, back;
	struct hr_wit_reply rep, rback;
	char line[HR_WIT_LINE_MAX], big[2048];
	int len, all = 1;

	for (int op = HR_WIT_REGISTER; op <= HR_WIT_LIST; op++) {
		memset(&req, 0, sizeof(req));
		req.op = (enum hr_wit_op)op;
		strcpy(req.vm, "vm-1.a_b");
		if (op != HR_WIT_QUERY && op != HR_WIT_LIST)
			strcpy(req.node, "node2");
		if (op == HR_WIT_REGISTER || op == HR_WIT_CLAIM)
			strcpy(req.peer, "node1");
		req.lease_ms = op == HR_WIT_CLAIM ? 1500 : 0;
		len = hr_wit_req_format(&req, line, sizeof(line));
		all &= len > 0 && !hr_wit_req_parse(line, (size_t)len, &back, NULL, 0) &&
		       back.op == req.op && back.lease_ms == req.lease_ms &&
		       !strcmp(back.node, req.node) && !strcmp(back.peer, req.peer) &&
		       (op == HR_WIT_LIST || !strcmp(back.vm, req.vm));
	}
	ok(all, "every op formats and parses back");
	ok(!parse("hrw=1 op=claim vm=vm1 node=B primary=A lease_ms=1500", &req) &&
	       req.op == HR_WIT_CLAIM && !strcmp(req.peer, "A") && req.lease_ms == 1500 &&
	       !parse("hrw=1 op=claim vm=vm1 node=A primary= lease_ms=1500 future=1", &req) &&
	       !req.peer[0],
	   "the brief's claim line parses; empty primary; unknown keys are ignored");

	memset(big, 'a', sizeof(big));
	memcpy(big, "hrw=1 op=query vm=", 18);
	ok(hr_wit_req_parse(big, sizeof(big), &req, NULL, 0) == -E2BIG &&
	       hr_wit_req_parse(big, HR_WIT_LINE_MAX, &req, NULL, 0) == -E2BIG,
	   "over-long lines: -E2BIG");
	static const char *const missing[] = {
	    "hrw=1 op=claim node=B primary=A lease_ms=1500",
	    "hrw=1 op=claim vm=vm1 primary=A lease_ms=1500",
	    "hrw=1 op=claim vm=vm1 node=B lease_ms=1500",
	    "hrw=1 op=claim vm=vm1 node=B primary=A",
	    "hrw=1 op=register vm=vm1 node=A",
	    "hrw=1 op=release vm=vm1",
	    "hrw=1 vm=vm1 node=A",
	    "hrw=1 op= vm=vm1",
	};
	all = 1;
	for (unsigned i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		all &= parse(missing[i], &req) == -EINVAL;
	ok(all, "missing keys: -EINVAL");
	static const char *const bad_names[] = {
	    "hrw=1 op=query vm=../etc",
	    "hrw=1 op=query vm=-vm",
	    "hrw=1 op=query vm=.vm",
	    "hrw=1 op=query vm=a%20b",
	    "hrw=1 op=query vm=a/b",
	    "hrw=1 op=query vm=",
	    "hrw=1 op=query vm=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "hrw=1 op=register vm=a node=A backup=A",
	    "hrw=1 op=register vm=a node=A backup=%0A",
	    "hrw=1 op=forget vm=a node=%zz",
	};
	all = 1;
	for (unsigned i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		all &= parse(bad_names[i], &req) == -EINVAL;
	ok(all && !parse("hrw=1 op=query "
			 "vm=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			 &req),
	   "bad names (path, leading - or ., space, 65 bytes, own backup, bad escape): -EINVAL; "
	   "64 bytes is fine");
	char err[160];
	ok(hr_wit_req_parse("hrw=1 op=fence vm=a node=A", 26, &req, err, sizeof(err)) == -EINVAL &&
	       !strncmp(err, "unknown op", 10),
	   "unknown op: -EINVAL, 'unknown op'");
	ok(parse("hrw=2 op=query vm=a", &req) == -HR_EVERSION &&
	       parse("op=query vm=a", &req) == -HR_EVERSION && parse("", &req) == -HR_EVERSION &&
	       parse("v=1 cmd=status", &req) == -HR_EVERSION,
	   "another version or none: -HR_EVERSION");
	ok(parse("hrw=1 op=claim vm=a node=A primary= lease_ms=99999999999999999999999", &req) ==
		   -EINVAL &&
	       parse("hrw=1 op=claim vm=a node=A primary= lease_ms=-1", &req) == -EINVAL &&
	       parse("hrw=1 op=claim vm=a node=A primary= lease_ms=1e3", &req) == -EINVAL &&
	       !parse("hrw=1 op=claim vm=a node=A primary= lease_ms=18446744073709551615", &req) &&
	       req.lease_ms == UINT64_MAX,
	   "huge, negative and non-decimal numbers: -EINVAL; 2^64-1 parses (the table clamps)");

	/* garbage: random bytes of random lengths, and every byte value */
	static const char pairs[] = "hrw=1 op=claimvnde%AF\x01 ";
	unsigned seed = 12345, nr_ok = 0;
	for (int i = 0; i < 20000; i++) {
		size_t n = (seed = seed * 1103515245 + 12345) % 700;
		for (size_t j = 0; j < n; j++) {
			seed = seed * 1103515245 + 12345;
			big[j] = (char)(seed >> 16);
			if (i & 1) /* half of them: printable pairs, to get deeper */
				big[j] = pairs[(seed >> 16) % (sizeof(pairs) - 1)];
		}
		if (!hr_wit_req_parse(big, n, &req, err, sizeof(err)))
			nr_ok++;
		hr_wit_reply_parse(big, n, &rep);
	}
	for (int i = 0; i < 256; i++)
		big[i] = (char)i;
	ok(hr_wit_req_parse(big, 256, &req, err, sizeof(err)) < 0 &&
	       hr_wit_reply_parse(big, 256, &rep) < 0,
	   "20000 garbage lines and every byte value: errors, no crash (%u happened to parse)",
	   nr_ok);

	/* replies */
	memset(&rep, 0, sizeof(rep));
	rep.granted = 1;
	strcpy(rep.vm, "vm1");
	strcpy(rep.owner, "B");
	strcpy(rep.holder, "B");
	rep.term = 3;
	rep.lease_ms = 1500;
	rep.remaining_ms = 1499;
	strcpy(rep.why, "a why with spaces");
	len = hr_wit_reply_format(&rep, line, sizeof(line));
	ok(len > 0 && !hr_wit_reply_parse(line, (size_t)len, &rback) && rback.granted &&
	       !strcmp(rback.owner, "B") && !rback.backup[0] && rback.term == 3 &&
	       rback.remaining_ms == 1499 && !strcmp(rback.why, rep.why),
	   "a reply formats and parses back: %s", line);
	memset(rep.owner, 'o', 64);
	memset(rep.backup, 'b', 64);
	memset(rep.holder, 'h', 64);
	memset(rep.vm, 'v', 64);
	rep.term = rep.lease_ms = rep.remaining_ms = UINT64_MAX;
	memset(rep.why, ' ', sizeof(rep.why) - 1);
	len = hr_wit_reply_format(&rep, line, sizeof(line));
	ok(len > 0 && len < HR_WIT_LINE_MAX && !hr_wit_reply_parse(line, (size_t)len, &rback),
	   "the longest reply still fits a line (why is cut: %d bytes)", len);
	ok(RP("hrw=1 error=unknown%20op") == -EINVAL && !strcmp(rback.why, "unknown op") &&
	       RP("hrw=1 granted=2 owner= backup= holder= term=1 lease_ms=1 "
		  "remaining_ms=1") == -HR_EPROTO &&
	       RP("hrw=1 granted=1 owner=A backup= holder=") == -HR_EPROTO &&
	       RP("hrw=9 granted=1") == -HR_EVERSION && RP("HTTP/1.0 200 OK") < 0,
	   "error replies, bad granted, missing keys, other versions: refused");
	len = hr_wit_error_format("x y", line, sizeof(line));
	ok(len > 0 && !strcmp(line, "hrw=1 error=x%20y"), "error line: %s", line);
}

int main(void)
{
	plan(51);
	test_table();
	test_lease_math();
	test_wire();
	return tap_done();
}
