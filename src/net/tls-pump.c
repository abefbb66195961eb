/*
 * tls-pump.c - one thread per TLS link relaying between the TCP socket (via
 * its SSL object) and our end of an AF_UNIX socketpair; the caller holds the
 * other end.  The semantics it keeps are listed in tls.h.
 *
 * Both fds are non-blocking and one thread serves both directions: each
 * pass moves whatever can move without blocking, and only when nothing can
 * it polls for exactly what the blocked operations wait for (SSL_read and
 * SSL_write each remember whether they wait for POLLIN or POLLOUT on the
 * socket).  Per direction the pump holds at most one chunk (HR_TLS_CHUNK):
 * it reads from one side only once the previous chunk is fully written to
 * the other, so back-pressure crosses the pump unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/util.h"
#include "net/tls-internal.h"

static unsigned pumps_running;

/* The links of this process by the inode of the caller's end (an fd number
 * may be reused; the inode of an open socket is not), for hr_tls_rx_queued. */
#define PUMP_REG_MAX 64
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	ino_t ino;
	struct pump *p;
} reg[PUMP_REG_MAX];

struct pump {
	struct hr_tls_ctx *ctx;
	SSL *ssl;
	int net; /* the TCP socket */
	int eng; /* our end of the socketpair */
	char vm[64], desc[80];
	unsigned char out[HR_TLS_CHUNK]; /* caller -> peer */
	size_t out_len, out_off;
	unsigned char in[HR_TLS_CHUNK]; /* peer -> caller */
	size_t in_len, in_off;
	short rd_block; /* what SSL_read waits for on net, 0: nothing */
	short wr_block; /* POLLOUT: the socket took no more of the records in wire */
	BIO *wire;	/* our half of the BIO pair SSL writes records into */
	int eng_rd_block, eng_wr_block;
	unsigned eng_eof : 1;	 /* the caller shut its writing side (or closed) */
	unsigned eng_gone : 1;	 /* the caller reads no more (close or SHUT_RDWR) */
	unsigned eng_shut : 1;	 /* we shut our writing side towards the caller */
	unsigned net_eof : 1;	 /* peer's close_notify or FIN */
	unsigned close_sent : 1; /* close_notify is in the BIO pair */
	unsigned net_closed : 1; /* ... sent, and the socket shut for writing */
	unsigned net_hup : 1;	 /* poll saw POLLHUP/POLLERR on the socket */
	unsigned dead : 1;	 /* reset or TLS error: tear down now */
	uint64_t linger_until_ns;
	const char *why; /* how it ended, for the log */
};

unsigned hr_tls_pumps_running(void)
{
	return __atomic_load_n(&pumps_running, __ATOMIC_ACQUIRE);
}

static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *s = e ? ERR_reason_error_string(e) : NULL;
	return s ? s : "TLS error";
}

static void die(struct pump *p, const char *why)
{
	p->dead = 1;
	if (!p->why)
		p->why = why;
}

static void eng_gone(struct pump *p)
{
	if (p->eng_gone)
		return;
	p->eng_gone = 1;
	p->in_len = p->in_off = 0; /* nobody will read it */
	p->linger_until_ns = hr_now_ns() + (uint64_t)HR_TLS_LINGER_MS * 1000000;
}

/* An SSL_read/SSL_write/SSL_shutdown failure that is not a retry. */
static void net_failure(struct pump *p, int e, int saved_errno)
{
	static __thread char buf[160];

	if (e == SSL_ERROR_SYSCALL && saved_errno) {
		snprintf(buf, sizeof(buf), "socket: %s", strerror(saved_errno));
		die(p, buf);
	} else {
		snprintf(buf, sizeof(buf), "TLS: %s", ssl_reason());
		die(p, buf);
	}
}

