/*
 * witness-table.c - the witness's decision table (witness.h,
 * docs/witness.md).  Pure: no I/O, no clock of its own; the server and the
 * tests pass the time.  The invariant the rules keep: a lease is only ever
 * held by the record's owner, so a node that is not the owner speaks only
 * after a claim made it the owner, and that claim was denied while another
 * node's lease ran.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/witness.h"

void hr_wit_table_init(struct hr_wit_table *t)
{
	memset(t, 0, sizeof(*t));
}

void hr_wit_table_free(struct hr_wit_table *t)
{
	free(t->recs);
	memset(t, 0, sizeof(*t));
}

int hr_wit_table_copy(struct hr_wit_table *dst, const struct hr_wit_table *src)
{
	hr_wit_table_init(dst);
	if (!src->nr)
		return 0;
	dst->recs = malloc(src->nr * sizeof(*dst->recs));
	if (!dst->recs)
		return -ENOMEM;
	memcpy(dst->recs, src->recs, src->nr * sizeof(*dst->recs));
	dst->nr = dst->cap = src->nr;
	return 0;
}

struct hr_wit_rec *hr_wit_table_find(const struct hr_wit_table *t, const char *vm)
{
	for (unsigned i = 0; i < t->nr; i++)
		if (!strcmp(t->recs[i].vm, vm))
			return &t->recs[i];
	return NULL;
}

static struct hr_wit_rec *rec_add(struct hr_wit_table *t, const char *vm)
{
	if (t->nr == HR_WIT_MAX_RECORDS)
		return NULL;
	if (t->nr == t->cap) {
		unsigned cap = t->cap ? 2 * t->cap : 16;
		struct hr_wit_rec *r = realloc(t->recs, cap * sizeof(*r));
		if (!r)
			return NULL;
		t->recs = r;
		t->cap = cap;
	}
	struct hr_wit_rec *r = &t->recs[t->nr++];
	memset(r, 0, sizeof(*r));
	snprintf(r->vm, sizeof(r->vm), "%s", vm);
	return r;
}

static void rec_del(struct hr_wit_table *t, struct hr_wit_rec *r)
{
	unsigned i = (unsigned)(r - t->recs);
	memmove(&t->recs[i], &t->recs[i + 1], (t->nr - i - 1) * sizeof(*r));
	t->nr--;
}

static int lease_live(const struct hr_wit_rec *r, uint64_t now_ms)
{
	return r->holder[0] && now_ms < r->expiry_ms;
}

void hr_wit_rec_reply(const struct hr_wit_rec *r, uint64_t now_ms, struct hr_wit_reply *rep)
{
	rep->granted = 1;
	snprintf(rep->vm, sizeof(rep->vm), "%s", r->vm);
	snprintf(rep->owner, sizeof(rep->owner), "%s", r->owner);
	snprintf(rep->backup, sizeof(rep->backup), "%s", r->backup);
	snprintf(rep->holder, sizeof(rep->holder), "%s", r->holder);
	rep->term = r->term;
	rep->lease_ms = r->lease_ms;
	rep->remaining_ms = lease_live(r, now_ms) ? r->expiry_ms - now_ms : 0;
}

static void set_name(char *dst, const char *src, unsigned *ev, unsigned bit)
{
	if (strcmp(dst, src)) {
		snprintf(dst, HR_WIT_NAME_MAX + 1, "%s", src);
		*ev |= bit | HR_WIT_EV_PERSIST;
	}
}

/* Give node the lease for lease_ms from now. */
static void grant_lease(struct hr_wit_rec *r, const char *node, uint64_t lease_ms, uint64_t now_ms,
			unsigned *ev)
{
	*ev |= strcmp(r->holder, node) ? HR_WIT_EV_LEASE_NEW : HR_WIT_EV_RENEWED;
	set_name(r->holder, node, ev, 0);
	if (r->lease_ms != lease_ms) {
		r->lease_ms = lease_ms;
		*ev |= HR_WIT_EV_PERSIST;
	}
	r->expiry_ms = now_ms + lease_ms;
}

static void drop_lease(struct hr_wit_rec *r, unsigned *ev)
{
	if (r->holder[0]) {
		r->holder[0] = '\0';
		r->expiry_ms = 0;
		*ev |= HR_WIT_EV_DROPPED | HR_WIT_EV_PERSIST;
	}
}

/* A lease that ended is cleared before any rule looks at the record. */
static void expire_one(struct hr_wit_rec *r, uint64_t now_ms, unsigned *ev)
{
	if (r->holder[0] && now_ms >= r->expiry_ms) {
		r->holder[0] = '\0';
		r->expiry_ms = 0;
		*ev |= HR_WIT_EV_EXPIRED | HR_WIT_EV_PERSIST;
	}
}

