/*
 * t-tls.c - the TLS transport (src/net), the working link: files made by
 * the cert helpers, configuration errors, mutual authentication in CA mode,
 * data and checksummed bulk both ways at once, EOF and shutdown propagation,
 * a TCP close under TLS, bounded buffering (a reader that stops makes the
 * writer block), --insecure, and every pump thread ending.  The refusals are
 * in t-tls-refuse.c.
 */
#include <xxhash.h>

#include "tls-harness.h"

/* ---- bulk: a writer and a reader per direction, checksummed -------------- */

struct bulk {
	int fd;
	uint64_t seed, bytes, sum;
	int rc;
};

static void *bulk_write(void *arg)
{
	struct bulk *b = arg;
	static __thread uint64_t buf[8192];
	XXH64_state_t *st = XXH64_createState();
	uint64_t x = b->seed, left = b->bytes;

	XXH64_reset(st, 0);
	while (left) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		for (size_t i = 0; i < (n + 7) / 8; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = x;
		}
		XXH64_update(st, buf, n);
		b->rc = hr_write_all(b->fd, buf, n);
		if (b->rc)
			break;
		left -= n;
	}
	b->sum = XXH64_digest(st);
	XXH64_freeState(st);
	shutdown(b->fd, SHUT_WR);
	return NULL;
}

static void *bulk_read(void *arg)
{
	struct bulk *b = arg;
	static __thread char buf[1 << 16];
	XXH64_state_t *st = XXH64_createState();
	ssize_t n;

	XXH64_reset(st, 0);
	b->bytes = 0;
	while ((n = read(b->fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			b->rc = -errno;
			break;
		}
		XXH64_update(st, buf, (size_t)n);
		b->bytes += (uint64_t)n;
	}
	b->sum = XXH64_digest(st);
	XXH64_freeState(st);
	return NULL;
}

/* ---- the cases ----------------------------------------------------------- */

static void t_files(void)
{
	char fp[128], p2[400];
	struct stat st;

	ok(!hr_cert_make_ca(path("ca1", ""), "ca-one", err, sizeof(err)) &&
	       !hr_cert_make_ca(path("ca2", ""), "ca-two", err, sizeof(err)),
	   "cert ca: two CAs (%s)", err);
	ok(!hr_cert_make_host(path("a", ""), path("ca1", ""), "node-a", err, sizeof(err)) &&
	       !hr_cert_make_host(path("b", ""), path("ca1", ""), "node-b", err, sizeof(err)) &&
	       !hr_cert_make_host(path("x", ""), path("ca2", ""), "node-x", err, sizeof(err)),
	   "cert host: node-a, node-b from CA one, node-x from CA two (%s)", err);
	ok(!hr_cert_make_host(path("s", ""), NULL, "node-s", err, sizeof(err)) &&
	       !hr_cert_make_host(path("t", ""), NULL, "node-t", err, sizeof(err)),
	   "cert host without a CA: self-signed node-s, node-t (%s)", err);
	ok(stat(path("a", "host.key"), &st) == 0 && (st.st_mode & 0777) == 0600,
	   "host key is mode 0600");
	ok(hr_cert_make_ca(path("ca1", ""), "again", err, sizeof(err)) == -EEXIST,
	   "an existing key is never overwritten: %s", err);
	ok(!hr_cert_fingerprint(path("s", "host.crt"), fp, sizeof(fp), err, sizeof(err)) &&
	       strlen(fp) == HR_TLS_FP_HEX_LEN && fp[2] == ':',
	   "cert fingerprint: %s", fp);
	snprintf(p2, sizeof(p2), "%s/psk1", dir);
	ok(!hr_cert_make_psk(p2, err, sizeof(err)) && stat(p2, &st) == 0 &&
	       (st.st_mode & 0777) == 0600 && st.st_size == 65,
	   "cert psk: 32 bytes as hex, mode 0600");
	snprintf(p2, sizeof(p2), "%s/psk2", dir);
	hr_cert_make_psk(p2, err, sizeof(err));
}

static void t_config_errors(void)
{
	struct hr_tls_ctx *ctx;
	struct hr_tls_config cfg = ca_cfg("a");
	char p[400];

	cfg.peer_fingerprints = "00";
	ok(hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err)) == -EINVAL, "CA and pins together: %s",
	   err);
	cfg.ca_file = NULL;
	ok(hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err)) == -EINVAL, "a pin that is no SHA-256: %s",
	   err);
	snprintf(p, sizeof(p), "%s/psk-open", dir);
	FILE *f = fopen(p, "w");
	fprintf(f, "%064d\n", 7);
	fclose(f);
	chmod(p, 0644);
	cfg = (struct hr_tls_config){.psk_file = p, .node_name = "node-a"};
	ok(hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err)) == -EPERM,
	   "a PSK file others can read is refused: %s", err);
	cfg = (struct hr_tls_config){.cert_file = path("a", "host.crt")};
	ok(hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err)) == -EINVAL, "no key, no CA: %s", err);
}

