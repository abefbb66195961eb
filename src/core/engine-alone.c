/*
 * engine-alone.c - a primary without a backup: its backup was lost, or it
 * is a promoted backup whose old primary is gone.  The guest runs on; its
 * output is held or released as ha/failover.c decides; and every
 * reconnect_ms the engine asks its peer daemon for a new backup
 * (re-protection).  Also: turning a promoted backup into such a primary.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "ha/failover.h"
#include "ha/standdown.h"

#define RELEASE_EVERY_MS     20	  /* output released this often while allowed */
#define RECONNECT_DEFAULT_MS 1000 /* between re-protection attempts */

/* Between attempts: longer after sessions that failed before the sync. */
static uint64_t reconnect_ms(const struct hr_engine *e)
{
	return hr_ha_reprotect_delay_ms(e->cfg.reconnect_ms ? e->cfg.reconnect_ms
							    : RECONNECT_DEFAULT_MS,
					e->reprotect_failures);
}

/* Announce a change of output policy once. */
static void tell_policy(struct hr_engine *e, enum hr_ha_output out, int *told, const char *why)
{
	if (*told == (int)out)
		return;
	*told = (int)out;
	if (out == HR_HA_OUTPUT_HOLD)
		hr_engine_role_event(e, HR_RE_OUTPUT_HELD, why);
	else if (out == HR_HA_OUTPUT_RELEASE)
		hr_engine_role_event(e, HR_RE_OUTPUT_RELEASED, why);
	hr_engine_set_held(e, out == HR_HA_OUTPUT_HOLD ? why : NULL);
}

/*
 * One re-protection attempt runs in a thread of its own: it may wait up to
 * its bound (2 s) for a peer that accepts but does not answer (a hung host,
 * a partition), and meanwhile a speaking guest's output must keep leaving
 * every RELEASE_EVERY_MS.
 */
struct attempt {
	struct hr_engine *e;
	pthread_t thread;
	int running, speaking, fd, rc;
	int done[2]; /* readable once the attempt is over */
};

static void *attempt_run(void *arg)
{
	struct attempt *a = arg;
	a->rc = a->e->cfg.reconnect(a->e->cfg.reconnect_opaque, a->speaking, &a->fd);
	(void)!write(a->done[1], "x", 1);
	return NULL;
}

static void attempt_start(struct attempt *a, int speaking)
{
	a->speaking = speaking;
	a->fd = -1;
	a->rc = -EAGAIN;
	a->running = pthread_create(&a->thread, NULL, attempt_run, a) == 0;
}

/* Wait for a running attempt; a connection it made is closed unless kept. */
static int attempt_join(struct attempt *a, int keep, int *fd_r)
{
	char c;
	if (!a->running)
		return -EAGAIN;
	pthread_join(a->thread, NULL);
	a->running = 0;
	while (read(a->done[0], &c, 1) == 1)
		;
	if (a->rc == 0 && keep) {
		*fd_r = a->fd;
		return 0;
	}
	if (a->rc == 0 && a->fd >= 0)
		close(a->fd);
	return a->rc == 0 ? -ECANCELED : a->rc;
}

static int alone_loop(struct hr_engine *e, struct attempt *at, int *fd_r, int *ctl_r);

/* An append to a full outbuf may wait as long as it takes (engine.c): only
 * while speaking alone; cleared before anything pauses the guest. */
static void emit_may_wait(struct hr_engine *e, int on)
{
	__atomic_store_n(&e->emit_may_wait, on, __ATOMIC_RELEASE);
}

int hr_engine_alone(struct hr_engine *e, int *fd_r, int *ctl_r)
{
	struct attempt at = {.e = e, .done = {-1, -1}};
	int fd;

	*fd_r = -1;
	*ctl_r = 0;
	if (e->cfg.reconnect && pipe2(at.done, O_CLOEXEC | O_NONBLOCK) < 0)
		at.done[0] = at.done[1] = -1;
	int rc = alone_loop(e, &at, fd_r, ctl_r);
	hr_engine_watch_any_output(e, 0);
	emit_may_wait(e, 0);
	attempt_join(&at, 0, &fd); /* ended otherwise: an attempt in flight is dropped */
	if (at.done[0] >= 0) {
		close(at.done[0]);
		close(at.done[1]);
	}
	return rc;
}

