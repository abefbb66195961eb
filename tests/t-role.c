/*
 * t-role.c - the HA role state machine (ha/role.c): every legal path of
 * both sides, refusals of impossible events, the names status and the
 * drill parse, and that the observer hears each change once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "common/log.h"
#include "ha/role.h"

static unsigned nr_changes;
static enum hr_role_state seen_from, seen_to;

static void observer(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	nr_changes++;
	seen_from = from;
	seen_to = to;
}

/* Run events; return the final state, or -1 if one was refused. */
static int path(enum hr_role_side side, const enum hr_role_event *evs, unsigned n)
{
	struct hr_role r;
	hr_role_init(&r, "t-role", side, observer, NULL);
	for (unsigned i = 0; i < n; i++)
		if (hr_role_event(&r, evs[i], NULL) < 0)
			return -1;
	return (int)r.state;
}

/* The lines a primary's protected -> backup-silent change logs. */
static char *logged_silent(void)
{
	static char buf[4096];
	struct hr_role r;
	FILE *tmp = tmpfile();
	int saved = dup(2);

	hr_role_init(&r, "t-role", HR_SIDE_PRIMARY, NULL, NULL);
	hr_role_event(&r, HR_RE_CONNECTED, NULL);
	hr_role_event(&r, HR_RE_SYNCED, NULL);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	hr_role_event(&r, HR_RE_BACKUP_SILENT, "9 ms of nothing");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = 0;
	fclose(tmp);
	return buf;
}

#define PATH(side, ...)                                                                            \
	path(side, (const enum hr_role_event[]){__VA_ARGS__},                                      \
	     sizeof((enum hr_role_event[]){__VA_ARGS__}) / sizeof(enum hr_role_event))

