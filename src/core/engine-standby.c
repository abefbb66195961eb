/*
 * engine-standby.c - cluster mode: the cluster manager demotes this host's
 * copy of a VM and may promote it again (hr_engine_demote / resume).
 *
 * A demote is a planned switchover, not a crash.  At the next epoch
 * boundary the guest pauses and a final epoch goes to the backup; its ack
 * releases that epoch's output, so the backup's committed copy is exactly
 * the paused guest and everything it emitted has left.  Then the VM waits
 * in standby: still paused, the session open (heartbeats both ways), no
 * output (the guest emits none).  From there:
 *
 *   resume      the cluster promotes this host again: the guest runs on
 *               from where it paused - the newest state there is, identical
 *               to the backup's - and the epochs go on in the same session.
 *   took over   the cluster promoted the backup instead: it announces that
 *               (ERROR -HR_EPROMOTED) and runs from the final epoch; the
 *               paused guest here is dropped (+demoted) and this host's
 *               daemon takes the new primary's request for a backup.
 *   lost        the backup's link ended: the guest stays paused; resumed,
 *               it runs without a backup, its output held as any such
 *               primary's (ha/failover.c).
 *   stop/abort  as any primary: an orderly stop ends the backup's copy too,
 *               an abort (the agent's drop) leaves it alone.
 *
 * Without a backup the guest just pauses: output it held stays held (the
 * lost backup may be promoted); a speaking guest's output up to the pause
 * leaves (it was released all along).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "core/outbuf.h"
#include "core/peer.h"
#include "core/sender.h"

int hr_engine_demote_requested(struct hr_engine *e)
{
	return __atomic_load_n(&e->demote_req, __ATOMIC_SEQ_CST) != 0;
}

static void drain_wake(struct hr_engine *e)
{
	uint64_t n;
	(void)!read(e->wake_fd, &n, sizeof(n));
}

/* The guest runs again; the next epoch's interval starts now. */
static void resume_guest(struct hr_engine *e, const char *why)
{
	__atomic_store_n(&e->resume_req, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->demote_req, 0, __ATOMIC_SEQ_CST);
	e->standby = 0;
	e->src.last_pause_ns = hr_now_ns();
	e->ops->resume(e->vm);
	hr_engine_role_event(e, HR_RE_RESUME, why);
}

/* Paused with the session open: 0 with *ctl_r (CTL_RESUMED, CTL_STOP,
 * CTL_ABORT), -HR_EPROMOTED, or -errno when the link ended. */
static int standby_wait(struct hr_engine *e, int *ctl_r)
{
	for (;;) {
		struct hr_frame f;
		__atomic_store_n(&e->demote_req, 0, __ATOMIC_SEQ_CST); /* already */
		if (__atomic_load_n(&e->resume_req, __ATOMIC_SEQ_CST)) {
			resume_guest(e, "the cluster promotes this host again: the guest runs on "
					"from where it paused");
			*ctl_r = CTL_RESUMED;
			return 0;
		}
		int r = hr_frame_reader_next(&e->peer.rd, &f);
		if (r == 1 && f.type != HR_FT_ERROR) {
			hr_frame_release(&f); /* heartbeats */
			continue;
		}
		if (r == 1) {
			Hr__Error *er = (Hr__Error *)f.msg;
			int code = er->code < 0 ? er->code : -HR_EPROTO;
			if (code != -HR_EPROMOTED)
				log_warnx(e->name, "standby: the backup reports: %s",
					  er->text ? er->text : "error");
			hr_frame_release(&f);
			return code;
		}
		if (r < 0)
			return r;
		hr_peer_progress(&e->peer); /* paused on purpose: not wedged */
		struct pollfd p[3] = {
		    {e->ctl_pipe[0], POLLIN, 0}, {e->wake_fd, POLLIN, 0}, {e->peer.fd, POLLIN, 0}};
		if (poll(p, 3, 500) <= 0)
			continue;
		if (p[1].revents & POLLIN)
			drain_wake(e);
		char c;
		if ((p[0].revents & POLLIN) && read(e->ctl_pipe[0], &c, 1) == 1 &&
		    (c == CTL_STOP || c == CTL_ABORT)) {
			*ctl_r = c;
			return 0;
		}
		if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = hr_peer_fill(&e->peer);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0 && n != -EAGAIN)
				return (int)n;
		}
	}
}

