/*
 * engine-primary.c - the primary's side of the engine: handshake, the live
 * phase, one checkpoint per epoch until stop, guest exit or the loss of
 * the backup; then running unprotected, or demotion if the backup took over.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "ha/failover.h"
#include "ha/standdown.h"
#include "core/handshake.h"
#include "core/outbuf.h"
#include "core/peer.h"
#include "core/planner.h"
#include "core/sender.h"

#define BACKUP_DROP_MS 2000 /* a migration: the backup confirms the drop within this */

/* The cluster's word (hr_engine_cluster_release), judged against the
 * backup's last byte by ha/standdown.c: fresh, stale or none. */
static struct hr_ha_word cluster_word(struct hr_engine *e)
{
	return (struct hr_ha_word){.given = __atomic_load_n(&e->cluster_release, __ATOMIC_SEQ_CST),
				   .given_ns =
				       __atomic_load_n(&e->cluster_release_ns, __ATOMIC_SEQ_CST)};
}

/* A silent backup is dropped on a fresh word (ha/standdown.c decides). */
static int drop_silent(struct hr_engine *e)
{
	struct hr_ha_word w = cluster_word(e);
	return hr_ha_drop_silent(&w, e->peer.last_rx_ns, hr_now_ns(), hr_engine_heartbeat_ms(e),
				 NULL) == HR_HA_DROP_NOW;
}

/* Wait for the ack of the oldest epoch in flight; the guest runs meanwhile.
 * A backup that is merely silent (no FIN, no reset: a partition, a hung
 * host) may be promoting itself right now, so output stays held for as
 * long as that lasts: releasing it could make two hosts speak for the VM
 * (docs/design.md contract 4).  Only an ended connection counts as the
 * backup's death - or, in cluster mode, the cluster's word that its copy
 * is gone (its node fenced behind a cut link leaves no FIN, no reset),
 * given while it was silent already: -HR_EPEERGONE, and the word then lets
 * the guest speak alone.  Silent for the failure timeout (silence_ms, after
 * which the backup calls us dead): +backup-silent, a state that is not
 * protected; +backup-answered goes back to protected. */
static int wait_ack(struct hr_engine *e, struct hr_sender *snd, uint64_t *ack_ns_r, int *ctl_r)
{
	uint64_t silent_ms = e->cfg.silence_ms ? e->cfg.silence_ms : 10000;
	int silent = hr_engine_state(e) == HR_RS_BACKUP_SILENT, rc;

	for (;;) {
		struct hr_frame f;
		/* woken every heartbeat period to judge the backup's silence */
		rc = hr_peer_recv(&e->peer, &f, (int)hr_engine_heartbeat_ms(e), ctl_r);
		if (rc == -EINTR && (*ctl_r == CTL_OUTPUT_FULL || *ctl_r == CTL_MIGRATE)) {
			/* a migration waits for the epoch boundary */
			*ctl_r = 0;
			continue;
		}
		if (rc == -ETIMEDOUT && drop_silent(e)) {
			log_warnx(e->name,
				  "nothing from the backup for %" PRIu64
				  " ms and the cluster confirms its copy is gone: it is dropped",
				  hr_peer_silent_ms(&e->peer));
			return -HR_EPEERGONE;
		}
		if (rc == -ETIMEDOUT) {
			/* the backup's heartbeats and acks both count; a long commit is not silence
			 */
			if (hr_peer_silent_ms(&e->peer) >= silent_ms && !silent++) {
				char why[96];
				snprintf(why, sizeof(why),
					 "nothing from the backup for %" PRIu64
					 " ms (epoch %" PRIu64 " unacked); output held",
					 hr_peer_silent_ms(&e->peer), hr_sender_oldest(snd));
				hr_engine_role_event(e, HR_RE_BACKUP_SILENT, why);
			}
			continue;
		}
		if (rc < 0)
			return rc;
		if (f.type == HR_FT_ACK) {
			uint64_t acked = ((Hr__Ack *)f.msg)->epoch;
			hr_frame_release(&f);
			if (silent)
				hr_engine_role_event(e, HR_RE_BACKUP_ANSWERED, NULL);
			rc = hr_sender_ack(snd, acked, NULL);
			*ack_ns_r = hr_now_ns();
			return rc;
		}
		if (f.type == HR_FT_ERROR) {
			Hr__Error *er = (Hr__Error *)f.msg;
			log_err(e->name, "backup reports: %s", er->text ? er->text : "error");
			if (er->has_copy_dropped && er->copy_dropped)
				snprintf(e->backup_dropped, sizeof(e->backup_dropped),
					 "the backup dropped its copy: %s (%s)",
					 er->text ? er->text : "no reason", hr_strerror(er->code));
			rc = er->code < 0 ? er->code : -HR_EPROTO;
			hr_frame_release(&f);
			return rc;
		}
		hr_frame_release(&f); /* heartbeats etc. */
		if (silent) {
			silent = 0;
			hr_engine_role_event(e, HR_RE_BACKUP_ANSWERED, NULL);
		}
	}
}

