/*
 * engine.h - the epoch engine (Remus-style continuous checkpointing) for
 * one VM: it drives the core's modules and reports to the HA role machine.
 *
 *   engine     the object, requests, guest callbacks           core/engine.c
 *              the primary's loop / the backup's loop           core/engine-primary.c,
 *                                                               core/engine-backup.c
 *              no backup: output policy, re-protection          core/engine-alone.c
 *   handshake  both sides' hello and the shape check           core/handshake.c
 *   planner    the live phase (MPLM): which pages, when it ends core/planner.c
 *   epoch      pause -> fetch -> save -> capture -> seal        core/epoch.c
 *   sender     frames + checksums out, acks checked             core/sender.c
 *   receiver   frames in -> staging -> commit -> ack            core/receiver.c
 *   staging    a whole epoch verified before it is applied      core/staging.c
 *   stream     frame format, send, blocking receive, checksums  core/stream.c
 *   reader     incremental frames; page data placed in staging  core/frame-reader.c
 *   envelope   held output + backend state of an epoch          core/envelope.c
 *   outbuf     output held per channel, each byte's offset      core/outbuf.c
 *   promote    committed state + held output -> running VM      core/promote.c
 *   migrate    a session that ends on purpose: the hand-off     core/engine-migrate.c
 *   dirtyset   sets of pages (bitmap + word list)               core/dirtyset.c
 *   guestmem   page access: host mapping or batched maps        core/guestmem.c
 *   peer       socket + reader + the engine's control pipe      core/peer.c
 *   role       states and their log tokens                      ha/role.c
 *   failover   may a silent primary's backup take over?         ha/failover.c
 *
 * Guest output leaves through output_sink as (channel, offset, bytes): each
 * byte's offset is assigned once, when the guest emits it, so a sink that
 * receives an offset twice (after a failover) drops the repeat - the
 * stream the outside sees is gap-free and never contradicts itself.
 *
 * Both loops run in the calling thread with non-blocking sockets and
 * return 0 / -errno / -HR_E*; they never exit the process.  When a loop
 * returns, its guest is paused: nothing more is emitted or released.
 */
#ifndef HR_CORE_ENGINE_H
#define HR_CORE_ENGINE_H

#include <stdint.h>

#include "backends/backend.h"
#include "core/epoch.h"
#include "core/handshake.h"
#include "core/planner.h"
#include "ha/role.h"

struct hr_tls_ctx; /* net/tls.h */

/*
 * Failure detection defaults (docs/design.md, "Failure detection"): a
 * backup promotes after HR_FAILOVER_TIMEOUT_MS without a byte from its
 * primary; heartbeats go out HR_HEARTBEATS_PER_TIMEOUT times per timeout
 * from a thread of their own (core/peer.h), so a stall of the sending host
 * shorter than the timeout minus one period is never taken for a death.
 */
#define HR_FAILOVER_TIMEOUT_MS	  200
#define HR_HEARTBEATS_PER_TIMEOUT 8
/* An engine thread that made no progress this long is wedged: its link's
 * heartbeats stop on purpose (core/peer.h), so its peer takes over.  Above
 * any checkpoint pause a healthy host takes. */
#define HR_MAX_PAUSE_MS 4000

/* Released guest output, in offset order per channel.  Called from the
 * engine thread (and, once promoted, from vCPU threads). */
typedef void (*hr_output_sink_fn)(void *opaque, unsigned chan, uint64_t offset, const void *buf,
				  size_t len);

/* A finished migration's figures (hr_engine_config.on_migration). */
struct hr_migration_report {
	uint64_t total_ms;    /* hr_engine_migrate until the destination confirmed */
	uint64_t downtime_us; /* the final pause until the confirmation arrived: the guest
			       * paused here until it runs there, plus one network delay */
	uint64_t live_bytes;  /* sent while the guest ran (the live phase) */
	uint64_t epoch_bytes; /* sent in the session's epochs, the final one included */
	uint64_t nr_epochs;   /* the session's epochs (the final one included) */
	uint64_t final_pages; /* pages of the final epoch */
	uint64_t final_epoch; /* its number */
	uint64_t ram_xxh3;    /* cfg.mig_ram_digest: all guest RAM at the stop point */
};

