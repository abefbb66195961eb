/*
 * accept.h - the daemon's HA decisions about a VM's name on this host, as
 * pure functions of what it knows (no I/O, no clock, no logging):
 *
 *   hr_ha_accept      a primary (or a migration source) connects for a VM
 *                     name: take a backup replica for it, refuse, tell it the
 *                     VM runs here, or stop the local copy first
 *   hr_ha_may_migrate `migrate` asked for a VM: may it leave now?
 *   hr_ha_migrated    the worker's report of a migration: forget the VM here,
 *                     or it runs on here
 *   hr_ha_start       a new primary reports a state: started, wait, or stop it
 *
 * src/daemon (vm-accept.c, vm-migrate.c) gathers the evidence, calls these
 * and acts on the verdict; it does not decide.  Every verdict comes with a
 * `why` (a static string) for the log.  tests/t-accept.c is the table.
 */
#ifndef HR_HA_ACCEPT_H
#define HR_HA_ACCEPT_H

#include "ha/role.h"

/* What the daemon knows of the entry of that name here (if any). */
struct hr_ha_local {
	int exists;		  /* an entry of that name */
	int worker;		  /* its worker runs (a child or an adopted one) */
	enum hr_role_side side;	  /* as the worker last reported it */
	enum hr_role_state state; /* as the worker last reported it */
	int held;		  /* its output is held (no ack, no lease, or standby) */
	int migrating;		  /* a migration from here is under way */
	int migrated;		  /* ... it ended with the hand-off: the worker ends */
	int stopping;		  /* a stop was asked of it already */
};

/* A replication connection: who connects and what it says (its claim, as
 * authenticated as the link is).  The preamble carries no epoch or term,
 * and a migration source is told apart only by speaking=0 and, when the
 * VM was protected, backup=: neither is evidence here yet, nor is this
 * host's witness standing. */
struct hr_ha_caller {
	int name_ok;  /* the preamble named a valid VM */
	int named;    /* this connection's worker had its name already (asked twice) */
	int speaking; /* preamble speaking=1: the caller releases its guest's output
		       * (a promoted backup; a migration source says 0) */
};

/*
 * The answer to a primary's connection; hr_ha_accept_code() is the word
 * the worker puts in the preamble's reply (code=), which the caller reads
 * (src/daemon/reconnect.c: "runs" -> -HR_EPROMOTED, else -EAGAIN).
 */
enum hr_ha_accept_verdict {
	HR_HA_ACCEPT = 0,	/* accept: this host takes a backup replica (an entry whose
				 * worker ended is replaced) */
	HR_HA_REFUSE_NAME,	/* refuse: no valid name, or named twice */
	HR_HA_BUSY,		/* busy: what runs here ends, or promotes, on its own;
				 * the caller asks again */
	HR_HA_BUSY_STAND_DOWN,	/* busy, and the copy here (which held its output) is
				 * stopped (+stand-down): the caller speaks, so nothing
				 * the copy held was released - the caller's copy is at
				 * least as new; it asks again */
	HR_HA_RUNS,		/* runs: the VM runs here, releasing output; the caller,
				 * if it holds its output, stands down */
	HR_HA_REFUSE_BOTH_HELD, /* refuse: the copy here holds its output and so does the
				 * caller: neither proves the other gone */
	HR_HA_ACCEPT_NR,
};

enum hr_ha_accept_verdict hr_ha_accept(const struct hr_ha_local *here,
				       const struct hr_ha_caller *caller, const char **why_r);
/* "accept", "refuse", "busy" or "runs". */
const char *hr_ha_accept_code(enum hr_ha_accept_verdict v);
/* The local entry still counts (a worker runs, or it is in no final state):
 * an entry that does not is replaced by a new one of that name. */
int hr_ha_local_alive(const struct hr_ha_local *here);

/* `migrate`: the VM here (exists and alive: the caller checked). */
struct hr_ha_migrate_ask {
	struct hr_ha_local vm;
	int request_waiting; /* another control request waits on the VM */
	int witness;	     /* this daemon has a witness (--witness) */
	int to_self;	     /* the destination is this host */
};

enum hr_ha_migrate_verdict {
	HR_HA_MIGRATE = 0,	   /* start it */
	HR_HA_MIGRATE_ALREADY,	   /* a migration is under way */
	HR_HA_MIGRATE_BUSY,	   /* another request waits on the VM */
	HR_HA_MIGRATE_NOT_PRIMARY, /* not a running primary (protected, backup-silent or
				    * unprotected) */
	HR_HA_MIGRATE_HELD,	   /* its output is held: its lost backup may run it */
	HR_HA_MIGRATE_WITNESS,	   /* not supported with a witness yet */
	HR_HA_MIGRATE_SELF,	   /* the destination is this host */
	HR_HA_MIGRATE_NR,
};

enum hr_ha_migrate_verdict hr_ha_may_migrate(const struct hr_ha_migrate_ask *ask,
					     const char **why_r);

/* The worker's report of a migration's end. */
enum hr_ha_migrated_verdict {
	HR_HA_MIGRATED = 0,	/* the destination runs it: the entry goes when the worker ends */
	HR_HA_MIGRATE_RUNS_ON,	/* failed before the hand-off: it runs on here */
	HR_HA_MIGRATE_IN_DOUBT, /* failed, hand-off in doubt: output held here, the
				 * destination is asked (it may run it) */
};

enum hr_ha_migrated_verdict hr_ha_migrated(int ok, int in_doubt, const char **why_r);

/* `start`: the new primary's worker reports a state while the request
 * waits.  A start never leaves a VM running unprotected: a first session
 * that ended (the backup refused the VM, or went away) stops it. */
enum hr_ha_start_verdict {
	HR_HA_START_WAIT = 0, /* not yet (connecting), or it ends anyway (failed, stopping) */
	HR_HA_START_UP,	      /* syncing or protected: answer "started" */
	HR_HA_START_ABORT,    /* anything else: stop the worker; its exit line says why */
};

enum hr_ha_start_verdict hr_ha_start(enum hr_role_state st, int stopping, const char **why_r);

#endif
