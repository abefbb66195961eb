/*
 * drill-witness.c - `hareplicate drill --witness`: a hareplicated
 * --serve-witness in OUT (DRILL_IP_OUT:DRILL_PORT_WIT), which A and B reach
 * over the bridge, never through the tap, so the faults on the A-B link
 * leave it reachable by both.  With it:
 *
 *   torn          both sides see the link end and both ask the witness;
 *                 exactly one wins: B promotes (A stands down: demoted) or
 *                 A keeps the lease and speaks (B's copy is stale: its
 *                 worker ends, failed).  Either passes if exactly one
 *                 speaks and the stream goes on from it (drill_witness_race)
 *   --victim backup  A takes the lease and keeps releasing output (standing
 *                 "lease"); B's daemon comes back and A re-protects
 *                 (standing "registered", the witness names B the backup)
 *   witness-down  the witness is stopped (SIGSTOP) and the link torn at
 *                 the moment: nobody may speak; SIGCONT, then the race
 *
 * The witness's record is read with a query from inside OUT.  Every wait is
 * bounded by --timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/drill/drill.h"
#include "ha/witness.h"

/* Longest the outside may wait for A's output after the backup's death. */
#define DRILL_WIT_STALL_MS 1000

static const char *wit_addr(void)
{
	static char addr[32];
	snprintf(addr, sizeof(addr), "%s:%d", DRILL_IP_OUT, DRILL_PORT_WIT);
	return addr;
}

/* The witness's record of the VM, asked from inside OUT (this thread
 * enters it and comes back).  Empty names mean none.  0 or -errno. */
static int wit_query(struct drill *d, struct hr_wit_reply *rep)
{
	struct hr_wit_req req = {.op = HR_WIT_QUERY};
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int rc;

	if (self < 0)
		return -errno;
	if ((rc = drill_enter_netns(d->ns_out)) < 0) {
		close(self);
		return rc;
	}
	snprintf(req.vm, sizeof(req.vm), "%s", DRILL_VM_NAME);
	rc = hr_witness_ask(d->wit_tls, wit_addr(), &req, rep, 1000);
	if (setns(self, CLONE_NEWNET) < 0 && !rc)
		rc = -errno;
	close(self);
	return rc;
}

static const char *none(const char *s)
{
	return s[0] ? s : "-";
}

int drill_witness_up(struct drill *d)
{
	char state[300];
	struct hr_wit_reply rep;

	snprintf(d->ctl_w, sizeof(d->ctl_w), "%s/w.sock", d->dir);
	snprintf(d->log_w, sizeof(d->log_w), "%s/w.log", d->dir);
	snprintf(state, sizeof(state), "%s/state-w", d->dir);
	struct drill_tls_paths tp;
	char *argv[20];
	unsigned n = 0;
	argv[n++] = (char *)d->o->daemon;
	argv[n++] = "--serve-witness";
	argv[n++] = "--control";
	argv[n++] = d->ctl_w;
	argv[n++] = "--listen";
	argv[n++] = (char *)wit_addr();
	argv[n++] = "--state-dir";
	argv[n++] = state;
	argv[n++] = "-f";
	argv[n++] = "--no-config"; /* the drill's settings only */
	n += drill_link_opts(d, "W", &tp, argv + n);
	argv[n] = NULL;
	d->pid_w = drill_spawn(d->ns_out, argv, d->log_w);
	if (d->pid_w < 0) {
		d->pid_w = 0;
		drill_fail(d, "cannot start the witness (see %s)", d->log_w);
		return -1;
	}
	pthread_mutex_lock(&d->w.lock);
	d->w.witness_pid = d->pid_w;
	pthread_mutex_unlock(&d->w.lock);
	uint64_t end = hr_now_ns() + 10000000000ull;
	while (hr_now_ns() < end && !drill_interrupted) {
		int st;
		if (waitpid(d->pid_w, &st, WNOHANG) == d->pid_w) {
			d->pid_w = 0;
			break;
		}
		if (wit_query(d, &rep) == 0)
			return 0;
		usleep(20000);
	}
	drill_fail(d, "the witness did not answer at %s (see %s)", wit_addr(), d->log_w);
	return -1;
}