/* One epoch: take it, send it, wait for its ack, release its output.
 * trigger: why it ends now (enum hr_epoch_end, for its stats). */
static int checkpoint(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch, int trigger,
		      int *ctl_r)
{
	struct hr_epoch ep;
	int rc;

	*ctl_r = 0;
	hr_peer_progress(&e->peer);
	if ((rc = hr_epoch_take(&e->src, epoch, &ep)) < 0)
		return rc;
	return hr_engine_ship(e, snd, &ep, trigger, ctl_r);
}

int hr_engine_ship(struct hr_engine *e, struct hr_sender *snd, struct hr_epoch *ep, int trigger,
		   int *ctl_r)
{
	uint64_t ack_ns, epoch = ep->epoch;
	int rc;

	*ctl_r = 0;
	uint64_t sent_t0 = hr_now_ns();
	rc = hr_sender_send_epoch(snd, ep);
	log_debug(e->name, "epoch %" PRIu64 ": %" PRIu64 " pages sent in %" PRIu64 " us", epoch,
		  ep->nr_pages, (hr_now_ns() - sent_t0) / 1000);
	struct hr_epoch_stats st = ep->st;
	st.trigger = (uint64_t)trigger;
	hr_epoch_release(ep); /* before release: it points into the outbuf */
	if (rc < 0)
		return rc;
	if ((rc = wait_ack(e, snd, &ack_ns, ctl_r)) < 0)
		return rc;
	st.ack_us = (ack_ns - sent_t0) / 1000;
	hr_outbuf_release(e->outbuf, epoch, hr_engine_release_sink, e);
	hr_engine_epoch_done(e, &st);
	return 0;
}

/*
 * After a send or receive error: was it because the backup took over?  Its
 * last words may still sit in our receive buffer even when a send already
 * failed with EPIPE.  Returns 1 if the backup announced a promotion.
 */
static int backup_took_over(struct hr_engine *e)
{
	uint64_t deadline = hr_now_ns() + 100 * 1000000ull;
	for (;;) {
		struct hr_frame f;
		int r = hr_frame_reader_next(&e->peer.rd, &f);
		if (r == 1) {
			int promoted =
			    f.type == HR_FT_ERROR && ((Hr__Error *)f.msg)->code == -HR_EPROMOTED;
			hr_frame_release(&f);
			if (promoted)
				return 1;
			continue;
		}
		if (r < 0 || e->peer.fd < 0 || hr_now_ns() >= deadline)
			return 0;
		struct pollfd p = {e->peer.fd, POLLIN, 0};
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = hr_peer_fill(&e->peer);
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return 0;
	}
}

/* Protected: the witness learns who the backup is (then the backup may
 * claim the VM), and is asked every few seconds whether it still knows; a
 * witness that lost its table is told again.  Never waits for the witness
 * (ha/lease.c asks on its own thread). */
static void witness_register(struct hr_engine *e)
{
	if (!e->lease.addr)
		return;
	hr_ha_lease_register(&e->lease, !e->wit_registered, hr_now_ns());
	e->wit_registered = 1;
}

