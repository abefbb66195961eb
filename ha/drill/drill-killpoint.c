/*
 * drill-killpoint.c - the replication tap's frame parser, and where the
 * kill lands.
 *
 * The tap (drill-relay.c) forwards bytes unchanged, but this file parses
 * the stream's frame headers (docs/stream-format.md: after the daemons'
 * one-line preamble, 16-byte big-endian headers "HRF1" type flags hdr_len
 * data_len), so it knows when epoch E begins, ends and is acknowledged, and
 * kills the victim at an exact point of that protocol:
 *
 *   during-send  B has received half of the first data frame of epoch E;
 *                the rest is never forwarded, the victim dies at once
 *   after-send   B has all of epoch E and acked it; the ack is held, the
 *                victim dies before it could see it (output of E unreleased)
 *   after-ack    the ack of E was delivered; the victim dies as soon as its
 *                released output reached the collector (at most epoch/2)
 *   mid-epoch    half an epoch after E began, when nothing is in flight
 *   random       a seeded delay in [0, 2 epochs) after E began; the report
 *                says which of the above it hit
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/unaligned.h"
#include "common/util.h"
#include "ha/drill/drill-tap.h"

#define FRAME_MAGIC 0x48524631u
enum { FT_EPOCH_BEGIN = 3, FT_PAGE_BATCH = 4, FT_STATE = 5, FT_EPOCH_END = 6, FT_ACK = 7 };

const char *drill_kill_at_name(enum drill_kill_at k)
{
	static const char *const names[] = {"random", "mid-epoch", "during-send", "after-send",
					    "after-ack"};
	return names[k];
}

/* Field 1 (varint) of a protobuf message: every message we look at starts with it. */
static uint64_t pb_field1(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	if (n < 2 || p[0] != 0x08)
		return UINT64_MAX;
	for (unsigned i = 1, shift = 0; i < n && shift < 64; i++, shift += 7) {
		v |= (uint64_t)(p[i] & 0x7f) << shift;
		if (!(p[i] & 0x80))
			return v;
	}
	return UINT64_MAX;
}

const char *drill_fault_name(enum drill_fault f)
{
	static const char *const names[] = {"kill",	      "torn",	  "partition",
					    "hang",	      "slow",	  "restart-primary",
					    "restart-backup", "failback", "witness-down"};
	return names[f];
}

void drill_kill_locked(struct drill_world *w, const char *what)
{
	if (w->killed)
		return;
	w->kill_ns = hr_now_ns();
	/* witness-down: the witness stops answering before the link tears */
	if (w->fault == DRILL_FAULT_WITNESS_DOWN && w->witness_pid > 0)
		kill(w->witness_pid, SIGSTOP);
	/* torn and partition act in the tap (drill-relay.c), from now on */
	/* slow: drill_tap_down holds B's frames back from now on */
	if (DRILL_FAULT_KILLS(w->fault) || w->fault == DRILL_FAULT_HANG) {
		int sig = w->fault == DRILL_FAULT_HANG ? SIGSTOP : SIGKILL;
		if (w->victim_pgid > 0)
			kill(-w->victim_pgid, sig);
		if (w->victim_pid > 0)
			kill(w->victim_pid, sig);
		for (unsigned i = 0; i < w->nr_victim_kids; i++)
			kill(w->victim_kids[i], sig);
	}
	/* a daemon restart: SIGTERM of the daemon alone, its workers go on; the
	 * drill (drill-restart.c) waits for it to exit and starts it again */
	if (DRILL_FAULT_IS_RESTART(w->fault) && w->victim_pid > 0)
		kill(w->victim_pid, SIGTERM);
	w->killed = 1;
	w->kill_con_len = w->len;
	w->kill_last_seq = w->nr_lines ? w->lines[w->nr_lines - 1].seq : 0;
	snprintf(w->kill_what, sizeof(w->kill_what), "%s", what);
	pthread_cond_broadcast(&w->cond);
}

static struct drill_wire_epoch *wire_epoch(struct drill_world *w, uint64_t epoch)
{
	for (unsigned i = w->nr_wire; i-- > 0;)
		if (w->wire[i].epoch == epoch)
			return &w->wire[i];
	if (w->nr_wire == w->cap_wire) {
		unsigned cap = w->cap_wire ? w->cap_wire * 2 : 1024;
		struct drill_wire_epoch *nw = realloc(w->wire, cap * sizeof(*nw));
		if (!nw)
			return NULL;
		w->wire = nw;
		w->cap_wire = cap;
	}
	w->wire[w->nr_wire] = (struct drill_wire_epoch){.epoch = epoch};
	return &w->wire[w->nr_wire++];
}

