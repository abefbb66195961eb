/*
 * b-tls.c - what TLS costs the peer links, over loopback, in one run:
 *
 *  1. throughput: 1 GiB from one thread to another through plain TCP,
 *     through the TLS pump (src/net: the engine's plaintext fd, a
 *     socketpair, the pump thread, SSL, TCP - and the same on the other
 *     side), and through SSL_write/SSL_read called directly on the TCP
 *     socket by the sending and receiving threads (what an in-engine TLS
 *     would do, no pump: the alternative's ceiling).
 *  2. latency: 64-byte ping-pong round trips, started by either side.
 *
 * Every figure is a median (p50) over several runs or samples, with p99
 * for latencies, and the ratios are against plain TCP from the same run.
 * The TLS links use the same suite (TLS_AES_128_GCM_SHA256).
 *
 * Usage: b-tls [--quick]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/err.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "net/cert.h"
#include "net/tls.h"

#define MSG_BYTES 64
#define BUF_BYTES (1 << 20)

enum kind { PLAIN, PUMP, DIRECT, NR_KINDS };
static const char *const kind_name[NR_KINDS] = {"plain TCP", "TLS via the pump (plaintext fd)",
						"TLS direct (SSL_* on the socket)"};

static char dir[256];
static struct hr_tls_ctx *ctx_a, *ctx_b;
static SSL_CTX *direct_cli, *direct_srv;

/* One link: each end is either a plain fd or an SSL object. */
struct end {
	int fd;
	SSL *ssl;
};

static int io_write(struct end *e, const void *buf, size_t len)
{
	if (!e->ssl)
		return hr_write_all(e->fd, buf, len);
	while (len) {
		size_t n = 0;
		if (SSL_write_ex(e->ssl, buf, len, &n) != 1)
			return -EIO;
		buf = (const char *)buf + n;
		len -= n;
	}
	return 0;
}

static ssize_t io_read(struct end *e, void *buf, size_t len)
{
	if (!e->ssl) {
		ssize_t n;
		do
			n = read(e->fd, buf, len);
		while (n < 0 && errno == EINTR);
		return n;
	}
	size_t n = 0;
	int r = SSL_read_ex(e->ssl, buf, len, &n);
	return r == 1 ? (ssize_t)n : 0;
}

