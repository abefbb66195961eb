/*
 * t-token.c - the table of stable HA tokens (ha/token.c): every token has
 * one well-formed string, no two share one, parse is the inverse; role.c's
 * state names and event tokens are the table's; the levels say bad news
 * with a warning; hr_token_log writes "TOKEN: text" or "TOKEN" alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "common/log.h"
#include "ha/role.h"
#include "ha/token.h"

/* '+', then lower-case words joined by single '-' */
static int well_formed(const char *s)
{
	if (!s || s[0] != '+' || !s[1] || s[1] == '-')
		return 0;
	for (const char *p = s + 1; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p == '-' && p[1] && p[1] != '-')))
			return 0;
	return 1;
}

/* What hr_token_log wrote to stderr (a temporary file meanwhile). */
static char *logged(enum hr_token tok, const char *text)
{
	static char buf[4096];
	FILE *tmp = tmpfile();
	int saved = dup(2);

	fflush(stderr);
	dup2(fileno(tmp), 2);
	if (text)
		hr_token_log("t-vm", tok, "%s", text);
	else
		hr_token_log("t-vm", tok, "%d apples", 3);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = 0;
	fclose(tmp);
	return buf;
}

int main(void)
{
	plan(11);
	hr_log_init("t-token", 1, 0);

	/* the table itself */
	int formed = 1, kinds = 1, levels = 1;
	for (unsigned t = HR_TOK_NONE + 1; t < HR_TOK_NR; t++) {
		const char *s = hr_token_str((enum hr_token)t);
		enum hr_log_level l = hr_token_level((enum hr_token)t);
		if (!well_formed(s)) {
			diag("token %u: %s", t, s ? s : "(none)");
			formed = 0;
		}
		kinds &= (t == HR_TOK_UNKNOWN) == (hr_token_kinds((enum hr_token)t) == 0);
		levels &= l == HR_LOG_INFO || l == HR_LOG_WARN;
	}
	ok(formed, "every token (%d) has a string: '+' and lower-case words joined by '-'",
	   HR_TOK_NR - 1);
	ok(kinds && levels, "each is a state's, an event's, a host's or a witness's, logged at "
			    "info or warning");

	unsigned dups = 0, parse_bad = 0;
	for (unsigned a = HR_TOK_NONE + 1; a < HR_TOK_NR; a++) {
		enum hr_token back;
		for (unsigned b = a + 1; b < HR_TOK_NR; b++)
			if (!strcmp(hr_token_str((enum hr_token)a),
				    hr_token_str((enum hr_token)b))) {
				diag("%s twice (%u, %u)", hr_token_str((enum hr_token)a), a, b);
				dups++;
			}
		parse_bad += hr_token_parse(hr_token_str((enum hr_token)a), &back) < 0 || back != a;
	}
	ok(!dups, "no two tokens share a string");
	enum hr_token dummy;
	ok(!parse_bad && hr_token_parse("+protectedd", &dummy) == -EINVAL &&
	       hr_token_parse("protected", &dummy) == -EINVAL &&
	       hr_token_parse("", &dummy) == -EINVAL,
	   "parse is the inverse of the table and refuses anything else");
	ok(hr_token_str(HR_TOK_NONE) == NULL && !strcmp(hr_token_str(HR_TOK_NR), "+unknown") &&
	       !strcmp(hr_token_str((enum hr_token) - 1), "+unknown") &&
	       hr_token_level(HR_TOK_NR) == HR_LOG_WARN && hr_token_kinds(HR_TOK_NR) == 0,
	   "no token for HR_TOK_NONE; +unknown out of range");

	/* role.c's tokens are the table's */
	unsigned state_of[HR_TOK_NR] = {0}, event_of[HR_TOK_NR] = {0}, bad = 0;
	for (unsigned s = 0; s < HR_RS_NR; s++) {
		enum hr_token t = hr_role_state_tok((enum hr_role_state)s);
		const char *name = hr_role_state_name((enum hr_role_state)s);
		if (t <= HR_TOK_UNKNOWN || t >= HR_TOK_NR || !(hr_token_kinds(t) & HR_TOKK_STATE) ||
		    strcmp(hr_role_state_token((enum hr_role_state)s), hr_token_str(t)) ||
		    strcmp(name, hr_token_str(t) + 1)) {
			diag("state %u (%s): token %d", s, name, (int)t);
			bad++;
			continue;
		}
		state_of[t]++;
	}
	for (unsigned t = 0; t < HR_TOK_NR; t++)
		if ((hr_token_kinds((enum hr_token)t) & HR_TOKK_STATE) && state_of[t] != 1) {
			diag("%s: the token of %u states", hr_token_str((enum hr_token)t),
			     state_of[t]);
			bad++;
		}
	ok(!bad,
	   "each of the %d states has its own state token, its name is the token "
	   "without '+', and each state token belongs to one state",
	   HR_RS_NR);

	bad = 0;
	for (unsigned e = 0; e < HR_RE_NR; e++) {
		enum hr_token t = hr_role_event_tok((enum hr_role_event)e);
		const char *s = hr_role_event_token((enum hr_role_event)e);
		if (t == HR_TOK_NONE) {
			bad += s != NULL;
			continue;
		}
		if (t >= HR_TOK_NR || !(hr_token_kinds(t) & HR_TOKK_EVENT) || !s ||
		    strcmp(s, hr_token_str(t))) {
			diag("event %u: token %d", e, (int)t);
			bad++;
			continue;
		}
		event_of[t]++;
	}
	for (unsigned t = 0; t < HR_TOK_NR; t++)
		if ((hr_token_kinds((enum hr_token)t) & HR_TOKK_EVENT) && event_of[t] != 1) {
			diag("%s: the token of %u events", hr_token_str((enum hr_token)t),
			     event_of[t]);
			bad++;
		}
	ok(!bad, "role events' tokens are event tokens of the table, each of one event");
	ok(!strcmp(hr_role_state_name(HR_RS_NR), "unknown") &&
	       !strcmp(hr_role_state_token(HR_RS_NR), "+unknown") &&
	       hr_role_event_token(HR_RE_NR) == NULL && hr_role_event_token(HR_RE_SYNCED) == NULL,
	   "role: out of range is unknown; events without a token have none");

	/* levels: losing protection, a failover, an end is a warning */
	enum hr_role_state warn_states[] = {HR_RS_UNPROTECTED, HR_RS_PROMOTING, HR_RS_PROMOTED,
					    HR_RS_DEMOTED, HR_RS_FAILED};
	enum hr_role_state info_states[] = {HR_RS_CONNECTING, HR_RS_SYNCING, HR_RS_PROTECTED,
					    HR_RS_BACKUP, HR_RS_STOPPED};
	int lv = 1;
	for (unsigned i = 0; i < sizeof(warn_states) / sizeof(warn_states[0]); i++)
		lv &= hr_token_level(hr_role_state_tok(warn_states[i])) == HR_LOG_WARN;
	for (unsigned i = 0; i < sizeof(info_states) / sizeof(info_states[0]); i++)
		lv &= hr_token_level(hr_role_state_tok(info_states[i])) == HR_LOG_INFO;
	lv &= hr_token_level(HR_TOK_BACKUP_LOST) == HR_LOG_WARN &&
	      hr_token_level(HR_TOK_PRIMARY_LOST) == HR_LOG_WARN &&
	      hr_token_level(HR_TOK_WITNESS_UNREACHABLE) == HR_LOG_WARN &&
	      hr_token_level(HR_TOK_BACKUP_ANSWERED) == HR_LOG_INFO &&
	      hr_token_level(HR_TOK_LEASE_GRANTED) == HR_LOG_INFO;
	ok(lv, "levels: losing protection or the peer is a warning, regaining it info");

	/* the one logging function */
	char *l = logged(HR_TOK_BACKUP_LOST, NULL);
	ok(strstr(l, "warning: vm t-vm: +backup-lost: 3 apples\n") != NULL,
	   "hr_token_log: 'TOKEN: text' at the token's level, naming the VM (%.*s)",
	   (int)strcspn(l, "\n"), l);
	l = logged(HR_TOK_PROTECTED, "");
	ok(strstr(l, "info: vm t-vm: +protected\n") != NULL,
	   "hr_token_log: the token alone when the text is empty (%.*s)", (int)strcspn(l, "\n"), l);
	return tap_done();
}
