/*
 * netprobe.c - the host side of tests/guests/netsvc (README.md there has
 * the protocols), through the host kernel's stack.
 *
 *   netprobe tcp HOST PORT --count N [--interval-ms M] [--timeout-ms T]
 *   netprobe udp HOST PORT --count N [--interval-ms M] [--timeout-ms T] [--max-loss K]
 *   netprobe icmp HOST --count N [--interval-ms M] [--timeout-ms T] [--max-loss K]
 *
 * tcp keeps one connection to the running-sum service and sends N numbers,
 * one at a time: it waits for each answer, then for what is left of the
 * interval.  Every answer must be exactly "seq=<i> sum=<own running sum>"
 * for the i-th line; anything else (a seq that repeats or goes back, a sum
 * that differs, a malformed or an extra line) is a contradiction.  At the
 * end it half-closes and expects the server's FIN with nothing before it.
 * udp sends N requests "np <pid> <i>" to the counter service and expects
 * "<counter> np <pid> <i>" with the counter above every counter seen
 * before; the very same answer again is a duplicate (counted, allowed: a
 * network may duplicate), request i with another counter a contradiction.  icmp (a raw socket:
 * root) sends N echo requests.
 *
 * Output: key=value lines on stdout (the value is the rest of the line),
 * mode= first and result=ok|fail last; on failure reason= says why
 * (refused, reset, eof, stall, contradiction, loss, close, error) and
 * detail= may follow.  max_gap_ms is the longest time between two answers
 * (the first gap starts at the connect, or at the first request), and
 * max_gap_after the index of the answer that opened it.  SIGINT or SIGTERM
 * ends the run early, as if the count had been reached (the answer waited
 * for still counts; tcp then closes as usual): stopped=signal.  Exit
 * status: 0 ok, 1 fail, 2 usage or local errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define MAX_DETAILS 10

static volatile sig_atomic_t stop_req; /* SIGINT/SIGTERM: finish now */

static void on_stop(int sig)
{
	stop_req = sig;
}

static struct {
	const char *mode, *host;
	struct sockaddr_in addr;
	uint64_t count, interval_ms, timeout_ms, max_loss;
} opt = {.interval_ms = 0, .timeout_ms = 5000, .max_loss = 0};

static struct {
	uint64_t sent, answered, contradictions, lost, late, dups;
	uint64_t *rtt_ns, nr_rtt;
	uint64_t start_ns, last_answer_ns, max_gap_ns, max_gap_after;
	const char *reason;
	unsigned int nr_details;
} st;

