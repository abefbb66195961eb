/*
 * t-tls-refuse.c - the TLS transport refuses every peer that does not
 * authenticate, before any byte from it reaches the caller, and logs why
 * with the peer's address: a certificate from another CA (either side), no
 * certificate, plain TCP (either side), a fingerprint not pinned, a wrong
 * PSK, a PSK peer against a certificate peer, the wrong node name, and
 * peers that say nothing within the deadline.  Pinned and PSK modes are
 * also shown working here.
 */
#include "tls-harness.h"

#define SHORT_DL_MS 300

static struct hr_tls_ctx *cfg_ctx(struct hr_tls_config cfg)
{
	return ctx_or_bail(&cfg);
}

/* Expect: the server refused with srv_rc and logged want; the client failed. */
static void refused(struct hr_tls_ctx *cctx, struct hr_tls_ctx *sctx, int srv_rc, const char *want,
		    const char *what)
{
	struct side c, s;
	long m = log_mark();

	link_up(cctx, sctx, &c, &s, NULL);
	ok(s.rc == srv_rc && s.plain < 0 && c.rc != 0 && c.plain < 0,
	   "%s: refused (server: %s, client: %s)", what, hr_strerror(s.rc), hr_strerror(c.rc));
	ok(log_has(m, "refused client 127.0.0.1:", want), "  logged with the address: %s", want);
	close_pair(&c, &s);
}

/* A client that speaks raw bytes or raw TLS, in a thread. */
struct rogue {
	int fd;
	int tls; /* 1: OpenSSL client without a certificate; 0: plain text */
	pthread_t tid;
};

static void *rogue_main(void *arg)
{
	struct rogue *r = arg;
	char buf[64];

	if (r->tls) {
		SSL_CTX *c = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
		SSL *ssl = SSL_new(c);
		SSL_set_fd(ssl, r->fd);
		if (SSL_connect(ssl) == 1)
			(void)!SSL_read(ssl, buf, sizeof(buf)); /* the server's alert ends it */
		SSL_free(ssl);
		SSL_CTX_free(c);
	} else {
		(void)!write(r->fd, "HELLO 1 node-a\n", 15);
		(void)!read(r->fd, buf, sizeof(buf));
	}
	close(r->fd);
	return NULL;
}

static void rogue_client(struct hr_tls_ctx *sctx, int tls, const char *want, const char *what)
{
	struct rogue r = {.tls = tls};
	struct side s;
	int sfd;
	long m = log_mark();

	tcp_pair(&r.fd, &sfd);
	pthread_create(&r.tid, NULL, rogue_main, &r);
	side_start(&s, sctx, 1, sfd);
	side_join(&s);
	pthread_join(r.tid, NULL);
	ok(s.rc == -HR_EAUTH && s.plain < 0, "%s: refused before any byte reaches the caller (%s)",
	   what, hr_strerror(s.rc));
	ok(log_has(m, "refused client 127.0.0.1:", want), "  logged with the address: %s", want);
}

/* A plain TCP server: answers like a daemon without TLS (reply) or closes. */
struct plain_srv {
	int fd;
	const char *reply;
	pthread_t tid;
};

static void *plain_srv_main(void *arg)
{
	struct plain_srv *p = arg;
	char buf[512];
	if (p->reply) {
		(void)!read(p->fd, buf, sizeof(buf));
		(void)!write(p->fd, p->reply, strlen(p->reply));
		(void)!read(p->fd, buf, sizeof(buf));
	}
	close(p->fd);
	return NULL;
}

static void tls_to_plain(struct hr_tls_ctx *cctx, const char *reply, const char *want,
			 const char *what)
{
	struct plain_srv p = {.reply = reply};
	struct side c;
	int cfd;
	long m = log_mark();

	tcp_pair(&cfd, &p.fd);
	pthread_create(&p.tid, NULL, plain_srv_main, &p);
	side_start(&c, cctx, 0, cfd);
	side_join(&c);
	pthread_join(p.tid, NULL);
	ok(c.rc != 0 && c.plain < 0, "%s: the client fails (%s)", what, hr_strerror(c.rc));
	ok(log_has(m, "no link to server 127.0.0.1:", want), "  and says why: %s", want);
}

