/*
 * drill-run.c - one failover drill, the scenario: set up the namespaces,
 * the observers and the daemons, protect memwalk from A to B, let the tap
 * kill the victim at the chosen moment, wait for the guest to go on (on B,
 * or on A when the backup was the victim), judge the contract, report and
 * tear down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/stats.h"
#include "common/util.h"
#include "ha/drill/drill.h"
#include "net/tls.h"

static int slow_backup(struct drill *d);

void drill_vlog(const struct drill_opts *o, const char *fmt, ...)
{
	va_list ap;
	if (!o->verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "drill: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s * 0x2545F4914F6CDD1Dull;
}

void drill_fail(struct drill *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	drill_first_problem(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

int drill_first_line(struct drill_world *w, uint32_t ip, uint64_t after)
{
	for (unsigned i = 0; i < w->nr_lines; i++)
		if (w->lines[i].end_off > after && w->lines[i].conn < 64 &&
		    w->conn_peer[w->lines[i].conn] == ip)
			return (int)i;
	return -1;
}

unsigned drill_lines_from(struct drill_world *w, uint32_t ip, unsigned from, unsigned to)
{
	unsigned n = 0;
	for (unsigned i = from; i < to && i < w->nr_lines; i++)
		if (w->lines[i].conn < 64 && w->conn_peer[w->lines[i].conn] == ip)
			n++;
	return n;
}

/*
 * A survived the fault (torn link, partition, hang) while B took over: A
 * must never speak again.  A hung A is let go first - it wakes up to a
 * world where B runs the VM.  Counts A's lines after B's first new one.
 */
static void one_speaker(struct drill *d, int first)
{
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A);

	if (d->o->fault == DRILL_FAULT_HANG) {
		pthread_mutex_lock(&w->lock);
		if (w->victim_pgid > 0)
			kill(-w->victim_pgid, SIGCONT);
		for (unsigned i = 0; i < w->nr_victim_kids; i++)
			kill(w->victim_kids[i], SIGCONT);
		pthread_mutex_unlock(&w->lock);
	}
	usleep(DRILL_HELD_WATCH_MS * 1000);
	pthread_mutex_lock(&w->lock);
	d->a_after = 0;
	for (unsigned i = (unsigned)first + 1; i < w->nr_lines; i++)
		if (w->lines[i].conn < 64 && w->conn_peer[w->lines[i].conn] == ip_a)
			d->a_after++;
	pthread_mutex_unlock(&w->lock);
	d->speakers_checked = 1;
	if (d->a_after)
		drill_fail(d, "two speakers: A released %u console lines after B had taken over",
			   d->a_after);
}

