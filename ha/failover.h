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
 * A primary without a backup (its backup was lost, or it is a promoted
 * backup): may its guest's output leave?  A lost backup may have died - or
 * sit behind a torn link, about to promote; nothing on this side tells the
 * two apart.  So output is released only with proof that no other host
 * speaks for the VM:
 *   - it was already speaking (a promoted backup: its old primary holds
 *     output once its backup is gone, and stands down when it meets it);
 *   - a witness lease (to come: granted to one host at a time);
 *   - the operator's explicit choice of availability over that guarantee
 *     (hareplicated --unprotected-output release).
 * Otherwise output stays held (+output-held) until a backup is back and
 * acknowledges an epoch; held output is released then.
 */
enum hr_ha_output {
	HR_HA_OUTPUT_HOLD = 0,
	HR_HA_OUTPUT_RELEASE = 1,
	HR_HA_OUTPUT_STAND_DOWN = 2, /* the VM runs elsewhere: stop here */
};

struct hr_ha_alone {
	const char *vm;
	int release_allowed; /* --unprotected-output release */
	int speaking;	     /* it was releasing when it became alone */
	const char *witness; /* "host[:port]" or NULL */
	const char *why;     /* set by hr_ha_alone_output */
};
enum hr_ha_output hr_ha_alone_output(struct hr_ha_alone *a, uint64_t now_ns);
/* When to decide again (ms, -1: only on events). */
int hr_ha_alone_poll_ms(const struct hr_ha_alone *a, uint64_t now_ns);

void hr_ha_heard(struct hr_ha_monitor *m, uint64_t now_ns);
/* stream_ended: EOF, reset or a fatal stream error. */
enum hr_ha_verdict hr_ha_decide(struct hr_ha_monitor *m, uint64_t now_ns, int stream_ended);
/* How long the receive loop may block before deciding again (ms, -1 = forever). */
int hr_ha_poll_ms(const struct hr_ha_monitor *m, uint64_t now_ns);

#endif
