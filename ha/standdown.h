/*
 * standdown.h - a primary and the cluster's word that its backup's copy is
 * gone (hareplicate promote on this host in cluster mode: the peer's
 * instance stopped or its node fenced; contrib/ocf/README.md): when does
 * the word let the primary drop its silent backup and speak alone?  Pure
 * functions of timestamps (CLOCK_MONOTONIC ns) and flags; the engine
 * (core/engine-primary.c, core/engine.c) reads the clock and acts.
 *
 * The rules:
 *   - the word is about a silence only if it came after the backup's last
 *     byte; a word followed by a sign of life from the backup was about
 *     something else (or wrong) and never lets output leave on a later
 *     silence or loss: it is forgotten when that session ends;
 *   - a backup silent for two heartbeats, with a fresh word, is dropped:
 *     the session ends as a lost backup (-HR_EPEERGONE), and the word then
 *     lets the guest speak alone (ha/failover.c hr_ha_alone_output);
 *   - when the word comes, a primary's link to a backup silent for two
 *     heartbeats already is hung up on (a node fenced behind a cut link
 *     leaves no FIN, no reset): a send blocked on it ends, and with it the
 *     session;
 *   - a peer that runs the VM itself, met on re-protection: a copy that
 *     held its output stands down (hr_ha_peer_runs).
 * tests/t-standdown.c is the table.
 */
#ifndef HR_HA_STANDDOWN_H
#define HR_HA_STANDDOWN_H

#include <stdint.h>

/* The cluster's word, as the engine keeps it (until the next backup). */
struct hr_ha_word {
	int given;	   /* hr_engine_cluster_release was called */
	uint64_t given_ns; /* when */
};

enum hr_ha_word_use {
	HR_HA_WORD_NONE = 0, /* no word */
	HR_HA_WORD_FRESH,    /* it came after the backup's last byte: about this silence */
	HR_HA_WORD_STALE,    /* the backup spoke after it: not about this loss; forget it */
};

/* last_rx_ns: the backup's last byte (0: nothing yet). */
enum hr_ha_word_use hr_ha_word_judge(const struct hr_ha_word *w, uint64_t last_rx_ns);

enum hr_ha_drop {
	HR_HA_DROP_KEEP = 0, /* keep waiting for the backup (its output stays held) */
	HR_HA_DROP_NOW,	     /* drop it: the cluster confirms its copy is gone */
};

/* A primary waiting for an ack, the backup silent since last_rx_ns. */
enum hr_ha_drop hr_ha_drop_silent(const struct hr_ha_word *w, uint64_t last_rx_ns, uint64_t now_ns,
				  uint64_t heartbeat_ms, const char **why_r);

/* The word arrives at now_ns: hang up on the backup's link?  primary_link:
 * a primary's session with a backup is open (a backup's own link, or none,
 * is never hung up on); last_rx_ns 0: nothing heard yet (no hang-up). */
int hr_ha_hang_up_on_word(int primary_link, uint64_t last_rx_ns, uint64_t now_ns,
			  uint64_t heartbeat_ms);

/* Re-protection asked the peer for a backup, and it answered that it runs
 * the VM itself, releasing output (preamble code "runs": ha/accept.c's
 * HR_HA_RUNS).  A copy here that held its output stands down: its guest
 * stops, its held output is dropped - nothing it held ever left, so the
 * peer's copy is at least as new.  One that speaks as well is one of two
 * speakers (release was allowed without proof): it runs on and says so. */
enum hr_ha_peer_runs {
	HR_HA_RUNS_STAND_DOWN = 0, /* +stand-down: demoted here */
	HR_HA_RUNS_BOTH_SPEAK,	   /* two hosts speak: an error for the operator */
};
enum hr_ha_peer_runs hr_ha_peer_runs(int speaking, const char **why_r);

/* Silent for two heartbeats: the measure both rules use. */
int hr_ha_silent_two_beats(uint64_t last_rx_ns, uint64_t now_ns, uint64_t heartbeat_ms);

#endif
