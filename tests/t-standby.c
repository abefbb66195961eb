/*
 * t-standby.c - cluster mode's demote / resume in the engine
 * (core/engine-standby.c), with real engines (mem backend) over a
 * socketpair and one outside observer for all released output; the backup
 * never promotes itself (auto_promote 0, as in --cluster-mode):
 *
 *   1. demote while the first sync still runs: the live phase ends early,
 *      epoch 0 is acknowledged, then the final epoch: standby.
 *   2. standby: the guest is paused (no epochs, no output), the backup's
 *      committed epoch is the primary's final one, heartbeats keep the
 *      pair alive; resume: protected, epochs and output go on.  Twice.
 *   3. demoted again, the backup is promoted instead (a planned
 *      switchover): the standby primary ends with -HR_EPROMOTED (demoted)
 *      and releases nothing more; the backup runs from the final epoch.
 *   4. without a backup: an unprotected primary is demoted (standby) and
 *      resumed (unprotected again, its output still held).
 *
 * Throughout: the observer sees one gap-free stream that never contradicts
 * itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"

static int wait_state(volatile enum hr_role_state *st, enum hr_role_state s, double seconds)
{
	uint64_t end = hr_now_ns() + (uint64_t)(seconds * 1e9);
	while (*st != s && hr_now_ns() < end)
		usleep(2000);
	return *st == s;
}

static int wait_p_state(struct ep_pair *ep, enum hr_role_state s, double seconds)
{
	return wait_state(&ep->p_state, s, seconds);
}

static uint64_t last_epoch(struct hr_engine *e)
{
	struct hr_epoch_stats st;
	uint64_t n;
	hr_engine_stats(e, &st, &n);
	return n ? st.epoch : UINT64_MAX;
}

/* The backup acks an epoch before its engine records it: wait for that. */
static uint64_t b_epoch_reaches(struct ep_pair *ep, uint64_t want)
{
	uint64_t t0 = hr_now_ns(), n;
	while ((n = last_epoch(ep->b)) != want && hr_now_ns() - t0 < 5000000000ull)
		usleep(1000);
	return n;
}

static int clean(struct ep_pair *ep)
{
	pthread_mutex_lock(&ep->lock);
	int r = ep->out[0].gaps == 0 && ep->out[0].conflicts == 0 && ep->out[0].len > 0;
	pthread_mutex_unlock(&ep->lock);
	return r;
}

/* Nothing moves for ms: no epoch acknowledged, committed or released. */
static int quiet_for(struct ep_pair *ep, unsigned ms)
{
	uint64_t a = ep->p_acked, c = ep->b_committed, pb = ep->p_bytes;
	usleep(ms * 1000);
	return ep->p_acked == a && ep->b_committed == c && ep->p_bytes == pb;
}

static struct hr_engine_config primary_cfg(void)
{
	return (struct hr_engine_config){
	    .name = "t-standby",
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=1000 writes=8"},
	};
}