/* One step of the report: "step: owner=.. backup=.. holder=..". */
static void note(struct drill *d, const char *step, const struct hr_wit_reply *rep)
{
	size_t len = strlen(d->wit_checks);
	snprintf(d->wit_checks + len, sizeof(d->wit_checks) - len, "%s%s: owner=%s backup=%s%s%s",
		 len ? "; " : "", step, none(rep->owner), none(rep->backup),
		 rep->holder[0] ? " holder=" : "", rep->holder);
}

int drill_witness_expect(struct drill *d, const char *owner, const char *backup, const char *step)
{
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;
	struct hr_wit_reply rep = {0};
	int rc = -1;

	while (!drill_interrupted) {
		rc = wit_query(d, &rep);
		if (!rc && !strcmp(rep.owner, owner) && (!backup || !strcmp(rep.backup, backup))) {
			note(d, step, &rep);
			return 0;
		}
		if (hr_now_ns() >= end)
			break;
		usleep(20000);
	}
	if (rc)
		drill_fail(d, "%s: the witness did not answer (%s)", step, strerror(-rc));
	else
		drill_fail(d, "%s: the witness names owner=%s backup=%s, not owner=%s%s%s", step,
			   none(rep.owner), none(rep.backup), owner, backup ? " backup=" : "",
			   backup ? none(backup) : "");
	return -1;
}

/* The VM as a daemon reports it (fields "" when it does not answer). */
struct vm_view {
	char role[32], state[32], standing[32], error[128];
	int held;
};

static void view(const char *ctl, struct vm_view *v)
{
	char buf[8192];
	memset(v, 0, sizeof(*v));
	if (drill_ctl_query(ctl, "status", buf, sizeof(buf)) < 0)
		return;
	drill_json_str(buf, "role", v->role, sizeof(v->role));
	drill_json_str(buf, "state", v->state, sizeof(v->state));
	drill_json_str(buf, "standing", v->standing, sizeof(v->standing));
	drill_json_str(buf, "error", v->error, sizeof(v->error));
	v->held = strstr(buf, "\"output_held\": true") != NULL;
}

static uint64_t con_len(struct drill_world *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t len = w->len;
	pthread_mutex_unlock(&w->lock);
	return len;
}

