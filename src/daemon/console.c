/*
 * console.c - console output sinks: file (appended) and tcp (framed), each
 * holding what its destination refuses until it is taken (console.h).
 *
 * A console file is opened O_APPEND | O_NOFOLLOW: what it held before
 * stays (a restarted VM's output follows the old), and a symbolic link
 * planted at its path is refused, never written through.  Bytes the
 * engine hands over a second time (offsets already taken by this sink) are
 * skipped, so the file has no repeats; what was taken is written in offset
 * order, so it has no gap either.
 *
 * Threads: hr_console_sink runs in the engine's thread (and in vCPU
 * threads once a backup is promoted); each sink has one writer thread.
 * While nothing is held a file sink writes in the caller's thread; from a
 * failed write until everything held is written, the writer thread writes
 * (and a tcp sink's thread always sends).  The writer reads the head
 * chunk outside the lock, so only a chunk behind the head ever grows.
 *
 * A tcp peer that closes loses what was in flight (written to our socket,
 * not yet read by it): the last REPLAY_BYTES sent are kept and sent again
 * on the next connection; the receiver drops offsets it already has.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
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

#define RETRY_FIRST_MS	100u
#define RETRY_MAX_MS	1000u
#define CHUNK_MIN_BYTES (16u << 10) /* small appends (a byte per vCPU exit) fill one chunk */
#define REPLAY_BYTES	(4u << 20)  /* tcp: sent bytes kept to send again after a reconnect */
#define IDLE_CHECK_MS	250u	    /* tcp, idle: is the connection still there? */

struct chunk {
	struct chunk *next;
	uint64_t offset;
	size_t len, cap;
	uint8_t data[];
};

enum sink_kind { SINK_FILE, SINK_TCP };

struct hr_console {
	char *vm, *spec;
	enum sink_kind kind;
	int fd; /* file */
	/* tcp */
	char *host, *port;
	int sock;
	struct chunk *sent, *sent_tail; /* the last bytes sent, oldest first */
	size_t sent_bytes;
	/* the writer */
	pthread_t thread;
	int thread_started, stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* output queued, output written, stopping */
	struct chunk *head, *tail;
	size_t head_done; /* file: bytes of the head chunk already written */
	size_t held_bytes, max_held_bytes;
	int started;	      /* next_offset is set */
	uint64_t next_offset; /* first offset not yet taken */
	/* where it stands (console.h: struct hr_console_stats) */
	int error;
	uint64_t retries, failing_since_s, written_bytes;
	uint64_t retry_at_ns; /* while failing: the next attempt */
	unsigned retry_ms;    /* ... and the wait after it */
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
	int fd = -1, rc = -ECONNREFUSED;

