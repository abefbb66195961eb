/*
 * t-cluster-word.c - the cluster's word to a primary (hr_engine_cluster_release:
 * the peer's instance was stopped or its node fenced), with real engines
 * (mem backend) through a relay and an outside observer; the backup never
 * promotes itself (auto_promote 0, as in --cluster-mode):
 *
 *   1. a backup that answers is kept, the word notwithstanding: the
 *      primary stays protected and its epochs go on.
 *   2. the backup goes silent (a cut link, a fenced node: no FIN, no
 *      reset): the primary holds its output, as without the word.
 *   3. with the word and the silence together the backup is dropped: the
 *      primary runs alone and its output leaves (+output-released).
 *
 * The observer sees one gap-free stream that never contradicts itself.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

static int wait_p_state(struct ep_pair *ep, enum hr_role_state s, double seconds)
{
	uint64_t end = hr_now_ns() + (uint64_t)(seconds * 1e9);
	while (ep->p_state != s && hr_now_ns() < end)
		usleep(2000);
	return ep->p_state == s;
}

/* Wait (bounded) until the primary heard nothing from its backup for ms. */
static int wait_p_silent(struct ep_pair *ep, uint64_t ms, double seconds)
{
	uint64_t end = hr_now_ns() + (uint64_t)(seconds * 1e9);
	struct hr_engine_liveness l;
	for (;;) {
		hr_engine_liveness(ep->p, &l);
		if (l.peer_silent_ms != UINT64_MAX && l.peer_silent_ms >= ms)
			return 1;
		if (hr_now_ns() >= end)
			return 0;
		usleep(2000);
	}
}

int main(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = "t-cluster-word",
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=1000 writes=8"},
	};
	struct hr_engine_config bc = {
	    .name = "t-cluster-word-b", .silence_ms = 300, .auto_promote = 0};

	plan(6);
	ep_start(&ep, pc, bc, EP_RELAY);
	ok(wait_p_state(&ep, HR_RS_PROTECTED, 20) && ep_wait_u64(&ep.p_acked, 10, 10),
	   "protected, 10 epochs acknowledged");

	/* 1. the word while the backup answers */
	hr_engine_cluster_release(ep.p);
	uint64_t acked = ep.p_acked;
	int more = ep_wait_u64(&ep.p_acked, acked + 20, 10);
	ok(more && ep.p_state == HR_RS_PROTECTED,
	   "the word while the backup answers: it is kept, protected, 20 more epochs");

	/* 2. silence: held.  An ack is released as it arrives: once the primary
	 * heard nothing for two heartbeats (2 x silence_ms / 5, the engine's
	 * own test of a silent backup, hr_engine_cluster_release), whatever was
	 * acknowledged before the cut has left, and the epoch in flight stays
	 * unacknowledged. */
	ep.partitioned = 1;
	int cut = wait_p_silent(&ep, 2 * 300 / 5, 10);
	uint64_t p0 = ep.p_bytes;
	/* a window in which nothing must happen (a negative check, so bounded:
	 * 1.5 s, 5 x silence_ms); it counts because both sides heard nothing
	 * from each other in all of it, the backup for far longer than an
	 * auto-promoting backup waits */
	usleep(1500000);
	struct hr_engine_liveness lp, lb;
	hr_engine_liveness(ep.p, &lp);
	hr_engine_liveness(ep.b, &lb);
	ok(cut && ep.p_bytes == p0 && ep.b_state == HR_RS_BACKUP && lp.peer_silent_ms >= 1500 &&
	       lb.peer_silent_ms >= 1500,
	   "the backup goes silent: in 1.5 s more the primary released nothing (%llu bytes), "
	   "the backup did not promote itself (unheard: %llu / %llu ms)",
	   (unsigned long long)(ep.p_bytes - p0), (unsigned long long)lp.peer_silent_ms,
	   (unsigned long long)lb.peer_silent_ms);

	/* 3. the word (given before) and the silence: dropped, alone, speaking */
	hr_engine_cluster_release(ep.p);
	int alone = wait_p_state(&ep, HR_RS_UNPROTECTED, 5); /* before its state is printed */
	ok(alone, "with the cluster's word the silent backup is dropped: unprotected (%s)",
	   hr_role_state_name(ep.p_state));
	ok(ep_wait_u64(&ep.p_bytes, p0 + 1, 5),
	   "... and the guest's output leaves without a backup (%llu bytes)",
	   (unsigned long long)(ep.p_bytes - p0));
	pthread_mutex_lock(&ep.lock);
	int clean = ep.out[0].gaps == 0 && ep.out[0].conflicts == 0;
	pthread_mutex_unlock(&ep.lock);
	ok(clean && ep.b_bytes == 0, "one gap-free stream, one speaker (the backup released %llu)",
	   (unsigned long long)ep.b_bytes);
	ep_finish(&ep);
	return tap_done();
}
