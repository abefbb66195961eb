/*
 * lease.c - this host's side of the witness (failover.h): claims, renewals
 * and registrations for one VM, and what their answers mean here.  The
 * witness itself decides (ha/witness-table.c); the engine asks through
 * these calls only, so cluster mode can answer the same questions later.
 *
 * Nothing here waits for the witness on the caller's thread: that is the
 * engine's, and its epochs keep their cadence whatever the witness does.
 * A request goes to the lease's asker thread, which runs one
 * hr_witness_ask() at a time; the next call on the engine's thread takes
 * the answer and acts on it (every call looks first).  So every call
 * answers from the last answer, and "no answer yet" reads as "not granted
 * yet": look again after hr_ha_lease_poll_ms(), or when hr_ha_lease_fd()
 * is readable.  Only the engine's thread touches struct hr_ha_lease's
 * fields (status reads standing, until_ns and contact_ns, relaxed).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "ha/failover.h"
#include "ha/token.h"
#include "ha/witness.h"

#define ASK_TIMEOUT_MS	  500  /* one exchange with the witness, at most */
#define RETRY_MS	  200  /* after a denial or no answer */
#define ANSWER_POLL_MS	  10   /* look this often for an answer on its way */
#define REGISTER_RETRY_MS 2000 /* a registration that failed, again after */
#define CONFIRM_MS	  3000 /* a protected primary asks whether it is still known */
#define FORGET_WAIT_MS	  (2 * ASK_TIMEOUT_MS + 200)

enum job { JOB_NONE = 0, JOB_PROMOTE, JOB_OWN, JOB_REGISTER, JOB_CONFIRM, JOB_FORGET };

struct hr_ha_asker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; a job queued, done, or stop */
	int efd;	     /* eventfd: readable while an answer waits to be taken */
	/* under lock: one job at a time, queued -> busy -> done -> taken */
	int stop;
	enum job queued, busy, done;
	uint64_t gen;		 /* of the job */
	struct hr_wit_req req;	 /* the job's request */
	int rc;			 /* done: hr_witness_ask's */
	struct hr_wit_reply rep; /* done: its reply */
	/* the engine's thread only */
	uint64_t gen_now;     /* hr_ha_lease_drop: owner claims sent before are past */
	int promote;	      /* backup: 1 a claim was granted, -1 this copy is stale */
	int elsewhere;	      /* owner: the witness named another owner */
	int want_register;    /* primary: the witness must be told (again) */
	int registered;	      /* primary: the witness holds our registration */
	uint64_t reg_next_ns; /* primary: register or confirm then */
	uint64_t nr_answers;  /* answers (or failures to get one) taken */
};

const char *hr_ha_standing_name(int standing)
{
	static const char *const names[] = {"none",   "unknown",     "registered",  "lease",
					    "denied", "unreachable", "unregistered"};
	return (unsigned)standing < sizeof(names) / sizeof(names[0]) ? names[standing] : "?";
}

static void set_standing(struct hr_ha_lease *l, int standing)
{
	__atomic_store_n(&l->standing, standing, __ATOMIC_RELAXED);
}

int hr_ha_lease_valid(const struct hr_ha_lease *l, uint64_t now_ns)
{
	return l->addr && now_ns < __atomic_load_n(&l->until_ns, __ATOMIC_RELAXED);
}

/* This side stops relying on its lease (the witness is not told). */
static void drop_local(struct hr_ha_lease *l)
{
	__atomic_store_n(&l->until_ns, 0, __ATOMIC_RELAXED);
	if (l->addr && l->standing == HR_HA_W_LEASE)
		set_standing(l, HR_HA_W_UNKNOWN);
}

void hr_ha_lease_drop(struct hr_ha_lease *l)
{
	drop_local(l);
	if (l->asker) {
		/* answers to owner claims sent before are about a past session */
		l->asker->gen_now++;
		l->asker->elsewhere = 0;
	}
}

/* ---- the asker thread ---- */

