/*
 * drill-console.c - the console collector: the outside world, where the
 * drill checks the contract.
 *
 * It accepts the workers' console connections (frames `u64 offset LE | u32
 * len LE | bytes`, any number of connections over time) and assembles one
 * stream by offset.  Bytes it already holds must come again identical (else
 * a "two contents" violation).  A frame starting beyond its end waits for
 * the bytes before it (the old primary's last frames may arrive after the
 * new one's first, over another connection); one still waiting when the
 * drill judges is a gap.
 * Complete progress lines are checked as they arrive: seq exactly +1 over
 * the whole stream, errors=0.  memwalk's and netsvc's lines carry seq and
 * errors; the mem backend's guest prints "mem: step=N" (maybe padded with
 * '.' to its line_bytes): seq is N, and it has no self-check (errors=0).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/unaligned.h"
#include "common/util.h"
#include "ha/drill/drill.h"

#define MAX_CONNS 16

static void violation(struct drill_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct drill_world *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	drill_first_problem(w->first_violation, sizeof(w->first_violation), fmt, ap);
	va_end(ap);
}

struct cconn {
	int fd;
	unsigned id;
	uint8_t hdr[12];
	unsigned hdr_have;
	uint64_t offset;
	uint32_t len, have;
	uint8_t *body;
};

/* The mem guest's "mem: step=N" with only '.' padding after N (--mem). */
static int is_mem_step(const char *line, unsigned long long *seq_r)
{
	int end = -1;

	if (strncmp(line, "mem: step=", 10) || !isdigit((unsigned char)line[10]) ||
	    sscanf(line, "mem: step=%llu%n", seq_r, &end) != 1 || end < 0)
		return 0;
	return line[end + strspn(line + end, ".")] == '\0';
}

static void one_line(struct drill_world *w, const char *s, size_t n, uint64_t end_off,
		     unsigned conn)
{
	char line[512];
	unsigned long long seq, tsc, dirtied, errors = 0;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, s, n);
	line[n] = '\0';
	/* memwalk's progress lines, or netsvc's in the same format (--net) */
	if (sscanf(line, "memwalk: seq=%llu tsc=%llu dirtied=%llu errors=%llu", &seq, &tsc,
		   &dirtied, &errors) == 4 ||
	    sscanf(line, "netsvc: seq=%llu tsc=%llu dirtied=%llu errors=%llu", &seq, &tsc, &dirtied,
		   &errors) == 4 ||
	    is_mem_step(line, &seq)) {
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
	/* --disk: a promoted mem guest read back every block it knows it wrote */
	unsigned long long blocks;
	if (sscanf(line, "diskcheck blocks=%llu errors=%llu", &blocks, &errors) == 2) {
		uint32_t ip = conn < 64 ? w->conn_peer[conn] : 0;
		const char *host = ip == inet_addr(DRILL_IP_A)	 ? "A"
				   : ip == inet_addr(DRILL_IP_B) ? "B"
								 : "?";
		size_t len = strlen(w->diskchecks);
		snprintf(w->diskchecks + len, sizeof(w->diskchecks) - len,
			 "%s%s blocks=%llu errors=%llu", len ? "; " : "", host, blocks, errors);
		w->nr_diskchecks++;
		if (errors || !blocks) {
			w->bad_diskchecks++;
			violation(w, "disk check of the promoted guest on %s: %s", host, line);
		}
		return;
	}
	if (strstr(line, "ERROR") || strstr(line, "FAIL") || strstr(line, "exception") ||
	    strstr(line, "memwalk: done")) {
		w->bad_lines++;
		violation(w, "guest reports: %s", line);
	}
}

#define MAX_EARLY 4096

static void place(struct drill_world *w, unsigned conn, uint64_t off, const uint8_t *p, uint64_t n);

/* A frame beyond the end: kept until the bytes before it arrive (from
 * another host's connection, say), as a reader assembling by offset would. */
static void keep_early(struct drill_world *w, unsigned conn, uint64_t off, const uint8_t *p,
		       uint64_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	if (!w->early)
		w->early = calloc(MAX_EARLY, sizeof(*w->early));
	if (!copy || !w->early || w->nr_early == MAX_EARLY) {
		free(copy);
		violation(w,
			  "gap: connection %u sent offset %llu while the stream ends at %llu "
			  "(too many frames waiting)",
			  conn, (unsigned long long)off, (unsigned long long)w->len);
		w->gaps = MAX_EARLY + 1;
		return;
	}
	memcpy(copy, p, n);
	w->early[w->nr_early++] = (struct drill_early){conn, off, n, copy};
	w->gaps = w->nr_early;
}

/* Place every waiting frame the stream now reaches. */
static void place_early(struct drill_world *w)
{
	for (unsigned i = 0; i < w->nr_early;) {
		struct drill_early e = w->early[i];
		if (e.off > w->len) {
			i++;
			continue;
		}
		w->early[i] = w->early[--w->nr_early];
		w->gaps = w->nr_early;
		place(w, e.conn, e.off, e.data, e.n);
		free(e.data);
		i = 0; /* the stream grew: look again from the start */
	}
}

void drill_console_settle(struct drill_world *w)
{
	if (!w->nr_early)
		return;
	uint64_t lowest = UINT64_MAX;
	unsigned conn = 0;
	for (unsigned i = 0; i < w->nr_early; i++)
		if (w->early[i].off < lowest) {
			lowest = w->early[i].off;
			conn = w->early[i].conn;
		}
	violation(w,
		  "gap: %u frames never placed; the first, from connection %u, starts at offset "
		  "%llu while the stream ends at %llu",
		  w->nr_early, conn, (unsigned long long)lowest, (unsigned long long)w->len);
}

static void take(struct drill_world *w, unsigned conn, uint64_t off, const uint8_t *p, uint64_t n)
{
	w->nr_frames++;
	if (off > w->len) {
		keep_early(w, conn, off, p, n);
		return;
	}
	place(w, conn, off, p, n);
	place_early(w);
}

static void place(struct drill_world *w, unsigned conn, uint64_t off, const uint8_t *p, uint64_t n)
{
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
			c->offset = hr_get_le64(c->hdr);
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

void *drill_collector(void *arg)
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