/* Where a migration stands (hr_engine_migration_progress). */
enum hr_migration_phase {
	HR_MIG_NONE = 0,
	HR_MIG_CONNECTING, /* a backup is dropped, the destination's daemon is asked */
	HR_MIG_LIVE,	   /* live phase and the first epoch */
	HR_MIG_HANDOFF,	   /* the final epoch: the guest is paused here */
};
struct hr_migration_progress {
	int phase; /* enum hr_migration_phase */
	uint64_t elapsed_ms;
	uint64_t bytes; /* sent so far (live phase and epochs) */
};

struct hr_engine_config {
	const char *name;
	const struct hr_backend_ops *ops;
	/* emit/on_exit/disk_write are set by the engine.  vm.disks / nr_disks:
	 * this host's images of the VM's disks, in both roles (a backup's must
	 * have the primary's sizes).  The primary's completed writes travel
	 * with the epoch that saw them complete; the backup applies them when it
	 * commits that epoch (core/disklog.h, core/disk-staging.h). */
	struct hr_vm_config vm;
	/* Disks, backup: "ack" (NULL, default) or "flush" - what an ACK promises
	 * about the epoch's writes (core/disk-staging.h). */
	const char *disk_durability;
	/* Disks, backup without vm.disks (OPTIONAL; NULL: none): the primary's
	 * disks get images DIR/disk<i>.img here, created sparse with the sizes
	 * of its HELLO when missing; an existing one of another size refuses
	 * the primary (-HR_ESHAPE; core/disk-files.h). */
	const char *backup_disk_dir;
	/* Disks, primary: the write log's soft limit (an early checkpoint) and
	 * hard limit (writes fail) in bytes; 0: core/disklog.h's defaults. */
	uint64_t disk_log_soft_bytes, disk_log_hard_bytes;
	uint64_t disk_fail_after; /* tests, backup: that applied write fails (EIO); 0 never */
	/* Disks, primary: the block of the images' synchronisation at every
	 * session's start (a power of two, 4 KiB..4 MiB; 0: 64 KiB;
	 * core/disk-sync.h). */
	uint32_t disk_sync_block_bytes;
	uint64_t epoch_us; /* configured epoch length */
	/* Output-triggered epochs (primary; 0 = off: every epoch lasts
	 * epoch_us).  An epoch that holds a network frame ends early: at
	 * min_epoch_us after its start, or a short coalescing delay after its
	 * first frame, whichever is later - so epochs never start more often
	 * than every min_epoch_us (output full and guest exit excepted).
	 * Console bytes never end an epoch early.  See engine-primary.c. */
	uint64_t min_epoch_us;
	uint64_t silence_ms;   /* backup: promote after this much silence (0 = on EOF only) */
	int handshake_ms;      /* the handshake's wait for the peer (0: HR_HANDSHAKE_MS) */
	uint64_t heartbeat_ms; /* both: heartbeat period, sent by a thread of its own
				* whenever the link was idle that long (0 =
				* silence_ms / HR_HEARTBEATS_PER_TIMEOUT, or 250 ms) */
	uint64_t max_pause_ms; /* both: the engine thread making no progress this long
				* is wedged: its heartbeats stop on purpose so the
				* peer can take over (0 = HR_MAX_PAUSE_MS) */
	int auto_promote; /* backup: promote on silence/EOF (else wait for hr_engine_promote) */
	int unprotected_release; /* primary: release output once the backup is lost (unsafe on
				  * a torn link; default 0 = hold, see ha/failover.h) */
	hr_output_sink_fn output_sink;
	void *output_opaque;
	/*
	 * OPTIONAL: 0 while output_sink takes more of channel chan's output,
	 * -EAGAIN while it holds as much as it will (its destination refuses
	 * it: a full disk, a closed collector), waiting up to timeout_ms for
	 * room (opaque: output_opaque).  At -EAGAIN released output stays held
	 * in the engine's outbuf, in order (all channels behind it), until its
	 * cap; then a guest that speaks alone (no backup) waits in its append
	 * as long as it takes - until the engine must pause it (a new backup,
	 * standby, stop), when the append fails as a full outbuf's does in a
	 * session: after 1 s, counted as dropped.  A promoted guest without an
	 * outbuf waits in its emit; stop, abort and guest exit end that wait
	 * (the bytes then go to the sink beyond its bound).
	 */
	int (*output_room)(void *opaque, unsigned chan, int timeout_ms);
	/* role changes (after ha/role.c logged them) */
	hr_role_observer_fn on_state;
	void *state_opaque;
	/* one epoch acknowledged (primary) / committed (backup) */
	void (*on_epoch)(void *opaque, const struct hr_epoch_stats *st);
	void *epoch_opaque;
	uint64_t max_epochs; /* primary: stop replicating after this many (0 = forever; tests) */
	/*
	 * Primary: the live phase that copies memory while the guest runs,
	 * before epoch 0 (core/planner.h; all 0 = MPLM: 1 s rounds, half of
	 * each round's pages from the dirty set, ends when every page was sent
	 * or written once, plus dirty-only rounds while a slower-than-the-link
	 * writer's backlog shrinks - at most about 2 x RAM on the wire;
	 * live.mode HR_LIVE_PRECOPY: the former pre-copy).  live.extend
	 * keeps it going until hr_engine_live_request(HR_LIVE_END);
	 * live.max_bytes_per_s paces its page data (not epoch 0's).  The same
	 * phase opens every session: `start`'s first sync, a re-protection.
	 */
	struct hr_live_config live;
	/* OPTIONAL: one live round done (its figures; engine thread) */
	void (*on_round)(void *opaque, const struct hr_live_round *r);
	void *round_opaque;
	/* backup: what a primary's HELLO may ask for (core/handshake.h) */
	struct hr_handshake_limits limits;
	/*
	 * Re-protection (OPTIONAL; NULL = a primary without a backup stays so).
	 * A primary whose backup is lost, or a promoted backup, calls it every
	 * reconnect_ms (default 1000): a new connection to the peer daemon,
	 * bounded in time.  speaking: this side releases output now.  0 with
	 * *fd_r (the engine's handshake follows); -HR_EPROMOTED when the peer
	 * runs the VM and releases its output (a silent side stands down);
	 * other -errno: try again later.
	 */
	int (*reconnect)(void *opaque, int speaking, int *fd_r);
	void *reconnect_opaque;
	uint64_t reconnect_ms;
	/* A migration's destination: after the hand-off, reconnect as above
	 * (its opaque then names the VM's backup host); 0 = the migrated VM
	 * runs without re-protection. */
	int migrated_reprotect;
	/* Witness (OPTIONAL; NULL = none): "host[:port]" granting leases, and
	 * this host's and the peer's node names as the witness knows them;
	 * witness_tls secures that link (net/tls.h; NULL: plain TCP). */
	const char *witness;
	/* Backup: the TAP a replica's network device attaches to on this host,
	 * "%s" standing for the VM name (NULL: the name the primary uses). */
	const char *replica_tap;
	struct hr_tls_ctx *witness_tls;
	const char *node, *peer_node;
	uint64_t lease_ms;
	/*
	 * Migration (OPTIONAL; NULL: hr_engine_migrate fails at once).
	 * migrate_connect: a connection to the destination's daemon, preamble
	 * done, bounded in time; 0 with *fd_r, or -errno (it reports why).
	 * on_migration: the migration ended - rc 0: the destination runs the VM
	 * (rep filled; the engine then returns -HR_EMIGRATED), else why not
	 * (the guest runs on here); in_doubt: the final epoch left but no
	 * confirmation came, so the destination may run the guest: output is
	 * held here (see core/engine-migrate.c).  Both from the engine thread.
	 */
	int (*migrate_connect)(void *opaque, int *fd_r);
	void (*on_migration)(void *opaque, int rc, int in_doubt,
			     const struct hr_migration_report *rep);
	void *migrate_opaque;
	/* Tests and debugging: both sides take hr_engine_ram_digest at the stop
	 * point (the source after the confirmation, the target after the final
	 * commit - before its guest runs, so this adds to the downtime) and log
	 * it; the source's is in the report, the target's in
	 * hr_engine_migration_digest.  With mig_ram_pages also one XXH3-64 per
	 * guest page (little-endian, guest-physical order) into that file. */
	int mig_ram_digest;
	const char *mig_ram_pages;
};

