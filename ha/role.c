/* role.c - the HA state machine: one transition function; its tokens are ha/token.c's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ha/role.h"

/* Each state's token; its name is the token without the '+'. */
static const enum hr_token state_tokens[HR_RS_NR] = {
    [HR_RS_CONNECTING] = HR_TOK_CONNECTING,
    [HR_RS_SYNCING] = HR_TOK_SYNCING,
    [HR_RS_PROTECTED] = HR_TOK_PROTECTED,
    [HR_RS_UNPROTECTED] = HR_TOK_UNPROTECTED,
    [HR_RS_BACKUP] = HR_TOK_BACKUP,
    [HR_RS_PROMOTING] = HR_TOK_PROMOTING,
    [HR_RS_PROMOTED] = HR_TOK_PROMOTED,
    [HR_RS_DEMOTED] = HR_TOK_DEMOTED,
    [HR_RS_FAILED] = HR_TOK_FAILED,
    [HR_RS_STOPPED] = HR_TOK_STOPPED,
    [HR_RS_STANDBY] = HR_TOK_STANDBY,
    [HR_RS_BACKUP_SILENT] = HR_TOK_BACKUP_SILENT, /* also the event's token */
};

/* Events that are news of their own, logged before the state change
 * (HR_TOK_NONE: the new state's token says it all). */
static const enum hr_token event_tokens[HR_RE_NR] = {
    [HR_RE_BACKUP_SILENT] = HR_TOK_BACKUP_SILENT,
    [HR_RE_BACKUP_ANSWERED] = HR_TOK_BACKUP_ANSWERED,
    [HR_RE_BACKUP_LOST] = HR_TOK_BACKUP_LOST,
    [HR_RE_OUTPUT_HELD] = HR_TOK_OUTPUT_HELD,
    [HR_RE_PRIMARY_LOST] = HR_TOK_PRIMARY_LOST,
    [HR_RE_OPERATOR_FAILOVER] = HR_TOK_FAILOVER_START,
    [HR_RE_REPROTECT] = HR_TOK_REPROTECT_START,
    [HR_RE_OUTPUT_RELEASED] = HR_TOK_OUTPUT_RELEASED,
    [HR_RE_STAND_DOWN] = HR_TOK_STAND_DOWN,
    [HR_RE_MIGRATE_START] = HR_TOK_MIGRATE_START,
    [HR_RE_MIGRATED] = HR_TOK_MIGRATED,
    [HR_RE_MIGRATE_FAILED] = HR_TOK_MIGRATE_FAILED,
    [HR_RE_RESUME] = HR_TOK_RESUME,
};

const char *hr_role_state_name(enum hr_role_state s)
{
	return hr_role_state_token(s) + 1;
}

const char *hr_role_state_token(enum hr_role_state s)
{
	return hr_token_str((unsigned)s < HR_RS_NR ? state_tokens[s] : HR_TOK_UNKNOWN);
}

enum hr_token hr_role_state_tok(enum hr_role_state s)
{
	return (unsigned)s < HR_RS_NR ? state_tokens[s] : HR_TOK_NONE;
}

const char *hr_role_event_token(enum hr_role_event ev)
{
	return hr_token_str(hr_role_event_tok(ev));
}

enum hr_token hr_role_event_tok(enum hr_role_event ev)
{
	return (unsigned)ev < HR_RE_NR ? event_tokens[ev] : HR_TOK_NONE;
}

int hr_role_state_parse(const char *name, enum hr_role_state *s_r)
{
	for (unsigned s = 0; s < HR_RS_NR; s++)
		if (!strcmp(name, hr_role_state_name((enum hr_role_state)s))) {
			*s_r = (enum hr_role_state)s;
			return 0;
		}
	return -EINVAL;
}

const char *hr_role_side_name(enum hr_role_side side, enum hr_role_state s)
{
	if (s == HR_RS_PROMOTING || s == HR_RS_PROMOTED)
		return "promoted";
	return side == HR_SIDE_BACKUP ? "backup" : "primary";
}

void hr_role_init(struct hr_role *r, const char *vm, enum hr_role_side side,
		  hr_role_observer_fn observer, void *opaque)
{
	memset(r, 0, sizeof(*r));
	hr_role_set_vm(r, vm);
	r->side = side;
	r->state = HR_RS_CONNECTING;
	r->since_ns = hr_now_ns();
	r->observer = observer;
	r->opaque = opaque;
}

