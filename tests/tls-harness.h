/*
 * tls-harness.h - shared by t-tls.c and t-tls-refuse.c: loopback TCP pairs,
 * a handshake per side in a thread, logs captured in a file, and the test
 * certificates and keys made with the `hareplicate cert` code.
 */
#ifndef HR_TLS_HARNESS_H
#define HR_TLS_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <openssl/ssl.h>

#include "config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "net/cert.h"
#include "net/tls.h"
#include "tap.h"

#define BULK_BYTES (48ull << 20)
#define DL_MS	   5000

static char dir[256], logpath[300];
static char err[512];

/* ---- logs: stderr goes to a file, checks read what came after a mark --- */

static long log_mark(void)
{
	fflush(stderr);
	struct stat st;
	return stat(logpath, &st) == 0 ? (long)st.st_size : 0;
}

static int log_has(long mark, const char *a, const char *b)
{
	static char buf[1 << 16];
	FILE *f = fopen(logpath, "r");
	size_t n = 0;

	fflush(stderr);
	if (f) {
		fseek(f, mark, SEEK_SET);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	int hit = strstr(buf, a) && (!b || strstr(buf, b));
	if (!hit)
		diag("log since mark: %s", buf);
	return hit;
}

/* ---- a loopback TCP connection ------------------------------------------ */

static int listener(int *port_r)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		bail("listener: %s", strerror(errno));
	*port_r = ntohs(a.sin_port);
	return l;
}

static void tcp_pair(int *cli_r, int *srv_r)
{
	int port, l = listener(&port);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		bail("connect: %s", strerror(errno));
	*srv_r = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*srv_r < 0)
		bail("accept: %s", strerror(errno));
	close(l);
	*cli_r = c;
}

/* ---- one side of a handshake, run in a thread ---------------------------- */

struct side {
	struct hr_tls_ctx *ctx;
	int server, fd, plain, rc;
	struct hr_tls_peer peer;
	char name[80];
	pthread_t tid;
};

static void *side_main(void *arg)
{
	struct side *s = arg;
	s->plain = -1;
	if (s->server)
		s->rc = hr_tls_server(s->ctx, s->fd, &s->peer, &s->plain, s->name, sizeof(s->name));
	else
		s->rc = hr_tls_client(s->ctx, s->fd, &s->peer, &s->plain, s->name, sizeof(s->name));
	return NULL;
}

static void side_start(struct side *s, struct hr_tls_ctx *ctx, int server, int fd)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->server = server;
	s->fd = fd;
	s->plain = -1;
	s->peer.vm = "t-tls";
	s->peer.deadline_ms = DL_MS;
	if (pthread_create(&s->tid, NULL, side_main, s))
		bail("pthread_create");
}

static void side_join(struct side *s)
{
	pthread_join(s->tid, NULL);
}

/* Client cctx to server sctx over a fresh connection; both joined. */
static void link_up(struct hr_tls_ctx *cctx, struct hr_tls_ctx *sctx, struct side *c,
		    struct side *s, const char *expect)
{
	int cfd, sfd;
	tcp_pair(&cfd, &sfd);
	side_start(s, sctx, 1, sfd);
	memset(c, 0, sizeof(*c));
	c->ctx = cctx;
	c->fd = cfd;
	c->peer.vm = "t-tls";
	c->peer.deadline_ms = DL_MS;
	c->peer.expect_name = expect;
	side_main(c);
	side_join(s);
}

static void close_pair(struct side *c, struct side *s)
{
	if (c->plain >= 0)
		close(c->plain);
	if (s->plain >= 0)
		close(s->plain);
	c->plain = s->plain = -1;
}

static struct hr_tls_ctx *ctx_or_bail(const struct hr_tls_config *cfg)
{
	struct hr_tls_ctx *ctx;
	int rc = hr_tls_ctx_new(&ctx, cfg, err, sizeof(err));
	if (rc)
		bail("hr_tls_ctx_new: %s (%s)", err, hr_strerror(rc));
	return ctx;
}

static char *path(const char *a, const char *b)
{
	static char bufs[16][400];
	static unsigned i;
	char *p = bufs[i++ % 16];
	snprintf(p, 400, "%s/%s/%s", dir, a, b);
	return p;
}

static struct hr_tls_config ca_cfg(const char *host)
{
	return (struct hr_tls_config){.cert_file = path(host, "host.crt"),
				      .key_file = path(host, "host.key"),
				      .ca_file = path(host, "ca.crt")};
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Waits for a condition with a deadline (not a sleep that hopes). */
static int pumps_end(int timeout_ms)
{
	uint64_t until = hr_now_ns() + (uint64_t)timeout_ms * 1000000;
	while (hr_tls_pumps_running() && hr_now_ns() < until) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return hr_tls_pumps_running() == 0;
}

/* Where the test files go, and the log capture; bails out on failure. */
static void harness_init(const char *name)
{
	snprintf(dir, sizeof(dir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	if (!freopen(logpath, "a", stderr))
		bail("freopen: %s", strerror(errno));
	setvbuf(stderr, NULL, _IOLBF, 0);
	hr_log_init(name, 1, 1);
}

/* The CAs, hosts and keys every case uses (t-tls checks these calls). */
static inline int make_files(void)
{
	char p1[400], p2[400];
	snprintf(p1, sizeof(p1), "%s/psk1", dir);
	snprintf(p2, sizeof(p2), "%s/psk2", dir);
	return hr_cert_make_ca(path("ca1", ""), "ca-one", err, sizeof(err)) ||
	       hr_cert_make_ca(path("ca2", ""), "ca-two", err, sizeof(err)) ||
	       hr_cert_make_host(path("a", ""), path("ca1", ""), "node-a", err, sizeof(err)) ||
	       hr_cert_make_host(path("b", ""), path("ca1", ""), "node-b", err, sizeof(err)) ||
	       hr_cert_make_host(path("x", ""), path("ca2", ""), "node-x", err, sizeof(err)) ||
	       hr_cert_make_host(path("s", ""), NULL, "node-s", err, sizeof(err)) ||
	       hr_cert_make_host(path("t", ""), NULL, "node-t", err, sizeof(err)) ||
	       hr_cert_make_psk(p1, err, sizeof(err)) || hr_cert_make_psk(p2, err, sizeof(err));
}

static void harness_cleanup(void)
{
	if (getenv("HR_KEEP"))
		return;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
}

#endif