/* A new sparse image of bytes at path: 0, or -1 with the drill failed. */
static int make_image(struct drill *d, const char *path, uint64_t bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0) {
		drill_fail(d, "disk image %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* --disk: a guest promoted by the fault read its disk back; every check
 * (B's, and A's after a failback) must find its blocks (world lock held). */
static void judge_disk(struct drill *d)
{
	struct drill_world *w = &d->w;

	if (!d->o->disk)
		return;
	if (d->failover_ms >= 0 && !w->nr_diskchecks)
		drill_fail(d, "--disk: the promoted guest printed no diskcheck line");
	else if (w->bad_diskchecks)
		drill_fail(d, "--disk: a promoted guest's disk check failed: %s", w->diskchecks);
}

static int one_drill(struct drill *d)
{
	const struct drill_opts *o = d->o;
	struct drill_world *w = &d->w;
	char buf[16384], console[64], peer[64], state[300];
	uint64_t seed = o->seed + d->run - 1;

	snprintf(d->ns_a, sizeof(d->ns_a), "hrd-%d-%u-a", (int)getpid(), d->run);
	snprintf(d->ns_b, sizeof(d->ns_b), "hrd-%d-%u-b", (int)getpid(), d->run);
	snprintf(d->ns_out, sizeof(d->ns_out), "hrd-%d-%u-out", (int)getpid(), d->run);
	snprintf(d->dir, sizeof(d->dir), "%s/hrd-%d-%u-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), d->run);
	if (!mkdtemp(d->dir)) {
		drill_fail(d, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(d->ctl_a, sizeof(d->ctl_a), "%s/a.sock", d->dir);
	snprintf(d->ctl_b, sizeof(d->ctl_b), "%s/b.sock", d->dir);
	snprintf(d->log_a, sizeof(d->log_a), "%s/a.log", d->dir);
	snprintf(d->log_b, sizeof(d->log_b), "%s/b.log", d->dir);
	snprintf(d->log_ip, sizeof(d->log_ip), "%s/ip.log", d->dir);
	snprintf(d->log_cli, sizeof(d->log_cli), "%s/cli.log", d->dir);
	d->failover_ms = d->promoted_ms = -1;
	d->tl = (struct drill_timeline){-1, -1, -1, -1, -1};

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->con_lfd = w->tap_lfd = w->back_lfd = -1;
	w->netns_out = d->ns_out;
	snprintf(w->upstream_host, sizeof(w->upstream_host), "%s", DRILL_IP_B);
	snprintf(w->upstream_port, sizeof(w->upstream_port), "%d", DRILL_PORT_TAP);
	snprintf(w->back_host, sizeof(w->back_host), "%s", DRILL_IP_A);
	snprintf(w->back_port, sizeof(w->back_port), "%d", DRILL_PORT_A);
	w->kill_at = o->kill_at;
	w->fault = o->fault;
	w->kill_epoch = o->epochs;
	w->epoch_us = o->epoch_us;
	uint64_t rs = seed * 0x9E3779B97F4A7C15ull + 1;
	rng_next(&rs);
	w->random_delay_us = rng_next(&rs) % (2 * o->epoch_us);

	drill_vlog(o, "run %u: namespaces %s %s %s, files in %s", d->run, d->ns_a, d->ns_b,
		   d->ns_out, d->dir);
	if (drill_netns_up(d) < 0 || drill_guestnet_up(d) < 0) {
		drill_fail(d, "could not set up the network namespaces (see %s)", d->log_ip);
		return -1;
	}
	int rc = drill_world_listen(w, DRILL_IP_OUT, DRILL_PORT_CON, DRILL_PORT_TAP, DRILL_PORT_A);
	if (rc < 0) {
		drill_fail(d, "collector/tap listen in %s: %s", d->ns_out, strerror(-rc));
		return -1;
	}
	if (drill_world_start(w, d->threads) < 0) {
		drill_fail(d, "cannot start the observer threads");
		return -1;
	}
	d->world_started = 1;

	if (drill_make_certs(d) < 0)
		return -1;
	if (o->witness && drill_witness_up(d) < 0)
		return -1;
	snprintf(state, sizeof(state), "%s/state-a", d->dir);
	d->pid_a = drill_start_daemon(d, d->ns_a, DRILL_IP_A, d->ctl_a, state, d->log_a);
	snprintf(state, sizeof(state), "%s/state-b", d->dir);
	d->pid_b = drill_start_daemon(d, d->ns_b, DRILL_IP_B, d->ctl_b, state, d->log_b);
	if (d->pid_a < 0 || d->pid_b < 0 || drill_wait_control(d, d->ctl_a, d->pid_a, 10) < 0 ||
	    drill_wait_control(d, d->ctl_b, d->pid_b, 10) < 0) {
		drill_fail(d, "hareplicated did not come up (see %s, %s)", d->log_a, d->log_b);
		return -1;
	}
	/* a host death kills the daemon's process group and its workers */
	w->victim_pgid = DRILL_FAULT_IS_RESTART(o->fault) ? 0
			 : o->victim_backup		  ? d->pid_b
							  : d->pid_a;
	if (DRILL_FAULT_IS_RESTART(o->fault))
		w->victim_pid = o->fault == DRILL_FAULT_RESTART_BACKUP ? d->pid_b : d->pid_a;
	drill_vlog(o, "daemons up: A pid %d, B pid %d", (int)d->pid_a, (int)d->pid_b);

	/* --disk: A's image, fresh and sparse; B's daemon makes its own copy in
	 * its --disk-dir (drill-hosts.c) with the size A's HELLO announces */
	char disk[320], append[1024];
	snprintf(disk, sizeof(disk), "%s/disk-a.img", d->dir);
	snprintf(append, sizeof(append), "%s%s", o->append,
		 o->disk && !strstr(o->append, "disk_writes=") ? DRILL_DISK_APPEND : "");
	if (o->disk && make_image(d, disk, DRILL_DISK_BYTES) < 0)
		return -1;
	snprintf(console, sizeof(console), "tcp:%s:%d", DRILL_IP_OUT, DRILL_PORT_CON);
	snprintf(peer, sizeof(peer), "%s:%d", DRILL_IP_OUT, DRILL_PORT_TAP);
	char *start[] = {"start",     DRILL_VM_NAME,
			 "--backend", o->mem ? "mem" : "kvm",
			 "--peer",    peer,
			 "--epoch",   (char *)o->epoch,
			 "--kernel",  (char *)o->kernel,
			 "--memory",  (char *)o->memory,
			 "--append",  append,
			 "--console", console,
			 NULL,	      NULL,
			 NULL};
	if (o->net) {
		start[sizeof(start) / sizeof(start[0]) - 3] = "--net";
		start[sizeof(start) / sizeof(start[0]) - 2] = "tap=" DRILL_GTAP;
	} else if (o->disk) {
		start[sizeof(start) / sizeof(start[0]) - 3] = "--disk";
		start[sizeof(start) / sizeof(start[0]) - 2] = disk;
	}
	rc = drill_cli(d, d->ctl_a, start, 60000);
	if (rc != 0) {
		drill_fail(d, "`hareplicate start` failed (exit %d; see %s, %s)", rc, d->log_cli,
			   d->log_a);
		return -1;
	}
	drill_vlog(o, "started %s on A; waiting for %llu acked epochs", DRILL_VM_NAME,
		   (unsigned long long)o->epochs);
	if (drill_probes_start(d) < 0)
		return -1;

	/* run until the tap has killed the victim */
	uint64_t last_progress = hr_now_ns(), last_acked = 0, last_sample = 0, last_refresh = 0;
	for (;;) {
		if (drill_interrupted) {
			drill_fail(d, "interrupted by signal %d", (int)drill_interrupted);
			return -1;
		}
		uint64_t now = hr_now_ns();
		/* The tap kills A (drill_kill_locked) and sets killed under w->lock:
		 * reap A under the same lock, so that a death seen here with killed
		 * still 0 cannot be our kill. */
		int st, died = 0;
		pthread_mutex_lock(&w->lock);
		int killed = w->killed;
		uint64_t acked = w->acked;
		if (!killed && waitpid(d->pid_a, &st, WNOHANG) == d->pid_a)
			died = 1;
		pthread_mutex_unlock(&w->lock);
		if (killed)
			break;
		if (died) {
			d->pid_a = 0;
			drill_fail(d, "A's daemon died before the kill (see %s)", d->log_a);
			return -1;
		}
		if (acked != last_acked) {
			last_acked = acked;
			last_progress = now;
		}
		if (now - last_progress > o->timeout_s * 1000000000ull) {
			drill_fail(
			    d, "replication made no progress for %u s (acked %llu epochs; see %s)",
			    o->timeout_s, (unsigned long long)acked, d->log_a);
			return -1;
		}
		if (now - last_refresh > 200000000ull) {
			drill_refresh_victims(d);
			if (DRILL_FAULT_IS_RESTART(o->fault))
				drill_restart_note_workers(d);
			last_refresh = now;
		}
		if (now - last_sample > 50000000ull) {
			if (!drill_ctl_query(d->ctl_a, "status", buf, sizeof(buf)))
				drill_add_sample(d, buf);
			last_sample = now;
		}
		usleep(5000);
	}
	drill_vlog(o, "killed: %s", w->kill_what);
	if (!o->victim_backup && DRILL_FAULT_KILLS(o->fault))
		drill_reap(&d->pid_a, 2000);

	if (o->victim_backup)
		return o->witness ? drill_witness_backup_death(d) : drill_backup_death(d);
	if (o->fault == DRILL_FAULT_WITNESS_DOWN)
		return drill_witness_down(d);
	if (o->fault == DRILL_FAULT_TORN && o->witness)
		return drill_witness_race(d);
	if (DRILL_FAULT_IS_RESTART(o->fault))
		return drill_restart(d);
	if (o->fault == DRILL_FAULT_SLOW)
		return slow_backup(d);

	/* after the kill: the guest must go on on B */
	uint32_t want_ip = inet_addr(o->victim_backup ? DRILL_IP_A : DRILL_IP_B);
	uint64_t t_kill = w->kill_ns, end = hr_now_ns() + o->timeout_s * 1000000000ull;
	int first = -1;
	while (!drill_interrupted && hr_now_ns() < end) {
		pthread_mutex_lock(&w->lock);
		if (first < 0)
			first = drill_first_line(w, want_ip, w->kill_con_len);
		unsigned have = w->nr_lines;
		pthread_mutex_unlock(&w->lock);
		if (!o->victim_backup && d->promoted_ms < 0 &&
		    !drill_ctl_query(d->ctl_b, "status", buf, sizeof(buf))) {
			char role[32];
			drill_json_str(buf, "role", role, sizeof(role));
			if (!strcmp(role, "promoted"))
				d->promoted_ms = (hr_now_ns() - t_kill) / 1e6;
		}
		if (first >= 0 && have >= (unsigned)first + o->after_lines)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&w->lock);
	if (first >= 0) {
		d->failover_ms = (w->lines[first].t_ns - t_kill) / 1e6;
		d->first_new_seq = w->lines[first].seq;
	}
	unsigned have = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	if (first < 0)
		drill_fail(d, "no new console line from the backup within %u s of the kill",
			   o->timeout_s);
	else if (have < (unsigned)first + o->after_lines)
		drill_fail(d, "only %u of %u progress lines after the failover within %u s",
			   have - (unsigned)first, o->after_lines, o->timeout_s);

	/* B's promotion needed the witness's grant: it names B the owner */
	if (o->witness && first >= 0)
		drill_witness_expect(d, "B", NULL, "B took over");
	if (!DRILL_FAULT_KILLS(o->fault) && first >= 0)
		one_speaker(d, first);
	/* failback: A comes back, becomes B's backup, then the primary again */
	if (o->fault == DRILL_FAULT_FAILBACK && first >= 0 && !d->why[0] &&
	    drill_failback(d, first) < 0)
		return -1;

	/* a last look: the stream must still be consistent */
	usleep(100000);
	drill_stop_vm(d, o->fault == DRILL_FAULT_FAILBACK ? d->ctl_a : d->ctl_b);
	return 0;
}

int drill_run(const struct drill_opts *o, unsigned run, struct drill_result *r)
{
	struct drill *d = calloc(1, sizeof(*d));
	*r = (struct drill_result){.failover_ms = -1,
				   .downtime_ms = -1,
				   .adopt_ms = -1,
				   .tl = {-1, -1, -1, -1, -1},
				   .reprotect_ms = -1,
				   .release_ms = -1,
				   .switchback_ms = -1,
				   .reprotect2_ms = -1,
				   .stall_ms = -1};
	if (!d)
		return 1;
	d->o = o;
	d->run = run;
	d->downtime_ms = d->adopt_ms = d->exit_ms = d->unseen_ms = -1;
	d->reprotect_ms = d->release_ms = d->switchback_ms = d->reprotect2_ms = -1;
	d->stall_ms = -1;
	one_drill(d);
	drill_probes_stop(d); /* if no scenario got as far (their verdict counts) */
	if (d->world_started) {
		pthread_mutex_lock(&d->w.lock);
		drill_console_settle(&d->w); /* frames still waiting for bytes before them */
		judge_disk(d);
		d->pass = !d->why[0] && !d->w.first_violation[0] && d->w.killed && !d->w.gaps &&
			  !d->w.conflicts && !d->w.seq_breaks && !d->w.guest_errors &&
			  !d->w.bad_lines;
		pthread_mutex_unlock(&d->w.lock);
	}
	drill_load_epoch_log(d);
	drill_load_timeline(d);
	drill_teardown(d);
	drill_report(d);
	fputs(d->report, stdout);
	fflush(stdout);
	r->failover_ms = d->failover_ms;
	r->tl = d->tl;
	r->downtime_ms = d->downtime_ms;
	r->adopt_ms = d->adopt_ms;
	r->reprotect_ms = d->reprotect_ms;
	r->release_ms = d->release_ms;
	r->switchback_ms = d->switchback_ms;
	r->reprotect2_ms = d->reprotect2_ms;
	r->stall_ms = d->stall_ms;
	r->winner = d->winner;
	int pass = d->pass;
	free(d->w.buf);
	free(d->w.lines);
	for (unsigned i = 0; i < d->w.nr_early; i++)
		free(d->w.early[i].data);
	free(d->w.early);
	free(d->w.wire);
	free(d->samples);
	hr_tls_ctx_free(d->wit_tls);
	free(d);
	return pass ? 0 : 1;
}

/*
 * A slow backup: from the moment on, everything B sends A (acks,
 * heartbeats) arrives DRILL_SLOW_MS late.  Output is released later, and
 * nothing else may change: B stays the backup (A's heartbeats still reach
 * it), A stays protected and keeps releasing.
 */
#define SLOW_WATCH_MS 3000

static int slow_backup(struct drill *d)
{
	struct drill_world *w = &d->w;
	uint32_t ip_a = inet_addr(DRILL_IP_A);
	char buf[8192], role[32] = "", st_a[32] = "";
	uint64_t end = hr_now_ns() + SLOW_WATCH_MS * 1000000ull;
	int moved = 0;

	pthread_mutex_lock(&w->lock);
	unsigned before = w->nr_lines;
	pthread_mutex_unlock(&w->lock);
	while (hr_now_ns() < end && !drill_interrupted) {
		if (!drill_ctl_query(d->ctl_b, "status", buf, sizeof(buf))) {
			drill_json_str(buf, "role", role, sizeof(role));
			moved |= strcmp(role, "backup") != 0;
		}
		if (!drill_ctl_query(d->ctl_a, "status", buf, sizeof(buf))) {
			drill_json_str(buf, "state", st_a, sizeof(st_a));
			moved |= strcmp(st_a, "protected") != 0;
		}
		usleep(100000);
	}
	pthread_mutex_lock(&w->lock);
	unsigned from_a = 0;
	for (unsigned i = before; i < w->nr_lines; i++)
		if (w->lines[i].conn < 64 && w->conn_peer[w->lines[i].conn] == ip_a)
			from_a++;
	pthread_mutex_unlock(&w->lock);
	/* the ack latency A measures now (its last epoch): the delay must show */
	uint64_t ack_us = 0;
	if (!drill_ctl_query(d->ctl_a, "status", buf, sizeof(buf))) {
		const char *le = strstr(buf, "\"last_epoch\"");
		if (le)
			drill_json_u64(le, "ack_us", &ack_us);
	}
	d->slow_lines = from_a;
	d->slow_ack_us = ack_us;
	d->slow_checked = 1;
	snprintf(d->survivor_state, sizeof(d->survivor_state), "%s", st_a[0] ? st_a : "?");
	if (moved)
		drill_fail(d, "a slow backup changed roles: B is %s, A is %s", role, st_a);
	else if (!from_a)
		drill_fail(d, "A released nothing while its backup was slow");
	else if (ack_us < DRILL_SLOW_MS * 1000)
		drill_fail(d, "A's ack latency is %llu us: the slow backup was not simulated",
			   (unsigned long long)ack_us);
	drill_stop_vm(d, d->ctl_a);
	return 0;
}
