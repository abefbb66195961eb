/*
 * drill-wire.c - the drill's two observers in the "out" namespace.
 *
 * Console collector: accepts the workers' console connections (frames
 * `u64 offset LE | u32 len LE | bytes`, any number of connections over
 * time) and assembles one stream by offset.  Bytes it already holds must
 * come again identical (else a "two contents" violation); a frame starting
 * beyond its end is a gap.  Complete memwalk progress lines are checked as
 * they arrive: seq exactly +1 over the whole stream, errors=0.
 *
 * Replication tap: a TCP relay between the primary's worker and the backup
 * daemon.  It forwards bytes unchanged but parses the stream's frame headers
 * (docs/stream-format.md: after the daemons' one-line preamble, 16-byte
 * big-endian headers "HRF1" type flags hdr_len data_len), so it knows when
 * epoch E begins, ends and is acknowledged, and kills the victim at an
 * exact point of that protocol:
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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ha/drill/drill.h"
#include "common/util.h"

#define MAX_CONNS   16
#define MAX_PAIRS   8
#define FRAME_MAGIC 0x48524631u
enum { FT_EPOCH_BEGIN = 3, FT_PAGE_BATCH = 4, FT_STATE = 5, FT_EPOCH_END = 6, FT_ACK = 7 };

const char *drill_kill_at_name(enum drill_kill_at k)
{
	static const char *const names[] = {"random", "mid-epoch", "during-send", "after-send",
					    "after-ack"};
	return names[k];
}

static void violation(struct drill_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct drill_world *w, const char *fmt, ...)
{
	va_list ap;

	if (w->first_violation[0])
		return;
	va_start(ap, fmt);
	vsnprintf(w->first_violation, sizeof(w->first_violation), fmt, ap);
	va_end(ap);
}

/* ---------------- console collector ---------------- */

struct cconn {
	int fd;
	unsigned id;
	uint8_t hdr[12];
	unsigned hdr_have;
	uint64_t offset;
	uint32_t len, have;
	uint8_t *body;
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void one_line(struct drill_world *w, const char *s, size_t n, uint64_t end_off,
		     unsigned conn)
{
	char line[512];
	unsigned long long seq, tsc, dirtied, errors;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, s, n);
	line[n] = '\0';
	if (sscanf(line, "memwalk: seq=%llu tsc=%llu dirtied=%llu errors=%llu", &seq, &tsc,
		   &dirtied, &errors) == 4) {
		if (w->nr_lines && seq != w->lines[w->nr_lines - 1].seq + 1) {
			w->seq_breaks++;
			violation(w, "progress went from seq=%llu to seq=%llu at offset %llu",
				  (unsigned long long)w->lines[w->nr_lines - 1].seq, seq,
				  (unsigned long long)end_off);
		}
		if (errors) {
			w->guest_errors++;
			violation(w, "guest self-check: %s", line);
		}
		if (w->nr_lines == w->cap_lines) {
			unsigned cap = w->cap_lines ? w->cap_lines * 2 : 1024;
			struct drill_line *nl = realloc(w->lines, cap * sizeof(*nl));
			if (!nl)
				return;
			w->lines = nl;
			w->cap_lines = cap;
		}
		w->lines[w->nr_lines++] = (struct drill_line){
		    .seq = seq, .t_ns = hr_now_ns(), .end_off = end_off, .conn = conn};
		return;
	}
	if (strstr(line, "ERROR") || strstr(line, "FAIL") || strstr(line, "exception") ||
	    strstr(line, "memwalk: done")) {
		w->bad_lines++;
		violation(w, "guest reports: %s", line);
	}
}

static void take(struct drill_world *w, unsigned conn, uint64_t off, const uint8_t *p, uint64_t n)
{
	w->nr_frames++;
	if (off > w->len) {
		w->gaps++;
		violation(w, "gap: connection %u sent offset %llu while the stream ends at %llu",
			  conn, (unsigned long long)off, (unsigned long long)w->len);
		return;
	}
	uint64_t overlap = w->len - off < n ? w->len - off : n;
	if (overlap && memcmp(w->buf + off, p, overlap)) {
		w->conflicts++;
		violation(w,
			  "two contents: connection %u resent offsets %llu..%llu with other bytes",
			  conn, (unsigned long long)off, (unsigned long long)(off + overlap));
	}
	w->nr_repeat_bytes += overlap;
	uint64_t add = n - overlap;
	if (!add)
		return;
	if (w->len + add > w->cap) {
		uint64_t cap = (w->len + add) * 2 + 4096;
		uint8_t *nb = realloc(w->buf, cap);
		if (!nb)
			return;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p + overlap, add);
	w->len += add;
	for (uint64_t i = w->line_start; i < w->len; i++) {
		if (w->buf[i] != '\n')
			continue;
		one_line(w, (const char *)w->buf + w->line_start, i - w->line_start, i + 1, conn);
		w->line_start = i + 1;
	}
	pthread_cond_broadcast(&w->cond);
}

