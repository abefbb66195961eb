/*
 * t-console.c - console sinks hold what their destination refuses and write
 * it once they can: nothing dropped, every byte once, in offset order.
 *
 *  file: on a 64 KiB tmpfs (a private mount namespace; root) that is full,
 *        then has a little room (a partial write), then room again;
 *  tcp:  a collector that closes its connection and stops listening, then
 *        listens again on the same port.
 * Also: the bound pushes back (hr_console_room) instead of dropping, and
 * the sink logs once when it starts failing and once when it recovers.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/console.h"
#include "tap.h"

#define STREAM_BYTES (96u << 10)

static uint8_t stream[STREAM_BYTES]; /* the console stream: numbered lines */
static char logpath[] = "/tmp/t-console-log.XXXXXX";

static void make_stream(void)
{
	size_t n = 0;
	for (unsigned seq = 1; n < STREAM_BYTES; seq++) {
		char line[64];
		int len = snprintf(line, sizeof(line), "seq=%06u console line of the guest\n", seq);
		for (int i = 0; i < len && n < STREAM_BYTES; i++)
			stream[n++] = (uint8_t)line[i];
	}
}

/* Hand [from, to) to the sink in runs of 700 bytes, each run given twice
 * (the second time overlapping the first: a repeat is skipped). */
static void feed(struct hr_console *c, size_t from, size_t to)
{
	for (size_t off = from; off < to; off += 700) {
		size_t len = to - off < 700 ? to - off : 700;
		hr_console_sink(c, off, stream + off, len);
		if (off >= 100)
			hr_console_sink(c, off - 100, stream + off - 100, len / 2 + 100);
	}
}

/* Poll cond (a statement expression) until true or deadline_ms passed. */
#define WAIT_FOR(cond, deadline_ms)                                                                \
	({                                                                                         \
		uint64_t end_ = hr_now_ns() + (uint64_t)(deadline_ms)*1000000;                     \
		int ok_;                                                                           \
		while (!(ok_ = (cond)) && hr_now_ns() < end_)                                      \
			usleep(5000);                                                              \
		ok_;                                                                               \
	})

static struct hr_console_stats stats(struct hr_console *c)
{
	struct hr_console_stats s;
	hr_console_get_stats(c, &s);
	return s;
}

static int count_in_log(const char *what)
{
	char buf[16384];
	int fd = open(logpath, O_RDONLY), n = 0;
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (char *p = buf; (p = strstr(p, what)); p++)
		n++;
	return n;
}

static int file_equals(const char *path, size_t len)
{
	static uint8_t got[STREAM_BYTES + 1];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, got, sizeof(got));
	close(fd);
	if (n != (ssize_t)len) {
		diag("%s: %zd bytes, %zu expected", path, n, len);
		return 0;
	}
	return !memcmp(got, stream, len);
}

/* Fill the file system of dir: its filler file takes all space left. */
static int fill(const char *dir, const char *name)
{
	char path[512], buf[4096];
	memset(buf, 'F', sizeof(buf));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return -errno;
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
	int rc = errno == ENOSPC ? 0 : -errno;
	close(fd);
	return rc;
}

static int tiny_tmpfs(char *dir)
{
	if (getuid() != 0)
		return -EPERM;
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (!mkdtemp(dir))
		return -errno;
	if (mount("t-console", dir, "tmpfs", 0, "size=64k,mode=0700") < 0) {
		int rc = -errno;
		rmdir(dir);
		return rc;
	}
	return 0;
}