/* Deny: the record as it stands (if any) and why. */
static __attribute__((format(printf, 5, 6))) int deny(const struct hr_wit_rec *r, uint64_t now_ms,
						      struct hr_wit_reply *rep, unsigned *ev,
						      const char *fmt, ...)
{
	va_list ap;

	if (r)
		hr_wit_rec_reply(r, now_ms, rep);
	rep->granted = 0;
	*ev |= HR_WIT_EV_DENIED;
	va_start(ap, fmt);
	vsnprintf(rep->why, sizeof(rep->why), fmt, ap);
	va_end(ap);
	return 0;
}

static int do_register(struct hr_wit_table *t, struct hr_wit_rec *r, const struct hr_wit_req *req,
		       uint64_t now_ms, struct hr_wit_reply *rep, unsigned *ev)
{
	if (!r) {
		r = rec_add(t, req->vm);
		if (!r) {
			deny(NULL, now_ms, rep, ev, "witness table full (%u VMs)",
			     HR_WIT_MAX_RECORDS);
			return -ENOSPC;
		}
		snprintf(r->owner, sizeof(r->owner), "%s", req->node);
		snprintf(r->backup, sizeof(r->backup), "%s", req->peer);
		r->term = 1;
		*ev |= HR_WIT_EV_CREATED | HR_WIT_EV_PERSIST;
	} else if (strcmp(r->owner, req->node)) {
		return deny(r, now_ms, rep, ev, "owner is %s", r->owner);
	} else {
		unsigned before = *ev;
		set_name(r->backup, req->peer, ev, HR_WIT_EV_BACKUP);
		if (*ev & ~before & HR_WIT_EV_BACKUP)
			r->term++;
		/* a protected primary needs no lease (holder can only be the owner) */
		drop_lease(r, ev);
	}
	hr_wit_rec_reply(r, now_ms, rep);
	return 0;
}

static int do_claim(struct hr_wit_table *t, struct hr_wit_rec *r, const struct hr_wit_req *req,
		    uint64_t now_ms, struct hr_wit_reply *rep, unsigned *ev)
{
	uint64_t lease_ms = req->lease_ms;

	if (lease_ms < HR_WIT_LEASE_MIN_MS)
		lease_ms = HR_WIT_LEASE_MIN_MS;
	if (lease_ms > HR_WIT_LEASE_MAX_MS)
		lease_ms = HR_WIT_LEASE_MAX_MS;
	if (!r) {
		if (req->peer[0])
			return deny(NULL, now_ms, rep, ev, "unknown VM: %s is no registered backup",
				    req->node);
		r = rec_add(t, req->vm);
		if (!r) {
			deny(NULL, now_ms, rep, ev, "witness table full (%u VMs)",
			     HR_WIT_MAX_RECORDS);
			return -ENOSPC;
		}
		snprintf(r->owner, sizeof(r->owner), "%s", req->node);
		r->term = 1;
		*ev |= HR_WIT_EV_CREATED | HR_WIT_EV_PERSIST;
		grant_lease(r, req->node, lease_ms, now_ms, ev);
		hr_wit_rec_reply(r, now_ms, rep);
		return 0;
	}
	if (lease_live(r, now_ms) && strcmp(r->holder, req->node)) {
		return deny(r, now_ms, rep, ev, "lease held by %s for %llu ms", r->holder,
			    (unsigned long long)(r->expiry_ms - now_ms));
	}
	if (!strcmp(r->owner, req->node)) {
		/*
		 * The owner keeps running without its backup, or renews.  Also
		 * when it names a primary: a backup whose promotion was granted
		 * but whose reply was lost asks again and must hear "granted".
		 */
		unsigned before = *ev;
		set_name(r->backup, "", ev, HR_WIT_EV_BACKUP);
		if (*ev & ~before & HR_WIT_EV_BACKUP)
			r->term++;
	} else if (req->peer[0] && !strcmp(req->peer, r->owner) && !strcmp(r->backup, req->node)) {
		/* the backup promotes: it becomes the owner, without a backup */
		snprintf(r->owner, sizeof(r->owner), "%s", req->node);
		r->backup[0] = '\0';
		r->term++;
		*ev |= HR_WIT_EV_OWNER | HR_WIT_EV_BACKUP | HR_WIT_EV_PERSIST;
	} else {
		expire_one(r, now_ms, ev);
		if (!req->peer[0])
			return deny(r, now_ms, rep, ev, "stale primary: owner is %s", r->owner);
		if (strcmp(req->peer, r->owner))
			return deny(r, now_ms, rep, ev, "stale backup: owner is %s, not %s",
				    r->owner, req->peer);
		if (!r->backup[0])
			return deny(r, now_ms, rep, ev, "stale backup: owner %s has no backup",
				    r->owner);
		return deny(r, now_ms, rep, ev, "stale backup: owner %s's backup is %s", r->owner,
			    r->backup);
	}
	if (r->holder[0] && strcmp(r->holder, req->node))
		expire_one(r, now_ms, ev); /* ended (a live one was refused above) */
	grant_lease(r, req->node, lease_ms, now_ms, ev);
	hr_wit_rec_reply(r, now_ms, rep);
	return 0;
}

