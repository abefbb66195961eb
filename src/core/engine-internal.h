/*
 * engine-internal.h - shared by the engine's files (engine.c: the object,
 * its requests and the guest callbacks; engine-primary.c; engine-backup.c).
 * Never included outside src/core.
 */
#ifndef HR_CORE_ENGINE_INTERNAL_H
#define HR_CORE_ENGINE_INTERNAL_H

#include <pthread.h>

#include "core/engine.h"
#include "core/disk-files.h"
#include "core/disk-staging.h"
#include "core/disk-sync.h"
#include "core/disklog.h"
#include "core/epoch.h"
#include "core/guestmem.h"
#include "core/outbuf.h"
#include "core/peer.h"
#include "ha/failover.h"

struct hr_engine {
	struct hr_engine_config cfg;
	char name[64];
	const struct hr_backend_ops *ops;
	struct hr_vm *vm;
	struct hr_guestmem gm;
	const struct hr_chan_desc *chans;
	unsigned nr_chans;
	uint64_t live_cap;     /* hr_engine_live_bandwidth (atomic; 0: cfg.live's) */
	uint64_t deliver_lost; /* released records the backend could not send (atomic) */
	char vm_options[HR_HELLO_OPTIONS_MAX + 64]; /* a replica's backend options (its devices) */
	int ctl_pipe[2];
	int end_pipe[2]; /* readable once stop/abort was asked: interrupts a blocked send */
	int out_wake_fd; /* eventfd: the open epoch got its first network frame (min_epoch_us) */
	struct hr_peer peer;
	struct hr_role role;
	struct hr_ha_lease lease; /* standing with the witness (none: addr NULL) */
	int wit_registered;	  /* primary: this session's backup was registered (lease.c) */

	/* primary (and a promoted backup once it is one) */
	struct hr_outbuf *outbuf;
	struct hr_epoch_src src;
	uint64_t output_dropped;
	/* (atomic) speaking alone, nothing pauses the guest: an append to a
	 * full outbuf (a sink at its bound) waits as long as it takes */
	int emit_may_wait;
	int dirty_on;		      /* dirty tracking started */
	int live_end;		      /* hr_engine_live_request (atomic): end the live phase */
	int live_extend;	      /* ... 0 none, 1 on, -1 off (atomic) */
	int speaking;		      /* without a backup: its output is being released */
	char held_why[160];	      /* why output is held without a backup ("" released;
				       * stats_lock: the status thread reads it) */
	uint64_t held_since_ns;	      /* ... since when (stats_lock) */
	unsigned reprotect_failures;  /* sessions in a row that ended before the sync */
	uint64_t session_epochs_sent; /* whole epochs the last session sent */
	int session_synced;	      /* ... and its backup acknowledged one */
	uint64_t next_reprotect_ns;   /* alone: the next attempt (atomic; 0 none) */
	int cluster_release;	     /* hr_engine_cluster_release (atomic): until the next backup */
	uint64_t cluster_release_ns; /* ... when the word came (atomic) */
	int demote_req;		     /* hr_engine_demote (atomic) */
	int resume_req;		     /* hr_engine_resume (atomic) */
	int standby;		     /* the guest is paused by a demote (engine thread) */
	int wake_fd;		     /* eventfd: the cluster's requests wake the waiting loops */

	/* promoted: output goes straight out, offsets continue the primary's */
	pthread_mutex_t out_lock;
	uint64_t next_offset[HR_MAX_CHANNELS];

	/* migration (engine-migrate.c) */
	int mig_req, mig_cancel; /* requests (atomic) */
	int migrating;		 /* primary: this session is a migration */
	int mig_target;		 /* backup: the peer is a migration source */
	int mig_was_speaking;	 /* e->speaking when it started */
	int mig_in_doubt;	 /* the final epoch left, no confirmation */
	int mig_phase;		 /* enum hr_migration_phase (atomic) */
	uint64_t mig_t0_ns;
	uint64_t mig_hold_ms;	   /* tests: wait before the hand-off */
	struct hr_sender *mig_snd; /* the session's sender (stats_lock) */
	uint64_t mig_epoch_bytes;  /* stats_lock */
	uint64_t mig_epochs;
	uint64_t mig_digest; /* target: RAM at the hand-off (cfg.mig_ram_digest) */

