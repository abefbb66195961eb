/*
 * engine-pair.h - a primary and a backup engine in one process (threads)
 * over a socketpair or loopback TCP, with an outside observer for their
 * released output.  Shared by the core's tests and bench/b-replicate.
 *
 * The observer keeps each channel's bytes by offset, as any outside reader
 * would: a repeat must carry the same bytes (else a conflict), data beyond
 * what it has is a gap.
 */
#ifndef HR_TESTS_ENGINE_PAIR_H
#define HR_TESTS_ENGINE_PAIR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/engine.h"
#include "net/tls.h"

/* Is backend be among HR_TEST_BACKENDS, a comma list (default: mem and
 * kvm; xen runs in the nested Xen host, make check-xen)? */
/* Where the test is, for a watchdog's kill: a test that the harness ends
 * (timeout's SIGTERM) says which step it was stuck in.  Set with ep_at(). */
static const char *volatile ep_where = "start";

static inline void ep_on_term(int sig)
{
	const char *w = ep_where;
	(void)!write(1, "# killed by a signal while: ", 28);
	(void)!write(1, w, strlen(w));
	(void)!write(1, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void ep_at(const char *where)
{
	static int armed;
	if (!armed++) {
		signal(SIGTERM, ep_on_term);
		signal(SIGALRM, ep_on_term);
	}
	ep_where = where;
}

static inline int ep_backend_wanted(const char *be)
{
	const char *list = getenv("HR_TEST_BACKENDS");
	if (!list || !*list)
		return strcmp(be, "xen") != 0;
	size_t n = strlen(be);
	for (const char *p = list; (p = strstr(p, be)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

/* Which of those runs can run here: kvm needs /dev/kvm, xen a --with-xen
 * build in a dom0 and the guest's kernel in HR_XEN_KERNEL.  0 when none
 * can (the TAP skip line printed), else 1. */
static inline int ep_backends(int *mem_r, int *kvm_r, int *xen_r)
{
	*mem_r = ep_backend_wanted("mem");
	*kvm_r = ep_backend_wanted("kvm") && access("/dev/kvm", R_OK | W_OK) == 0;
	*xen_r = ep_backend_wanted("xen") && hr_backend_find("xen") && getenv("HR_XEN_KERNEL") &&
		 access("/proc/xen/privcmd", R_OK) == 0;
	if (*mem_r || *kvm_r || *xen_r)
		return 1;
	printf("1..0 # SKIP none of HR_TEST_BACKENDS=%s runs here (kvm: /dev/kvm; xen: a "
	       "--with-xen build in a dom0, HR_XEN_KERNEL: make check-xen)\n",
	       getenv("HR_TEST_BACKENDS") ? getenv("HR_TEST_BACKENDS") : "");
	return 0;
}

struct ep_chan {
	char *buf;
	size_t len, cap;
	unsigned gaps, conflicts;
};

struct ep_pair {
	pthread_mutex_t lock;
	struct ep_chan out[HR_MAX_CHANNELS];
	struct hr_engine *p, *b;
	int fds[2];
	pthread_t tp, tb;
	int rc_p, rc_b;
	volatile uint64_t p_acked; /* epochs the primary saw acknowledged */
	volatile uint64_t b_committed;
	volatile enum hr_role_state p_state, b_state;
	/* bit 1 << enum hr_role_event: the events each side reported (those that
	 * keep the state too, as +backup-silent, +output-held) */
	volatile uint64_t p_events, b_events;
	/* optional extra observers */
	void (*on_output)(struct ep_pair *ep, unsigned chan, uint64_t off, const void *buf,
			  size_t len);
	void (*on_p_epoch)(struct ep_pair *ep, const struct hr_epoch_stats *st);
	void *user;
	/* relay mode (ep_start with EP_RELAY): a middlebox between the two */
	int relay[2]; /* its ends facing the primary and the backup */
	pthread_t trelay;
	volatile int partitioned; /* 1: forward nothing, close nothing (a silent partition) */
	volatile int torn;	  /* 1: close both sides (a middlebox tore the link) */
	/* who spoke: output bytes each side's engine released */
	volatile uint64_t p_bytes, b_bytes;
	volatile int relay_stop;
};

/* EP_TLS: loopback TCP with TLS 1.3 (PSK mode) on it, through net/tls.h:
 * the engines get the plaintext fds, as the daemons' workers do. */
enum { EP_SOCKETPAIR = 0, EP_TCP = 1, EP_RELAY = 2, EP_TLS = 3 };

static inline void ep_sink(void *opaque, unsigned chan, uint64_t off, const void *p, size_t n)
{
	struct ep_pair *ep = opaque;
	struct ep_chan *c = &ep->out[chan % HR_MAX_CHANNELS];

	pthread_mutex_lock(&ep->lock);
	if (off > c->len) {
		c->gaps++;
	} else {
		size_t overlap = c->len - off < n ? (size_t)(c->len - off) : n;
		if (overlap && memcmp(c->buf + off, p, overlap))
			c->conflicts++;
		size_t add = n - overlap;
		if (c->len + add + 1 > c->cap) {
			c->cap = (c->len + add + 1) * 2;
			c->buf = realloc(c->buf, c->cap);
		}
		memcpy(c->buf + c->len, (const char *)p + overlap, add);
		c->len += add;
		c->buf[c->len] = 0;
	}
	pthread_mutex_unlock(&ep->lock);
	if (ep->on_output)
		ep->on_output(ep, chan, off, p, n);
}

static inline void ep_sink_p(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	__atomic_add_fetch(&((struct ep_pair *)o)->p_bytes, n, __ATOMIC_SEQ_CST);
	ep_sink(o, chan, off, p, n);
}

static inline void ep_sink_b(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	__atomic_add_fetch(&((struct ep_pair *)o)->b_bytes, n, __ATOMIC_SEQ_CST);
	ep_sink(o, chan, off, p, n);
}

static inline void ep_p_epoch(void *o, const struct hr_epoch_stats *st)
{
	struct ep_pair *ep = o;
	__atomic_add_fetch(&ep->p_acked, 1, __ATOMIC_SEQ_CST);
	if (ep->on_p_epoch)
		ep->on_p_epoch(ep, st);
}

static inline void ep_b_epoch(void *o, const struct hr_epoch_stats *st)
{
	struct ep_pair *ep = o;
	__atomic_add_fetch(&ep->b_committed, 1, __ATOMIC_SEQ_CST);
}

static inline void ep_p_state(void *o, enum hr_role_state from, enum hr_role_state to,
			      enum hr_role_event ev)
{
	((struct ep_pair *)o)->p_state = to;
	__atomic_or_fetch(&((struct ep_pair *)o)->p_events, 1ull << ev, __ATOMIC_SEQ_CST);
}

static inline void ep_b_state(void *o, enum hr_role_state from, enum hr_role_state to,
			      enum hr_role_event ev)
{
	((struct ep_pair *)o)->b_state = to;
	__atomic_or_fetch(&((struct ep_pair *)o)->b_events, 1ull << ev, __ATOMIC_SEQ_CST);
}

static inline void *ep_run_p(void *a)
{
	struct ep_pair *ep = a;
	ep->rc_p = hr_engine_run_primary(ep->p, ep->fds[0]);
	return NULL;
}

static inline void *ep_run_b(void *a)
{
	struct ep_pair *ep = a;
	ep->rc_b = hr_engine_run_backup(ep->b, ep->fds[1]);
	return NULL;
}

/* A connected loopback TCP pair (like two hosts), else a socketpair. */
static inline int ep_connect(int fds[2], int tcp)
{
	if (!tcp)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) ? -1 : 0;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al))
		return -1;
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fds[0], (void *)&a, sizeof(a)))
		return -1;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	int one = 1; /* small frames (acks, epoch ends) must not wait for Nagle */
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fds[1] < 0 ? -1 : 0;
}

