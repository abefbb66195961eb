/*
 * engine-live.c - the live phase that opens every session: memory copied
 * while the guest runs (core/planner.h), paced and ended on request, with
 * its rounds reported.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "core/planner.h"
#include "core/sender.h"

void hr_engine_live_bandwidth(struct hr_engine *e, uint64_t bytes_per_s)
{
	__atomic_store_n(&e->live_cap, bytes_per_s, __ATOMIC_SEQ_CST);
}

void hr_engine_live_request(struct hr_engine *e, enum hr_live_request req)
{
	if (req == HR_LIVE_END)
		__atomic_store_n(&e->live_end, 1, __ATOMIC_SEQ_CST);
	else if (req == HR_LIVE_EXTEND || req == HR_LIVE_NO_EXTEND)
		__atomic_store_n(&e->live_extend, req == HR_LIVE_EXTEND ? 1 : -1, __ATOMIC_SEQ_CST);
}

enum { LIVE_EV_EXIT = 1, LIVE_EV_FULL = 2, LIVE_EV_DEMOTE = 4 };

/* Control bytes during the live phase (non-blocking): stop / abort end it
 * (-EINTR, *ctl_r); guest exit and full output are noted in *ev_r. */
static int live_ctl(struct hr_engine *e, int *ctl_r, int *ev_r)
{
	char c;

	while (read(e->ctl_pipe[0], &c, 1) == 1) {
		if (c == CTL_STOP || c == CTL_ABORT) {
			*ctl_r = c;
			return -EINTR;
		}
		if (c == CTL_GUEST_EXIT)
			*ev_r |= LIVE_EV_EXIT;
		if (c == CTL_OUTPUT_FULL)
			*ev_r |= LIVE_EV_FULL;
	}
	if (hr_engine_demote_requested(e))
		*ev_r |= LIVE_EV_DEMOTE;
	return 0;
}

/* Sleep until until_ns (pacing, an idle extended round); heartbeats keep
 * the backup informed meanwhile.  0 (early on guest exit or full output)
 * or -EINTR. */
static int live_sleep(struct hr_engine *e, uint64_t until_ns, int *ctl_r, int *ev_r)
{
	for (;;) {
		int rc = live_ctl(e, ctl_r, ev_r);
		uint64_t now = hr_now_ns();
		if (rc < 0 || *ev_r || now >= until_ns)
			return rc;
		hr_peer_progress(&e->peer);
		uint64_t wait_ns = until_ns - now;
		if (wait_ns > ENGINE_WAIT_MAX_NS)
			wait_ns = ENGINE_WAIT_MAX_NS;
		struct timespec ts = {(time_t)(wait_ns / 1000000000ull),
				      (long)(wait_ns % 1000000000ull)};
		struct pollfd p[2] = {{e->ctl_pipe[0], POLLIN, 0}, {e->wake_fd, POLLIN, 0}};
		uint64_t n;
		if (ppoll(p, 2, &ts, NULL) > 0 && (p[1].revents & POLLIN))
			(void)!read(e->wake_fd, &n, sizeof(n)); /* a demote: live_ctl sees it */
	}
}

/* Pacing at max_bytes_per_s: when the bytes sent since the baseline
 * (*t0_ns, *bytes0) may have left.  A baseline more than 100 ms behind
 * (an idle round) moves up, so idle time is not saved up for a burst. */
#define PACE_SLACK_NS 100000000ull

static uint64_t paced_due_ns(uint64_t *t0_ns, uint64_t *bytes0, uint64_t bytes,
			     uint64_t bytes_per_s)
{
	uint64_t now = hr_now_ns();
	uint64_t due =
	    *t0_ns + (uint64_t)((unsigned __int128)(bytes - *bytes0) * 1000000000u / bytes_per_s);
	if (due + PACE_SLACK_NS < now) {
		*t0_ns = now - PACE_SLACK_NS;
		*bytes0 = bytes;
		return 0;
	}
	return due;
}

struct sync_ctl {
	struct hr_engine *e;
	char later[8]; /* control bytes for after the sync */
	unsigned nr;
	struct hr_disk_batch drained;
};