static void t_deadline(struct hr_tls_ctx *ctx, int server, const char *what)
{
	struct side x;
	int cfd, sfd;
	long m = log_mark();
	uint64_t t0 = hr_now_ns();

	tcp_pair(&cfd, &sfd);
	memset(&x, 0, sizeof(x));
	x.ctx = ctx;
	x.server = server;
	x.fd = server ? sfd : cfd;
	x.peer.deadline_ms = SHORT_DL_MS;
	side_main(&x); /* the other end is held open and silent */
	uint64_t ms = (hr_now_ns() - t0) / 1000000;
	ok(x.rc == -ETIMEDOUT && ms >= SHORT_DL_MS && ms < 3000,
	   "%s: handshake deadline of %d ms: %s after %llu ms", what, SHORT_DL_MS,
	   hr_strerror(x.rc), (unsigned long long)ms);
	ok(log_has(m, "handshake timeout", server ? "refused client 127.0.0.1:" : "127.0.0.1:"),
	   "  logged with the address");
	close(server ? cfd : sfd);
}

static void t_pinned(void)
{
	char fs[128], ft[128], fa[128];
	struct hr_tls_config cs = {.cert_file = path("s", "host.crt"),
				   .key_file = path("s", "host.key")};
	struct hr_tls_config ct = {.cert_file = path("t", "host.crt"),
				   .key_file = path("t", "host.key")};
	struct side c, s;

	hr_cert_fingerprint(path("s", "host.crt"), fs, sizeof(fs), err, sizeof(err));
	hr_cert_fingerprint(path("t", "host.crt"), ft, sizeof(ft), err, sizeof(err));
	hr_cert_fingerprint(path("a", "host.crt"), fa, sizeof(fa), err, sizeof(err));
	char tpins[300];
	snprintf(tpins, sizeof(tpins), "%s, %s", fa, fs); /* t accepts a and s */
	cs.peer_fingerprints = ft;
	ct.peer_fingerprints = tpins;
	struct hr_tls_ctx *sctx = cfg_ctx(cs), *tctx = cfg_ctx(ct);
	ok(!strcmp(hr_tls_ctx_mode(sctx), "pinned"), "pinned mode from cert + key + fingerprints");
	link_up(sctx, tctx, &c, &s, "node-t");
	ok(c.rc == 0 && s.rc == 0 && !strcmp(c.name, "node-t") && !strcmp(s.name, "node-s"),
	   "pinned, self-signed: both sides accept the other ('%s', '%s')", c.name, s.name);
	char buf[4];
	ok(write(c.plain, "pin", 3) == 3 && read_full(s.plain, buf, 3) == 3, "  and data flows");
	close_pair(&c, &s);

	/* t pins s and a only: x (signed by CA two) is not pinned */
	struct hr_tls_config cx = ca_cfg("x");
	cx.ca_file = NULL;
	cx.peer_fingerprints = ft;
	struct hr_tls_ctx *xctx = cfg_ctx(cx);
	refused(xctx, tctx, -HR_EAUTH, "fingerprint not pinned", "pinned: a client not pinned");
	/* s pins t only; the server t2 pins s but has a's key: s refuses it */
	struct hr_tls_config ca2 = ca_cfg("a");
	ca2.ca_file = NULL;
	ca2.peer_fingerprints = fs;
	struct hr_tls_ctx *actx = cfg_ctx(ca2);
	long m = log_mark();
	link_up(sctx, actx, &c, &s, NULL);
	ok(c.rc == -HR_EAUTH && c.plain < 0 && s.plain < 0,
	   "pinned: the client refuses a server not pinned (%s)", hr_strerror(c.rc));
	ok(log_has(m, "no link to server 127.0.0.1:", "server certificate fingerprint not pinned"),
	   "  logged with the address");
	close_pair(&c, &s);
	hr_tls_ctx_free(sctx);
	hr_tls_ctx_free(tctx);
	hr_tls_ctx_free(xctx);
	hr_tls_ctx_free(actx);
}