int hr_engine_standby_session(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch,
			      int *ctl_r)
{
	struct hr_epoch ep;
	char why[160];
	int rc;

	*ctl_r = 0;
	__atomic_store_n(&e->resume_req, 0, __ATOMIC_SEQ_CST); /* one from before is stale */
	e->src.keep_paused = 1;
	rc = hr_epoch_take(&e->src, epoch, &ep); /* on failure the guest runs on */
	e->src.keep_paused = 0;
	if (rc < 0) {
		__atomic_store_n(&e->demote_req, 0, __ATOMIC_SEQ_CST);
		return rc;
	}
	e->standby = 1;
	log_info(e->name, "demote: guest paused, final epoch %" PRIu64 " (%" PRIu64 " pages)",
		 epoch, ep.nr_pages);
	rc = hr_engine_ship(e, snd, &ep, HR_EPOCH_END_FORCED, ctl_r);
	__atomic_store_n(&e->demote_req, 0, __ATOMIC_SEQ_CST);
	if (rc == -EINTR && (*ctl_r == CTL_STOP || *ctl_r == CTL_ABORT || *ctl_r == CTL_GUEST_EXIT))
		return 0; /* ended before the ack: as any primary */
	if (rc < 0) {
		snprintf(why, sizeof(why),
			 "guest paused; the final epoch %" PRIu64 " was not acknowledged (%s): "
			 "its output stays held",
			 epoch, hr_strerror(rc));
		hr_engine_role_event(e, HR_RE_DEMOTE, why);
		return rc;
	}
	snprintf(why, sizeof(why),
		 "guest paused at epoch %" PRIu64 ", which the backup acknowledged: its copy is "
		 "the paused guest, all output released",
		 epoch);
	hr_engine_role_event(e, HR_RE_DEMOTE, why);
	return standby_wait(e, ctl_r);
}

int hr_engine_standby_alone(struct hr_engine *e, uint64_t *epoch)
{
	if (!e->standby) {
		__atomic_store_n(&e->resume_req, 0, __ATOMIC_SEQ_CST);
		e->ops->pause(e->vm);
		e->standby = 1;
		if (e->speaking) {
			/* it spoke alone: what the guest emitted up to the pause leaves */
			hr_outbuf_seal(e->outbuf, *epoch);
			hr_outbuf_release(e->outbuf, *epoch, hr_engine_release_sink, e);
			++*epoch;
		}
		hr_engine_role_event(e, HR_RE_DEMOTE,
				     e->speaking ? "guest paused (no backup; its output up to "
						   "the pause released)"
						 : "guest paused (no backup; its held output "
						   "stays held)");
	}
	for (;;) {
		__atomic_store_n(&e->demote_req, 0, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&e->resume_req, __ATOMIC_SEQ_CST)) {
			resume_guest(e, "the cluster promotes this host again: the guest runs on "
					"from where it paused, without a backup");
			return CTL_RESUMED;
		}
		struct pollfd p[2] = {{e->ctl_pipe[0], POLLIN, 0}, {e->wake_fd, POLLIN, 0}};
		if (poll(p, 2, -1) <= 0)
			continue;
		if (p[1].revents & POLLIN)
			drain_wake(e);
		char c;
		if ((p[0].revents & POLLIN) && read(e->ctl_pipe[0], &c, 1) == 1 &&
		    (c == CTL_STOP || c == CTL_ABORT))
			return c;
	}
}
