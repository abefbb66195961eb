/*
 * worker-internal.h - shared by worker.c (the VM's worker process) and
 * worker-migrate.c (its part in a migration).  Never included elsewhere.
 */
#ifndef HR_DAEMON_WORKER_INTERNAL_H
#define HR_DAEMON_WORKER_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "core/engine.h"
#include "daemon/daemon.h"
#include "common/kv.h"

struct hr_console;

struct worker {
	struct hr_worker_args *a;
	pthread_mutex_t send_lock; /* lines from the engine thread and the liveness thread;
				    * also guards status_fd, which adoption replaces */
	struct hr_sbuf outq;	   /* status lines not yet written (send_lock) */
	size_t outq_off;	   /* ... how much of it was */
	uint64_t status_dropped;   /* stale state lines dropped (a stuck daemon) */
	volatile int done;
	int adopt_fd; /* listening for a (re)started daemon; -1 if none */
	/* where it stands, for the adopt line */
	enum hr_role_state state;
	int held; /* output held, as the role machine last said (hr_role_is_held) */
	char token[24];
	struct hr_epoch_stats last;
	uint64_t nr_epochs;
	struct hr_live_round round; /* the live phase's last round (send_lock) */
	int have_round;
	/* this migration's rounds: count and "never-sent+dirty" pages of each
	 * (the first MIG_ROUNDS_KEPT; send_lock) */
	uint64_t mig_rounds;
	char mig_round_pages[512];
	int epochs_fd;	       /* STATE-DIR/VM.epochs: one line per epoch, -1 if none */
	uint64_t epochs_bytes; /* its size; at hr_dopts.epochs_log_max it becomes VM.epochs.1 */
	char epochs_path[4096];
	char error[512];	/* why the worker could not start, for the exit line ("" none) */
	struct hr_console *con; /* the console sink (status) */
	/* migration: the destination (send_lock), requests read from status_fd */
	char mig_to[160];
	char mig_err[512];
	int status_eof; /* the daemon's end closed: no requests until one adopts us */
	char req[1024];
	size_t req_len;
	char disk_dir[4096]; /* backup: DISK-DIR/VM, the engine's images ("": own paths) */
};

/* The engine once built (NULL before and after); SIGTERM/SIGINT seen. */
extern struct hr_engine *volatile hr_w_eng;
extern volatile sig_atomic_t hr_w_stop;

/* One status line to the daemon; may_drop: stats that may be lost. */
void hr_w_send_line(struct worker *w, struct hr_sbuf *sb, int may_drop);
/* The same with send_lock held (adoption swaps status_fd under it). */
void hr_w_send_line_locked(struct worker *w, struct hr_sbuf *sb, int may_drop);
/* Status lines queued and not yet written; write what the socket takes. */
int hr_w_status_pending(struct worker *w);
void hr_w_status_flush(struct worker *w);

/* worker-migrate.c: a migrate / migrate-cancel / live-end request line. */
void hr_w_migrate_request(struct worker *w, struct hr_engine *eng, const struct hr_kvline *kv);
/* The migration's progress fields of a status line: 1 if one runs, else 0
 * (nothing added). */
int hr_w_migrate_progress(struct worker *w, struct hr_engine *eng, struct hr_sbuf *sb);
/* Engine callbacks (engine.h): cfg.migrate_connect, cfg.on_round, cfg.on_migration. */
int hr_w_migrate_connect(void *opaque, int *fd_r);
void hr_w_on_round(void *opaque, const struct hr_live_round *r);
void hr_w_on_migration(void *opaque, int rc, int in_doubt, const struct hr_migration_report *r);

/* worker-disks.c: a backup's images (this host's own definition of the VM,
 * else w->disk_dir; after the preamble named the VM), and the disks' paths
 * and sizes for a status line (disk<i>, disk<i>_bytes, nr_disks). */
void hr_w_disks_setup(struct worker *w);
void hr_w_disks_status(struct worker *w, struct hr_sbuf *sb);

#endif