static int read_exact(struct end *e, void *buf, size_t len)
{
	while (len) {
		ssize_t n = io_read(e, buf, len);
		if (n <= 0)
			return -EIO;
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static void io_close(struct end *e)
{
	if (e->ssl) {
		SSL_shutdown(e->ssl);
		SSL_free(e->ssl);
	}
	close(e->fd);
}

static void tcp_pair(int *c_r, int *s_r)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len)) {
		perror("listen");
		exit(1);
	}
	*c_r = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*c_r, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (*s_r = accept(l, NULL, 0)) < 0) {
		perror("connect");
		exit(1);
	}
	close(l);
	setsockopt(*c_r, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*s_r, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct hs_arg {
	enum kind kind;
	int fd;
	struct end *e;
};

static void *server_side(void *arg)
{
	struct hs_arg *h = arg;
	struct hr_tls_peer p = {.vm = "b-tls", .deadline_ms = 10000};
	h->e->fd = -1;
	h->e->ssl = NULL;
	if (h->kind == PLAIN) {
		h->e->fd = h->fd;
	} else if (h->kind == PUMP) {
		if (hr_tls_server(ctx_b, h->fd, &p, &h->e->fd, NULL, 0))
			h->e->fd = -1;
	} else {
		h->e->fd = h->fd;
		h->e->ssl = SSL_new(direct_srv);
		SSL_set_fd(h->e->ssl, h->fd);
		if (SSL_accept(h->e->ssl) != 1)
			h->e->fd = -1;
	}
	return NULL;
}

/* A connected link of kind: c is the client's end, s the server's. */
static void link_up(enum kind kind, struct end *c, struct end *s)
{
	struct hr_tls_peer p = {.vm = "b-tls", .deadline_ms = 10000};
	struct hs_arg h = {.kind = kind, .e = s};
	pthread_t t;
	int cfd;

	tcp_pair(&cfd, &h.fd);
	pthread_create(&t, NULL, server_side, &h);
	c->ssl = NULL;
	c->fd = cfd;
	if (kind == PUMP) {
		if (hr_tls_client(ctx_a, cfd, &p, &c->fd, NULL, 0))
			c->fd = -1;
	} else if (kind == DIRECT) {
		c->ssl = SSL_new(direct_cli);
		SSL_set_fd(c->ssl, cfd);
		if (SSL_connect(c->ssl) != 1)
			c->fd = -1;
	}
	pthread_join(t, NULL);
	if (c->fd < 0 || s->fd < 0) {
		fprintf(stderr, "b-tls: %s link failed\n", kind_name[kind]);
		exit(1);
	}
}

/* ---- throughput ---------------------------------------------------------- */

struct sender {
	struct end *e;
	uint64_t bytes;
	int rc;
};

static void *send_main(void *arg)
{
	struct sender *s = arg;
	char *buf = malloc(BUF_BYTES);
	memset(buf, 0x5a, BUF_BYTES);
	for (uint64_t left = s->bytes; left && !s->rc;) {
		size_t n = left < BUF_BYTES ? (size_t)left : BUF_BYTES;
		s->rc = io_write(s->e, buf, n);
		left -= n;
	}
	free(buf);
	return NULL;
}

/* MB/s of one transfer of bytes from the client to the server. */
static double throughput(enum kind kind, uint64_t bytes)
{
	struct end c, s;
	struct sender snd = {.e = &c, .bytes = bytes};
	char *buf = malloc(BUF_BYTES);
	uint64_t got = 0;
	pthread_t t;

	link_up(kind, &c, &s);
	uint64_t t0 = hr_now_ns();
	pthread_create(&t, NULL, send_main, &snd);
	while (got < bytes) {
		ssize_t n = io_read(&s, buf, BUF_BYTES);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	uint64_t t1 = hr_now_ns();
	pthread_join(t, NULL);
	io_close(&c);
	io_close(&s);
	free(buf);
	if (got != bytes || snd.rc) {
		fprintf(stderr, "b-tls: %s: %llu of %llu bytes\n", kind_name[kind],
			(unsigned long long)got, (unsigned long long)bytes);
		exit(1);
	}
	return (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
}

/* ---- latency --------------------------------------------------------------- */

struct echo {
	struct end *e;
	unsigned rounds;
	int starts; /* 1: this side sends first */
	uint64_t *rtt_ns;
};

static void *pingpong(void *arg)
{
	struct echo *x = arg;
	char msg[MSG_BYTES] = {0};
	for (unsigned i = 0; i < x->rounds; i++) {
		if (x->starts) {
			uint64_t t0 = hr_now_ns();
			if (io_write(x->e, msg, sizeof(msg)) || read_exact(x->e, msg, sizeof(msg)))
				return NULL;
			x->rtt_ns[i] = hr_now_ns() - t0;
		} else if (read_exact(x->e, msg, sizeof(msg)) || io_write(x->e, msg, sizeof(msg))) {
			return NULL;
		}
	}
	return NULL;
}

/* Round trips started by the client (from_server 0) or by the server. */
static void latency(enum kind kind, int from_server, unsigned rounds, uint64_t *p50_r,
		    uint64_t *p99_r)
{
	struct end c, s;
	uint64_t *rtt = calloc(rounds, sizeof(*rtt));
	struct echo ec = {.e = &c, .rounds = rounds, .starts = !from_server, .rtt_ns = rtt};
	struct echo es = {.e = &s, .rounds = rounds, .starts = from_server, .rtt_ns = rtt};
	pthread_t t;

	link_up(kind, &c, &s);
	pthread_create(&t, NULL, pingpong, &es);
	pingpong(&ec);
	pthread_join(t, NULL);
	io_close(&c);
	io_close(&s);
	*p50_r = hr_percentile_u64(rtt, rounds, 50);
	*p99_r = hr_percentile_u64(rtt, rounds, 99);
	free(rtt);
}

/* ---- set-up ---------------------------------------------------------------- */

static SSL_CTX *direct_ctx(int server)
{
	char crt[400], key[400];
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256");
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_read_ahead(c, 1);
	SSL_CTX_set_default_read_buffer_len(c, 64 * 1024);
	SSL_CTX_set_num_tickets(c, 0);
	snprintf(crt, sizeof(crt), "%s/%s/host.crt", dir, server ? "b" : "a");
	snprintf(key, sizeof(key), "%s/%s/host.key", dir, server ? "b" : "a");
	if (SSL_CTX_use_certificate_chain_file(c, crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "b-tls: cannot load %s\n", crt);
		exit(1);
	}
	snprintf(crt, sizeof(crt), "%s/ca/ca.crt", dir);
	SSL_CTX_load_verify_file(c, crt);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return c;
}

static void setup(void)
{
	char err[512], p[3][400];
	struct hr_tls_config ca = {0}, cb = {0};

	snprintf(dir, sizeof(dir), "/tmp/b-tls.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(p[0], sizeof(p[0]), "%s/ca", dir);
	snprintf(p[1], sizeof(p[1]), "%s/a", dir);
	snprintf(p[2], sizeof(p[2]), "%s/b", dir);
	if (hr_cert_make_ca(p[0], "b-tls-ca", err, sizeof(err)) ||
	    hr_cert_make_host(p[1], p[0], "node-a", err, sizeof(err)) ||
	    hr_cert_make_host(p[2], p[0], "node-b", err, sizeof(err))) {
		fprintf(stderr, "b-tls: %s\n", err);
		exit(1);
	}
	static char files[6][520];
	for (int i = 0; i < 2; i++) {
		snprintf(files[3 * i], 520, "%s/host.crt", p[1 + i]);
		snprintf(files[3 * i + 1], 520, "%s/host.key", p[1 + i]);
		snprintf(files[3 * i + 2], 520, "%s/ca.crt", p[1 + i]);
	}
	ca = (struct hr_tls_config){files[0], files[1], files[2]};
	cb = (struct hr_tls_config){files[3], files[4], files[5]};
	if (hr_tls_ctx_new(&ctx_a, &ca, err, sizeof(err)) ||
	    hr_tls_ctx_new(&ctx_b, &cb, err, sizeof(err))) {
		fprintf(stderr, "b-tls: %s\n", err);
		exit(1);
	}
	direct_cli = direct_ctx(0);
	direct_srv = direct_ctx(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && !strcmp(argv[1], "--quick");
	unsigned runs = quick ? 3 : 7, rounds = quick ? 5000 : 40000;
	uint64_t bytes = quick ? (256ull << 20) : (1ull << 30);
	double mbs[NR_KINDS][16], p50[NR_KINDS];
	uint64_t lat[NR_KINDS][2][2];
	char cmd[300];

	hr_log_init("b-tls", 1, 0);
	setup();
	printf("b-tls: TLS 1.3 (TLS_AES_128_GCM_SHA256) on the peer links vs plain TCP, loopback, "
	       "%ld CPUs%s\n\n",
	       sysconf(_SC_NPROCESSORS_ONLN), quick ? ", --quick" : "");
	printf("== 1. Throughput: %llu MiB one way, thread to thread, %u runs each "
	       "(interleaved) ==\n",
	       (unsigned long long)(bytes >> 20), runs);
	for (unsigned r = 0; r < runs; r++)
		for (int k = 0; k < NR_KINDS; k++)
			mbs[k][r] = throughput((enum kind)k, bytes);
	printf("%-36s %9s %9s %9s %12s\n", "link", "p50 MB/s", "min", "max", "p50 / plain");
	for (int k = 0; k < NR_KINDS; k++) {
		qsort(mbs[k], runs, sizeof(double), cmp_double);
		p50[k] = mbs[k][(runs - 1) / 2];
		printf("%-36s %9.0f %9.0f %9.0f %12.2f\n", kind_name[k], p50[k], mbs[k][0],
		       mbs[k][runs - 1], p50[k] / p50[PLAIN]);
	}

	printf("\n== 2. Latency: %d-byte ping-pong, %u round trips per cell ==\n", MSG_BYTES,
	       rounds);
	printf("%-36s %-14s %9s %9s %12s %12s\n", "link", "started by", "p50 us", "p99 us",
	       "p50 / plain", "p99 / plain");
	for (int k = 0; k < NR_KINDS; k++)
		for (int from = 0; from < 2; from++)
			latency((enum kind)k, from, rounds, &lat[k][from][0], &lat[k][from][1]);
	for (int k = 0; k < NR_KINDS; k++)
		for (int from = 0; from < 2; from++)
			printf("%-36s %-14s %9.1f %9.1f %12.2f %12.2f\n", kind_name[k],
			       from ? "server" : "client", lat[k][from][0] / 1e3,
			       lat[k][from][1] / 1e3,
			       (double)lat[k][from][0] / (double)lat[PLAIN][from][0],
			       (double)lat[k][from][1] / (double)lat[PLAIN][from][1]);
	printf("\nNotes: MB/s = 10^6 bytes/s from the first byte sent to the last received, both "
	       "ends in this process;\nthe pump adds per side a socketpair copy and a thread "
	       "(4 busy threads for 2 in plain TCP).\n");

	hr_tls_ctx_free(ctx_a);
	hr_tls_ctx_free(ctx_b);
	SSL_CTX_free(direct_cli);
	SSL_CTX_free(direct_srv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
