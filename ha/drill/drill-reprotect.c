/*
 * drill-reprotect.c - the scenarios in which a host dies and comes back,
 * and the survivor takes it as its new backup (re-protection):
 *
 *   --victim backup   B's host dies (daemon and worker, SIGKILL).  A must
 *                     hold its output (nothing proves B is not promoting
 *                     behind a torn link); when B's daemon is started again
 *                     A re-protects by itself and the held output reaches
 *                     the outside; B never speaks.
 *   --fault failback  A's host dies, B takes over (drill-run.c); A's daemon
 *                     is started again and the promoted B takes A as its
 *                     backup; an operator failover on A makes A speak again
 *                     and B's worker end; A then takes B as its backup.
 *
 * At every step the outside must see the guest go on, the console stream
 * gap-free and never contradicted (the collector), and one speaker at a
 * time.  Each wait is bounded by --timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/drill/drill.h"
#include "ha/role.h"
#include "ha/token.h"

static const char *const side_name[2] = {"A", "B"};

/* The VM's role and state on ctl ("" when the daemon or the VM is not there). */
static void vm_role(const char *ctl, char *role, char *state)
{
	char buf[8192];
	role[0] = state[0] = '\0';
	if (drill_ctl_query(ctl, "status", buf, sizeof(buf)) < 0)
		return;
	drill_json_str(buf, "role", role, 32);
	drill_json_str(buf, "state", state, 32);
}

/* Until the VM on side b reports role/state; *t_r = when it did.  0, or -1
 * (timed out or interrupted: then d->why says what it reported). */
int drill_wait_vm(struct drill *d, int b, const char *role, const char *state, uint64_t *t_r)
{
	const char *ctl = b ? d->ctl_b : d->ctl_a;
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;
	char r[32] = "", s[32] = "";

	while (!drill_interrupted && hr_now_ns() < end) {
		vm_role(ctl, r, s);
		if (!strcmp(r, role) && !strcmp(s, state)) {
			if (t_r)
				*t_r = hr_now_ns();
			return 0;
		}
		usleep(5000);
	}
	drill_fail(d, "%s did not become %s/%s within %u s: it says %s/%s (see %s)", side_name[b],
		   role, state, d->o->timeout_s, r[0] ? r : "-", s[0] ? s : "-",
		   b ? d->log_b : d->log_a);
	return -1;
}

/* Until n progress lines came from ip, the first of them ending beyond
 * offset `after`; *t_r = when that first one arrived.  Its index, or -1
 * (d->why says so; what = the step, for the message). */
int drill_wait_lines(struct drill *d, uint32_t ip, uint64_t after, const char *what, uint64_t *t_r)
{
	struct drill_world *w = &d->w;
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;
	unsigned got = 0;
	int first = -1;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		if (first < 0)
			first = drill_first_line(w, ip, after);
		got = first < 0 ? 0 : drill_lines_from(w, ip, (unsigned)first, w->nr_lines);
		if (first >= 0 && t_r)
			*t_r = w->lines[first].t_ns;
		pthread_mutex_unlock(&w->lock);
		if (got >= d->o->after_lines)
			return first;
		if (drill_interrupted || hr_now_ns() >= end)
			break;
		usleep(10000);
	}
	drill_fail(d, "%s: only %u of %u progress lines from %s within %u s", what, got,
		   d->o->after_lines, ip == inet_addr(DRILL_IP_A) ? "A" : "B", d->o->timeout_s);
	return -1;
}

/* Whether the daemon log at path has token (a role event) in it. */
int drill_log_has(const char *path, const char *token)
{
	char line[1024];
	int found = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, token) != NULL;
	fclose(f);
	return found;
}

static uint64_t con_len(struct drill_world *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t len = w->len;
	pthread_mutex_unlock(&w->lock);
	return len;
}

int drill_backup_death(struct drill *d)
{
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A), ip_b = inet_addr(DRILL_IP_B);
	char buf[8192], st[32] = "", ev[32] = "";
	uint64_t end = hr_now_ns() + 5000000000ull;
	const char *want_st = hr_role_state_name(HR_RS_UNPROTECTED),
		   *want_ev = hr_token_str(HR_TOK_OUTPUT_HELD);

	drill_reap(&d->pid_b, 2000); /* the whole host died: its daemon too */
	while (hr_now_ns() < end && !drill_interrupted) {
		if (!drill_ctl_query(d->ctl_a, "status", buf, sizeof(buf))) {
			drill_json_str(buf, "state", st, sizeof(st));
			drill_json_str(buf, "last_event", ev, sizeof(ev));
			if (!strcmp(st, want_st) && !strcmp(ev, want_ev))
				break;
		}
		usleep(20000);
	}
	snprintf(d->survivor_state, sizeof(d->survivor_state), "%s", st[0] ? st : "(no answer)");
	snprintf(d->survivor_event, sizeof(d->survivor_event), "%s", ev[0] ? ev : "-");
	if (strcmp(st, want_st) || strcmp(ev, want_ev)) {
		drill_fail(d,
			   "after the backup's death A's status says state=%s last_event=%s, not "
			   "unprotected / +output-held",
			   d->survivor_state, d->survivor_event);
		return 0;
	}
	pthread_mutex_lock(&w->lock);
	unsigned before = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	usleep(DRILL_HELD_WATCH_MS * 1000);
	pthread_mutex_lock(&w->lock);
	d->held_lines = (int)(w->nr_lines - before);
	pthread_mutex_unlock(&w->lock);
	if (d->held_lines) {
		drill_fail(
		    d, "A released %d console lines after it lost its backup (output must be held)",
		    d->held_lines);
		return 0;
	}

	/* B's host is back: A takes it as its backup by itself */
	uint64_t t_up, t_prot, t_line;
	if (drill_host_up(d, 1, &t_up) < 0)
		return -1;
	d->reprotect_checked = 1;
	uint64_t held_len = con_len(w);
	if (drill_wait_vm(d, 0, "primary", "protected", &t_prot) < 0 ||
	    drill_wait_vm(d, 1, "backup", "backup", NULL) < 0)
		return 0;
	d->reprotect_ms = (t_prot - t_up) / 1e6;
	if (!drill_log_has(d->log_a, hr_token_str(HR_TOK_REPROTECT_START)))
		drill_fail(d, "A is protected again but logged no +reprotect-start (see %s)",
			   d->log_a);
	if (drill_wait_lines(d, ip_a, held_len, "after the re-protection", &t_line) < 0)
		return 0;
	d->release_ms = (t_line - t_up) / 1e6;
	pthread_mutex_lock(&w->lock);
	d->b_lines = drill_lines_from(w, ip_b, 0, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	if (d->b_lines)
		drill_fail(d, "B released %u console lines: it must never speak", d->b_lines);
	drill_stop_vm(d, d->ctl_a);
	return 0;
}