struct ep_tls_srv {
	struct hr_tls_ctx *ctx;
	int fd, plain, rc;
};

static inline void *ep_tls_srv_run(void *a)
{
	struct ep_tls_srv *s = a;
	struct hr_tls_peer p = {.desc = "ep-client", .quiet = 1};
	s->rc = hr_tls_server(s->ctx, s->fd, &p, &s->plain, NULL, 0);
	return NULL;
}

/* Replace the connected TCP pair fds by TLS links' plaintext ends. */
static inline int ep_tls_wrap(int fds[2])
{
	static struct hr_tls_ctx *ctx;
	if (!ctx) {
		char path[] = "/tmp/ep-psk.XXXXXX", key[65], err[256];
		int fd = mkstemp(path);
		for (int i = 0; i < 64; i++)
			key[i] = "0123456789abcdef"[(unsigned)rand() % 16];
		key[64] = '\n';
		struct hr_tls_config cfg = {.psk_file = path, .node_name = "ep"};
		int bad = fd < 0 || fchmod(fd, 0600) || write(fd, key, 65) != 65;
		if (fd >= 0)
			close(fd);
		if (bad || hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err)) < 0)
			ctx = NULL;
		unlink(path);
		if (!ctx)
			return -1;
	}
	struct ep_tls_srv s = {.ctx = ctx, .fd = fds[1], .plain = -1};
	struct hr_tls_peer p = {.desc = "ep-server", .quiet = 1};
	pthread_t t;
	int plain = -1;
	if (pthread_create(&t, NULL, ep_tls_srv_run, &s))
		return -1;
	int rc = hr_tls_client(ctx, fds[0], &p, &plain, NULL, 0);
	pthread_join(t, NULL);
	if (rc < 0 || s.rc < 0) {
		if (plain >= 0)
			close(plain);
		if (s.plain >= 0)
			close(s.plain);
		return -1;
	}
	fds[0] = plain;
	fds[1] = s.plain;
	return 0;
}

