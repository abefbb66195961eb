#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "util.h"

int hr_parse_size(const char *s, uint64_t *bytes_r)
{
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = 1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1ull << 40;
		end++;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (*end && strcasecmp(end, "iB") && strcasecmp(end, "B"))
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*bytes_r = v * mul;
	return 0;
}

int hr_parse_duration_us(const char *s, uint64_t *us_r)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	double mul;
	if (!*end || !strcmp(end, "ms"))
		mul = 1e3;
	else if (!strcmp(end, "us"))
		mul = 1;
	else if (!strcmp(end, "s"))
		mul = 1e6;
	else
		return -EINVAL;
	*us_r = (uint64_t)(v * mul + 0.5);
	return 0;
}

uint64_t hr_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int hr_write_all(int fd, const void *buf, uint64_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t r = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (uint64_t)r;
	}
	return 0;
}

int hr_read_all(int fd, void *buf, uint64_t len)
{
	char *p = buf;
	while (len) {
		ssize_t r = read(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -HR_EBADSNAP;
		p += r;
		len -= (uint64_t)r;
	}
	return 0;
}

static __thread int interrupt_fd = -1;

void hr_set_interrupt_fd(int fd)
{
	interrupt_fd = fd;
}

/* Block until fd is writable (a non-blocking socket's buffer has room), or
 * this thread's interrupt fd is readable (-EINTR). */
static int wait_writable(int fd)
{
	struct pollfd pfd[2] = {{.fd = fd, .events = POLLOUT},
				{.fd = interrupt_fd, .events = POLLIN}};
	int r;

	do
		r = poll(pfd, interrupt_fd >= 0 ? 2 : 1, -1);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (interrupt_fd >= 0 && (pfd[1].revents & POLLIN) && !(pfd[0].revents & POLLOUT)) {
		/* asked to end: a peer that still reads gets 2 s to take the rest of
		 * the frame (an orderly stop must not tear the stream); one that
		 * stopped reading (a partition) does not hold us */
		do
			r = poll(pfd, 1, 2000);
		while (r < 0 && errno == EINTR);
		return r > 0 ? 0 : -EINTR;
	}
	return 0;
}

int hr_writev_all(int fd, struct iovec *iov, int cnt)
{
	int use_writev = 0;

	while (cnt > 0) {
		int n = cnt > IOV_MAX ? IOV_MAX : cnt;
		ssize_t r;

		if (!use_writev) {
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
			r = sendmsg(fd, &mh, MSG_NOSIGNAL);
			if (r < 0 && errno == ENOTSOCK) {
				use_writev = 1;
				continue;
			}
		} else {
			r = writev(fd, iov, n);
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int rc = wait_writable(fd);
				if (rc)
					return rc;
				continue;
			}
			return -errno;
		}
		while (cnt > 0 && (size_t)r >= iov->iov_len) {
			r -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= r;
		}
	}
	return 0;
}
