/*
 * t-reprotect-bad.c - re-protection over a link that keeps failing, in the
 * engine with real engines: a promoted backup (it speaks for the VM)
 * re-protects itself through a link that dies part-way through the live
 * phase, every time.  Its new backup was never sent a whole epoch, so it
 * can never promote: the guest's output goes on leaving between the
 * attempts (hr_ha_speaks_after_loss), and the attempts back off (doubling
 * from reconnect_ms, hr_ha_reprotect_delay_ms).  Then a good link: it is
 * protected again, and everything the outside saw is one gap-free stream.
 * The policy functions themselves are checked as a table first.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"
#include "ha/failover.h"

#define MAX_ENGINES 8
#define BAD_TRIES   3
#define CUT_BYTES   (256u << 10) /* the link dies after this much of the live phase */

struct node {
	struct hr_engine *e;
	pthread_t t;
	int fd, primary;
	volatile enum hr_role_state state;
	volatile uint64_t bytes, acked, held_events;
	int rc;
};

static struct ep_pair obs; /* its observer (out, lock) only */
static struct node nodes[MAX_ENGINES];
static unsigned nr_nodes;
static volatile int good_link;
static volatile unsigned tries;
static uint64_t try_ns[16];

static void sink(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	struct node *nd = o;
	__atomic_add_fetch(&nd->bytes, n, __ATOMIC_SEQ_CST);
	ep_sink(&obs, chan, off, p, n);
}

static void on_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	struct node *nd = o;
	nd->state = to;
	if (ev == HR_RE_OUTPUT_HELD)
		nd->held_events++;
}

static void on_epoch(void *o, const struct hr_epoch_stats *st)
{
	__atomic_add_fetch(&((struct node *)o)->acked, 1, __ATOMIC_SEQ_CST);
}

static void *run(void *a)
{
	struct node *nd = a;
	nd->rc = nd->primary ? hr_engine_run_primary(nd->e, nd->fd)
			     : hr_engine_run_backup(nd->e, nd->fd);
	return NULL;
}

static int reconnect(void *opaque, int speaking, int *fd_r);

static struct node *new_node(int primary, int fd)
{
	struct hr_engine_config c = {
	    .name = "t-reprotect-bad",
	    .silence_ms = 300,
	    .auto_promote = 1,
	    .reconnect = reconnect,
	    .reconnect_ms = 100,
	};
	if (primary) {
		c.ops = hr_backend_find("mem");
		c.epoch_us = 25000;
		c.vm = (struct hr_vm_config){.mem_bytes = 32 << 20,
					     .nr_vcpus = 1,
					     .kernel_path = "mem:",
					     .cmdline = "steps_per_s=1000 writes=8",
					     .options = "fill=1"};
	}
	struct node *nd = &nodes[nr_nodes++];
	nd->primary = primary;
	nd->fd = fd;
	c.output_sink = sink;
	c.output_opaque = nd;
	c.on_state = on_state;
	c.state_opaque = nd;
	c.on_epoch = on_epoch;
	c.epoch_opaque = nd;
	if (hr_engine_new(&nd->e, &c) < 0 || pthread_create(&nd->t, NULL, run, nd))
		return NULL;
	return nd;
}

/* A bad link between the primary (p) and a real backup engine (b): bytes
 * both ways, until CUT_BYTES went towards the backup - inside the live
 * phase (32 MiB of RAM with data): then both ends are shut. */
struct cut {
	int p, b;
};

static int put(int fd, const char *buf, ssize_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, (size_t)n);
		if (w <= 0)
			return -1;
		buf += w;
		n -= w;
	}
	return 0;
}

static void *cut_run(void *a)
{
	struct cut *c = a;
	static __thread char buf[64 << 10];
	size_t to_b = 0;
	while (to_b < CUT_BYTES) {
		struct pollfd pf[2] = {{c->p, POLLIN, 0}, {c->b, POLLIN, 0}};
		if (poll(pf, 2, 10000) <= 0)
			break;
		ssize_t n;
		if (pf[0].revents) {
			if ((n = read(c->p, buf, sizeof(buf))) <= 0 || put(c->b, buf, n) < 0)
				break;
			to_b += (size_t)n;
		}
		if (pf[1].revents &&
		    ((n = read(c->b, buf, sizeof(buf))) <= 0 || put(c->p, buf, n) < 0))
			break;
	}
	shutdown(c->p, SHUT_RDWR);
	shutdown(c->b, SHUT_RDWR);
	close(c->p);
	close(c->b);
	free(c);
	return NULL;
}

/* The "peer daemon": a fresh backup engine each time, behind a bad link
 * until good_link is set. */
static int reconnect(void *opaque, int speaking, int *fd_r)
{
	int pb[2], bb[2];
	pthread_t t;
	(void)opaque;
	(void)speaking;
	unsigned k = __atomic_fetch_add(&tries, 1, __ATOMIC_SEQ_CST);
	if (k < 16)
		try_ns[k] = hr_now_ns();
	if (nr_nodes >= MAX_ENGINES)
		return -ECONNREFUSED;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pb))
		return -errno;
	if (good_link) {
		if (!new_node(0, pb[1]))
			return -ENOMEM;
		*fd_r = pb[0];
		return 0;
	}
	struct cut *c = calloc(1, sizeof(*c));
	if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bb))
		return -ENOMEM;
	c->p = pb[1];
	c->b = bb[0];
	if (!new_node(0, bb[1]) || pthread_create(&t, NULL, cut_run, c))
		return -ENOMEM;
	pthread_detach(t);
	*fd_r = pb[0];
	return 0;
}

