/*
 * t-netcommit.c - output commit for network frames, end to end through the
 * engines: a primary and a backup (mem backend with a network record
 * channel, "net1") over a relay.  Every frame leaves whole, once, in order,
 * and only after the backup acknowledged its epoch: with the link
 * partitioned (no ack can arrive) the guest goes on sending and nothing
 * more leaves.  The backup, built from the primary's HELLO with the same
 * devices (vm_options), promoted by hand: the frames it releases continue
 * the very same sequence, and no offset ever carries two contents.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/mem/mem.h"
#include "common/util.h"
#include "engine-pair.h"
#include "tap.h"

#define NET 1 /* the record channel */

struct seen {
	pthread_mutex_t lock;
	uint64_t records, last_step, bad_len, bad_body, out_of_order;
	uint64_t last_ns;
};

static struct seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Every released record of the net channel, from either side, as the
 * network outside sees it (ep_sink already checks offsets: repeats must
 * carry the same bytes, and nothing may leave a hole). */
static void on_output(struct ep_pair *ep, unsigned chan, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	uint64_t step = 0;

	if (chan != NET)
		return;
	pthread_mutex_lock(&seen.lock);
	for (int i = 0; i < 8 && len >= 8; i++)
		step |= (uint64_t)b[i] << (8 * i);
	if (len < 12 || len != hr_mem_record_bytes(NET, step))
		seen.bad_len++;
	for (size_t i = 12; i < len; i++)
		if (b[i] != (uint8_t)(step * 131 + NET * 31 + i)) {
			seen.bad_body++;
			break;
		}
	if (step > seen.last_step) { /* a promoted copy may repeat, never skip */
		if (step != seen.last_step + 1)
			seen.out_of_order++;
		seen.last_step = step;
		seen.records++;
	}
	seen.last_ns = hr_now_ns();
	pthread_mutex_unlock(&seen.lock);
}

/* Wait (at most timeout_s) until eng heard nothing from its peer for ms. */
static int wait_silent(struct hr_engine *eng, uint64_t ms, double timeout_s)
{
	uint64_t end = hr_now_ns() + (uint64_t)(timeout_s * 1e9);
	struct hr_engine_liveness l;
	while (hr_now_ns() < end) {
		hr_engine_liveness(eng, &l);
		if (l.peer_silent_ms != UINT64_MAX && l.peer_silent_ms >= ms)
			return 1;
		usleep(5000);
	}
	return 0;
}

static uint64_t records(void)
{
	pthread_mutex_lock(&seen.lock);
	uint64_t n = seen.records;
	pthread_mutex_unlock(&seen.lock);
	return n;
}

int main(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = "t-netcommit",
	    .ops = &hr_mem_ops,
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .vm = {.mem_bytes = 8 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=400 writes=8",
		   .options = "chans=2"},
	};
	/* the backup waits to be promoted by hand; its replica gets chans=2
	 * from the primary's HELLO, not from here */
	struct hr_engine_config bc = {.name = "t-netcommit-b", .silence_ms = 300};

	plan(10);
	ep.on_output = on_output;
	ok(ep_start(&ep, pc, bc, EP_RELAY) == 0, "engines started over a relay");
	int acked = ep_wait_u64(&ep.p_acked, 30, 30);
	uint64_t r0 = records();
	ok(acked && r0 > 20, "30 epochs acked, %llu frames released", (unsigned long long)r0);

	/* partition: no ack arrives any more */
	ep.partitioned = 1;
	/* an ack is released as it arrives: once nothing came for 200 ms,
	 * everything acked before the cut has left */
	struct hr_engine_liveness l;
	if (!wait_silent(ep.p, 200, 10))
		bail("the link never went silent after the cut");
	uint64_t r1 = records();
	/* the guest goes on emitting; watch well past the moment the primary
	 * calls its backup silent (300 ms of nothing), bounded */
	int silent = wait_silent(ep.p, 2000, 10);
	uint64_t r2 = records();
	ok(r2 == r1,
	   "partitioned until the primary heard nothing for 2 s: no frame left without an ack "
	   "(%llu, then %llu)",
	   (unsigned long long)r1, (unsigned long long)r2);
	hr_engine_liveness(ep.p, &l);
	ok(silent && l.peer_silent_ms >= 2000 && l.peer_silent_ms != UINT64_MAX,
	   "the primary heard nothing from its backup for %llu ms",
	   (unsigned long long)l.peer_silent_ms);

	/* the backup takes over from its last committed epoch */
	uint64_t before = records();
	hr_engine_promote(ep.b);
	uint64_t t0 = hr_now_ns();
	while (records() < before + 100 && hr_now_ns() - t0 < 10000000000ull)
		usleep(5000);
	ok(records() >= before + 100, "promoted backup: its frames continue (%llu more)",
	   (unsigned long long)(records() - before));
	pthread_mutex_lock(&seen.lock);
	ok(!seen.out_of_order, "frames leave in step order, none skipped (%llu out of order)",
	   (unsigned long long)seen.out_of_order);
	ok(!seen.bad_len, "no frame split or merged (%llu of a wrong length)",
	   (unsigned long long)seen.bad_len);
	ok(!seen.bad_body, "every frame's bytes are the guest's (%llu bad)",
	   (unsigned long long)seen.bad_body);
	pthread_mutex_unlock(&seen.lock);
	pthread_mutex_lock(&ep.lock);
	ok(!ep.out[NET].conflicts && !ep.out[NET].gaps,
	   "no offset of the frame stream carries two contents, no hole (%u, %u)",
	   ep.out[NET].conflicts, ep.out[NET].gaps);
	ok(!ep.out[0].conflicts && !ep.out[0].gaps, "the console agrees too (%u, %u)",
	   ep.out[0].conflicts, ep.out[0].gaps);
	pthread_mutex_unlock(&ep.lock);
	ep_finish(&ep);
	return tap_done();
}