/* Feed bytes of one connection.  0, or -1 to drop it (malformed). */
static int cconn_feed(struct drill_world *w, struct cconn *c, const uint8_t *p, size_t n)
{
	while (n) {
		if (c->hdr_have < 12) {
			size_t k = 12 - c->hdr_have < n ? 12 - c->hdr_have : n;
			memcpy(c->hdr + c->hdr_have, p, k);
			c->hdr_have += (unsigned)k;
			p += k;
			n -= k;
			if (c->hdr_have < 12)
				break;
			c->offset = le64(c->hdr);
			c->len = (uint32_t)c->hdr[8] | (uint32_t)c->hdr[9] << 8 |
				 (uint32_t)c->hdr[10] << 16 | (uint32_t)c->hdr[11] << 24;
			if (c->len > (64u << 20)) {
				violation(w, "console connection %u: frame of %u bytes", c->id,
					  c->len);
				return -1;
			}
			free(c->body);
			c->body = malloc(c->len ? c->len : 1);
			c->have = 0;
			if (!c->body)
				return -1;
		}
		size_t k = c->len - c->have < n ? c->len - c->have : n;
		memcpy(c->body + c->have, p, k);
		c->have += (uint32_t)k;
		p += k;
		n -= k;
		if (c->have == c->len) {
			take(w, c->id, c->offset, c->body, c->len);
			c->hdr_have = 0;
		}
	}
	return 0;
}

