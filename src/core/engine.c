/*
 * engine.c - drives one VM's replication: the primary's live phase and
 * epoch loop, the backup's receive loop and promotion.  Each step is a
 * module of its own (see engine.h); this file holds only the order of
 * things, the waiting, and the reports to the role machine.
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
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine.h"
#include "core/handshake.h"
#include "core/outbuf.h"
#include "core/peer.h"
#include "core/planner.h"
#include "core/promote.h"
#include "core/receiver.h"
#include "core/sender.h"
#include "core/staging.h"
#include "ha/failover.h"

#define OUTPUT_CAP_BYTES (4u << 20) /* output held per VM before the guest waits */
#define UNPROTECTED_MS	 20	    /* no backup: release output this often */

struct hr_engine {
	struct hr_engine_config cfg;
	char name[64];
	const struct hr_backend_ops *ops;
	struct hr_vm *vm;
	struct hr_guestmem gm;
	const struct hr_chan_desc *chans;
	unsigned nr_chans;
	int ctl_pipe[2];
	struct hr_peer peer;
	struct hr_role role;

	/* primary */
	struct hr_outbuf *outbuf;
	struct hr_epoch_src src;
	uint64_t output_dropped;

	/* promoted: output goes straight out, offsets continue the primary's */
	pthread_mutex_t out_lock;
	uint64_t next_offset[HR_MAX_CHANNELS];

	/* both */
	volatile int guest_exited;
	int guest_exit_code;
	pthread_mutex_t stats_lock;
	struct hr_epoch_stats last;
	uint64_t nr_epochs;
};

enum {
	CTL_STOP = 's',
	CTL_ABORT = 'a',
	CTL_PROMOTE = 'p',
	CTL_GUEST_EXIT = 'x',
	CTL_OUTPUT_FULL = 'f'
};

static void ctl_send(struct hr_engine *e, char c)
{
	int saved = errno;
	(void)!write(e->ctl_pipe[1], &c, 1);
	errno = saved;
}

void hr_engine_stop(struct hr_engine *e)
{
	ctl_send(e, CTL_STOP);
}

void hr_engine_abort(struct hr_engine *e)
{
	ctl_send(e, CTL_ABORT);
}

void hr_engine_promote(struct hr_engine *e)
{
	ctl_send(e, CTL_PROMOTE);
}

void hr_engine_stats(struct hr_engine *e, struct hr_epoch_stats *last_r, uint64_t *nr_epochs_r)
{
	pthread_mutex_lock(&e->stats_lock);
	if (last_r)
		*last_r = e->last;
	if (nr_epochs_r)
		*nr_epochs_r = e->nr_epochs;
	pthread_mutex_unlock(&e->stats_lock);
}

enum hr_role_state hr_engine_state(struct hr_engine *e)
{
	return e->role.state;
}

static void epoch_done(struct hr_engine *e, const struct hr_epoch_stats *st)
{
	pthread_mutex_lock(&e->stats_lock);
	e->last = *st;
	e->nr_epochs++;
	pthread_mutex_unlock(&e->stats_lock);
	if (e->cfg.on_epoch)
		e->cfg.on_epoch(e->cfg.epoch_opaque, st);
}

static void role_event(struct hr_engine *e, enum hr_role_event ev, const char *why)
{
	hr_role_event(&e->role, ev, why);
}

