/* accept.c - the daemon's decisions about a VM name here (accept.h). */
#include "ha/accept.h"

int hr_ha_local_alive(const struct hr_ha_local *here)
{
	return here->exists && (here->worker || !hr_role_is_final(here->state));
}

static const char *const accept_codes[HR_HA_ACCEPT_NR] = {
    [HR_HA_ACCEPT] = "accept", [HR_HA_REFUSE_NAME] = "refuse",
    [HR_HA_BUSY] = "busy",     [HR_HA_BUSY_STAND_DOWN] = "busy",
    [HR_HA_RUNS] = "runs",     [HR_HA_REFUSE_BOTH_HELD] = "refuse",
};

const char *hr_ha_accept_code(enum hr_ha_accept_verdict v)
{
	return (unsigned)v < HR_HA_ACCEPT_NR ? accept_codes[v] : "refuse";
}

/*
 * What runs here under the name decides:
 *   nothing, or an ended worker       accept (an ended entry is replaced)
 *   a worker in a final state         busy: it is on its way out
 *   a VM migrating from here (or      busy: the destination asks for its
 *     migrated, its worker ending)    backup while the source here ends
 *   a backup (not yet promoted)       busy: it promotes or ends on its own
 *   a primary holding its output,     busy, and it is stopped: nothing it
 *     and the caller speaks for the   held was ever released, so the caller's
 *     VM (a promoted backup)          copy is at least as new
 *                                     (docs/design.md contract 3)
 *   a primary or promoted guest       runs: the caller, if it holds its
 *     releasing output                output, must stand down
 *   a primary holding its output,     refuse: neither side proves the other
 *     and the caller holds too        gone; the caller asks again later
 */
enum hr_ha_accept_verdict hr_ha_accept(const struct hr_ha_local *here,
				       const struct hr_ha_caller *caller, const char **why_r)
{
	const char *why;
	enum hr_ha_accept_verdict v;

	if (caller->named || !caller->name_ok) {
		why = caller->named ? "this connection named its VM already" : "invalid VM name";
		v = HR_HA_REFUSE_NAME;
	} else if (!hr_ha_local_alive(here)) {
		why = here->exists ? "the VM's worker here ended: its entry is replaced"
				   : "no VM of that name here";
		v = HR_HA_ACCEPT;
	} else if (hr_role_is_final(here->state)) {
		why = "the copy here is on its way out";
		v = HR_HA_BUSY;
	} else if (here->migrating || here->migrated) {
		why = "the VM is migrating from here";
		v = HR_HA_BUSY;
	} else if (here->side == HR_SIDE_BACKUP && here->state != HR_RS_PROMOTED) {
		why = "a backup here: it promotes or ends on its own";
		v = HR_HA_BUSY;
	} else if (here->held && caller->speaking) {
		if (here->worker && !here->stopping) {
			why = "the caller runs this VM and releases its output; the copy here held "
			      "its output: it stands down";
			v = HR_HA_BUSY_STAND_DOWN;
		} else {
			why = "the copy here held its output and is stopping";
			v = HR_HA_BUSY;
		}
	} else if (!here->held) {
		why = "the VM runs here and releases its output";
		v = HR_HA_RUNS;
	} else {
		why = "both copies hold their output: neither proves the other gone";
		v = HR_HA_REFUSE_BOTH_HELD;
	}
	if (why_r)
		*why_r = why;
	return v;
}

enum hr_ha_migrate_verdict hr_ha_may_migrate(const struct hr_ha_migrate_ask *ask,
					     const char **why_r)
{
	const struct hr_ha_local *vm = &ask->vm;
	const char *why;
	enum hr_ha_migrate_verdict v;

	if (vm->migrating) {
		why = "a migration is under way";
		v = HR_HA_MIGRATE_ALREADY;
	} else if (ask->request_waiting) {
		why = "another request for the VM is in progress";
		v = HR_HA_MIGRATE_BUSY;
	} else if (vm->side != HR_SIDE_PRIMARY || !vm->worker || vm->stopping ||
		   (vm->state != HR_RS_PROTECTED && vm->state != HR_RS_BACKUP_SILENT &&
		    vm->state != HR_RS_UNPROTECTED)) {
		why = "it does not run here as a primary";
		v = HR_HA_MIGRATE_NOT_PRIMARY;
	} else if (vm->held) {
		why = "its output is held: its backup is silent or lost and may run it";
		v = HR_HA_MIGRATE_HELD;
	} else if (ask->witness) {
		why = "migration with a witness is not supported yet";
		v = HR_HA_MIGRATE_WITNESS;
	} else if (ask->to_self) {
		why = "the destination is this host";
		v = HR_HA_MIGRATE_SELF;
	} else {
		why = "a running primary whose output flows";
		v = HR_HA_MIGRATE;
	}
	if (why_r)
		*why_r = why;
	return v;
}

enum hr_ha_migrated_verdict hr_ha_migrated(int ok, int in_doubt, const char **why_r)
{
	enum hr_ha_migrated_verdict v = ok	   ? HR_HA_MIGRATED
					: in_doubt ? HR_HA_MIGRATE_IN_DOUBT
						   : HR_HA_MIGRATE_RUNS_ON;
	static const char *const whys[] = {
	    [HR_HA_MIGRATED] = "the destination runs the VM",
	    [HR_HA_MIGRATE_RUNS_ON] = "it keeps running here",
	    [HR_HA_MIGRATE_IN_DOUBT] = "in doubt: the destination may run it - this host holds "
				       "its output and asks the destination",
	};
	if (why_r)
		*why_r = whys[v];
	return v;
}

enum hr_ha_start_verdict hr_ha_start(enum hr_role_state st, int stopping, const char **why_r)
{
	const char *why;
	enum hr_ha_start_verdict v;

	if (st == HR_RS_SYNCING || st == HR_RS_PROTECTED) {
		why = "the backup took the handshake";
		v = HR_HA_START_UP;
	} else if (st == HR_RS_FAILED || st == HR_RS_CONNECTING || stopping) {
		why = st == HR_RS_CONNECTING ? "still connecting" : "the worker ends";
		v = HR_HA_START_WAIT;
	} else {
		why = "the first session ended: nothing runs unprotected on a start";
		v = HR_HA_START_ABORT;
	}
	if (why_r)
		*why_r = why;
	return v;
}