	if (getaddrinfo(c->host, c->port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd < 0 ? rc : fd;
}

/* Write len bytes (send, no SIGPIPE, on a socket): how many went in *done_r;
 * 0 or -errno. */
static int write_some(int fd, int is_sock, const uint8_t *p, size_t len, size_t *done_r)
{
	size_t done = 0;
	int rc = 0;

	while (done < len) {
		ssize_t n = is_sock ? send(fd, p + done, len - done, MSG_NOSIGNAL)
				    : write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	*done_r = done;
	return rc;
}

/* ---- where it stands (lock held) ---- */

static void sink_failed(struct hr_console *c, int rc)
{
	if (!c->error) {
		c->failing_since_s = (uint64_t)time(NULL);
		c->retries = 0;
		c->retry_ms = RETRY_FIRST_MS;
		log_warnx(c->vm,
			  "console %s: %s: its output is held (%zu bytes so far) and written "
			  "once it can be; retrying",
			  c->spec, hr_strerror(rc), c->held_bytes);
	}
	c->error = rc;
	c->retry_at_ns = hr_now_ns() + (uint64_t)c->retry_ms * 1000000;
	c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
}

/* Everything held was written. */
static void sink_recovered(struct hr_console *c)
{
	if (!c->error)
		return;
	uint64_t now_s = (uint64_t)time(NULL);
	log_info(c->vm,
		 "console %s: written again after %llu retries over %llu s (%s): all its output "
		 "held meanwhile has landed",
		 c->spec, (unsigned long long)c->retries,
		 (unsigned long long)(now_s > c->failing_since_s ? now_s - c->failing_since_s : 0),
		 hr_strerror(c->error));
	c->error = 0;
	c->retries = 0;
	c->failing_since_s = 0;
}

/* ---- the writer thread ---- */

static void cond_wait_until(struct hr_console *c, uint64_t until_ns)
{
	struct timespec ts = {(time_t)(until_ns / 1000000000), (long)(until_ns % 1000000000)};
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

/* tcp: a sent chunk is kept for a replay; the oldest beyond REPLAY_BYTES go. */
static void keep_sent(struct hr_console *c, struct chunk *ch)
{
	ch->next = NULL;
	if (c->sent_tail)
		c->sent_tail->next = ch;
	else
		c->sent = ch;
	c->sent_tail = ch;
	c->sent_bytes += ch->len;
	while (c->sent && c->sent_bytes - c->sent->len >= REPLAY_BYTES) {
		struct chunk *old = c->sent;
		c->sent = old->next;
		c->sent_bytes -= old->len;
		free(old);
	}
	if (!c->sent)
		c->sent_tail = NULL;
}

/* tcp, a new connection: what was sent lately goes again, first. */
static void replay_sent(struct hr_console *c)
{
	if (!c->sent)
		return;
	c->sent_tail->next = c->head;
	if (!c->head)
		c->tail = c->sent_tail;
	c->head = c->sent;
	c->held_bytes += c->sent_bytes;
	c->sent = c->sent_tail = NULL;
	c->sent_bytes = 0;
}

/* The head chunk (lock not held): file, from head_done; tcp, one frame,
 * connecting first.  Bytes written in *done_r; 0 or -errno. */
static int write_head(struct hr_console *c, struct chunk *ch, size_t from, size_t *done_r)
{
	*done_r = 0;
	if (c->kind == SINK_FILE)
		return write_some(c->fd, 0, ch->data + from, ch->len - from, done_r);

	pthread_mutex_lock(&c->lock);
	int fd = c->sock;
	pthread_mutex_unlock(&c->lock);
	if (fd < 0) {
		fd = tcp_connect(c);
		if (fd < 0)
			return fd;
		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			/* closing: a send now would escape its shutdown */
			pthread_mutex_unlock(&c->lock);
			close(fd);
			return -ECANCELED;
		}
		c->sock = fd;
		replay_sent(c);
		int replay = c->head != ch;
		pthread_mutex_unlock(&c->lock);
		if (replay)
			return -EAGAIN; /* the kept chunks go first */
	}
	uint8_t hdr[12];
	size_t n;
	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)(ch->offset >> (8 * i));
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (uint8_t)((uint64_t)ch->len >> (8 * i));
	int rc = write_some(fd, 1, hdr, sizeof(hdr), &n);
	if (!rc)
		rc = write_some(fd, 1, ch->data, ch->len, &n);
	if (rc < 0) {
		pthread_mutex_lock(&c->lock);
		close(c->sock);
		c->sock = -1;
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	*done_r = ch->len; /* a frame is sent whole or again */
	return 0;
}

/* tcp, idle: the peer closed or reset the connection (it never sends). */
static int peer_gone(int fd)
{
	struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Nothing to write: wait for output.  A tcp sink looks at its connection
 * every IDLE_CHECK_MS meanwhile: a peer that closed may have lost the last
 * frames, which go again (replay_sent) once a connection takes them. */
static void wait_for_output(struct hr_console *c)
{
	while (!c->head && !c->stopping) {
		if (c->kind != SINK_TCP || c->sock < 0) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		cond_wait_until(c, hr_now_ns() + IDLE_CHECK_MS * 1000000ull);
		if (c->head || c->stopping || !peer_gone(c->sock))
			continue;
		close(c->sock);
		c->sock = -1;
		replay_sent(c);
		if (c->head)
			sink_failed(c, -ECONNRESET);
	}
}

static void *writer(void *opaque)
{
	struct hr_console *c = opaque;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		wait_for_output(c);
		if (c->stopping)
			break;
		if (c->error) {
			uint64_t now = hr_now_ns();
			if (now < c->retry_at_ns) {
				cond_wait_until(c, c->retry_at_ns);
				continue;
			}
			c->retries++;
		}
		struct chunk *ch = c->head;
		size_t from = c->head_done, done;
		pthread_mutex_unlock(&c->lock);
		int rc = write_head(c, ch, from, &done);
		pthread_mutex_lock(&c->lock);
		if (rc == -EAGAIN && c->kind == SINK_TCP && c->sock >= 0)
			continue; /* connected: the kept chunks go first */
		c->head_done += done;
		c->held_bytes -= done;
		c->written_bytes += done;
		if (done)
			pthread_cond_broadcast(&c->cond); /* room for a waiter */
		if (rc < 0) {
			if (!c->stopping)
				sink_failed(c, rc);
			continue;
		}
		c->head = ch->next;
		if (!c->head)
			c->tail = NULL;
		c->head_done = 0;
		if (c->kind == SINK_TCP)
			keep_sent(c, ch);
		else
			free(ch);
		if (!c->head) {
			sink_recovered(c);
			pthread_cond_broadcast(&c->cond); /* drained: close may go on */
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int hr_console_open(struct hr_console **c_r, const char *spec, const char *vm)
{
	struct hr_console *c;
	pthread_condattr_t ca;
	int rc;

	*c_r = NULL;
	if (hr_console_check_spec(spec) < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->sock = -1;
	c->max_held_bytes = HR_CONSOLE_MAX_HELD_BYTES;
	c->vm = strdup(vm ? vm : "");
	c->spec = strdup(spec);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* hr_now_ns */
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!c->vm || !c->spec) {
		hr_console_close(c, 0);
		return -ENOMEM;
	}
	if (!strncmp(spec, "file:", 5)) {
		c->kind = SINK_FILE;
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
		c->kind = SINK_TCP;
		rc = split_hostport(spec + 4, &c->host, &c->port);
		if (rc < 0) {
			hr_console_close(c, 0);
			return rc;
		}
	}
	rc = -pthread_create(&c->thread, NULL, writer, c);
	if (rc < 0) {
		hr_console_close(c, 0);
		return rc;
	}
	c->thread_started = 1;
	*c_r = c;
	return 0;
}

/* Behind the queue (lock held); 0 or -ENOMEM. */
static int enqueue(struct hr_console *c, uint64_t offset, const uint8_t *p, size_t len)
{
	struct chunk *t = c->tail;

	if (t && t != c->head && t->offset + t->len == offset && t->len + len <= t->cap) {
		memcpy(t->data + t->len, p, len);
		t->len += len;
	} else {
		size_t cap = len < CHUNK_MIN_BYTES ? CHUNK_MIN_BYTES : len;
		struct chunk *ch = malloc(sizeof(*ch) + cap);
		if (!ch)
			return -ENOMEM;
		ch->next = NULL;
		ch->offset = offset;
		ch->len = len;
		ch->cap = cap;
		memcpy(ch->data, p, len);
		if (t)
			t->next = ch;
		else
			c->head = ch;
		c->tail = ch;
	}
	c->held_bytes += len;
	pthread_cond_broadcast(&c->cond);
	return 0;
}

void hr_console_sink(void *opaque, uint64_t offset, const void *buf, size_t len)
{
	struct hr_console *c = opaque;
	const uint8_t *p = buf;

	if (!c || !len)
		return;
	pthread_mutex_lock(&c->lock);
	/* offsets only go forward: skip what was taken already */
	if (c->started && offset < c->next_offset) {
		uint64_t skip = c->next_offset - offset;
		if (skip >= len)
			goto out;
		p += skip;
		offset += skip;
		len -= skip;
	}
	c->started = 1;
	c->next_offset = offset + len;
	if (c->kind == SINK_FILE && !c->head && !c->error) {
		/* nothing held: the writer is idle, write here */
		size_t done;
		int rc = write_some(c->fd, 0, p, len, &done);
		c->written_bytes += done;
		if (!rc)
			goto out;
		p += done;
		offset += done;
		len -= done;
		if (enqueue(c, offset, p, len) < 0)
			goto oom;
		sink_failed(c, rc);
		goto out;
	}
	if (enqueue(c, offset, p, len) < 0)
		goto oom;
out:
	pthread_mutex_unlock(&c->lock);
	return;
oom:
	/* the one loss left: no memory to hold it (the offsets go on, so a
	 * tcp receiver sees the gap) */
	log_err(c->vm, "console %s: out of memory holding %zu bytes at offset %llu: lost", c->spec,
		len, (unsigned long long)offset);
	pthread_mutex_unlock(&c->lock);
}

int hr_console_room(struct hr_console *c, int timeout_ms)
{
	if (!c)
		return 0;
	uint64_t until = hr_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	pthread_mutex_lock(&c->lock);
	while (c->held_bytes >= c->max_held_bytes && !c->stopping && hr_now_ns() < until)
		cond_wait_until(c, until);
	int rc = c->held_bytes >= c->max_held_bytes && !c->stopping ? -EAGAIN : 0;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void hr_console_set_max_held(struct hr_console *c, size_t bytes)
{
	pthread_mutex_lock(&c->lock);
	c->max_held_bytes = bytes ? bytes : 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void hr_console_get_stats(struct hr_console *c, struct hr_console_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	s->error = c->error;
	s->held_bytes = c->held_bytes;
	s->retries = c->retries;
	s->failing_since_s = c->failing_since_s;
	s->written_bytes = c->written_bytes;
	pthread_mutex_unlock(&c->lock);
}

static void free_chunks(struct chunk *ch)
{
	while (ch) {
		struct chunk *n = ch->next;
		free(ch);
		ch = n;
	}
}

void hr_console_close(struct hr_console *c, unsigned flush_ms)
{
	if (!c)
		return;
	if (c->thread_started) {
		uint64_t end_ns = hr_now_ns() + (uint64_t)flush_ms * 1000000;
		pthread_mutex_lock(&c->lock);
		while (c->head && hr_now_ns() < end_ns)
			cond_wait_until(c, end_ns);
		if (c->held_bytes)
			log_err(c->vm,
				"console %s: %zu bytes held were never written (%s); the sink "
				"closes",
				c->spec, c->held_bytes,
				c->error ? hr_strerror(c->error) : "no time left");
		c->stopping = 1;
		if (c->sock >= 0)
			shutdown(c->sock, SHUT_RDWR);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->thread, NULL);
	}
	free_chunks(c->head);
	free_chunks(c->sent);
	if (c->sock >= 0)
		close(c->sock);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->host);
	free(c->port);
	free(c->spec);
	free(c->vm);
	free(c);
}
