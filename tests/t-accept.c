/*
 * t-accept.c - the daemon's decisions about a VM name (ha/accept.c), one
 * table row each: what runs here and who connects -> the verdict and the
 * code word the caller reads; `migrate` asked -> may it leave; a
 * migration's report -> forget the VM or keep it.
 */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "ha/accept.h"

/* shorthands for the rows */
#define P HR_SIDE_PRIMARY
#define B HR_SIDE_BACKUP
#define NOTHING                                                                                    \
	{                                                                                          \
		0                                                                                  \
	}
#define LOCAL(sd, st, ...)                                                                         \
	{                                                                                          \
		.exists = 1, .side = sd, .state = st, __VA_ARGS__                                  \
	}
#define SPEAKS                                                                                     \
	{                                                                                          \
		.name_ok = 1, .speaking = 1                                                        \
	}
#define HOLDS                                                                                      \
	{                                                                                          \
		.name_ok = 1, .speaking = 0                                                        \
	}

static const struct {
	const char *what;
	struct hr_ha_local here;
	struct hr_ha_caller caller;
	enum hr_ha_accept_verdict want;
	const char *code;
} accept_rows[] = {
    /* the caller's own preamble */
    {"invalid name", NOTHING, {.name_ok = 0, .speaking = 1}, HR_HA_REFUSE_NAME, "refuse"},
    {"a connection that named its VM already asks again",
     NOTHING,
     {.name_ok = 1, .named = 1},
     HR_HA_REFUSE_NAME,
     "refuse"},
    {"invalid name, even with a VM of some name here",
     LOCAL(P, HR_RS_PROTECTED, .worker = 1),
     {.name_ok = 0},
     HR_HA_REFUSE_NAME,
     "refuse"},
    /* nothing runs here */
    {"nothing here, the caller holds", NOTHING, HOLDS, HR_HA_ACCEPT, "accept"},
    {"nothing here, the caller speaks", NOTHING, SPEAKS, HR_HA_ACCEPT, "accept"},
    {"an entry whose worker ended stopped", LOCAL(P, HR_RS_STOPPED), HOLDS, HR_HA_ACCEPT, "accept"},
    {"an entry whose worker ended failed", LOCAL(B, HR_RS_FAILED), SPEAKS, HR_HA_ACCEPT, "accept"},
    {"an entry whose worker ended demoted, it held", LOCAL(P, HR_RS_DEMOTED, .held = 1), SPEAKS,
     HR_HA_ACCEPT, "accept"},
    /* on its way out */
    {"a worker in a final state (stopped)", LOCAL(P, HR_RS_STOPPED, .worker = 1), SPEAKS,
     HR_HA_BUSY, "busy"},
    {"a worker in a final state (demoted, held)", LOCAL(P, HR_RS_DEMOTED, .worker = 1, .held = 1),
     SPEAKS, HR_HA_BUSY, "busy"},
    /* migrating */
    {"a VM migrating from here", LOCAL(P, HR_RS_SYNCING, .worker = 1, .migrating = 1), HOLDS,
     HR_HA_BUSY, "busy"},
    {"a VM migrated from here, its worker ending",
     LOCAL(P, HR_RS_STOPPED, .worker = 1, .migrated = 1), HOLDS, HR_HA_BUSY, "busy"},
    {"a VM migrating from here, held, the caller speaks",
     LOCAL(P, HR_RS_CONNECTING, .worker = 1, .migrating = 1, .held = 1), SPEAKS, HR_HA_BUSY,
     "busy"},
    /* a backup here */
    {"a backup connecting (a migration target here)", LOCAL(B, HR_RS_CONNECTING, .worker = 1),
     HOLDS, HR_HA_BUSY, "busy"},
    {"a backup holding a copy", LOCAL(B, HR_RS_BACKUP, .worker = 1), SPEAKS, HR_HA_BUSY, "busy"},
    {"a backup promoting", LOCAL(B, HR_RS_PROMOTING, .worker = 1), SPEAKS, HR_HA_BUSY, "busy"},
    {"a promoted backup releasing output", LOCAL(B, HR_RS_PROMOTED, .worker = 1), HOLDS, HR_HA_RUNS,
     "runs"},
    {"a promoted backup releasing output, the caller speaks too",
     LOCAL(B, HR_RS_PROMOTED, .worker = 1), SPEAKS, HR_HA_RUNS, "runs"},
    /* a primary here */
    {"a protected primary", LOCAL(P, HR_RS_PROTECTED, .worker = 1), HOLDS, HR_HA_RUNS, "runs"},
    {"an unprotected primary releasing", LOCAL(P, HR_RS_UNPROTECTED, .worker = 1), HOLDS,
     HR_HA_RUNS, "runs"},
    {"a primary being set up (no worker yet)", LOCAL(P, HR_RS_CONNECTING), HOLDS, HR_HA_RUNS,
     "runs"},
    {"an unprotected primary holding, the caller speaks",
     LOCAL(P, HR_RS_UNPROTECTED, .worker = 1, .held = 1), SPEAKS, HR_HA_BUSY_STAND_DOWN, "busy"},
    {"a primary in backup-silent (held), the caller speaks",
     LOCAL(P, HR_RS_BACKUP_SILENT, .worker = 1, .held = 1), SPEAKS, HR_HA_BUSY_STAND_DOWN, "busy"},
    {"a primary in backup-silent (held), the caller holds too",
     LOCAL(P, HR_RS_BACKUP_SILENT, .worker = 1, .held = 1), HOLDS, HR_HA_REFUSE_BOTH_HELD,
     "refuse"},
    {"a protected primary whose backup is silent (held), the caller speaks",
     LOCAL(P, HR_RS_PROTECTED, .worker = 1, .held = 1), SPEAKS, HR_HA_BUSY_STAND_DOWN, "busy"},
    {"a standby (paused, held), the caller speaks", LOCAL(P, HR_RS_STANDBY, .worker = 1, .held = 1),
     SPEAKS, HR_HA_BUSY_STAND_DOWN, "busy"},
    {"a held primary already stopping, the caller speaks",
     LOCAL(P, HR_RS_UNPROTECTED, .worker = 1, .held = 1, .stopping = 1), SPEAKS, HR_HA_BUSY,
     "busy"},
    {"a held primary without a worker, the caller speaks", LOCAL(P, HR_RS_UNPROTECTED, .held = 1),
     SPEAKS, HR_HA_BUSY, "busy"},
    {"an unprotected primary holding, the caller holds too",
     LOCAL(P, HR_RS_UNPROTECTED, .worker = 1, .held = 1), HOLDS, HR_HA_REFUSE_BOTH_HELD, "refuse"},
    {"a standby, the caller holds", LOCAL(P, HR_RS_STANDBY, .worker = 1, .held = 1), HOLDS,
     HR_HA_REFUSE_BOTH_HELD, "refuse"},
};

