/*
 * t-heartbeat.c - failure detection does not depend on the epoch length:
 * with 10 s epochs and a 500 ms failure timeout, heartbeats on their own
 * schedule keep the backup from promoting for a whole minute while both
 * sides are alive (the old engine promoted after 500 ms of an idle
 * stream); and a primary that really dies is still detected within the
 * timeout.  In-memory backend, both engines in this process.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

static volatile unsigned nr_promotions, nr_silent_primary;

int main(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = "t-heartbeat",
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 10 * 1000000, /* 10 s */
	    .silence_ms = 500,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=200 writes=4"},
	};
	struct hr_engine_config bc = {
	    .name = "t-heartbeat-b", .silence_ms = 500, .auto_promote = 1};

	plan(6);
	ok(ep_start(&ep, pc, bc, EP_RELAY) == 0,
	   "engines through a relay, 10 s epochs, 500 ms failure timeout");
	ok(ep_wait_u64(&ep.p_acked, 1, 30), "epoch 0 acknowledged: protected");
	uint64_t t0 = hr_now_ns(), worst_gap_ms = 0, last = hr_now_ns();
	int stayed = 1;
	/* one minute, looking every 50 ms: both sides must keep their roles */
	while (hr_now_ns() - t0 < 60e9) {
		usleep(50000);
		if (ep.b_state != HR_RS_BACKUP || ep.p_state != HR_RS_PROTECTED) {
			stayed = 0;
			break;
		}
		uint64_t now = hr_now_ns();
		if ((now - last) / 1000000 > worst_gap_ms)
			worst_gap_ms = (now - last) / 1000000;
		last = now;
	}
	ok(stayed, "60 s of 10 s epochs: no failover, primary %s, backup %s",
	   hr_role_state_name(ep.p_state), hr_role_state_name(ep.b_state));
	uint64_t acked = ep.p_acked;
	ok(acked >= 6 && acked <= 8, "the epochs kept their length (%llu acked in 60 s)",
	   (unsigned long long)acked);

	/* now the primary falls silent (a partition: nothing arrives, nothing
	 * closes): detected within the timeout, not after the 10 s epoch */
	uint64_t tk = hr_now_ns();
	ep.partitioned = 1;
	while (ep.b_state != HR_RS_PROMOTED && hr_now_ns() - tk < 10e9)
		usleep(5000);
	double ms = (hr_now_ns() - tk) / 1e6;
	ok(ep.b_state == HR_RS_PROMOTED, "a silent primary is detected and the backup promotes");
	ok(ms >= 400 && ms < 2500, "after %.0f ms of silence (timeout 500 ms; epoch 10 s)", ms);
	hr_engine_abort(ep.p); /* the primary's side of the partition, as a fence would */
	pthread_join(ep.tp, NULL);
	ep.fds[0] = -1;
	ep_finish(&ep);
	return tap_done();
}