static void t_psk(struct hr_tls_ctx *ca_b)
{
	char k1[400], k2[400];
	struct side c, s;

	snprintf(k1, sizeof(k1), "%s/psk1", dir);
	snprintf(k2, sizeof(k2), "%s/psk2", dir);
	struct hr_tls_ctx *a1 =
	    cfg_ctx((struct hr_tls_config){.psk_file = k1, .node_name = "node-a"});
	struct hr_tls_ctx *b1 =
	    cfg_ctx((struct hr_tls_config){.psk_file = k1, .node_name = "node-b"});
	struct hr_tls_ctx *a2 =
	    cfg_ctx((struct hr_tls_config){.psk_file = k2, .node_name = "node-a"});
	ok(!strcmp(hr_tls_ctx_mode(a1), "PSK"), "PSK mode from a key file + node name");
	link_up(a1, b1, &c, &s, NULL);
	ok(c.rc == 0 && s.rc == 0 && !strcmp(s.name, "node-a"),
	   "PSK, same key: linked; the server knows the client as '%s'", s.name);
	char buf[4];
	ok(write(s.plain, "psk", 3) == 3 && read_full(c.plain, buf, 3) == 3, "  and data flows");
	close_pair(&c, &s);
	refused(a2, b1, -HR_EAUTH, "PSK does not match", "PSK: a client with another key");
	refused(a1, ca_b, -HR_EAUTH, "", "PSK client against a certificate server");
	hr_tls_ctx_free(a1);
	hr_tls_ctx_free(b1);
	hr_tls_ctx_free(a2);
}

static void t_names(struct hr_tls_ctx *a, struct hr_tls_ctx *b)
{
	struct side c, s;
	long m = log_mark();

	link_up(a, b, &c, &s, "node-z");
	ok(c.rc == -HR_EAUTH && c.plain < 0, "client expecting node-z refuses node-b (%s)",
	   hr_strerror(c.rc));
	ok(log_has(m, "peer is 'node-b', expected 'node-z'", NULL), "  and says so");
	close_pair(&c, &s);

	int cfd, sfd;
	m = log_mark();
	tcp_pair(&cfd, &sfd);
	memset(&s, 0, sizeof(s));
	s.ctx = b;
	s.server = 1;
	s.fd = sfd;
	s.peer.deadline_ms = DL_MS;
	s.peer.expect_name = "node-q";
	pthread_create(&s.tid, NULL, side_main, &s);
	memset(&c, 0, sizeof(c));
	c.ctx = a;
	c.fd = cfd;
	c.peer.deadline_ms = DL_MS;
	side_main(&c);
	side_join(&s);
	ok(s.rc == -HR_EAUTH && c.rc != 0 && c.plain < 0,
	   "server expecting node-q refuses node-a, and the client learns it at once (%s)",
	   hr_strerror(c.rc));
	ok(log_has(m, "refused client 127.0.0.1:", "expected 'node-q'"),
	   "  logged with the address");
	close_pair(&c, &s);
}

int main(void)
{
	harness_init("t-tls-refuse");
	if (make_files())
		bail("making the test certificates: %s", err);
	struct hr_tls_ctx *a = cfg_ctx(ca_cfg("a")), *b = cfg_ctx(ca_cfg("b")),
			  *x = cfg_ctx(ca_cfg("x"));
	struct hr_tls_config xc = ca_cfg("x");
	xc.ca_file = path("a", "ca.crt"); /* x trusts the servers' CA, they do not trust its */
	struct hr_tls_ctx *x1 = cfg_ctx(xc);

	refused(x1, b, -HR_EAUTH, "client certificate not signed by the configured CA",
		"a client whose certificate comes from another CA");
	long m = log_mark();
	struct side c, s;
	link_up(a, x, &c, &s, NULL);
	ok(c.rc == -HR_EAUTH && c.plain < 0 && s.plain < 0,
	   "a server whose certificate comes from another CA: the client refuses it");
	ok(log_has(m, "no link to server 127.0.0.1:",
		   "server certificate not signed by the configured CA"),
	   "  logged with the address");
	rogue_client(b, 1, "peer sent no certificate", "a TLS client without a certificate");
	rogue_client(b, 0, "peer speaks plain TCP", "a plain TCP client");
	tls_to_plain(a, "ERR 1 expected HELLO\n", "peer speaks plain TCP",
		     "TLS client, plain server that answers");
	tls_to_plain(a, NULL, "during the handshake", "TLS client, plain server that hangs up");
	t_pinned();
	t_psk(b);
	t_names(a, b);
	t_deadline(b, 1, "a client that connects and says nothing");
	t_deadline(a, 0, "a server that accepts and says nothing");
	hr_tls_ctx_free(a);
	hr_tls_ctx_free(b);
	hr_tls_ctx_free(x);
	hr_tls_ctx_free(x1);
	ok(pumps_end(5000), "no pump thread left");
	plan(tap_n);
	harness_cleanup();
	return tap_done();
}
