/*
 * role.h - the one HA state machine of a protected VM, on either host.
 *
 * Every role and state a VM can be in is one enum; every change goes
 * through hr_role_event(), which logs the stable transition tokens
 * (+protected, +backup-lost, +failover-start, +promoted, +demoted, ...;
 * spelt in ha/token.c, as every token is).  The engine reports events; the worker passes
 * the state names to the daemon; `status`, `status --json` and the drill
 * read the same names (hr_role_state_name / hr_role_state_parse).
 *
 *   primary: connecting -> syncing -> protected -> unprotected (backup lost)
 *            protected -> backup-silent (nothing from the backup for the
 *            failure timeout: output held, not protected) -> protected
 *            (it answered) | unprotected (lost) | demoted (it took over)
 *            protected | unprotected -> connecting (+migrate-start) -> syncing
 *                      -> stopped (+migrated) | unprotected (+migrate-failed)
 *   target:  connecting -> syncing -> backup -> unprotected (+migrated; a primary)
 *                                              -> demoted     (backup took over)
 *            unprotected -> connecting (re-protection with a returning backup)
 *   backup:  connecting -> syncing -> backup -> promoting -> promoted
 *            promoted -> connecting (a new backup: from then on a primary)
 *   cluster: protected | backup-silent | unprotected | promoted -> standby
 *            (demoted by the cluster manager: the guest paused, a primary
 *            from then on)
 *            standby -> the state it came from (resumed; unprotected once
 *            its backup was lost meanwhile) | demoted (the backup took over)
 *   either:  any -> stopped (on purpose, guest exit) | failed (error)
 *
 * Not thread-safe: one engine thread drives it.
 */
#ifndef HR_HA_ROLE_H
#define HR_HA_ROLE_H

#include <stdint.h>

#include "ha/token.h"

enum hr_role_state {
	HR_RS_CONNECTING = 0, /* handshake with the peer in progress */
	HR_RS_SYNCING,	      /* memory being copied; no complete epoch yet */
	HR_RS_PROTECTED,      /* primary: the backup holds a complete copy */
	HR_RS_UNPROTECTED,    /* primary: no backup; the guest runs on */
	HR_RS_BACKUP,	      /* backup: holds a committed epoch */
	HR_RS_PROMOTING,      /* backup: taking over */
	HR_RS_PROMOTED,	      /* backup: the guest runs here now */
	HR_RS_DEMOTED,	      /* old primary: the backup took over; guest stopped here */
	HR_RS_FAILED,	      /* an error ended replication */
	HR_RS_STOPPED,	      /* stopped on purpose or the guest exited */
	HR_RS_STANDBY,	      /* primary demoted by the cluster: the guest is paused at an
			       * epoch its backup acknowledged (if it has one), output of
			       * later epochs held; it resumes or gives way */
	HR_RS_BACKUP_SILENT,  /* primary: nothing from its backup for the failure timeout
			       * (a partition, a hung host): not protected, output held, the
			       * backup may be promoting itself */
	HR_RS_NR,
};

enum hr_role_side {
	HR_SIDE_PRIMARY = 1,
	HR_SIDE_BACKUP = 2,
};

enum hr_role_event {
	HR_RE_CONNECTED = 0,   /* handshake done */
	HR_RE_SYNCED,	       /* epoch 0 acknowledged (primary) / committed (backup) */
	HR_RE_BACKUP_SILENT,   /* primary: nothing from the backup for the failure timeout */
	HR_RE_BACKUP_ANSWERED, /* primary: the silent backup answered again */
	HR_RE_BACKUP_LOST,     /* primary: the backup's stream ended */
	HR_RE_OUTPUT_HELD,  /* primary, unprotected: output is held (no proof the backup is gone) */
	HR_RE_PRIMARY_LOST, /* backup: the primary's stream ended or went silent */
	HR_RE_OPERATOR_FAILOVER, /* backup: `hareplicate failover` */
	HR_RE_PROMOTED,		 /* backup: the guest runs here */
	HR_RE_TOOK_OVER,	 /* primary: the backup announced its promotion */
	HR_RE_STOP,		 /* stopped on purpose */
	HR_RE_GUEST_EXIT,	 /* the guest stopped on its own */
	HR_RE_ERROR,		 /* replication failed */
	HR_RE_REPROTECT,	 /* unprotected or promoted: a backup answered; sync again */
	HR_RE_OUTPUT_RELEASED,	 /* without a backup: output flows (a lease, or allowed) */
	HR_RE_STAND_DOWN,	 /* the peer or the witness says the VM runs elsewhere */
	HR_RE_MIGRATE_START,	 /* primary: a migration session starts (a backup is dropped) */
	HR_RE_MIGRATED,		 /* primary: the destination took over (stopped here);
				  * migration target: it runs the VM (an unprotected primary) */
	HR_RE_MIGRATE_FAILED,	 /* primary: the migration ended before the hand-off */
	HR_RE_DEMOTE,		 /* the cluster demotes it: the guest pauses (standby) */
	HR_RE_RESUME,		 /* the cluster promotes a standby again: the guest runs on */
	HR_RE_NR,
};

