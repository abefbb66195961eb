/*
 * drill.h - the pieces of `hareplicate drill`:
 *
 *   cmd-drill.c       the command: options, what the drill needs, --repeat
 *   drill-run.c       one drill, from setting up to the report (the scenario)
 *   drill-restart.c   the daemon-restart scenarios (no failover may follow)
 *   drill-hosts.c     the namespaces A, B, OUT and the daemons in them
 *   drill-status.c    the primary's epoch figures: status samples, epoch log
 *   drill-report.c    the report a drill prints
 *   drill-witness.c   --witness: the witness in OUT, its record, the torn
 *                     link's race, backup death and the witness-down scenario
 *   drill-net.c       processes and network namespaces (low level)
 *
 * and the two observers that sit in the "out" namespace: the console
 * collector (drill-console.c: the outside world, which checks the contract
 * on the console stream) and the replication tap (a TCP relay between the
 * primary and the backup, drill-relay.c, that parses frame headers so the
 * drill can kill at an exact point of the epoch protocol, drill-killpoint.c).
 * drill-world.c opens their sockets and runs their threads.
 */
#ifndef HR_CLI_DRILL_H
#define HR_CLI_DRILL_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/epoch.h"

struct hr_tls_ctx; /* net/tls.h */

/* The drill's network (nothing leaves its namespaces) and its one VM. */
#define DRILL_NET_PREFIX "10.213.0."
#define DRILL_IP_A	 DRILL_NET_PREFIX "1"
#define DRILL_IP_B	 DRILL_NET_PREFIX "2"
#define DRILL_IP_OUT	 DRILL_NET_PREFIX "254"
/* --epochs at most (at 25 ms, about three days of epochs) */
#define DRILL_MAX_EPOCHS 10000000ull
#define DRILL_PORT_CON	 7000
/* Each daemon listens on its own port, and OUT relays that same port to
 * it: the tap (OUT:7100 -> B:7100, A's --peer) and the back relay
 * (OUT:7788 -> A:7788).  A worker that re-protects from the backup side
 * connects to its primary's source address (OUT) at the port that
 * primary's daemon announced, so each must reach its own daemon. */
#define DRILL_PORT_TAP 7100 /* B's hareplicated, and the tap in OUT */
#define DRILL_PORT_A   7788 /* A's hareplicated, and the back relay in OUT */
#define DRILL_VM_NAME  "drillvm"
/* --witness: hareplicated --serve-witness in OUT on its own port, reached
 * by A and B over the bridge, never through the tap. */
#define DRILL_PORT_WIT 7300
/* --net: the guest's own network (drill-guestnet.c) */
#define DRILL_GNET_PREFIX    "10.214.0."
#define DRILL_GNET_GUEST     DRILL_GNET_PREFIX "2"
#define DRILL_GNET_OUT	     DRILL_GNET_PREFIX "254"
#define DRILL_GTAP	     "hrgtap"
#define DRILL_NET_MAX_GAP_MS 5000 /* after a failover, the longest a client may wait */
/* --mem's default guest command line: a line every 5 ms and 4000 page
 * writes a second (spread over the RAM), as memwalk's rate=4000 dirties */
#define DRILL_MEM_APPEND "steps_per_s=200 writes=20"
/* --disk: what the mem guest adds to its command line (4 stamped 4 KiB
 * blocks a step, then a flush), and the size of A's image (sparse) */
#define DRILL_DISK_APPEND " disk_writes=4 disk_flush=1"
#define DRILL_DISK_BYTES  (64ull << 20)

/* ---- drill-net.c ---- */

/* Run argv (argv[0] looked up in PATH); stdout into out (NUL-terminated,
 * truncated to size) if out, else to errlog; stderr to errlog (NULL =
 * /dev/null).  Gives up (SIGKILL) after timeout_ms.  Returns the exit
 * status, 128+signal, or -errno. */