static void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv(const char *key, const char *fmt, ...)
{
	va_list ap;
	printf("%s=", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void fail(const char *reason)
{
	if (!st.reason)
		st.reason = reason;
}

static void vdetail(const char *fmt, va_list ap)
{
	if (st.nr_details++ >= MAX_DETAILS)
		return;
	printf("detail=");
	vprintf(fmt, ap);
	putchar('\n');
}

static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void detail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdetail(fmt, ap);
	va_end(ap);
}

static void contradiction(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void contradiction(const char *fmt, ...)
{
	va_list ap;
	st.contradictions++;
	fail("contradiction");
	va_start(ap, fmt);
	vdetail(fmt, ap);
	va_end(ap);
}

/* An answer to a request sent at sent_ns arrived now. */
static void answered(uint64_t sent_ns)
{
	uint64_t now = hr_now_ns();
	if (now - st.last_answer_ns > st.max_gap_ns) {
		st.max_gap_ns = now - st.last_answer_ns;
		st.max_gap_after = st.answered;
	}
	st.last_answer_ns = now;
	st.rtt_ns[st.nr_rtt++] = now - sent_ns;
	st.answered++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void summary(void)
{
	uint64_t now = hr_now_ns();
	kv("sent", "%" PRIu64, st.sent);
	kv("answered", "%" PRIu64, st.answered);
	kv("contradictions", "%" PRIu64, st.contradictions);
	if (strcmp(opt.mode, "tcp")) {
		kv("lost", "%" PRIu64, st.lost);
		kv("late", "%" PRIu64, st.late);
		kv("duplicates", "%" PRIu64, st.dups);
	}
	if (st.nr_rtt) {
		qsort(st.rtt_ns, st.nr_rtt, sizeof(*st.rtt_ns), cmp_u64);
		kv("rtt_p50_us", "%" PRIu64, st.rtt_ns[(st.nr_rtt - 1) * 50 / 100] / 1000);
		kv("rtt_p99_us", "%" PRIu64, st.rtt_ns[(st.nr_rtt - 1) * 99 / 100] / 1000);
		kv("rtt_max_us", "%" PRIu64, st.rtt_ns[st.nr_rtt - 1] / 1000);
	}
	kv("max_gap_ms", "%.3f", st.max_gap_ns / 1e6);
	kv("max_gap_after", "%" PRIu64, st.max_gap_after);
	if (st.reason)
		kv("since_last_answer_ms", "%.3f", (now - st.last_answer_ns) / 1e6);
	kv("elapsed_ms", "%.3f", (now - st.start_ns) / 1e6);
	if (stop_req)
		kv("stopped", "signal");
	if (st.reason)
		kv("reason", "%s", st.reason);
	kv("result", "%s", st.reason ? "fail" : "ok");
}

static void sleep_until(uint64_t t_ns)
{
	uint64_t now = hr_now_ns();
	if (t_ns <= now)
		return;
	struct timespec ts = {(time_t)((t_ns - now) / 1000000000),
			      (long)((t_ns - now) % 1000000000)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop_req)
		;
}

/* poll() one fd until deadline_ns: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = hr_now_ns();
		if (now >= deadline_ns)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int64_t number(uint64_t i)
{
	return (int64_t)((i * 7919) % 2001) - 1000;
}

/* ---- tcp ---- */

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, err = 0;
	socklen_t len = sizeof(err);
	if (fd < 0) {
		perror("netprobe: socket");
		exit(2);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0 && errno != EINPROGRESS)
		err = errno;
	else if (wait_fd(fd, POLLOUT, hr_now_ns() + opt.timeout_ms * 1000000) <= 0)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail(err == ECONNREFUSED ? "refused" : err == ETIMEDOUT ? "stall" : "error");
		detail("connect: %s", strerror(err));
		close(fd);
		return -1;
	}
	return fd;
}

/* Read into buf (NUL-terminated, *len in/out) until it holds a newline;
 * 0, or -1 after fail(). */
static int read_line(int fd, char *buf, size_t size, size_t *len, uint64_t deadline_ns)
{
	while (!memchr(buf, '\n', *len)) {
		if (*len + 1 >= size) {
			fail("contradiction");
			detail("an answer longer than %zu bytes", size);
			return -1;
		}
		int r = wait_fd(fd, POLLIN, deadline_ns);
		if (r <= 0) {
			fail(r ? "error" : "stall");
			detail("no answer within %" PRIu64 " ms", opt.timeout_ms);
			return -1;
		}
		ssize_t n = read(fd, buf + *len, size - 1 - *len);
		if (n == 0) {
			fail("eof");
			return -1;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fail(errno == ECONNRESET ? "reset" : "error");
			detail("read: %s", strerror(errno));
			return -1;
		}
		if (n > 0)
			*len += (size_t)n;
		buf[*len] = 0;
	}
	return 0;
}

static void run_tcp(void)
{
	char buf[4096] = "", msg[32];
	size_t len = 0;
	int64_t sum = 0;
	int fd = tcp_connect();
	if (fd < 0)
		return;
	st.last_answer_ns = hr_now_ns();
	for (uint64_t i = 1; i <= opt.count && !stop_req; i++) {
		uint64_t sent_ns;
		int n = snprintf(msg, sizeof(msg), "%" PRId64 "\n", number(i));
		sum += number(i);
		sent_ns = hr_now_ns();
		if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) != n) {
			fail(errno == ECONNRESET || errno == EPIPE ? "reset" : "error");
			detail("send: %s", strerror(errno));
			break;
		}
		st.sent++;
		if (read_line(fd, buf, sizeof(buf), &len, sent_ns + opt.timeout_ms * 1000000))
			break;
		char *nl = memchr(buf, '\n', len), want[64];
		*nl = 0;
		snprintf(want, sizeof(want), "seq=%" PRIu64 " sum=%" PRId64, i, sum);
		if (strcmp(buf, want)) {
			contradiction("got \"%s\", want \"%s\"", buf, want);
			break;
		}
		answered(sent_ns);
		len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, len + 1);
		if (len) { /* the server answered more than it was asked */
			contradiction("extra \"%s\" after line %" PRIu64 " (sum %" PRId64 ")", buf,
				      i, sum);
			break;
		}
		if (opt.interval_ms && i < opt.count)
			sleep_until(sent_ns + opt.interval_ms * 1000000);
	}
	if (!st.reason) { /* FIN both ways, nothing before the server's */
		uint64_t last = st.sent;
		shutdown(fd, SHUT_WR);
		uint64_t deadline = hr_now_ns() + opt.timeout_ms * 1000000;
		for (;;) {
			int r = wait_fd(fd, POLLIN, deadline);
			ssize_t n = r > 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			if (n == 0) {
				kv("close", "clean");
				break;
			}
			if (n > 0) {
				buf[n] = 0;
				contradiction("extra \"%s\" after the last line %" PRIu64
					      " (sum %" PRId64 ")",
					      buf, last, sum);
				break;
			}
			if (r > 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			fail("close");
			detail("no FIN from the server: %s", r ? strerror(errno) : "timeout");
			break;
		}
	}
	close(fd);
}

