/*
 * t-request.c - what failover, promote and demote may do to a VM here
 * (ha/request.c), one table row each: what the daemon knows -> verdict.
 */
#include <string.h>

#include "tap.h"
#include "ha/request.h"

#define P HR_SIDE_PRIMARY
#define B HR_SIDE_BACKUP
/* a VM with a running worker; more fields after */
#define VM(sd, st, ...)                                                                            \
	{                                                                                          \
		.vm = {.exists = 1, .worker = 1, .side = sd, .state = st, __VA_ARGS__ }            \
	}
/* an entry whose worker is gone */
#define GONE(sd, st)                                                                               \
	{                                                                                          \
		.vm = {.exists = 1, .side = sd, .state = st}, .cluster_mode = 1                    \
	}
#define NO_VM                                                                                      \
	{                                                                                          \
		.vm = { 0 }                                                                        \
	}

static const struct {
	const char *what;
	struct hr_ha_request rq;
	enum hr_ha_failover_verdict want;
} failover_rows[] = {
    {"no VM", NO_VM, HR_HA_FAILOVER_NO_VM},
    {"a backup holding a commit", VM(B, HR_RS_BACKUP), HR_HA_FAILOVER},
    {"the primary", VM(P, HR_RS_PROTECTED), HR_HA_FAILOVER_IS_PRIMARY},
    {"a promoted backup that re-protected (a primary)", VM(P, HR_RS_SYNCING),
     HR_HA_FAILOVER_IS_PRIMARY},
    {"a backup promoting", VM(B, HR_RS_PROMOTING), HR_HA_FAILOVER_ALREADY},
    {"a backup promoted", VM(B, HR_RS_PROMOTED), HR_HA_FAILOVER_ALREADY},
    {"a backup whose worker ended", GONE(B, HR_RS_FAILED), HR_HA_FAILOVER_NO_REPLICA},
    {"a backup being stopped", VM(B, HR_RS_BACKUP, .stopping = 1), HR_HA_FAILOVER_NO_REPLICA},
    {"a backup syncing (no commit)", VM(B, HR_RS_SYNCING), HR_HA_FAILOVER_NO_COMMIT},
    {"a backup connecting", VM(B, HR_RS_CONNECTING), HR_HA_FAILOVER_NO_COMMIT},
    {"a backup, another request waiting",
     {.vm = {.exists = 1, .worker = 1, .side = B, .state = HR_RS_BACKUP}, .request_waiting = 1},
     HR_HA_FAILOVER_BUSY},
};

#define CL(sd, st, ...)                                                                            \
	{                                                                                          \
		.vm = {.exists = 1, .worker = 1, .side = sd, .state = st, __VA_ARGS__},            \
		.cluster_mode = 1                                                                  \
	}

static const struct {
	const char *what;
	struct hr_ha_request rq;
	enum hr_ha_promote_verdict want;
} promote_rows[] = {
    {"a standby", CL(P, HR_RS_STANDBY, .held = 1), HR_HA_PROMOTE_RESUME},
    {"a standby, not in cluster mode", VM(P, HR_RS_STANDBY, .held = 1), HR_HA_PROMOTE_RESUME},
    {"a standby, another request waiting",
     {.vm = {.exists = 1, .worker = 1, .side = P, .state = HR_RS_STANDBY},
      .request_waiting = 1,
      .cluster_mode = 1},
     HR_HA_PROMOTE_BUSY},
    {"a standby being stopped", CL(P, HR_RS_STANDBY, .stopping = 1), HR_HA_PROMOTE_FAILOVER},
    {"no VM", {.cluster_mode = 1}, HR_HA_PROMOTE_FAILOVER},
    {"a backup", CL(B, HR_RS_BACKUP), HR_HA_PROMOTE_FAILOVER},
    {"a primary that ended", GONE(P, HR_RS_STOPPED), HR_HA_PROMOTE_FAILOVER},
    {"a demoted primary, its worker ending", CL(P, HR_RS_DEMOTED), HR_HA_PROMOTE_FAILOVER},
    {"a primary alone, output held", CL(P, HR_RS_UNPROTECTED, .held = 1), HR_HA_PROMOTE_RELEASE},
    {"a protected primary", CL(P, HR_RS_PROTECTED), HR_HA_PROMOTE_RELEASE},
    {"a promoted backup", CL(B, HR_RS_PROMOTED), HR_HA_PROMOTE_RELEASE},
    {"a primary alone, not in cluster mode", VM(P, HR_RS_UNPROTECTED, .held = 1),
     HR_HA_PROMOTE_NOT_CLUSTER},
    {"a primary being stopped", CL(P, HR_RS_UNPROTECTED, .stopping = 1), HR_HA_PROMOTE_NOT_HERE},
    {"a primary entry without a worker", GONE(P, HR_RS_CONNECTING), HR_HA_PROMOTE_NOT_HERE},
};