struct hr_engine;

/* Build an engine for one VM (nothing runs yet).  -errno on failure. */
int hr_engine_new(struct hr_engine **eng_r, const struct hr_engine_config *cfg);

/* Primary: build the VM from cfg->vm (kernel), hand-shake on peer_fd (a
 * connected stream socket), copy memory while the guest runs, then
 * checkpoint every epoch.  If the backup goes away the guest keeps running
 * unprotected.  Returns when the guest exits (the guest's exit code, >= 0),
 * on hr_engine_stop / abort (0), or -errno. */
int hr_engine_run_primary(struct hr_engine *eng, int peer_fd);

/* Backup: take the handshake on peer_fd, build a replica of the same shape,
 * apply whole epochs and ack them.  Promotion (auto_promote on silence or
 * EOF, or hr_engine_promote): load the last committed state, release the
 * held output, run the guest here until it exits or hr_engine_stop.
 * Returns -ECONNRESET if the stream ended before the first commit (nothing
 * to promote). */
int hr_engine_run_backup(struct hr_engine *eng, int peer_fd);

/* Thread- and signal-safe requests (a write to a pipe).  stop is orderly:
 * a primary tells its backup that the VM is stopping on purpose, so the
 * backup does not promote.  abort drops everything as a crash would (the
 * backup promotes): for drills and tests. */
