/*
 * witness.h - the witness: a third host that grants leases so that at most
 * one host speaks for a VM when its primary and backup lose each other.
 * docs/witness.md is the protocol and the argument; in short:
 *
 *   - witness-table.c: the decision table, pure (no I/O, the clock is an
 *     argument), one record per VM: owner, backup, term, lease holder;
 *   - witness-wire.c: the line format (`hrw=1 ...`, kv.h pairs, <= 512
 *     bytes) of requests, replies and the persisted table;
 *   - witness-client.c: hr_witness_ask(), one bounded exchange;
 *   - src/daemon/witness-serve.c: `hareplicated --serve-witness`.
 */
#ifndef HR_HA_WITNESS_H
#define HR_HA_WITNESS_H

#include <stddef.h>
#include <stdint.h>

#define HR_WIT_DEFAULT_PORT "7788"
#define HR_WIT_NAME_MAX	    64	  /* VM and node names: [A-Za-z0-9_.-], 1..64 */
#define HR_WIT_LINE_MAX	    512	  /* longest line either way, newline included */
#define HR_WIT_LEASE_MIN_MS 100	  /* requested leases are clamped to these */
#define HR_WIT_LEASE_MAX_MS 60000 /* ... bounds */
#define HR_WIT_MAX_RECORDS  4096  /* the table refuses to grow beyond */

enum hr_wit_op {
	HR_WIT_REGISTER,
	HR_WIT_CLAIM,
	HR_WIT_RELEASE,
	HR_WIT_FORGET,
	HR_WIT_QUERY,
	HR_WIT_LIST, /* every record: hr_witness_list(), not hr_witness_ask() */
};

struct hr_wit_req {
	enum hr_wit_op op;
	char vm[HR_WIT_NAME_MAX + 1];
	char node[HR_WIT_NAME_MAX + 1];
	char peer[HR_WIT_NAME_MAX + 1]; /* register: backup; claim: primary or "" */
	uint64_t lease_ms;		/* claim: wanted length (clamped by the witness) */
};

struct hr_wit_reply {
	int granted;
	char owner[HR_WIT_NAME_MAX + 1], backup[HR_WIT_NAME_MAX + 1], holder[HR_WIT_NAME_MAX + 1];
	uint64_t term, lease_ms, remaining_ms; /* remaining: holder's lease left, witness view */
	char why[160];
	/* added to the brief's shape: */
	char vm[HR_WIT_NAME_MAX + 1];
	uint64_t sent_ns; /* hr_witness_ask: CLOCK_MONOTONIC just before connecting */
};

/* ---- client (witness-client.c) ----
 *
 * Contract for the caller: a register or a release ends the node's lease
 * at the witness on receipt, so stop relying on a lease before sending
 * either; a lease is valid only until hr_witness_lease_expiry_ns(), even if
 * the reply arrives later (then it is expired on arrival). */

/*
 * One exchange with the witness at addr ("host", "host:port", "[v6]:port";
 * default port 7788), bounded by timeout_ms in total (name resolution,
 * connect, send, reply: a host name is looked up with getaddrinfo_a and
 * its answer kept; a lookup that outlives the bound goes on for a later
 * call).  It blocks its caller for up to timeout_ms: the engine asks
 * through ha/lease.c's own thread.  0 with *rep filled (granted or
 * not), or -errno: -ETIMEDOUT, -ECONNREFUSED, -HR_EPROTO for a bad reply,
 * -EINVAL for a request this side refuses to send or the witness refused
 * as malformed (rep->why says why): the witness could not be asked.
 * tls: the link's security (net/tls.h; NULL or an insecure context: plain
 * TCP); in a TLS mode a witness that does not authenticate is -HR_EAUTH.
 */
struct hr_tls_ctx;
int hr_witness_ask(struct hr_tls_ctx *tls, const char *addr, const struct hr_wit_req *req,
		   struct hr_wit_reply *rep, int timeout_ms);

/*
 * Every record of the witness's table: cb is called once per VM (rep->vm,
 * granted = 1), in the witness's order.  0 or -errno as hr_witness_ask.
 */
int hr_witness_list(struct hr_tls_ctx *tls, const char *addr, int timeout_ms,
		    void (*cb)(void *arg, const struct hr_wit_reply *rep), void *arg);

/*
 * Client-side lease expiry (CLOCK_MONOTONIC ns) of a lease granted for
 * lease_ms (the reply's lease_ms: the witness clamps) to a request sent at
 * sent_ns (taken before connecting: rep->sent_ns).  The lease counts as
 * valid until sent_ns + lease_ms - margin, margin = max(lease_ms / 10,
 * 50 ms); the witness counts lease_ms from its receipt of the request,
 * which is later, so the client always believes its lease ends first.
 * A lease no longer than its margin is expired on arrival (returns sent_ns).
 */
uint64_t hr_witness_lease_expiry_ns(uint64_t sent_ns, uint64_t lease_ms);

/* The lease length a host asks for: --lease-ms, or when 0, 2 x the failover
 * timeout, at least 1000 ms (and within the witness's bounds). */
static inline uint64_t hr_witness_lease_ms(uint64_t opt_lease_ms, uint64_t failover_timeout_ms)
{
	uint64_t ms = opt_lease_ms ? opt_lease_ms : 2 * failover_timeout_ms;
	if (!opt_lease_ms && ms < 1000)
		ms = 1000;
	if (ms < HR_WIT_LEASE_MIN_MS)
		ms = HR_WIT_LEASE_MIN_MS;
	return ms > HR_WIT_LEASE_MAX_MS ? HR_WIT_LEASE_MAX_MS : ms;
}