/*
 * When the open epoch ends.  Without min_epoch_us: epoch_us after its
 * start (the previous pause).  With it, an epoch that holds a network
 * frame ends at
 *
 *     max(start + min_epoch_us, first frame + coalescing delay)
 *
 * if that is sooner.  The first term bounds the checkpoint rate of a
 * chatty guest (the interval between pauses never drops below
 * min_epoch_us, so at most 1/min_epoch_us checkpoints per second, each
 * with its pause and its bytes); the second lets the frames a guest sends
 * in one burst (an answer and its ACKs, a segment train) share an epoch
 * instead of the second one waiting a whole min_epoch_us behind the
 * first.  The delay is a quarter of min_epoch_us, at most
 * OUT_COALESCE_MAX_US: a reply's frames follow each other within tens of
 * microseconds, and a longer wait only adds to every reply's latency.
 * Console bytes never end an epoch early: nobody waits on them for an
 * answer, and a chatty console would otherwise checkpoint non-stop.
 */
#define OUT_COALESCE_MAX_US 250

static uint64_t epoch_due_ns(struct hr_engine *e, int *trigger_r)
{
	uint64_t start = e->src.last_pause_ns;
	uint64_t due = start + e->cfg.epoch_us * 1000ull;

	*trigger_r = HR_EPOCH_END_TIME;
	if (!e->cfg.min_epoch_us)
		return due;
	uint64_t first = hr_outbuf_net_since_ns(e->outbuf);
	if (!first)
		return due;
	uint64_t coalesce_us = e->cfg.min_epoch_us / 4;
	if (coalesce_us > OUT_COALESCE_MAX_US)
		coalesce_us = OUT_COALESCE_MAX_US;
	uint64_t early = start + e->cfg.min_epoch_us * 1000ull;
	if (first + coalesce_us * 1000ull > early)
		early = first + coalesce_us * 1000ull;
	if (early >= due)
		return due;
	*trigger_r = HR_EPOCH_END_OUTPUT;
	return early;
}

/* Sleep until the next epoch is due; returns a control byte that ends the
 * loop (stop, abort), or 0 to checkpoint now, with *trigger_r saying why.
 * A network frame wakes it (out_wake_fd, written once per epoch) to move
 * the due time forward. */
static int wait_next_epoch(struct hr_engine *e, int *trigger_r)
{
	for (;;) {
		witness_register(e);
		if (!e->migrating && hr_engine_mig_requested(e))
			return CTL_MIGRATE;
		if (!e->migrating && hr_engine_demote_requested(e))
			return CTL_DEMOTE;
		uint64_t due = epoch_due_ns(e, trigger_r);
		uint64_t now = hr_now_ns();
		if (now >= due)
			return 0;
		/* a long epoch is no silence: the heartbeat thread keeps the
		 * backup informed; this thread only says it is alive */
		hr_peer_progress(&e->peer);
		uint64_t wait_ns = due - now;
		if (wait_ns > ENGINE_WAIT_MAX_NS)
			wait_ns = ENGINE_WAIT_MAX_NS;
		struct timespec ts = {(time_t)(wait_ns / 1000000000ull),
				      (long)(wait_ns % 1000000000ull)};
		struct pollfd p[3] = {{e->ctl_pipe[0], POLLIN, 0},
				      {e->wake_fd, POLLIN, 0},
				      {e->out_wake_fd, POLLIN, 0}};
		if (ppoll(p, e->cfg.min_epoch_us ? 3 : 2, &ts, NULL) <= 0)
			continue;
		uint64_t n;
		if (p[1].revents & POLLIN)
			(void)!read(e->wake_fd, &n, sizeof(n)); /* a request: seen above */
		if (p[2].revents & POLLIN)
			(void)!read(e->out_wake_fd, &n, sizeof(n)); /* due is recomputed above */
		char c;
		if (!(p[0].revents & POLLIN) || read(e->ctl_pipe[0], &c, 1) != 1)
			continue;
		if (c == CTL_STOP || c == CTL_ABORT)
			return c;
		if (c == CTL_OUTPUT_FULL || c == CTL_GUEST_EXIT) {
			*trigger_r = HR_EPOCH_END_FORCED;
			return 0; /* checkpoint now */
		}
	}
}

/* A send gave up (-EINTR) because stop or abort was asked: which one?
 * Other control bytes queued before it are dropped (the loop ends). */
static int pending_end(struct hr_engine *e)
{
	char c;
	int end = 0;
	while (read(e->ctl_pipe[0], &c, 1) == 1)
		if (c == CTL_STOP || c == CTL_ABORT)
			end = end == CTL_ABORT ? end : c;
	return end ? end : CTL_ABORT;
}

