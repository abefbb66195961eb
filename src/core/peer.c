/* peer.c - one replication connection with the engine's control pipe, and
 * its liveness path (the heartbeat thread; peer.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/peer.h"
#include "core/stall.h"

static int rto_told;

void hr_peer_init(struct hr_peer *p, const char *vm, int fd, int ctl_fd)
{
	p->vm = vm;
	p->fd = fd;
	p->ctl_fd = ctl_fd;
	p->handshake_ms = 0;
	p->heartbeat_ms = 0;
	p->max_pause_ms = 0;
	p->last_rx_ns = p->last_tx_ns = p->progress_ns = hr_now_ns();
	p->hb_seq = p->hb_withheld = 0;
	p->stall = (struct hr_stall){0};
	p->starved_told = 0;
	p->tx_tid = p->tx_boosted = 0;
	p->boost_told = 0;
	p->hb_running = 0;
	p->hb_stop_fd = -1;
	pthread_mutex_init(&p->send_lock, NULL);
	hr_frame_reader_init(&p->rd, vm);
	if (fd >= 0) {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		/* plain TCP (--insecure): tuned here; a TLS link's socket is the
		 * pump's (net/tls-pump.c), this fd a socketpair */
		if (hr_tcp_tune_liveness(fd) == -ENOPROTOOPT && !rto_told++)
			log_info(vm, "this kernel has no TCP_RTO_MIN_US (Linux 6.15+): a lost "
				     "packet may silence the link for 200 ms or more; see "
				     "hareplicated(8), --failover-timeout");
	}
}

void hr_peer_fini(struct hr_peer *p)
{
	hr_peer_liveness_stop(p);
	hr_frame_reader_fini(&p->rd);
	pthread_mutex_destroy(&p->send_lock);
}

void hr_peer_close(struct hr_peer *p)
{
	hr_peer_liveness_stop(p);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

void hr_peer_progress(struct hr_peer *p)
{
	__atomic_store_n(&p->progress_ns, hr_now_ns(), __ATOMIC_RELAXED);
}

void hr_peer_tx_lock(struct hr_peer *p)
{
	pthread_mutex_lock(&p->send_lock);
	__atomic_store_n(&p->tx_since_ns, hr_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&p->tx_tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
}

void hr_peer_tx_unlock(struct hr_peer *p)
{
	__atomic_store_n(&p->last_tx_ns, hr_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&p->tx_tid, 0, __ATOMIC_RELEASE);
	/* boosted by the heartbeat thread meanwhile: back to our own nice
	 * (the flag is set before the boost and cleared only here, by us) */
	if (__atomic_exchange_n(&p->tx_boosted, 0, __ATOMIC_ACQ_REL))
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->tx_nice);
	pthread_mutex_unlock(&p->send_lock);
}

/* The send lock is taken: a holder that has had it for a period while the
 * socket has room is not waiting for the peer but for a CPU.  It gets the
 * heartbeat thread's nice until it unlocks, so that its bytes (our sign of
 * life meanwhile) go out. */
static void boost_holder(struct hr_peer *p, uint64_t now)
{
	int tid = __atomic_load_n(&p->tx_tid, __ATOMIC_ACQUIRE);
	uint64_t since = __atomic_load_n(&p->tx_since_ns, __ATOMIC_RELAXED);
	if (!tid || now < since || now - since < p->heartbeat_ms * 1000000ull ||
	    __atomic_load_n(&p->tx_boosted, __ATOMIC_ACQUIRE))
		return;
	struct pollfd pf = {p->fd, POLLOUT, 0};
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT))
		return; /* waiting for room: data in flight */
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno || nice <= -20)
		return;
	p->tx_nice = nice;
	__atomic_store_n(&p->tx_boosted, 1, __ATOMIC_RELEASE);
	/* the holder may have let go just now: it then runs boosted until its
	 * next unlock, which restores it */
	if (setpriority(PRIO_PROCESS, (id_t)tid, -20) < 0) {
		__atomic_store_n(&p->tx_boosted, 0, __ATOMIC_RELEASE);
		return;
	}
	if (!p->boost_told++)
		log_info(p->vm,
			 "the engine held the link for %" PRIu64
			 " ms with room to send: starved of CPU; it runs at nice -20 "
			 "until its frame is out",
			 (now - since) / 1000000);
}

