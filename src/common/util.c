#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "util.h"

/* Leading decimal digits of s into *v_r; *end_r is the first non-digit.
 * -EINVAL when there is no digit (so no sign, no space), -ERANGE on
 * overflow. */
static int parse_digits(const char *s, uint64_t *v_r, const char **end_r)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*v_r = v;
	*end_r = p;
	return 0;
}

int hr_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *v_r)
{
	const char *end;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_digits(s, &v, &end);
	if (rc < 0)
		return rc;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*v_r = v;
	return 0;
}

int hr_parse_size(const char *s, uint64_t *bytes_r)
{
	const char *end;
	uint64_t v, mul = 1;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_digits(s, &v, &end);
	if (rc < 0)
		return rc;
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
	if (*end && (mul == 1 || (strcasecmp(end, "iB") && strcasecmp(end, "B"))))
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*bytes_r = v * mul;
	return 0;
}

int hr_parse_duration_unit_us(const char *s, uint64_t unit_us, uint64_t *us_r)
{
	const char *end;
	uint64_t whole, frac = 0, frac_div = 1, mul;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_digits(s, &whole, &end);
	if (rc < 0)
		return rc;
	if (*end == '.') {
		end++;
		if (*end < '0' || *end > '9')
			return -EINVAL;
		/* digits past microseconds do not count (at most 7 kept) */
		for (; *end >= '0' && *end <= '9'; end++)
			if (frac_div < 10000000) {
				frac = frac * 10 + (uint64_t)(*end - '0');
				frac_div *= 10;
			}
	}
	if (!*end)
		mul = unit_us;
	else if (!strcmp(end, "ms"))
		mul = 1000;
	else if (!strcmp(end, "us"))
		mul = 1;
	else if (!strcmp(end, "s"))
		mul = 1000000;
	else
		return -EINVAL;
	if (!mul || whole > UINT64_MAX / mul)
		return -ERANGE;
	/* frac < frac_div <= 1e7 and mul <= 1e6 (or a caller's unit): keep it in range */
	if (frac && mul > UINT64_MAX / frac)
		return -ERANGE;
	uint64_t part = (frac * mul + frac_div / 2) / frac_div;
	if (whole * mul > UINT64_MAX - part)
		return -ERANGE;
	*us_r = whole * mul + part;
	return 0;
}

int hr_parse_duration_us(const char *s, uint64_t *us_r)
{
	return hr_parse_duration_unit_us(s, 1000, us_r);
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

static int mac_ok(const char *s, size_t len)
{
	if (len != 17)
		return 0;
	for (size_t i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return 0;
	return !(strtoul(s, NULL, 16) & 1); /* not multicast */
}

int hr_net_spec_check(const char *spec, char *why, size_t n)
{
	const char *p = spec;
	int tap = 0;

	while (*p) {
		size_t item = strcspn(p, ",");
		const char *v = memchr(p, '=', item);
		size_t kl = v ? (size_t)(v - p) : item, vl = v ? item - kl - 1 : 0;
		if (v && kl == 3 && !strncmp(p, "tap", 3) && !tap) {
			int ok = vl >= 1 && vl <= 15;
			for (size_t i = 0; ok && i < vl; i++)
				ok = isalnum((unsigned char)v[1 + i]) || strchr("_.-", v[1 + i]);
			if (!ok) {
				snprintf(why, n, "tap=: an interface name of 1..15 [A-Za-z0-9_.-]");
				return -EINVAL;
			}
			tap = 1;
		} else if (v && kl == 3 && !strncmp(p, "mac", 3)) {
			if (!mac_ok(v + 1, vl)) {
				snprintf(why, n, "mac=: six hex bytes XX:XX:XX:XX:XX:XX, unicast");
				return -EINVAL;
			}
		} else {
			snprintf(why, n, "'%.*s': want tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]",
				 (int)item, p);
			return -EINVAL;
		}
		p += item;
		if (*p == ',')
			p++;
	}
	if (!tap) {
		snprintf(why, n, "no tap=IFNAME");
		return -EINVAL;
	}
	return 0;
}

#ifndef TCP_RTO_MIN_US
#define TCP_RTO_MIN_US 45 /* Linux 6.15 */
#endif

int hr_tcp_tune_liveness(int fd)
{
	int one = 1, dom = 0, rto_us = HR_TCP_RTO_MIN_US;
	socklen_t len = sizeof(dom);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0)
		return -errno;
	if (dom != AF_INET && dom != AF_INET6)
		return -EAFNOSUPPORT;
	/* small frames (acks, epoch ends, heartbeats) never wait for Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* a thin stream (heartbeats only) retransmits without exponential
	 * back-off for its first tries */
	setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof(one));
	/* a lost segment is resent after tens of ms, not the default 200 ms,
	 * which alone would be a failover timeout's worth of silence */
	if (setsockopt(fd, IPPROTO_TCP, TCP_RTO_MIN_US, &rto_us, sizeof(rto_us)) < 0)
		return errno == EINVAL || errno == ENOPROTOOPT ? -ENOPROTOOPT : -errno;
	return 0;
}

/* The kernel's sched_setattr argument (include/uapi/linux/sched/types.h,
 * which cannot be included next to <sched.h> with this glibc). */
struct hr_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

int hr_thread_sched_latency(int nice, unsigned slice_us)
{
	struct hr_sched_attr a = {.size = sizeof(a),
				  .sched_policy = SCHED_OTHER,
				  .sched_nice = nice,
				  .sched_runtime = (uint64_t)slice_us * 1000};
	if (syscall(SYS_sched_setattr, 0, &a, 0) == 0)
		return 0;
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) == 0)
		return 0;
	return -errno;
}