/* Describe where the protocol stands (for random kills). */
static void describe(struct tap *t, struct tap_pair *p, char *buf, size_t size)
{
	uint64_t now = hr_now_ns();

	if (!p || !t->have_end)
		snprintf(buf, size, "during the initial sync");
	else if (p->in_epoch)
		snprintf(buf, size,
			 "during-send: epoch %llu being sent (%llu bytes of it forwarded)",
			 (unsigned long long)p->epoch, (unsigned long long)p->epoch_bytes);
	else if (!t->have_ack || t->last_ack_epoch < t->last_end_epoch)
		snprintf(buf, size, "after-send: epoch %llu fully sent, its ack not yet back",
			 (unsigned long long)t->last_end_epoch);
	else
		snprintf(buf, size,
			 "mid-epoch: nothing in flight; epoch %llu began %.1f ms and was acked "
			 "%.1f ms before",
			 (unsigned long long)t->last_ack_epoch, (now - t->last_begin_ns) / 1e6,
			 (now - t->last_ack_ns) / 1e6);
}

/* A->B bytes.  Returns how many of them to forward. */
size_t drill_tap_up(struct tap *t, struct tap_pair *p, const uint8_t *buf, size_t n)
{
	struct drill_world *w = t->w;
	struct tap_dir *d = &p->up;
	size_t i = 0;

	while (i < n) {
		if (d->broken)
			return n;
		if (d->preamble) {
			const uint8_t *nl = memchr(buf + i, '\n', n - i);
			if (!nl)
				return n;
			i = (size_t)(nl - buf) + 1;
			d->preamble = 0;
			continue;
		}
		if (d->hdr_have < 16) {
			size_t k = 16 - d->hdr_have < n - i ? 16 - d->hdr_have : n - i;
			memcpy(d->hdr + d->hdr_have, buf + i, k);
			d->hdr_have += (unsigned)k;
			i += k;
			if (p->in_epoch)
				p->epoch_bytes += k;
			if (d->hdr_have < 16)
				return n;
			if (hr_get_be32(d->hdr) != FRAME_MAGIC) {
				d->broken = 1;
				w->tap_broken = 1;
				return n;
			}
			d->type = (uint16_t)(d->hdr[4] << 8 | d->hdr[5]);
			d->hdr_len = (uint32_t)hr_get_be32(d->hdr + 8);
			d->body_len = d->hdr_len + hr_get_be32(d->hdr + 12);
			d->body_pos = 0;
			d->pb_have = 0;
			if (d->type == FT_EPOCH_BEGIN) {
				p->in_epoch = 1;
				p->epoch_bytes = 16;
			}
			if (p->cut_next_data && (d->type == FT_PAGE_BATCH || d->type == FT_STATE)) {
				uint64_t data = d->body_len - d->hdr_len;
				p->cut_at = data ? d->hdr_len + data / 2 : d->hdr_len / 2 + 1;
				p->cut_next_data = 0;
			}
		}
		size_t k =
		    d->body_len - d->body_pos < n - i ? (size_t)(d->body_len - d->body_pos) : n - i;
		if (p->cut_at && d->body_pos + k >= p->cut_at) {
			size_t fwd = i + (size_t)(p->cut_at - d->body_pos);
			char what[200];
			p->epoch_bytes += p->cut_at - d->body_pos;
			snprintf(what, sizeof(what),
				 "during-send: the backup got %llu bytes of epoch %llu, cut inside "
				 "its %s frame",
				 (unsigned long long)p->epoch_bytes, (unsigned long long)p->epoch,
				 d->type == FT_STATE ? "STATE" : "first PAGE_BATCH");
			drill_kill_locked(w, what);
			p->cut_at = 0;
			/* a slow backup or a restart is a moment, not a cut */
			if (DRILL_FAULT_CUTS(w->fault)) {
				p->up_cut = 1;
				return fwd;
			}
		}
		if (d->body_pos < d->hdr_len && d->pb_have < sizeof(d->pb)) {
			size_t want = d->hdr_len - d->body_pos;
			if (want > sizeof(d->pb) - d->pb_have)
				want = sizeof(d->pb) - d->pb_have;
			if (want > k)
				want = k;
			memcpy(d->pb + d->pb_have, buf + i, want);
			d->pb_have += (unsigned)want;
		}
		d->body_pos += k;
		i += k;
		if (p->in_epoch)
			p->epoch_bytes += k;
		if (d->body_pos < d->body_len)
			return n;
		/* a whole frame went by */
		d->hdr_have = 0;
		uint64_t e = pb_field1(d->pb, d->pb_have);
		if (d->type == FT_EPOCH_BEGIN && e != UINT64_MAX) {
			p->epoch = e;
			t->last_begin_ns = hr_now_ns();
			struct drill_wire_epoch *we = wire_epoch(w, e);
			if (we)
				we->begin_ns = t->last_begin_ns;
			if (w->armed && !w->killed && e >= w->kill_epoch) {
				if (w->kill_at == DRILL_KILL_DURING_SEND && !p->cut_next_data &&
				    !p->cut_at)
					p->cut_next_data = 1;
				if (w->kill_at == DRILL_KILL_RANDOM && !t->deadline_ns) {
					t->deadline_ns =
					    t->last_begin_ns + w->random_delay_us * 1000;
					t->deadline_kind = DRILL_KILL_RANDOM;
				}
			}
		} else if (d->type == FT_EPOCH_END && e != UINT64_MAX) {
			struct drill_wire_epoch *we = wire_epoch(w, e);
			if (we) {
				we->end_ns = hr_now_ns();
				we->bytes = p->epoch_bytes;
			}
			p->in_epoch = 0;
			t->last_end_epoch = e;
			t->have_end = 1;
			if (w->armed && !w->killed && w->kill_at == DRILL_KILL_AFTER_SEND &&
			    e >= w->kill_epoch && !p->hold_ack_of_end) {
				p->hold_ack_of_end = 1;
				p->held_epoch = e;
			}
		}
	}
	return n;
}