int hr_peer_send(struct hr_peer *p, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
		 const struct iovec *data, int nr_iov)
{
	if (p->fd < 0)
		return -ENOTCONN;
	hr_peer_tx_lock(p);
	int rc = hr_stream_send(p->fd, type, flags, msg, data, nr_iov);
	hr_peer_tx_unlock(p);
	return rc;
}

/* One heartbeat if the link is idle, writable and free; the engine's
 * progress decides whether one may go at all. */
static void heartbeat_due(struct hr_peer *p, uint64_t now)
{
	/* a frame is going out, or waits for room: proof of life already, and
	 * an engine blocked on the link is waiting, not wedged */
	if (pthread_mutex_trylock(&p->send_lock)) {
		boost_holder(p, now);
		return;
	}
	uint64_t progress = __atomic_load_n(&p->progress_ns, __ATOMIC_RELAXED);
	uint64_t stalled_ns = 0;
	if (progress != UINT64_MAX && now > progress &&
	    now - progress >= 2 * p->heartbeat_ms * 1000000ull)
		/* stale: judge it, forgiving the time spent waiting for a CPU */
		stalled_ns = hr_stall_tick(&p->stall, now, progress, hr_stall_run_delay_ns());
	else
		hr_stall_tick(&p->stall, now, progress, 0);
	if (!stalled_ns)
		p->starved_told = 0;
	if (p->max_pause_ms && stalled_ns >= p->max_pause_ms * 1000000ull) {
		/* wedged: fall silent on purpose, so the peer sees a dead host */
		if (!p->hb_withheld++)
			log_warnx(p->vm,
				  "the engine made no progress for %" PRIu64
				  " ms while it could run (max pause %" PRIu64
				  " ms): heartbeats stop so that the peer can take over",
				  stalled_ns / 1000000, p->max_pause_ms);
		pthread_mutex_unlock(&p->send_lock);
		return;
	}
	if (!p->hb_withheld && stalled_ns && now - progress >= p->max_pause_ms * 1000000ull &&
	    !p->starved_told++)
		log_info(
		    p->vm,
		    "the engine made no progress for %" PRIu64
		    " ms, waiting for a CPU most of it: starved, not wedged (heartbeats go on)",
		    (now - progress) / 1000000);
	if (p->hb_withheld) {
		log_info(p->vm, "the engine makes progress again: heartbeats resume");
		p->hb_withheld = 0;
	}
	struct pollfd pf = {p->fd, POLLOUT, 0};
	if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT) && !(pf.revents & (POLLERR | POLLHUP))) {
		Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
		hb.seq = ++p->hb_seq;
		hb.sender_time_ns = now;
		hr_stream_send(p->fd, HR_FT_HEARTBEAT, 0, &hb.base, NULL, 0);
	}
	hr_peer_tx_unlock(p); /* stamps last_tx: tried or sent, next try in a period */
}

static void *heartbeat_main(void *arg)
{
	struct hr_peer *p = arg;
	uint64_t period_ns = p->heartbeat_ms * 1000000ull;

	hr_set_interrupt_fd(p->hb_stop_fd); /* a stop ends a blocked write */
	/* a heartbeat is a few hundred bytes every period: it may run first
	 * whenever it wakes, even among busy threads of its own group */
	int rc = hr_thread_sched_latency(-20, 100);
	if (rc < 0)
		log_debug(p->vm, "heartbeat thread: no priority: %s", hr_strerror(rc));
	for (;;) {
		uint64_t now = hr_now_ns();
		uint64_t last = __atomic_load_n(&p->last_tx_ns, __ATOMIC_RELAXED);
		uint64_t due = last + period_ns;
		if (now >= due) {
			heartbeat_due(p, now);
			/* withheld or busy: look again in a fraction of a period */
			due = now + period_ns / 4;
		}
		int wait_ms = (int)((due - now + 999999) / 1000000);
		struct pollfd pf = {p->hb_stop_fd, POLLIN, 0};
		if (poll(&pf, 1, wait_ms > 0 ? wait_ms : 1) > 0 && (pf.revents & POLLIN))
			break;
	}
	return NULL;
}