static void *asker_main(void *arg)
{
	struct hr_ha_lease *l = arg;
	struct hr_ha_asker *a = l->asker;

	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		if (!a->queued) {
			pthread_cond_wait(&a->cond, &a->lock);
			continue;
		}
		struct hr_wit_req req = a->req;
		struct hr_wit_reply rep;
		a->busy = a->queued;
		a->queued = JOB_NONE;
		pthread_mutex_unlock(&a->lock);
		int rc = hr_witness_ask(l->tls, l->addr, &req, &rep, ASK_TIMEOUT_MS);
		pthread_mutex_lock(&a->lock);
		a->rc = rc;
		a->rep = rep;
		a->done = a->busy;
		a->busy = JOB_NONE;
		(void)!write(a->efd, &(uint64_t){1}, sizeof(uint64_t));
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* The asker, started on first use: 0 or -errno. */
static int asker_get(struct hr_ha_lease *l)
{
	struct hr_ha_asker *a;
	pthread_condattr_t ca;
	int rc;

	if (l->asker)
		return 0;
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	if ((a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		free(a);
		return rc;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	l->asker = a;
	sigset_t all, old; /* signals stay with the threads that handle them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a->thread, NULL, asker_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		l->asker = NULL;
		close(a->efd);
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		free(a);
		return -rc;
	}
	return 0;
}

void hr_ha_lease_fini(struct hr_ha_lease *l)
{
	struct hr_ha_asker *a = l->asker;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL); /* an exchange in flight is bounded */
	close(a->efd);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
	l->asker = NULL;
}

int hr_ha_lease_fd(const struct hr_ha_lease *l)
{
	return l->asker ? l->asker->efd : -1;
}

uint64_t hr_ha_lease_answers(const struct hr_ha_lease *l)
{
	return l->asker ? l->asker->nr_answers : 0;
}

/*
 * Hand one request to the asker: 0, -EBUSY (one is out: its answer serves),
 * or -errno.  drop: stop relying on our lease first (a register ends it at
 * the witness).
 */
static int post(struct hr_ha_lease *l, enum job job, enum hr_wit_op op, const char *peer, int drop)
{
	struct hr_ha_asker *a;
	int rc;

	if ((rc = asker_get(l)) < 0) {
		snprintf(l->why, sizeof(l->why), "cannot ask the witness: %s", hr_strerror(rc));
		l->next_ask_ns = hr_now_ns() + RETRY_MS * 1000000ull;
		return rc;
	}
	a = l->asker;
	pthread_mutex_lock(&a->lock);
	if (a->queued || a->busy || a->done) {
		pthread_mutex_unlock(&a->lock);
		return -EBUSY;
	}
	if (drop)
		drop_local(l);
	memset(&a->req, 0, sizeof(a->req));
	a->req.op = op;
	a->req.lease_ms = l->lease_ms;
	snprintf(a->req.vm, sizeof(a->req.vm), "%s", l->vm);
	snprintf(a->req.node, sizeof(a->req.node), "%s", l->node ? l->node : "");
	snprintf(a->req.peer, sizeof(a->req.peer), "%s", peer ? peer : "");
	a->gen = a->gen_now;
	a->queued = job;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	l->next_ask_ns = hr_now_ns() + RETRY_MS * 1000000ull;
	return 0;
}

/* ---- answers, taken on the engine's thread ---- */

static void take_lease(struct hr_ha_lease *l, const struct hr_wit_reply *rep)
{
	uint64_t until = hr_witness_lease_expiry_ns(rep->sent_ns, rep->lease_ms);
	if (l->standing != HR_HA_W_LEASE)
		hr_token_log(l->vm, HR_TOK_LEASE_HELD,
			     "witness %s grants %llu ms (owner %s, term %llu)", l->addr,
			     (unsigned long long)rep->lease_ms, rep->owner,
			     (unsigned long long)rep->term);
	__atomic_store_n(&l->until_ns, until, __ATOMIC_RELAXED);
	set_standing(l, HR_HA_W_LEASE);
	/* renew at half the lease: one lost exchange does not end it */
	l->next_ask_ns = rep->sent_ns + rep->lease_ms * 500000ull;
}

static void denied(struct hr_ha_lease *l, const struct hr_wit_reply *rep)
{
	if (l->standing != HR_HA_W_DENIED)
		hr_token_log(l->vm, HR_TOK_LEASE_DENIED, "witness %s: %s", l->addr,
			     rep->why[0] ? rep->why : "denied");
	drop_local(l);
	set_standing(l, HR_HA_W_DENIED);
}

/* The witness has no record of the VM (it lost its table, or was never
 * told): nothing is stale, nothing may be claimed from it yet. */
static void unregistered(struct hr_ha_lease *l, const char *what)
{
	if (l->standing != HR_HA_W_UNREGISTERED)
		hr_token_log(l->vm, HR_TOK_WITNESS_UNREGISTERED,
			     "witness %s does not know the VM: %s", l->addr, what);
	drop_local(l);
	set_standing(l, HR_HA_W_UNREGISTERED);
}

static void registered(struct hr_ha_lease *l, struct hr_ha_asker *a, const struct hr_wit_reply *rep,
		       uint64_t now)
{
	if (l->standing != HR_HA_W_REGISTERED)
		hr_token_log(l->vm, HR_TOK_WITNESS_REGISTERED,
			     "%s knows %s as the backup (term %llu)", l->addr, l->peer_node,
			     (unsigned long long)rep->term);
	set_standing(l, HR_HA_W_REGISTERED);
	a->want_register = 0;
	a->registered = 1;
	a->reg_next_ns = now + CONFIRM_MS * 1000000ull;
}

static int is_node(const char *name, const char *node)
{
	return !strcmp(name, node ? node : "");
}

static void apply(struct hr_ha_lease *l, enum job job, uint64_t gen, int rc,
		  const struct hr_wit_reply *rep)
{
	struct hr_ha_asker *a = l->asker;
	uint64_t now = hr_now_ns();

	a->nr_answers++;
	if (job == JOB_OWN && gen != a->gen_now)
		return; /* a claim of a past session: never relied on */
	if (job != JOB_REGISTER && job != JOB_CONFIRM)
		l->next_ask_ns = now + RETRY_MS * 1000000ull;
	else if (rc < 0 || !rep->granted)
		a->reg_next_ns = now + REGISTER_RETRY_MS * 1000000ull;
	if (rc < 0) {
		if (l->standing != HR_HA_W_UNREACHABLE)
			hr_token_log(l->vm, HR_TOK_WITNESS_UNREACHABLE, "%s: %s", l->addr,
				     hr_strerror(rc));
		set_standing(l, HR_HA_W_UNREACHABLE);
		snprintf(l->why, sizeof(l->why), "witness %s: %s", l->addr, hr_strerror(rc));
		return;
	}
	__atomic_store_n(&l->contact_ns, now, __ATOMIC_RELAXED);
	snprintf(l->owner, sizeof(l->owner), "%s", rep->owner);
	snprintf(l->why, sizeof(l->why), "%s", rep->why[0] ? rep->why : "granted");
	switch (job) {
	case JOB_PROMOTE:
		if (rep->granted) {
			take_lease(l, rep);
			a->promote = 1;
		} else if (!rep->owner[0]) {
			/* not stale: the primary registers again if it lives */
			unregistered(l, "keeping this copy; asking again");
		} else {
			denied(l, rep);
			/* eligible only while the witness names us the backup of our primary */
			if (!is_node(rep->backup, l->node) || !is_node(rep->owner, l->peer_node))
				a->promote = -1;
			/* else the primary still holds its lease: it may be alive */
		}
		break;
	case JOB_OWN:
		if (rep->granted) {
			take_lease(l, rep);
		} else {
			denied(l, rep);
			if (rep->owner[0] && !is_node(rep->owner, l->node))
				a->elsewhere = 1; /* our peer took over */
		}
		break;
	case JOB_REGISTER:
		if (rep->granted)
			registered(l, a, rep, now);
		else
			denied(l, rep);
		break;
	case JOB_CONFIRM:
		if (is_node(rep->owner, l->node) && is_node(rep->backup, l->peer_node)) {
			a->reg_next_ns = now + CONFIRM_MS * 1000000ull;
			if (l->standing != HR_HA_W_REGISTERED)
				registered(l, a, rep, now); /* it answers again */
			break;
		}
		a->registered = 0;
		a->want_register = 1;
		a->reg_next_ns = 0;
		if (!rep->owner[0])
			unregistered(l, "registering it again");
		else
			log_warnx(l->vm,
				  "witness %s names owner %s, backup %s: registering again as "
				  "owner %s with backup %s",
				  l->addr, rep->owner, rep->backup[0] ? rep->backup : "none",
				  l->node ? l->node : "", l->peer_node ? l->peer_node : "");
		break;
	case JOB_FORGET:
		if (rep->granted)
			log_info(l->vm, "witness %s forgot the VM (stopped on purpose)", l->addr);
		break;
	case JOB_NONE:
		break;
	}
}

/* Take the answer that waits, if any, and act on it. */
static void collect(struct hr_ha_lease *l)
{
	struct hr_ha_asker *a = l->asker;
	struct hr_wit_reply rep;
	uint64_t n;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	enum job job = a->done;
	if (job) {
		rep = a->rep;
		a->done = JOB_NONE;
		(void)!read(a->efd, &n, sizeof(n));
	}
	int rc = a->rc;
	uint64_t gen = a->gen;
	pthread_mutex_unlock(&a->lock);
	if (job)
		apply(l, job, gen, rc, &rep);
}

/* ---- what the engine asks ---- */

int hr_ha_lease_busy(struct hr_ha_lease *l)
{
	struct hr_ha_asker *a = l->asker;
	if (!a)
		return 0;
	collect(l);
	pthread_mutex_lock(&a->lock);
	int busy = a->queued || a->busy;
	pthread_mutex_unlock(&a->lock);
	return busy;
}

int hr_ha_lease_poll_ms(struct hr_ha_lease *l, uint64_t now_ns)
{
	if (!l->addr)
		return -1;
	if (hr_ha_lease_busy(l))
		return ANSWER_POLL_MS;
	return l->next_ask_ns > now_ns ? (int)((l->next_ask_ns - now_ns) / 1000000) + 1 : 0;
}

int hr_ha_lease_claim_promotion(struct hr_ha_lease *l, uint64_t now_ns)
{
	if (!l->addr)
		return 1;
	collect(l);
	if (l->asker && l->asker->promote > 0)
		return 1; /* the witness made us the owner: for good */
	if (l->asker && l->asker->promote < 0) {
		l->asker->promote = 0; /* told once: a later claim asks again */
		return -1;
	}
	if (now_ns >= l->next_ask_ns)
		post(l, JOB_PROMOTE, HR_WIT_CLAIM, l->peer_node, 0);
	return 0;
}

int hr_ha_lease_promotion_granted(struct hr_ha_lease *l)
{
	if (!l->addr || !l->asker)
		return 0;
	collect(l);
	return l->asker->promote > 0;
}

int hr_ha_lease_claim_owner(struct hr_ha_lease *l, uint64_t now_ns)
{
	if (!l->addr)
		return 0;
	collect(l);
	if (l->asker && l->asker->elsewhere)
		return -1;
	if (now_ns >= l->next_ask_ns)
		post(l, JOB_OWN, HR_WIT_CLAIM, "", 0);
	return hr_ha_lease_valid(l, hr_now_ns());
}

int hr_ha_lease_register(struct hr_ha_lease *l, int anew, uint64_t now_ns)
{
	struct hr_ha_asker *a;

	if (!l->addr)
		return 0;
	collect(l);
	if (asker_get(l) < 0)
		return 0;
	a = l->asker;
	if (anew) {
		a->want_register = 1;
		a->registered = 0;
		a->reg_next_ns = 0;
	}
	if (now_ns < a->reg_next_ns)
		return a->registered;
	if (a->want_register) {
		/* a register ends our lease at the witness: stop relying on it first */
		if (!post(l, JOB_REGISTER, HR_WIT_REGISTER, l->peer_node, 1))
			a->reg_next_ns = now_ns + REGISTER_RETRY_MS * 1000000ull;
	} else if (a->registered) {
		if (!post(l, JOB_CONFIRM, HR_WIT_QUERY, NULL, 0))
			a->reg_next_ns = now_ns + CONFIRM_MS * 1000000ull;
	}
	return a->registered;
}

/* Wait (bounded) until the asker has nothing out; 0 or -ETIMEDOUT. */
static int wait_idle(struct hr_ha_asker *a, uint64_t deadline_ns)
{
	struct timespec ts = {(time_t)(deadline_ns / 1000000000ull),
			      (long)(deadline_ns % 1000000000ull)};
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	while ((a->queued || a->busy) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	rc = a->queued || a->busy ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void hr_ha_lease_forget(struct hr_ha_lease *l)
{
	uint64_t deadline = hr_now_ns() + FORGET_WAIT_MS * 1000000ull;

	if (!l->addr)
		return;
	hr_ha_lease_drop(l);
	/* the VM stops here: waiting (bounded) for the witness is no harm now */
	if (asker_get(l) < 0 || wait_idle(l->asker, deadline) < 0)
		return;
	collect(l);
	if (post(l, JOB_FORGET, HR_WIT_FORGET, NULL, 0) < 0 || wait_idle(l->asker, deadline) < 0)
		return;
	collect(l);
}