static const struct {
	const char *what;
	struct hr_ha_request rq;
	int drop;
	enum hr_ha_demote_verdict want;
} demote_rows[] = {
    {"a protected primary", CL(P, HR_RS_PROTECTED), 0, HR_HA_DEMOTE},
    {"a primary alone", CL(P, HR_RS_UNPROTECTED), 0, HR_HA_DEMOTE},
    {"a promoted backup", CL(B, HR_RS_PROMOTED), 0, HR_HA_DEMOTE},
    {"a protected primary, drop", CL(P, HR_RS_PROTECTED), 1, HR_HA_DEMOTE_DROP},
    {"a standby, drop", CL(P, HR_RS_STANDBY), 1, HR_HA_DEMOTE_DROP},
    {"a standby", CL(P, HR_RS_STANDBY), 0, HR_HA_DEMOTE_ALREADY},
    {"no VM", {.cluster_mode = 1}, 0, HR_HA_DEMOTE_NOTHING},
    {"no VM, drop", {.cluster_mode = 1}, 1, HR_HA_DEMOTE_NOTHING},
    {"a backup", CL(B, HR_RS_BACKUP), 0, HR_HA_DEMOTE_NOTHING},
    {"a backup, drop", CL(B, HR_RS_BACKUP), 1, HR_HA_DEMOTE_NOTHING},
    {"a primary being stopped", CL(P, HR_RS_PROTECTED, .stopping = 1), 0, HR_HA_DEMOTE_NOTHING},
    {"a standby being stopped", CL(P, HR_RS_STANDBY, .stopping = 1), 0, HR_HA_DEMOTE_NOTHING},
    {"a primary that ended", GONE(P, HR_RS_FAILED), 0, HR_HA_DEMOTE_NOTHING},
    {"a protected primary, another request waiting",
     {.vm = {.exists = 1, .worker = 1, .side = P, .state = HR_RS_PROTECTED}, .request_waiting = 1},
     0,
     HR_HA_DEMOTE_BUSY},
};

int main(void)
{
	unsigned nf = sizeof(failover_rows) / sizeof(failover_rows[0]);
	unsigned np = sizeof(promote_rows) / sizeof(promote_rows[0]);
	unsigned nd = sizeof(demote_rows) / sizeof(demote_rows[0]);
	plan((int)(nf + np + nd));

	for (unsigned i = 0; i < nf; i++) {
		const char *why = NULL;
		enum hr_ha_failover_verdict v = hr_ha_failover(&failover_rows[i].rq, &why);
		ok(v == failover_rows[i].want && why && *why, "failover: %s -> %d (want %d; %s)",
		   failover_rows[i].what, (int)v, (int)failover_rows[i].want, why ? why : "no why");
	}
	for (unsigned i = 0; i < np; i++) {
		const char *why = NULL;
		enum hr_ha_promote_verdict v = hr_ha_promote(&promote_rows[i].rq, &why);
		ok(v == promote_rows[i].want && why && *why, "promote: %s -> %d (want %d; %s)",
		   promote_rows[i].what, (int)v, (int)promote_rows[i].want, why ? why : "no why");
	}
	for (unsigned i = 0; i < nd; i++) {
		const char *why = NULL;
		enum hr_ha_demote_verdict v =
		    hr_ha_demote(&demote_rows[i].rq, demote_rows[i].drop, &why);
		ok(v == demote_rows[i].want && why && *why, "demote: %s -> %d (want %d; %s)",
		   demote_rows[i].what, (int)v, (int)demote_rows[i].want, why ? why : "no why");
	}
	return tap_done();
}
