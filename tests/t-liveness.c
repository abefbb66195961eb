/*
 * t-liveness.c - the liveness path does not wait on the checkpoint path
 * (docs/design.md, "Failure detection").  The mem backend's save_delay_ms
 * stretches the primary's checkpoint pause (the guest is paused, the
 * engine thread sits in save_state) far beyond the failure timeout: with
 * the default timeout and heartbeats, a 700 ms and a 2 s pause cause no
 * failover, because the link's heartbeat thread keeps talking; a pause
 * past max_pause is a wedged engine: its heartbeats stop on purpose and the
 * backup takes over, and the old primary then stands down.  Both engines
 * in this process, over loopback TCP.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

#define SYNC_EPOCHS 2 /* saves before the stall: epochs 0 and 1 run at full speed */

static void setup(struct hr_engine_config *pc, struct hr_engine_config *bc, char *opts,
		  size_t opts_len, const char *name, unsigned delay_ms, uint64_t max_pause_ms)
{
	snprintf(opts, opts_len, "save_delay_ms=%u,save_delay_from=%u", delay_ms, SYNC_EPOCHS);
	*pc = (struct hr_engine_config){
	    .name = name,
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25 * 1000,
	    .silence_ms = HR_FAILOVER_TIMEOUT_MS,
	    .max_pause_ms = max_pause_ms,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=500 writes=4",
		   .options = opts},
	};
	*bc = (struct hr_engine_config){.name = "t-liveness-b",
					.silence_ms = HR_FAILOVER_TIMEOUT_MS,
					.max_pause_ms = max_pause_ms,
					.auto_promote = 1};
}

/* Stretched pauses of delay_ms, nr_stalls of them: nobody fails over. */
static void no_failover(unsigned delay_ms, unsigned nr_stalls)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;
	char opts[96], name[64];

	snprintf(name, sizeof(name), "t-liveness-%u", delay_ms);
	setup(&pc, &bc, opts, sizeof(opts), name, delay_ms, 0);
	ok(ep_start(&ep, pc, bc, EP_TCP) == 0,
	   "%u ms checkpoint pauses, 25 ms epochs, default timeout %u ms, max pause %u ms",
	   delay_ms, HR_FAILOVER_TIMEOUT_MS, HR_MAX_PAUSE_MS);
	ok(ep_wait_u64(&ep.p_acked, SYNC_EPOCHS, 30), "protected");
	uint64_t t0 = hr_now_ns();
	int stayed = 1;
	/* until nr_stalls stretched epochs were acknowledged, the roles hold */
	while (ep.p_acked < SYNC_EPOCHS + nr_stalls &&
	       hr_now_ns() - t0 < (uint64_t)(nr_stalls + 4) * delay_ms * 1000000ull) {
		if (ep.b_state != HR_RS_BACKUP || ep.p_state != HR_RS_PROTECTED) {
			stayed = 0;
			break;
		}
		usleep(5000);
	}
	double s = (hr_now_ns() - t0) / 1e9;
	ok(stayed && ep.p_acked >= SYNC_EPOCHS + nr_stalls,
	   "%llu stretched epochs in %.1f s: no failover (primary %s, backup %s)",
	   (unsigned long long)(ep.p_acked - SYNC_EPOCHS), s, hr_role_state_name(ep.p_state),
	   hr_role_state_name(ep.b_state));
	ok(s >= nr_stalls * delay_ms / 1000.0 * 0.9, "the pauses really lasted (%.1f s for %u)", s,
	   nr_stalls);
	ep_finish(&ep);
}

int main(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;
	char opts[96];

	plan(4 + 4 + 6);
	no_failover(700, 4);
	no_failover(2000, 2);

	/* wedged: a 6 s pause against a 1 s max pause */
	setup(&pc, &bc, opts, sizeof(opts), "t-liveness-wedged", 6000, 1000);
	ok(ep_start(&ep, pc, bc, EP_TCP) == 0, "a 6 s checkpoint pause, max pause 1000 ms");
	ok(ep_wait_u64(&ep.p_acked, SYNC_EPOCHS, 30), "protected");
	uint64_t t0 = hr_now_ns(); /* the stalled epoch starts within 25 ms */
	while (ep.b_state != HR_RS_PROMOTED && hr_now_ns() - t0 < 5000000000ull)
		usleep(2000);
	double ms = (hr_now_ns() - t0) / 1e6;
	ok(ep.b_state == HR_RS_PROMOTED, "the backup took over from the wedged primary");
	ok(ms >= 1000 && ms < 1000 + HR_FAILOVER_TIMEOUT_MS + 600,
	   "after %.0f ms (max pause 1000 ms + timeout %u ms)", ms, HR_FAILOVER_TIMEOUT_MS);
	while (ep.p_state != HR_RS_DEMOTED && hr_now_ns() - t0 < 20000000000ull)
		usleep(5000);
	ok(ep.p_state == HR_RS_DEMOTED, "the old primary stands down once its pause ends (%s)",
	   hr_role_state_name(ep.p_state));
	ok(!ep.out[0].gaps && !ep.out[0].conflicts,
	   "the console has no gap and no contradiction (%u gaps, %u conflicts)",
	   (unsigned)ep.out[0].gaps, (unsigned)ep.out[0].conflicts);
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	ep.fds[0] = -1; /* the primary's thread ended on its own */
	pthread_join(ep.tp, NULL);
	hr_engine_free(ep.p);
	hr_engine_free(ep.b);
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		free(ep.out[c].buf);
	return tap_done();
}
