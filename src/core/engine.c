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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "disk/image.h"
#include "ha/standdown.h"

void hr_engine_ctl_send(struct hr_engine *e, char c)
{
	int saved = errno;
	(void)!write(e->ctl_pipe[1], &c, 1);
	errno = saved;
}

/* From a producer (vCPU or device thread), once per epoch at most: one
 * write, however many frames follow it in the same epoch. */
static void net_output_held(void *opaque)
{
	struct hr_engine *e = opaque;
	int saved = errno;
	uint64_t one = 1;
	(void)!write(e->out_wake_fd, &one, sizeof(one));
	errno = saved;
}

void hr_engine_watch_any_output(struct hr_engine *e, int on)
{
	if (e->outbuf && e->out_wake_fd >= 0)
		hr_outbuf_set_any_cb(e->outbuf, on ? net_output_held : NULL, e);
}

void hr_engine_watch_net_output(struct hr_engine *e, struct hr_outbuf *ob)
{
	if (!e->cfg.min_epoch_us || e->out_wake_fd < 0)
		return;
	hr_outbuf_set_net_cb(ob, net_output_held, e);
	log_info(e->name,
		 "output-triggered epochs: an epoch holding a network frame ends once %" PRIu64
		 " us old (epochs %" PRIu64 " us otherwise)",
		 e->cfg.min_epoch_us, e->cfg.epoch_us);
}

/* Stop and abort must not wait for a peer that stopped reading. */
static void end_requested(struct hr_engine *e)
{
	int saved = errno;
	char c = 'e';
	(void)!write(e->end_pipe[1], &c, 1);
	errno = saved;
}

void hr_engine_stop(struct hr_engine *e)
{
	hr_engine_ctl_send(e, CTL_STOP);
	end_requested(e);
}

void hr_engine_abort(struct hr_engine *e)
{
	hr_engine_ctl_send(e, CTL_ABORT);
	end_requested(e);
}

void hr_engine_promote(struct hr_engine *e)
{
	hr_engine_ctl_send(e, CTL_PROMOTE);
}

void hr_engine_cluster_release(struct hr_engine *e)
{
	uint64_t one = 1, now = hr_now_ns();
	__atomic_store_n(&e->cluster_release_ns, now, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->cluster_release, 1, __ATOMIC_SEQ_CST);
	/* not the control pipe: a byte there interrupts a session's sends */
	(void)!write(e->wake_fd, &one, sizeof(one));
	/* A backup silent for two heartbeats already (a node fenced behind a
	 * cut link leaves no FIN, no reset) is hung up on: a send blocked on it
	 * ends, and with it the session - the word then lets the guest speak
	 * alone.  A primary's sessions only (a backup has no outbuf). */
	int fd = __atomic_load_n(&e->peer.fd, __ATOMIC_SEQ_CST);
	uint64_t rx = __atomic_load_n(&e->peer.last_rx_ns, __ATOMIC_SEQ_CST);
	if (hr_ha_hang_up_on_word(fd >= 0 && __atomic_load_n(&e->outbuf, __ATOMIC_ACQUIRE), rx, now,
				  hr_engine_heartbeat_ms(e)))
		shutdown(fd, SHUT_RDWR);
}

void hr_engine_demote(struct hr_engine *e)
{
	uint64_t one = 1;
	__atomic_store_n(&e->demote_req, 1, __ATOMIC_SEQ_CST);
	(void)!write(e->wake_fd, &one, sizeof(one));
}