int hr_engine_new(struct hr_engine **eng_r, const struct hr_engine_config *cfg)
{
	struct hr_engine *e = calloc(1, sizeof(*e));
	*eng_r = NULL;
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	snprintf(e->name, sizeof(e->name), "%s", cfg->name ? cfg->name : "vm");
	e->cfg.name = e->name;
	e->ops = cfg->ops;
	e->peer.fd = -1;
	pthread_mutex_init(&e->stats_lock, NULL);
	pthread_mutex_init(&e->out_lock, NULL);
	if (pipe2(e->ctl_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int rc = -errno;
		free(e);
		return rc;
	}
	*eng_r = e;
	return 0;
}

void hr_engine_free(struct hr_engine *e)
{
	if (!e)
		return;
	if (e->vm || e->ops)
		e->ops->close(e->vm);
	hr_outbuf_free(e->outbuf);
	hr_dirtyset_free(e->src.dirty);
	free(e->src.gfns);
	hr_capture_fini(&e->src.capture);
	close(e->ctl_pipe[0]);
	close(e->ctl_pipe[1]);
	pthread_mutex_destroy(&e->stats_lock);
	pthread_mutex_destroy(&e->out_lock);
	free(e);
}

/* ---- guest callbacks (vCPU threads) ---- */

static int primary_emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	int rc = hr_outbuf_append(e->outbuf, chan, buf, len);
	if (rc == -ENOBUFS) {
		ctl_send(e, CTL_OUTPUT_FULL); /* checkpoint early: the ack makes room */
		if (chan < e->nr_chans && hr_chan_is_records(&e->chans[chan]))
			return rc; /* a NIC drops the frame, as on a congested link */
		rc = hr_outbuf_append_wait(e->outbuf, chan, buf, len, 1000);
	}
	if (rc < 0)
		__atomic_add_fetch(&e->output_dropped, len, __ATOMIC_RELAXED);
	return rc;
}

static int promoted_emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (chan >= HR_MAX_CHANNELS)
		return -EINVAL;
	pthread_mutex_lock(&e->out_lock); /* offset order = sink order */
	uint64_t off = e->next_offset[chan];
	e->next_offset[chan] += len;
	if (e->cfg.output_sink)
		e->cfg.output_sink(e->cfg.output_opaque, chan, off, buf, len);
	pthread_mutex_unlock(&e->out_lock);
	return 0;
}

static void on_guest_exit(void *opaque, enum hr_exit_reason why, int code)
{
	struct hr_engine *e = opaque;
	if (why == HR_EXIT_ERROR)
		log_err(e->name, "guest stopped on a VM error: %s",
			e->ops->last_error ? e->ops->last_error(e->vm) : "unknown");
	else
		log_info(e->name, "guest exited (%s, code %d)",
			 why == HR_EXIT_DEBUG_PORT ? "debug-exit port"
			 : why == HR_EXIT_SHUTDOWN ? "shutdown"
						   : "halt",
			 code);
	e->guest_exit_code = code;
	e->guest_exited = (int)why;
	ctl_send(e, CTL_GUEST_EXIT);
}

static int release_sink(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (e->cfg.output_sink)
		e->cfg.output_sink(e->cfg.output_opaque, chan, offset, buf, len);
	return 0;
}

static int open_vm(struct hr_engine *e, struct hr_vm_config *vc)
{
	int rc = e->ops->open(&e->vm, vc);
	if (!rc)
		rc = hr_guestmem_init(&e->gm, e->ops, e->vm);
	if (!rc)
		rc = e->ops->channels(e->vm, &e->chans, &e->nr_chans);
	if (!rc && (!e->nr_chans || e->nr_chans > HR_MAX_CHANNELS))
		rc = -EINVAL;
	if (rc < 0)
		log_err(e->name, "cannot build the VM: %s%s%s", hr_strerror(rc),
			e->vm && e->ops->last_error ? ": " : "",
			e->vm && e->ops->last_error ? e->ops->last_error(e->vm) : "");
	return rc;
}

/* ---- primary ---- */

/* Wait for the ack of the oldest epoch in flight; the guest runs meanwhile.
 * A backup that is merely silent (no FIN, no reset: a partition, a hung
 * host) may be promoting itself right now, so output stays held for as
 * long as that lasts: releasing it could make two hosts speak for the VM
 * (contract 4).  Only an ended connection counts as the backup's death. */