static void test_file(void)
{
	char dir[] = "/tmp/t-console.XXXXXX", path[600], filler[600], small[600], spec[620];
	struct hr_console *c;
	int rc = tiny_tmpfs(dir);

	if (rc < 0) {
		printf("ok %d # SKIP file sink on a full file system: no private tmpfs (%s)\n",
		       ++tap_n, strerror(-rc));
		return;
	}
	snprintf(path, sizeof(path), "%s/console", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	snprintf(small, sizeof(small), "%s/small", dir);
	snprintf(spec, sizeof(spec), "file:%s", path);
	if (!ok(hr_console_open(&c, spec, "vmfile") == 0, "file sink opened on a 64 KiB tmpfs"))
		return;
	int sfd = open(small, O_WRONLY | O_CREAT, 0600);
	static uint8_t zeros[20480];
	ok(sfd >= 0 && write(sfd, zeros, sizeof(zeros)) == sizeof(zeros) && close(sfd) == 0 &&
	       fill(dir, "filler") == 0,
	   "tmpfs filled up (20 KiB of it by a file of its own)");

	/* full: everything is held, nothing written, the error counted */
	feed(c, 0, 20000);
	struct hr_console_stats s = stats(c);
	ok(s.error == -ENOSPC && s.held_bytes == 20000 && s.written_bytes == 0,
	   "full disk: 20000 bytes held, none written, error ENOSPC (error %d held %llu)", s.error,
	   (unsigned long long)s.held_bytes);
	ok(s.failing_since_s > 0, "... failing since a time it says");
	int w = WAIT_FOR(stats(c).retries >= 3, 3000);
	ok(w, "the writer retries on its own (%llu retries)", (unsigned long long)stats(c).retries);
	ok(hr_console_room(c, 0) == 0, "below the bound: room for more");
	hr_console_set_max_held(c, 30000);
	feed(c, 20000, 32000);
	ok(stats(c).held_bytes == 32000 && hr_console_room(c, 50) == -EAGAIN,
	   "at the bound: more is still taken (32000 held), and room says -EAGAIN (push back)");
	ok(count_in_log("console file:") == 1 && count_in_log("its output is held") == 1,
	   "one warning when it started failing");

	/* a little room: part of the backlog lands, the rest stays held */
	ok(unlink(small) == 0, "20 KiB freed");
	/* the freed pages take part of the backlog (a short write), then ENOSPC again */
	w = WAIT_FOR(stats(c).written_bytes > 0 && stats(c).error, 3000);
	ok(w, "a partial write: %llu bytes written, %llu held, still failing",
	   (unsigned long long)stats(c).written_bytes, (unsigned long long)stats(c).held_bytes);
	s = stats(c);
	ok(s.held_bytes + s.written_bytes == 32000, "held + written = taken (%llu + %llu)",
	   (unsigned long long)s.held_bytes, (unsigned long long)s.written_bytes);
	ok(hr_console_room(c, 50) == (s.held_bytes >= 30000 ? -EAGAIN : 0),
	   "room follows what is held");

	/* room again: everything lands, in order, once */
	ok(unlink(filler) == 0, "all space freed");
	ok(WAIT_FOR(stats(c).held_bytes == 0 && !stats(c).error, 3000),
	   "the backlog drained and the error cleared");
	s = stats(c);
	ok(s.retries == 0 && s.failing_since_s == 0 && s.written_bytes == 32000,
	   "recovered: %llu bytes written", (unsigned long long)s.written_bytes);
	ok(count_in_log("written again") == 1, "one line when it recovered");
	ok(hr_console_room(c, 0) == 0, "room again");
	feed(c, 32000, 40000);
	ok(stats(c).held_bytes == 0, "writing again in the caller's thread: nothing held");
	ok(file_equals(path, 40000),
	   "the file holds bytes 0..40000 of the stream: no gap, no repeat");
	hr_console_close(c, 0);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* ---- tcp: a collector that goes away and comes back ---- */

static struct {
	pthread_mutex_t lock;
	uint8_t image[STREAM_BYTES];
	uint8_t have[STREAM_BYTES];
	uint64_t conflicts, frames;
	int lfd, conn; /* listening socket, the accepted connection (-1 none) */
	int stop;      /* the test asks: stop reading (the connection stays open) */
} col = {.lock = PTHREAD_MUTEX_INITIALIZER, .lfd = -1, .conn = -1};

static int listen_on(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*port)};
	socklen_t alen = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -errno;
	}
	getsockname(fd, (struct sockaddr *)&a, &alen);
	*port = ntohs(a.sin_port);
	return fd;
}

/* -1 on EOF, error or col.stop. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (__atomic_load_n(&col.stop, __ATOMIC_SEQ_CST))
			return -1;
		if (poll(&pf, 1, 10) == 0)
			continue;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One connection: frames into the image until EOF. */