int hr_peer_liveness_start(struct hr_peer *p)
{
	int rc;

	if (p->hb_running || !p->heartbeat_ms || p->fd < 0)
		return 0;
	if ((p->hb_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	hr_peer_progress(p);
	if ((rc = pthread_create(&p->hb_thread, NULL, heartbeat_main, p))) {
		close(p->hb_stop_fd);
		p->hb_stop_fd = -1;
		return -rc;
	}
	p->hb_running = 1;
	return 0;
}

void hr_peer_liveness_stop(struct hr_peer *p)
{
	uint64_t one = 1;

	if (!p->hb_running)
		return;
	(void)!write(p->hb_stop_fd, &one, sizeof(one));
	pthread_join(p->hb_thread, NULL);
	close(p->hb_stop_fd);
	p->hb_stop_fd = -1;
	p->hb_running = 0;
}

int hr_peer_wait(struct hr_peer *p, int timeout_ms)
{
	struct pollfd pf[2] = {{p->ctl_fd, POLLIN, 0}, {p->fd, POLLIN, 0}};
	int n;

	/* waiting is not being stuck: no wedge is judged meanwhile */
	__atomic_store_n(&p->progress_ns, UINT64_MAX, __ATOMIC_RELAXED);
	n = poll(pf, p->fd >= 0 ? 2 : 1, timeout_ms);
	hr_peer_progress(p);
	if (n < 0)
		return errno == EINTR ? -ETIMEDOUT : -errno;
	if (pf[0].revents & POLLIN) {
		char c;
		if (read(p->ctl_fd, &c, 1) == 1)
			return (unsigned char)c;
	}
	if (p->fd >= 0 && pf[1].revents)
		return 0;
	return -ETIMEDOUT;
}

ssize_t hr_peer_fill(struct hr_peer *p)
{
	ssize_t n = p->fd < 0 ? 0 : hr_frame_reader_fill(&p->rd, p->fd);
	if (n > 0)
		__atomic_store_n(&p->last_rx_ns, hr_now_ns(), __ATOMIC_RELAXED);
	return n;
}

uint64_t hr_peer_silent_ms(const struct hr_peer *p)
{
	return (hr_now_ns() - p->last_rx_ns) / 1000000;
}

int hr_peer_recv(struct hr_peer *p, struct hr_frame *f, int timeout_ms, int *ctl_r)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	*ctl_r = 0;
	for (;;) {
		int rc = hr_frame_reader_next(&p->rd, f);
		if (rc == 1)
			return 0;
		if (rc < 0)
			return rc;
		uint64_t now = hr_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		int w = hr_peer_wait(p, (int)((deadline - now) / 1000000ull) + 1);
		if (w > 0) {
			*ctl_r = w;
			return -EINTR;
		}
		if (w == -ETIMEDOUT)
			continue;
		if (w < 0)
			return w;
		ssize_t n = hr_peer_fill(p);
		if (n == 0)
			return hr_frame_reader_pending(&p->rd) ? -HR_EPROTO : -ECONNRESET;
		if (n < 0 && n != -EAGAIN)
			return (int)n;
	}
}

void hr_peer_send_error(struct hr_peer *p, int code, const char *text)
{
	Hr__Error er = HR__ERROR__INIT;

	if (p->fd < 0)
		return;
	er.code = code;
	er.text = (char *)text;
	hr_peer_send(p, HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
}