static int primary_setup(struct hr_engine *e)
{
	struct hr_vm_config vc = e->cfg.vm;
	int rc;

	vc.name = e->name;
	vc.emit = hr_engine_primary_emit;
	vc.emit_opaque = e;
	vc.on_exit = hr_engine_on_guest_exit;
	vc.exit_opaque = e;
	if (vc.nr_disks) {
		vc.disk_write = hr_engine_disk_write;
		vc.disk_opaque = e;
		if ((rc = hr_engine_disk_sizes(e)) < 0 || (rc = hr_engine_disklog_setup(e)) < 0)
			return rc;
	}
	if ((rc = hr_engine_open_vm(e, &vc)) < 0)
		return rc;
	if ((rc = hr_outbuf_new(&e->outbuf, e->name, e->chans, e->nr_chans, HR_OUTPUT_CAP_BYTES,
				0)) < 0)
		return rc;
	hr_engine_watch_net_output(e, e->outbuf);
	return hr_engine_src_setup(e, e->outbuf);
}

/* The write log is past its soft limit: checkpoint early, as a full
 * output buffer asks (the ack empties both). */
static void disklog_full_cb(void *opaque)
{
	hr_engine_ctl_send(opaque, CTL_OUTPUT_FULL);
}

int hr_engine_src_setup(struct hr_engine *e, struct hr_outbuf *outbuf)
{
	int rc;

	if ((rc = hr_dirtyset_new(&e->src.dirty, e->gm.nr_gfns)) < 0)
		return rc;
	e->src.gfns = malloc((e->gm.nr_gfns ? e->gm.nr_gfns : 1) * sizeof(uint64_t));
	if (!e->src.gfns)
		return -ENOMEM;
	e->src.vm = e->name;
	e->src.ops = e->ops;
	e->src.hvm = e->vm;
	e->src.gm = &e->gm;
	e->src.outbuf = outbuf;
	e->src.disklog = e->disklog_on ? &e->disklog : NULL;
	return 0;
}

int hr_engine_disklog_setup(struct hr_engine *e)
{
	int rc;

	if (!e->cfg.vm.nr_disks || e->disklog_on)
		return 0;
	if ((rc = hr_disklog_init(&e->disklog, e->name, e->cfg.vm.nr_disks,
				  e->cfg.disk_log_soft_bytes, e->cfg.disk_log_hard_bytes,
				  disklog_full_cb, e)) < 0) {
		log_err(e->name, "disk write log limits: the soft one above the hard one");
		return rc;
	}
	hr_disklog_set_discard(&e->disklog, 1); /* until a session keeps it */
	__atomic_store_n(&e->disklog_on, 1, __ATOMIC_RELEASE);
	return 0;
}

/*
 * One session with a backup on fd: handshake, live phase, then one
 * checkpoint per epoch, numbered on from the output buffer's open epoch (so
 * output held before a re-protection is released by the new backup's first
 * ack).  Returns 0 with *ctl_r = CTL_STOP / CTL_ABORT (asked), 0 when the
 * guest exited or max_epochs was reached, or < 0 when the backup was lost.
 */