static void *collector(void *arg)
{
	int fd = accept4(*(int *)arg, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	pthread_mutex_lock(&col.lock);
	col.conn = fd;
	pthread_mutex_unlock(&col.lock);
	for (;;) {
		uint8_t hdr[12], data[65536 + 16];
		if (read_full(fd, hdr, sizeof(hdr)) < 0)
			break;
		uint64_t off = 0;
		uint32_t len = 0;
		for (int i = 0; i < 8; i++)
			off |= (uint64_t)hdr[i] << (8 * i);
		for (int i = 0; i < 4; i++)
			len |= (uint32_t)hdr[8 + i] << (8 * i);
		if (len > sizeof(data) || read_full(fd, data, len) < 0)
			break;
		pthread_mutex_lock(&col.lock);
		col.frames++;
		for (uint32_t i = 0; i < len && off + i < STREAM_BYTES; i++) {
			if (col.have[off + i] && col.image[off + i] != data[i])
				col.conflicts++;
			col.image[off + i] = data[i];
			col.have[off + i] = 1;
		}
		pthread_mutex_unlock(&col.lock);
	}
	return NULL;
}

/* Bytes [0, n) all arrived. */
static int collected(size_t n)
{
	pthread_mutex_lock(&col.lock);
	size_t i = 0;
	while (i < n && col.have[i])
		i++;
	pthread_mutex_unlock(&col.lock);
	return i == n;
}

static void test_tcp(void)
{
	uint16_t port = 0;
	char spec[64];
	struct hr_console *c;
	pthread_t t;

	col.lfd = listen_on(&port);
	if (!ok(col.lfd >= 0, "collector listens on 127.0.0.1:%u", port))
		return;
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", port);
	if (!ok(hr_console_open(&c, spec, "vmtcp") == 0, "tcp sink opened"))
		return;
	pthread_create(&t, NULL, collector, &col.lfd);
	int held_logs = count_in_log("its output is held"), ok_logs = count_in_log("written again");
	feed(c, 0, 30000);
	ok(WAIT_FOR(collected(30000), 5000), "the collector has bytes 0..30000");

	/* the collector stops reading, takes 30000 bytes more into its socket
	 * buffer and dies: they are lost in flight, then nobody listens */
	__atomic_store_n(&col.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	feed(c, 30000, 60000);
	ok(WAIT_FOR(stats(c).written_bytes >= 60000, 5000),
	   "the sink sent bytes 30000..60000 to a collector that no longer reads");
	close(col.conn);
	close(col.lfd);
	col.conn = -1;
	__atomic_store_n(&col.stop, 0, __ATOMIC_SEQ_CST);
	int w = WAIT_FOR(stats(c).error != 0, 5000);
	ok(w, "the sink sees the collector gone (%s)", strerror(-stats(c).error));
	w = WAIT_FOR(stats(c).held_bytes >= 30000 && stats(c).retries >= 2, 5000);
	/* what was in flight is held again: the last bytes sent go again */
	ok(w, "while it is gone, output is held (%llu bytes) and retried (%llu)",
	   (unsigned long long)stats(c).held_bytes, (unsigned long long)stats(c).retries);
	feed(c, 60000, 70000);
	ok(stats(c).held_bytes >= 40000, "... and more is taken meanwhile (%llu held)",
	   (unsigned long long)stats(c).held_bytes);

	/* it comes back on the same port */
	uint16_t again = port;
	col.lfd = listen_on(&again);
	ok(col.lfd >= 0 && again == port, "the collector listens again on port %u", port);
	pthread_create(&t, NULL, collector, &col.lfd);
	ok(WAIT_FOR(collected(70000) && stats(c).held_bytes == 0 && !stats(c).error, 8000),
	   "every byte 0..70000 arrived, nothing held, error cleared");
	pthread_mutex_lock(&col.lock);
	int same = !memcmp(col.image, stream, 70000);
	ok(same && col.conflicts == 0,
	   "the collected stream is the guest's (%llu frames, %llu "
	   "conflicting bytes)",
	   (unsigned long long)col.frames, (unsigned long long)col.conflicts);
	pthread_mutex_unlock(&col.lock);
	ok(count_in_log("its output is held") == held_logs + 1 &&
	       count_in_log("written again") == ok_logs + 1,
	   "tcp: one line when it failed, one when it recovered");
	hr_console_close(c, 1000);
	pthread_mutex_lock(&col.lock);
	if (col.conn >= 0)
		shutdown(col.conn, SHUT_RDWR);
	pthread_mutex_unlock(&col.lock);
	pthread_join(t, NULL);
	close(col.lfd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	make_stream();
	/* the sink's log lines go to a file the test reads */
	int lfd = mkstemp(logpath);
	if (lfd < 0 || dup2(lfd, 2) < 0)
		bail("no log file: %s", strerror(errno));
	close(lfd);
	hr_log_init("t-console", 1, 0);
	test_file();
	test_tcp();
	unlink(logpath);
	plan(tap_n);
	return tap_done();
}