/* The worker pid the status on ctl reports for the VM (0: none). */
static pid_t worker_of(const char *ctl)
{
	char buf[8192];
	return drill_status_worker(ctl, buf, sizeof(buf));
}

int drill_failback(struct drill *d, int first_b)
{
	const struct drill_opts *o = d->o;
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A), ip_b = inet_addr(DRILL_IP_B);
	uint64_t t_up, t_prot, t_switch, t_line;

	d->failback_checked = 1;
	/* A's host is back (its daemon, same arguments and state directory);
	 * the promoted B takes it as its backup */
	if (drill_host_up(d, 0, &t_up) < 0)
		return -1;
	if (drill_wait_vm(d, 1, "primary", "protected", &t_prot) < 0 ||
	    drill_wait_vm(d, 0, "backup", "backup", NULL) < 0)
		return -1;
	d->reprotect_ms = (t_prot - t_up) / 1e6;
	if (!drill_log_has(d->log_b, hr_token_str(HR_TOK_REPROTECT_START)))
		drill_fail(d, "B is protected but logged no +reprotect-start (see %s)", d->log_b);
	if (o->witness && drill_witness_expect(d, "B", "A", "B re-protected") < 0)
		return -1;
	if (drill_wait_lines(d, ip_b, con_len(w), "after B re-protected", NULL) < 0)
		return -1;

	/* the operator fails back: A speaks again, B's worker ends */
	pid_t b_worker = worker_of(d->ctl_b);
	uint64_t at_switch = con_len(w);
	char *failover[] = {"failover", DRILL_VM_NAME, NULL};
	t_switch = hr_now_ns();
	int rc = drill_cli(d, d->ctl_a, failover, 20000);
	if (rc) {
		drill_fail(d, "`hareplicate failover` on A failed (exit %d; see %s)", rc,
			   d->log_cli);
		return -1;
	}
	int first_a = drill_wait_lines(d, ip_a, at_switch, "after the failback", &t_line);
	if (first_a < 0)
		return -1;
	d->switchback_ms = (t_line - t_switch) / 1e6;
	uint64_t end = hr_now_ns() + o->timeout_s * 1000000000ull;
	while (b_worker > 0 && kill(b_worker, 0) == 0 && hr_now_ns() < end && !drill_interrupted)
		usleep(10000);
	if (b_worker <= 0 || kill(b_worker, 0) == 0)
		drill_fail(d, "B's worker (%d) did not end after the failback", (int)b_worker);
	if (!drill_log_has(d->log_b, hr_role_state_token(HR_RS_DEMOTED)))
		drill_fail(d, "B logged no +demoted after the failback (see %s)", d->log_b);

	/* A takes B as its backup again */
	if (drill_wait_vm(d, 0, "primary", "protected", &t_prot) < 0 ||
	    drill_wait_vm(d, 1, "backup", "backup", NULL) < 0)
		return -1;
	d->reprotect2_ms = (t_prot - t_switch) / 1e6;
	/* the owner follows the VM back to A */
	if (o->witness && drill_witness_expect(d, "A", "B", "failed back") < 0)
		return -1;
	if (drill_wait_lines(d, ip_a, con_len(w), "after A re-protected", NULL) < 0)
		return -1;

	/* one speaker: A not while B spoke, B never again once A did */
	usleep(DRILL_HELD_WATCH_MS * 1000 / 4);
	pthread_mutex_lock(&w->lock);
	d->a_while_b = drill_lines_from(w, ip_a, (unsigned)first_b, (unsigned)first_a);
	d->b_after = drill_lines_from(w, ip_b, (unsigned)first_a, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	if (d->a_while_b)
		drill_fail(d, "two speakers: A released %u console lines while B ran the VM",
			   d->a_while_b);
	if (d->b_after)
		drill_fail(d, "two speakers: B released %u console lines after A took over again",
			   d->b_after);
	return 0;
}
