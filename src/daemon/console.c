/*
 * console.c - console output sinks: file (appended) and tcp (framed).
 *
 * A console file is opened O_APPEND | O_NOFOLLOW: what it held before
 * stays (a restarted VM's output follows the old), and a symbolic link
 * planted at its path is refused, never written through.  Bytes the
 * engine hands over a second time (offsets already written by this
 * process) are skipped, so the file has no repeats.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/console.h"

struct chunk {
	struct chunk *next;
	uint64_t offset;
	size_t len;
	uint8_t data[];
};

struct hr_console {
	char *vm;
	int fd; /* file sink; -1 for tcp */
	int file_error_logged;
	/* tcp */
	char *host, *port;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct chunk *head, *tail;
	size_t pending_bytes;
	int stopping, sock, dropped_logged;
	uint64_t next_offset; /* first offset not yet queued (tcp) or written (file) */
	int file_started;     /* file: next_offset is set */
};

/* tcp:HOST:PORT -> host, port (malloc'd).  [v6]:port accepted. */
static int split_hostport(const char *s, char **host_r, char **port_r)
{
	const char *colon;
	const char *h = s;
	size_t hlen;

	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (!hlen || hr_parse_count(colon + 1, 1, 65535, &(uint64_t){0}) < 0)
		return -EINVAL;
	if (host_r) {
		*host_r = strndup(h, hlen);
		*port_r = strdup(colon + 1);
		if (!*host_r || !*port_r) {
			free(*host_r);
			free(*port_r);
			return -ENOMEM;
		}
	}
	return 0;
}

int hr_console_check_spec(const char *spec)
{
	if (!strncmp(spec, "file:", 5))
		return spec[5] == '/' ? 0 : -EINVAL; /* absolute: the daemon runs in / */
	if (!strncmp(spec, "tcp:", 4))
		return split_hostport(spec + 4, NULL, NULL);
	return -EINVAL;
}