/* B->A bytes: buffered per frame; returns 0, or -1 when forwarding stops. */
/* A whole B->A frame for A: now, or DRILL_SLOW_MS later once a slow
 * backup was simulated (order kept: everything queues behind). */
static int down_write(struct drill_world *w, struct tap_pair *p, const uint8_t *buf, size_t len)
{
	if (!(w->killed && w->fault == DRILL_FAULT_SLOW) && !p->dq_n)
		return hr_write_all(p->a, buf, len);
	if (p->dq_n == p->dq_cap) {
		unsigned cap = p->dq_cap ? p->dq_cap * 2 : 64;
		struct delayed *n = realloc(p->dq, cap * sizeof(*n));
		if (!n)
			return -1;
		p->dq = n;
		p->dq_cap = cap;
	}
	uint8_t *copy = malloc(len);
	if (!copy)
		return -1;
	memcpy(copy, buf, len);
	p->dq[p->dq_n++] = (struct delayed){hr_now_ns() + DRILL_SLOW_MS * 1000000ull, copy, len};
	return 0;
}

int drill_tap_flush_slow(struct tap *t)
{
	uint64_t now = hr_now_ns();
	int next_ms = -1;

	for (unsigned i = 0; i < t->nr; i++) {
		struct tap_pair *p = &t->pairs[i];
		unsigned k = 0;
		while (k < p->dq_n && p->dq[k].due_ns <= now) {
			(void)hr_write_all(p->a, p->dq[k].buf, p->dq[k].len);
			free(p->dq[k].buf);
			k++;
		}
		memmove(p->dq, p->dq + k, (p->dq_n - k) * sizeof(*p->dq));
		p->dq_n -= k;
		if (p->dq_n) {
			int ms = (int)((p->dq[0].due_ns - now) / 1000000) + 1;
			if (next_ms < 0 || ms < next_ms)
				next_ms = ms;
		}
	}
	return next_ms;
}

