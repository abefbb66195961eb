/*
 * cmd-drill.c - `hareplicate drill`: a failover drill on one machine.
 *
 * Three network namespaces (A = primary host, B = backup host, OUT = the
 * outside world with a bridge that joins them), a hareplicated in A and in
 * B, memwalk protected from A to B, a console collector and a replication
 * tap in OUT (drill-wire.c).  After N epochs the primary (daemon and worker:
 * the whole host) or the backup's worker is killed with SIGKILL at a chosen
 * point of the epoch protocol, and the drill checks the contract as the
 * outside world sees it.  Everything it creates is removed at the end, on
 * failure and on SIGINT/SIGTERM too (unless --keep).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "common/stats.h"
#include "core/engine.h"
#include "cli/ctl.h"
#include "ha/drill/drill.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/kv.h"

#define NET_PREFIX "10.213.0."
#define IP_A	   NET_PREFIX "1"
#define IP_B	   NET_PREFIX "2"
#define IP_OUT	   NET_PREFIX "254"
#define PORT_CON   7000
#define PORT_TAP   7100
#define PORT_HRD   "7788"
#define VM_NAME	   "drillvm"

static const char drill_help[] =
    "A failover drill on this machine (root, /dev/kvm and iproute2 needed).  It\n"
    "creates three network namespaces hrd-PID-N-{a,b,out}: A and B are the\n"
    "primary and backup hosts, OUT is the outside world; a bridge in OUT joins\n"
    "them on " NET_PREFIX "0/24 (nothing leaves these namespaces).  It starts a\n"
    "hareplicated in A and in B, protects memwalk from A to B with\n"
    "`hareplicate start`, and runs two observers in OUT: a console collector\n"
    "(" IP_OUT ":7000, the console SPEC of the primary and B's --console-default)\n"
    "and a replication tap (" IP_OUT ":7100, A's --peer) that relays A<->B unchanged\n"
    "but reads the frame headers, so it knows when each epoch is sent and acked.\n"
    "\n"
    "When the backup has acked --epochs epochs it kills the primary host (the\n"
    "daemon's process group and its workers, SIGKILL) at the --kill-at moment:\n"
    "  during-send  the backup has received half of the first data frame of the\n"
    "               epoch; the tap forwards no more (exact, to the byte)\n"
    "  after-send   the backup committed and acked the epoch; the tap holds the\n"
    "               ack, so the primary never released that epoch's output (exact)\n"
    "  after-ack    the ack was delivered; the kill comes as soon as the released\n"
    "               output reaches the collector (or after epoch/2: within ~0.1 ms)\n"
    "  mid-epoch    half an epoch after the epoch began, nothing in flight (the\n"
    "               tap's poll timer: within ~1 ms)\n"
    "  random       a --seed'ed delay in [0, 2 epochs) after the epoch began; the\n"
    "               report says which of the above it landed in (default)\n"
    "Then it waits for B to promote and the console to continue, and checks the\n"
    "contract as seen from OUT: the guest continues on B (new progress lines),\n"
    "memwalk's self-check says errors=0 on every line, the console stream is\n"
    "gap-free, seq goes +1 line by line over the whole stream, and no offset ever\n"
    "arrives with two contents.  Exit status 0 only if all of that held, 1 if\n"
    "the contract was broken or the drill could not run, 2 for bad usage.\n"
    "\n"
    "  --epochs N        kill after the backup acked N epochs (default 200)\n"
    "  --kill-at MOMENT  random|mid-epoch|during-send|after-send|after-ack\n"
    "  --victim WHO      primary (default) or backup: kill only the backup's\n"
    "                    worker; the drill then checks that the primary keeps the\n"
    "                    guest running and `status` says unprotected\n"
    "  --seed S          seed for random choices (default: from the clock; printed)\n"
    "  --memory SIZE     guest RAM (default 256M)\n"
    "  --append CMDLINE  memwalk options (default \"rate=4000 wss=64M interval_ms=20\")\n"
    "  --epoch DURATION  epoch length (default 25ms)\n"
    "  --after-lines N   progress lines to see after the failover (default 25)\n"
    "  --timeout SECONDS bound on each wait: sync, promotion (default 60)\n"
    "  --repeat N        run N drills (seed, seed+1, ...) and print failover p50/max\n"
    "  --keep            leave namespaces, daemons and files for debugging (the\n"
    "                    drill prints how to remove them)\n"
    "  --kernel FILE     memwalk image (default: tests/guests/memwalk.elf next to\n"
    "                    this program, i.e. a build tree)\n"
    "  --daemon FILE     hareplicated to run (default: next to this program, else PATH)\n"
    "  -v, --verbose     progress on stderr\n"
    "\n"
    "The report: epochs, pause and achieved interval p50/p99 and bytes per epoch\n"
    "(sampled from the primary's `status --json`, ~every 50 ms), the same on the\n"
    "wire (every epoch, measured by the tap), and failover_ms = from the kill to\n"
    "the first console line from B that the outside had not seen before the kill.\n"
    "The last line is `drill: PASS ...` or `drill: FAIL ...`.\n";

struct opts {
	uint64_t epochs, seed, epoch_us;
	int seed_set, keep, verbose, victim_backup;
	enum drill_kill_at kill_at;
	const char *memory, *append, *epoch, *kernel, *daemon;
	unsigned repeat, after_lines, timeout_s;
	char self[4096];
};

static volatile sig_atomic_t g_interrupted;

static void on_sig(int sig)
{
	g_interrupted = sig;
}

static void vlog(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(const struct opts *o, const char *fmt, ...)
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

static int json_u64(const char *s, const char *key, uint64_t *v)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(s, pat);
	if (!p || !(p[strlen(pat)] >= '0' && p[strlen(pat)] <= '9'))
		return -1;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return 0;
}

static void json_str(const char *s, const char *key, char *out, size_t size)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	const char *p = strstr(s, pat);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, "\"");
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

/* `status VM --json` (or with cmd "ping": is it up?) in process, over the
 * control socket directly.  0 or -1. */