void hr_engine_stop(struct hr_engine *eng);
void hr_engine_abort(struct hr_engine *eng);
void hr_engine_promote(struct hr_engine *eng);
/* Cluster mode (a cluster manager decides where the VM runs): the cluster
 * confirms that no other host holds a copy that could run (the peer's
 * instance was stopped or its node fenced), so a primary without a backup
 * may release its output (ha/failover.h).  Holds until the next backup has
 * synchronised.  It is about a backup already silent when it comes: such a
 * backup is hung up on at once (or dropped once silent for two heartbeats
 * while an ack is awaited), and the guest speaks alone; a backup that
 * answers is kept, and a word older than the backup's last sign of life
 * never releases anything on a later loss.  Thread- and signal-safe. */
void hr_engine_cluster_release(struct hr_engine *eng);
/*
 * Cluster mode: the cluster manager demotes or promotes this host's copy
 * (core/engine-standby.c).  demote: at the next epoch boundary (a live
 * phase ends early for it) the guest pauses and, with a backup, a final
 * epoch goes; once the backup acknowledged it, its output is released -
 * the backup's copy is then exactly the paused guest - and the VM waits in
 * standby: paused, the session open (heartbeats), output of nothing
 * further held.  Without a backup the guest just pauses (output it held
 * stays held; a speaking one releases what it emitted).  resume: a standby
 * guest runs on from where it paused (the next epoch follows at once).  A
 * standby whose backup announces its promotion stops for good
 * (-HR_EPROMOTED: +demoted, the peer asks this host for a backup); stop
 * and abort end it as any primary.  Thread- and signal-safe.
 */
void hr_engine_demote(struct hr_engine *eng);
void hr_engine_resume(struct hr_engine *eng);

/*
 * Migration (primary; thread- and signal-safe).  migrate: at the next
 * epoch boundary drop the backup (if any: it is told the VM stops, so it
 * does not promote), connect to the destination (cfg.migrate_connect) and
 * run a session with it as a MIGRATION_SOURCE: live phase, one epoch,
 * then at once the hand-off - the guest pauses, the final epoch goes with
 * EpochBegin.handoff, the destination commits it, runs the guest and
 * confirms; the guest then stops here, its held output unreleased (the
 * destination released it from the committed envelope), and the run
 * function returns -HR_EMIGRATED.  cancel: a migration not yet at its
 * hand-off ends; the destination discards its copy, the guest runs on.
 * test_hold_ms (tests only, 0 otherwise): wait that long between the first
 * acknowledged epoch and the hand-off (heartbeats go on), so that a test
 * can kill either side, or cancel, while the destination holds a
 * committed copy.
 */