static int alone_loop(struct hr_engine *e, struct attempt *at, int *fd_r, int *ctl_r)
{
	struct hr_outbuf_stats s;
	struct hr_ha_alone ha = {.vm = e->name,
				 .release_allowed = e->cfg.unprotected_release,
				 .speaking = e->speaking,
				 .lease = &e->lease};
	int told = -1, both_speak_logged = 0, can_try = e->cfg.reconnect && at->done[0] >= 0;
	/* a restarted peer is quick; a bad link is given time */
	uint64_t next_try =
	    hr_now_ns() + (e->reprotect_failures ? reconnect_ms(e) : 100) * 1000000ull;

	hr_outbuf_get_stats(e->outbuf, &s);
	uint64_t epoch = s.open_epoch; /* the open one; sealed ones below it are held */
	int released_old = 0;
	for (;;) {
		if (e->standby || hr_engine_demote_requested(e)) {
			/* demoted by the cluster: paused until resumed (no re-protection
			 * meanwhile; an attempt in flight is dropped) */
			int fd = -1;
			attempt_join(at, 0, &fd);
			emit_may_wait(e, 0);
			int c = hr_engine_standby_alone(e, &epoch);
			if (c != CTL_RESUMED) {
				*ctl_r = c;
				return HR_ALONE_ENDED;
			}
			told = -1; /* the output policy is told again */
			ha.speaking = e->speaking;
			next_try = hr_now_ns() + 100 * 1000000ull;
		}
		uint64_t now = hr_now_ns();
		ha.cluster_release = __atomic_load_n(&e->cluster_release, __ATOMIC_SEQ_CST);
		if (hr_engine_mig_requested(e)) {
			*ctl_r = CTL_MIGRATE; /* the primary loop connects to the destination */
			return HR_ALONE_ENDED;
		}
		enum hr_ha_output out = hr_ha_alone_output(&ha, now);
		tell_policy(e, out, &told, ha.why);
		if (out == HR_HA_OUTPUT_STAND_DOWN) {
			emit_may_wait(e, 0);
			e->ops->pause(e->vm);
			hr_engine_role_event(e, HR_RE_STAND_DOWN, ha.why);
			return HR_ALONE_STAND_DOWN;
		}
		e->speaking = out == HR_HA_OUTPUT_RELEASE;
		emit_may_wait(e, e->speaking);
		if (e->speaking) {
			if (!released_old && epoch)
				hr_outbuf_release(e->outbuf, epoch - 1, hr_engine_release_sink, e);
			released_old = 1;
			hr_outbuf_seal(e->outbuf, epoch);
			hr_outbuf_release(e->outbuf, epoch, hr_engine_release_sink, e);
			epoch++;
		}
		__atomic_store_n(&e->next_reprotect_ns, can_try && !at->running ? next_try : 0,
				 __ATOMIC_RELAXED);
		if (can_try && !at->running && now >= next_try)
			attempt_start(at, e->speaking);
		/* speaking: the first output of the open epoch wakes the loop
		 * (out_wake_fd), so it leaves at once; RELEASE_EVERY_MS is the
		 * fallback */
		hr_engine_watch_any_output(e, e->speaking);
		int wait_ms = e->speaking ? RELEASE_EVERY_MS : -1;
		if (can_try && !at->running) {
			int to_try = next_try > now ? (int)((next_try - now) / 1000000) + 1 : 0;
			if (wait_ms < 0 || to_try < wait_ms)
				wait_ms = to_try;
		}
		int lease_ms = hr_ha_alone_poll_ms(&ha, now);
		if (lease_ms >= 0 && (wait_ms < 0 || lease_ms < wait_ms))
			wait_ms = lease_ms;
		/* the witness's answer (its fd; -1 before the first request) wakes us */
		struct pollfd p[5] = {{e->ctl_pipe[0], POLLIN, 0},
				      {e->wake_fd, POLLIN, 0},
				      {hr_ha_lease_fd(&e->lease), POLLIN, 0},
				      {e->out_wake_fd, POLLIN, 0},
				      {at->done[0], POLLIN, 0}};
		char c = 0;
		uint64_t n;
		int np = poll(p, at->running ? 5 : 4, wait_ms);
		if (np > 0 && (p[3].revents & POLLIN)) {
			(void)!read(e->out_wake_fd, &n, sizeof(n));
			continue; /* output to release now */
		}
		if (np > 0 && (p[1].revents & POLLIN)) {
			(void)!read(e->wake_fd, &n, sizeof(n));
			continue; /* decide again with the cluster's word (or demote) */
		}
		if (np > 0 && (p[2].revents & POLLIN))
			continue; /* decide again with the witness's answer (taken there) */
		if (np > 0 && (p[0].revents & POLLIN) && read(e->ctl_pipe[0], &c, 1) == 1) {
			if (c == CTL_STOP || c == CTL_ABORT || c == CTL_GUEST_EXIT) {
				emit_may_wait(e, 0);
				if (c == CTL_ABORT)
					e->ops->pause(e->vm); /* as a crash: nothing more leaves */
				else if (e->speaking) {
					hr_outbuf_seal(e->outbuf, epoch);
					hr_outbuf_release(e->outbuf, epoch, hr_engine_release_sink,
							  e);
				}
				*ctl_r = c;
				return HR_ALONE_ENDED;
			}
			continue; /* output full: nothing to do but wait */
		}
		if (!at->running || !(p[4].revents & POLLIN))
			continue;
		int fd = -1;
		int rc = attempt_join(at, 1, &fd);
		next_try = hr_now_ns() + reconnect_ms(e) * 1000000ull;
		if (rc == 0) {
			/* the cluster's word was about the old backup, not the next one */
			__atomic_store_n(&e->cluster_release, 0, __ATOMIC_SEQ_CST);
			hr_engine_role_event(e, HR_RE_REPROTECT,
					     "the peer answered: synchronising a new backup");
			*fd_r = fd;
			return HR_ALONE_RECONNECTED;
		}
		if (rc == -HR_EPROMOTED &&
		    hr_ha_peer_runs(e->speaking, NULL) == HR_HA_RUNS_STAND_DOWN) {
			e->ops->pause(e->vm);
			hr_engine_role_event(e, HR_RE_STAND_DOWN,
					     "the peer runs this VM and releases its output; "
					     "guest stopped here, held output dropped");
			return HR_ALONE_STAND_DOWN;
		}
		if (rc == -HR_EPROMOTED && !both_speak_logged++)
			log_err(e->name, "the peer also runs this VM and releases its output: two "
					 "hosts speak for it (output release was allowed without "
					 "proof); stop one of them");
	}
}

int hr_engine_become_primary(struct hr_engine *e, uint64_t next_epoch)
{
	struct hr_outbuf *ob;
	int rc;

	rc = hr_outbuf_new(&ob, e->name, e->chans, e->nr_chans, HR_OUTPUT_CAP_BYTES, next_epoch);
	if (rc < 0)
		return rc;
	if ((rc = hr_engine_src_setup(e, ob)) < 0) {
		hr_outbuf_free(ob);
		return rc;
	}
	hr_engine_watch_net_output(e, ob);
	if ((rc = e->ops->dirty_start(e->vm)) < 0) {
		log_err(e->name, "cannot track dirty pages on the promoted guest: %s",
			hr_strerror(rc));
		return rc;
	}
	e->dirty_on = 1;
	/* from here on the guest's output is held per epoch, offsets continuing */
	pthread_mutex_lock(&e->out_lock);
	hr_outbuf_set_offsets(ob, e->next_offset, HR_MAX_CHANNELS);
	__atomic_store_n(&e->outbuf, ob, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&e->out_lock);
	e->speaking = 1; /* a promoted guest speaks for the VM until told otherwise */
	return 0;
}