static int session(struct hr_engine *e, int fd, int *ctl_r)
{
	struct hr_sender snd;
	struct hr_outbuf_stats obs;
	int rc;

	*ctl_r = 0;
	e->session_epochs_sent = 0;
	e->session_synced = 0;
	hr_ha_lease_drop(&e->lease); /* from here on acks release output, not a lease */
	e->wit_registered = 0;
	hr_peer_init(&e->peer, e->name, fd, e->ctl_pipe[0]);
	e->peer.handshake_ms = e->cfg.handshake_ms;
	e->peer.heartbeat_ms = hr_engine_heartbeat_ms(e);
	e->peer.max_pause_ms = hr_engine_max_pause_ms(e);
	hr_sender_init(&snd, e->name, fd);
	hr_sender_use_peer(&snd, &e->peer);
	if (e->migrating)
		hr_engine_migration_sender(e, &snd);
	hr_outbuf_get_stats(e->outbuf, &obs);
	uint64_t epoch = obs.open_epoch;
	void *cpu = NULL; /* the guest's CPU, for the backup to check (backend.h) */
	size_t cpu_bytes = 0;
	if (e->ops->cpu_model && (rc = e->ops->cpu_model(e->vm, &cpu, &cpu_bytes)) < 0) {
		log_err(e->name, "the guest's CPU model: %s", hr_strerror(rc));
		goto out;
	}
	rc = hr_handshake_primary(&e->peer, e->ops->name, &e->cfg.vm, e->gm.regions,
				  e->gm.nr_regions, e->cfg.epoch_us, e->cfg.min_epoch_us, epoch,
				  cpu, cpu_bytes, e->migrating, e->disk_sizes, e->cfg.vm.nr_disks,
				  ctl_r, e->error, sizeof(e->error));
	free(cpu);
	if (rc < 0) {
		if (rc != -EINTR && !e->error[0])
			snprintf(e->error, sizeof(e->error), "handshake with the backup failed: %s",
				 hr_strerror(rc));
		if (rc != -EINTR)
			log_err(e->name, "handshake with the backup failed: %s", hr_strerror(rc));
		goto out;
	}
	if ((rc = hr_peer_liveness_start(&e->peer)) < 0) {
		log_err(e->name, "the heartbeat thread: %s", hr_strerror(rc));
		goto out;
	}
	hr_engine_disklog_keep(e, 1); /* from here on the backup gets every write */
	hr_engine_role_event(e, HR_RE_CONNECTED,
			     e->migrating ? "migrating: copying memory while the guest runs"
					  : "copying memory while the guest runs");
	if (!e->dirty_on) {
		if ((rc = e->ops->dirty_start(e->vm)) < 0 || (rc = e->ops->resume(e->vm)) < 0) {
			*ctl_r = CTL_FAILED;
			goto out;
		}
		e->dirty_on = 1;
	}
	if ((rc = hr_engine_live_phase(e, &snd, ctl_r)) < 0)
		goto out;
	int trigger = HR_EPOCH_END_FORCED; /* the first follows the live phase at once */
	for (uint64_t first = epoch;; epoch++) {
		rc = checkpoint(e, &snd, epoch, trigger, ctl_r);
		if (rc == -EINTR && !*ctl_r)
			*ctl_r = pending_end(e); /* a send to a peer that stopped reading */
		if (epoch == first && !rc && e->migrating && !e->guest_exited) {
			/* the destination holds a complete copy: hand over at once */
			rc = hr_engine_handoff(e, &snd, epoch + 1, ctl_r);
			goto out;
		}
		if (epoch == first && !rc) {
			char why[80];
			snprintf(why, sizeof(why),
				 "the backup holds a complete copy (epoch %" PRIu64 ")", epoch);
			hr_engine_role_event(e, HR_RE_SYNCED, why);
			e->session_synced = 1;
			e->reprotect_failures = 0;
			pthread_mutex_lock(&e->stats_lock);
			e->dropped_why[0] = '\0';
			pthread_mutex_unlock(&e->stats_lock);
			hr_engine_set_held(e, NULL); /* acks release it now */
			witness_register(e);
		}
		if (*ctl_r == CTL_STOP || *ctl_r == CTL_ABORT)
			goto out;
		if (rc == -EINTR && *ctl_r == CTL_GUEST_EXIT)
			rc = 0; /* ship the final epoch below, then stop */
		if (rc < 0)
			goto out;
		if (e->guest_exited || (e->cfg.max_epochs && e->nr_epochs >= e->cfg.max_epochs))
			goto out;
		if ((*ctl_r = wait_next_epoch(e, &trigger)) == CTL_DEMOTE) {
			/* the final epoch, then standby: resumed, the epochs go on */
			rc = hr_engine_standby_session(e, &snd, ++epoch, ctl_r);
			if (rc < 0 || *ctl_r != CTL_RESUMED)
				goto out;
			*ctl_r = 0;
			trigger = HR_EPOCH_END_FORCED; /* the next epoch follows at once */
			continue;
		}
		if (*ctl_r)
			goto out;
	}
out:
	if (rc == -EINTR && !*ctl_r)
		*ctl_r = pending_end(e);
	if (*ctl_r == CTL_STOP || *ctl_r == CTL_ABORT)
		rc = 0;
	if (e->migrating)
		hr_engine_migration_sender(e, NULL);
	hr_engine_disklog_keep(e, 0); /* no backup gets the writes from here on */
	if (snd.disk_writes)
		log_info(e->name,
			 "session sent %" PRIu64 " disk writes (%" PRIu64 " bytes) in %" PRIu64
			 " epochs",
			 snd.disk_writes, snd.disk_bytes, snd.nr_epochs);
	e->session_epochs_sent = snd.nr_epochs;
	hr_sender_fini(&snd);
	return rc;
}

