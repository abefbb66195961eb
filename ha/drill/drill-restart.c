/*
 * drill-restart.c - `--fault restart-primary|restart-backup`: a daemon
 * restart during protection.  At the moment the tap sends SIGTERM to one
 * hareplicated (A's or B's; not its worker, drill-killpoint.c); the drill
 * waits for it to exit, starts it again with the same arguments and checks
 * that the restart is invisible to the VM: the new daemon adopts the same
 * worker (same pid, same role and state), epochs keep coming, the console
 * seen outside keeps flowing from A, and nothing fails over - B never
 * promotes, A never leaves protected, no console line ever comes from B.
 * It measures the daemon's downtime and how long the new daemon takes to
 * report the VM again (adopt latency).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/drill/drill.h"

#define RESTART_EXIT_MS 10000 /* SIGTERM -> the daemon exited */
#define RESTART_UP_MS	10000 /* restart -> its control socket answers */
#define RESTART_EPOCHS	20    /* nr_epochs must grow by this after the adopt */

static const char *const side_name[2] = {"A", "B"};

/* The VM's worker pid as the daemon on ctl reports it (0 if no answer, or
 * none yet: an adopted VM has no pid until the worker's adopt line came).
 * The document begins with the daemon's own pid: look in "vms" only. */
pid_t drill_status_worker(const char *ctl, char *buf, size_t size)
{
	uint64_t pid;
	const char *vms;
	if (drill_ctl_query(ctl, "status", buf, size) < 0 || !(vms = strstr(buf, "\"vms\": [")) ||
	    drill_json_u64(vms, "pid", &pid) < 0)
		return 0;
	return (pid_t)pid;
}

void drill_restart_note_workers(struct drill *d)
{
	const char *ctl[2] = {d->ctl_a, d->ctl_b};
	char buf[8192];

	for (int i = 0; i < 2; i++) {
		pid_t p = drill_status_worker(ctl[i], buf, sizeof(buf));
		if (p > 0)
			d->worker_before[i] = p;
	}
}

/*
 * Nothing may fail over: B stays the backup and A stays protected, each
 * asked while its daemon is up (down: 0 = A's is not, 1 = B's, -1 both up).
 */
static void no_failover(struct drill *d, int down)
{
	char buf[8192], role[32], st[32], ev[32];

	if (down != 1 && !drill_ctl_query(d->ctl_b, "status", buf, sizeof(buf))) {
		drill_json_str(buf, "role", role, sizeof(role));
		drill_json_str(buf, "state", st, sizeof(st));
		if (strcmp(role, "backup"))
			drill_fail(d, "failover during a daemon restart: B's role is %s (state %s)",
				   role, st);
	}
	if (down != 0 && !drill_ctl_query(d->ctl_a, "status", buf, sizeof(buf))) {
		drill_json_str(buf, "state", st, sizeof(st));
		drill_json_str(buf, "last_event", ev, sizeof(ev));
		if (strcmp(st, "protected"))
			drill_fail(d,
				   "A left protected during a daemon restart: state %s "
				   "last_event %s",
				   st, ev);
	}
}

/* SIGTERM (sent by the tap) -> exit, then the same daemon again; fills
 * exit_ms, restart_ns and downtime_ms.  0, or -1 (d->why says why). */
static int restart_daemon(struct drill *d, int b, uint64_t t_term)
{
	pid_t *pid = b ? &d->pid_b : &d->pid_a;
	const char *ctl = b ? d->ctl_b : d->ctl_a;
	char state[300], buf[4096];
	uint64_t end = t_term + RESTART_EXIT_MS * 1000000ull;
	int st;

	while (*pid > 0 && hr_now_ns() < end && !drill_interrupted) {
		no_failover(d, b);
		if (waitpid(*pid, &st, WNOHANG) == *pid)
			*pid = 0;
		else
			usleep(5000);
	}
	if (*pid > 0) {
		drill_fail(d, "%s's hareplicated did not exit within %d ms of SIGTERM (see %s)",
			   side_name[b], RESTART_EXIT_MS, b ? d->log_b : d->log_a);
		return -1;
	}
	d->exit_ms = (hr_now_ns() - t_term) / 1e6;
	for (int i = 0; i < 2; i++)
		if (kill(d->worker_before[i], 0) < 0)
			drill_fail(d, "%s's worker %d ended when %s's daemon exited", side_name[i],
				   (int)d->worker_before[i], side_name[b]);

	snprintf(state, sizeof(state), "%s/state-%c", d->dir, b ? 'b' : 'a');
	d->restart_ns = hr_now_ns();
	*pid = drill_start_daemon(d, b ? d->ns_b : d->ns_a, b ? DRILL_IP_B : DRILL_IP_A, ctl, state,
				  b ? d->log_b : d->log_a);
	if (*pid < 0) {
		*pid = 0;
		drill_fail(d, "cannot start %s's hareplicated again", side_name[b]);
		return -1;
	}
	end = hr_now_ns() + RESTART_UP_MS * 1000000ull;
	while (hr_now_ns() < end && !drill_interrupted) {
		if (!drill_ctl_query(ctl, "ping", buf, sizeof(buf))) {
			d->downtime_ms = (hr_now_ns() - t_term) / 1e6;
			return 0;
		}
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			break;
		}
		no_failover(d, b);
		usleep(2000);
	}
	drill_fail(d, "the restarted hareplicated on %s %s (see %s)", side_name[b],
		   *pid ? "did not answer in time" : "died", b ? d->log_b : d->log_a);
	return -1;
}