void hr_engine_resume(struct hr_engine *e)
{
	uint64_t one = 1;
	__atomic_store_n(&e->resume_req, 1, __ATOMIC_SEQ_CST);
	(void)!write(e->wake_fd, &one, sizeof(one));
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

const struct hr_role *hr_engine_role(const struct hr_engine *e)
{
	return &e->role;
}

void hr_engine_epoch_done(struct hr_engine *e, const struct hr_epoch_stats *st)
{
	pthread_mutex_lock(&e->stats_lock);
	e->last = *st;
	e->nr_epochs++;
	pthread_mutex_unlock(&e->stats_lock);
	if (e->cfg.on_epoch)
		e->cfg.on_epoch(e->cfg.epoch_opaque, st);
}

void hr_engine_role_event(struct hr_engine *e, enum hr_role_event ev, const char *why)
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
	e->lease = (struct hr_ha_lease){.addr = cfg->witness,
					.tls = cfg->witness_tls,
					.vm = e->name,
					.node = cfg->node,
					.peer_node = cfg->peer_node ? cfg->peer_node : "",
					.lease_ms = cfg->lease_ms ? cfg->lease_ms : 1000,
					.standing = cfg->witness ? HR_HA_W_UNKNOWN : HR_HA_W_NONE};
	pthread_mutex_init(&e->stats_lock, NULL);
	pthread_mutex_init(&e->out_lock, NULL);
	e->ctl_pipe[0] = e->end_pipe[0] = e->out_wake_fd = e->wake_fd = -1;
	for (unsigned i = 0; i < HR_MAX_DISKS; i++)
		e->dt.img[i].fd = -1;
	if (pipe2(e->ctl_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(e->end_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (e->out_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    (e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		int rc = -errno;
		if (e->out_wake_fd >= 0)
			close(e->out_wake_fd);
		if (e->ctl_pipe[0] >= 0) {
			close(e->ctl_pipe[0]);
			close(e->ctl_pipe[1]);
		}
		if (e->end_pipe[0] >= 0) {
			close(e->end_pipe[0]);
			close(e->end_pipe[1]);
		}
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
	hr_ha_lease_fini(&e->lease);
	hr_outbuf_free(e->outbuf);
	hr_dirtyset_free(e->src.dirty);
	free(e->src.gfns);
	hr_capture_fini(&e->src.capture);
	hr_disk_batch_fini(&e->src.disk);
	hr_disklog_fini(&e->disklog);
	hr_disk_target_close(&e->dt);
	close(e->ctl_pipe[0]);
	close(e->ctl_pipe[1]);
	close(e->end_pipe[0]);
	close(e->end_pipe[1]);
	close(e->out_wake_fd);
	close(e->wake_fd);
	pthread_mutex_destroy(&e->stats_lock);
	pthread_mutex_destroy(&e->out_lock);
	free(e);
}

/* ---- disks ---- */

int hr_engine_disk_write(void *opaque, unsigned disk, uint64_t off, const void *buf, size_t len,
			 unsigned flags)
{
	struct hr_engine *e = opaque;
	if (!__atomic_load_n(&e->disklog_on, __ATOMIC_ACQUIRE))
		return 0; /* a replica's guest does not run; a promoted one is set up first */
	int rc = hr_disklog_write(&e->disklog, disk, off, buf, len, flags);
	if (rc == -ENOBUFS && e->disklog.nr_refused == 1)
		log_warnx(e->name,
			  "disk writes of this epoch exceed %" PRIu64
			  " bytes: the guest's writes fail until the checkpoint",
			  e->disklog.hard_bytes);
	return rc;
}

int hr_engine_disk_sizes(struct hr_engine *e)
{
	for (unsigned i = 0; i < e->cfg.vm.nr_disks; i++) {
		struct hr_image img;
		char why[160] = "";
		int rc = hr_image_open(&img, e->cfg.vm.disks[i].path, 1, why, sizeof(why));
		if (rc < 0) {
			snprintf(e->error, sizeof(e->error), "disk %u (%s): %s", i,
				 e->cfg.vm.disks[i].path, why[0] ? why : hr_strerror(rc));
			log_err(e->name, "%s", e->error);
			return rc;
		}
		e->disk_sizes[i] = img.bytes;
		hr_image_close(&img);
	}
	return 0;
}

void hr_engine_disklog_keep(struct hr_engine *e, int on)
{
	if (!__atomic_load_n(&e->disklog_on, __ATOMIC_ACQUIRE))
		return;
	uint64_t lost = hr_disklog_set_discard(&e->disklog, !on);
	if (on && lost) /* not lost: the synchronisation finds their blocks */
		log_info(e->name,
			 "%" PRIu64 " disk writes were made without a backup: the new backup's "
			 "images get them in the disk synchronisation",
			 lost);
}

/* ---- guest callbacks (vCPU threads) ---- */

int hr_engine_primary_emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	int rc = hr_outbuf_append(e->outbuf, chan, buf, len);
	if (rc == -ENOBUFS) {
		hr_engine_ctl_send(e, CTL_OUTPUT_FULL); /* checkpoint early: the ack makes room */
		if (chan < e->nr_chans && hr_chan_is_records(&e->chans[chan]))
			return rc; /* a NIC drops the frame, as on a congested link */
		rc = hr_outbuf_append_wait(e->outbuf, chan, buf, len, 1000);
		/* Speaking alone, the outbuf is released every few ms: full, it
		 * holds what a sink at its bound refuses (hr_engine_release_sink).
		 * The guest waits for it - until the engine is about to pause the
		 * guest (emit_may_wait cleared first), which this wait must not
		 * hold up: then the append fails as above. */
		while (rc == -ENOBUFS && __atomic_load_n(&e->emit_may_wait, __ATOMIC_ACQUIRE) &&
		       !e->guest_exited)
			rc = hr_outbuf_append_wait(e->outbuf, chan, buf, len, 100);
	}
	if (rc < 0)
		__atomic_add_fetch(&e->output_dropped, len, __ATOMIC_RELAXED);
	return rc;
}

/* A promoted guest's output goes straight to the sink: while the sink is
 * at its bound the emitting vCPU waits here, and the guest with it.  Stop,
 * abort and guest exit end the wait (they pause the guest, which waits for
 * its vCPUs): the bytes then go to the sink beyond its bound, held there,
 * not dropped. */
static void promoted_wait_room(struct hr_engine *e, unsigned chan)
{
	while (e->cfg.output_room(e->cfg.output_opaque, chan, 100) < 0) {
		struct pollfd p = {e->end_pipe[0], POLLIN, 0};
		if (e->guest_exited || poll(&p, 1, 0) > 0)
			return;
	}
}

int hr_engine_promoted_emit(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (chan >= HR_MAX_CHANNELS)
		return -EINVAL;
	if (__atomic_load_n(&e->outbuf, __ATOMIC_ACQUIRE))
		return hr_engine_primary_emit(opaque, chan, buf, len); /* a primary again */
	if (e->cfg.output_room)
		promoted_wait_room(e, chan);
	pthread_mutex_lock(&e->out_lock); /* offset order = sink order */
	if (__atomic_load_n(&e->outbuf, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&e->out_lock); /* it became one just now */
		return hr_engine_primary_emit(opaque, chan, buf, len);
	}
	uint64_t off = e->next_offset[chan];
	e->next_offset[chan] += len;
	hr_engine_deliver(e, chan, off, buf, len);
	pthread_mutex_unlock(&e->out_lock);
	return 0;
}

void hr_engine_on_guest_exit(void *opaque, enum hr_exit_reason why, int code)
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
	hr_engine_ctl_send(e, CTL_GUEST_EXIT);
}

/* The first new output of a promoted guest: the failover's timeline. */
static void failover_output(struct hr_engine *e, unsigned chan, uint64_t offset, size_t len)
{
	if (chan >= HR_MAX_CHANNELS || offset + len <= e->fo.new_from[chan] ||
	    !__atomic_exchange_n(&e->fo.armed, 0, __ATOMIC_ACQ_REL))
		return;
	uint64_t now = hr_now_ns(), t0 = e->fo.last_rx_ns;
#define FO_MS(t) ((t) > t0 ? ((t)-t0) / 1e6 : 0.0)
	log_info(e->name,
		 "failover timeline (ms after the primary's last byte): detected %.1f (%s), "
		 "decided %.1f, state loaded %.1f, guest resumed %.1f, first new output %.1f; "
		 "monotonic_ns last_rx=%" PRIu64 " detect=%" PRIu64 " output=%" PRIu64,
		 FO_MS(e->fo.detect_ns), e->fo.how ? e->fo.how : "?", FO_MS(e->fo.decide_ns),
		 FO_MS(e->fo.loaded_ns), FO_MS(e->fo.resumed_ns), FO_MS(now), t0, e->fo.detect_ns,
		 now);
#undef FO_MS
}

void hr_engine_deliver(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (__atomic_load_n(&e->fo.armed, __ATOMIC_ACQUIRE))
		failover_output(e, chan, offset, len);
	if (e->cfg.output_sink)
		e->cfg.output_sink(e->cfg.output_opaque, chan, offset, buf, len);
	if (!e->ops || !e->ops->output_deliver || !e->vm || chan >= e->nr_chans ||
	    !hr_chan_is_records(&e->chans[chan]))
		return;
	int rc = e->ops->output_deliver(e->vm, chan, buf, len);
	if (rc < 0 && !__atomic_fetch_add(&e->deliver_lost, 1, __ATOMIC_RELAXED))
		log_warnx(e->name,
			  "released %s output could not leave: %s (first loss; "
			  "further ones are counted)",
			  e->chans[chan].name, hr_strerror(rc));
}

int hr_engine_release_sink(void *opaque, unsigned chan, uint64_t offset, const void *buf,
			   size_t len)
{
	struct hr_engine *e = opaque;
	/* A sink at its bound: this record and the ones after it stay held in
	 * the outbuf, in order, for the next release; once the outbuf is full
	 * the guest's appends wait (hr_engine_primary_emit). */
	if (e->cfg.output_room && e->cfg.output_room(e->cfg.output_opaque, chan, 0) < 0)
		return -EAGAIN;
	hr_engine_deliver(opaque, chan, offset, buf, len);
	return 0;
}

int hr_engine_open_vm(struct hr_engine *e, struct hr_vm_config *vc)
{
	int rc = e->ops->open(&e->vm, vc);
	if (!rc)
		rc = hr_guestmem_init(&e->gm, e->ops, e->vm);
	if (!rc)
		rc = e->ops->channels(e->vm, &e->chans, &e->nr_chans);
	if (!rc && (!e->nr_chans || e->nr_chans > HR_MAX_CHANNELS))
		rc = -EINVAL;
	if (rc < 0) {
		snprintf(e->error, sizeof(e->error), "cannot build the VM: %s%s%s", hr_strerror(rc),
			 e->vm && e->ops->last_error ? ": " : "",
			 e->vm && e->ops->last_error ? e->ops->last_error(e->vm) : "");
		log_err(e->name, "%s", e->error);
	}
	return rc;
}

const char *hr_engine_error(const struct hr_engine *e)
{
	return e->error;
}

uint64_t hr_engine_heartbeat_ms(const struct hr_engine *e)
{
	uint64_t ms = e->cfg.heartbeat_ms;
	if (!ms)
		ms = e->cfg.silence_ms ? e->cfg.silence_ms / HR_HEARTBEATS_PER_TIMEOUT : 250;
	return ms < 10 ? 10 : ms;
}

void hr_engine_set_held(struct hr_engine *e, const char *why)
{
	pthread_mutex_lock(&e->stats_lock);
	if (why && why[0] && !e->held_why[0])
		e->held_since_ns = hr_now_ns();
	snprintf(e->held_why, sizeof(e->held_why), "%s", why ? why : "");
	pthread_mutex_unlock(&e->stats_lock);
}

uint64_t hr_engine_max_pause_ms(const struct hr_engine *e)
{
	return e->cfg.max_pause_ms ? e->cfg.max_pause_ms : HR_MAX_PAUSE_MS;
}

void hr_engine_liveness(struct hr_engine *e, struct hr_engine_liveness *l)
{
	uint64_t now = hr_now_ns();
	uint64_t since = __atomic_load_n(&e->role.since_ns, __ATOMIC_RELAXED);
	uint64_t rx = __atomic_load_n(&e->peer.last_rx_ns, __ATOMIC_RELAXED);
	int fd = __atomic_load_n(&e->peer.fd, __ATOMIC_RELAXED);

	l->state = (enum hr_role_state)__atomic_load_n((int *)&e->role.state, __ATOMIC_RELAXED);
	l->state_age_ms = since && now > since ? (now - since) / 1000000 : 0;
	l->peer_silent_ms = fd >= 0 && rx ? (now > rx ? (now - rx) / 1000000 : 0) : UINT64_MAX;
	l->witness_standing = __atomic_load_n(&e->lease.standing, __ATOMIC_RELAXED);
	uint64_t until = __atomic_load_n(&e->lease.until_ns, __ATOMIC_RELAXED);
	uint64_t contact = __atomic_load_n(&e->lease.contact_ns, __ATOMIC_RELAXED);
	l->lease_left_ms = until > now ? (until - now) / 1000000 : 0;
	l->witness_contact_ms = contact ? (now - contact) / 1000000 : UINT64_MAX;
	pthread_mutex_lock(&e->stats_lock);
	memcpy(l->held_why, e->held_why, sizeof(l->held_why));
	memcpy(l->dropped_why, e->dropped_why, sizeof(l->dropped_why));
	l->held_ms =
	    e->held_why[0] && now > e->held_since_ns ? (now - e->held_since_ns) / 1000000 : 0;
	pthread_mutex_unlock(&e->stats_lock);
	uint64_t next = __atomic_load_n(&e->next_reprotect_ns, __ATOMIC_RELAXED);
	l->next_reprotect_ms = next > now ? (next - now) / 1000000 : 0;
}
