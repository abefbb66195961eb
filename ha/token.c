/* token.c - the one table of HA event tokens and the one function that logs them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ha/token.h"

#define W HR_LOG_WARN /* bad news: a VM lost its protection, moved or stopped serving */
#define I HR_LOG_INFO

static const struct {
	const char *str;
	enum hr_log_level level;
	unsigned kinds;
} tokens[HR_TOK_NR] = {
    [HR_TOK_UNKNOWN] = {"+unknown", W, 0},
    [HR_TOK_CONNECTING] = {"+connecting", I, HR_TOKK_STATE},
    [HR_TOK_SYNCING] = {"+syncing", I, HR_TOKK_STATE},
    [HR_TOK_PROTECTED] = {"+protected", I, HR_TOKK_STATE},
    [HR_TOK_UNPROTECTED] = {"+unprotected", W, HR_TOKK_STATE},
    [HR_TOK_BACKUP] = {"+backup", I, HR_TOKK_STATE},
    [HR_TOK_PROMOTING] = {"+promoting", W, HR_TOKK_STATE},
    [HR_TOK_PROMOTED] = {"+promoted", W, HR_TOKK_STATE},
    [HR_TOK_DEMOTED] = {"+demoted", W, HR_TOKK_STATE},
    [HR_TOK_FAILED] = {"+failed", W, HR_TOKK_STATE},
    [HR_TOK_STOPPED] = {"+stopped", I, HR_TOKK_STATE},
    [HR_TOK_STANDBY] = {"+standby", I, HR_TOKK_STATE},
    [HR_TOK_BACKUP_SILENT] = {"+backup-silent", W, HR_TOKK_STATE | HR_TOKK_EVENT},

    [HR_TOK_BACKUP_ANSWERED] = {"+backup-answered", I, HR_TOKK_EVENT},
    [HR_TOK_BACKUP_LOST] = {"+backup-lost", W, HR_TOKK_EVENT},
    [HR_TOK_OUTPUT_HELD] = {"+output-held", W, HR_TOKK_EVENT},
    [HR_TOK_PRIMARY_LOST] = {"+primary-lost", W, HR_TOKK_EVENT},
    [HR_TOK_FAILOVER_START] = {"+failover-start", W, HR_TOKK_EVENT},
    [HR_TOK_REPROTECT_START] = {"+reprotect-start", I, HR_TOKK_EVENT},
    [HR_TOK_OUTPUT_RELEASED] = {"+output-released", I, HR_TOKK_EVENT},
    [HR_TOK_STAND_DOWN] = {"+stand-down", W, HR_TOKK_EVENT},
    [HR_TOK_MIGRATE_START] = {"+migrate-start", I, HR_TOKK_EVENT},
    [HR_TOK_MIGRATED] = {"+migrated", I, HR_TOKK_EVENT},
    [HR_TOK_MIGRATE_FAILED] = {"+migrate-failed", W, HR_TOKK_EVENT},
    [HR_TOK_RESUME] = {"+resume", I, HR_TOKK_EVENT},

    [HR_TOK_LEASE_HELD] = {"+lease-held", I, HR_TOKK_LEASE},
    /* a witness denies a node that may not own the VM: worth a warning on both ends */
    [HR_TOK_LEASE_DENIED] = {"+lease-denied", W, HR_TOKK_LEASE | HR_TOKK_WITNESS},
    [HR_TOK_WITNESS_REGISTERED] = {"+witness-registered", I, HR_TOKK_LEASE},
    [HR_TOK_WITNESS_UNREACHABLE] = {"+witness-unreachable", W, HR_TOKK_LEASE},
    [HR_TOK_WITNESS_UNREGISTERED] = {"+witness-unregistered", W, HR_TOKK_LEASE},

    [HR_TOK_LEASE_GRANTED] = {"+lease-granted", I, HR_TOKK_WITNESS},
    [HR_TOK_LEASE_EXPIRED] = {"+lease-expired", I, HR_TOKK_WITNESS},
    [HR_TOK_OWNER_CHANGED] = {"+owner-changed", I, HR_TOKK_WITNESS},
};

#undef W
#undef I

const char *hr_token_str(enum hr_token tok)
{
	return (unsigned)tok < HR_TOK_NR ? tokens[tok].str : tokens[HR_TOK_UNKNOWN].str;
}

enum hr_log_level hr_token_level(enum hr_token tok)
{
	return (unsigned)tok < HR_TOK_NR && tokens[tok].str ? tokens[tok].level : HR_LOG_WARN;
}

unsigned hr_token_kinds(enum hr_token tok)
{
	return (unsigned)tok < HR_TOK_NR ? tokens[tok].kinds : 0;
}

int hr_token_parse(const char *s, enum hr_token *tok_r)
{
	for (unsigned t = 0; t < HR_TOK_NR; t++)
		if (tokens[t].str && !strcmp(s, tokens[t].str)) {
			*tok_r = (enum hr_token)t;
			return 0;
		}
	return -EINVAL;
}

void hr_token_log(const char *vm, enum hr_token tok, const char *fmt, ...)
{
	const char *str = hr_token_str(tok) ? hr_token_str(tok) : hr_token_str(HR_TOK_UNKNOWN);
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	hr_log(hr_token_level(tok), vm, "%s%s%s", str, text[0] ? ": " : "", text);
}
