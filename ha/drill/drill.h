/*
 * drill.h - pieces of `hareplicate drill` (cmd-drill.c): network namespaces
 * and processes (drill-net.c), and the two observers that sit in the "out"
 * namespace (drill-wire.c): the console collector (the outside world) and
 * the replication tap (a TCP relay between the primary and the backup that
 * parses frame headers, so the drill can kill at an exact point of the
 * epoch protocol).
 */
#ifndef HR_CLI_DRILL_H
#define HR_CLI_DRILL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

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

/* ---- drill-wire.c ---- */

enum drill_kill_at {
	DRILL_KILL_RANDOM,
	DRILL_KILL_MID_EPOCH,
	DRILL_KILL_DURING_SEND,
	DRILL_KILL_AFTER_SEND,
	DRILL_KILL_AFTER_ACK,
};

/* One memwalk progress line as the outside saw it. */
struct drill_line {
	uint64_t seq, t_ns, end_off;
	unsigned conn;
};

/* One epoch as seen on the replication wire (by the tap). */
struct drill_wire_epoch {
	uint64_t epoch, begin_ns, end_ns, ack_ns, bytes;
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
	unsigned gaps, conflicts, seq_breaks, guest_errors, bad_lines;
	char first_violation[256];

	/* replication tap */
	int tap_lfd;
	char upstream_host[64], upstream_port[16];
	enum drill_kill_at kill_at;
	uint64_t kill_epoch; /* the moment is in (or right after) this epoch */
	uint64_t epoch_us;
	uint64_t random_delay_us; /* DRILL_KILL_RANDOM: after EPOCH_BEGIN of kill_epoch */
	int armed;		  /* set by the drill when it is ready to kill */
	pid_t victim_pgid;	  /* killed with SIGKILL (the group and its descendants) */
	pid_t victim_pid;	  /* and/or this pid */
	pid_t victim_kids[32];	  /* and these (the daemon's workers, refreshed by the drill) */
	unsigned nr_victim_kids;
	int killed;
	uint64_t kill_ns, kill_con_len, kill_last_seq;
	char kill_what[512]; /* where exactly the kill landed */
	unsigned nr_tap_conns;
	struct drill_wire_epoch *wire;
	unsigned nr_wire, cap_wire;
	uint64_t acked; /* highest epoch acked by the backup (+1; 0 = none yet) */
	int tap_broken; /* stream did not parse: moment precision lost */
};

/* Listen on ip:con_port (collector) and ip:tap_port (tap) inside netns_out. */
int drill_world_listen(struct drill_world *w, const char *ip, int con_port, int tap_port);
int drill_world_start(struct drill_world *w, pthread_t *threads);
void drill_world_stop(struct drill_world *w, pthread_t *threads);
/* Kill the victim now (lock held by the caller).  Records the moment. */
void drill_kill_locked(struct drill_world *w, const char *what);
const char *drill_kill_at_name(enum drill_kill_at k);

#endif