int drill_tap_down(struct tap *t, struct tap_pair *p, const uint8_t *buf, size_t n)
{
	struct drill_world *w = t->w;
	struct tap_dir *d = &p->down;

	for (size_t i = 0; i < n;) {
		if (d->broken || d->preamble) {
			size_t k = n - i;
			if (d->preamble) {
				const uint8_t *nl = memchr(buf + i, '\n', n - i);
				if (nl) {
					k = (size_t)(nl - (buf + i)) + 1;
					d->preamble = 0;
				}
			}
			if (hr_write_all(p->a, buf + i, k) < 0)
				return -1;
			i += k;
			continue;
		}
		/* accumulate one frame in hold */
		size_t need;
		if (d->hold_len < 16)
			need = 16 - d->hold_len;
		else
			need = (size_t)(16 + d->body_len - d->hold_len);
		size_t k = need < n - i ? need : n - i;
		if (d->hold_len + k > d->hold_cap) {
			size_t cap = (d->hold_len + k) * 2;
			uint8_t *nh = realloc(d->hold, cap);
			if (!nh)
				return -1;
			d->hold = nh;
			d->hold_cap = cap;
		}
		memcpy(d->hold + d->hold_len, buf + i, k);
		d->hold_len += k;
		i += k;
		if (d->hold_len == 16) {
			if (hr_get_be32(d->hold) != FRAME_MAGIC) {
				d->broken = 1;
				w->tap_broken = 1;
				if (down_write(w, p, d->hold, d->hold_len) < 0)
					return -1;
				d->hold_len = 0;
				continue;
			}
			d->type = (uint16_t)(d->hold[4] << 8 | d->hold[5]);
			d->hdr_len = (uint32_t)hr_get_be32(d->hold + 8);
			d->body_len = d->hdr_len + hr_get_be32(d->hold + 12);
		}
		if (d->hold_len < 16 || d->hold_len < 16 + d->body_len)
			continue;
		/* one whole frame */
		if (d->type == FT_ACK) {
			uint64_t e = pb_field1(d->hold + 16, d->hdr_len < 32 ? d->hdr_len : 32);
			uint64_t now = hr_now_ns();
			struct drill_wire_epoch *we = e != UINT64_MAX ? wire_epoch(w, e) : NULL;
			if (we)
				we->ack_ns = now;
			if (e != UINT64_MAX && e + 1 > w->acked)
				w->acked = e + 1;
			if (p->hold_ack_of_end && e != UINT64_MAX && e >= p->held_epoch &&
			    !w->killed) {
				char what[200];
				snprintf(what, sizeof(what),
					 "after-send: the backup committed and acked epoch %llu; "
					 "the ack was held, the primary never saw it",
					 (unsigned long long)e);
				drill_kill_locked(w, what);
				if (DRILL_FAULT_CUTS(w->fault)) {
					p->down_cut = 1;
					d->hold_len = 0;
					return -1;
				}
			}
			if (e != UINT64_MAX) {
				t->last_ack_epoch = e;
				t->last_ack_ns = now;
				t->have_ack = 1;
			}
			if (down_write(w, p, d->hold, d->hold_len) < 0)
				return -1;
			d->hold_len = 0;
			if (w->armed && !w->killed && e != UINT64_MAX && e >= w->kill_epoch) {
				if (w->kill_at == DRILL_KILL_AFTER_ACK && !t->deadline_ns) {
					t->deadline_ns = now + w->epoch_us * 500;
					t->deadline_kind = DRILL_KILL_AFTER_ACK;
					t->deadline_epoch = e;
					t->ack_con_len = w->len;
				}
				if (w->kill_at == DRILL_KILL_MID_EPOCH && !t->deadline_ns) {
					uint64_t mid = t->last_begin_ns + w->epoch_us * 500;
					t->deadline_ns = mid > now ? mid : now;
					t->deadline_kind = DRILL_KILL_MID_EPOCH;
					t->deadline_epoch = e;
				}
			}
			continue;
		}
		if (down_write(w, p, d->hold, d->hold_len) < 0)
			return -1;
		d->hold_len = 0;
	}
	return 0;
}

void drill_tap_timers(struct tap *t)
{
	struct drill_world *w = t->w;
	uint64_t now = hr_now_ns();
	struct tap_pair *p = drill_tap_parsed(t);
	char what[256];

	if (!t->deadline_ns || w->killed)
		return;
	switch (t->deadline_kind) {
	case DRILL_KILL_AFTER_ACK:
		if (w->len > t->ack_con_len || now >= t->deadline_ns) {
			snprintf(what, sizeof(what),
				 "after-ack: ack of epoch %llu delivered %.2f ms before; %s",
				 (unsigned long long)t->deadline_epoch,
				 (now - t->last_ack_ns) / 1e6,
				 w->len > t->ack_con_len
				     ? "its released output had reached the collector"
				     : "no output was released within epoch/2");
			drill_kill_locked(w, what);
		}
		break;
	case DRILL_KILL_MID_EPOCH:
		if (now < t->deadline_ns)
			return;
		if (p && (p->in_epoch || t->last_ack_epoch < t->last_end_epoch)) {
			t->deadline_ns = 0; /* a send started: try again after its ack */
			return;
		}
		describe(t, p, what, sizeof(what));
		drill_kill_locked(w, what);
		break;
	case DRILL_KILL_RANDOM:
		if (now < t->deadline_ns)
			return;
		describe(t, p, what, sizeof(what));
		char full[512];
		snprintf(full, sizeof(full), "random (%.1f ms after epoch %llu began) -> %s",
			 w->random_delay_us / 1e3, (unsigned long long)w->kill_epoch, what);
		drill_kill_locked(w, full);
		break;
	}
}
