/*
 * token.h - the stable HA event tokens: every `+token` the tree logs, its
 * string and its log level, in one table (token.c), and the one function
 * that logs them.  Scripts, the drill and `hareplicate status` (its
 * last_event) read these strings, so a released token never changes its
 * spelling; a new one gets a new entry here.  No other file spells a token:
 * role.c's state and event tokens are entries of this table too (a state's
 * name is its token without the '+'), and tests/t-token.c checks that.
 */
#ifndef HR_HA_TOKEN_H
#define HR_HA_TOKEN_H

#include "common/log.h"

enum hr_token {
	HR_TOK_NONE = 0, /* no token (an event that is news only by its state) */
	HR_TOK_UNKNOWN,	 /* "+unknown": what an out-of-range state or token logs as */
	/* entering a role state (ha/role.c): '+' and the state's name */
	HR_TOK_CONNECTING,
	HR_TOK_SYNCING,
	HR_TOK_PROTECTED,
	HR_TOK_UNPROTECTED,
	HR_TOK_BACKUP,
	HR_TOK_PROMOTING,
	HR_TOK_PROMOTED,
	HR_TOK_DEMOTED,
	HR_TOK_FAILED,
	HR_TOK_STOPPED,
	HR_TOK_STANDBY,
	HR_TOK_BACKUP_SILENT, /* a state entered by the event of the same name */
	/* role events (ha/role.c; +stand-down and +migrated also by the daemon) */
	HR_TOK_BACKUP_ANSWERED,
	HR_TOK_BACKUP_LOST,
	HR_TOK_OUTPUT_HELD,
	HR_TOK_PRIMARY_LOST,
	HR_TOK_FAILOVER_START,
	HR_TOK_REPROTECT_START,
	HR_TOK_OUTPUT_RELEASED,
	HR_TOK_STAND_DOWN,
	HR_TOK_MIGRATE_START,
	HR_TOK_MIGRATED,
	HR_TOK_MIGRATE_FAILED,
	HR_TOK_RESUME,
	/* a host and its witness (ha/lease.c) */
	HR_TOK_LEASE_HELD,
	HR_TOK_LEASE_DENIED, /* the witness logs it too */
	HR_TOK_WITNESS_REGISTERED,
	HR_TOK_WITNESS_UNREACHABLE,
	HR_TOK_WITNESS_UNREGISTERED, /* the witness has no record of the VM */
	/* the witness's own (src/daemon/witness-serve.c) */
	HR_TOK_LEASE_GRANTED,
	HR_TOK_LEASE_EXPIRED,
	HR_TOK_OWNER_CHANGED,
	HR_TOK_NR,
};

/* What a token is about (a bit set: +lease-denied is both a host's and the
 * witness's); help texts list the tokens by these. */
enum hr_token_kind {
	HR_TOKK_STATE = 1,   /* a role state was entered */
	HR_TOKK_EVENT = 2,   /* a role event */
	HR_TOKK_LEASE = 4,   /* a host's dealings with its witness */
	HR_TOKK_WITNESS = 8, /* the witness's table changed or refused */
};

/* "+protected", ...; NULL for HR_TOK_NONE, "+unknown" out of range. */
const char *hr_token_str(enum hr_token tok);
/* The level every line of tok is logged at (HR_LOG_WARN out of range). */
enum hr_log_level hr_token_level(enum hr_token tok);
/* HR_TOKK_* bits (0 for HR_TOK_NONE and out of range). */
unsigned hr_token_kinds(enum hr_token tok);
/* "+backup-lost" -> HR_TOK_BACKUP_LOST; -EINVAL if no token is spelt so. */
int hr_token_parse(const char *s, enum hr_token *tok_r);

/*
 * Log "TOKEN: TEXT" (TEXT from fmt; just "TOKEN" when it comes out empty)
 * about vm (NULL: process-wide) at the token's level.  The one place that
 * writes a token into the log.
 */
void hr_token_log(const char *vm, enum hr_token tok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
