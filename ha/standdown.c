/* standdown.c - the cluster's word and a primary's silent backup (standdown.h). */
#include "ha/standdown.h"

enum hr_ha_word_use hr_ha_word_judge(const struct hr_ha_word *w, uint64_t last_rx_ns)
{
	if (!w->given)
		return HR_HA_WORD_NONE;
	return w->given_ns > last_rx_ns ? HR_HA_WORD_FRESH : HR_HA_WORD_STALE;
}

int hr_ha_silent_two_beats(uint64_t last_rx_ns, uint64_t now_ns, uint64_t heartbeat_ms)
{
	return now_ns >= last_rx_ns && now_ns - last_rx_ns >= 2 * heartbeat_ms * 1000000ull;
}

enum hr_ha_drop hr_ha_drop_silent(const struct hr_ha_word *w, uint64_t last_rx_ns, uint64_t now_ns,
				  uint64_t heartbeat_ms, const char **why_r)
{
	const char *why;
	enum hr_ha_drop d = HR_HA_DROP_KEEP;

	switch (hr_ha_word_judge(w, last_rx_ns)) {
	case HR_HA_WORD_NONE:
		why = "no word from the cluster: a silent backup may be promoting";
		break;
	case HR_HA_WORD_STALE:
		why = "the cluster's word came before the backup's last sign of life";
		break;
	default:
		if (hr_ha_silent_two_beats(last_rx_ns, now_ns, heartbeat_ms)) {
			why = "the backup is silent and the cluster confirms its copy is gone";
			d = HR_HA_DROP_NOW;
		} else {
			why = "the cluster's word came, but the backup was heard within two "
			      "heartbeats";
		}
		break;
	}
	if (why_r)
		*why_r = why;
	return d;
}

int hr_ha_hang_up_on_word(int primary_link, uint64_t last_rx_ns, uint64_t now_ns,
			  uint64_t heartbeat_ms)
{
	return primary_link && last_rx_ns &&
	       hr_ha_silent_two_beats(last_rx_ns, now_ns, heartbeat_ms);
}

enum hr_ha_peer_runs hr_ha_peer_runs(int speaking, const char **why_r)
{
	if (why_r)
		*why_r = speaking ? "the peer also runs this VM and releases its output: two hosts "
				    "speak for it"
				  : "the peer runs this VM and releases its output; the copy here "
				    "held its output: it stands down";
	return speaking ? HR_HA_RUNS_BOTH_SPEAK : HR_HA_RUNS_STAND_DOWN;
}