/* ---- udp ---- */

static void run_udp(void)
{
	char msg[64], buf[2048];
	uint64_t last_counter = 0;
	uint64_t *counter_of = calloc(opt.count + 1, sizeof(*counter_of)); /* by request */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!counter_of) {
		perror("netprobe: calloc");
		exit(2);
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0) {
		perror("netprobe: udp socket");
		exit(2);
	}
	st.last_answer_ns = hr_now_ns();
	for (uint64_t i = 1; i <= opt.count && !st.reason && !stop_req; i++) {
		int n = snprintf(msg, sizeof(msg), "np %d %" PRIu64, (int)getpid(), i);
		uint64_t sent_ns = hr_now_ns(), deadline = sent_ns + opt.timeout_ms * 1000000;
		if (send(fd, msg, (size_t)n, 0) != n) {
			fail(errno == ECONNREFUSED ? "refused" : "error");
			detail("send: %s", strerror(errno));
			break;
		}
		st.sent++;
		for (;;) {
			int r = wait_fd(fd, POLLIN, deadline);
			if (r == 0) {
				if (++st.lost > opt.max_loss)
					fail("loss");
				detail("no answer to request %" PRIu64 " within %" PRIu64 " ms", i,
				       opt.timeout_ms);
				break;
			}
			ssize_t got = r > 0 ? recv(fd, buf, sizeof(buf) - 1, 0) : -1;
			if (got < 0) {
				if (errno == EINTR)
					continue;
				fail(errno == ECONNREFUSED ? "refused" : "error");
				detail("recv: %s", strerror(errno));
				break;
			}
			buf[got] = 0;
			char *sp = strchr(buf, ' ');
			uint64_t counter, j;
			char pfx[32];
			snprintf(pfx, sizeof(pfx), "np %d ", (int)getpid());
			if (!sp || (*sp = 0, hr_parse_count(buf, 1, UINT64_MAX, &counter)) ||
			    strncmp(sp + 1, pfx, strlen(pfx)) ||
			    hr_parse_count(sp + 1 + strlen(pfx), 1, UINT64_MAX, &j) || j > i) {
				if (sp)
					*sp = ' ';
				contradiction("got \"%s\" for request %" PRIu64, buf, i);
				break;
			}
			/* the network may deliver an answer twice (a promoted
			 * replica sends again what its primary may have sent):
			 * the same answer again agrees; another one does not */
			if (counter_of[j] == counter) {
				st.dups++;
				continue;
			}
			if (counter_of[j]) {
				contradiction("request %" PRIu64 " answered with counter %" PRIu64
					      " and with %" PRIu64,
					      j, counter_of[j], counter);
				break;
			}
			if (counter <= last_counter) {
				contradiction("counter %" PRIu64 " went back (request %" PRIu64
					      ", last counter %" PRIu64 ")",
					      counter, i, last_counter);
				break;
			}
			counter_of[j] = counter;
			last_counter = counter;
			if (j < i) {
				st.late++;
				continue;
			}
			answered(sent_ns);
			break;
		}
		if (opt.interval_ms && i < opt.count)
			sleep_until(sent_ns + opt.interval_ms * 1000000);
	}
	kv("last_counter", "%" PRIu64, last_counter);
	free(counter_of);
	close(fd);
}

/* ---- icmp ---- */

