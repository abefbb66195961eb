/*
 * drill-relay.c - the replication tap as a relay: a TCP proxy in OUT
 * between the primary's worker (A's --peer points here) and the backup
 * daemon.  Each connection it accepts gets one upstream connection to B;
 * bytes go both ways through the frame parser (drill-killpoint.c), which
 * says how much to forward and when to stop.  When either end goes away
 * both are closed, as a dead host would.
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

void *drill_tap_thread(void *arg)
{
	struct drill_world *w = arg;
	struct tap t = {.w = w};

	if (drill_enter_netns(w->netns_out) < 0)
		return NULL;
	for (;;) {
		struct pollfd pf[1 + 2 * MAX_PAIRS];
		pthread_mutex_lock(&w->lock);
		int stop = w->stop;
		int torn = w->killed && w->fault == DRILL_FAULT_TORN;
		int silent = w->killed && w->fault == DRILL_FAULT_PARTITION;
		drill_tap_timers(&t);
		uint64_t dl = t.deadline_ns && !w->killed ? t.deadline_ns : 0;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		while (torn && t.nr)
			pair_close(&t, 0); /* both hosts see their peer's connection end */
		if (silent) {
			usleep(5000); /* nothing moves; nothing closes */
			continue;
		}
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
		pthread_mutex_lock(&w->lock);
		int slow_ms = drill_tap_flush_slow(&t);
		pthread_mutex_unlock(&w->lock);
		if (slow_ms >= 0 && slow_ms < ms)
			ms = slow_ms;
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
					t.pairs[t.nr] = (struct tap_pair){
					    .a = a, .b = b, .id = ++w->nr_tap_conns};
					t.pairs[t.nr].up.preamble = 1;
					t.pairs[t.nr].down.preamble = 1;
					pthread_mutex_unlock(&w->lock);
					t.nr++;
				}
				continue; /* pf indices changed */
			}
		}
		for (unsigned i = 0; i < t.nr; i++) {
			struct tap_pair *p = &t.pairs[i];
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
						size_t fwd = drill_tap_up(&t, p, buf, (size_t)n);
						p->sent_bytes += fwd;
						pthread_mutex_unlock(&w->lock);
						if (fwd && hr_write_all(p->b, buf, fwd) < 0)
							gone = 1;
						continue;
					}
				} else if (!p->down_cut) {
					if (drill_tap_down(&t, p, buf, (size_t)n) < 0 &&
					    !p->down_cut)
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