/* peer -> caller: write what we hold, else read the next chunk. 1 = progress. */
static int step_in(struct pump *p)
{
	if (p->in_off < p->in_len) {
		if (p->eng_wr_block)
			return 0;
		ssize_t r = send(p->eng, p->in + p->in_off, p->in_len - p->in_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			p->in_off += (size_t)r;
			if (p->in_off == p->in_len)
				p->in_off = p->in_len = 0;
			return 1;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			p->eng_wr_block = errno == EAGAIN;
			return errno == EINTR;
		}
		eng_gone(p); /* EPIPE, ECONNRESET: the caller closed */
		return 1;
	}
	if (p->net_eof) {
		if (p->eng_shut || p->eng_gone)
			return 0;
		shutdown(p->eng, SHUT_WR); /* EOF for the caller, who may still write */
		p->eng_shut = 1;
		return 1;
	}
	if (p->eng_gone || (p->rd_block && !SSL_has_pending(p->ssl)))
		return 0;
	size_t got = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read_ex(p->ssl, p->in, sizeof(p->in), &got);
	if (r == 1) {
		p->in_len = got;
		p->in_off = 0;
		return 1;
	}
	int saved = errno, e = SSL_get_error(p->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		p->rd_block = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		p->rd_block = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		p->net_eof = 1; /* close_notify */
		return 1;
	}
	if ((e == SSL_ERROR_SYSCALL && !saved) ||
	    (e == SSL_ERROR_SSL &&
	     ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		log_info(p->vm[0] ? p->vm : NULL, "TLS link %s: peer closed without close_notify",
			 p->desc);
		p->net_eof = 1;
		return 1;
	}
	net_failure(p, e, saved);
	return 1;
}

/* Send the records waiting in the BIO pair: 1 = progress. */
static int flush_wire(struct pump *p)
{
	int progress = 0;
	char *ptr;
	int n;

	while ((n = BIO_nread0(p->wire, &ptr)) > 0) {
		ssize_t r = send(p->net, ptr, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			p->wr_block = POLLOUT;
			return progress;
		}
		if (r <= 0) {
			static __thread char buf[96];
			snprintf(buf, sizeof(buf), "socket: %s", strerror(r < 0 ? errno : EPIPE));
			die(p, buf);
			return 1;
		}
		BIO_nread(p->wire, &ptr, (int)r);
		progress = 1;
	}
	return progress;
}

/*
 * caller -> peer: send the records already made, else encrypt what we hold
 * (into the BIO pair: one send per pair-full rather than one per 16 KiB
 * record, which on a VM saves most of the wake-ups), else read the next
 * chunk.  At the caller's EOF: close_notify, then shutdown(SHUT_WR).
 */
static int step_out(struct pump *p)
{
	if (BIO_ctrl_pending(p->wire))
		return p->wr_block ? 0 : flush_wire(p);
	if (p->out_off < p->out_len) {
		size_t w = 0;
		ERR_clear_error();
		int r = SSL_write_ex(p->ssl, p->out + p->out_off, p->out_len - p->out_off, &w);
		if (r == 1) {
			p->out_off += w;
			if (p->out_off == p->out_len)
				p->out_off = p->out_len = 0;
			return 1;
		}
		int e = SSL_get_error(p->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			return BIO_ctrl_pending(p->wire) > 0; /* the pair is full: send it */
		net_failure(p, e, 0);
		return 1;
	}
	if (p->eng_eof && !p->close_sent) {
		SSL_shutdown(p->ssl); /* close_notify, into the pair */
		p->close_sent = 1;
		return 1;
	}
	if (p->close_sent && !p->net_closed) {
		shutdown(p->net, SHUT_WR);
		p->net_closed = 1;
		return 1;
	}
	if (p->eng_eof || p->eng_rd_block)
		return 0;
	ssize_t r = recv(p->eng, p->out, sizeof(p->out), MSG_DONTWAIT);
	if (r > 0) {
		p->out_len = (size_t)r;
		p->out_off = 0;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		p->eng_rd_block = errno == EAGAIN;
		return errno == EINTR;
	}
	p->eng_eof = 1; /* 0: shutdown(SHUT_WR) or close; error: gone */
	if (r < 0)
		eng_gone(p);
	return 1;
}

static int finished(struct pump *p)
{
	if (p->dead)
		return 1;
	if (p->eng_gone && p->net_closed)
		return 1; /* the caller is done both ways, the peer was told */
	if (p->net_closed && p->net_eof && p->eng_shut)
		return 1; /* both ways closed cleanly */
	if (p->eng_gone && hr_now_ns() >= p->linger_until_ns) {
		p->why = "the peer did not take the last data in time";
		return 1;
	}
	return 0;
}

static void wait_events(struct pump *p)
{
	struct pollfd pf[2] = {{-1, 0, 0}, {-1, 0, 0}};
	int timeout_ms = -1;

	if (p->rd_block && p->in_len == 0 && !p->net_eof && !p->eng_gone)
		pf[0].events |= p->rd_block;
	if (p->wr_block)
		pf[0].events |= p->wr_block;
	if (pf[0].events || !p->net_hup)
		pf[0].fd = p->net;
	if (p->in_off < p->in_len && p->eng_wr_block)
		pf[1].events |= POLLOUT;
	if (p->out_len == 0 && !p->eng_eof && p->eng_rd_block)
		pf[1].events |= POLLIN;
	if (!p->eng_gone)
		pf[1].fd = p->eng; /* POLLHUP: the caller closed */
	if (p->eng_gone) {
		uint64_t now = hr_now_ns();
		timeout_ms = p->linger_until_ns > now
				 ? (int)((p->linger_until_ns - now + 999999) / 1000000)
				 : 0;
	}
	if (poll(pf, 2, timeout_ms) <= 0)
		return;
	short nr = pf[0].revents, er = pf[1].revents;
	if (nr & (POLLHUP | POLLERR)) {
		p->net_hup = 1;
		p->rd_block = p->wr_block = 0; /* let the next call meet the error */
	}
	if (nr & POLLIN) {
		if (p->rd_block == POLLIN)
			p->rd_block = 0;
		if (p->wr_block == POLLIN)
			p->wr_block = 0;
	}
	if (nr & POLLOUT) {
		if (p->rd_block == POLLOUT)
			p->rd_block = 0;
		if (p->wr_block == POLLOUT)
			p->wr_block = 0;
	}
	if (er & (POLLIN | POLLHUP | POLLERR))
		p->eng_rd_block = 0;
	if (er & (POLLOUT | POLLHUP | POLLERR))
		p->eng_wr_block = 0;
	if (er & POLLHUP)
		eng_gone(p);
}

static void reg_add(ino_t ino, struct pump *p)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < PUMP_REG_MAX; i++)
		if (!reg[i].p) {
			reg[i].ino = ino;
			reg[i].p = p;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(struct pump *p)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < PUMP_REG_MAX; i++)
		if (reg[i].p == p)
			reg[i].p = NULL;
	pthread_mutex_unlock(&reg_lock);
}

