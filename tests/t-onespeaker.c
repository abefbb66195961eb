/*
 * t-onespeaker.c - one primary under a torn link (docs/design.md contract
 * 4).  A relay between primary and backup closes both sides at once, as a
 * middlebox resetting the connection would: each side sees its peer's
 * connection end while the peer is alive.  The backup promotes; the
 * primary must then release nothing (it holds the output: +output-held),
 * so exactly one host speaks for the VM.  With --unprotected-output
 * release (the operator's explicit choice of availability) the same cut
 * makes two speakers: shown here so the option's danger is measured, not
 * assumed.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

/* 1 if the pair protected the VM and both reacted to the cut in time */
static int cut(int release, int *p_after_r, int *b_after_r, enum hr_role_state *p_state_r)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = "t-onespeaker",
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .unprotected_release = release,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=1000 writes=8"},
	};
	struct hr_engine_config bc = {
	    .name = "t-onespeaker-b", .silence_ms = 300, .auto_promote = 1};

	ep_start(&ep, pc, bc, EP_RELAY);
	int ready = ep_wait_u64(&ep.p_acked, 20, 30);
	ep.torn = 1; /* both sides see their peer's connection end */
	/* both have reacted: the backup promoted (its held output replayed
	 * before +promoted), the primary lost its backup and told its output
	 * policy (+output-held, or +output-released where allowed) */
	uint64_t policy = 1ull << (release ? HR_RE_OUTPUT_RELEASED : HR_RE_OUTPUT_HELD);
	int reacted = ep_wait_events(&ep.b_events, 1ull << HR_RE_PROMOTED, 10) &&
		      ep_wait_events(&ep.p_events, (1ull << HR_RE_BACKUP_LOST) | policy, 10);
	if (!ready || !reacted)
		diag("release=%d: %s (primary %s, backup %s)", release,
		     !ready ? "20 epochs not acknowledged" : "no reaction to the cut",
		     hr_role_state_name(ep.p_state), hr_role_state_name(ep.b_state));
	/* who speaks for the VM during the next second: a bounded window, as
	 * "the primary released nothing" is a negative check; the backup's
	 * output in the same window (main's checks) shows the guest spoke */
	uint64_t p0 = ep.p_bytes, b0 = ep.b_bytes;
	usleep(1000000);
	*p_after_r = (int)(ep.p_bytes - p0);
	*b_after_r = (int)(ep.b_bytes - b0);
	*p_state_r = ep.p_state;
	ep_finish(&ep);
	return ready && reacted;
}

int main(void)
{
	int p_after, b_after;
	enum hr_role_state ps;

	plan(4);
	int reacted = cut(0, &p_after, &b_after, &ps);
	ok(reacted && ps == HR_RS_UNPROTECTED && b_after > 0,
	   "torn link: the backup promoted and speaks (%d bytes in 1 s); the primary is %s",
	   b_after, hr_role_state_name(ps));
	ok(reacted && p_after == 0,
	   "torn link, default: the primary released nothing (%d bytes): one speaker", p_after);
	reacted = cut(1, &p_after, &b_after, &ps);
	ok(reacted && b_after > 0 && p_after > 0,
	   "torn link with release allowed: two speakers (primary %d, backup %d bytes)", p_after,
	   b_after);
	ok(ps == HR_RS_UNPROTECTED, "... which is why holding is the default");
	return tap_done();
}
