#include "ha/failover.h"

int hr_ha_speaks_after_loss(int was_speaking, uint64_t whole_epochs_sent)
{
	return was_speaking && whole_epochs_sent == 0;
}

uint64_t hr_ha_reprotect_delay_ms(uint64_t base_ms, unsigned failures)
{
	uint64_t ms = base_ms;
	for (unsigned i = 0; i < failures && ms < HR_HA_REPROTECT_MAX_MS; i++)
		ms *= 2;
	return ms < HR_HA_REPROTECT_MAX_MS ? ms : HR_HA_REPROTECT_MAX_MS;
}

void hr_ha_heard(struct hr_ha_monitor *m, uint64_t now_ns)
{
	m->last_rx_ns = now_ns;
}

enum hr_ha_verdict hr_ha_decide(struct hr_ha_monitor *m, uint64_t now_ns, int stream_ended)
{
	int silent = m->silence_ms && now_ns - m->last_rx_ns >= m->silence_ms * 1000000ull;

	if (!stream_ended && !silent) {
		/* a claim sent while it was silent was granted: we own the VM now */
		if (!m->lease || !hr_ha_lease_promotion_granted(m->lease))
			return HR_HA_WAIT;
		m->why = "the witness granted a claim sent while the primary was silent";
		return HR_HA_PROMOTE;
	}
	m->why = stream_ended ? "stream ended" : "stream silent";
	if (!m->have_commit) {
		m->why = "stream gone before the first complete epoch: nothing to promote";
		return HR_HA_GIVE_UP;
	}
	if (!m->auto_promote)
		return HR_HA_WAIT; /* the operator decides (hareplicate failover) */
	return hr_ha_may_promote(m, now_ns);
}

enum hr_ha_verdict hr_ha_may_promote(struct hr_ha_monitor *m, uint64_t now_ns)
{
	if (!m->lease || !m->lease->addr)
		return HR_HA_PROMOTE;
	int r = hr_ha_lease_claim_promotion(m->lease, now_ns);
	if (r > 0)
		return HR_HA_PROMOTE;
	m->why = m->lease->why;
	return r < 0 ? HR_HA_STALE : HR_HA_WAIT;
}

int hr_ha_poll_ms(const struct hr_ha_monitor *m, uint64_t now_ns)
{
	if (m->lease && m->lease->addr &&
	    (m->lease->next_ask_ns > now_ns || hr_ha_lease_busy(m->lease)))
		return hr_ha_lease_poll_ms(m->lease, now_ns);
	if (!m->silence_ms)
		return -1;
	uint64_t due = m->last_rx_ns + m->silence_ms * 1000000ull;
	if (now_ns >= due)
		return 0;
	return (int)((due - now_ns) / 1000000ull) + 1;
}

enum hr_ha_output hr_ha_alone_output(struct hr_ha_alone *a, uint64_t now_ns)
{
	if (a->release_allowed) {
		a->why = "release allowed without proof (--unprotected-output release)";
		return HR_HA_OUTPUT_RELEASE;
	}
	if (a->cluster_release) {
		a->why = "the cluster confirmed that the peer holds no copy (stopped or fenced)";
		return HR_HA_OUTPUT_RELEASE;
	}
	if (a->lease && a->lease->addr) {
		int r = hr_ha_lease_claim_owner(a->lease, now_ns);
		if (r < 0) {
			a->why = "the witness says the VM runs on another host";
			return HR_HA_OUTPUT_STAND_DOWN;
		}
		a->why = r ? "this host holds the witness's lease" : a->lease->why;
		return r ? HR_HA_OUTPUT_RELEASE : HR_HA_OUTPUT_HOLD;
	}
	if (a->speaking) {
		a->why = "this host speaks for the VM (promoted); releasing output";
		return HR_HA_OUTPUT_RELEASE;
	}
	a->why = "nothing proves the backup is gone (it may be promoting behind a torn link): "
		 "guest output stays held";
	return HR_HA_OUTPUT_HOLD;
}

int hr_ha_alone_poll_ms(const struct hr_ha_alone *a, uint64_t now_ns)
{
	if (!a->lease || !a->lease->addr)
		return -1;
	/* ask again when due (or look for the answer), and again when the lease ends */
	int ms = hr_ha_lease_poll_ms(a->lease, now_ns);
	uint64_t until = a->lease->until_ns;
	if (until > now_ns && (until - now_ns) / 1000000 + 1 < (uint64_t)ms)
		ms = (int)((until - now_ns) / 1000000) + 1;
	return ms;
}