static void *collector(void *arg)
{
	struct drill_world *w = arg;
	struct cconn conns[MAX_CONNS];
	unsigned nr = 0;

	for (;;) {
		struct pollfd pf[MAX_CONNS + 1];
		pthread_mutex_lock(&w->lock);
		int stop = w->stop;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		pf[0] = (struct pollfd){w->con_lfd, POLLIN, 0};
		for (unsigned i = 0; i < nr; i++)
			pf[i + 1] = (struct pollfd){conns[i].fd, POLLIN, 0};
		if (poll(pf, nr + 1, 50) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && nr < MAX_CONNS) {
			struct sockaddr_in peer = {0};
			socklen_t plen = sizeof(peer);
			int fd = accept4(w->con_lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
			if (fd >= 0) {
				pthread_mutex_lock(&w->lock);
				conns[nr] = (struct cconn){.fd = fd, .id = ++w->nr_conns};
				if (w->nr_conns < 64)
					w->conn_peer[w->nr_conns] = peer.sin_addr.s_addr;
				pthread_mutex_unlock(&w->lock);
				nr++;
			}
		}
		for (unsigned i = 0; i < nr; i++) {
			if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint8_t buf[65536];
			ssize_t r = read(conns[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			int drop = r <= 0;
			if (r > 0) {
				pthread_mutex_lock(&w->lock);
				drop = cconn_feed(w, &conns[i], buf, (size_t)r) < 0;
				pthread_mutex_unlock(&w->lock);
			}
			if (drop) {
				close(conns[i].fd);
				free(conns[i].body);
				conns[i] = conns[--nr];
				pf[i + 1] = pf[nr + 1];
				i--;
			}
		}
	}
	for (unsigned i = 0; i < nr; i++) {
		close(conns[i].fd);
		free(conns[i].body);
	}
	return NULL;
}

/* ---------------- replication tap ---------------- */

struct dir {
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

struct pair {
	int a, b; /* a: from the primary, b: to the backup */
	unsigned id;
	struct dir up, down;
	int up_cut;   /* stop forwarding A->B */
	int down_cut; /* stop forwarding B->A */
	int in_epoch; /* between EPOCH_BEGIN and EPOCH_END */
	uint64_t epoch, epoch_bytes, sent_bytes;
	int cut_next_data;   /* during-send: cut the next PAGE_BATCH/STATE frame */
	uint64_t cut_at;     /* ... at this body position (0 = not chosen) */
	int hold_ack_of_end; /* after-send: kill when the ack of `held_epoch` comes */
	uint64_t held_epoch;
};

struct tap {
	struct drill_world *w;
	struct pair pairs[MAX_PAIRS];
	unsigned nr;
	/* timed kills */
	uint64_t deadline_ns; /* 0 = none */
	int deadline_kind;    /* DRILL_KILL_* */
	uint64_t deadline_epoch, ack_con_len;
	uint64_t last_begin_ns, last_ack_ns, last_ack_epoch, last_end_epoch;
	int have_ack, have_end;
};

static uint64_t be32(const uint8_t *p)
{
	return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
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

static int write_all(int fd, const void *p, size_t n)
{
	return hr_write_all(fd, p, n);
}

void drill_kill_locked(struct drill_world *w, const char *what)
{
	if (w->killed)
		return;
	w->kill_ns = hr_now_ns();
	if (w->victim_pgid > 0)
		kill(-w->victim_pgid, SIGKILL);
	if (w->victim_pid > 0)
		kill(w->victim_pid, SIGKILL);
	for (unsigned i = 0; i < w->nr_victim_kids; i++)
		kill(w->victim_kids[i], SIGKILL);
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
static void describe(struct tap *t, struct pair *p, char *buf, size_t size)
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
static size_t up_bytes(struct tap *t, struct pair *p, const uint8_t *buf, size_t n)
{
	struct drill_world *w = t->w;
	struct dir *d = &p->up;
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
			if (be32(d->hdr) != FRAME_MAGIC) {
				d->broken = 1;
				w->tap_broken = 1;
				return n;
			}
			d->type = (uint16_t)(d->hdr[4] << 8 | d->hdr[5]);
			d->hdr_len = (uint32_t)be32(d->hdr + 8);
			d->body_len = d->hdr_len + be32(d->hdr + 12);
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
			p->up_cut = 1;
			p->cut_at = 0;
			return fwd;
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
static int down_bytes(struct tap *t, struct pair *p, const uint8_t *buf, size_t n)
{
	struct drill_world *w = t->w;
	struct dir *d = &p->down;

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
			if (write_all(p->a, buf + i, k) < 0)
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
			if (be32(d->hold) != FRAME_MAGIC) {
				d->broken = 1;
				w->tap_broken = 1;
				if (write_all(p->a, d->hold, d->hold_len) < 0)
					return -1;
				d->hold_len = 0;
				continue;
			}
			d->type = (uint16_t)(d->hold[4] << 8 | d->hold[5]);
			d->hdr_len = (uint32_t)be32(d->hold + 8);
			d->body_len = d->hdr_len + be32(d->hold + 12);
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
				p->down_cut = 1;
				d->hold_len = 0;
				return -1;
			}
			if (e != UINT64_MAX) {
				t->last_ack_epoch = e;
				t->last_ack_ns = now;
				t->have_ack = 1;
			}
			if (write_all(p->a, d->hold, d->hold_len) < 0)
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
		if (write_all(p->a, d->hold, d->hold_len) < 0)
			return -1;
		d->hold_len = 0;
	}
	return 0;
}

static void timers(struct tap *t)
{
	struct drill_world *w = t->w;
	uint64_t now = hr_now_ns();
	struct pair *p = t->nr ? &t->pairs[t->nr - 1] : NULL;
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

static int connect_upstream(struct drill_world *w)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;

	if (getaddrinfo(w->upstream_host, w->upstream_port, &hints, &ai))
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void pair_close(struct tap *t, unsigned i)
{
	struct pair *p = &t->pairs[i];
	if (p->a >= 0)
		close(p->a);
	if (p->b >= 0)
		close(p->b);
	free(p->up.hold);
	free(p->down.hold);
	t->pairs[i] = t->pairs[--t->nr];
}

static void *tap_thread(void *arg)
{
	struct drill_world *w = arg;
	struct tap t = {.w = w};

	if (drill_enter_netns(w->netns_out) < 0)
		return NULL;
	for (;;) {
		struct pollfd pf[1 + 2 * MAX_PAIRS];
		pthread_mutex_lock(&w->lock);
		int stop = w->stop;
		timers(&t);
		uint64_t dl = t.deadline_ns && !w->killed ? t.deadline_ns : 0;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		pf[0] = (struct pollfd){w->tap_lfd, POLLIN, 0};
		for (unsigned i = 0; i < t.nr; i++) {
			pf[1 + 2 * i] = (struct pollfd){t.pairs[i].a, POLLIN, 0};
			pf[2 + 2 * i] = (struct pollfd){t.pairs[i].b, POLLIN, 0};
		}
		int ms = 20;
		if (dl) {
			uint64_t now = hr_now_ns();
			ms = dl > now ? (int)((dl - now) / 1000000) : 0;
			if (ms > 20)
				ms = 20;
			if (t.deadline_kind == DRILL_KILL_AFTER_ACK)
				ms = 0; /* watch the collector closely */
		}
		int r = poll(pf, 1 + 2 * t.nr, ms);
		if (r == 0 && dl && ms == 0)
			usleep(100);
		if (r <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && t.nr < MAX_PAIRS) {
			int a = accept4(w->tap_lfd, NULL, NULL, SOCK_CLOEXEC);
			if (a >= 0) {
				int b = connect_upstream(w);
				if (b < 0) {
					close(a);
				} else {
					int one = 1;
					setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					pthread_mutex_lock(&w->lock);
					t.pairs[t.nr] =
					    (struct pair){.a = a, .b = b, .id = ++w->nr_tap_conns};
					t.pairs[t.nr].up.preamble = 1;
					t.pairs[t.nr].down.preamble = 1;
					pthread_mutex_unlock(&w->lock);
					t.nr++;
				}
				continue; /* pf indices changed */
			}
		}
		for (unsigned i = 0; i < t.nr; i++) {
			struct pair *p = &t.pairs[i];
			int gone = 0;
			for (int side = 0; side < 2 && !gone; side++) {
				short ev = pf[1 + 2 * i + side].revents;
				if (!(ev & (POLLIN | POLLHUP | POLLERR)))
					continue;
				uint8_t buf[256 * 1024];
				ssize_t n = read(side ? p->b : p->a, buf, sizeof(buf));
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					gone = 1; /* either end gone: close both, as a dead host
						     would */
					break;
				}
				pthread_mutex_lock(&w->lock);
				if (!side) {
					if (!p->up_cut) {
						size_t fwd = up_bytes(&t, p, buf, (size_t)n);
						p->sent_bytes += fwd;
						pthread_mutex_unlock(&w->lock);
						if (fwd && write_all(p->b, buf, fwd) < 0)
							gone = 1;
						continue;
					}
				} else if (!p->down_cut) {
					if (down_bytes(&t, p, buf, (size_t)n) < 0 && !p->down_cut)
						gone = 1;
				}
				pthread_mutex_unlock(&w->lock);
			}
			if (gone) {
				pair_close(&t, i);
				break; /* pf indices changed */
			}
		}
	}
	while (t.nr)
		pair_close(&t, 0);
	return NULL;
}

static int listen_on(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int drill_world_listen(struct drill_world *w, const char *ip, int con_port, int tap_port)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int rc;

	if (self < 0)
		return -errno;
	if ((rc = drill_enter_netns(w->netns_out)) < 0) {
		close(self);
		return rc;
	}
	w->con_lfd = listen_on(ip, con_port);
	w->tap_lfd = listen_on(ip, tap_port);
	if (setns(self, 0) < 0)
		rc = -errno;
	close(self);
	if (w->con_lfd < 0)
		return w->con_lfd;
	if (w->tap_lfd < 0)
		return w->tap_lfd;
	return rc;
}

int drill_world_start(struct drill_world *w, pthread_t *threads)
{
	int rc = pthread_create(&threads[0], NULL, collector, w);
	if (rc)
		return -rc;
	rc = pthread_create(&threads[1], NULL, tap_thread, w);
	if (rc) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_mutex_unlock(&w->lock);
		pthread_join(threads[0], NULL);
		return -rc;
	}
	return 0;
}

void drill_world_stop(struct drill_world *w, pthread_t *threads)
{
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	pthread_join(threads[0], NULL);
	pthread_join(threads[1], NULL);
	if (w->con_lfd >= 0)
		close(w->con_lfd);
	if (w->tap_lfd >= 0)
		close(w->tap_lfd);
	w->con_lfd = w->tap_lfd = -1;
}