static int ctl_query(const char *control, const char *cmd, char *buf, size_t size)
{
	struct hr_sbuf req = {0};
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	int rc;

	if (!f)
		return -1;
	if (!strcmp(cmd, "status")) {
		hr_kv_add(&req, "vm", VM_NAME);
		hr_kv_add(&req, "json", "1");
	}
	/* errors go to stderr: keep them out of the report */
	int saved = dup(2), nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (nul >= 0)
		dup2(nul, 2);
	rc = hr_ctl_request(control, cmd, &req, f);
	if (saved >= 0) {
		dup2(saved, 2);
		close(saved);
	}
	if (nul >= 0)
		close(nul);
	fclose(f);
	hr_sbuf_free(&req);
	snprintf(buf, size, "%s", mem ? mem : "");
	free(mem);
	return rc == 0 ? 0 : -1;
}

/* one epoch's figures (core/epoch.h) */
#define sample hr_epoch_stats

struct drill {
	const struct opts *o;
	unsigned run;
	char ns_a[64], ns_b[64], ns_out[64], dir[256];
	char ctl_a[300], ctl_b[300], log_a[300], log_b[300], log_ip[300], log_cli[300];
	pid_t pid_a, pid_b;
	int netns_made;
	struct drill_world w;
	pthread_t threads[2];
	int world_started;
	struct sample *samples;
	unsigned nr_samples, cap_samples;
	int samples_logged; /* samples come from the worker's per-epoch log */
	/* results */
	int pass;
	char why[512];
	double failover_ms, promoted_ms;
	uint64_t first_new_seq;
	char survivor_state[32]; /* --victim backup: A's state after the kill */
	char report[8192];
};