static void t_ca_ok(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	struct side c, s;
	char buf[16] = "";

	link_up(a, b, &c, &s, "node-b");
	ok(c.rc == 0 && s.rc == 0, "CA mode: mutual authentication (%s / %s)", hr_strerror(c.rc),
	   hr_strerror(s.rc));
	ok(!strcmp(c.name, "node-b") && !strcmp(s.name, "node-a"),
	   "each side names the other by its CN: '%s', '%s'", c.name, s.name);
	ok(write(c.plain, "ping", 4) == 4 && read_full(s.plain, buf, 4) == 4 &&
	       !memcmp(buf, "ping", 4),
	   "client -> server data");
	ok(write(s.plain, "pong!", 5) == 5 && read_full(c.plain, buf, 5) == 5 &&
	       !memcmp(buf, "pong!", 5),
	   "server -> client data");

	/* EOF both ways, half-closed in between */
	shutdown(c.plain, SHUT_WR);
	ok(read(s.plain, buf, 1) == 0, "client shutdown(SHUT_WR) -> EOF on the server's fd");
	ok(write(s.plain, "late", 4) == 4 && read_full(c.plain, buf, 4) == 4 &&
	       !memcmp(buf, "late", 4),
	   "the half-closed link still carries server -> client");
	close(s.plain);
	s.plain = -1;
	ok(read(c.plain, buf, 1) == 0, "server close -> EOF on the client's fd");
	close_pair(&c, &s);
	ok(pumps_end(5000), "both pumps end once both sides closed");
}

static void t_bulk(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	struct side c, s;
	struct bulk w1 = {0}, r1 = {0}, w2 = {0}, r2 = {0};
	pthread_t t[4];

	link_up(a, b, &c, &s, NULL);
	w1 = (struct bulk){.fd = c.plain, .seed = 0x1234567, .bytes = BULK_BYTES};
	r1.fd = s.plain;
	w2 = (struct bulk){.fd = s.plain, .seed = 0x89abcdef, .bytes = BULK_BYTES + 12345};
	r2.fd = c.plain;
	pthread_create(&t[0], NULL, bulk_write, &w1);
	pthread_create(&t[1], NULL, bulk_read, &r1);
	pthread_create(&t[2], NULL, bulk_write, &w2);
	pthread_create(&t[3], NULL, bulk_read, &r2);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ok(!w1.rc && !r1.rc && r1.bytes == w1.bytes && r1.sum == w1.sum,
	   "%llu MiB client -> server, at the same time as ...", BULK_BYTES >> 20);
	ok(!w2.rc && !r2.rc && r2.bytes == w2.bytes && r2.sum == w2.sum,
	   "... %llu bytes server -> client, both intact (xxh64) and ended by EOF",
	   (unsigned long long)w2.bytes);
	close_pair(&c, &s);
	ok(pumps_end(5000), "pumps end");
}

static void t_shutdown(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	struct side c, s;
	char buf[8];

	link_up(a, b, &c, &s, NULL);
	ok(write(c.plain, "last", 4) == 4 && shutdown(c.plain, SHUT_RDWR) == 0,
	   "client writes, then shutdown(SHUT_RDWR) (the engine's abort)");
	ok(read_full(s.plain, buf, 4) == 4 && !memcmp(buf, "last", 4) && read(s.plain, buf, 1) == 0,
	   "server gets the data, then EOF");
	ok(write(s.plain, "x", 1) == 1 || errno == EPIPE, "server may still write");
	close_pair(&c, &s);
	ok(pumps_end(5000), "pumps end");

	/* close() with nothing pending */
	link_up(a, b, &c, &s, NULL);
	close(c.plain);
	c.plain = -1;
	ok(read(s.plain, buf, 1) == 0, "client close() -> EOF on the server");
	close_pair(&c, &s);
	ok(pumps_end(5000), "pumps end");
}