int drill_cmd(char *const argv[], char *out, size_t size, const char *errlog, unsigned timeout_ms);
/* The `ip` program (iproute2) that drill_ip runs; the drill sets the full path. */
extern const char *drill_ip_bin;
/* `ip ARGS...` where args is one space-separated string; 0 or -1 (logged). */
int drill_ip(const char *errlog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fork + setpgid (own process group) + setns(netns) + exec; output to log. */
pid_t drill_spawn(const char *netns, char *const argv[], const char *log);
/* Enter a named network namespace (calling thread only).  0 or -errno. */
int drill_enter_netns(const char *netns);
/* Children, grandchildren, ... of pid (up to max); returns the count. */
unsigned drill_descendants(pid_t pid, pid_t *pids, unsigned max);

/* ---- the observers in OUT (drill-world.c, drill-console.c, drill-relay.c,
 * drill-killpoint.c) ---- */

/* What happens to the primary at the chosen moment. */
enum drill_fault {
	DRILL_FAULT_KILL = 0,  /* SIGKILL of its daemon and workers (a dead host) */
	DRILL_FAULT_TORN,      /* the tap closes both sides of the link (a middlebox reset) */
	DRILL_FAULT_PARTITION, /* the tap forwards nothing more, closes nothing (silent) */
	DRILL_FAULT_HANG,      /* SIGSTOP of its daemon and workers (a hung host) */
	DRILL_FAULT_SLOW,      /* everything B sends A arrives DRILL_SLOW_MS late (slow backup) */
	DRILL_FAULT_RESTART_PRIMARY, /* SIGTERM of A's hareplicated only, started again */
	DRILL_FAULT_RESTART_BACKUP,  /* the same on B */
	DRILL_FAULT_FAILBACK,	     /* kill A, B takes over, A returns as backup, fails back */
	DRILL_FAULT_WITNESS_DOWN,    /* --witness: SIGSTOP of the witness, then a torn link */
	DRILL_NR_FAULTS
};
#define DRILL_SLOW_MS 300
/* Window in which a primary that lost its backup must release nothing, and
 * in which a survivor of the fault is watched for speaking. */
#define DRILL_HELD_WATCH_MS 2000
const char *drill_fault_name(enum drill_fault f);
/* The moment kills a whole host: SIGKILL of its daemon and workers. */
#define DRILL_FAULT_KILLS(f) ((f) == DRILL_FAULT_KILL || (f) == DRILL_FAULT_FAILBACK)
/* A daemon restart: the workers go on, nothing may fail over. */
#define DRILL_FAULT_IS_RESTART(f)                                                                  \
	((f) == DRILL_FAULT_RESTART_PRIMARY || (f) == DRILL_FAULT_RESTART_BACKUP)
/* Faults that end or stall the link at the moment (a cut by the tap at
 * during-send / after-send); a slow backup or a daemon restart is only a
 * moment: the stream goes on. */
#define DRILL_FAULT_CUTS(f) ((f) != DRILL_FAULT_SLOW && !DRILL_FAULT_IS_RESTART(f))
/* The tap closes the link both ways, and every new connection. */
#define DRILL_FAULT_TEARS(f) ((f) == DRILL_FAULT_TORN || (f) == DRILL_FAULT_WITNESS_DOWN)

enum drill_kill_at {
	DRILL_KILL_RANDOM,
	DRILL_KILL_MID_EPOCH,
	DRILL_KILL_DURING_SEND,
	DRILL_KILL_AFTER_SEND,
	DRILL_KILL_AFTER_ACK,
};

/* One progress line (memwalk, netsvc or the mem guest) as the outside saw it. */
struct drill_line {
	uint64_t seq, t_ns, end_off;
	unsigned conn;
};

/* One epoch as seen on the replication wire (by the tap). */
struct drill_wire_epoch {
	uint64_t epoch, begin_ns, end_ns, ack_ns, bytes;
};

struct drill_early {
	unsigned conn;
	uint64_t off, n;
	uint8_t *data;
};

struct drill_world {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const char *netns_out;
	int stop;

	/* console collector */
	int con_lfd;
	uint8_t *buf; /* the assembled stream, offset = index */
	uint64_t len, cap, line_start;
	struct drill_line *lines;
	unsigned nr_lines, cap_lines, nr_conns;
	uint32_t conn_peer[64]; /* IPv4 source of console connection id (network order) */
	uint64_t nr_frames, nr_repeat_bytes;
	/* frames that start beyond the stream's end wait here for the bytes
	 * before them (two hosts' connections deliver independently); gaps
	 * counts those still waiting: a hole nobody ever filled */
	struct drill_early *early;
	unsigned nr_early;
	unsigned gaps, conflicts, seq_breaks, guest_errors, bad_lines;
	/* --disk: the promoted guests' `diskcheck blocks=B errors=E` lines, as
	 * "HOST blocks=B errors=E" joined by "; " (HOST: A or B, by connection) */
	unsigned nr_diskchecks, bad_diskchecks;
	char diskchecks[256];
	char first_violation[256];

	/* replication tap (A -> B's daemon) and back relay (B -> A's daemon) */
	int tap_lfd, back_lfd;
	char upstream_host[64], upstream_port[16]; /* B's daemon */
	char back_host[64], back_port[16];	   /* A's daemon */
	enum drill_kill_at kill_at;
	enum drill_fault fault;
	uint64_t kill_epoch; /* the moment is in (or right after) this epoch */
	uint64_t epoch_us;
	uint64_t random_delay_us; /* DRILL_KILL_RANDOM: after EPOCH_BEGIN of kill_epoch */
	int armed;		  /* set by the drill when it is ready to kill */
	pid_t victim_pgid;	  /* killed with SIGKILL (the group and its descendants) */
	pid_t victim_pid;	  /* and/or this pid (restart faults: only it, SIGTERM) */
	pid_t witness_pid;	  /* witness-down: SIGSTOP at the moment, before the tear */
	pid_t victim_kids[32];	  /* and these (the daemon's workers, refreshed by the drill) */
	unsigned nr_victim_kids;
	int killed;
	uint64_t kill_ns, kill_con_len, kill_last_seq;
	char kill_what[512]; /* where exactly the kill landed */
	unsigned nr_tap_conns, nr_back_conns;
	unsigned nr_refused; /* connections cut or dropped because of the fault */
	struct drill_wire_epoch *wire;
	unsigned nr_wire, cap_wire;
	uint64_t acked; /* highest epoch acked by the backup (+1; 0 = none yet) */
	int tap_broken; /* stream did not parse: moment precision lost */
};

/* drill-world.c: listen on ip:con_port (collector), ip:tap_port (tap) and
 * ip:back_port (back relay) inside netns_out; start and stop the two
 * observer threads. */
int drill_world_listen(struct drill_world *w, const char *ip, int con_port, int tap_port,
		       int back_port);
int drill_world_start(struct drill_world *w, pthread_t *threads);
void drill_world_stop(struct drill_world *w, pthread_t *threads);
/* drill-console.c: the collector thread (arg: the world). */
void *drill_collector(void *arg);
/* Frames still waiting for the bytes before them are gaps: named as the
 * first violation (call with the world's lock held, before judging). */
void drill_console_settle(struct drill_world *w);
/* drill-relay.c: the tap thread, which runs the back relay too (arg: the world). */
void *drill_tap_thread(void *arg);
/* drill-killpoint.c: kill the victim now (lock held by the caller).
 * Records the moment. */
void drill_kill_locked(struct drill_world *w, const char *what);
const char *drill_kill_at_name(enum drill_kill_at k);

/* ---- the drill (cmd-drill.c, drill-run.c, drill-hosts.c, drill-status.c,
 * drill-report.c) ---- */

struct drill_opts {
	uint64_t epochs, seed, epoch_us; /* epochs: 1..DRILL_MAX_EPOCHS */
	int seed_set, keep, verbose, victim_backup;
	int witness; /* --witness: a witness in OUT, A and B use it */
	int net;     /* --net: netsvc on a virtio-net device, clients in OUT */
	int mem;     /* --mem: the mem backend's software guest (no KVM, console only) */
	int disk;    /* --disk: the mem guest writes a disk; each promotion checks it */
	const char *netprobe;
	/* --tls: the daemons' links are TLS (CA mode); default --insecure, since
	 * the tap parses the replication stream to time its faults */
	int tls;
	enum drill_kill_at kill_at;
	enum drill_fault fault;
	int soak;	    /* --soak: repeat draws a scenario per run */
	unsigned soak_mask; /* --faults: the scenarios it draws from (bit per scenario) */
	const char *memory, *append, *epoch, *kernel, *daemon;
	unsigned repeat, after_lines, timeout_s;
	unsigned failover_ms; /* the daemons' --failover-timeout (default 500) */
	char self[4096];
};

/* One drill: what it set up, what it sampled, what it found. */
/* Where a failover's time went, from B's log (ms after the fault; -1: not
 * logged): detection, decision, state loaded, guest resumed, first new
 * output released by B (failover_ms: the first new line seen outside). */
struct drill_timeline {
	double detect_ms, decide_ms, loaded_ms, resumed_ms, output_ms;
};

struct drill {
	const struct drill_opts *o;
	unsigned run;
	char ns_a[64], ns_b[64], ns_out[64], dir[256];
	char ctl_a[300], ctl_b[300], log_a[300], log_b[300], log_ip[300], log_cli[300];
	char ctl_w[300], log_w[300];
	struct hr_tls_ctx *wit_tls; /* --tls: the drill's own link to the witness */
	pid_t pid_a, pid_b, pid_w;
	int netns_made;
	struct drill_world w;
	pthread_t threads[2];
	int world_started;
	struct hr_epoch_stats *samples; /* one epoch's figures each */
	unsigned nr_samples, cap_samples;
	int samples_logged; /* samples come from the worker's per-epoch log */
	/* results */
	int pass;
	char why[512];
	double failover_ms, promoted_ms;
	struct drill_timeline tl;
	uint64_t first_new_seq;
	char survivor_state[32]; /* --victim backup: A's state after the kill */
	char survivor_event[32]; /* ... and its last_event */
	int held_lines;		 /* ... lines A released in the watch window after it */
	unsigned a_after;	 /* faults A survives: A's lines after B's first new one */
	int speakers_checked;
	int slow_checked; /* --fault slow: lines A released, ack latency after the moment */
	unsigned slow_lines;
	uint64_t slow_ack_us; /* A's last epoch's ack latency at the end */
	/* restart faults (drill-restart.c) */
	int restart_checked;
	pid_t worker_before[2], worker_after[2]; /* A's and B's worker, per status */
	double exit_ms;				 /* SIGTERM -> the daemon exited */
	double downtime_ms;			 /* SIGTERM -> the new one answers */
	uint64_t restart_ns;			 /* when the drill started it again */
	double adopt_ms;			 /* restart -> status reports the VM again */
	double unseen_ms;			 /* SIGTERM -> status reports the VM again */
	unsigned b_lines;			 /* console lines from B: must be none */
	uint64_t epochs_at_adopt, epochs_later;	 /* nr_epochs via the restarted daemon */
	unsigned lines_down, lines_after;	 /* A's lines while down, after adopt */
	char restart_state[64];			 /* role/state the restarted daemon reports */
	/* re-protection (drill-reprotect.c): backup death, failback */
	int reprotect_checked, failback_checked;
	double reprotect_ms;  /* the dead host's daemon started again -> survivor protected */
	double release_ms;    /* ... -> the first held line reached the outside (backup death) */
	double switchback_ms; /* failback: `failover` on A -> A's first new line */
	double reprotect2_ms; /* failback: `failover` on A -> A protected by B */
	unsigned a_while_b, b_after; /* lines from A while B spoke; from B after A's return */
	/* --witness (drill-witness.c) */
	char winner;		  /* torn, witness-down: 'A' or 'B' won the race, 0: none */
	char winner_how[160];	  /* ... what the loser did */
	char wit_checks[512];	  /* the witness's record at each step, for the report */
	double stall_ms;	  /* backup death: longest wait outside for a line, from the kill */
	char standing[32];	  /* backup death: A's witness standing after it */
	unsigned silent_lines;	  /* witness-down: lines released while the witness was stopped */
	unsigned wit_loser_lines; /* torn, witness-down: lines from the loser after the winner's */
	/* --net (drill-guestnet.c): the clients in OUT, TCP [0] and UDP [1] */
	pid_t probe_pid[2];
	char probe_out[2][300];
	int probes_judged;
	double net_gap_ms[2];
	char net_summary[2][512];
	char report[8192];
};

/* What one drill measured, for --repeat and --soak (-1: not measured). */
struct drill_result {
	double failover_ms, downtime_ms, adopt_ms;
	struct drill_timeline tl;
	double reprotect_ms, release_ms, switchback_ms, reprotect2_ms, stall_ms;
	char winner; /* --witness, torn and witness-down: 'A' or 'B' (0: none) */
};

/* cmd-drill.c: the signal (SIGINT, SIGTERM, SIGHUP) that asks every wait to
 * stop, 0 while none came. */
extern volatile sig_atomic_t drill_interrupted;

/* drill-report.c: B's failover timeline (its log) relative to the fault. */
void drill_load_timeline(struct drill *d);

/* drill-run.c: run drill number run (1, 2, ...; seed o->seed + run - 1),
 * print its report and clean up.  r->failover_ms: kill -> first new line;
 * restart faults: r->downtime_ms, r->adopt_ms (each -1 if not measured).
 * Returns 0 if the drill passed, 1 if not (an exit status). */
int drill_run(const struct drill_opts *o, unsigned run, struct drill_result *r);
/* Log a line on stderr with --verbose. */
void drill_vlog(const struct drill_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Keep the first problem of the drill in d->why. */
void drill_fail(struct drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* drill-restart.c: the victim daemon got SIGTERM at the moment (the tap
 * sent it): wait for it to exit, start it again with the same arguments and
 * check that it adopted the worker and that nothing failed over.  0, or -1
 * when the drill cannot go on (the problem is in d->why either way). */
int drill_restart(struct drill *d);
/* Before the moment: remember A's and B's worker pid (status --json). */
void drill_restart_note_workers(struct drill *d);

/* drill-run.c: the first progress line from ip that ends beyond offset
 * `after` (-1: none yet); how many lines in [from, to) came from ip.
 * World lock held. */
int drill_first_line(struct drill_world *w, uint32_t ip, uint64_t after);
unsigned drill_lines_from(struct drill_world *w, uint32_t ip, unsigned from, unsigned to);

/* drill-reprotect.c: after the backup host's death (--victim backup): A
 * holds its output, B's daemon comes back, A re-protects.  After B took
 * over (--fault failback; first_b: B's first new line): A comes back as
 * B's backup, the operator fails back to A, A re-protects.  0, or -1 when
 * the drill cannot go on (the problem is in d->why either way). */
int drill_backup_death(struct drill *d);
int drill_failback(struct drill *d, int first_b);

/* drill-restart.c: the VM's worker pid in the status on ctl (0: none). */
pid_t drill_status_worker(const char *ctl, char *buf, size_t size);

/* drill-guestnet.c (--net; each does nothing without it) */
/* The guest's bridges and TAPs in A, B and OUT.  0 or -1 (see log_ip). */
int drill_guestnet_up(struct drill *d);
/* netprobe tcp and udp in OUT, against the guest.  0 or -1 (d->why). */
int drill_probes_start(struct drill *d);
/* SIGTERM to both, collect and judge their output (once). */
void drill_probes_stop(struct drill *d);
/* The clients' verdict first, then `hareplicate stop` on ctl (unless --keep). */
void drill_stop_vm(struct drill *d, const char *ctl);

/* drill-witness.c */
/* hareplicated --serve-witness in OUT (d->pid_w).  0 once it answers, or -1. */
int drill_witness_up(struct drill *d);
/* Until the witness's record names owner (and backup, if not NULL; "" =
 * none), bounded by --timeout; step names the moment in the report and in
 * d->why.  0, or -1 (d->why says what it named). */
int drill_witness_expect(struct drill *d, const char *owner, const char *backup, const char *step);
/* A torn link (also after the witness came back): both ask, exactly one
 * wins; checks the winner speaks, the loser ends (B: stale) or stands down
 * (A: demoted) and never speaks.  0, or -1 when the drill cannot go on. */
int drill_witness_race(struct drill *d);
/* --victim backup: A takes the lease and keeps speaking; B's daemon comes
 * back and A re-protects (standing registered). */
int drill_witness_backup_death(struct drill *d);
/* witness-down: nobody speaks while the witness is stopped; SIGCONT, then
 * the race as for a torn link. */
int drill_witness_down(struct drill *d);
/* drill-reprotect.c helpers the witness scenarios use too */
int drill_wait_vm(struct drill *d, int b, const char *role, const char *state, uint64_t *t_r);
int drill_wait_lines(struct drill *d, uint32_t ip, uint64_t after, const char *what, uint64_t *t_r);
int drill_log_has(const char *path, const char *token);

/* drill-hosts.c */
/* A dead host's daemon (b: B's, else A's) started again with the same
 * arguments and state directory; *t_r = when.  0 once it answers, or -1. */
int drill_host_up(struct drill *d, int b, uint64_t *t_r);
/* A, B and OUT with a bridge in OUT that joins them.  0 or -1 (see log_ip). */
int drill_netns_up(struct drill *d);
/* A hareplicated in ns listening on ip, its console default the collector. */
/* With --tls: the CA and A's and B's certificates in d->dir/pki; 0, or
 * -1 with the drill failed. */
int drill_make_certs(struct drill *d);
/* The peer-link options of node's daemon ("A", "B", "W") into argv: its
 * certificate in CA mode with --tls, else --insecure; the paths live in
 * buf.  Returns the number of argv entries (at most 6). */
struct drill_tls_paths {
	char cert[400], key[400], ca[400];
};
unsigned drill_link_opts(struct drill *d, const char *node, struct drill_tls_paths *buf,
			 char **argv);
pid_t drill_start_daemon(struct drill *d, const char *ns, const char *ip, const char *ctl,
			 const char *state, const char *log);
/* The CLI itself (args after the program name), HAREPLICATE_CONTROL=control. */
int drill_cli(struct drill *d, const char *control, char *const args[], unsigned timeout_ms);
/* Until the daemon pid answers on ctl: 0, or -1 (died, timed out, interrupted). */
int drill_wait_control(struct drill *d, const char *ctl, pid_t pid, unsigned timeout_s);
/* Wait up to timeout_ms for *pid to exit; *pid = 0 once it has. */
void drill_reap(pid_t *pid, unsigned timeout_ms);
/* Refresh the victim's process list in the world: the daemon's descendants
 * (workers); arms the tap once there are some. */
void drill_refresh_victims(struct drill *d);
/* Stop everything the drill made (or, with --keep, say how to). */
void drill_teardown(struct drill *d);

/* drill-status.c */
/* `status VM --json` (or with cmd "ping": is it up?) in process, over the
 * control socket directly.  0 or -1. */
int drill_ctl_query(const char *control, const char *cmd, char *buf, size_t size);
/* The string value of "key" in a status JSON ("" if absent). */
/* A number field of a status JSON document: 0, or -1 when missing. */
int drill_json_u64(const char *s, const char *key, uint64_t *v);
void drill_json_str(const char *s, const char *key, char *out, size_t size);
/* Add the last epoch of a status JSON to d->samples (once per epoch). */
void drill_add_sample(struct drill *d, const char *status_json);
/* Replace the samples with every epoch the primary's worker logged. */
void drill_load_epoch_log(struct drill *d);

/* drill-report.c */
/* Format d's report into d->report. */
void drill_report(struct drill *d);
/* Keep the first problem found: format into buf only while it is empty. */
void drill_first_problem(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