	/* backup: when each step of a failover happened (hr_now_ns(); logged
	 * once the promoted guest's first new output leaves) */
	struct {
		uint64_t last_rx_ns, detect_ns, decide_ns, loaded_ns, resumed_ns;
		uint64_t new_from[HR_MAX_CHANNELS]; /* offsets past the primary's output */
		int armed;			    /* atomic: waiting for that output */
		const char *how;		    /* "stream ended", "stream silent" */
	} fo;

	/* disks: the primary's write log (src.disklog; disklog_on: set up,
	 * atomic) and the backup's images (dt) */
	struct hr_disklog disklog;
	int disklog_on;
	uint64_t disk_sizes[HR_MAX_DISKS];
	struct hr_disk_target dt;
	struct hr_disk_files bdf; /* backup: images in cfg.backup_disk_dir */
	char backup_dropped[256]; /* the backup dropped its copy: why ("" not) */
	char dropped_why[256];	  /* ... kept for liveness until a backup syncs (stats_lock) */
	struct hr_disk_sync_stats disk_sync; /* the last session's (stats_lock) */

	/* both */
	volatile int guest_exited;
	int guest_exit_code;
	pthread_mutex_t stats_lock;
	struct hr_epoch_stats last;
	uint64_t nr_epochs;
	char error[256]; /* why the VM or the first session could not start ("" none) */
};

enum {
	CTL_STOP = 's',
	CTL_ABORT = 'a',
	CTL_PROMOTE = 'p',
	CTL_GUEST_EXIT = 'x',
	CTL_OUTPUT_FULL = 'f',
	CTL_FAILED = 'F',   /* never on the pipe: a loop's own failure */
	CTL_MIGRATE = 'm',  /* wake-up: a migration request (mig_req / mig_cancel) */
	CTL_MIGRATED = 'M', /* never on the pipe: the hand-off is done */
	CTL_DEMOTE = 'd',   /* never on the pipe: demote_req seen at an epoch boundary */
	CTL_RESUMED = 'r',  /* never on the pipe: a standby guest runs again */
};

#define HR_OUTPUT_CAP_BYTES (4u << 20) /* output held per VM before the guest waits */

/* engine-primary.c: sessions with backups and the time between them; fd
 * -1 starts without a backup.  Returns as hr_engine_run_primary. */
int hr_engine_primary_loop(struct hr_engine *e, int fd);
/* A taken epoch ep (released here): send it, wait for its ack, release its
 * output.  0, or -errno / -EINTR with *ctl_r as hr_peer_recv. */
struct hr_sender;
int hr_engine_ship(struct hr_engine *e, struct hr_sender *snd, struct hr_epoch *ep, int trigger,
		   int *ctl_r);
/* The epoch source over outbuf (dirty set, gfn list); 0 or -errno. */
int hr_engine_src_setup(struct hr_engine *e, struct hr_outbuf *outbuf);

/* the engine thread's waits end this often at least, to stamp its progress */
#define ENGINE_WAIT_MAX_NS (500 * 1000000ull)

/* engine-live.c: the session's live phase (memory copied while the guest
 * runs) before its first epoch.  0, or -errno / -EINTR with *ctl_r. */
int hr_engine_live_phase(struct hr_engine *e, struct hr_sender *snd, int *ctl_r);
/* engine-live.c: the backup's images brought to ours (core/disk-sync.h),
 * the first step of the live phase; a no-op without disks.  0, or -errno /
 * -EINTR with *ctl_r (stop / abort). */
int hr_engine_disk_sync(struct hr_engine *e, int *ctl_r);

/* engine-alone.c */
enum { HR_ALONE_ENDED = 0, HR_ALONE_RECONNECTED = 1, HR_ALONE_STAND_DOWN = 2 };
/* No backup: run until a new one answered (*fd_r), stop / abort / guest
 * exit (*ctl_r), or the VM must stand down (it runs elsewhere). */
int hr_engine_alone(struct hr_engine *e, int *fd_r, int *ctl_r);
/* A promoted backup becomes a primary (held output, dirty tracking), its
 * epochs numbered from next_epoch.  0 or -errno. */
int hr_engine_become_primary(struct hr_engine *e, uint64_t next_epoch);

/* engine-standby.c (cluster mode: demote / resume) */
/* Demote requested and not yet acted on (consumes nothing). */
int hr_engine_demote_requested(struct hr_engine *e);
/* In a session, at an epoch boundary: the final epoch (number epoch), then
 * standby until resume (0, *ctl_r = CTL_RESUMED: the guest runs again),
 * stop / abort (0, *ctl_r), or -errno when the backup was lost (the guest
 * stays paused: e->standby) or -HR_EPROMOTED (it took over). */