int main(void)
{
	plan(39);
	hr_log_init("t-role", 1, 0);
	/* names: one table, parse is its inverse */
	int names_ok = 1;
	for (unsigned s = 0; s < HR_RS_NR; s++) {
		enum hr_role_state back;
		const char *n = hr_role_state_name((enum hr_role_state)s);
		names_ok &= hr_role_state_parse(n, &back) == 0 && back == s;
		names_ok &= hr_role_state_token((enum hr_role_state)s)[0] == '+' &&
			    !strcmp(hr_role_state_token((enum hr_role_state)s) + 1, n);
	}
	ok(names_ok, "every state name parses back; its token is '+' and the name");
	enum hr_role_state dummy;
	ok(hr_role_state_parse("protectedd", &dummy) == -EINVAL &&
	       hr_role_state_parse("", &dummy) == -EINVAL,
	   "unknown names are refused");
	ok(!strcmp(hr_role_event_token(HR_RE_BACKUP_LOST), "+backup-lost") &&
	       !strcmp(hr_role_event_token(HR_RE_PRIMARY_LOST), "+primary-lost") &&
	       !strcmp(hr_role_event_token(HR_RE_OPERATOR_FAILOVER), "+failover-start") &&
	       hr_role_event_token(HR_RE_SYNCED) == NULL,
	   "event tokens: +backup-lost, +primary-lost, +failover-start");

	/* primary */
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED) == HR_RS_PROTECTED,
	   "primary: connecting -> syncing -> protected");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT) ==
		   HR_RS_BACKUP_SILENT &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		    HR_RE_BACKUP_SILENT) == HR_RS_BACKUP_SILENT,
	   "primary: a silent backup: protected -> backup-silent (not protected, output held)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		HR_RE_BACKUP_ANSWERED) == HR_RS_PROTECTED &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_ANSWERED) ==
		   HR_RS_PROTECTED,
	   "primary: the silent backup answers: protected again (an answer when protected "
	   "changes nothing)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		HR_RE_BACKUP_LOST) == HR_RS_UNPROTECTED &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		    HR_RE_TOOK_OVER) == HR_RS_DEMOTED &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		    HR_RE_STAND_DOWN) == HR_RS_DEMOTED,
	   "primary: backup-silent -> unprotected (its link ended) or demoted (it took over, "
	   "or the VM runs elsewhere)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_BACKUP_SILENT, HR_RE_BACKUP_ANSWERED) ==
		   HR_RS_SYNCING &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		    HR_RE_REPROTECT) == -1 &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT,
		    HR_RE_OUTPUT_RELEASED) == -1 &&
	       PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT) == -1,
	   "backup-silent: syncing stays syncing; no re-protection, no release of output while "
	   "silent; a backup has no backup to miss");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_LOST) ==
	       HR_RS_UNPROTECTED,
	   "primary: backup lost -> unprotected");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_TOOK_OVER) == HR_RS_DEMOTED,
	   "primary: the backup took over -> demoted");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_TOOK_OVER, HR_RE_SYNCED) ==
	       -1,
	   "primary: nothing but stop/error after demotion");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_SYNCED) == -1,
	   "primary: synced before connected is refused");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_PRIMARY_LOST) == -1 &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_PROMOTED) == -1,
	   "primary: backup-only events are refused");

	/* backup */
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_PRIMARY_LOST,
		HR_RE_PROMOTED) == HR_RS_PROMOTED,
	   "backup: connecting -> syncing -> backup -> promoting -> promoted");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_OPERATOR_FAILOVER,
		HR_RE_PROMOTED) == HR_RS_PROMOTED,
	   "backup: operator failover takes the same path");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_PRIMARY_LOST) == -1,
	   "backup: no promotion without a committed epoch");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_BACKUP_LOST) == -1,
	   "backup: primary-only events are refused");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_ERROR, HR_RE_STOP) ==
	       HR_RS_FAILED,
	   "an error is final: a later stop keeps 'failed'");

	/* re-protection */
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_LOST,
		HR_RE_OUTPUT_HELD, HR_RE_REPROTECT, HR_RE_CONNECTED,
		HR_RE_SYNCED) == HR_RS_PROTECTED,
	   "primary: lost, held, re-protected: protected again");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_PRIMARY_LOST, HR_RE_PROMOTED,
		HR_RE_REPROTECT, HR_RE_CONNECTED, HR_RE_SYNCED,
		HR_RE_BACKUP_LOST) == HR_RS_UNPROTECTED,
	   "promoted backup: re-protects as a primary (and can lose that backup like one)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_REPROTECT) == -1 &&
	       PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_REPROTECT) == -1,
	   "re-protection only without a backup (unprotected or promoted)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_LOST,
		HR_RE_STAND_DOWN) == HR_RS_DEMOTED,
	   "a held primary told the VM runs elsewhere stands down: demoted");
	ok(!strcmp(hr_role_event_token(HR_RE_REPROTECT), "+reprotect-start") &&
	       !strcmp(hr_role_event_token(HR_RE_STAND_DOWN), "+stand-down") &&
	       !strcmp(hr_role_event_token(HR_RE_OUTPUT_RELEASED), "+output-released"),
	   "tokens +reprotect-start, +stand-down, +output-released");

	/* cluster mode: demote pauses the guest (standby), promote resumes it */
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE) == HR_RS_STANDBY &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_DEMOTE) ==
		   HR_RS_STANDBY,
	   "cluster: protected -> standby on demote; a second demote changes nothing");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_RESUME,
		HR_RE_DEMOTE, HR_RE_RESUME) == HR_RS_PROTECTED,
	   "cluster: standby resumes to protected, again and again");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT, HR_RE_DEMOTE,
		HR_RE_RESUME) == HR_RS_PROTECTED,
	   "cluster: a primary demoted while its backup was silent resumes protected (the "
	   "engine calls it silent again if it still is)");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_BACKUP_LOST) ==
		   HR_RS_STANDBY &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_BACKUP_LOST,
		    HR_RE_RESUME) == HR_RS_UNPROTECTED,
	   "cluster: a standby that lost its backup stays paused, and resumes unprotected");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_TOOK_OVER) ==
		   HR_RS_DEMOTED &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE, HR_RE_STOP) ==
		   HR_RS_STOPPED,
	   "cluster: a standby whose backup was promoted is demoted; it can be stopped");
	ok(PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_OPERATOR_FAILOVER,
		HR_RE_PROMOTED, HR_RE_DEMOTE, HR_RE_RESUME, HR_RE_REPROTECT) == HR_RS_CONNECTING,
	   "cluster: a promoted backup demoted and resumed runs as an unprotected primary");
	ok(PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_DEMOTE) == -1 &&
	       PATH(HR_SIDE_BACKUP, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE) == -1 &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_RESUME) == -1 &&
	       PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_DEMOTE,
		    HR_RE_OUTPUT_RELEASED) == -1,
	   "cluster: no demote while syncing or as a backup, no resume unless standby, no "
	   "output policy while paused");

	/* observer: told once per change, after it */
	nr_changes = 0;
	PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_SYNCED, HR_RE_BACKUP_SILENT, HR_RE_STOP);
	ok(nr_changes == 4 && seen_from == HR_RS_BACKUP_SILENT && seen_to == HR_RS_STOPPED,
	   "observer told of 4 changes, the last backup-silent -> stopped (%u)", nr_changes);
	nr_changes = 0;
	PATH(HR_SIDE_PRIMARY, HR_RE_CONNECTED, HR_RE_BACKUP_SILENT, HR_RE_BACKUP_ANSWERED);
	ok(nr_changes == 3 && seen_from == HR_RS_SYNCING && seen_to == HR_RS_SYNCING,
	   "... and of events with a token of their own that change nothing (%u)", nr_changes);

	/* +backup-silent is the event and the state: one line says both */
	char *l = logged_silent();
	ok(strstr(l, "warning: vm t-role: +backup-silent: 9 ms of nothing\n") &&
	       !strstr(strstr(l, "+backup-silent") + 1, "+backup-silent"),
	   "+backup-silent is logged once, as a warning, with its why");
	ok(!strcmp(hr_role_side_name(HR_SIDE_BACKUP, HR_RS_PROMOTED), "promoted") &&
	       !strcmp(hr_role_side_name(HR_SIDE_BACKUP, HR_RS_BACKUP), "backup") &&
	       !strcmp(hr_role_side_name(HR_SIDE_PRIMARY, HR_RS_UNPROTECTED), "primary"),
	   "role names for status: primary / backup / promoted");

	/* output held: the role machine keeps it (workers report it) */
	struct hr_role r;
	int held_ok = 1;
	hr_role_init(&r, "t-role", HR_SIDE_PRIMARY, NULL, NULL);
	static const struct {
		enum hr_role_event ev;
		int held;
	} held_steps[] = {
	    {HR_RE_CONNECTED, 0},	{HR_RE_SYNCED, 0},	  {HR_RE_BACKUP_SILENT, 1},
	    {HR_RE_BACKUP_ANSWERED, 0}, {HR_RE_BACKUP_SILENT, 1}, {HR_RE_BACKUP_LOST, 1},
	    {HR_RE_OUTPUT_RELEASED, 0}, {HR_RE_OUTPUT_HELD, 1},	  {HR_RE_REPROTECT, 1},
	    {HR_RE_CONNECTED, 1},	{HR_RE_SYNCED, 0},	  {HR_RE_DEMOTE, 1},
	    {HR_RE_RESUME, 0},		{HR_RE_BACKUP_LOST, 0},	  {HR_RE_OUTPUT_HELD, 1},
	    {HR_RE_BACKUP_ANSWERED, 1}, /* refused when unprotected: still held */
	};
	for (unsigned i = 0; i < sizeof(held_steps) / sizeof(held_steps[0]); i++) {
		hr_role_event(&r, held_steps[i].ev, NULL);
		if (hr_role_is_held(&r) != held_steps[i].held) {
			diag("held after step %u (event %d): %d, want %d", i, (int)held_steps[i].ev,
			     hr_role_is_held(&r), held_steps[i].held);
			held_ok = 0;
		}
	}
	ok(held_ok, "held: silent, lost or +output-held hold; an answer, a release, protected "
		    "release; standby holds; a refused event changes nothing");
	hr_role_init(&r, "t-role", HR_SIDE_BACKUP, NULL, NULL);
	hr_role_event(&r, HR_RE_CONNECTED, NULL);
	hr_role_event(&r, HR_RE_SYNCED, NULL);
	hr_role_event(&r, HR_RE_PRIMARY_LOST, NULL);
	hr_role_event(&r, HR_RE_PROMOTED, NULL);
	int promoted_free = !hr_role_is_held(&r);
	hr_role_event(&r, HR_RE_DEMOTE, NULL);
	ok(promoted_free && hr_role_is_held(&r) && r.side == HR_SIDE_PRIMARY,
	   "held: a promoted backup releases; demoted to standby it holds, a primary now");

	ok(hr_role_is_final(HR_RS_STOPPED) && hr_role_is_final(HR_RS_FAILED) &&
	       hr_role_is_final(HR_RS_DEMOTED) && !hr_role_is_final(HR_RS_STANDBY) &&
	       !hr_role_is_final(HR_RS_PROMOTED),
	   "final: stopped, failed, demoted only");
	/* the daemon maps a worker's end through the table */
	ok(hr_role_next(HR_SIDE_PRIMARY, HR_RS_PROTECTED, HR_RE_STOP) == HR_RS_STOPPED &&
	       hr_role_next(HR_SIDE_BACKUP, HR_RS_BACKUP, HR_RE_ERROR) == HR_RS_FAILED &&
	       hr_role_next(HR_SIDE_PRIMARY, HR_RS_DEMOTED, HR_RE_ERROR) == HR_RS_DEMOTED &&
	       hr_role_next(HR_SIDE_PRIMARY, HR_RS_STOPPED, HR_RE_ERROR) == HR_RS_STOPPED &&
	       hr_role_next(HR_SIDE_BACKUP, HR_RS_CONNECTING, HR_RE_STOP) == HR_RS_STOPPED,
	   "next: a worker's end is stopped or failed, a final state stays");
	ok(hr_role_next(HR_SIDE_PRIMARY, HR_RS_CONNECTING, HR_RE_SYNCED) == -EINVAL &&
	       hr_role_next(HR_SIDE_PRIMARY, HR_RS_STANDBY, HR_RE_RESUME) == -EINVAL &&
	       hr_role_next(HR_SIDE_BACKUP, HR_RS_BACKUP, HR_RE_PRIMARY_LOST) == HR_RS_PROMOTING &&
	       hr_role_next(HR_SIDE_PRIMARY, HR_RS_UNPROTECTED, HR_RE_OUTPUT_HELD) ==
		   HR_RS_UNPROTECTED &&
	       hr_role_next(HR_SIDE_PRIMARY, HR_RS_NR, HR_RE_STOP) == -EINVAL,
	   "next: impossible events, a standby's resume (its machine knows where), bad states "
	   "are -EINVAL");
	return tap_done();
}
