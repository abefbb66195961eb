/*
 * drill-hosts.c - the drill's hosts: network namespaces A (primary), B
 * (backup) and OUT (the outside world, a bridge that joins them), a
 * hareplicated in A and in B, the CLI run against either, the daemons'
 * process trees (what a kill hits) and the teardown of all of it.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "core/engine.h"
#include "net/cert.h"
#include "net/tls.h"
#include "ha/drill/drill.h"

int drill_netns_up(struct drill *d)
{
	const char *L = d->log_ip;
	const char *ns[2] = {d->ns_a, d->ns_b}, *ip[2] = {DRILL_IP_A, DRILL_IP_B},
		   *peer[2] = {"va", "vb"};

	if (drill_ip(L, "netns add %s", d->ns_a) || drill_ip(L, "netns add %s", d->ns_b) ||
	    drill_ip(L, "netns add %s", d->ns_out))
		return -1;
	d->netns_made = 1;
	if (drill_ip(L, "-n %s link set lo up", d->ns_out) ||
	    drill_ip(L, "-n %s link add br0 type bridge", d->ns_out) ||
	    drill_ip(L, "-n %s addr add %s/24 dev br0", d->ns_out, DRILL_IP_OUT) ||
	    drill_ip(L, "-n %s link set br0 up", d->ns_out))
		return -1;
	for (int i = 0; i < 2; i++)
		if (drill_ip(L, "-n %s link set lo up", ns[i]) ||
		    drill_ip(L, "-n %s link add eth0 type veth peer name %s netns %s", ns[i],
			     peer[i], d->ns_out) ||
		    drill_ip(L, "-n %s link set %s master br0", d->ns_out, peer[i]) ||
		    drill_ip(L, "-n %s link set %s up", d->ns_out, peer[i]) ||
		    drill_ip(L, "-n %s addr add %s/24 dev eth0", ns[i], ip[i]) ||
		    drill_ip(L, "-n %s link set eth0 up", ns[i]))
			return -1;
	return 0;
}

int drill_make_certs(struct drill *d)
{
	static const char *const sub[] = {"pki", "pki/ca", "pki/A", "pki/B", "pki/W"};
	char path[400], ca[400], err[512] = "";
	int rc = 0;

	if (!d->o->tls)
		return 0;
	for (unsigned i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", d->dir, sub[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
	}
	snprintf(ca, sizeof(ca), "%s/pki/ca", d->dir);
	rc = hr_cert_make_ca(ca, "drill-ca", err, sizeof(err));
	for (int i = 0; !rc && i < 3; i++) {
		static const char *const names[] = {"A", "B", "W"};
		snprintf(path, sizeof(path), "%s/pki/%s", d->dir, names[i]);
		rc = hr_cert_make_host(path, ca, names[i], err, sizeof(err));
	}
	if (rc) {
		drill_fail(d, "cannot make the hosts' certificates: %s", err);
		return rc;
	}
	/* the drill asks the witness as W (queries only) */
	struct drill_tls_paths tp;
	char *argv[6];
	drill_link_opts(d, "W", &tp, argv);
	struct hr_tls_config tc = {.cert_file = tp.cert, .key_file = tp.key, .ca_file = tp.ca};
	rc = hr_tls_ctx_new(&d->wit_tls, &tc, err, sizeof(err));
	if (rc)
		drill_fail(d, "cannot set up TLS to the witness: %s", err);
	return rc;
}

unsigned drill_link_opts(struct drill *d, const char *node, struct drill_tls_paths *buf,
			 char **argv)
{
	if (!d->o->tls) {
		argv[0] = "--insecure";
		return 1;
	}
	snprintf(buf->cert, sizeof(buf->cert), "%s/pki/%s/host.crt", d->dir, node);
	snprintf(buf->key, sizeof(buf->key), "%s/pki/%s/host.key", d->dir, node);
	snprintf(buf->ca, sizeof(buf->ca), "%s/pki/%s/ca.crt", d->dir, node);
	argv[0] = "--tls-cert";
	argv[1] = buf->cert;
	argv[2] = "--tls-key";
	argv[3] = buf->key;
	argv[4] = "--tls-ca";
	argv[5] = buf->ca;
	return 6;
}