static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void run_icmp(void)
{
	uint8_t pkt[64], buf[2048];
	uint16_t id = (uint16_t)getpid();
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0) {
		perror("netprobe: raw icmp socket (needs root)");
		exit(2);
	}
	st.last_answer_ns = hr_now_ns();
	for (uint64_t i = 1; i <= opt.count && !st.reason && !stop_req; i++) {
		uint64_t sent_ns = hr_now_ns(), deadline = sent_ns + opt.timeout_ms * 1000000;
		memset(pkt, 0, sizeof(pkt));
		pkt[0] = 8;
		pkt[4] = (uint8_t)(id >> 8);
		pkt[5] = (uint8_t)id;
		pkt[6] = (uint8_t)(i >> 8);
		pkt[7] = (uint8_t)i;
		for (size_t k = 8; k < sizeof(pkt); k++)
			pkt[k] = (uint8_t)(k + i);
		uint16_t c = csum(pkt, sizeof(pkt));
		pkt[2] = (uint8_t)(c >> 8);
		pkt[3] = (uint8_t)c;
		if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&opt.addr,
			   sizeof(opt.addr)) != (ssize_t)sizeof(pkt)) {
			fail("error");
			detail("sendto: %s", strerror(errno));
			break;
		}
		st.sent++;
		for (;;) {
			int r = wait_fd(fd, POLLIN, deadline);
			if (r <= 0) {
				if (++st.lost > opt.max_loss)
					fail("loss");
				detail("no echo reply %" PRIu64 " within %" PRIu64 " ms", i,
				       opt.timeout_ms);
				break;
			}
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n =
			    recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n < 20 || from.sin_addr.s_addr != opt.addr.sin_addr.s_addr)
				continue;
			size_t hl = (buf[0] & 15) * 4u;
			const uint8_t *m = buf + hl;
			if ((size_t)n < hl + sizeof(pkt) || m[0] != 0 ||
			    (uint16_t)(m[4] << 8 | m[5]) != id)
				continue;
			if ((uint16_t)(m[6] << 8 | m[7]) != (uint16_t)i) {
				st.late++;
				continue;
			}
			if (memcmp(m + 8, pkt + 8, sizeof(pkt) - 8) || csum(m, (size_t)n - hl)) {
				contradiction(
				    "echo reply %" PRIu64 " with a bad payload or checksum", i);
				break;
			}
			answered(sent_ns);
			break;
		}
		if (opt.interval_ms && i < opt.count)
			sleep_until(sent_ns + opt.interval_ms * 1000000);
	}
	close(fd);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: netprobe tcp|udp HOST PORT --count N [--interval-ms M] [--timeout-ms T] "
		"[--max-loss K]\n"
		"       netprobe icmp HOST --count N [--interval-ms M] [--timeout-ms T] "
		"[--max-loss K]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_family = AF_INET}, *ai;
	uint64_t port = 0;
	int a = 3;

	if (argc < 3)
		usage();
	opt.mode = argv[1];
	opt.host = argv[2];
	if (!strcmp(opt.mode, "tcp") || !strcmp(opt.mode, "udp")) {
		if (argc < 4 || hr_parse_count(argv[3], 1, 65535, &port) < 0)
			usage();
		a = 4;
	} else if (strcmp(opt.mode, "icmp")) {
		usage();
	}
	for (; a < argc; a += 2) {
		uint64_t *v = !strcmp(argv[a], "--count")	  ? &opt.count
			      : !strcmp(argv[a], "--interval-ms") ? &opt.interval_ms
			      : !strcmp(argv[a], "--timeout-ms")  ? &opt.timeout_ms
			      : !strcmp(argv[a], "--max-loss")	  ? &opt.max_loss
								  : NULL;
		if (!v || a + 1 >= argc || hr_parse_count(argv[a + 1], 0, 1000000000, v) < 0)
			usage();
	}
	if (!opt.count || !opt.timeout_ms)
		usage();
	if (getaddrinfo(opt.host, NULL, &hints, &ai)) {
		fprintf(stderr, "netprobe: cannot resolve %s\n", opt.host);
		return 2;
	}
	memcpy(&opt.addr, ai->ai_addr, sizeof(opt.addr));
	opt.addr.sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	st.rtt_ns = calloc(opt.count, sizeof(*st.rtt_ns));
	if (!st.rtt_ns) {
		perror("netprobe");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	kv("mode", "%s", opt.mode);
	if (port)
		kv("target", "%s:%" PRIu64, inet_ntoa(opt.addr.sin_addr), port);
	else
		kv("target", "%s", inet_ntoa(opt.addr.sin_addr));
	kv("count", "%" PRIu64, opt.count);
	struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: waits end */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	st.start_ns = hr_now_ns();
	st.last_answer_ns = st.start_ns;
	if (!strcmp(opt.mode, "tcp"))
		run_tcp();
	else if (!strcmp(opt.mode, "udp"))
		run_udp();
	else
		run_icmp();
	summary();
	return st.reason ? 1 : 0;
}