static unsigned lines_now(struct drill_world *w)
{
	pthread_mutex_lock(&w->lock);
	unsigned n = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* Until side b (0 = A) reports state (and, if error, an error containing
 * it, any case: a stale copy says "stale copy: ...").  0, or -1 with
 * d->why set. */
static int wait_state(struct drill *d, int b, const char *state, const char *error)
{
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;
	struct vm_view v;

	while (!drill_interrupted) {
		view(b ? d->ctl_b : d->ctl_a, &v);
		if (!strcmp(v.state, state) && (!error || strcasestr(v.error, error)))
			return 0;
		if (hr_now_ns() >= end)
			break;
		usleep(10000);
	}
	drill_fail(d, "%s did not become %s%s%s within %u s: it says %s/%s error=%s (see %s)",
		   b ? "B" : "A", state, error ? " with error " : "", error ? error : "",
		   d->o->timeout_s, v.role[0] ? v.role : "-", v.state[0] ? v.state : "-",
		   v.error[0] ? v.error : "-", b ? d->log_b : d->log_a);
	return -1;
}

/*
 * Who won the race for the VM, by the witness's record: the owner changes
 * to B only by B's granted claim; A holding the lease with no backup means
 * A's claim was granted (it dropped B).  'A', 'B', or 0 (timed out).
 */
static char race_winner(struct drill *d, struct hr_wit_reply *rep)
{
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;

	while (!drill_interrupted && hr_now_ns() < end) {
		if (!wit_query(d, rep)) {
			if (!strcmp(rep->owner, "B"))
				return 'B';
			if (!strcmp(rep->owner, "A") && !strcmp(rep->holder, "A") &&
			    !rep->backup[0])
				return 'A';
		}
		usleep(5000);
	}
	return 0;
}

/* The race (drill_witness_race); failover_ms counts from t_from. */
static int race(struct drill *d, uint64_t t_from)
{
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A), ip_b = inet_addr(DRILL_IP_B);
	struct hr_wit_reply rep = {0};
	uint64_t t_first = 0;
	d->winner = race_winner(d, &rep);
	if (!d->winner) {
		drill_fail(d,
			   "nobody won the VM at the witness within %u s: owner=%s backup=%s "
			   "holder=%s",
			   d->o->timeout_s, none(rep.owner), none(rep.backup), none(rep.holder));
		return -1;
	}
	note(d, d->winner == 'B' ? "B won" : "A won", &rep);
	uint64_t after = con_len(w);
	int b = d->winner == 'B';
	/* the winner speaks: --after-lines new lines from it */
	int first = drill_wait_lines(d, b ? ip_b : ip_a, b ? w->kill_con_len : after,
				     b ? "after B won the VM" : "after A kept the VM", &t_first);
	if (first < 0)
		return -1;
	d->failover_ms = (t_first - t_from) / 1e6;
	pthread_mutex_lock(&w->lock);
	d->first_new_seq = w->lines[first].seq;
	pthread_mutex_unlock(&w->lock);
	/* the loser: A stands down, or B's copy is stale and its worker ends */
	snprintf(d->winner_how, sizeof(d->winner_how), "%s",
		 b ? "B promoted, A stood down (demoted)"
		   : "A kept the lease and speaks, B's copy is stale (failed)");
	if (b ? wait_state(d, 0, "demoted", NULL) < 0 : wait_state(d, 1, "failed", "stale") < 0)
		return -1;
	if (!b) {
		struct vm_view v;
		/* it holds the lease, or has already re-protected (registered);
		 * the worker reports its standing with its status, at least once
		 * a second: a look may come just before the report */
		uint64_t t0 = hr_now_ns();
		do {
			view(d->ctl_a, &v);
			if ((!strcmp(v.standing, "lease") || !strcmp(v.standing, "registered")) &&
			    !v.held)
				break;
			usleep(50000);
		} while (hr_now_ns() - t0 < 3000000000ull);
		if ((strcmp(v.standing, "lease") && strcmp(v.standing, "registered")) || v.held)
			drill_fail(d,
				   "A kept the VM but its status says standing=%s output_held=%s",
				   v.standing[0] ? v.standing : "-", v.held ? "true" : "false");
	}
	/* one speaker: the loser never speaks after the winner's first line */
	usleep(DRILL_HELD_WATCH_MS * 1000);
	pthread_mutex_lock(&w->lock);
	/* A's lines after B's first; B's ever (it never promoted) */
	d->wit_loser_lines = b ? drill_lines_from(w, ip_a, (unsigned)first, w->nr_lines)
			       : drill_lines_from(w, ip_b, 0, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	if (d->wit_loser_lines)
		drill_fail(d, "two speakers: %s released %u console lines although %s won the VM",
			   b ? "A" : "B", d->wit_loser_lines, b ? "B" : "A");
	drill_stop_vm(d, b ? d->ctl_b : d->ctl_a);
	return 0;
}

int drill_witness_race(struct drill *d)
{
	return race(d, d->w.kill_ns);
}

/* Longest wait between console lines from the kill until `until` (ns):
 * how long the outside saw nothing. */
static double longest_stall_ms(struct drill_world *w, uint64_t until)
{
	uint64_t prev = w->kill_ns, worst = 0;
	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < w->nr_lines; i++) {
		uint64_t t = w->lines[i].t_ns;
		if (t <= w->kill_ns || t > until)
			continue;
		if (t - prev > worst)
			worst = t - prev;
		prev = t;
	}
	pthread_mutex_unlock(&w->lock);
	if (until - prev > worst)
		worst = until - prev;
	return worst / 1e6;
}