pid_t drill_start_daemon(struct drill *d, const char *ns, const char *ip, const char *ctl,
			 const char *state, const char *log)
{
	char listen[64], console[64], witness[64];
	struct drill_tls_paths tp;
	const char *node = !strcmp(ip, DRILL_IP_A) ? "A" : "B";
	char *argv[32];
	unsigned n = 0;

	/* each daemon on the port OUT relays to it (drill.h) */
	snprintf(listen, sizeof(listen), "%s:%d", ip,
		 !strcmp(ip, DRILL_IP_A) ? DRILL_PORT_A : DRILL_PORT_TAP);
	snprintf(console, sizeof(console), "tcp:%s:%d", DRILL_IP_OUT, DRILL_PORT_CON);
	argv[n++] = (char *)d->o->daemon;
	argv[n++] = "--control";
	argv[n++] = (char *)ctl;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--state-dir";
	argv[n++] = (char *)state;
	argv[n++] = "--console-default";
	argv[n++] = console;
	char failover[16];
	snprintf(failover, sizeof(failover), "%u",
		 d->o->failover_ms ? d->o->failover_ms : HR_FAILOVER_TIMEOUT_MS);
	argv[n++] = "--failover-timeout";
	argv[n++] = failover;
	argv[n++] = "-f";
	/* the drill's settings only, not this machine's hareplicated.conf */
	argv[n++] = "--no-config";
	/* each host names itself after its namespace (A, B): the witness and
	 * the peer know it by that name, and so does its certificate */
	argv[n++] = "--node";
	argv[n++] = (char *)node;
	n += drill_link_opts(d, node, &tp, argv + n);
	/* --disk: a backup's copies of the other host's disk, in the drill's
	 * directory (the daemon's default; said here so no setting moves it) */
	char disk_dir[400];
	if (d->o->disk) {
		snprintf(disk_dir, sizeof(disk_dir), "%s/disks", state);
		argv[n++] = "--disk-dir";
		argv[n++] = disk_dir;
	}
	if (d->o->witness) {
		snprintf(witness, sizeof(witness), "%s:%d", DRILL_IP_OUT, DRILL_PORT_WIT);
		argv[n++] = "--witness";
		argv[n++] = witness;
	}
	argv[n] = NULL;
	return drill_spawn(ns, argv, log);
}

int drill_host_up(struct drill *d, int b, uint64_t *t_r)
{
	pid_t *pid = b ? &d->pid_b : &d->pid_a;
	const char *ctl = b ? d->ctl_b : d->ctl_a, *log = b ? d->log_b : d->log_a;
	char state[300];

	snprintf(state, sizeof(state), "%s/state-%c", d->dir, b ? 'b' : 'a');
	*t_r = hr_now_ns();
	*pid = drill_start_daemon(d, b ? d->ns_b : d->ns_a, b ? DRILL_IP_B : DRILL_IP_A, ctl, state,
				  log);
	if (*pid < 0 || drill_wait_control(d, ctl, *pid, 10) < 0) {
		drill_fail(d, "%s's hareplicated did not come back up (see %s)", b ? "B" : "A",
			   log);
		if (*pid < 0)
			*pid = 0;
		return -1;
	}
	drill_vlog(d->o, "%s's hareplicated is back: pid %d", b ? "B" : "A", (int)*pid);
	return 0;
}

int drill_cli(struct drill *d, const char *control, char *const args[], unsigned timeout_ms)
{
	char *argv[32];
	unsigned n = 0;
	argv[n++] = (char *)d->o->self;
	for (unsigned i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	setenv("HAREPLICATE_CONTROL", control, 1);
	int rc = drill_cmd(argv, NULL, 0, d->log_cli, timeout_ms);
	unsetenv("HAREPLICATE_CONTROL");
	return rc;
}

int drill_wait_control(struct drill *d, const char *ctl, pid_t pid, unsigned timeout_s)
{
	char buf[4096];
	uint64_t end = hr_now_ns() + timeout_s * 1000000000ull;

	while (hr_now_ns() < end && !drill_interrupted) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		struct stat sb;
		if (!stat(ctl, &sb) && !drill_ctl_query(ctl, "ping", buf, sizeof(buf)))
			return 0;
		usleep(20000);
	}
	return -1;
}