/* A long sync under a writing guest: past half its soft limit the write
 * log is cut, its writes' blocks are sent again by the sync (they are in
 * the image: a write is logged once it completed), so the log never
 * reaches its hard limit because of the sync (core/disk-sync.h). */
static int sync_drain(void *opaque, const struct hr_disk_batch **b_r)
{
	struct sync_ctl *sc = opaque;
	struct hr_engine *e = sc->e;

	if (!__atomic_load_n(&e->disklog_on, __ATOMIC_ACQUIRE) ||
	    hr_disklog_bytes(&e->disklog) < e->disklog.soft_bytes / 2)
		return 0;
	hr_disklog_cut(&e->disklog, &sc->drained);
	*b_r = &sc->drained;
	return 1;
}

/* A control byte during the sync: stop / abort end it; the others (guest
 * exit, full output, a migration's wake-up) are passed on to the memory
 * rounds that follow. */
static int sync_ctl(void *opaque, int c)
{
	struct sync_ctl *sc = opaque;

	if (c == CTL_STOP || c == CTL_ABORT)
		return -1;
	if (sc->nr < sizeof(sc->later) && !memchr(sc->later, c, sc->nr))
		sc->later[sc->nr++] = (char)c;
	return 0;
}

int hr_engine_disk_sync(struct hr_engine *e, int *ctl_r)
{
	struct hr_disk_sync_stats st;
	struct sync_ctl sc = {.e = e};
	uint32_t bb = e->cfg.disk_sync_block_bytes;
	if (!bb) {
		/* the guest's own block (4 KiB), so that a re-protection sends
		 * what changed and little more; larger only where the hashes
		 * would pass HR_DISK_SYNC_MAX_HASHES (8 bytes each, in memory) */
		uint64_t total = 0;
		for (unsigned i = 0; i < e->cfg.vm.nr_disks; i++)
			total += e->disk_sizes[i];
		bb = HR_DISK_SYNC_MIN_BLOCK;
		while (bb < HR_DISK_SYNC_MAX_BLOCK && total / bb > HR_DISK_SYNC_MAX_HASHES)
			bb <<= 1;
	}
	int timeout_ms = (int)(e->cfg.silence_ms ? e->cfg.silence_ms : 10000);

	*ctl_r = 0;
	if (!e->cfg.vm.nr_disks)
		return 0;
	struct hr_disk_sync_hooks hooks = {.ctl = sync_ctl, .drain = sync_drain, .opaque = &sc};
	int rc = hr_disk_sync_primary(&e->peer, e->name, e->cfg.vm.disks, e->cfg.vm.nr_disks, bb,
				      timeout_ms, &hooks, ctl_r, &st);
	hr_disk_batch_fini(&sc.drained);
	for (unsigned i = 0; i < sc.nr; i++)
		hr_engine_ctl_send(e, sc.later[i]);
	pthread_mutex_lock(&e->stats_lock);
	e->disk_sync = st;
	pthread_mutex_unlock(&e->stats_lock);
	if (rc < 0 && rc != -EINTR)
		log_err(e->name, "disk synchronisation failed: %s", hr_strerror(rc));
	return rc;
}

void hr_engine_disk_sync_stats(struct hr_engine *e, struct hr_disk_sync_stats *st)
{
	pthread_mutex_lock(&e->stats_lock);
	*st = e->disk_sync;
	pthread_mutex_unlock(&e->stats_lock);
}

static void live_round_done(struct hr_engine *e, const struct hr_live_round *r)
{
	log_debug(e->name,
		  "live round %" PRIu64 ": %" PRIu64 " never-sent + %" PRIu64
		  " dirty pages (%" PRIu64 " zero), %" PRIu64 " never-sent left, %" PRIu64
		  " dirty left, %" PRIu64 " pages/s written, %" PRIu64 " ms",
		  r->round, r->never_sent_pages, r->dirty_pages, r->zero_pages, r->never_sent_left,
		  r->dirty_left, r->dirty_rate, r->round_us / 1000);
	if (e->cfg.on_round)
		e->cfg.on_round(e->cfg.round_opaque, r);
}