static void fail(struct drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct drill *d, const char *fmt, ...)
{
	va_list ap;
	if (d->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

static void add_sample(struct drill *d, const char *js)
{
	struct sample s;
	int bad = 0;
	const char *le = strstr(js, "\"last_epoch\": {");
	if (!le)
		return;
#define HR_X_JSON(f) bad |= json_u64(le, #f, &s.f);
	HR_EPOCH_STATS_FIELDS(HR_X_JSON)
#undef HR_X_JSON
	if (bad)
		return;
	if (s.epoch == 0)
		return; /* the full sync is not an epoch like the others */
	if (d->nr_samples && d->samples[d->nr_samples - 1].epoch == s.epoch)
		return;
	if (d->nr_samples == d->cap_samples) {
		unsigned cap = d->cap_samples ? d->cap_samples * 2 : 256;
		struct sample *ns = realloc(d->samples, cap * sizeof(*ns));
		if (!ns)
			return;
		d->samples = ns;
		d->cap_samples = cap;
	}
	d->samples[d->nr_samples++] = s;
}

static int netns_up(struct drill *d)
{
	const char *L = d->log_ip;
	const char *ns[2] = {d->ns_a, d->ns_b}, *ip[2] = {IP_A, IP_B}, *peer[2] = {"va", "vb"};

	if (drill_ip(L, "netns add %s", d->ns_a) || drill_ip(L, "netns add %s", d->ns_b) ||
	    drill_ip(L, "netns add %s", d->ns_out))
		return -1;
	d->netns_made = 1;
	if (drill_ip(L, "-n %s link set lo up", d->ns_out) ||
	    drill_ip(L, "-n %s link add br0 type bridge", d->ns_out) ||
	    drill_ip(L, "-n %s addr add %s/24 dev br0", d->ns_out, IP_OUT) ||
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

static pid_t start_daemon(struct drill *d, const char *ns, const char *ip, const char *ctl,
			  const char *state, const char *log)
{
	char listen[64], console[64];
	snprintf(listen, sizeof(listen), "%s:%s", ip, PORT_HRD);
	snprintf(console, sizeof(console), "tcp:%s:%d", IP_OUT, PORT_CON);
	char *argv[] = {(char *)d->o->daemon,
			"--control",
			(char *)ctl,
			"--listen",
			listen,
			"--state-dir",
			(char *)state,
			"--console-default",
			console,
			"--failover-timeout",
			"500",
			"-f",
			NULL};
	return drill_spawn(ns, argv, log);
}

/* The CLI itself, with HAREPLICATE_CONTROL pointing at one daemon. */
static int cli(struct drill *d, const char *control, char *const args[], unsigned timeout_ms)
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

static int wait_control(struct drill *d, const char *ctl, pid_t pid, unsigned timeout_s)
{
	char buf[4096];
	uint64_t end = hr_now_ns() + timeout_s * 1000000000ull;

	while (hr_now_ns() < end && !g_interrupted) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		struct stat sb;
		if (!stat(ctl, &sb) && !ctl_query(ctl, "ping", buf, sizeof(buf)))
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

static void reap(pid_t *pid, unsigned timeout_ms)
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

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)remove(path); /* best effort: go on */
	return 0;
}

static void teardown(struct drill *d)
{
	const struct opts *o = d->o;

	if (o->keep) {
		char kills[64] = "";
		if (d->pid_a > 0 || d->pid_b > 0)
			snprintf(kills, sizeof(kills), "kill -9%s%.0d%s%.0d; ",
				 d->pid_a > 0 ? " -" : "", (int)d->pid_a, d->pid_b > 0 ? " -" : "",
				 (int)d->pid_b);
		fprintf(
		    stderr,
		    "drill: --keep: left running (daemon logs a.log, b.log in %s).  Remove with:\n"
		    "  %sip netns del %s; ip netns del %s; ip netns del %s; rm -rf %s\n",
		    d->dir, kills, d->ns_a, d->ns_b, d->ns_out, d->dir);
		if (d->world_started)
			drill_world_stop(&d->w, d->threads);
		return;
	}
	/* orderly first (SIGTERM stops every VM), then SIGKILL what is left */
	pid_t *pids[2] = {&d->pid_a, &d->pid_b};
	for (int i = 0; i < 2; i++)
		if (*pids[i] > 0)
			kill_group(*pids[i], SIGTERM);
	for (int i = 0; i < 2; i++)
		reap(pids[i], 12000);
	for (int i = 0; i < 2; i++)
		if (*pids[i] > 0) {
			kill_group(*pids[i], SIGKILL);
			reap(pids[i], 2000);
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

/* First progress line beyond what the outside held at the kill, from ip. */
static int first_new_line(struct drill_world *w, uint32_t ip)
{
	for (unsigned i = 0; i < w->nr_lines; i++)
		if (w->lines[i].end_off > w->kill_con_len && w->lines[i].conn < 64 &&
		    w->conn_peer[w->lines[i].conn] == ip)
			return (int)i;
	return -1;
}

/* Every epoch the primary's worker logged (STATE-DIR/VM.epochs) replaces the
 * sampled status figures: the report covers all epochs. */
static void load_epoch_log(struct drill *d)
{
	char path[512], line[256];
	snprintf(path, sizeof(path), "%s/state-a/%s.epochs", d->dir, VM_NAME);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	d->nr_samples = 0;
	while (fgets(line, sizeof(line), f)) {
		struct hr_epoch_stats s;
		if (hr_epoch_stats_parse(line, &s) < 0 || s.epoch == 0)
			continue;
		if (d->nr_samples == d->cap_samples) {
			unsigned cap = d->cap_samples ? d->cap_samples * 2 : 256;
			struct sample *ns = realloc(d->samples, cap * sizeof(*ns));
			if (!ns)
				break;
			d->samples = ns;
			d->cap_samples = cap;
		}
		d->samples[d->nr_samples++] = s;
	}
	fclose(f);
	d->samples_logged = 1;
}

static void report(struct drill *d)
{
	struct drill_world *w = &d->w;
	const struct opts *o = d->o;
	unsigned n = d->nr_samples, nw = 0;
	uint64_t *v = calloc((n > w->nr_wire ? n : w->nr_wire) + 1, sizeof(uint64_t));
	char *r = d->report;
	size_t size = sizeof(d->report), len = 0;
#define OUT(...) (len += (size_t)snprintf(r + len, len < size ? size - len : 0, __VA_ARGS__))

	OUT("drill %u: kill-at=%s victim=%s seed=%llu epoch=%s memory=%s append=\"%s\"\n", d->run,
	    drill_kill_at_name(o->kill_at), o->victim_backup ? "backup" : "primary",
	    (unsigned long long)(o->seed + d->run - 1), o->epoch, o->memory, o->append);
	OUT("  epochs: the backup acked epochs 0..%llu before the kill (0 = the full sync; "
	    "target %llu)\n",
	    (unsigned long long)(w->acked ? w->acked - 1 : 0), (unsigned long long)o->epochs);
	OUT("  kill: %s\n", w->killed ? w->kill_what : "(not done)");
	if (v && n) {
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].pause_us;
		uint64_t p50 = hr_percentile_u64(v, n, 50), p99 = hr_percentile_u64(v, n, 99);
		OUT("  primary (%s, %u epochs): pause_us p50=%llu p99=%llu",
		    d->samples_logged ? "per-epoch log" : "status samples", n,
		    (unsigned long long)p50, (unsigned long long)p99);
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].interval_us;
		p50 = hr_percentile_u64(v, n, 50);
		p99 = hr_percentile_u64(v, n, 99);
		OUT(" interval_us p50=%llu p99=%llu", (unsigned long long)p50,
		    (unsigned long long)p99);
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].bytes;
		OUT(" bytes p50=%llu", (unsigned long long)hr_percentile_u64(v, n, 50));
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].ack_us;
		OUT(" ack_us p50=%llu\n", (unsigned long long)hr_percentile_u64(v, n, 50));
	} else {
		OUT("  primary (status): no epoch stats sampled\n");
	}
	if (v) {
		nw = 0;
		for (unsigned i = 1; i < w->nr_wire; i++)
			if (w->wire[i].begin_ns && w->wire[i - 1].begin_ns &&
			    w->wire[i].epoch == w->wire[i - 1].epoch + 1 &&
			    w->wire[i - 1].epoch > 0)
				v[nw++] = (w->wire[i].begin_ns - w->wire[i - 1].begin_ns) / 1000;
		uint64_t i50 = hr_percentile_u64(v, nw, 50), i99 = hr_percentile_u64(v, nw, 99);
		unsigned nb = 0;
		for (unsigned i = 0; i < w->nr_wire; i++)
			if (w->wire[i].epoch > 0 && w->wire[i].end_ns)
				v[nb++] = w->wire[i].bytes;
		uint64_t b50 = hr_percentile_u64(v, nb, 50), b99 = hr_percentile_u64(v, nb, 99);
		unsigned na = 0;
		for (unsigned i = 0; i < w->nr_wire; i++)
			if (w->wire[i].epoch > 0 && w->wire[i].ack_ns && w->wire[i].end_ns)
				v[na++] = (w->wire[i].ack_ns - w->wire[i].end_ns) / 1000;
		OUT("  wire (tap, %u epochs): interval_us p50=%llu p99=%llu bytes p50=%llu "
		    "p99=%llu "
		    "end->ack_us p50=%llu\n",
		    nb, (unsigned long long)i50, (unsigned long long)i99, (unsigned long long)b50,
		    (unsigned long long)b99, (unsigned long long)hr_percentile_u64(v, na, 50));
	}
	free(v);
	OUT("  console: %llu bytes, %u progress lines (seq %llu..%llu), %u connections, %llu "
	    "repeated bytes deduplicated\n",
	    (unsigned long long)w->len, w->nr_lines,
	    (unsigned long long)(w->nr_lines ? w->lines[0].seq : 0),
	    (unsigned long long)(w->nr_lines ? w->lines[w->nr_lines - 1].seq : 0), w->nr_conns,
	    (unsigned long long)w->nr_repeat_bytes);
	OUT("  contract: gaps=%u two_contents=%u seq_breaks=%u self_check_errors=%u bad_lines=%u\n",
	    w->gaps, w->conflicts, w->seq_breaks, w->guest_errors, w->bad_lines);
	if (w->killed)
		OUT("  at the kill: outside held %llu bytes, last seq=%llu\n",
		    (unsigned long long)w->kill_con_len, (unsigned long long)w->kill_last_seq);
	if (!o->victim_backup && d->failover_ms >= 0)
		OUT("  failover_ms=%.1f (kill -> first new line from B, seq=%llu); promoted seen "
		    "in "
		    "B's status after %.0f ms\n",
		    d->failover_ms, (unsigned long long)d->first_new_seq, d->promoted_ms);
	if (o->victim_backup && d->failover_ms >= 0)
		OUT("  primary kept running: first line beyond the kill after %.1f ms (seq=%llu)\n",
		    d->failover_ms, (unsigned long long)d->first_new_seq);
	if (o->victim_backup && d->survivor_state[0])
		OUT("  primary's status after the backup's death: state=%s\n", d->survivor_state);
	if (w->tap_broken)
		OUT("  note: the tap could not parse the replication stream; moments are "
		    "imprecise\n");
	if (d->why[0] || w->first_violation[0])
		OUT("  first problem: %s\n", d->why[0] ? d->why : w->first_violation);
	OUT("drill: %s failover_ms=%.1f epochs=%llu\n", d->pass ? "PASS" : "FAIL", d->failover_ms,
	    (unsigned long long)(w->acked ? w->acked - 1 : 0));
	if (!d->pass)
		OUT("  logs: %s (a.log, b.log, cli.log, ip.log)\n", d->dir);
#undef OUT
}

/* Refresh the victim's process list: the daemon's descendants (workers). */
static void refresh_victims(struct drill *d)
{
	pid_t kids[32];
	pid_t root = d->o->victim_backup ? d->pid_b : d->pid_a;
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

static int one_drill(struct drill *d)
{
	const struct opts *o = d->o;
	struct drill_world *w = &d->w;
	char buf[16384], console[64], peer[64], state[300];
	uint64_t seed = o->seed + d->run - 1;

	snprintf(d->ns_a, sizeof(d->ns_a), "hrd-%d-%u-a", (int)getpid(), d->run);
	snprintf(d->ns_b, sizeof(d->ns_b), "hrd-%d-%u-b", (int)getpid(), d->run);
	snprintf(d->ns_out, sizeof(d->ns_out), "hrd-%d-%u-out", (int)getpid(), d->run);
	snprintf(d->dir, sizeof(d->dir), "%s/hrd-%d-%u-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), d->run);
	if (!mkdtemp(d->dir)) {
		fail(d, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(d->ctl_a, sizeof(d->ctl_a), "%s/a.sock", d->dir);
	snprintf(d->ctl_b, sizeof(d->ctl_b), "%s/b.sock", d->dir);
	snprintf(d->log_a, sizeof(d->log_a), "%s/a.log", d->dir);
	snprintf(d->log_b, sizeof(d->log_b), "%s/b.log", d->dir);
	snprintf(d->log_ip, sizeof(d->log_ip), "%s/ip.log", d->dir);
	snprintf(d->log_cli, sizeof(d->log_cli), "%s/cli.log", d->dir);
	d->failover_ms = d->promoted_ms = -1;

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->con_lfd = w->tap_lfd = -1;
	w->netns_out = d->ns_out;
	snprintf(w->upstream_host, sizeof(w->upstream_host), "%s", IP_B);
	snprintf(w->upstream_port, sizeof(w->upstream_port), "%s", PORT_HRD);
	w->kill_at = o->kill_at;
	w->kill_epoch = o->epochs;
	w->epoch_us = o->epoch_us;
	uint64_t rs = seed * 0x9E3779B97F4A7C15ull + 1;
	rng_next(&rs);
	w->random_delay_us = rng_next(&rs) % (2 * o->epoch_us);

	vlog(o, "run %u: namespaces %s %s %s, files in %s", d->run, d->ns_a, d->ns_b, d->ns_out,
	     d->dir);
	if (netns_up(d) < 0) {
		fail(d, "could not set up the network namespaces (see %s)", d->log_ip);
		return -1;
	}
	int rc = drill_world_listen(w, IP_OUT, PORT_CON, PORT_TAP);
	if (rc < 0) {
		fail(d, "collector/tap listen in %s: %s", d->ns_out, strerror(-rc));
		return -1;
	}
	if (drill_world_start(w, d->threads) < 0) {
		fail(d, "cannot start the observer threads");
		return -1;
	}
	d->world_started = 1;

	snprintf(state, sizeof(state), "%s/state-a", d->dir);
	d->pid_a = start_daemon(d, d->ns_a, IP_A, d->ctl_a, state, d->log_a);
	snprintf(state, sizeof(state), "%s/state-b", d->dir);
	d->pid_b = start_daemon(d, d->ns_b, IP_B, d->ctl_b, state, d->log_b);
	if (d->pid_a < 0 || d->pid_b < 0 || wait_control(d, d->ctl_a, d->pid_a, 10) < 0 ||
	    wait_control(d, d->ctl_b, d->pid_b, 10) < 0) {
		fail(d, "hareplicated did not come up (see %s, %s)", d->log_a, d->log_b);
		return -1;
	}
	w->victim_pgid = o->victim_backup ? 0 : d->pid_a;
	vlog(o, "daemons up: A pid %d, B pid %d", (int)d->pid_a, (int)d->pid_b);

	snprintf(console, sizeof(console), "tcp:%s:%d", IP_OUT, PORT_CON);
	snprintf(peer, sizeof(peer), "%s:%d", IP_OUT, PORT_TAP);
	char *start[] = {"start",     VM_NAME,
			 "--backend", "kvm",
			 "--peer",    peer,
			 "--epoch",   (char *)o->epoch,
			 "--kernel",  (char *)o->kernel,
			 "--memory",  (char *)o->memory,
			 "--append",  (char *)o->append,
			 "--console", console,
			 NULL};
	rc = cli(d, d->ctl_a, start, 60000);
	if (rc != 0) {
		fail(d, "`hareplicate start` failed (exit %d; see %s, %s)", rc, d->log_cli,
		     d->log_a);
		return -1;
	}
	vlog(o, "started %s on A; waiting for %llu acked epochs", VM_NAME,
	     (unsigned long long)o->epochs);

	/* run until the tap has killed the victim */
	uint64_t last_progress = hr_now_ns(), last_acked = 0, last_sample = 0, last_refresh = 0;
	for (;;) {
		if (g_interrupted) {
			fail(d, "interrupted by signal %d", (int)g_interrupted);
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
			fail(d, "A's daemon died before the kill (see %s)", d->log_a);
			return -1;
		}
		if (acked != last_acked) {
			last_acked = acked;
			last_progress = now;
		}
		if (now - last_progress > o->timeout_s * 1000000000ull) {
			fail(d, "replication made no progress for %u s (acked %llu epochs; see %s)",
			     o->timeout_s, (unsigned long long)acked, d->log_a);
			return -1;
		}
		if (now - last_refresh > 200000000ull) {
			refresh_victims(d);
			last_refresh = now;
		}
		if (now - last_sample > 50000000ull) {
			if (!ctl_query(d->ctl_a, "status", buf, sizeof(buf)))
				add_sample(d, buf);
			last_sample = now;
		}
		usleep(5000);
	}
	vlog(o, "killed: %s", w->kill_what);
	if (!o->victim_backup)
		reap(&d->pid_a, 2000);

	/* after the kill: the guest must go on (on B, or on A for a backup kill) */
	uint32_t want_ip = inet_addr(o->victim_backup ? IP_A : IP_B);
	uint64_t t_kill = w->kill_ns, end = hr_now_ns() + o->timeout_s * 1000000000ull;
	int first = -1;
	while (!g_interrupted && hr_now_ns() < end) {
		pthread_mutex_lock(&w->lock);
		if (first < 0)
			first = first_new_line(w, want_ip);
		unsigned have = w->nr_lines;
		pthread_mutex_unlock(&w->lock);
		if (!o->victim_backup && d->promoted_ms < 0 &&
		    !ctl_query(d->ctl_b, "status", buf, sizeof(buf))) {
			char role[32];
			json_str(buf, "role", role, sizeof(role));
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
		fail(d, "no new console line from %s within %u s of the kill",
		     o->victim_backup ? "the primary" : "the backup", o->timeout_s);
	else if (have < (unsigned)first + o->after_lines)
		fail(d, "only %u of %u progress lines after the failover within %u s",
		     have - (unsigned)first, o->after_lines, o->timeout_s);

	if (o->victim_backup) {
		/* the primary must say it lost its backup */
		char st[32] = "";
		uint64_t e2 = hr_now_ns() + 5000000000ull;
		while (hr_now_ns() < e2) {
			if (!ctl_query(d->ctl_a, "status", buf, sizeof(buf))) {
				json_str(buf, "state", st, sizeof(st));
				if (!strcmp(st, "unprotected"))
					break;
			}
			usleep(20000);
		}
		snprintf(d->survivor_state, sizeof(d->survivor_state), "%s",
			 st[0] ? st : "(no answer)");
		if (strcmp(st, "unprotected"))
			fail(d,
			     "after the backup's death A's status says state=%s, not unprotected",
			     st[0] ? st : "(no answer)");
	}
	/* a last look: the stream must still be consistent */
	usleep(100000);
	char *stop[] = {"stop", VM_NAME, NULL};
	if (!o->keep)
		cli(d, o->victim_backup ? d->ctl_a : d->ctl_b, stop, 20000);
	return 0;
}

static int run_drill(const struct opts *o, unsigned run, double *failover_ms_r)
{
	struct drill *d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	d->o = o;
	d->run = run;
	one_drill(d);
	if (d->world_started) {
		pthread_mutex_lock(&d->w.lock);
		d->pass = !d->why[0] && !d->w.first_violation[0] && d->w.killed && !d->w.gaps &&
			  !d->w.conflicts && !d->w.seq_breaks && !d->w.guest_errors &&
			  !d->w.bad_lines;
		pthread_mutex_unlock(&d->w.lock);
	}
	load_epoch_log(d);
	teardown(d);
	report(d);
	fputs(d->report, stdout);
	fflush(stdout);
	*failover_ms_r = d->failover_ms;
	int pass = d->pass;
	free(d->w.buf);
	free(d->w.lines);
	free(d->w.wire);
	free(d->samples);
	free(d);
	return pass ? 0 : 1;
}

static int find_next_to_self(const char *self, const char *rel, char *out, size_t size)
{
	const char *slash = strrchr(self, '/');
	if (!slash)
		return -1;
	snprintf(out, size, "%.*s/%s", (int)(slash - self), self, rel);
	return access(out, R_OK) == 0 ? 0 : -1;
}

static int find_in_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	char copy[4096], *save = NULL;
	snprintf(copy, sizeof(copy), "%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "");
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/%s", dir, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

static int cmd_drill(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"epochs", required_argument, NULL, 'n'},
	    {"seed", required_argument, NULL, 's'},
	    {"kill-at", required_argument, NULL, 'k'},
	    {"victim", required_argument, NULL, 'V'},
	    {"memory", required_argument, NULL, 'm'},
	    {"append", required_argument, NULL, 'a'},
	    {"epoch", required_argument, NULL, 'e'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"keep", no_argument, NULL, 'K'},
	    {"kernel", required_argument, NULL, 'g'},
	    {"daemon", required_argument, NULL, 'd'},
	    {"after-lines", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static char kernel[4096], daemon[4096];
	struct opts o = {.epochs = 200,
			 .memory = "256M",
			 .append = "rate=4000 wss=64M interval_ms=20",
			 .epoch = "25ms",
			 .repeat = 1,
			 .after_lines = 25,
			 .timeout_s = 60,
			 .kill_at = DRILL_KILL_RANDOM};
	uint64_t bytes;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'n':
			o.epochs = strtoull(optarg, &end, 10);
			if (!*optarg || *end || o.epochs < 1) {
				fprintf(stderr, "hareplicate drill: bad --epochs '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
			o.seed = strtoull(optarg, &end, 0);
			if (!*optarg || *end) {
				fprintf(stderr, "hareplicate drill: bad --seed '%s'\n", optarg);
				return 2;
			}
			o.seed_set = 1;
			break;
		case 'k': {
			int found = 0;
			for (int k = DRILL_KILL_RANDOM; k <= DRILL_KILL_AFTER_ACK; k++)
				if (!strcmp(optarg, drill_kill_at_name(k))) {
					o.kill_at = k;
					found = 1;
				}
			if (!found) {
				fprintf(stderr,
					"hareplicate drill: --kill-at is one of random, mid-epoch, "
					"during-send, after-send, after-ack\n");
				return 2;
			}
			break;
		}
		case 'V':
			if (strcmp(optarg, "primary") && strcmp(optarg, "backup")) {
				fprintf(stderr,
					"hareplicate drill: --victim is primary or backup\n");
				return 2;
			}
			o.victim_backup = !strcmp(optarg, "backup");
			break;
		case 'm':
			if (hr_parse_size(optarg, &bytes) < 0) {
				fprintf(stderr,
					"hareplicate drill: bad --memory '%s' (e.g. 256M)\n",
					optarg);
				return 2;
			}
			o.memory = optarg;
			break;
		case 'a':
			o.append = optarg;
			break;
		case 'e':
			o.epoch = optarg;
			break;
		case 'r':
			o.repeat = (unsigned)strtoul(optarg, &end, 10);
			if (!*optarg || *end || o.repeat < 1 || o.repeat > 1000) {
				fprintf(stderr, "hareplicate drill: bad --repeat '%s' (1..1000)\n",
					optarg);
				return 2;
			}
			break;
		case 'K':
			o.keep = 1;
			break;
		case 'g':
			o.kernel = optarg;
			break;
		case 'd':
			o.daemon = optarg;
			break;
		case 'l':
			o.after_lines = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			o.timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			if (!o.timeout_s)
				o.timeout_s = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'h':
			printf("usage: hareplicate %s %s\n\n%s", hr_cmd_drill.name,
			       hr_cmd_drill.usage, hr_cmd_drill.help);
			return 0;
		default:
			return hr_cmd_usage(&hr_cmd_drill);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hareplicate drill: unexpected argument '%s'\n", argv[optind]);
		return hr_cmd_usage(&hr_cmd_drill);
	}
	if (hr_parse_duration_us(o.epoch, &o.epoch_us) < 0 || o.epoch_us < 1000) {
		fprintf(stderr, "hareplicate drill: bad --epoch '%s' (e.g. 25ms)\n", o.epoch);
		return 2;
	}
	if (o.keep && o.repeat > 1) {
		fprintf(stderr, "hareplicate drill: --keep runs one drill (not with --repeat)\n");
		return 2;
	}

	/* what the drill needs, each with a clear error */
	if (geteuid() != 0) {
		fprintf(stderr,
			"hareplicate drill: must run as root (network namespaces, /dev/kvm)\n");
		return 1;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		fprintf(stderr,
			"hareplicate drill: /dev/kvm: %s (the drill runs real KVM guests)\n",
			strerror(errno));
		return 1;
	}
	static char ipbin[4096];
	if (find_in_path("ip", ipbin, sizeof(ipbin)) < 0) {
		fprintf(stderr,
			"hareplicate drill: the `ip` command (iproute2) is not installed\n");
		return 1;
	}
	drill_ip_bin = ipbin;
	ssize_t sl = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
	if (sl <= 0) {
		fprintf(stderr, "hareplicate drill: cannot find this program: %s\n",
			strerror(errno));
		return 1;
	}
	o.self[sl] = '\0';
	if (!o.kernel) {
		if (find_next_to_self(o.self, "tests/guests/memwalk.elf", kernel, sizeof(kernel)) <
		    0) {
			fprintf(stderr,
				"hareplicate drill: no memwalk guest next to %s; give --kernel "
				"FILE (build it with `make guests`)\n",
				o.self);
			return 1;
		}
		o.kernel = kernel;
	} else if (o.kernel[0] != '/') {
		if (!realpath(o.kernel, kernel)) {
			fprintf(stderr, "hareplicate drill: --kernel %s: %s\n", o.kernel,
				strerror(errno));
			return 1;
		}
		o.kernel = kernel;
	}
	if (access(o.kernel, R_OK) < 0) {
		fprintf(stderr, "hareplicate drill: --kernel %s: %s\n", o.kernel, strerror(errno));
		return 1;
	}
	if (!o.daemon) {
		if (find_next_to_self(o.self, "hareplicated", daemon, sizeof(daemon)) < 0 &&
		    find_in_path("hareplicated", daemon, sizeof(daemon)) < 0) {
			fprintf(stderr,
				"hareplicate drill: hareplicated not found next to %s nor in "
				"PATH; give --daemon FILE\n",
				o.self);
			return 1;
		}
		o.daemon = daemon;
	}
	if (access(o.daemon, X_OK) < 0) {
		fprintf(stderr, "hareplicate drill: --daemon %s: %s\n", o.daemon, strerror(errno));
		return 1;
	}
	if (!o.seed_set)
		o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);

	struct sigaction sa = {0};
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	hr_log_init("hareplicate", 1, 0);

	double *fo = calloc(o.repeat, sizeof(double));
	unsigned passed = 0;
	for (unsigned i = 1; i <= o.repeat && !g_interrupted; i++) {
		if (run_drill(&o, i, &fo[i - 1]) == 0)
			passed++;
	}
	if (o.repeat > 1) {
		uint64_t *v = calloc(o.repeat, sizeof(uint64_t));
		unsigned n = 0;
		for (unsigned i = 0; v && i < o.repeat; i++)
			if (fo[i] >= 0)
				v[n++] = (uint64_t)(fo[i] * 1000);
		uint64_t p50 = v ? hr_percentile_u64(v, n, 50) : 0,
			 mx = v ? hr_percentile_u64(v, n, 100) : 0;
		printf(
		    "drills: %u of %u passed; failover_ms p50=%.1f max=%.1f (seeds %llu..%llu)\n",
		    passed, o.repeat, p50 / 1000.0, mx / 1000.0, (unsigned long long)o.seed,
		    (unsigned long long)(o.seed + o.repeat - 1));
		free(v);
	}
	free(fo);
	return passed == o.repeat && !g_interrupted ? 0 : 1;
}

const struct hr_cmd hr_cmd_drill = {
    "drill",
    "[--epochs N] [--kill-at MOMENT] [--victim primary|backup] [--seed S] [--repeat N] [--keep] "
    "[--memory SIZE] [--append CMDLINE] [--epoch DURATION]",
    drill_help, cmd_drill};
