/*
 * failover.h - when may a backup take over?  The one place that decides,
 * so that heartbeats on their own schedule, quorum / witness leases and
 * fencing can be added here without touching the epoch engine.
 *
 * It decides; ha/role.c logs.  Today's rule: promote when the primary's stream has ended (EOF /
 * reset: its process or host is gone) or has been silent for silence_ms, and only if at least one
 * whole epoch was committed (there is something to run).
 */
#ifndef HR_HA_FAILOVER_H
#define HR_HA_FAILOVER_H

#include <stdint.h>

enum hr_ha_verdict {
	HR_HA_WAIT = 0,	   /* keep receiving */
	HR_HA_PROMOTE = 1, /* take over now */
	HR_HA_GIVE_UP = 2, /* stream gone before any commit: nothing to run */
};

struct hr_ha_monitor {
	const char *vm;
	uint64_t silence_ms; /* 0: only an ended stream counts */
	uint64_t last_rx_ns; /* last time anything arrived from the primary */
	int have_commit;     /* an epoch has been committed */
	int auto_promote;    /* else only an operator's failover promotes */
	const char *why;     /* set by hr_ha_decide: why the primary counts as lost */
};

/*
 * What a primary does with guest output once its backup's connection has
 * ended (EOF or reset).  That happens when the backup died - and when a
 * middlebox tore the link while the backup is alive and about to promote.
 * Nothing on the primary's side tells the two apart, so without proof
 * (a witness lease, to come) the output stays held: then only the backup
 * can speak for the VM (contract 4).  An operator who prefers the guest's
 * availability over that guarantee may allow release explicitly
 * (hareplicated --unprotected-output release).
 */
enum hr_ha_output {
	HR_HA_OUTPUT_HOLD = 0,
	HR_HA_OUTPUT_RELEASE = 1,
};
enum hr_ha_output hr_ha_after_backup_lost(int release_allowed);

void hr_ha_heard(struct hr_ha_monitor *m, uint64_t now_ns);
/* stream_ended: EOF, reset or a fatal stream error. */
enum hr_ha_verdict hr_ha_decide(struct hr_ha_monitor *m, uint64_t now_ns, int stream_ended);
/* How long the receive loop may block before deciding again (ms, -1 = forever). */
int hr_ha_poll_ms(const struct hr_ha_monitor *m, uint64_t now_ns);

#endif
