/*
 * t-backup-silent.c - a primary whose backup falls silent (a partition: no
 * FIN, no reset) is not protected any more once the failure timeout has
 * passed: its state, which `status` shows, is backup-silent, its output is
 * held, and when the link heals it is protected again.  Twice, so that a
 * second silence is told like the first.  Real engines on the mem backend
 * through a relay that can partition; the backup never promotes itself
 * (auto_promote 0, as in --cluster-mode), so the silence is all there is.
 * The guest dirties little, so an epoch in flight fits the socket buffers:
 * the primary waits for its ack, where it judges the silence (a send that
 * blocks on a full buffer does not judge it).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

#define SILENCE_MS 500 /* the failure timeout of both */

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
	    .name = "t-backup-silent",
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25000,
	    .silence_ms = SILENCE_MS,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=200 writes=2"},
	};
	struct hr_engine_config bc = {
	    .name = "t-backup-silent-b", .silence_ms = SILENCE_MS, .auto_promote = 0};

	plan(10);
	ok(ep_start(&ep, pc, bc, EP_RELAY) == 0 && wait_p_state(&ep, HR_RS_PROTECTED, 20) &&
	       ep_wait_u64(&ep.p_acked, 10, 10),
	   "protected, 10 epochs acknowledged");

	for (int round = 1; round <= 2; round++) {
		/* the partition: nothing arrives, nothing closes */
		uint64_t t0 = hr_now_ns();
		ep.partitioned = 1;
		int silent = wait_p_state(&ep, HR_RS_BACKUP_SILENT, 10);
		double ms = (hr_now_ns() - t0) / 1e6;
		ok(silent && ms >= SILENCE_MS - 100 && ms < 3 * SILENCE_MS,
		   "%d: the backup silent: backup-silent after %.0f ms (failure timeout %d ms, "
		   "not 4 times that)",
		   round, ms, SILENCE_MS);

		/* what status reads (the worker passes this on) */
		struct hr_engine_liveness l;
		hr_engine_liveness(ep.p, &l);
		ok(l.state == HR_RS_BACKUP_SILENT &&
		       !strcmp(hr_role_state_name(l.state), "backup-silent") &&
		       l.peer_silent_ms >= SILENCE_MS - 100 && l.peer_silent_ms != UINT64_MAX,
		   "%d: status during the partition: state %s (not protected), peer silent for "
		   "%llu ms",
		   round, hr_role_state_name(l.state), (unsigned long long)l.peer_silent_ms);

		/* held: the guest runs on, nothing leaves, the backup stays a backup */
		uint64_t p0 = ep.p_bytes;
		usleep(SILENCE_MS * 1000);
		ok(ep.p_bytes == p0 && ep.p_state == HR_RS_BACKUP_SILENT &&
		       ep.b_state == HR_RS_BACKUP,
		   "%d: %d ms more: no output left (%llu bytes), still backup-silent, the backup "
		   "did not promote",
		   round, SILENCE_MS, (unsigned long long)(ep.p_bytes - p0));

		/* healed: it answers */
		uint64_t acked = ep.p_acked;
		ep.partitioned = 0;
		ok(wait_p_state(&ep, HR_RS_PROTECTED, 10) &&
		       ep_wait_u64(&ep.p_acked, acked + 10, 10) &&
		       ep_wait_u64(&ep.p_bytes, p0 + 1, 10),
		   "%d: healed: protected again, the epochs and the output go on", round);
	}

	pthread_mutex_lock(&ep.lock);
	int clean = ep.out[0].gaps == 0 && ep.out[0].conflicts == 0;
	pthread_mutex_unlock(&ep.lock);
	ok(clean && ep.b_bytes == 0 && ep.b_state == HR_RS_BACKUP,
	   "one gap-free stream from one speaker (the backup released %llu bytes)",
	   (unsigned long long)ep.b_bytes);
	ep_finish(&ep);
	return tap_done();
}
