/* request.c - what failover, promote and demote may do here (request.h). */
#include "ha/request.h"

int hr_ha_runs_guest(const struct hr_ha_local *vm)
{
	if (!vm->exists || vm->state == HR_RS_STANDBY || hr_role_is_final(vm->state))
		return 0;
	return vm->side == HR_SIDE_PRIMARY || vm->state == HR_RS_PROMOTED;
}

int hr_ha_usable(const struct hr_ha_local *vm)
{
	return vm->exists && vm->worker && !vm->stopping;
}

#define VERDICT(v, text)                                                                           \
	do {                                                                                       \
		if (why_r)                                                                         \
			*why_r = (text);                                                           \
		return (v);                                                                        \
	} while (0)

enum hr_ha_failover_verdict hr_ha_failover(const struct hr_ha_request *rq, const char **why_r)
{
	const struct hr_ha_local *vm = &rq->vm;

	if (!vm->exists)
		VERDICT(HR_HA_FAILOVER_NO_VM, "no VM of that name here");
	if (vm->side == HR_SIDE_PRIMARY)
		VERDICT(HR_HA_FAILOVER_IS_PRIMARY, "the primary is here");
	if (vm->state == HR_RS_PROMOTING || vm->state == HR_RS_PROMOTED)
		VERDICT(HR_HA_FAILOVER_ALREADY, "promoted already");
	if (!hr_ha_usable(vm))
		VERDICT(HR_HA_FAILOVER_NO_REPLICA, "no running replica here");
	if (vm->state != HR_RS_BACKUP)
		VERDICT(HR_HA_FAILOVER_NO_COMMIT, "no committed copy yet: promoting would lose the "
						  "guest");
	if (rq->request_waiting)
		VERDICT(HR_HA_FAILOVER_BUSY, "another request is in progress");
	VERDICT(HR_HA_FAILOVER, "a replica holding a committed epoch: promote it");
}

enum hr_ha_promote_verdict hr_ha_promote(const struct hr_ha_request *rq, const char **why_r)
{
	const struct hr_ha_local *vm = &rq->vm;

	if (vm->exists && vm->state == HR_RS_STANDBY && hr_ha_usable(vm)) {
		if (rq->request_waiting)
			VERDICT(HR_HA_PROMOTE_BUSY, "another request is in progress");
		VERDICT(HR_HA_PROMOTE_RESUME, "the standby guest resumes");
	}
	if (!hr_ha_runs_guest(vm))
		VERDICT(HR_HA_PROMOTE_FAILOVER, "no guest runs here: the backup is promoted");
	if (!hr_ha_usable(vm))
		VERDICT(HR_HA_PROMOTE_NOT_HERE, "its worker is gone or stopping");
	if (!rq->cluster_mode)
		VERDICT(HR_HA_PROMOTE_NOT_CLUSTER,
			"only a daemon in --cluster-mode takes the cluster's word");
	VERDICT(HR_HA_PROMOTE_RELEASE,
		"the cluster confirms the peer holds no copy: output may leave without a backup");
}

enum hr_ha_demote_verdict hr_ha_demote(const struct hr_ha_request *rq, int drop, const char **why_r)
{
	const struct hr_ha_local *vm = &rq->vm;

	if (vm->exists && rq->request_waiting)
		VERDICT(HR_HA_DEMOTE_BUSY, "another request is in progress");
	if (hr_ha_usable(vm) && vm->state == HR_RS_STANDBY && !drop)
		VERDICT(HR_HA_DEMOTE_ALREADY, "standby already");
	if (!hr_ha_usable(vm) || (!hr_ha_runs_guest(vm) && vm->state != HR_RS_STANDBY))
		VERDICT(HR_HA_DEMOTE_NOTHING, "no guest runs here");
	if (drop)
		VERDICT(HR_HA_DEMOTE_DROP, "this host's copy ends as after a crash");
	VERDICT(HR_HA_DEMOTE, "the guest pauses at the next epoch boundary");
}