int hr_engine_standby_session(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch,
			      int *ctl_r);
/* Without a backup: pause (a speaking guest's output up to the pause
 * leaves: *epoch is the open epoch, moved on), then wait for resume
 * (CTL_RESUMED) or stop / abort (returned). */
int hr_engine_standby_alone(struct hr_engine *e, uint64_t *epoch);

/* engine-migrate.c */
/* A migration was asked for and not cancelled (consumes nothing). */
int hr_engine_mig_requested(struct hr_engine *e);
/* Start one: +migrate-start, connect.  The connection (>= 0), or -errno
 * after the failure was reported (the guest runs on without a backup). */
int hr_engine_migration_open(struct hr_engine *e);
/* In a migration session, after its first acknowledged epoch: the final
 * epoch and the destination's confirmation.  0 with *ctl_r = CTL_MIGRATED
 * (the guest is stopped here), or -errno (the session failed). */
/* A migration that cannot start (the dropped backup did not confirm):
 * reported as failed, the guest runs on here with its output held. */
void hr_engine_migration_refused(struct hr_engine *e, int rc);
int hr_engine_handoff(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch, int *ctl_r);
/* A migration session ended without a hand-off (rc: why): the destination
 * is told to discard, the guest runs on here without a backup. */
void hr_engine_migration_failed(struct hr_engine *e, int rc);
/* The session's sender, for progress (NULL when it ends). */
void hr_engine_migration_sender(struct hr_engine *e, struct hr_sender *snd);

/* engine.c */
void hr_engine_ctl_send(struct hr_engine *e, char c);
/* min_epoch_us: outbuf tells the epoch loop (out_wake_fd) when the open
 * epoch gets its first network frame; once per epoch (no-op if off). */
void hr_engine_watch_net_output(struct hr_engine *e, struct hr_outbuf *ob);
/* Speaking without a backup: out_wake_fd is written once per epoch when
 * any output is held, so that it leaves at once (on 1, off 0). */
void hr_engine_watch_any_output(struct hr_engine *e, int on);
void hr_engine_epoch_done(struct hr_engine *e, const struct hr_epoch_stats *st);
void hr_engine_role_event(struct hr_engine *e, enum hr_role_event ev, const char *why);
int hr_engine_primary_emit(void *opaque, unsigned chan, const void *buf, size_t len);
int hr_engine_promoted_emit(void *opaque, unsigned chan, const void *buf, size_t len);
void hr_engine_on_guest_exit(void *opaque, enum hr_exit_reason why, int code);
/* Released output leaves here: the sink (console, observers), and a
 * record channel with a wire of its own (a TAP) through ops->output_deliver.
 * An hr_output_sink_fn with opaque = the engine. */
void hr_engine_deliver(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len);
/* The outbuf's sink (hr_outbuf_sink_fn): hr_engine_deliver, or -EAGAIN
 * while cfg.output_room says the sink is at its bound (the record stays held). */
int hr_engine_release_sink(void *opaque, unsigned chan, uint64_t offset, const void *buf,
			   size_t len);
int hr_engine_open_vm(struct hr_engine *e, struct hr_vm_config *vc);
/* The configured heartbeat period, or the default derived from silence_ms. */
uint64_t hr_engine_heartbeat_ms(const struct hr_engine *e);
/* Output held without a backup: why (NULL or "": released again). */
void hr_engine_set_held(struct hr_engine *e, const char *why);
/* Disks: the engine's hr_disk_write_fn (opaque = the engine), the sizes
 * of cfg.vm.disks into disk_sizes (0 or -errno, logged), and the write
 * log kept (on 1) or not (0: no backup holds the disks' past). */
int hr_engine_disk_write(void *opaque, unsigned disk, uint64_t off, const void *buf, size_t len,
			 unsigned flags);
int hr_engine_disk_sizes(struct hr_engine *e);
/* The write log (engine-primary.c), set up before the guest can write:
 * it counts writes from the start and keeps them in sessions.  0 or -errno. */
int hr_engine_disklog_setup(struct hr_engine *e);
void hr_engine_disklog_keep(struct hr_engine *e, int on);
/* The configured max pause, or HR_MAX_PAUSE_MS. */
uint64_t hr_engine_max_pause_ms(const struct hr_engine *e);

#endif