/* Told of every change (after it was logged), and of every event that has
 * a token of its own even when the state stays (from == to); from the
 * engine thread. */
typedef void (*hr_role_observer_fn)(void *opaque, enum hr_role_state from, enum hr_role_state to,
				    enum hr_role_event ev);

struct hr_role {
	char vm[64];
	enum hr_role_side side;
	enum hr_role_state state;
	enum hr_role_state resume_to; /* standby: where HR_RE_RESUME leads */
	int held;		      /* output held (hr_role_held_after); read it with
				       * hr_role_is_held */
	uint64_t since_ns;	      /* CLOCK_MONOTONIC of the last change */
	hr_role_observer_fn observer;
	void *opaque;
};

void hr_role_init(struct hr_role *r, const char *vm, enum hr_role_side side,
		  hr_role_observer_fn observer, void *opaque);

/* Rename (the backup learns the VM's name in the handshake). */
void hr_role_set_vm(struct hr_role *r, const char *vm);

/*
 * Apply an event: log its token(s) with the VM's name and `why` (may be
 * NULL), move to the next state and tell the observer.  An event that
 * changes nothing in this state is logged (when it has a token) and
 * ignored; one that is impossible here is refused with -EINVAL and a
 * warning.  Returns the new state (>= 0).
 */
int hr_role_event(struct hr_role *r, enum hr_role_event ev, const char *why);

/* Output held: nothing leaves without an ack or a lease (a silent backup
 * counts), or the guest is paused in standby (it gives way to a peer that
 * speaks).  Kept by hr_role_event; workers report it, the daemon's accept
 * decision (ha/accept.c) reads that report. */
int hr_role_is_held(const struct hr_role *r);
/* The rule: held after ev led to state `to` (`to` = the state it stays in
 * when ev changes nothing), held_before before it. */
int hr_role_held_after(int held_before, enum hr_role_state to, enum hr_role_event ev);
/* stopped, failed, demoted: nothing but stop/error happens after them. */
int hr_role_is_final(enum hr_role_state s);
/*
 * Where ev leads from state s on side `side`, without a machine and without
 * a log line: the next state, s itself when ev changes nothing there, or
 * -EINVAL when it cannot happen (also HR_RE_RESUME: where a standby resumes
 * to is known to its machine only).  For the daemon, which knows a worker's
 * state from its reports: the worker's end is HR_RE_STOP or HR_RE_ERROR.
 */
int hr_role_next(enum hr_role_side side, enum hr_role_state s, enum hr_role_event ev);

/* "protected", "promoted", ...: the names status, JSON and drill use. */
const char *hr_role_state_name(enum hr_role_state s);
/* "+protected", ...: the log token of entering a state (ha/token.h). */
const char *hr_role_state_token(enum hr_role_state s);
enum hr_token hr_role_state_tok(enum hr_role_state s);
/* "+backup-lost", ... or NULL: the token of an event itself. */
const char *hr_role_event_token(enum hr_role_event ev);
enum hr_token hr_role_event_tok(enum hr_role_event ev); /* HR_TOK_NONE: none */
/* Name -> state; -EINVAL if unknown. */
int hr_role_state_parse(const char *name, enum hr_role_state *s_r);
/* "primary", "backup" or "promoted": the host's role in this state. */
const char *hr_role_side_name(enum hr_role_side side, enum hr_role_state s);

#endif