void hr_role_set_vm(struct hr_role *r, const char *vm)
{
	snprintf(r->vm, sizeof(r->vm), "%s", vm && *vm ? vm : "vm");
}

int hr_role_is_final(enum hr_role_state s)
{
	return s == HR_RS_STOPPED || s == HR_RS_FAILED || s == HR_RS_DEMOTED;
}

int hr_role_held_after(int held_before, enum hr_role_state to, enum hr_role_event ev)
{
	if (ev == HR_RE_OUTPUT_HELD || ev == HR_RE_BACKUP_SILENT || to == HR_RS_STANDBY)
		return 1;
	if (ev == HR_RE_OUTPUT_RELEASED || ev == HR_RE_BACKUP_ANSWERED || to == HR_RS_PROTECTED ||
	    to == HR_RS_PROMOTED)
		return 0;
	return held_before;
}

int hr_role_is_held(const struct hr_role *r)
{
	return __atomic_load_n(&r->held, __ATOMIC_RELAXED);
}

#define KEEP (-1) /* the event changes nothing here */
#define BAD  (-2) /* the event cannot happen here */

/* The transition table: the next state, KEEP or BAD. */
static int next_state(const struct hr_role *r, enum hr_role_event ev)
{
	enum hr_role_side side = r->side;
	enum hr_role_state s = r->state;
	int final = hr_role_is_final(s);

	switch (ev) {
	case HR_RE_STOP:
	case HR_RE_GUEST_EXIT:
		return final ? KEEP : HR_RS_STOPPED;
	case HR_RE_ERROR:
		return final ? KEEP : HR_RS_FAILED;
	default:
		break;
	}
	if (final)
		return BAD;
	if (ev == HR_RE_DEMOTE) {
		if (s == HR_RS_STANDBY)
			return KEEP;
		return s == HR_RS_PROTECTED || s == HR_RS_BACKUP_SILENT || s == HR_RS_UNPROTECTED ||
			       s == HR_RS_PROMOTED
			   ? HR_RS_STANDBY
			   : BAD;
	}
	if (s == HR_RS_STANDBY) {
		/* paused: it resumes, loses its backup, or gives way */
		switch (ev) {
		case HR_RE_RESUME:
			return r->resume_to;
		case HR_RE_BACKUP_LOST:
			return KEEP; /* resumed, it runs without a backup */
		case HR_RE_TOOK_OVER:
		case HR_RE_STAND_DOWN:
			return HR_RS_DEMOTED;
		default:
			return BAD;
		}
	}
	if (ev == HR_RE_RESUME)
		return BAD;
	if (ev == HR_RE_REPROTECT)
		return s == HR_RS_UNPROTECTED || s == HR_RS_PROMOTED ? HR_RS_CONNECTING : BAD;
	if (ev == HR_RE_STAND_DOWN)
		return HR_RS_DEMOTED;
	if (ev == HR_RE_MIGRATE_START)
		return side == HR_SIDE_PRIMARY && s != HR_RS_PROMOTING ? HR_RS_CONNECTING : BAD;
	if (ev == HR_RE_MIGRATE_FAILED)
		return side == HR_SIDE_PRIMARY ? HR_RS_UNPROTECTED : BAD;
	if (ev == HR_RE_MIGRATED) {
		if (side == HR_SIDE_PRIMARY)
			return HR_RS_STOPPED;
		return s == HR_RS_SYNCING || s == HR_RS_BACKUP ? HR_RS_UNPROTECTED : BAD;
	}
	if (ev == HR_RE_OUTPUT_HELD || ev == HR_RE_OUTPUT_RELEASED)
		return s == HR_RS_UNPROTECTED || s == HR_RS_PROMOTED ? KEEP : BAD;
	if (side == HR_SIDE_PRIMARY) {
		switch (ev) {
		case HR_RE_CONNECTED:
			return s == HR_RS_CONNECTING ? HR_RS_SYNCING : BAD;
		case HR_RE_SYNCED:
			return s == HR_RS_SYNCING ? HR_RS_PROTECTED : BAD;
		case HR_RE_BACKUP_SILENT: /* while syncing it is not protected yet anyway */
			if (s == HR_RS_PROTECTED)
				return HR_RS_BACKUP_SILENT;
			return s == HR_RS_SYNCING || s == HR_RS_BACKUP_SILENT ? KEEP : BAD;
		case HR_RE_BACKUP_ANSWERED:
			if (s == HR_RS_BACKUP_SILENT)
				return HR_RS_PROTECTED;
			return s == HR_RS_SYNCING || s == HR_RS_PROTECTED ? KEEP : BAD;
		case HR_RE_BACKUP_LOST:
			return s == HR_RS_UNPROTECTED ? KEEP : HR_RS_UNPROTECTED;
		case HR_RE_TOOK_OVER:
			return HR_RS_DEMOTED;
		default:
			return BAD;
		}
	}
	switch (ev) {
	case HR_RE_CONNECTED:
		return s == HR_RS_CONNECTING ? HR_RS_SYNCING : BAD;
	case HR_RE_SYNCED:
		return s == HR_RS_SYNCING ? HR_RS_BACKUP : BAD;
	case HR_RE_PRIMARY_LOST:
	case HR_RE_OPERATOR_FAILOVER:
		return s == HR_RS_BACKUP ? HR_RS_PROMOTING : s == HR_RS_PROMOTING ? KEEP : BAD;
	case HR_RE_PROMOTED:
		return s == HR_RS_PROMOTING ? HR_RS_PROMOTED : BAD;
	default:
		return BAD;
	}
}

