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

	/* 2. silence: held */
	ep.partitioned = 1;
	usleep(300000); /* the epoch in flight when it began stays unacknowledged */
	uint64_t p0 = ep.p_bytes;
	usleep(1500000);
	ok(ep.p_bytes == p0 && ep.b_state == HR_RS_BACKUP,
	   "the backup goes silent: 1.5 s later the primary released nothing more (%llu bytes), "
	   "the backup did not promote itself",
	   (unsigned long long)(ep.p_bytes - p0));

	/* 3. the word (given before) and the silence: dropped, alone, speaking */
	hr_engine_cluster_release(ep.p);
	ok(wait_p_state(&ep, HR_RS_UNPROTECTED, 5),
	   "with the cluster's word the silent backup is dropped: unprotected (%s)",
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