static int tcp_connect(struct hr_console *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;

	if (getaddrinfo(c->host, c->port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd < 0 ? -ECONNREFUSED : fd;
}

static void *tcp_sender(void *opaque)
{
	struct hr_console *c = opaque;
	int connected_once = 0, warned = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->head && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->head && c->stopping)
			break;
		if (c->sock < 0) {
			pthread_mutex_unlock(&c->lock);
			int fd = tcp_connect(c);
			pthread_mutex_lock(&c->lock);
			if (fd < 0) {
				if (!warned++)
					log_warnx(
					    c->vm,
					    "console tcp:%s:%s unreachable; retrying every second",
					    c->host, c->port);
				if (c->stopping)
					break;
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				pthread_cond_timedwait(&c->cond, &c->lock, &ts);
				continue;
			}
			c->sock = fd;
			if (connected_once || warned)
				log_info(c->vm, "console tcp:%s:%s connected", c->host, c->port);
			connected_once = 1;
			warned = 0;
		}
		/* Send the head chunk as one frame; it stays queued until sent whole. */
		struct chunk *ch = c->head;
		int fd = c->sock;
		pthread_mutex_unlock(&c->lock);
		uint8_t hdr[12];
		for (int i = 0; i < 8; i++)
			hdr[i] = (uint8_t)(ch->offset >> (8 * i));
		for (int i = 0; i < 4; i++)
			hdr[8 + i] = (uint8_t)((uint64_t)ch->len >> (8 * i));
		int rc = hr_write_all(fd, hdr, sizeof(hdr));
		if (!rc)
			rc = hr_write_all(fd, ch->data, ch->len);
		pthread_mutex_lock(&c->lock);
		if (rc < 0) {
			log_warnx(c->vm, "console tcp:%s:%s: %s; reconnecting", c->host, c->port,
				  hr_strerror(rc));
			close(c->sock);
			c->sock = -1;
			continue;
		}
		c->head = ch->next;
		if (!c->head)
			c->tail = NULL;
		c->pending_bytes -= ch->len;
		free(ch);
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int hr_console_open(struct hr_console **c_r, const char *spec, const char *vm)
{
	struct hr_console *c;
	int rc;

	*c_r = NULL;
	if (hr_console_check_spec(spec) < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->sock = -1;
	c->vm = strdup(vm ? vm : "");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (!strncmp(spec, "file:", 5)) {
		c->fd =
		    open(spec + 5, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (c->fd < 0) {
			rc = -errno;
			if (rc == -ELOOP)
				log_err(c->vm,
					"console file %s is a symbolic link: refusing to write "
					"through it",
					spec + 5);
			hr_console_close(c, 0);
			return rc;
		}
	} else {
		rc = split_hostport(spec + 4, &c->host, &c->port);
		if (!rc)
			rc = -pthread_create(&c->thread, NULL, tcp_sender, c);
		if (rc < 0) {
			hr_console_close(c, 0);
			return rc;
		}
		c->thread_started = 1;
	}
	*c_r = c;
	return 0;
}

void hr_console_sink(void *opaque, uint64_t offset, const void *buf, size_t len)
{
	struct hr_console *c = opaque;

	if (!c || !len)
		return;
	if (c->fd >= 0) {
		const uint8_t *p = buf;
		/* one thread, offsets forward: skip what was written already */
		if (c->file_started && offset < c->next_offset) {
			uint64_t skip = c->next_offset - offset;
			if (skip >= len)
				return;
			p += skip;
			offset += skip;
			len -= skip;
		}
		c->file_started = 1;
		c->next_offset = offset + len;
		while (len) {
			ssize_t n = write(c->fd, p, len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (!c->file_error_logged++)
					log_warnx(c->vm, "console file: %s (output dropped)",
						  n < 0 ? strerror(errno) : "short write");
				return;
			}
			p += n;
			len -= (size_t)n;
			offset += (uint64_t)n;
		}
		return;
	}

	pthread_mutex_lock(&c->lock);
	/* Within one process offsets only go forward; skip an overlap. */
	if (c->next_offset && offset < c->next_offset) {
		uint64_t skip = c->next_offset - offset;
		if (skip >= len)
			goto out;
		buf = (const uint8_t *)buf + skip;
		offset += skip;
		len -= skip;
	}
	if (c->pending_bytes + len > HR_CONSOLE_MAX_PENDING) {
		if (!c->dropped_logged++)
			log_warnx(c->vm, "console tcp:%s:%s: receiver too slow, %zu bytes dropped",
				  c->host, c->port, len);
		goto out;
	}
	struct chunk *t = c->tail;
	if (t && t != c->head && t->offset + t->len == offset && t->len + len <= 65536) {
		struct chunk *n = realloc(t, sizeof(*t) + t->len + len);
		if (n) {
			/* relink the grown tail */
			struct chunk *p = c->head;
			while (p->next != t)
				p = p->next;
			p->next = n;
			c->tail = n;
			memcpy(n->data + n->len, buf, len);
			n->len += len;
			goto queued;
		}
	}
	struct chunk *ch = malloc(sizeof(*ch) + len);
	if (!ch)
		goto out;
	ch->next = NULL;
	ch->offset = offset;
	ch->len = len;
	memcpy(ch->data, buf, len);
	if (c->tail)
		c->tail->next = ch;
	else
		c->head = ch;
	c->tail = ch;
queued:
	c->pending_bytes += len;
	c->next_offset = offset + len;
	pthread_cond_broadcast(&c->cond);
out:
	pthread_mutex_unlock(&c->lock);
}

void hr_console_close(struct hr_console *c, unsigned flush_ms)
{
	if (!c)
		return;
	if (c->thread_started) {
		uint64_t end_ns = hr_now_ns() + (uint64_t)flush_ms * 1000000;
		pthread_mutex_lock(&c->lock);
		while (c->head && c->sock >= 0 && hr_now_ns() < end_ns) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		c->stopping = 1;
		if (c->sock >= 0)
			shutdown(c->sock, SHUT_RDWR);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->thread, NULL);
	}
	while (c->head) {
		struct chunk *n = c->head->next;
		free(c->head);
		c->head = n;
	}
	if (c->sock >= 0)
		close(c->sock);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->host);
	free(c->port);
	free(c->vm);
	free(c);
}
