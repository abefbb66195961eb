/*
 * lease.c - this host's side of the witness (failover.h): claims, renewals
 * and registrations for one VM, and what their answers mean here.  The
 * witness itself decides (ha/witness-table.c); the engine asks through
 * these calls only, so cluster mode can answer the same questions later.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "ha/failover.h"
#include "ha/token.h"
#include "ha/witness.h"

#define ASK_TIMEOUT_MS 500 /* one exchange with the witness, at most */
#define RETRY_MS       200 /* after a denial or no answer */

const char *hr_ha_standing_name(int standing)
{
	static const char *const names[] = {"none",  "unknown", "registered",
					    "lease", "denied",	"unreachable"};
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

void hr_ha_lease_drop(struct hr_ha_lease *l)
{
	__atomic_store_n(&l->until_ns, 0, __ATOMIC_RELAXED);
	if (l->addr && l->standing == HR_HA_W_LEASE)
		set_standing(l, HR_HA_W_UNKNOWN);
}

/* One request; 0 with *rep (granted or not) or -errno (no answer). */
static int ask(struct hr_ha_lease *l, enum hr_wit_op op, const char *peer, struct hr_wit_reply *rep)
{
	struct hr_wit_req req = {.op = op, .lease_ms = l->lease_ms};
	snprintf(req.vm, sizeof(req.vm), "%s", l->vm);
	snprintf(req.node, sizeof(req.node), "%s", l->node ? l->node : "");
	snprintf(req.peer, sizeof(req.peer), "%s", peer ? peer : "");
	int rc = hr_witness_ask(l->tls, l->addr, &req, rep, ASK_TIMEOUT_MS);
	uint64_t now = hr_now_ns();
	l->next_ask_ns = now + RETRY_MS * 1000000ull;
	if (rc < 0) {
		if (l->standing != HR_HA_W_UNREACHABLE)
			hr_token_log(l->vm, HR_TOK_WITNESS_UNREACHABLE, "%s: %s", l->addr,
				     hr_strerror(rc));
		set_standing(l, HR_HA_W_UNREACHABLE);
		snprintf(l->why, sizeof(l->why), "witness %s: %s", l->addr, hr_strerror(rc));
		return rc;
	}
	__atomic_store_n(&l->contact_ns, now, __ATOMIC_RELAXED);
	snprintf(l->owner, sizeof(l->owner), "%s", rep->owner);
	snprintf(l->why, sizeof(l->why), "%s", rep->why[0] ? rep->why : "granted");
	return 0;
}

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
	hr_ha_lease_drop(l);
	set_standing(l, HR_HA_W_DENIED);
}

int hr_ha_lease_claim_promotion(struct hr_ha_lease *l, uint64_t now_ns)
{
	struct hr_wit_reply rep;

	if (!l->addr)
		return 1;
	if (now_ns < l->next_ask_ns)
		return 0;
	if (ask(l, HR_WIT_CLAIM, l->peer_node, &rep) < 0)
		return 0;
	if (rep.granted) {
		take_lease(l, &rep);
		return 1;
	}
	denied(l, &rep);
	/* eligible only while the witness names us the backup of our primary */
	if (strcmp(rep.backup, l->node ? l->node : "") || strcmp(rep.owner, l->peer_node))
		return -1;
	return 0; /* the primary still holds its lease: it may be alive */
}

int hr_ha_lease_claim_owner(struct hr_ha_lease *l, uint64_t now_ns)
{
	struct hr_wit_reply rep;

	if (!l->addr)
		return 0;
	if (now_ns < l->next_ask_ns)
		return hr_ha_lease_valid(l, now_ns);
	if (ask(l, HR_WIT_CLAIM, "", &rep) < 0)
		return hr_ha_lease_valid(l, hr_now_ns());
	if (rep.granted) {
		take_lease(l, &rep);
		return hr_ha_lease_valid(l, hr_now_ns());
	}
	denied(l, &rep);
	if (rep.owner[0] && strcmp(rep.owner, l->node ? l->node : ""))
		return -1; /* the VM is owned elsewhere: our peer took over */
	return 0;
}

int hr_ha_lease_register(struct hr_ha_lease *l)
{
	struct hr_wit_reply rep;
	int rc;

	if (!l->addr)
		return 0;
	hr_ha_lease_drop(l); /* register ends our lease at the witness */
	if ((rc = ask(l, HR_WIT_REGISTER, l->peer_node, &rep)) < 0)
		return rc;
	if (!rep.granted) {
		denied(l, &rep);
		return -EPERM;
	}
	if (l->standing != HR_HA_W_REGISTERED)
		hr_token_log(l->vm, HR_TOK_WITNESS_REGISTERED,
			     "%s knows %s as the backup (term %llu)", l->addr, l->peer_node,
			     (unsigned long long)rep.term);
	set_standing(l, HR_HA_W_REGISTERED);
	return 0;
}

void hr_ha_lease_forget(struct hr_ha_lease *l)
{
	struct hr_wit_reply rep;

	if (!l->addr)
		return;
	hr_ha_lease_drop(l);
	if (ask(l, HR_WIT_FORGET, NULL, &rep) == 0 && rep.granted)
		log_info(l->vm, "witness %s forgot the VM (stopped on purpose)", l->addr);
}
