/*
 * t-standdown.c - a primary, its silent backup and the cluster's word
 * (ha/standdown.c), one table row each: the word judged against the
 * backup's last byte; drop the backup or keep waiting; hang up on its link
 * when the word comes or not.  Times in ms from an arbitrary origin.
 */
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "ha/standdown.h"

#define MS(x) ((uint64_t)(x)*1000000ull)
#define HB    100 /* heartbeat_ms in every row: two heartbeats are 200 ms */

static const struct {
	const char *what;
	int given;
	uint64_t given_ms, rx_ms, now_ms;
	enum hr_ha_word_use use;
	enum hr_ha_drop drop;
} drop_rows[] = {
    {"no word, silent for long", 0, 0, 1000, 9000, HR_HA_WORD_NONE, HR_HA_DROP_KEEP},
    {"no word, a given time left over", 0, 5000, 1000, 9000, HR_HA_WORD_NONE, HR_HA_DROP_KEEP},
    {"word after the last byte, silent 2 heartbeats", 1, 1100, 1000, 1200, HR_HA_WORD_FRESH,
     HR_HA_DROP_NOW},
    {"word after the last byte, silent long", 1, 1500, 1000, 9000, HR_HA_WORD_FRESH,
     HR_HA_DROP_NOW},
    {"word after the last byte, silent just under 2 heartbeats", 1, 1100, 1000, 1199,
     HR_HA_WORD_FRESH, HR_HA_DROP_KEEP},
    {"word after the last byte, just heard", 1, 1001, 1000, 1001, HR_HA_WORD_FRESH,
     HR_HA_DROP_KEEP},
    {"word at the same instant as the last byte", 1, 1000, 1000, 9000, HR_HA_WORD_STALE,
     HR_HA_DROP_KEEP},
    {"word before the last byte (the backup spoke after it)", 1, 900, 1000, 9000, HR_HA_WORD_STALE,
     HR_HA_DROP_KEEP},
    {"word long before, the backup silent since", 1, 10, 1000, 90000, HR_HA_WORD_STALE,
     HR_HA_DROP_KEEP},
    {"word, nothing ever heard", 1, 1, 0, 9000, HR_HA_WORD_FRESH, HR_HA_DROP_NOW},
    {"word, the clock read before the last byte", 1, 1100, 1000, 999, HR_HA_WORD_FRESH,
     HR_HA_DROP_KEEP},
};

static const struct {
	const char *what;
	int primary_link;
	uint64_t rx_ms, now_ms;
	int hang_up;
} hang_rows[] = {
    {"a primary's backup silent 2 heartbeats", 1, 1000, 1200, 1},
    {"a primary's backup silent long", 1, 1000, 60000, 1},
    {"a primary's backup heard just now", 1, 1000, 1010, 0},
    {"a primary's backup silent just under 2 heartbeats", 1, 1000, 1199, 0},
    {"a primary's backup never heard", 1, 0, 60000, 0},
    {"no primary link (a backup, or no session)", 0, 1000, 60000, 0},
};

int main(void)
{
	unsigned nd = sizeof(drop_rows) / sizeof(drop_rows[0]);
	unsigned nh = sizeof(hang_rows) / sizeof(hang_rows[0]);
	plan((int)(nd + nh + 2));

	for (unsigned i = 0; i < nd; i++) {
		struct hr_ha_word w = {drop_rows[i].given, MS(drop_rows[i].given_ms)};
		const char *why = NULL;
		enum hr_ha_word_use use = hr_ha_word_judge(&w, MS(drop_rows[i].rx_ms));
		enum hr_ha_drop d = hr_ha_drop_silent(&w, MS(drop_rows[i].rx_ms),
						      MS(drop_rows[i].now_ms), HB, &why);
		ok(use == drop_rows[i].use && d == drop_rows[i].drop && why && *why,
		   "%s: word %d (want %d), drop %d (want %d): %s", drop_rows[i].what, (int)use,
		   (int)drop_rows[i].use, (int)d, (int)drop_rows[i].drop, why ? why : "no why");
	}
	for (unsigned i = 0; i < nh; i++) {
		int h = hr_ha_hang_up_on_word(hang_rows[i].primary_link, MS(hang_rows[i].rx_ms),
					      MS(hang_rows[i].now_ms), HB);
		ok(h == hang_rows[i].hang_up, "hang up: %s -> %d (want %d)", hang_rows[i].what, h,
		   hang_rows[i].hang_up);
	}
	/* both rules measure silence alike: at the boundary, drop and hang-up agree */
	struct hr_ha_word fresh = {1, MS(1001)};
	int agree = 1;
	for (uint64_t now = 1190; now <= 1210; now++)
		agree &= (hr_ha_drop_silent(&fresh, MS(1000), MS(now), HB, NULL) ==
			  HR_HA_DROP_NOW) == hr_ha_hang_up_on_word(1, MS(1000), MS(now), HB);
	ok(agree, "a fresh word drops a silent backup exactly when it would hang up on it");
	const char *w0 = NULL, *w1 = NULL;
	ok(hr_ha_peer_runs(0, &w0) == HR_HA_RUNS_STAND_DOWN &&
	       hr_ha_peer_runs(1, &w1) == HR_HA_RUNS_BOTH_SPEAK && w0 && w1 && strcmp(w0, w1),
	   "the peer runs the VM: a held copy stands down, a speaking one is one of two speakers");
	return tap_done();
}