/* ---- the table (witness-table.c): pure, the caller's clock ---- */

struct hr_wit_rec {
	char vm[HR_WIT_NAME_MAX + 1];
	char owner[HR_WIT_NAME_MAX + 1];  /* the node that runs the VM */
	char backup[HR_WIT_NAME_MAX + 1]; /* the node with a complete copy, or "" */
	char holder[HR_WIT_NAME_MAX + 1]; /* lease holder, or "" */
	uint64_t term;			  /* +1 on every change of owner or backup */
	uint64_t lease_ms;		  /* length of the last lease granted */
	uint64_t expiry_ms;		  /* holder's lease ends (witness's monotonic ms) */
};

struct hr_wit_table {
	struct hr_wit_rec *recs;
	unsigned nr, cap;
};

/* What an hr_wit_table_apply did (bits of *ev_r). */
enum {
	HR_WIT_EV_PERSIST = 1 << 0, /* a persisted field changed: save the table */
	HR_WIT_EV_CREATED = 1 << 1,
	HR_WIT_EV_DELETED = 1 << 2,
	HR_WIT_EV_OWNER = 1 << 3,     /* owner changed: +owner-changed */
	HR_WIT_EV_BACKUP = 1 << 4,    /* backup changed */
	HR_WIT_EV_LEASE_NEW = 1 << 5, /* a lease granted to a node that held none */
	HR_WIT_EV_RENEWED = 1 << 6,   /* the holder renewed */
	HR_WIT_EV_DROPPED = 1 << 7,   /* a lease ended early (release, register) */
	HR_WIT_EV_DENIED = 1 << 8,    /* register / claim denied */
	HR_WIT_EV_EXPIRED = 1 << 9,   /* an expired lease was found (and cleared) */
};

void hr_wit_table_init(struct hr_wit_table *t);
void hr_wit_table_free(struct hr_wit_table *t);
/* Deep copy (dst is overwritten, not freed): 0 or -ENOMEM. */
int hr_wit_table_copy(struct hr_wit_table *dst, const struct hr_wit_table *src);
struct hr_wit_rec *hr_wit_table_find(const struct hr_wit_table *t, const char *vm);

/*
 * Decide one request (the rules: docs/witness.md) at the witness's time
 * now_ms and fill *rep.  0 (granted or denied: rep->granted), -EINVAL for
 * a request that is not well formed (bad name, unknown op; rep->why says),
 * -ENOSPC (table full, rep filled as a denial).  ev_r gets HR_WIT_EV_* bits.
 */
int hr_wit_table_apply(struct hr_wit_table *t, const struct hr_wit_req *req, uint64_t now_ms,
		       struct hr_wit_reply *rep, unsigned *ev_r);

/* Fill rep from a record as the witness sees it at now_ms (granted = 1). */
void hr_wit_rec_reply(const struct hr_wit_rec *r, uint64_t now_ms, struct hr_wit_reply *rep);

/*
 * Clear every lease that ended before now_ms, calling cb (may be NULL)
 * for each before it is cleared.  Returns how many: the table changed
 * (persist) when > 0.
 */
unsigned hr_wit_table_expire(struct hr_wit_table *t, uint64_t now_ms,
			     void (*cb)(void *arg, const struct hr_wit_rec *r), void *arg);

/* Earliest lease expiry in the table, or UINT64_MAX when no lease is held. */
uint64_t hr_wit_table_next_expiry(const struct hr_wit_table *t);

/* ---- the line format (witness-wire.c) ---- */

/* Valid VM / node name: [A-Za-z0-9_.-], 1..64, not starting with '.' or '-'. */
int hr_wit_name_ok(const char *name);
const char *hr_wit_op_name(enum hr_wit_op op);

/*
 * Requests and replies are one kv.h line each (no newline in buf; the
 * caller adds it).  The format functions write at most size bytes (NUL
 * included) and return the length or -E2BIG / -EINVAL.
 */
int hr_wit_req_format(const struct hr_wit_req *req, char *buf, size_t size);
/* 0, -EINVAL (err says why), -HR_EVERSION (not hrw=1), -E2BIG (too long). */
int hr_wit_req_parse(const char *line, size_t len, struct hr_wit_req *req, char *err,
		     size_t err_size);
/* A reply; rep->vm is included when set. */
int hr_wit_reply_format(const struct hr_wit_reply *rep, char *buf, size_t size);
/* An error reply: `hrw=1 error=TEXT`. */
int hr_wit_error_format(const char *err, char *buf, size_t size);
/* 0, -EINVAL (the witness's error reply; its text in rep->why),
 * -HR_EVERSION, -HR_EPROTO (not a reply). */
int hr_wit_reply_parse(const char *line, size_t len, struct hr_wit_reply *rep);

/*
 * The persisted table: a first line `hrw-table=1`, then one line per VM
 * (vm owner backup term holder lease_ms; no expiry: monotonic time means
 * nothing to another process).  Loading gives every held lease a full
 * lease_ms from now_ms: a restarted witness cannot know how long the
 * holder still believes in its lease.  dump: a malloc'd NUL-terminated
 * text in *text_r, 0 or -ENOMEM.  load: 0 or -EINVAL with *line_r the
 * 1-based bad line (t is left empty).
 */
int hr_wit_table_dump(const struct hr_wit_table *t, char **text_r, size_t *len_r);
int hr_wit_table_load(struct hr_wit_table *t, const char *text, size_t len, uint64_t now_ms,
		      unsigned *line_r);

#endif
