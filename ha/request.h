/*
 * request.h - what the operator's and the cluster manager's requests may
 * do to a VM here, as pure functions of what the daemon knows of it
 * (struct hr_ha_local, ha/accept.h):
 *
 *   hr_ha_failover  `failover`: promote the backup replica here by hand
 *   hr_ha_promote   `promote` (a cluster's resource agent): resume a
 *                   standby, promote a backup, or give the cluster's word
 *                   to a primary running alone
 *   hr_ha_demote    `demote` / `demote --drop`: pause in standby, or end
 *                   this host's copy as after a crash
 *
 * src/daemon (vm-failover.c, vm-cluster.c) gathers the evidence, calls
 * these and acts (signals the worker, answers); the answers' texts stay
 * there.  tests/t-request.c is the table.
 */
#ifndef HR_HA_REQUEST_H
#define HR_HA_REQUEST_H

#include "ha/accept.h"

struct hr_ha_request {
	struct hr_ha_local vm; /* exists = 0: no VM of that name here */
	int request_waiting;   /* another control request waits on the VM */
	int cluster_mode;      /* hareplicated --cluster-mode */
};

enum hr_ha_failover_verdict {
	HR_HA_FAILOVER = 0,	   /* promote: SIGUSR1, wait for "promoted" */
	HR_HA_FAILOVER_NO_VM,	   /* no VM of that name here */
	HR_HA_FAILOVER_IS_PRIMARY, /* the primary is here: fail over on the backup's host */
	HR_HA_FAILOVER_ALREADY,	   /* promoting or promoted already */
	HR_HA_FAILOVER_NO_REPLICA, /* no worker, or being stopped */
	HR_HA_FAILOVER_NO_COMMIT,  /* no committed epoch yet: nothing to run */
	HR_HA_FAILOVER_BUSY,	   /* another request waits on the VM */
};

enum hr_ha_failover_verdict hr_ha_failover(const struct hr_ha_request *rq, const char **why_r);

enum hr_ha_promote_verdict {
	HR_HA_PROMOTE_RESUME = 0,  /* a standby here: it resumes */
	HR_HA_PROMOTE_BUSY,	   /* a standby here, another request waits */
	HR_HA_PROMOTE_FAILOVER,	   /* no guest runs here: promote the backup (hr_ha_failover) */
	HR_HA_PROMOTE_NOT_HERE,	   /* a guest that runs here, but no usable worker */
	HR_HA_PROMOTE_NOT_CLUSTER, /* it runs here; only --cluster-mode takes the word */
	HR_HA_PROMOTE_RELEASE,	   /* the cluster's word: output may leave without a backup */
};

enum hr_ha_promote_verdict hr_ha_promote(const struct hr_ha_request *rq, const char **why_r);

enum hr_ha_demote_verdict {
	HR_HA_DEMOTE = 0,     /* pause at the next epoch boundary (standby) */
	HR_HA_DEMOTE_DROP,    /* end this host's copy as after a crash */
	HR_HA_DEMOTE_BUSY,    /* another request waits on the VM */
	HR_HA_DEMOTE_ALREADY, /* a standby already (and no drop asked) */
	HR_HA_DEMOTE_NOTHING, /* no guest runs here: nothing to do (not an error) */
};

enum hr_ha_demote_verdict hr_ha_demote(const struct hr_ha_request *rq, int drop,
				       const char **why_r);

/* The guest runs here (a primary or a promoted backup, not paused, not
 * ended); a usable worker: one runs and no stop was asked of it. */
int hr_ha_runs_guest(const struct hr_ha_local *vm);
int hr_ha_usable(const struct hr_ha_local *vm);

#endif