/*
 * The live phase: pages go while the guest runs, as the planner says, one
 * round after another; each round boundary fetches the guest's writes
 * (while it runs with HR_BF_DIRTY_LIVE, else in a short pause).  What is
 * still dirty at the end goes in epoch 0.  A guest that exited, or whose
 * held output is full (its vCPU waits, console bytes are dropped after a
 * second), ends the round and the phase at once: epoch 0 follows, its ack
 * releases the output.  -EINTR with *ctl_r on stop / abort.
 */
int hr_engine_live_phase(struct hr_engine *e, struct hr_sender *snd, int *ctl_r)
{
	struct hr_planner pl;
	struct hr_live_round r;
	uint64_t n, t0 = hr_now_ns(), bytes0 = snd->live_bytes, pace_t0 = t0, pace_bytes0 = bytes0;
	uint64_t cap = __atomic_load_n(&e->live_cap, __ATOMIC_SEQ_CST);
	if (!cap)
		cap = e->cfg.live.max_bytes_per_s;
	int live = e->ops->features & HR_BF_DIRTY_LIVE, ev = 0, rc;

	hr_planner_init(&pl, &e->cfg.live);
	/* the disks first, while the guest runs: their writes meanwhile are
	 * in the session's log and travel in its first epoch */
	if ((rc = hr_engine_disk_sync(e, ctl_r)) < 0)
		goto out;
	if ((rc = hr_planner_start(&pl, &e->gm, hr_now_ns())) < 0)
		goto out;
	for (;;) {
		if (!live)
			e->ops->pause(e->vm);
		rc = e->ops->dirty_fetch(e->vm, hr_dirtyset_bits(hr_planner_fresh(&pl)));
		if (!live)
			e->ops->resume(e->vm);
		if (rc < 0)
			goto out;
		int x = __atomic_load_n(&e->live_extend, __ATOMIC_SEQ_CST);
		if (x && pl.cfg.mode == HR_LIVE_MPLM)
			pl.extend = x > 0;
		/* a demote waits for epoch 0: the live phase ends at once */
		if (__atomic_load_n(&e->live_end, __ATOMIC_SEQ_CST) || ev ||
		    hr_engine_demote_requested(e))
			pl.end_now = 1;
		if ((rc = hr_planner_round(&pl, &e->gm, e->src.dirty, hr_now_ns(), &r)) < 0)
			goto out;
		if (r.round_us)
			live_round_done(e, &r);
		if (!rc)
			break;
		while (!ev) { /* guest exit, full output: the round ends now */
			if ((rc = live_ctl(e, ctl_r, &ev)) < 0)
				goto out;
			rc = hr_planner_chunk(&pl, &e->gm, e->src.dirty, hr_now_ns(), e->src.gfns,
					      &n);
			if (rc < 0)
				goto out;
			if (!rc) {
				uint64_t now = hr_now_ns(), wait = hr_planner_wait_ns(&pl, now);
				if (wait && (rc = live_sleep(e, now + wait, ctl_r, &ev)) < 0)
					goto out;
				break;
			}
			if (n && (rc = hr_sender_send_live(snd, &e->gm, e->src.gfns, n)) < 0)
				goto out;
			uint64_t due =
			    cap ? paced_due_ns(&pace_t0, &pace_bytes0, snd->live_bytes, cap) : 0;
			if (due > hr_now_ns() && (rc = live_sleep(e, due, ctl_r, &ev)) < 0)
				goto out;
		}
	}
	uint64_t ram = pl.nr_pages_ram ? pl.nr_pages_ram : 1;
	log_info(e->name,
		 "live phase: %" PRIu64 " pages (%" PRIu64 " MiB, %" PRIu64 ".%02" PRIu64
		 " x RAM) in %u rounds, %" PRIu64 " ms; %" PRIu64 " pages left for epoch 0",
		 pl.pages_sent, (snd->live_bytes - bytes0) >> 20, pl.pages_sent / ram,
		 pl.pages_sent * 100 / ram % 100, pl.round, (hr_now_ns() - t0) / 1000000,
		 hr_dirtyset_count(e->src.dirty));
	rc = 0;
out:
	hr_planner_fini(&pl);
	__atomic_store_n(&e->live_end, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->live_extend, 0, __ATOMIC_SEQ_CST);
	return rc;
}
