/*
 * drill-tap.h - the replication tap's insides, shared by the relay
 * (drill-relay.c: sockets, forwarding) and the frame parser that decides
 * where the kill lands (drill-killpoint.c).  Everything here is touched
 * with the world's lock held.
 */
#ifndef HR_DRILL_TAP_H
#define HR_DRILL_TAP_H

#include <stddef.h>
#include <stdint.h>

#include "ha/drill/drill.h"

#define MAX_PAIRS 16

/* One direction of a relayed connection, as the frame parser sees it. */
struct tap_dir {
	int preamble; /* still in the daemons' preamble line */
	int broken;   /* stopped parsing: forward blindly */
	uint8_t hdr[16];
	unsigned hdr_have;
	uint16_t type;
	uint32_t hdr_len;
	uint64_t body_len, body_pos;
	uint8_t pb[32]; /* start of the protobuf header */
	unsigned pb_have;
	/* down direction: a frame is forwarded only once complete */
	uint8_t *hold;
	size_t hold_len, hold_cap;
};

/* One relayed connection.  The tap's: A (a worker or daemon) -> B's
 * daemon; parsed (kill points, wire figures) when it began before the
 * moment, forwarded unread after it.  The back relay's: B -> A's daemon,
 * never parsed.  Both obey the fault once it happened (drill-relay.c). */
struct tap_pair {
	int a, b; /* a: the connecting side, b: the upstream daemon (-1: sink) */
	unsigned id;
	int parsed; /* frames are parsed: the first A->B session(s), before the moment */
	int back;   /* the B->A relay's */
	struct tap_dir up, down;
	int up_cut;   /* stop forwarding A->B */
	int down_cut; /* stop forwarding B->A */
	int in_epoch; /* between EPOCH_BEGIN and EPOCH_END */
	uint64_t epoch, epoch_bytes, sent_bytes;
	int cut_next_data;   /* during-send: cut the next PAGE_BATCH/STATE frame */
	uint64_t cut_at;     /* ... at this body position (0 = not chosen) */
	int hold_ack_of_end; /* after-send: kill when the ack of `held_epoch` comes */
	uint64_t held_epoch;
	/* --fault slow: B->A frames waiting for their time */
	struct delayed {
		uint64_t due_ns;
		uint8_t *buf;
		size_t len;
	} * dq;
	unsigned dq_n, dq_cap;
};

/* The tap thread's state: its connections and the pending timed kill. */
struct tap {
	struct drill_world *w;
	struct tap_pair pairs[MAX_PAIRS];
	unsigned nr;
	/* timed kills */
	uint64_t deadline_ns; /* 0 = none */
	int deadline_kind;    /* DRILL_KILL_* */
	uint64_t deadline_epoch, ack_con_len;
	uint64_t last_begin_ns, last_ack_ns, last_ack_epoch, last_end_epoch;
	int have_ack, have_end;
};

/* The newest parsed pair (the protocol the kill points watch), or NULL. */
struct tap_pair *drill_tap_parsed(struct tap *t);

/* A->B bytes of pair p (not cut yet).  Returns how many of them to forward:
 * fewer than n when the kill cut the stream inside a frame. */
size_t drill_tap_up(struct tap *t, struct tap_pair *p, const uint8_t *buf, size_t n);
/* B->A bytes of pair p: buffered per frame and forwarded to p->a whole.
 * 0, or -1 when forwarding stops (write error, or the ack was held for a
 * kill: then p->down_cut is set). */
int drill_tap_down(struct tap *t, struct tap_pair *p, const uint8_t *buf, size_t n);
/* --fault slow: forward the B->A frames whose time has come; returns how
 * long until the next one (ms), -1 if none waits. */
int drill_tap_flush_slow(struct tap *t);

/* The timed kills (after-ack, mid-epoch, random): kill when one is due. */
void drill_tap_timers(struct tap *t);

#endif