long hr_tls_rx_queued(int plain_fd)
{
	struct stat st;
	long n = -ENOENT;

	if (fstat(plain_fd, &st) < 0)
		return -ENOENT;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < PUMP_REG_MAX; i++) {
		struct pump *p = reg[i].p;
		if (!p || reg[i].ino != st.st_ino)
			continue;
		int q = 0;
		if (p->net >= 0 && ioctl(p->net, SIOCINQ, &q) < 0)
			q = 0;
		size_t held = __atomic_load_n(&p->in_len, __ATOMIC_RELAXED) -
			      __atomic_load_n(&p->in_off, __ATOMIC_RELAXED);
		n = (long)q + (long)(held < HR_TLS_CHUNK ? held : 0);
		break;
	}
	pthread_mutex_unlock(&reg_lock);
	return n;
}

static void pump_free(struct pump *p)
{
	reg_del(p); /* before the socket closes: hr_tls_rx_queued holds reg_lock */
	SSL_free(p->ssl);
	BIO_free(p->wire);
	if (p->net >= 0)
		close(p->net);
	if (p->eng >= 0)
		close(p->eng);
	hr_tls_ctx_free(p->ctx);
	free(p);
}

static void *pump_main(void *arg)
{
	struct pump *p = arg;
	const char *vm = p->vm[0] ? p->vm : NULL;

	/* it carries the heartbeats: picked soon when it wakes (a short slice),
	 * at the nice value it has (no larger share: it also moves bulk data) */
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	if (errno == 0)
		(void)hr_thread_sched_latency(nice, 100);
	while (!finished(p)) {
		int progress;
		do {
			progress = step_in(p);
			progress |= step_out(p);
		} while (progress && !p->dead);
		if (!finished(p))
			wait_events(p);
	}
	if (p->dead)
		log_warnx(vm, "TLS link %s ended: %s", p->desc, p->why);
	else
		log_debug(vm, "TLS link %s closed%s%s", p->desc, p->why ? ": " : "",
			  p->why ? p->why : "");
	/* A reset or TLS error reaches the caller as EOF (ECONNRESET if it had
	 * data we never read) on read and EPIPE on write: close our end. */
	pump_free(p);
	ERR_clear_error();
	OPENSSL_thread_stop();
	__atomic_sub_fetch(&pumps_running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void log_rto_once(const char *vm)
{
	static int told;
	if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
		log_info(vm, "this kernel has no TCP_RTO_MIN_US (Linux 6.15+): a lost packet may "
			     "silence the link for 200 ms or more; see hareplicated(8), "
			     "--failover-timeout");
}

int hr_tls_pump_start(struct hr_tls_ctx *ctx, SSL *ssl, int fd, const char *vm, const char *desc,
		      int *plain_fd_r)
{
	int sv[2], buf_bytes = HR_TLS_PAIR_BUF, rc;
	struct pump *p = calloc(1, sizeof(*p));
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;

	if (!p)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		free(p);
		return rc;
	}
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf_bytes, sizeof(buf_bytes));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buf_bytes, sizeof(buf_bytes));
	}
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	if (hr_tcp_tune_liveness(fd) == -ENOPROTOOPT)
		log_rto_once(vm);
	BIO *inner = NULL;
	if (!BIO_new_bio_pair(&inner, HR_TLS_WIRE, &p->wire, HR_TLS_WIRE)) {
		close(sv[0]);
		close(sv[1]);
		free(p);
		return -ENOMEM;
	}
	SSL_set0_wbio(ssl, inner); /* reads stay on the socket BIO */
	p->ctx = ctx;
	p->ssl = ssl;
	p->net = fd;
	p->eng = sv[1];
	snprintf(p->vm, sizeof(p->vm), "%s", vm ? vm : "");
	snprintf(p->desc, sizeof(p->desc), "%s", desc);

	struct stat st;
	if (fstat(sv[0], &st) == 0)
		reg_add(st.st_ino, p); /* before it runs: it may end at once */
	/* The pump takes no signals: they are meant for the engine's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	hr_tls_ctx_ref(ctx);
	__atomic_add_fetch(&pumps_running, 1, __ATOMIC_RELEASE);
	rc = -pthread_create(&tid, &attr, pump_main, p);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		reg_del(p);
		__atomic_sub_fetch(&pumps_running, 1, __ATOMIC_RELEASE);
		hr_tls_ctx_free(ctx);
		SSL_set_fd(ssl, fd); /* the caller frees ssl: give it back its socket BIO */
		BIO_free(p->wire);
		close(sv[0]);
		close(sv[1]);
		free(p);
		return rc;
	}
	*plain_fd_r = sv[0];
	return 0;
}