int hr_wit_table_apply(struct hr_wit_table *t, const struct hr_wit_req *req, uint64_t now_ms,
		       struct hr_wit_reply *rep, unsigned *ev_r)
{
	struct hr_wit_rec *r;
	unsigned ev = 0;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	*ev_r = 0;
	if (req->op == HR_WIT_LIST) {
		snprintf(rep->why, sizeof(rep->why), "list is not a one-record request");
		return -EINVAL;
	}
	if (!hr_wit_name_ok(req->vm) || (req->op != HR_WIT_QUERY && !hr_wit_name_ok(req->node)) ||
	    ((req->op == HR_WIT_REGISTER || req->op == HR_WIT_CLAIM) && req->peer[0] &&
	     (!hr_wit_name_ok(req->peer) || !strcmp(req->peer, req->node)))) {
		snprintf(rep->why, sizeof(rep->why), "bad vm, node or peer name");
		return -EINVAL;
	}
	snprintf(rep->vm, sizeof(rep->vm), "%s", req->vm);
	r = hr_wit_table_find(t, req->vm);
	switch (req->op) {
	case HR_WIT_REGISTER:
		rc = do_register(t, r, req, now_ms, rep, &ev);
		break;
	case HR_WIT_CLAIM:
		rc = do_claim(t, r, req, now_ms, rep, &ev);
		break;
	case HR_WIT_RELEASE:
		if (!r) {
			snprintf(rep->why, sizeof(rep->why), "unknown VM");
			break;
		}
		expire_one(r, now_ms, &ev);
		if (!strcmp(r->holder, req->node)) {
			drop_lease(r, &ev);
			hr_wit_rec_reply(r, now_ms, rep);
		} else {
			hr_wit_rec_reply(r, now_ms, rep);
			rep->granted = 0;
			snprintf(rep->why, sizeof(rep->why), "%s holds no lease", req->node);
		}
		break;
	case HR_WIT_FORGET:
		if (!r) {
			rep->granted = 1;
			snprintf(rep->why, sizeof(rep->why), "no record");
		} else if (strcmp(r->owner, req->node)) {
			hr_wit_rec_reply(r, now_ms, rep);
			rep->granted = 0;
			snprintf(rep->why, sizeof(rep->why), "owner is %s", r->owner);
		} else {
			rep->granted = 1;
			rec_del(t, r);
			ev |= HR_WIT_EV_DELETED | HR_WIT_EV_PERSIST;
		}
		break;
	case HR_WIT_QUERY:
		if (r)
			hr_wit_rec_reply(r, now_ms, rep);
		else
			snprintf(rep->why, sizeof(rep->why), "unknown VM");
		break;
	default:
		snprintf(rep->why, sizeof(rep->why), "unknown op");
		return -EINVAL;
	}
	*ev_r = ev;
	return rc;
}

unsigned hr_wit_table_expire(struct hr_wit_table *t, uint64_t now_ms,
			     void (*cb)(void *arg, const struct hr_wit_rec *r), void *arg)
{
	unsigned n = 0, ev = 0;

	for (unsigned i = 0; i < t->nr; i++) {
		struct hr_wit_rec *r = &t->recs[i];
		if (!r->holder[0] || now_ms < r->expiry_ms)
			continue;
		if (cb)
			cb(arg, r);
		expire_one(r, now_ms, &ev);
		n++;
	}
	return n;
}

uint64_t hr_wit_table_next_expiry(const struct hr_wit_table *t)
{
	uint64_t next = UINT64_MAX;
	for (unsigned i = 0; i < t->nr; i++)
		if (t->recs[i].holder[0] && t->recs[i].expiry_ms < next)
			next = t->recs[i].expiry_ms;
	return next;
}