int main(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config bc = {.name = "t-standby-b", .silence_ms = 300, .auto_promote = 0};

	plan(17);
	/* 1. demote while syncing */
	ep_start(&ep, primary_cfg(), bc, EP_SOCKETPAIR);
	hr_engine_demote(ep.p);
	int standby = wait_p_state(&ep, HR_RS_STANDBY, 20);
	ok(standby,
	   "demote during the first sync: the live phase ends, epoch 0 and a final epoch "
	   "acknowledged: standby (%s)",
	   hr_role_state_name(ep.p_state));
	ok(ep.b_state == HR_RS_BACKUP && last_epoch(ep.p) == 1 && b_epoch_reaches(&ep, 1) == 1,
	   "the backup committed the final epoch: primary acked %llu, backup committed %llu",
	   (unsigned long long)last_epoch(ep.p), (unsigned long long)last_epoch(ep.b));

	/* 2. standby and resume, twice */
	hr_engine_resume(ep.p);
	ok(wait_p_state(&ep, HR_RS_PROTECTED, 10) && ep_wait_u64(&ep.p_acked, ep.p_acked + 20, 10),
	   "resume: protected again, 20 more epochs acknowledged");
	for (int round = 1; round <= 2; round++) {
		uint64_t len0 = ep.p_bytes;
		hr_engine_demote(ep.p);
		standby = wait_p_state(&ep, HR_RS_STANDBY, 10);
		ok(standby && last_epoch(ep.p) == last_epoch(ep.b),
		   "demote %d: standby at epoch %llu, the backup committed %llu", round,
		   (unsigned long long)last_epoch(ep.p), (unsigned long long)last_epoch(ep.b));
		ok(quiet_for(&ep, 600) && ep.b_state == HR_RS_BACKUP && ep.p_bytes > len0,
		   "demote %d: 600 ms of standby - no epoch, no output (the guest is paused), the "
		   "backup still holds its copy (it never promotes itself)",
		   round);
		uint64_t acked = ep.p_acked, len1 = ep.p_bytes;
		hr_engine_resume(ep.p);
		ok(wait_p_state(&ep, HR_RS_PROTECTED, 10) &&
		       ep_wait_u64(&ep.p_acked, acked + 20, 10) &&
		       ep_wait_u64(&ep.p_bytes, len1 + 1, 10),
		   "resume %d: the guest runs on, epochs and output go on", round);
	}
	ok(clean(&ep), "the released stream so far: no gap, no contradiction");

	/* 3. demoted, then the cluster promotes the backup instead */
	hr_engine_demote(ep.p);
	ok(wait_p_state(&ep, HR_RS_STANDBY, 10), "demoted again: standby");
	uint64_t final = last_epoch(ep.p);
	hr_engine_promote(ep.b);
	pthread_join(ep.tp, NULL);
	ok(ep.rc_p == -HR_EPROMOTED && ep.p_state == HR_RS_DEMOTED,
	   "the backup is promoted instead: the standby primary gives way (%s, %s)",
	   hr_strerror(ep.rc_p), hr_role_state_name(ep.p_state));
	uint64_t pb = ep.p_bytes, b0 = ep.b_bytes;
	int promoted = wait_state(&ep.b_state, HR_RS_PROMOTED, 10);
	ok(promoted && last_epoch(ep.b) == final,
	   "the backup runs from the final epoch %llu (its last committed: %llu)",
	   (unsigned long long) final, (unsigned long long)last_epoch(ep.b));
	usleep(300000);
	ok(ep.p_bytes == pb && ep.b_bytes > b0 && clean(&ep),
	   "one speaker: the old primary released nothing more, the promoted backup speaks (%llu "
	   "bytes); no gap, no contradiction",
	   (unsigned long long)(ep.b_bytes - b0));
	close(ep.fds[0]);
	ep.fds[0] = -1;
	ep_finish(&ep);

	/* 4. no backup: demote and resume an unprotected primary */
	struct ep_pair e2 = {0};
	ep_start(&e2, primary_cfg(), bc, EP_SOCKETPAIR);
	ok(wait_p_state(&e2, HR_RS_PROTECTED, 20) && ep_wait_u64(&e2.p_acked, 10, 10),
	   "a second pair: protected");
	hr_engine_stop(e2.b);
	pthread_join(e2.tb, NULL);
	close(e2.fds[1]); /* its end of the link goes with it */
	ok(wait_p_state(&e2, HR_RS_UNPROTECTED, 10), "its backup stops: unprotected");
	hr_engine_demote(e2.p);
	standby = wait_p_state(&e2, HR_RS_STANDBY, 10);
	hr_engine_resume(e2.p);
	ok(standby && wait_p_state(&e2, HR_RS_UNPROTECTED, 10) && clean(&e2),
	   "without a backup: demoted to standby and resumed, unprotected again");
	hr_engine_stop(e2.p);
	pthread_join(e2.tp, NULL);
	close(e2.fds[0]);
	hr_engine_free(e2.p);
	hr_engine_free(e2.b);
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		free(e2.out[c].buf);
	return tap_done();
}