int drill_witness_backup_death(struct drill *d)
{
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A), ip_b = inet_addr(DRILL_IP_B);
	struct vm_view v;
	drill_reap(&d->pid_b, 2000); /* the whole host died: its daemon too */
	/* A claims the lease and goes on releasing: watch the outside */
	unsigned before = lines_now(w);
	usleep(DRILL_HELD_WATCH_MS * 1000);
	uint64_t until = hr_now_ns();
	d->stall_ms = longest_stall_ms(w, until);
	pthread_mutex_lock(&w->lock);
	d->held_lines = (int)drill_lines_from(w, ip_a, before, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	view(d->ctl_a, &v);
	snprintf(d->survivor_state, sizeof(d->survivor_state), "%s", v.state[0] ? v.state : "-");
	snprintf(d->standing, sizeof(d->standing), "%s", v.standing[0] ? v.standing : "-");
	if (!d->held_lines) {
		drill_fail(d,
			   "A released nothing in the %d ms after its backup died (with a "
			   "witness it must take the lease and speak; standing=%s)",
			   DRILL_HELD_WATCH_MS, d->standing);
		return 0;
	}
	if (d->stall_ms > DRILL_WIT_STALL_MS)
		drill_fail(d,
			   "the outside saw nothing for %.0f ms after the backup's death "
			   "(at most %d ms with a witness)",
			   d->stall_ms, DRILL_WIT_STALL_MS);
	if (strcmp(v.standing, "lease") || v.held)
		drill_fail(d,
			   "after the backup's death A's status says standing=%s output_held=%s, "
			   "not lease / false",
			   d->standing, v.held ? "true" : "false");
	if (drill_witness_expect(d, "A", "", "backup died") < 0)
		return 0;

	/* B's host is back: A takes it as its backup again and registers it */
	uint64_t t_up, t_prot;
	if (drill_host_up(d, 1, &t_up) < 0)
		return -1;
	d->reprotect_checked = 1;
	if (drill_wait_vm(d, 0, "primary", "protected", &t_prot) < 0 ||
	    drill_wait_vm(d, 1, "backup", "backup", NULL) < 0)
		return 0;
	d->reprotect_ms = (t_prot - t_up) / 1e6;
	if (drill_witness_expect(d, "A", "B", "re-protected") < 0)
		return 0;
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;
	do {
		view(d->ctl_a, &v);
	} while (strcmp(v.standing, "registered") && hr_now_ns() < end && !drill_interrupted &&
		 usleep(10000) == 0);
	snprintf(d->standing + strlen(d->standing), sizeof(d->standing) - strlen(d->standing),
		 " -> %s", v.standing[0] ? v.standing : "-");
	if (strcmp(v.standing, "registered"))
		drill_fail(d, "A re-protected but its witness standing is %s, not registered",
			   v.standing[0] ? v.standing : "-");
	if (drill_wait_lines(d, ip_a, con_len(w), "after the re-protection", NULL) < 0)
		return 0;
	pthread_mutex_lock(&w->lock);
	d->b_lines = drill_lines_from(w, ip_b, 0, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	if (d->b_lines)
		drill_fail(d, "B released %u console lines: it must never speak", d->b_lines);
	drill_stop_vm(d, d->ctl_a);
	return 0;
}

int drill_witness_down(struct drill *d)
{
	struct drill_world *w = &d->w;
	struct vm_view va, vb;
	uint64_t end = hr_now_ns() + d->o->timeout_s * 1000000000ull;

	/* the link is torn and the witness stopped: A must hold its output */
	do {
		view(d->ctl_a, &va);
	} while (!va.held && hr_now_ns() < end && !drill_interrupted && usleep(10000) == 0);
	if (!va.held) {
		drill_fail(d,
			   "A did not hold its output with the witness down (state=%s "
			   "standing=%s)",
			   va.state[0] ? va.state : "-", va.standing[0] ? va.standing : "-");
		return -1;
	}
	unsigned before = lines_now(w);
	int moved = 0;
	end = hr_now_ns() + DRILL_HELD_WATCH_MS * 1000000ull;
	while (hr_now_ns() < end && !drill_interrupted) {
		view(d->ctl_a, &va);
		view(d->ctl_b, &vb);
		moved |= (va.state[0] && !va.held) || !strcmp(vb.role, "promoted");
		usleep(50000);
	}
	d->silent_lines = lines_now(w) - before;
	snprintf(d->survivor_state, sizeof(d->survivor_state), "%s", va.state[0] ? va.state : "-");
	snprintf(d->standing, sizeof(d->standing), "%s", va.standing[0] ? va.standing : "-");
	if (d->silent_lines || moved) {
		drill_fail(d,
			   "with the witness down %u console lines reached the outside (A %s, "
			   "B %s/%s): nobody may speak",
			   d->silent_lines, va.held ? "held" : "released", vb.role, vb.state);
		return -1;
	}
	drill_vlog(d->o, "witness down: nobody spoke for %d ms; SIGCONT", DRILL_HELD_WATCH_MS);
	uint64_t t_cont = hr_now_ns();
	kill(d->pid_w, SIGCONT);
	return race(d, t_cont);
}