int drill_restart(struct drill *d)
{
	const struct drill_opts *o = d->o;
	struct drill_world *w = &d->w;
	int b = o->fault == DRILL_FAULT_RESTART_BACKUP;
	const char *ctl = b ? d->ctl_b : d->ctl_a;
	const char *want_role = b ? "backup" : "primary", *want_state = b ? "backup" : "protected";
	uint32_t ip_a = inet_addr(DRILL_IP_A), ip_b = inet_addr(DRILL_IP_B);
	char buf[16384], role[32] = "", st[32] = "";
	uint64_t nr = 0;

	d->restart_checked = 1;
	pthread_mutex_lock(&w->lock);
	uint64_t t_term = w->kill_ns;
	unsigned at_kill = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	if (!d->worker_before[0] || !d->worker_before[1]) {
		drill_fail(d, "no worker pid in A's and B's status before the restart");
		return -1;
	}
	if (restart_daemon(d, b, t_term) < 0)
		return -1;
	uint64_t t_up = hr_now_ns();
	pthread_mutex_lock(&w->lock);
	unsigned at_up = w->nr_lines;
	d->lines_down = drill_lines_from(w, ip_a, at_kill, at_up);
	pthread_mutex_unlock(&w->lock);
	drill_vlog(o, "%s's daemon exited %.1f ms after SIGTERM, answers again after %.1f ms",
		   side_name[b], d->exit_ms, d->downtime_ms);

	/* the new daemon reports the VM: the same worker, role and state */
	uint64_t end = t_up + o->timeout_s * 1000000000ull;
	pid_t pid = 0;
	while (hr_now_ns() < end && !drill_interrupted) {
		no_failover(d, b);
		if ((pid = drill_status_worker(ctl, buf, sizeof(buf))) > 0)
			break;
		usleep(2000);
	}
	if (pid <= 0) {
		drill_fail(d, "the restarted daemon on %s did not report %s within %u s",
			   side_name[b], DRILL_VM_NAME, o->timeout_s);
		return -1;
	}
	d->adopt_ms = (hr_now_ns() - d->restart_ns) / 1e6;
	d->unseen_ms = (hr_now_ns() - t_term) / 1e6;
	drill_json_str(buf, "role", role, sizeof(role));
	drill_json_str(buf, "state", st, sizeof(st));
	snprintf(d->restart_state, sizeof(d->restart_state), "%s/%s", role, st);
	if (drill_json_u64(buf, "nr_epochs", &d->epochs_at_adopt) < 0)
		drill_fail(d, "the restarted daemon's status has no nr_epochs");
	if (pid != d->worker_before[b])
		drill_fail(d,
			   "the restarted daemon on %s reports worker %d, not %d: it did not adopt "
			   "the running worker",
			   side_name[b], (int)pid, (int)d->worker_before[b]);
	if (strcmp(role, want_role) || strcmp(st, want_state))
		drill_fail(d, "the restarted daemon on %s reports role=%s state=%s, not %s/%s",
			   side_name[b], role, st, want_role, want_state);

	/* epochs go on (through the new daemon) and so does the console */
	pthread_mutex_lock(&w->lock);
	unsigned at_adopt = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	end = hr_now_ns() + o->timeout_s * 1000000000ull;
	d->epochs_later = d->epochs_at_adopt;
	while (hr_now_ns() < end && !drill_interrupted) {
		no_failover(d, -1);
		if (!drill_ctl_query(ctl, "status", buf, sizeof(buf)) &&
		    !drill_json_u64(buf, "nr_epochs", &nr))
			d->epochs_later = nr;
		pthread_mutex_lock(&w->lock);
		d->lines_after = drill_lines_from(w, ip_a, at_adopt, w->nr_lines);
		pthread_mutex_unlock(&w->lock);
		if (d->epochs_later >= d->epochs_at_adopt + RESTART_EPOCHS &&
		    d->lines_after >= o->after_lines)
			break;
		usleep(20000);
	}
	if (d->epochs_later < d->epochs_at_adopt + RESTART_EPOCHS)
		drill_fail(d,
			   "epochs stopped after the restart: %s's nr_epochs went %llu -> %llu in "
			   "%u s (want +%d)",
			   side_name[b], (unsigned long long)d->epochs_at_adopt,
			   (unsigned long long)d->epochs_later, o->timeout_s, RESTART_EPOCHS);
	if (d->lines_after < o->after_lines)
		drill_fail(d, "only %u of %u progress lines from A after the restart within %u s",
			   d->lines_after, o->after_lines, o->timeout_s);

	/* the same workers on both sides; B never spoke */
	const char *ctls[2] = {d->ctl_a, d->ctl_b};
	for (int i = 0; i < 2; i++) {
		d->worker_after[i] = drill_status_worker(ctls[i], buf, sizeof(buf));
		if (d->worker_after[i] != d->worker_before[i])
			drill_fail(d, "%s's worker was %d before the restart and is %d after",
				   side_name[i], (int)d->worker_before[i], (int)d->worker_after[i]);
	}
	pthread_mutex_lock(&w->lock);
	d->b_lines = drill_lines_from(w, ip_b, 0, w->nr_lines);
	pthread_mutex_unlock(&w->lock);
	if (d->b_lines)
		drill_fail(d, "B released %u console lines: a failover, or two speakers",
			   d->b_lines);

	drill_stop_vm(d, d->ctl_a);
	return 0;
}