/* Stopped on purpose, or the guest exited: the guest stops here and the
 * backup (if any) must not take over.  Returns the engine's result. */
/* A migration drops the backup: its answer to the stop, an ERROR with
 * code 0, within ms (acks and heartbeats before it are skipped).  1 if it
 * came, 0 if not (the link broke, time ran out). */
static int backup_dropped(struct hr_engine *e, int ms)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)ms * 1000000ull;
	int ctl = 0, pending = 0, done = 0;

	while (!done) {
		struct hr_frame f;
		uint64_t now = hr_now_ns();
		if (now >= deadline) {
			log_warnx(e->name, "the backup did not confirm that it dropped its copy");
			break;
		}
		int rc = hr_peer_recv(&e->peer, &f, (int)((deadline - now) / 1000000) + 1, &ctl);
		if (rc == -EINTR && ctl != CTL_MIGRATE && !pending)
			pending = ctl; /* a stop or a guest exit: handled after this */
		if (rc == -EINTR || rc == -ETIMEDOUT)
			continue;
		if (rc < 0) {
			log_warnx(e->name,
				  "the backup's link ended before it confirmed the drop (%s)",
				  hr_strerror(rc));
			break;
		}
		done = f.type == HR_FT_ERROR && ((Hr__Error *)f.msg)->code == 0;
		hr_frame_release(&f);
	}
	if (pending)
		hr_engine_ctl_send(e, pending); /* seen again by the next wait */
	return done;
}

static int end_orderly(struct hr_engine *e, int ctl)
{
	if (ctl == CTL_ABORT) {
		/* as if this process died: the guest stops, nothing more is said */
		e->ops->pause(e->vm);
		if (e->peer.fd >= 0)
			shutdown(e->peer.fd, SHUT_RDWR);
		log_warnx(e->name, "replication aborted%s",
			  e->guest_exited ? "" : "; guest stopped");
		return 0;
	}
	e->ops->pause(e->vm);
	if (e->peer.fd >= 0)
		hr_peer_send_error(&e->peer, 0,
				   e->guest_exited ? "guest exited" : "primary stopped on purpose");
	if (e->guest_exited) {
		hr_engine_role_event(e, HR_RE_GUEST_EXIT, NULL);
		return e->guest_exit_code;
	}
	hr_engine_role_event(e, HR_RE_STOP, NULL);
	hr_ha_lease_forget(&e->lease);
	return 0;
}

