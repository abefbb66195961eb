/*
 * t-reprotect.c - re-protection in the engine, with real engines over
 * socketpairs and one outside observer for everything any of them released:
 *
 *   1. P protected by B0; B0 dies.  P holds its output while no backup
 *      answers (its reconnect callback refuses), then takes B1 and is
 *      protected again; the held output comes out after B1's first ack.
 *   2. P dies; B1 promotes and speaks; with nobody to answer it stays so.
 *   3. B1 takes B2 as its backup (a promoted backup becomes a primary):
 *      protected; then B1 dies and B2 promotes.
 *
 * Throughout, the observer sees one gap-free stream that never contradicts
 * itself, and at most one engine releasing at any time.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"

#define MAX_ENGINES 4

struct node {
	struct hr_engine *e;
	pthread_t t;
	int fd, primary, started;
	volatile enum hr_role_state state;
	volatile uint64_t bytes, acked;
	int rc;
};

static struct ep_pair obs; /* only its observer (out, lock) is used */
static struct node nodes[MAX_ENGINES];
static unsigned nr_nodes;
static volatile int allow_reconnect, tries;
static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;

static void sink(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	struct node *nd = o;
	__atomic_add_fetch(&nd->bytes, n, __ATOMIC_SEQ_CST);
	ep_sink(&obs, chan, off, p, n);
}

static void on_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	((struct node *)o)->state = to;
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
	    .name = "t-reprotect",
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
					     .cmdline = "steps_per_s=1000 writes=8"};
	}
	pthread_mutex_lock(&nodes_lock);
	struct node *nd = &nodes[nr_nodes++];
	pthread_mutex_unlock(&nodes_lock);
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
	nd->started = 1;
	return nd;
}

/* The "peer daemon": refuses while allow_reconnect is 0, else starts a
 * fresh backup engine on the other end of a new socketpair. */
static int reconnect(void *opaque, int speaking, int *fd_r)
{
	int sv[2];
	(void)opaque;
	(void)speaking;
	__atomic_add_fetch(&tries, 1, __ATOMIC_SEQ_CST);
	if (!allow_reconnect || nr_nodes >= MAX_ENGINES)
		return -ECONNREFUSED;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	if (!new_node(0, sv[1]))
		return -ENOMEM;
	allow_reconnect = 0; /* one backup per permission */
	*fd_r = sv[0];
	return 0;
}

static int wait_state(struct node *nd, enum hr_role_state s, unsigned seconds)
{
	uint64_t end = hr_now_ns() + seconds * 1000000000ull;
	while (nd->state != s && hr_now_ns() < end)
		usleep(2000);
	return nd->state == s;
}

static int wait_acked(struct node *nd, uint64_t n, unsigned seconds)
{
	uint64_t end = hr_now_ns() + seconds * 1000000000ull;
	while (nd->acked < n && hr_now_ns() < end)
		usleep(2000);
	return nd->acked >= n;
}

/* A crash: the engine stops where it is, its connection ends. */
static void kill_node(struct node *nd)
{
	hr_engine_abort(nd->e);
	pthread_join(nd->t, NULL);
	nd->started = 0;
	/* whichever socket the engine used last */
	if (nd->fd >= 0)
		shutdown(nd->fd, SHUT_RDWR);
}

/* Bytes released so far by every engine but `who`. */
static uint64_t others_bytes(const struct node *who)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < nr_nodes; i++)
		if (&nodes[i] != who)
			n += nodes[i].bytes;
	return n;
}

int main(void)
{
	int sv[2];

	plan(14);
	pthread_mutex_init(&obs.lock, NULL);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct node *b0 = new_node(0, sv[1]);
	struct node *p = new_node(1, sv[0]);
	ok(wait_state(p, HR_RS_PROTECTED, 30) && wait_acked(p, 20, 30),
	   "P protected by B0, 20 epochs acknowledged");

	/* 1. B0 dies; nobody answers P for a while */
	kill_node(b0);
	close(sv[1]);
	ok(wait_state(p, HR_RS_UNPROTECTED, 10), "B0 died: P is unprotected");
	usleep(100000);
	uint64_t p0 = p->bytes;
	int t0 = tries;
	usleep(800000);
	ok(p->bytes == p0 && tries > t0,
	   "P holds its output while nobody answers (%llu bytes released; %d attempts)",
	   (unsigned long long)(p->bytes - p0), (int)(tries - t0));
	allow_reconnect = 1;
	uint64_t acked0 = p->acked;
	ok(wait_state(p, HR_RS_PROTECTED, 30) && wait_acked(p, acked0 + 10, 30),
	   "a backup answers: P synchronises B1 and is protected again");
	struct node *b1 = &nodes[2];
	ok(b1->state == HR_RS_BACKUP, "B1 holds a committed epoch");
	ok(p->bytes > p0, "the held output came out after B1's ack (%llu bytes)",
	   (unsigned long long)(p->bytes - p0));

	/* 2. P dies; B1 promotes; nobody answers B1 */
	uint64_t others0 = others_bytes(b1);
	kill_node(p);
	ok(wait_state(b1, HR_RS_PROMOTED, 10), "P died: B1 promoted");
	uint64_t b10 = b1->bytes;
	usleep(800000);
	ok(b1->bytes > b10, "the promoted B1 speaks with nobody to protect it (%llu bytes)",
	   (unsigned long long)(b1->bytes - b10));

	/* 3. B2 answers B1: the promoted backup becomes a protected primary */
	uint64_t b1_epochs = b1->acked; /* committed as a backup so far */
	allow_reconnect = 1;
	ok(wait_state(b1, HR_RS_PROTECTED, 30) && wait_acked(b1, b1_epochs + 10, 30),
	   "B1 (promoted) takes B2 as its backup: protected, 10 epochs acknowledged");
	struct node *b2 = &nodes[3];
	ok(b2->state == HR_RS_BACKUP, "B2 holds a committed epoch");
	ok(others_bytes(b1) == others0, "nobody but B1 released anything since P died");
	kill_node(b1);
	ok(wait_state(b2, HR_RS_PROMOTED, 10), "B1 died: B2 promoted");
	uint64_t b20 = b2->bytes;
	usleep(500000);
	ok(b2->bytes > b20, "B2 speaks (%llu bytes)", (unsigned long long)(b2->bytes - b20));

	pthread_mutex_lock(&obs.lock);
	unsigned gaps = obs.out[0].gaps, conflicts = obs.out[0].conflicts;
	size_t len = obs.out[0].len;
	pthread_mutex_unlock(&obs.lock);
	ok(!gaps && !conflicts && len > 0,
	   "the outside saw one stream through two failovers and two re-protections: %zu bytes, "
	   "%u gaps, %u conflicts",
	   len, gaps, conflicts);

	for (unsigned i = 0; i < nr_nodes; i++)
		if (nodes[i].started) {
			hr_engine_stop(nodes[i].e);
			pthread_join(nodes[i].t, NULL);
		}
	for (unsigned i = 0; i < nr_nodes; i++)
		hr_engine_free(nodes[i].e);
	free(obs.out[0].buf);
	return tap_done();
}