/* The middlebox: copies bytes both ways until relay_stop; while
 * partitioned it reads nothing, so nothing arrives and nothing closes. */
static inline void *ep_relay_run(void *a)
{
	struct ep_pair *ep = a;
	static char buf[1 << 16];
	while (!ep->relay_stop) {
		if (ep->torn == 1) {
			shutdown(ep->relay[0], SHUT_RDWR);
			shutdown(ep->relay[1], SHUT_RDWR);
			ep->torn = 2;
		}
		if (ep->partitioned || ep->torn) {
			usleep(5000);
			continue;
		}
		struct pollfd p[2] = {{ep->relay[0], POLLIN, 0}, {ep->relay[1], POLLIN, 0}};
		if (poll(p, 2, 20) <= 0)
			continue;
		if (ep->partitioned || ep->torn)
			continue; /* cut while it waited: what arrived since stays */
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t n = read(ep->relay[i], buf, sizeof(buf));
			if (n <= 0) { /* one side closed: pass the close on */
				shutdown(ep->relay[!i], SHUT_WR);
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(ep->relay[!i], buf + off, (size_t)(n - off));
				if (w <= 0)
					break;
				off += w;
			}
		}
	}
	return NULL;
}

static inline int ep_relay_connect(struct ep_pair *ep)
{
	int a[2], b[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b))
		return -1;
	ep->fds[0] = a[0];
	ep->relay[0] = a[1];
	ep->relay[1] = b[0];
	ep->fds[1] = b[1];
	return pthread_create(&ep->trelay, NULL, ep_relay_run, ep) ? -1 : 0;
}

/* Build both engines (output, epochs and states observed) and start them. */
static inline int ep_start(struct ep_pair *ep, struct hr_engine_config pc,
			   struct hr_engine_config bc, int tcp)
{
	pthread_mutex_init(&ep->lock, NULL);
	pc.output_sink = ep_sink_p;
	bc.output_sink = ep_sink_b;
	pc.output_opaque = bc.output_opaque = ep;
	pc.on_epoch = ep_p_epoch;
	bc.on_epoch = ep_b_epoch;
	pc.epoch_opaque = bc.epoch_opaque = ep;
	pc.on_state = ep_p_state;
	bc.on_state = ep_b_state;
	pc.state_opaque = bc.state_opaque = ep;
	int crc = tcp == EP_RELAY ? ep_relay_connect(ep) : ep_connect(ep->fds, tcp != 0);
	if (!crc && tcp == EP_TLS)
		crc = ep_tls_wrap(ep->fds);
	if (crc < 0 || hr_engine_new(&ep->p, &pc) < 0 || hr_engine_new(&ep->b, &bc) < 0)
		return -1;
	pthread_create(&ep->tb, NULL, ep_run_b, ep);
	pthread_create(&ep->tp, NULL, ep_run_p, ep);
	return 0;
}