static int wait_ack(struct hr_engine *e, struct hr_sender *snd, uint64_t *ack_ns_r, int *ctl_r)
{
	int timeout_ms = (int)(e->cfg.silence_ms ? e->cfg.silence_ms * 4 : 10000);
	int silent = 0, rc;

	for (;;) {
		struct hr_frame f;
		rc = hr_peer_recv(&e->peer, &f, timeout_ms, ctl_r);
		if (rc == -EINTR && *ctl_r == CTL_OUTPUT_FULL) {
			*ctl_r = 0;
			continue;
		}
		if (rc == -ETIMEDOUT) {
			if (!silent++) {
				char why[96];
				snprintf(why, sizeof(why),
					 "no ack for epoch %" PRIu64 " in %d ms; output held",
					 hr_sender_oldest(snd), timeout_ms);
				role_event(e, HR_RE_BACKUP_SILENT, why);
			}
			continue;
		}
		if (rc < 0)
			return rc;
		if (f.type == HR_FT_ACK) {
			uint64_t acked = ((Hr__Ack *)f.msg)->epoch;
			hr_frame_release(&f);
			if (silent)
				role_event(e, HR_RE_BACKUP_ANSWERED, NULL);
			rc = hr_sender_ack(snd, acked, NULL);
			*ack_ns_r = hr_now_ns();
			return rc;
		}
		if (f.type == HR_FT_ERROR) {
			Hr__Error *er = (Hr__Error *)f.msg;
			log_err(e->name, "backup reports: %s", er->text ? er->text : "error");
			rc = er->code < 0 ? er->code : -HR_EPROTO;
			hr_frame_release(&f);
			return rc;
		}
		hr_frame_release(&f); /* heartbeats etc. */
	}
}

/* One epoch: take it, send it, wait for its ack, release its output. */
static int checkpoint(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch, int *ctl_r)
{
	struct hr_epoch ep;
	uint64_t ack_ns;
	int rc;

	*ctl_r = 0;
	if ((rc = hr_epoch_take(&e->src, epoch, &ep)) < 0)
		return rc;
	uint64_t sent_t0 = hr_now_ns();
	rc = hr_sender_send_epoch(snd, &ep);
	struct hr_epoch_stats st = ep.st;
	hr_epoch_release(&ep); /* before release: it points into the outbuf */
	if (rc < 0)
		return rc;
	if ((rc = wait_ack(e, snd, &ack_ns, ctl_r)) < 0)
		return rc;
	st.ack_us = (ack_ns - sent_t0) / 1000;
	hr_outbuf_release(e->outbuf, epoch, release_sink, e);
	epoch_done(e, &st);
	return 0;
}