static int wait_state(struct node *nd, enum hr_role_state s, unsigned seconds)
{
	uint64_t end = hr_now_ns() + seconds * 1000000000ull;
	while (nd->state != s && hr_now_ns() < end)
		usleep(2000);
	return nd->state == s;
}

static int wait_u64(volatile uint64_t *v, uint64_t n, unsigned seconds)
{
	uint64_t end = hr_now_ns() + seconds * 1000000000ull;
	while (*v < n && hr_now_ns() < end)
		usleep(2000);
	return *v >= n;
}

static int wait_tries(unsigned n, unsigned seconds)
{
	uint64_t end = hr_now_ns() + seconds * 1000000000ull;
	while (tries < n && hr_now_ns() < end)
		usleep(2000);
	return tries >= n;
}

int main(void)
{
	int sv[2];

	plan(11);
	/* the policy, as a table */
	static const struct {
		int was_speaking;
		uint64_t sent;
		int speaks;
	} rows[] = {{0, 0, 0}, {0, 1, 0}, {1, 0, 1}, {1, 1, 0}, {1, 100, 0}};
	int table_ok = 1;
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		table_ok &=
		    hr_ha_speaks_after_loss(rows[i].was_speaking, rows[i].sent) == rows[i].speaks;
	ok(table_ok, "speaks after a lost backup only if it spoke and no whole epoch left");
	ok(hr_ha_reprotect_delay_ms(1000, 0) == 1000 && hr_ha_reprotect_delay_ms(1000, 1) == 2000 &&
	       hr_ha_reprotect_delay_ms(1000, 3) == 8000 &&
	       hr_ha_reprotect_delay_ms(1000, 10) == HR_HA_REPROTECT_MAX_MS &&
	       hr_ha_reprotect_delay_ms(1000, 1000) == HR_HA_REPROTECT_MAX_MS,
	   "re-protection backs off: 1, 2, 8 s, at most %u s", HR_HA_REPROTECT_MAX_MS / 1000);

	pthread_mutex_init(&obs.lock, NULL);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct node *b = new_node(0, sv[1]);
	struct node *p = new_node(1, sv[0]);
	ok(wait_state(p, HR_RS_PROTECTED, 30) && wait_u64(&p->acked, 10, 30),
	   "P protected by B, 10 epochs acknowledged");

	/* P dies: B promotes and speaks, then re-protects through a bad link */
	hr_engine_abort(p->e);
	pthread_join(p->t, NULL);
	shutdown(sv[0], SHUT_RDWR);
	ok(wait_state(b, HR_RS_PROMOTED, 10) || b->state == HR_RS_CONNECTING, "P died: B promoted");
	uint64_t b0 = b->bytes;
	ok(wait_tries(BAD_TRIES + 1, 30), "%u re-protections over the bad link failed", BAD_TRIES);
	uint64_t gap[BAD_TRIES];
	for (unsigned i = 0; i < BAD_TRIES; i++)
		gap[i] = (try_ns[i + 1] - try_ns[i]) / 1000000;
	ok(gap[0] >= 200 && gap[1] >= 400 && gap[2] >= 800,
	   "the attempts back off: %llu, %llu, %llu ms apart (reconnect_ms 100)",
	   (unsigned long long)gap[0], (unsigned long long)gap[1], (unsigned long long)gap[2]);
	ok(b->bytes > b0 && b->held_events == 0,
	   "B spoke on between them (%llu bytes, %llu +output-held): no backup was sent a "
	   "whole epoch",
	   (unsigned long long)(b->bytes - b0), (unsigned long long)b->held_events);

	/* a good link: protected again */
	good_link = 1;
	uint64_t acked0 = b->acked;
	ok(wait_state(b, HR_RS_PROTECTED, 60) && wait_u64(&b->acked, acked0 + 10, 30),
	   "the link is good again: B protected, 10 epochs acknowledged");
	uint64_t others = 0;
	for (unsigned i = 0; i < nr_nodes; i++)
		if (&nodes[i] != b && &nodes[i] != p)
			others += nodes[i].bytes;
	ok(others == 0, "none of the failed backups released anything (%llu bytes)",
	   (unsigned long long)others);
	ok(!obs.out[0].gaps && !obs.out[0].conflicts && obs.out[0].len > 0,
	   "the outside saw one stream: %zu bytes, %u gaps, %u conflicts", (size_t)obs.out[0].len,
	   obs.out[0].gaps, obs.out[0].conflicts);
	ok(b->held_events == 0, "and B never held its output");

	for (unsigned i = 0; i < nr_nodes; i++)
		if (&nodes[i] != p)
			hr_engine_stop(nodes[i].e);
	for (unsigned i = 0; i < nr_nodes; i++) {
		if (&nodes[i] != p)
			pthread_join(nodes[i].t, NULL);
		hr_engine_free(nodes[i].e);
	}
	return tap_done();
}
