/* qmp.c - the benchmarks' QMP client (qmp.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "qmp.h"

#define QMP_TIMEOUT_MS 10000

int qmp_line(struct qmp *q, char *line, size_t cap, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t n = (size_t)(nl - q->buf), c = n < cap - 1 ? n : cap - 1;
			memcpy(line, q->buf, c);
			line[c] = 0;
			q->len -= n + 1;
			memmove(q->buf, nl + 1, q->len);
			return 0;
		}
		if (q->len == sizeof(q->buf))
			q->len = 0; /* an over-long line: drop it */
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		ssize_t got = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (got == 0)
			return -ECONNRESET;
		if (got < 0)
			return errno == EINTR ? 0 : -errno;
		q->len += (size_t)got;
	}
}

int qmp_cmd(struct qmp *q, const char *who, const char *cmd, char *reply, size_t cap)
{
	char tmp[8192];
	size_t len = strlen(cmd);

	if (!reply) {
		reply = tmp;
		cap = sizeof(tmp);
	}
	if (write(q->fd, cmd, len) != (ssize_t)len)
		return -EIO;
	for (;;) {
		int rc = qmp_line(q, reply, cap, QMP_TIMEOUT_MS);
		if (rc)
			return rc;
		if (strstr(reply, "\"return\""))
			return 0;
		if (strstr(reply, "\"error\"")) {
			fprintf(stderr, "%s: QMP %s -> %s\n", who, cmd, reply);
			return -EPROTO;
		}
	}
}

int qmp_open(struct qmp *q, const char *path, double timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[4096];
	uint64_t t0 = hr_now_ns();

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd >= 0 && !connect(q->fd, (void *)&sa, sizeof(sa)))
			break;
		if (q->fd >= 0)
			close(q->fd);
		q->fd = -1;
		if (hr_now_ns() - t0 > timeout_s * 1e9)
			return -ETIMEDOUT;
		usleep(20000);
	}
	q->len = 0;
	int rc = qmp_line(q, line, sizeof(line), QMP_TIMEOUT_MS); /* greeting */
	return rc ? rc : qmp_cmd(q, "qmp", "{\"execute\":\"qmp_capabilities\"}\n", NULL, 0);
}

int file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		found = strstr(buf, needle) != NULL;
	}
	close(fd);
	return found;
}