static void t_abrupt(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	struct side c, s;
	int cfd, sfd, dupfd;
	char buf[8];
	long m = log_mark();

	tcp_pair(&cfd, &sfd);
	dupfd = dup(cfd); /* the test keeps a handle on the client's TCP socket */
	side_start(&s, b, 1, sfd);
	memset(&c, 0, sizeof(c));
	c.ctx = a;
	c.fd = cfd;
	c.peer.deadline_ms = DL_MS;
	side_main(&c);
	side_join(&s);
	ok(c.rc == 0 && s.rc == 0, "link up");
	shutdown(dupfd, SHUT_RDWR); /* FIN without close_notify */
	ok(read(s.plain, buf, 1) == 0,
	   "TCP closed under TLS (no close_notify) -> EOF on the server");
	ok(read(c.plain, buf, 1) <= 0, "... and the client side ends too");
	ok(log_has(m, "without close_notify", NULL), "and the missing close_notify is logged");
	close(dupfd);
	close_pair(&c, &s);
	ok(pumps_end(5000), "pumps end");
}

static void t_bounded(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	static char chunk[1 << 16];
	struct side c, s;
	uint64_t sent = 0, got = 0;
	int blocked = 0;

	link_up(a, b, &c, &s, NULL);
	fcntl(c.plain, F_SETFL, fcntl(c.plain, F_GETFL) | O_NONBLOCK);
	/* the server's engine does not read: write until a 300 ms wait for
	 * POLLOUT times out, which the pump must bring about */
	while (sent < (512ull << 20)) {
		ssize_t n = write(c.plain, chunk, sizeof(chunk));
		if (n > 0) {
			sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			break;
		struct pollfd pf = {c.plain, POLLOUT, 0};
		if (poll(&pf, 1, 300) == 0) {
			blocked = 1;
			break;
		}
	}
	diag("writer blocked after %llu KiB", (unsigned long long)(sent >> 10));
	ok(blocked && sent < (32ull << 20),
	   "a peer that stops reading blocks the writer (EAGAIN, no POLLOUT) after %llu KiB",
	   (unsigned long long)(sent >> 10));
	while (got < sent) {
		ssize_t n = read(s.plain, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	ok(got == sent, "once it reads, every byte arrives (%llu)", (unsigned long long)got);
	struct pollfd pf = {c.plain, POLLOUT, 0};
	ok(poll(&pf, 1, 5000) == 1, "and the writer may write again");
	close_pair(&c, &s);
	ok(pumps_end(5000), "pumps end");
}

static void t_insecure(void)
{
	struct hr_tls_config cfg = {.insecure = 1};
	struct hr_tls_ctx *ctx = ctx_or_bail(&cfg);
	struct side c, s;
	int cfd, sfd;
	long m = log_mark();

	tcp_pair(&cfd, &sfd);
	side_start(&s, ctx, 1, sfd);
	side_join(&s);
	memset(&c, 0, sizeof(c));
	c.ctx = ctx;
	c.fd = cfd;
	side_main(&c);
	ok(c.rc == 0 && c.plain == cfd && s.plain == sfd &&
	       !strcmp(hr_tls_ctx_mode(ctx), "insecure"),
	   "--insecure: the socket is handed back as it is");
	ok(log_has(m, "plain TCP (--insecure)", "127.0.0.1:"), "and each link says so in the log");
	close_pair(&c, &s);
	hr_tls_ctx_free(ctx);
}

int main(void)
{
	harness_init("t-tls");
	t_files();
	t_config_errors();
	struct hr_tls_config ca = ca_cfg("a"), cb = ca_cfg("b");
	struct hr_tls_ctx *a = ctx_or_bail(&ca), *b = ctx_or_bail(&cb);
	ok(!strcmp(hr_tls_ctx_mode(a), "CA"), "CA mode from cert + key + CA");
	t_ca_ok(a, b);
	t_bulk(a, b);
	t_shutdown(a, b);
	t_abrupt(a, b);
	t_bounded(a, b);
	t_insecure();
	hr_tls_ctx_free(a);
	hr_tls_ctx_free(b);
	ok(pumps_end(5000), "no pump thread left");
	plan(tap_n);
	harness_cleanup();
	return tap_done();
}