/* The live phase: pages go while the guest runs, as the planner says. */
static int live_phase(struct hr_engine *e, struct hr_sender *snd)
{
	struct hr_planner pl;
	uint64_t n;
	int rc;

	hr_planner_init(&pl);
	for (;;) {
		if (pl.round > 0) {
			/* what the guest wrote meanwhile; without live fetch, pause briefly */
			int live = e->ops->features & HR_BF_DIRTY_LIVE;
			if (!live)
				e->ops->pause(e->vm);
			rc = e->ops->dirty_fetch(e->vm, hr_dirtyset_bits(e->src.dirty));
			if (!live)
				e->ops->resume(e->vm);
			if (rc < 0)
				return rc;
		}
		if (!hr_planner_next(&pl, &e->gm, e->src.dirty, e->src.gfns, &n))
			break;
		if ((rc = hr_sender_send_live(snd, &e->gm, e->src.gfns, n)) < 0)
			return rc;
		log_debug(e->name, "live round %u: %" PRIu64 " pages", pl.round - 1, n);
	}
	log_info(e->name, "live phase: %" PRIu64 " pages (%" PRIu64 " MiB) in %u rounds",
		 pl.pages_sent, snd->live_bytes >> 20, pl.round);
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

/* No backup: the guest runs on; output is released every few ms.
 * Returns 1 when the guest exited, 0 on stop / abort. */
static int run_unprotected(struct hr_engine *e)
{
	struct hr_outbuf_stats s;

	hr_peer_close(&e->peer);
	hr_outbuf_get_stats(e->outbuf, &s);
	uint64_t epoch = s.open_epoch;
	if (epoch)
		hr_outbuf_release(e->outbuf, epoch - 1, release_sink, e);
	for (;;) {
		int ctl = hr_peer_wait(&e->peer, UNPROTECTED_MS);
		if (ctl == CTL_ABORT) {
			e->ops->pause(e->vm); /* as a crash: nothing more leaves */
			return 0;
		}
		hr_outbuf_seal(e->outbuf, epoch);
		hr_outbuf_release(e->outbuf, epoch, release_sink, e);
		epoch++;
		if (ctl == CTL_STOP || ctl == CTL_GUEST_EXIT)
			return ctl == CTL_GUEST_EXIT;
	}
}

/* Sleep until the next epoch is due; returns a control byte that ends the
 * loop (stop, abort), or 0 to checkpoint now. */
static int wait_next_epoch(struct hr_engine *e)
{
	uint64_t due = e->src.last_pause_ns + e->cfg.epoch_us * 1000ull;
	for (;;) {
		uint64_t now = hr_now_ns();
		if (now >= due)
			return 0;
		struct pollfd p = {e->ctl_pipe[0], POLLIN, 0};
		if (poll(&p, 1, (int)((due - now + 999999) / 1000000)) <= 0)
			continue;
		char c;
		if (read(e->ctl_pipe[0], &c, 1) != 1)
			continue;
		if (c == CTL_STOP || c == CTL_ABORT)
			return c;
		if (c == CTL_OUTPUT_FULL || c == CTL_GUEST_EXIT)
			return 0; /* checkpoint now */
	}
}

static int primary_setup(struct hr_engine *e)
{
	struct hr_vm_config vc = e->cfg.vm;
	int rc;

	vc.name = e->name;
	vc.emit = primary_emit;
	vc.emit_opaque = e;
	vc.on_exit = on_guest_exit;
	vc.exit_opaque = e;
	if ((rc = open_vm(e, &vc)) < 0)
		return rc;
	if ((rc = hr_outbuf_new(&e->outbuf, e->name, e->chans, e->nr_chans, OUTPUT_CAP_BYTES, 0)) <
	    0)
		return rc;
	if ((rc = hr_dirtyset_new(&e->src.dirty, e->gm.nr_gfns)) < 0)
		return rc;
	e->src.gfns = malloc((e->gm.nr_gfns ? e->gm.nr_gfns : 1) * sizeof(uint64_t));
	if (!e->src.gfns)
		return -ENOMEM;
	e->src.vm = e->name;
	e->src.ops = e->ops;
	e->src.hvm = e->vm;
	e->src.gm = &e->gm;
	e->src.outbuf = e->outbuf;
	return 0;
}

int hr_engine_run_primary(struct hr_engine *e, int peer_fd)
{
	struct hr_sender snd;
	int rc, ctl = 0;

	hr_role_init(&e->role, e->name, HR_SIDE_PRIMARY, e->cfg.on_state, e->cfg.state_opaque);
	hr_peer_init(&e->peer, e->name, peer_fd, e->ctl_pipe[0]);
	hr_sender_init(&snd, e->name, peer_fd);
	if ((rc = primary_setup(e)) < 0)
		goto failed;
	rc = hr_handshake_primary(&e->peer, e->ops->name, &e->cfg.vm, e->gm.regions,
				  e->gm.nr_regions, e->cfg.epoch_us, &ctl);
	if (rc < 0) {
		log_err(e->name, "handshake with the backup failed: %s", hr_strerror(rc));
		goto failed;
	}
	role_event(e, HR_RE_CONNECTED, "copying memory while the guest runs");
	if ((rc = e->ops->dirty_start(e->vm)) < 0 || (rc = e->ops->resume(e->vm)) < 0)
		goto failed;
	if ((rc = live_phase(e, &snd)) < 0)
		goto lost;

	for (uint64_t epoch = 0;; epoch++) {
		rc = checkpoint(e, &snd, epoch, &ctl);
		if (epoch == 0 && !rc)
			role_event(e, HR_RE_SYNCED, "the backup holds a complete copy (epoch 0)");
		if (ctl == CTL_STOP || ctl == CTL_ABORT)
			goto stopped;
		if (rc == -EINTR && ctl == CTL_GUEST_EXIT)
			rc = 0; /* ship the final epoch below, then stop */
		if (rc < 0)
			goto lost;
		if (e->guest_exited || (e->cfg.max_epochs && epoch + 1 >= e->cfg.max_epochs))
			goto stopped;
		if ((ctl = wait_next_epoch(e)) != 0)
			goto stopped;
	}
stopped:
	rc = 0;
	if (ctl == CTL_ABORT) {
		/* as if this process died: the guest stops, nothing more is said */
		e->ops->pause(e->vm);
		if (e->peer.fd >= 0)
			shutdown(e->peer.fd, SHUT_RDWR);
		log_warnx(e->name, "replication aborted%s",
			  e->guest_exited ? "" : "; guest stopped");
		goto out;
	}
	/* orderly end: the backup must not take over */
	hr_peer_send_error(&e->peer, 0,
			   e->guest_exited ? "guest exited" : "primary stopped on purpose");
	if (e->guest_exited) {
		role_event(e, HR_RE_GUEST_EXIT, NULL);
		rc = e->guest_exit_code;
	} else {
		role_event(e, HR_RE_STOP, NULL);
	}
	goto out;
lost:
	if (rc == -HR_EPROMOTED || backup_took_over(e)) {
		e->ops->pause(e->vm);
		role_event(e, HR_RE_TOOK_OVER, "the backup took over; guest stopped here");
		rc = -HR_EPROMOTED;
		goto out;
	}
	role_event(e, HR_RE_BACKUP_LOST, hr_strerror(rc));
	if (run_unprotected(e) == 1) {
		role_event(e, HR_RE_GUEST_EXIT, NULL);
		rc = e->guest_exit_code;
	} else {
		role_event(e, HR_RE_STOP, NULL);
		rc = 0;
	}
	goto out;
failed:
	role_event(e, HR_RE_ERROR, hr_strerror(rc));
out:
	hr_sender_fini(&snd);
	hr_peer_fini(&e->peer);
	if (e->output_dropped)
		log_err(e->name, "%" PRIu64 " output bytes could not be held and were dropped",
			e->output_dropped);
	return rc;
}

/* ---- backup ---- */

static int backup_setup(struct hr_engine *e, struct hr_staging **st_r)
{
	struct hr_hello_info h;
	int ctl, rc;

	rc = hr_handshake_accept(&e->peer, &h, &ctl);
	if (h.vm[0]) {
		snprintf(e->name, sizeof(e->name), "%s", h.vm);
		hr_role_set_vm(&e->role, e->name);
	}
	if (!rc) {
		struct hr_vm_config vc = e->cfg.vm;
		e->ops = hr_backend_find(h.backend);
		vc.name = e->name;
		vc.mem_bytes = h.mem_bytes;
		vc.nr_vcpus = h.nr_vcpus;
		vc.kernel_path = NULL;
		vc.emit = promoted_emit;
		vc.emit_opaque = e;
		vc.on_exit = on_guest_exit;
		vc.exit_opaque = e;
		if (h.epoch_us)
			e->cfg.epoch_us = h.epoch_us;
		e->cfg.vm.mem_bytes = h.mem_bytes;
		e->cfg.vm.nr_vcpus = h.nr_vcpus;
		rc = open_vm(e, &vc);
		if (!rc && e->gm.batched) {
			/* staging commits through host mappings of the replica */
			log_err(e->name, "a replica needs host-mapped memory; this backend's "
					 "batched mapping is supported on the primary side only");
			rc = -ENOTSUP;
		}
		if (!rc && (rc = hr_handshake_check_layout(&h, e->gm.regions, e->gm.nr_regions)))
			log_err(e->name, "primary's memory layout differs from the replica's");
		if (!rc)
			rc = hr_staging_new(st_r, e->name, e->gm.regions, e->gm.nr_regions, 0);
	}
	if (rc != -EINTR) {
		int arc = hr_handshake_answer(&e->peer, rc);
		rc = rc ? rc : arc;
	}
	return rc;
}

/* Promote and run the guest here until stop or guest exit. */
static int run_promoted(struct hr_engine *e, struct hr_staging *st)
{
	const void *state;
	size_t len;
	uint64_t t0 = hr_now_ns();
	int rc;

	hr_staging_committed_state(st, &state, &len);
	rc = hr_promote(e->name, e->ops, e->vm, state, len, e->cfg.output_sink,
			e->cfg.output_opaque, e->next_offset);
	if (rc < 0)
		return rc;
	char why[96];
	snprintf(why, sizeof(why), "guest running here from epoch %" PRIu64 " (%.1f ms)",
		 hr_staging_next_epoch(st) - 1, (hr_now_ns() - t0) / 1e6);
	role_event(e, HR_RE_PROMOTED, why);
	for (;;) {
		int w = hr_peer_wait(&e->peer, -1);
		if (w == CTL_STOP || w == CTL_ABORT) {
			role_event(e, HR_RE_STOP, NULL);
			return 0;
		}
		if (w == CTL_GUEST_EXIT) {
			role_event(e, HR_RE_GUEST_EXIT, NULL);
			return e->guest_exit_code;
		}
	}
}

int hr_engine_run_backup(struct hr_engine *e, int peer_fd)
{
	struct hr_staging *st = NULL;
	struct hr_receiver rx;
	struct hr_ha_monitor ha = {.silence_ms = e->cfg.silence_ms,
				   .auto_promote = e->cfg.auto_promote};
	int rc, ended = 0;

	hr_role_init(&e->role, e->name, HR_SIDE_BACKUP, e->cfg.on_state, e->cfg.state_opaque);
	hr_peer_init(&e->peer, e->name, peer_fd, e->ctl_pipe[0]);
	if ((rc = backup_setup(e, &st)) < 0) {
		log_err(e->name, "refusing replication stream: %s", hr_strerror(rc));
		role_event(e, HR_RE_ERROR, hr_strerror(rc));
		goto out;
	}
	role_event(e, HR_RE_CONNECTED, NULL);
	hr_receiver_init(&rx, e->name, peer_fd, &e->gm, st);
	hr_frame_reader_set_placer(&e->peer.rd, hr_receiver_place, &rx);
	ha.vm = e->name;
	log_info(e->name, "backup: receiving (%" PRIu64 " MiB, %u vCPU)", e->cfg.vm.mem_bytes >> 20,
		 e->cfg.vm.nr_vcpus);
	hr_ha_heard(&ha, hr_now_ns());

	for (;;) {
		struct hr_frame f;
		int r = ended ? 0 : hr_frame_reader_next(&e->peer.rd, &f);
		if (r == 1) {
			hr_ha_heard(&ha, hr_now_ns());
			r = hr_receiver_frame(&rx, &f);
			hr_frame_release(&f);
			if (r == HR_RX_END) {
				role_event(e, HR_RE_STOP, "the primary stopped on purpose");
				rc = 0;
				goto out;
			}
			if (r == HR_RX_COMMITTED) {
				ha.have_commit = 1;
				if (rx.nr_epochs == 1)
					role_event(e, HR_RE_SYNCED, "epoch 0 committed");
				epoch_done(e, &rx.last);
			} else if (r < 0) {
				ended = 1;
			}
			continue;
		}
		if (r < 0 && !ended) {
			log_err(e->name, "replication stream broken: %s", hr_strerror(r));
			ended = 1;
		}
		uint64_t now = hr_now_ns();
		enum hr_ha_verdict v = hr_ha_decide(&ha, now, ended);
		if (v == HR_HA_GIVE_UP) {
			role_event(e, HR_RE_ERROR, ha.why);
			rc = -ECONNRESET;
			goto out;
		}
		if (v == HR_HA_PROMOTE) {
			role_event(e, HR_RE_PRIMARY_LOST, ha.why);
			goto promote;
		}
		int w = hr_peer_wait(&e->peer, ended ? -1 : hr_ha_poll_ms(&ha, now));
		if (w == CTL_STOP || w == CTL_ABORT) {
			role_event(e, HR_RE_STOP, NULL);
			rc = 0;
			goto out;
		}
		if (w == CTL_PROMOTE) {
			if (!ha.have_commit) {
				log_err(e->name, "failover refused: no complete epoch yet");
				continue;
			}
			role_event(e, HR_RE_OPERATOR_FAILOVER, "operator");
			goto promote;
		}
		if (w == 0 && !ended) {
			ssize_t n = hr_peer_fill(&e->peer);
			if (n == 0 && rx.in_epoch)
				log_warnx(e->name, "stream ended inside an epoch: discarded");
			if (n == 0 || (n < 0 && n != -EAGAIN))
				ended = 1;
		}
	}

promote:
	hr_receiver_abandon(&rx);
	if (!ended)
		hr_peer_send_error(&e->peer, -HR_EPROMOTED, "the backup has taken over");
	hr_peer_close(&e->peer);
	if ((rc = run_promoted(e, st)) < 0)
		role_event(e, HR_RE_ERROR, hr_strerror(rc));
out:
	hr_staging_free(st);
	hr_peer_fini(&e->peer);
	return rc;
}