int hr_engine_primary_loop(struct hr_engine *e, int fd)
{
	int rc = 0, ctl = 0;

	for (;;) {
		if (fd < 0) {
			/* no backup: output as ha/failover.c decides, until one is back */
			rc = hr_engine_alone(e, &fd, &ctl);
			if (rc == HR_ALONE_STAND_DOWN) {
				rc = -HR_EPROMOTED;
				goto out;
			}
			if (rc == HR_ALONE_ENDED && ctl == CTL_MIGRATE && !e->speaking) {
				/* held: the lost backup may run the VM; a destination
				 * that released output could make two speakers */
				hr_engine_migration_refused(e, -HR_EHELD);
				continue;
			}
			if (rc == HR_ALONE_ENDED && ctl == CTL_MIGRATE) {
				fd = hr_engine_migration_open(e);
				continue; /* a failure was reported: alone again */
			}
			if (rc != HR_ALONE_RECONNECTED) {
				rc = end_orderly(e, ctl);
				goto out;
			}
		}
		rc = session(e, fd, &ctl);
		if (ctl == CTL_MIGRATED) {
			rc = -HR_EMIGRATED; /* the destination runs the VM */
			goto out;
		}
		if (e->migrating && e->guest_exited) {
			hr_engine_migration_failed(e, -ESRCH); /* nothing to move */
			rc = end_orderly(e, CTL_GUEST_EXIT);
			goto out;
		}
		if (e->migrating && ctl != CTL_STOP && ctl != CTL_ABORT && ctl != CTL_FAILED) {
			hr_engine_migration_failed(e, rc ? rc : -ECONNRESET);
			fd = -1;
			continue;
		}
		if (e->migrating) /* stopped: the destination discards (end_orderly says so) */
			hr_engine_migration_failed(e, ctl == CTL_FAILED ? rc : -ECANCELED);
		if (ctl == CTL_MIGRATE && !rc) {
			/* the backup is no longer needed: told so, it stops, never
			 * promotes - and says so; without that word it may promote
			 * (a torn link), so nothing migrates: as a lost backup */
			hr_peer_send_error(&e->peer, 0, "the primary migrates to another host");
			int dropped = backup_dropped(e, BACKUP_DROP_MS);
			hr_peer_close(&e->peer);
			hr_peer_fini(&e->peer);
			if (!dropped) {
				e->speaking = 0;
				hr_engine_migration_refused(e, -HR_ENODROP);
				fd = -1;
				continue;
			}
			/* no other copy exists now: if the migration fails before the
			 * hand-off, the guest speaks alone here (nobody else can) */
			e->speaking = 1;
			fd = hr_engine_migration_open(e);
			continue;
		}
		if (ctl == CTL_FAILED) {
			hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
			goto out;
		}
		if (!rc) {
			rc = end_orderly(e, ctl);
			goto out;
		}
		if (rc == -HR_EPROMOTED || backup_took_over(e)) {
			e->ops->pause(e->vm);
			hr_engine_role_event(e, HR_RE_TOOK_OVER,
					     "the backup took over; guest stopped here");
			rc = -HR_EPROMOTED;
			goto out;
		}
		struct hr_ha_word w = cluster_word(e);
		if (hr_ha_word_judge(&w, e->peer.last_rx_ns) == HR_HA_WORD_STALE) {
			/* the backup spoke after the cluster's word: not about this loss */
			log_warnx(e->name, "the cluster's word that the peer's copy is gone came "
					   "before the backup's last sign of life: ignored");
			__atomic_store_n(&e->cluster_release, 0, __ATOMIC_SEQ_CST);
		}
		hr_engine_role_event(e, HR_RE_BACKUP_LOST,
				     e->backup_dropped[0] ? e->backup_dropped : hr_strerror(rc));
		hr_peer_close(&e->peer);
		hr_peer_fini(&e->peer);
		/* the lost backup may hold a commit and promote - unless it was
		 * never sent a whole epoch, or it said it dropped its copy (it can
		 * no longer apply the epochs: it never runs the VM) */
		e->speaking = hr_ha_speaks_after_loss(e->speaking, e->session_epochs_sent) ||
			      e->backup_dropped[0];
		if (e->backup_dropped[0]) {
			hr_engine_set_held(e, NULL);
			pthread_mutex_lock(&e->stats_lock);
			snprintf(e->dropped_why, sizeof(e->dropped_why), "%.*s",
				 (int)sizeof(e->dropped_why) - 1, e->backup_dropped);
			pthread_mutex_unlock(&e->stats_lock);
		}
		e->backup_dropped[0] = '\0';
		if (!e->session_synced) {
			e->reprotect_failures++;
			log_warnx(e->name,
				  "the new backup never held a copy (%u session%s in a row): "
				  "next re-protection in %" PRIu64 " ms%s",
				  e->reprotect_failures, e->reprotect_failures > 1 ? "s" : "",
				  hr_ha_reprotect_delay_ms(e->cfg.reconnect_ms ? e->cfg.reconnect_ms
									       : 1000,
							   e->reprotect_failures),
				  e->speaking ? "; it was sent no whole epoch, so the guest "
						"speaks on"
					      : "");
		}
		fd = -1;
	}
out:
	hr_peer_fini(&e->peer);
	if (e->output_dropped)
		log_err(e->name, "%" PRIu64 " output bytes could not be held and were dropped",
			e->output_dropped);
	return rc;
}

int hr_engine_run_primary(struct hr_engine *e, int peer_fd)
{
	int rc;

	hr_role_init(&e->role, e->name, HR_SIDE_PRIMARY, e->cfg.on_state, e->cfg.state_opaque);
	hr_set_interrupt_fd(e->end_pipe[0]); /* stop/abort end a send blocked on the peer */
	if ((rc = primary_setup(e)) < 0) {
		hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
		close(peer_fd);
	} else {
		rc = hr_engine_primary_loop(e, peer_fd);
	}
	hr_set_interrupt_fd(-1);
	return rc;
}