static void kill_group(pid_t pgid, int sig)
{
	pid_t kids[32];
	if (pgid <= 0)
		return;
	unsigned n = drill_descendants(pgid, kids, 32);
	kill(-pgid, sig);
	for (unsigned i = 0; i < n; i++)
		kill(kids[i], sig);
}

void drill_reap(pid_t *pid, unsigned timeout_ms)
{
	uint64_t end = hr_now_ns() + timeout_ms * 1000000ull;
	int st;
	if (*pid <= 0)
		return;
	while (hr_now_ns() < end) {
		pid_t r = waitpid(*pid, &st, WNOHANG);
		if (r == *pid || (r < 0 && errno == ECHILD)) {
			*pid = 0;
			return;
		}
		usleep(10000);
	}
}

void drill_refresh_victims(struct drill *d)
{
	pid_t kids[32];
	pid_t root =
	    d->o->victim_backup || d->o->fault == DRILL_FAULT_RESTART_BACKUP ? d->pid_b : d->pid_a;
	unsigned n = drill_descendants(root, kids, 32);

	pthread_mutex_lock(&d->w.lock);
	if (!d->w.killed) {
		memcpy(d->w.victim_kids, kids, n * sizeof(pid_t));
		d->w.nr_victim_kids = n;
		if (n && !d->w.armed)
			d->w.armed = 1;
	}
	pthread_mutex_unlock(&d->w.lock);
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)remove(path); /* best effort: go on */
	return 0;
}

void drill_teardown(struct drill *d)
{
	const struct drill_opts *o = d->o;

	if (o->keep) {
		char kills[96] = "";
		if (d->pid_a > 0 || d->pid_b > 0 || d->pid_w > 0)
			snprintf(kills, sizeof(kills), "kill -9%s%.0d%s%.0d%s%.0d; ",
				 d->pid_a > 0 ? " -" : "", (int)d->pid_a, d->pid_b > 0 ? " -" : "",
				 (int)d->pid_b, d->pid_w > 0 ? " -" : "", (int)d->pid_w);
		fprintf(
		    stderr,
		    "drill: --keep: left running (daemon logs a.log, b.log in %s).  Remove with:\n"
		    "  %sip netns del %s; ip netns del %s; ip netns del %s; rm -rf %s\n",
		    d->dir, kills, d->ns_a, d->ns_b, d->ns_out, d->dir);
		if (d->world_started)
			drill_world_stop(&d->w, d->threads);
		return;
	}
	/* a hung host is let go first: a stopped process takes no SIGTERM */
	if (d->w.victim_pgid > 0)
		kill(-d->w.victim_pgid, SIGCONT);
	for (unsigned i = 0; i < d->w.nr_victim_kids; i++)
		kill(d->w.victim_kids[i], SIGCONT);
	if (d->pid_w > 0)
		kill(d->pid_w, SIGCONT); /* witness-down: stopped at the moment */
	/* orderly first (SIGTERM to daemons and workers), then SIGKILL what is left */
	pid_t *pids[3] = {&d->pid_a, &d->pid_b, &d->pid_w};
	for (int i = 0; i < 3; i++)
		if (*pids[i] > 0)
			kill_group(*pids[i], SIGTERM);
	for (int i = 0; i < 3; i++)
		drill_reap(pids[i], 12000);
	for (int i = 0; i < 3; i++)
		if (*pids[i] > 0) {
			kill_group(*pids[i], SIGKILL);
			drill_reap(pids[i], 2000);
		}
	/* workers orphaned by a SIGKILLed daemon: they are in its process group */
	if (d->w.victim_pgid > 0)
		kill(-d->w.victim_pgid, SIGKILL);
	for (unsigned i = 0; i < d->w.nr_victim_kids; i++)
		kill(d->w.victim_kids[i], SIGKILL);
	if (d->world_started)
		drill_world_stop(&d->w, d->threads);
	if (d->netns_made) {
		drill_ip(NULL, "netns del %s", d->ns_a);
		drill_ip(NULL, "netns del %s", d->ns_b);
		drill_ip(NULL, "netns del %s", d->ns_out);
	}
	if (d->pass)
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
