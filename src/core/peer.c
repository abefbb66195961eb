/* peer.c - one replication connection with the engine's control pipe. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "core/peer.h"

void hr_peer_init(struct hr_peer *p, const char *vm, int fd, int ctl_fd)
{
	int one = 1;

	p->vm = vm;
	p->fd = fd;
	p->ctl_fd = ctl_fd;
	p->handshake_ms = 0;
	p->last_rx_ns = hr_now_ns();
	hr_frame_reader_init(&p->rd, vm);
	if (fd >= 0) {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		/* small frames (acks, epoch ends) must not wait for Nagle +
		 * delayed ACK; fails harmlessly on AF_UNIX */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

void hr_peer_fini(struct hr_peer *p)
{
	hr_frame_reader_fini(&p->rd);
}

void hr_peer_close(struct hr_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

int hr_peer_wait(struct hr_peer *p, int timeout_ms)
{
	struct pollfd pf[2] = {{p->ctl_fd, POLLIN, 0}, {p->fd, POLLIN, 0}};
	int n = poll(pf, p->fd >= 0 ? 2 : 1, timeout_ms);
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

int hr_peer_heartbeat(struct hr_peer *p)
{
	uint64_t now = hr_now_ns();

	if (!p->heartbeat_ms || p->fd < 0)
		return -1;
	if (now >= p->next_hb_ns) {
		struct pollfd pf = {p->fd, POLLOUT, 0};
		if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT)) {
			Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
			hb.seq = ++p->hb_seq;
			hb.sender_time_ns = now;
			hr_stream_send(p->fd, HR_FT_HEARTBEAT, 0, &hb.base, NULL, 0);
		}
		p->next_hb_ns = now + p->heartbeat_ms * 1000000ull;
	}
	return (int)((p->next_hb_ns - now + 999999) / 1000000);
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
	hr_stream_send(p->fd, HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
}