int hr_role_next(enum hr_role_side side, enum hr_role_state s, enum hr_role_event ev)
{
	struct hr_role r = {.side = side, .state = s};
	if ((unsigned)s >= HR_RS_NR || (unsigned)ev >= HR_RE_NR ||
	    (ev == HR_RE_RESUME && s == HR_RS_STANDBY))
		return -EINVAL;
	int to = next_state(&r, ev);
	return to == BAD ? -EINVAL : to == KEEP ? (int)s : to;
}

int hr_role_event(struct hr_role *r, enum hr_role_event ev, const char *why)
{
	enum hr_role_state from = r->state;
	int to = next_state(r, ev);
	enum hr_token etok = hr_role_event_tok(ev);

	if (to == BAD) {
		log_warnx(r->vm, "role: event %d is not possible in state %s; ignored", (int)ev,
			  hr_role_state_name(from));
		return -EINVAL;
	}
	if (ev == HR_RE_REPROTECT || ev == HR_RE_MIGRATED || (ev == HR_RE_DEMOTE && to != KEEP))
		r->side = HR_SIDE_PRIMARY; /* a promoted backup is a primary from now on */
	/* a silent backup resumes as protected: the engine calls it silent again
	 * (its next wait for an ack starts afresh) if it still is */
	if (ev == HR_RE_DEMOTE && to != KEEP)
		r->resume_to = from == HR_RS_PROTECTED || from == HR_RS_BACKUP_SILENT
				   ? HR_RS_PROTECTED
				   : HR_RS_UNPROTECTED;
	if (ev == HR_RE_BACKUP_LOST && from == HR_RS_STANDBY)
		r->resume_to = HR_RS_UNPROTECTED;
	__atomic_store_n(
	    &r->held, hr_role_held_after(r->held, to == KEEP ? from : (enum hr_role_state)to, ev),
	    __ATOMIC_RELAXED); /* before the observer hears of it */
	if (etok != HR_TOK_NONE)
		hr_token_log(r->vm, etok, "%s", why ? why : "");
	if (to == KEEP) {
		if (etok != HR_TOK_NONE && r->observer)
			r->observer(r->opaque, from, from, ev);
		return (int)from;
	}
	__atomic_store_n((int *)&r->state, to, __ATOMIC_RELAXED); /* read by status */
	__atomic_store_n(&r->since_ns, hr_now_ns(), __ATOMIC_RELAXED);
	if (etok != HR_TOK_NONE)
		why = NULL; /* said with the event's token */
	/* +backup-silent: the event's line said the state too */
	if (state_tokens[r->state] != etok)
		hr_token_log(r->vm, state_tokens[r->state], "%s", why ? why : "");
	if (r->observer)
		r->observer(r->opaque, from, r->state, ev);
	return (int)r->state;
}