/* The primary dies as a crash would: its guest stops, its stream ends. */
static inline void ep_kill_primary(struct ep_pair *ep)
{
	hr_engine_abort(ep->p);
	pthread_join(ep->tp, NULL);
	shutdown(ep->fds[0], SHUT_RDWR);
	close(ep->fds[0]);
	ep->fds[0] = -1;
}

/* Stop whatever still runs and free both engines. */
static inline void ep_finish(struct ep_pair *ep)
{
	const char *was = ep_where;
	if (ep->fds[0] >= 0) {
		ep_at("ep_finish: stopping the primary");
		hr_engine_stop(ep->p);
		pthread_join(ep->tp, NULL);
	}
	ep_at("ep_finish: stopping the backup");
	hr_engine_stop(ep->b);
	pthread_join(ep->tb, NULL);
	ep_at("ep_finish: freeing the primary");
	hr_engine_free(ep->p);
	ep_at("ep_finish: freeing the backup");
	hr_engine_free(ep->b);
	ep_at(was);
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		free(ep->out[c].buf);
	if (ep->trelay) {
		ep->relay_stop = 1;
		pthread_join(ep->trelay, NULL);
		close(ep->relay[0]);
		close(ep->relay[1]);
	}
}

/* Wait (bounded) until every bit of want is set in *events (ep->p_events,
 * ep->b_events); 1 if so. */
static inline int ep_wait_events(volatile uint64_t *events, uint64_t want, double timeout_s)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if ((__atomic_load_n(events, __ATOMIC_SEQ_CST) & want) == want)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s)
			return 0;
		usleep(2000);
	}
}

/* Wait (bounded) until *v >= want; 1 if reached. */
static inline int ep_wait_u64(volatile uint64_t *v, uint64_t want, double timeout_s)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (__atomic_load_n(v, __ATOMIC_SEQ_CST) >= want)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s)
			return 0;
		usleep(2000);
	}
}

/* A backup engine driven by hand (the test is the primary): runs on
 * ep->fds[1]; ep->fds[0] is the test's end. */
static inline void *ep_hand_backup_run(void *a)
{
	struct ep_pair *ep = a;
	ep->rc_b = hr_engine_run_backup(ep->b, ep->fds[1]);
	return NULL;
}

/*
 * Start a backup engine named name with one disk bd of img_bytes, and send
 * it a primary's HELLO for an 8 MiB mem VM with that disk.  Returns 1 when
 * it answered with an accepting HELLO_ACK.
 */
static inline int ep_hand_backup(struct ep_pair *ep, const char *name, struct hr_disk_spec *bd,
				 uint64_t img_bytes)
{
	struct hr_engine_config bc = {.name = name, .auto_promote = 1, .output_sink = ep_sink};
	struct hr_mem_region layout = {0, 8 << 20, NULL};
	struct hr_frame f;

	bc.output_opaque = ep;
	bc.on_state = ep_b_state;
	bc.state_opaque = ep;
	bc.vm = (struct hr_vm_config){.disks = bd, .nr_disks = 1};
	pthread_mutex_init(&ep->lock, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ep->fds) < 0 ||
	    hr_engine_new(&ep->b, &bc) < 0)
		return 0;
	pthread_create(&ep->tb, NULL, ep_hand_backup_run, ep);
	hr_stream_send_hello_disks(ep->fds[0], HR__ROLE__ROLE_PRIMARY, name, "mem", 8 << 20, 1,
				   &layout, 1, 0, 0, 0, NULL, NULL, 0, &img_bytes, 1);
	int rc = hr_stream_recv(ep->fds[0], "t", &f);
	int accepted = !rc && f.type == HR_FT_HELLO_ACK && ((Hr__HelloAck *)f.msg)->accepted;
	if (!rc)
		hr_frame_release(&f);
	return accepted;
}

#endif