#define ASK(sd, st, ...)                                                                           \
	{                                                                                          \
		.vm = {.exists = 1, .worker = 1, .side = sd, .state = st}, __VA_ARGS__             \
	}
#define ASK_VM(sd, st, ...)                                                                        \
	{                                                                                          \
		.vm = {.exists = 1, .side = sd, .state = st, __VA_ARGS__ }                         \
	}

static const struct {
	const char *what;
	struct hr_ha_migrate_ask ask;
	enum hr_ha_migrate_verdict want;
} migrate_rows[] = {
    {"a protected primary", ASK(P, HR_RS_PROTECTED), HR_HA_MIGRATE},
    {"an unprotected primary releasing", ASK(P, HR_RS_UNPROTECTED), HR_HA_MIGRATE},
    {"a promoted backup that re-protected (a primary now)", ASK(P, HR_RS_PROTECTED), HR_HA_MIGRATE},
    {"already migrating", ASK_VM(P, HR_RS_CONNECTING, .worker = 1, .migrating = 1),
     HR_HA_MIGRATE_ALREADY},
    {"already migrating, another request too",
     {.vm = {.exists = 1, .worker = 1, .side = P, .state = HR_RS_PROTECTED, .migrating = 1},
      .request_waiting = 1},
     HR_HA_MIGRATE_ALREADY},
    {"another request waits", ASK(P, HR_RS_PROTECTED, .request_waiting = 1), HR_HA_MIGRATE_BUSY},
    {"a backup", ASK(B, HR_RS_BACKUP), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a promoted backup (not re-protected)", ASK(B, HR_RS_PROMOTED), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a primary syncing", ASK(P, HR_RS_SYNCING), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a primary connecting", ASK(P, HR_RS_CONNECTING), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a standby", ASK_VM(P, HR_RS_STANDBY, .worker = 1, .held = 1), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a primary without a worker", ASK_VM(P, HR_RS_PROTECTED), HR_HA_MIGRATE_NOT_PRIMARY},
    {"a primary being stopped", ASK_VM(P, HR_RS_PROTECTED, .worker = 1, .stopping = 1),
     HR_HA_MIGRATE_NOT_PRIMARY},
    {"an unprotected primary holding its output",
     ASK_VM(P, HR_RS_UNPROTECTED, .worker = 1, .held = 1), HR_HA_MIGRATE_HELD},
    {"a protected primary whose backup is silent",
     ASK_VM(P, HR_RS_PROTECTED, .worker = 1, .held = 1), HR_HA_MIGRATE_HELD},
    {"a primary in backup-silent", ASK_VM(P, HR_RS_BACKUP_SILENT, .worker = 1, .held = 1),
     HR_HA_MIGRATE_HELD},
    {"held and with a witness: held says more",
     {.vm = {.exists = 1, .worker = 1, .side = P, .state = HR_RS_UNPROTECTED, .held = 1},
      .witness = 1},
     HR_HA_MIGRATE_HELD},
    {"with a witness", ASK(P, HR_RS_PROTECTED, .witness = 1), HR_HA_MIGRATE_WITNESS},
    {"to this host", ASK(P, HR_RS_PROTECTED, .to_self = 1), HR_HA_MIGRATE_SELF},
    {"to this host, with a witness", ASK(P, HR_RS_PROTECTED, .to_self = 1, .witness = 1),
     HR_HA_MIGRATE_WITNESS},
};

static const struct {
	enum hr_role_state st;
	int stopping;
	enum hr_ha_start_verdict want;
} start_rows[] = {
    {HR_RS_CONNECTING, 0, HR_HA_START_WAIT},  {HR_RS_SYNCING, 0, HR_HA_START_UP},
    {HR_RS_PROTECTED, 0, HR_HA_START_UP},     {HR_RS_SYNCING, 1, HR_HA_START_UP},
    {HR_RS_FAILED, 0, HR_HA_START_WAIT},      {HR_RS_UNPROTECTED, 0, HR_HA_START_ABORT},
    {HR_RS_UNPROTECTED, 1, HR_HA_START_WAIT}, {HR_RS_STOPPED, 0, HR_HA_START_ABORT},
    {HR_RS_DEMOTED, 0, HR_HA_START_ABORT},    {HR_RS_STANDBY, 0, HR_HA_START_ABORT},
};

int main(void)
{
	unsigned na = sizeof(accept_rows) / sizeof(accept_rows[0]);
	unsigned nm = sizeof(migrate_rows) / sizeof(migrate_rows[0]);
	unsigned ns = sizeof(start_rows) / sizeof(start_rows[0]);
	plan((int)(na + nm + ns + 6));

	for (unsigned i = 0; i < na; i++) {
		const char *why = NULL;
		enum hr_ha_accept_verdict v =
		    hr_ha_accept(&accept_rows[i].here, &accept_rows[i].caller, &why);
		ok(v == accept_rows[i].want && !strcmp(hr_ha_accept_code(v), accept_rows[i].code) &&
		       why && *why,
		   "accept: %s -> %s (%d, want %d; %s)", accept_rows[i].what, accept_rows[i].code,
		   (int)v, (int)accept_rows[i].want, why ? why : "no why");
	}
	for (unsigned i = 0; i < nm; i++) {
		const char *why = NULL;
		enum hr_ha_migrate_verdict v = hr_ha_may_migrate(&migrate_rows[i].ask, &why);
		ok(v == migrate_rows[i].want && why && *why, "migrate: %s -> %d (want %d; %s)",
		   migrate_rows[i].what, (int)v, (int)migrate_rows[i].want, why ? why : "no why");
	}

	for (unsigned i = 0; i < ns; i++) {
		const char *why = NULL;
		enum hr_ha_start_verdict v =
		    hr_ha_start(start_rows[i].st, start_rows[i].stopping, &why);
		ok(v == start_rows[i].want && why && *why, "start: %s%s -> %d (want %d; %s)",
		   hr_role_state_name(start_rows[i].st), start_rows[i].stopping ? ", stopping" : "",
		   (int)v, (int)start_rows[i].want, why ? why : "no why");
	}

	const char *why = NULL;
	ok(hr_ha_migrated(1, 0, &why) == HR_HA_MIGRATED &&
	       hr_ha_migrated(1, 1, NULL) == HR_HA_MIGRATED,
	   "migrated: the hand-off done -> the entry goes (in doubt or not)");
	ok(hr_ha_migrated(0, 0, &why) == HR_HA_MIGRATE_RUNS_ON &&
	       !strcmp(why, "it keeps running here"),
	   "migrated: failed before the hand-off -> it keeps running here");
	ok(hr_ha_migrated(0, 1, &why) == HR_HA_MIGRATE_IN_DOUBT && strstr(why, "in doubt"),
	   "migrated: failed, in doubt -> held here, the destination asked");

	/* the liveness rule the daemon's table uses */
	struct hr_ha_local none = {0}, ended = LOCAL(P, HR_RS_FAILED),
			   reaping = LOCAL(P, HR_RS_FAILED, .worker = 1),
			   setup = LOCAL(P, HR_RS_CONNECTING);
	ok(!hr_ha_local_alive(&none) && !hr_ha_local_alive(&ended) && hr_ha_local_alive(&reaping) &&
	       hr_ha_local_alive(&setup),
	   "alive: a worker runs, or the entry is in no final state");
	ok(!strcmp(hr_ha_accept_code(HR_HA_ACCEPT_NR), "refuse"),
	   "an unknown verdict reads as refuse");
	int every = 1;
	for (unsigned v = 0; v < HR_HA_ACCEPT_NR; v++) {
		int seen = 0;
		for (unsigned i = 0; i < na; i++)
			seen |= accept_rows[i].want == v;
		every &= seen;
	}
	ok(every, "the table has a row for every accept verdict");
	return tap_done();
}
