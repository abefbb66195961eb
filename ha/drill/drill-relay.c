/*
 * drill-relay.c - the replication tap and the back relay, TCP proxies in
 * OUT.  The tap (A's --peer, DRILL_PORT_TAP) forwards every connection it
 * accepts to B's daemon: the primary's first session, and later ones (A
 * re-protecting, or a promoted A asking B for a backup).  Sessions that
 * began before the moment go through the frame parser (drill-killpoint.c),
 * which says how much to forward and when to kill; later ones are relayed
 * unread.  The back relay (DRILL_PORT_A) forwards connections to A's daemon
 * (a promoted B asking A for a backup), unread.  When either end of a pair
 * goes away both are closed, as a dead host would.
 *
 * The fault is the link's: it holds both ways and for new connections.
 * Once torn, every pair is closed and every new connection is closed as
 * soon as it is accepted; once partitioned, nothing moves on the pairs that
 * exist, and new connections are accepted and read but nothing is forwarded
 * or answered (a sink).  The drill heals neither.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/drill/drill-tap.h"

static int connect_upstream(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	/* a stopped host still answers SYNs; a gone one resets.  Sends wait up
	 * to 5 s: a backup worker that is slow to start on a loaded machine
	 * (soak 200, seed 122: 1 s was not enough) must not look like a cut */
	struct timeval tv = {5, 0};

	if (getaddrinfo(host, port, &hints, &ai))
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void pair_close(struct tap *t, unsigned i)
{
	struct tap_pair *p = &t->pairs[i];
	if (p->a >= 0)
		close(p->a);
	if (p->b >= 0)
		close(p->b);
	for (unsigned k = 0; k < p->dq_n; k++)
		free(p->dq[k].buf);
	free(p->dq);
	free(p->up.hold);
	free(p->down.hold);
	t->pairs[i] = t->pairs[--t->nr];
}

struct tap_pair *drill_tap_parsed(struct tap *t)
{
	for (unsigned i = t->nr; i-- > 0;)
		if (t->pairs[i].parsed)
			return &t->pairs[i];
	return NULL;
}

/* A connection on the tap (back = 0) or the back relay: a pair with its
 * upstream, a sink (partitioned), or closed at once (torn, or the daemon
 * behind the relay does not answer). */
static void accept_one(struct tap *t, int back)
{
	struct drill_world *w = t->w;
	int a = accept4(back ? w->back_lfd : w->tap_lfd, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		return;
	pthread_mutex_lock(&w->lock);
	int torn = w->killed && DRILL_FAULT_TEARS(w->fault);
	int sink = w->killed && w->fault == DRILL_FAULT_PARTITION;
	int parsed = !back && !w->killed;
	unsigned id = back ? ++w->nr_back_conns : ++w->nr_tap_conns;
	w->nr_refused += torn || sink;
	pthread_mutex_unlock(&w->lock);
	if (torn) {
		close(a);
		return;
	}
	int b = -1;
	if (!sink) {
		b = back ? connect_upstream(w->back_host, w->back_port)
			 : connect_upstream(w->upstream_host, w->upstream_port);
		if (b < 0) {
			close(a);
			return;
		}
		int one = 1;
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	struct tap_pair *p = &t->pairs[t->nr++];
	*p = (struct tap_pair){.a = a, .b = b, .id = id, .parsed = parsed, .back = back};
	p->up.preamble = 1;
	p->down.preamble = 1;
}

/* n bytes read from one side of p (side 0: the connecting one).  0, or -1
 * when the pair ends. */
static int relay(struct tap *t, struct tap_pair *p, int side, const uint8_t *buf, size_t n)
{
	struct drill_world *w = t->w;
	int rc = 0;

	if (p->b < 0)
		return 0; /* a sink: dropped */
	if (!p->parsed)
		return hr_write_all(side ? p->a : p->b, buf, n) < 0 ? -1 : 0;
	pthread_mutex_lock(&w->lock);
	if (!side && !p->up_cut) {
		size_t fwd = drill_tap_up(t, p, buf, n);
		p->sent_bytes += fwd;
		pthread_mutex_unlock(&w->lock);
		return fwd && hr_write_all(p->b, buf, fwd) < 0 ? -1 : 0;
	}
	if (side && !p->down_cut && drill_tap_down(t, p, buf, n) < 0 && !p->down_cut)
		rc = -1;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void *drill_tap_thread(void *arg)
{
	struct drill_world *w = arg;
	struct tap t = {.w = w};

	if (drill_enter_netns(w->netns_out) < 0)
		return NULL;
	for (;;) {
		struct pollfd pf[2 + 2 * MAX_PAIRS];
		pthread_mutex_lock(&w->lock);
		int stop = w->stop;
		int torn = w->killed && DRILL_FAULT_TEARS(w->fault);
		int silent = w->killed && w->fault == DRILL_FAULT_PARTITION;
		drill_tap_timers(&t);
		uint64_t dl = t.deadline_ns && !w->killed ? t.deadline_ns : 0;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		while (torn && t.nr)
			pair_close(&t, 0); /* both hosts see their peer's connection end */
		int room = t.nr < MAX_PAIRS;
		pf[0] = (struct pollfd){room ? w->tap_lfd : -1, POLLIN, 0};
		pf[1] = (struct pollfd){room ? w->back_lfd : -1, POLLIN, 0};
		for (unsigned i = 0; i < t.nr; i++) {
			/* partitioned: nothing moves, nothing closes; sinks are read */
			int still = silent && t.pairs[i].b >= 0;
			pf[2 + 2 * i] = (struct pollfd){still ? -1 : t.pairs[i].a, POLLIN, 0};
			pf[3 + 2 * i] = (struct pollfd){still ? -1 : t.pairs[i].b, POLLIN, 0};
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
		pthread_mutex_lock(&w->lock);
		int slow_ms = drill_tap_flush_slow(&t);
		pthread_mutex_unlock(&w->lock);
		if (slow_ms >= 0 && slow_ms < ms)
			ms = slow_ms;
		int r = poll(pf, 2 + 2 * t.nr, ms);
		if (r == 0 && dl && ms == 0)
			usleep(100);
		if (r <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			accept_one(&t, 0);
			continue; /* pf indices changed */
		}
		if (pf[1].revents & POLLIN) {
			accept_one(&t, 1);
			continue;
		}
		for (unsigned i = 0; i < t.nr; i++) {
			struct tap_pair *p = &t.pairs[i];
			int gone = 0;
			for (int side = 0; side < 2 && !gone; side++) {
				short ev = pf[2 + 2 * i + side].revents;
				if (!(ev & (POLLIN | POLLHUP | POLLERR)))
					continue;
				uint8_t buf[256 * 1024];
				ssize_t n = read(side ? p->b : p->a, buf, sizeof(buf));
				if (n < 0 && errno == EINTR)
					continue;
				/* either end gone: close both, as a dead host would */
				gone = n <= 0 || relay(&t, p, side, buf, (size_t)n) < 0;
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