void hr_engine_migrate(struct hr_engine *eng, uint64_t test_hold_ms);
void hr_engine_migrate_cancel(struct hr_engine *eng);
void hr_engine_migration_progress(struct hr_engine *eng, struct hr_migration_progress *p);
/* XXH3-64 of all guest RAM, region by region (0: the backend maps pages in
 * batches only).  Meaningful while the guest is paused. */
uint64_t hr_engine_ram_digest(struct hr_engine *eng);
/* A migration target's digest at the hand-off (cfg.mig_ram_digest; 0: none). */
uint64_t hr_engine_migration_digest(struct hr_engine *eng);

/*
 * Thread-safe requests to a primary's live phase, acted on at its next
 * round boundary (a request made before the phase began applies to it; a
 * phase that ends clears them).  END: the live phase ends (then epoch 0);
 * EXTEND / NO_EXTEND: turn live.extend on or off (MPLM only; ignored by
 * pre-copy).  A live phase also ends at once, extended or not, when the
 * guest exits or its held output (HR_OUTPUT_CAP_BYTES: output waits for
 * the first ack) is full.  live.extend and these requests apply to every
 * session's live phase: the first sync and a re-protection alike.
 */
enum hr_live_request { HR_LIVE_END = 1, HR_LIVE_EXTEND = 2, HR_LIVE_NO_EXTEND = 3 };
void hr_engine_live_request(struct hr_engine *eng, enum hr_live_request req);
/* The live phases from now on pace at bytes_per_s (0: cfg.live.max_bytes_per_s
 * again); read when a live phase begins (a migration's, a re-protection's). */
void hr_engine_live_bandwidth(struct hr_engine *eng, uint64_t bytes_per_s);

/* Liveness as another thread may read it at any time (the worker reports
 * it to the daemon every second for `status`). */
struct hr_engine_liveness {
	enum hr_role_state state;
	uint64_t state_age_ms;	     /* since the last role change */
	uint64_t peer_silent_ms;     /* since the peer's last byte; UINT64_MAX: no peer */
	int witness_standing;	     /* enum hr_ha_standing (ha/failover.h) */
	uint64_t lease_left_ms;	     /* of the witness's lease held here (0: none) */
	uint64_t witness_contact_ms; /* since its last answer; UINT64_MAX: never */
	char held_why[160];	     /* without a backup, output held: why ("" not held) */
	uint64_t held_ms;	     /* ... for how long */
	uint64_t next_reprotect_ms;  /* until the next re-protection attempt (0: none due) */
	char dropped_why[256];	     /* primary: the last backup dropped its copy (a disk's
				      * ENOSPC / EIO there): why ("" none since one synced) */
};
void hr_engine_liveness(struct hr_engine *eng, struct hr_engine_liveness *l);

/* Primary: what the last session's disk synchronisation did (zeroed
 * before the first; core/disk-sync.h).  Any thread. */
struct hr_disk_sync_stats;
void hr_engine_disk_sync_stats(struct hr_engine *eng, struct hr_disk_sync_stats *st);

/* Latest stats (copy) and the role state. */
void hr_engine_stats(struct hr_engine *eng, struct hr_epoch_stats *last_r, uint64_t *nr_epochs_r);
enum hr_role_state hr_engine_state(struct hr_engine *eng);
/* The role machine itself (side, state, hr_role_is_held): for the state
 * observer (cfg.on_state), which runs on the engine thread. */
const struct hr_role *hr_engine_role(const struct hr_engine *eng);

/* Why building the VM or the handshake failed, for the operator ("" if
 * nothing failed); read it after the run function returned. */
const char *hr_engine_error(const struct hr_engine *eng);

void hr_engine_free(struct hr_engine *eng);

#endif
