/*
 * tls.c - TLS contexts for the three modes and the handshake of one link
 * (see tls.h).  After the handshake, the server sends one byte through TLS,
 * HR_TLS_ACCEPT_BYTE, once it has accepted the client: in TLS 1.3 the
 * client's handshake ends before the server has checked the client's
 * certificate, and without it a refused client would only see a later EOF.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "net/tls-internal.h"

#define HR_TLS_DEFAULT_DL_MS 10000
#define HR_TLS_CIPHERSUITES                                                                        \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define HR_TLS_READ_BUF_BYTES (64 * 1024)

static int hs_index = -1;
static pthread_once_t hs_once = PTHREAD_ONCE_INIT;

static void hs_index_init(void)
{
	hs_index = SSL_get_ex_new_index(0, "hr_tls hs", NULL, NULL, NULL);
}

static struct hs *hs_of(SSL *ssl)
{
	return SSL_get_ex_data(ssl, hs_index);
}

int hr_tls_hs_attach(SSL *ssl, struct hs *h)
{
	return SSL_set_ex_data(ssl, hs_index, h) == 1 ? 0 : -ENOMEM;
}

void hr_tls_set_reason(struct hs *h, const char *fmt, ...)
{
	va_list ap;
	if (h->reason[0])
		return; /* the first reason is the real one */
	va_start(ap, fmt);
	vsnprintf(h->reason, sizeof(h->reason), fmt, ap);
	va_end(ap);
}

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static void cert_cn(X509 *crt, char *buf, size_t n)
{
	buf[0] = 0;
	if (crt &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(crt), NID_commonName, buf, (int)n) < 0)
		buf[0] = 0;
}

/* ---- certificate verification ----------------------------------------- */

static int is_pinned(const struct hr_tls_ctx *ctx, X509 *crt)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (X509_digest(crt, EVP_sha256(), md, &len) != 1 || len != 32)
		return 0;
	for (unsigned i = 0; i < ctx->nr_pins; i++)
		if (!memcmp(ctx->pins[i], md, 32))
			return 1;
	return 0;
}

static int verify_cb(int preverify_ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hs *h = ssl ? hs_of(ssl) : NULL;
	X509 *crt = X509_STORE_CTX_get_current_cert(xs);
	int depth = X509_STORE_CTX_get_error_depth(xs);
	const char *who;
	char cn[HR_TLS_NAME_MAX];

	if (!h)
		return 0;
	who = h->server ? "client" : "server";
	cert_cn(X509_STORE_CTX_get0_cert(xs), cn, sizeof(cn)); /* the leaf's */
	switch (h->ctx->mode) {
	case HR_TLS_PINNED:
		if (depth > 0)
			return 1; /* only the leaf matters, and only by its hash */
		if (crt && is_pinned(h->ctx, crt))
			return 1;
		char fp[100] = "";
		if (crt)
			hr_tls_x509_fingerprint(crt, fp, sizeof(fp));
		hr_tls_set_reason(h, "%s certificate fingerprint not pinned (CN=%s, sha256 %s)",
				  who, cn, fp);
		return 0;
	case HR_TLS_CA:
		if (preverify_ok)
			return 1;
		int e = X509_STORE_CTX_get_error(xs);
		switch (e) {
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
		case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
			hr_tls_set_reason(
			    h, "%s certificate not signed by the configured CA (CN=%s)", who, cn);
			break;
		default:
			hr_tls_set_reason(h, "%s certificate rejected (CN=%s, depth %d): %s", who,
					  cn, depth, X509_verify_cert_error_string(e));
		}
		return 0;
	default:
		hr_tls_set_reason(h, "%s presented a certificate, PSK mode takes none (CN=%s)", who,
				  cn);
		return 0;
	}
}

/* ---- PSK ---------------------------------------------------------------- */

static const unsigned char tls_aes128gcm_sha256[2] = {0x13, 0x01};

static SSL_SESSION *psk_session(SSL *ssl, const struct hr_tls_ctx *ctx)
{
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, tls_aes128gcm_sha256);
	SSL_SESSION *s = c ? SSL_SESSION_new() : NULL;

	if (s && (!SSL_SESSION_set1_master_key(s, ctx->psk, ctx->psk_len) ||
		  !SSL_SESSION_set_cipher(s, c) ||
		  !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	return s;
}

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **sess)
{
	struct hs *h = hs_of(ssl);
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, tls_aes128gcm_sha256);

	*sess = NULL;
	if (!h || !c)
		return 0;
	if (md && SSL_CIPHER_get_handshake_digest(c) != md)
		return 1; /* a HelloRetryRequest chose another hash: no PSK then */
	*sess = psk_session(ssl, h->ctx);
	*id = (const unsigned char *)h->ctx->node_name;
	*idlen = strlen(h->ctx->node_name);
	return *sess ? 1 : 0;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct hs *h = hs_of(ssl);

	*sess = NULL;
	if (!h)
		return 0;
	if (!idlen || idlen >= sizeof(h->psk_identity)) {
		hr_tls_set_reason(h, "PSK identity of %zu bytes", idlen);
		return 1; /* no session: the handshake fails without a certificate */
	}
	for (size_t i = 0; i < idlen; i++)
		if (id[i] < 0x21 || id[i] > 0x7e) {
			hr_tls_set_reason(h, "PSK identity is not printable");
			return 1;
		}
	memcpy(h->psk_identity, id, idlen);
	h->psk_identity[idlen] = 0;
	*sess = psk_session(ssl, h->ctx);
	return *sess ? 1 : 0;
}

/* ---- context ------------------------------------------------------------ */

static int read_psk(struct hr_tls_ctx *ctx, const char *file, char *err, size_t errlen)
{
	char buf[2 * HR_TLS_PSK_MAX + 8];
	struct stat st;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return errf(err, errlen, -errno, "%s: %s", file, strerror(errno));
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		close(fd);
		return errf(err, errlen, -EPERM,
			    "%s: readable by group or others (chmod 600 it, and make a new key)",
			    file);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return errf(err, errlen, -errno, "%s: %s", file, strerror(errno));
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	if (n % 2 || n < 2 * HR_TLS_PSK_LEN || n > 2 * HR_TLS_PSK_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return errf(err, errlen, -EINVAL, "%s: want %d to %d bytes as hex on one line",
			    file, HR_TLS_PSK_LEN, HR_TLS_PSK_MAX);
	}
	long len = 0;
	unsigned char *k = OPENSSL_hexstr2buf(buf, &len);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!k)
		return errf(err, errlen, -EINVAL, "%s: not hex", file);
	memcpy(ctx->psk, k, (size_t)len);
	ctx->psk_len = (size_t)len;
	OPENSSL_clear_free(k, (size_t)len);
	return 0;
}

static int parse_pins(struct hr_tls_ctx *ctx, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (*p) {
		unsigned char md[32];
		size_t nd = 0;
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		while (*p && *p != ',' && *p != ' ') {
			int hi, lo;
			if (*p == ':') {
				p++;
				continue;
			}
			hi = OPENSSL_hexchar2int((unsigned char)p[0]);
			lo = p[1] ? OPENSSL_hexchar2int((unsigned char)p[1]) : -1;
			if (hi < 0 || lo < 0 || nd == sizeof(md))
				return errf(err, errlen, -EINVAL,
					    "peer fingerprint is not a SHA-256 in hex: %s", list);
			md[nd++] = (unsigned char)(hi << 4 | lo);
			p += 2;
		}
		if (nd != sizeof(md))
			return errf(err, errlen, -EINVAL, "peer fingerprint is not a SHA-256: %s",
				    list);
		if (ctx->nr_pins == HR_TLS_MAX_PINS)
			return errf(err, errlen, -E2BIG, "more than %d peer fingerprints",
				    HR_TLS_MAX_PINS);
		memcpy(ctx->pins[ctx->nr_pins++], md, sizeof(md));
	}
	if (!ctx->nr_pins)
		return errf(err, errlen, -EINVAL, "no peer fingerprint given");
	return 0;
}

static SSL_CTX *new_ssl_ctx(const struct hr_tls_ctx *ctx, const struct hr_tls_config *cfg,
			    int server, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	int vmode = SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);

	if (!c) {
		errf(err, errlen, 0, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_read_ahead(c, 1);
	SSL_CTX_set_default_read_buffer_len(c, HR_TLS_READ_BUF_BYTES);
	SSL_CTX_set_verify(c, vmode, verify_cb);
	if (server &&
	    SSL_CTX_set_session_id_context(c, (const unsigned char *)"hareplicate", 11) != 1)
		goto fail;
	if (SSL_CTX_set_ciphersuites(c, HR_TLS_CIPHERSUITES) != 1)
		goto fail;
	if (ctx->mode == HR_TLS_PSK) {
		if (server)
			SSL_CTX_set_psk_find_session_callback(c, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(c, psk_use_cb);
		return c;
	}
	if (SSL_CTX_use_certificate_chain_file(c, cfg->cert_file) != 1) {
		errf(err, errlen, 0, "%s: cannot load the certificate", cfg->cert_file);
		goto fail_quiet;
	}
	if (SSL_CTX_use_PrivateKey_file(c, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		errf(err, errlen, 0, "%s: cannot load the key, or it does not match %s",
		     cfg->key_file, cfg->cert_file);
		goto fail_quiet;
	}
	if (ctx->mode == HR_TLS_CA && SSL_CTX_load_verify_file(c, cfg->ca_file) != 1) {
		errf(err, errlen, 0, "%s: cannot load the CA certificate", cfg->ca_file);
		goto fail_quiet;
	}
	return c;
fail:
	errf(err, errlen, 0, "TLS setup failed: %s", ERR_reason_error_string(ERR_peek_error()));
fail_quiet:
	ERR_clear_error();
	SSL_CTX_free(c);
	return NULL;
}

int hr_tls_ctx_new(struct hr_tls_ctx **ctx_r, const struct hr_tls_config *cfg, char *err,
		   size_t errlen)
{
	struct hr_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	int rc = 0;

	*ctx_r = NULL;
	if (!ctx)
		return errf(err, errlen, -ENOMEM, "out of memory");
	pthread_once(&hs_once, hs_index_init);
	ctx->refs = 1;
	if (cfg->insecure) {
		ctx->mode = HR_TLS_INSECURE;
		*ctx_r = ctx;
		return 0;
	}
	if (cfg->psk_file) {
		ctx->mode = HR_TLS_PSK;
		if (!cfg->node_name || !*cfg->node_name ||
		    strlen(cfg->node_name) >= sizeof(ctx->node_name)) {
			rc = errf(err, errlen, -EINVAL,
				  "PSK mode needs the node name (1 to %zu bytes)",
				  sizeof(ctx->node_name) - 1);
			goto out;
		}
		strcpy(ctx->node_name, cfg->node_name);
		rc = read_psk(ctx, cfg->psk_file, err, errlen);
	} else if (!cfg->cert_file || !cfg->key_file) {
		rc = errf(err, errlen, -EINVAL,
			  "TLS needs a certificate and key (or a PSK file, or --insecure)");
	} else if (cfg->ca_file && cfg->peer_fingerprints) {
		rc = errf(err, errlen, -EINVAL, "give a CA or peer fingerprints, not both");
	} else if (cfg->ca_file) {
		ctx->mode = HR_TLS_CA;
	} else if (cfg->peer_fingerprints) {
		ctx->mode = HR_TLS_PINNED;
		rc = parse_pins(ctx, cfg->peer_fingerprints, err, errlen);
	} else {
		rc = errf(err, errlen, -EINVAL, "TLS needs a CA file or peer fingerprints to pin");
	}
	if (rc)
		goto out;
	ctx->client = new_ssl_ctx(ctx, cfg, 0, err, errlen);
	ctx->server = ctx->client ? new_ssl_ctx(ctx, cfg, 1, err, errlen) : NULL;
	if (!ctx->server)
		rc = -HR_ETLS;
out:
	if (rc) {
		ctx->refs = 0;
		hr_tls_ctx_free(ctx);
		return rc;
	}
	*ctx_r = ctx;
	return 0;
}

void hr_tls_ctx_ref(struct hr_tls_ctx *ctx)
{
	__atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
}

void hr_tls_ctx_free(struct hr_tls_ctx *ctx)
{
	if (!ctx || __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	SSL_CTX_free(ctx->client);
	SSL_CTX_free(ctx->server);
	OPENSSL_cleanse(ctx->psk, sizeof(ctx->psk));
	free(ctx);
}

const char *hr_tls_ctx_mode(const struct hr_tls_ctx *ctx)
{
	static const char *const names[] = {"insecure", "CA", "pinned", "PSK"};
	return names[ctx->mode];
}

int hr_tls_ctx_insecure(const struct hr_tls_ctx *ctx)
{
	return !ctx || ctx->mode == HR_TLS_INSECURE;
}

const char *hr_tls_peer_addr(int fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
			snprintf(buf, n, "[%s]:%u", host, port);
			return buf;
		}
	}
	snprintf(buf, n, "%s:%u", host, port);
	return buf;
}

/* ---- handshake ---------------------------------------------------------- */

/* Wait until fd is ready for ev: 0, -ETIMEDOUT at deadline_ns, -errno. */
static int wait_fd(int fd, short ev, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = hr_now_ns();
		struct pollfd pf = {fd, ev, 0};
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		int n = poll(&pf, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* The server looks at the first byte before OpenSSL does: a TLS handshake
 * record starts with 0x16, anything else is a peer that talks plain TCP. */
static int peek_first(int fd, uint64_t deadline_ns, int timeout_ms, struct hs *h)
{
	unsigned char b;
	int rc = wait_fd(fd, POLLIN, deadline_ns);
	if (rc == -ETIMEDOUT) {
		hr_tls_set_reason(h, "handshake timeout (nothing received in %d ms)", timeout_ms);
		return rc;
	}
	if (rc)
		return rc;
	ssize_t r = recv(fd, &b, 1, MSG_PEEK);
	if (r < 0)
		return -errno;
	if (r == 0) {
		hr_tls_set_reason(h, "peer closed the connection before the handshake");
		return -ECONNRESET;
	}
	if (b != 0x16) {
		hr_tls_set_reason(h, "peer speaks plain TCP, not TLS (first byte 0x%02x)", b);
		return -HR_EAUTH;
	}
	return 0;
}

/* One queued OpenSSL error as the reason a handshake failed: sets h->reason
 * (the first reason wins) and returns the error it stands for, or 0 for an
 * error that is not the SSL library's. */
int hr_tls_reason_of(struct hs *h, unsigned long code, const char *when)
{
	int rc = -HR_ETLS;

	if (ERR_GET_LIB(code) != ERR_LIB_SSL)
		return 0;
	switch (ERR_GET_REASON(code)) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		hr_tls_set_reason(h, "peer sent no certificate");
		rc = -HR_EAUTH;
		break;
	case SSL_R_BINDER_DOES_NOT_VERIFY:
		hr_tls_set_reason(h, "PSK does not match (binder does not verify)");
		rc = -HR_EAUTH;
		break;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
		hr_tls_set_reason(h,
				  "peer offered no key we accept (PSK missing or mismatched "
				  "mode): %s",
				  ERR_reason_error_string(code));
		rc = -HR_EAUTH;
		break;
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER: /* PSK: our binder did not verify */
		hr_tls_set_reason(h, "the peer refused us (%s)", ERR_reason_error_string(code));
		rc = -HR_EAUTH;
		break;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
		hr_tls_set_reason(h, "peer speaks plain TCP, not TLS (%s)",
				  ERR_reason_error_string(code));
		break;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		hr_tls_set_reason(h, "peer does not speak TLS 1.3");
		break;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		hr_tls_set_reason(h, "peer closed the connection %s", when);
		rc = -ECONNRESET;
		break;
	default:
		hr_tls_set_reason(h, "TLS error %s: %s", when, ERR_reason_error_string(code));
	}
	return rc;
}

/* Why SSL_accept/SSL_connect/SSL_read failed: sets h->reason, returns rc. */
static int ssl_failure(SSL *ssl, int r, int saved_errno, struct hs *h, const char *when)
{
	int e = SSL_get_error(ssl, r);
	unsigned long code;
	int rc = -HR_ETLS;

	if (h->reason[0]) {
		rc = -HR_EAUTH;
		goto out;
	}
	while ((code = ERR_get_error())) {
		int r1 = hr_tls_reason_of(h, code, when);
		if (r1 && rc == -HR_ETLS)
			rc = r1;
	}
	if (!h->reason[0]) {
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !saved_errno)) {
			hr_tls_set_reason(h, "peer closed the connection %s", when);
			rc = -ECONNRESET;
		} else if (e == SSL_ERROR_SYSCALL) {
			hr_tls_set_reason(h, "%s %s", strerror(saved_errno), when);
			rc = -saved_errno;
		} else {
			hr_tls_set_reason(h, "TLS error %d %s", e, when);
		}
	}
out:
	ERR_clear_error();
	return rc;
}

/* Drive op (SSL_accept, SSL_connect, or a one-byte read/write) to the end. */
static int drive(SSL *ssl, int fd, uint64_t deadline_ns, struct hs *h, const char *when,
		 int (*op)(SSL *, void *), void *arg)
{
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = op(ssl, arg);
		if (r == 1)
			return 0;
		int saved = errno, e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return ssl_failure(ssl, r, saved, h, when);
		int rc = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ns);
		if (rc == -ETIMEDOUT)
			hr_tls_set_reason(h, "handshake timeout %s", when);
		if (rc)
			return rc;
	}
}

static int op_accept(SSL *ssl, void *arg)
{
	return SSL_accept(ssl);
}

static int op_connect(SSL *ssl, void *arg)
{
	return SSL_connect(ssl);
}

static int op_read1(SSL *ssl, void *arg)
{
	size_t n;
	return SSL_read_ex(ssl, arg, 1, &n) == 1 ? 1 : -1;
}

static int op_write1(SSL *ssl, void *arg)
{
	size_t n;
	return SSL_write_ex(ssl, arg, 1, &n) == 1 ? 1 : -1;
}

/* The peer's name (CN or PSK identity) once the handshake is done. */
int hr_tls_peer_identity(SSL *ssl, struct hs *h, char *name, size_t n)
{
	name[0] = 0;
	if (h->ctx->mode == HR_TLS_PSK) {
		if (!SSL_session_reused(ssl)) {
			hr_tls_set_reason(h, "peer did not use the pre-shared key");
			return -HR_EAUTH;
		}
		snprintf(name, n, "%s", h->psk_identity); /* "" on the client */
		return 0;
	}
	X509 *crt = SSL_get1_peer_certificate(ssl);
	if (!crt) {
		hr_tls_set_reason(h, "peer sent no certificate");
		return -HR_EAUTH;
	}
	/* pinned: the callback decided by the hash (the chain "fails" to verify) */
	if (h->ctx->mode == HR_TLS_PINNED ? !is_pinned(h->ctx, crt)
					  : SSL_get_verify_result(ssl) != X509_V_OK) {
		hr_tls_set_reason(h, "peer certificate did not verify");
		X509_free(crt);
		return -HR_EAUTH;
	}
	cert_cn(crt, name, n);
	X509_free(crt);
	return 0;
}

static int do_handshake(struct hr_tls_ctx *ctx, int server, int fd, const struct hr_tls_peer *p,
			int *plain_fd_r, char *peer_name, size_t n)
{
	char addr[80], name[HR_TLS_NAME_MAX] = "";
	const char *desc = p->desc ? p->desc : hr_tls_peer_addr(fd, addr, sizeof(addr));
	int timeout_ms = p->deadline_ms > 0 ? p->deadline_ms : HR_TLS_DEFAULT_DL_MS;
	uint64_t deadline_ns = hr_now_ns() + (uint64_t)timeout_ms * 1000000;
	struct hs h = {.ctx = ctx, .server = server};
	unsigned char byte = HR_TLS_ACCEPT_BYTE;
	SSL *ssl = NULL;
	int rc;

	if (peer_name && n)
		peer_name[0] = 0;
	if (ctx->mode == HR_TLS_INSECURE) {
		log_warnx(p->vm,
			  "link %s %s is plain TCP (--insecure): not authenticated, "
			  "not encrypted",
			  server ? "from" : "to", desc);
		*plain_fd_r = fd;
		return 0;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (server && (rc = peek_first(fd, deadline_ns, timeout_ms, &h)))
		goto fail;
	ssl = SSL_new(server ? ctx->server : ctx->client);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || hr_tls_hs_attach(ssl, &h)) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = drive(ssl, fd, deadline_ns, &h, "during the handshake",
		   server ? op_accept : op_connect, NULL);
	if (!rc)
		rc = hr_tls_peer_identity(ssl, &h, name, sizeof(name));
	if (!rc && p->expect_name && name[0] && strcmp(name, p->expect_name)) {
		hr_tls_set_reason(&h, "peer is '%s', expected '%s'", name, p->expect_name);
		rc = -HR_EAUTH;
	}
	if (!rc && server)
		rc = drive(ssl, fd, deadline_ns, &h, "sending the accept byte", op_write1, &byte);
	if (!rc && !server) {
		rc = drive(ssl, fd, deadline_ns, &h, "after the handshake (it refused us?)",
			   op_read1, &byte);
		if (!rc && byte != HR_TLS_ACCEPT_BYTE) {
			hr_tls_set_reason(&h, "unknown transport version %u", byte);
			rc = -HR_EVERSION;
		}
	}
	if (rc)
		goto fail;
	SSL_set_ex_data(ssl, hs_index, NULL);
	rc = hr_tls_pump_start(ctx, ssl, fd, p->vm, desc, plain_fd_r);
	if (rc) {
		hr_tls_set_reason(&h, "cannot start the pump: %s", hr_strerror(rc));
		goto fail;
	}
	hr_log(p->quiet ? HR_LOG_DEBUG : HR_LOG_INFO, p->vm,
	       "TLS link %s %s %s (%s mode, %s, peer '%s')", server ? "from" : "to",
	       server ? "client" : "server", desc, hr_tls_ctx_mode(ctx),
	       SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)), name);
	if (peer_name && n)
		snprintf(peer_name, n, "%s", name);
	return 0;
fail:
	if (server)
		log_warnx(p->vm, "TLS: refused client %s: %s", desc,
			  h.reason[0] ? h.reason : hr_strerror(rc));
	else
		log_warnx(p->vm, "TLS: no link to server %s: %s", desc,
			  h.reason[0] ? h.reason : hr_strerror(rc));
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return rc;
}

/* OpenSSL writes with write(2): a peer that hung up would raise SIGPIPE in
 * the caller's thread.  Block it during the handshake and swallow what that
 * raised (a SIGPIPE already pending before stays pending). */
static int handshake(struct hr_tls_ctx *ctx, int server, int fd, const struct hr_tls_peer *p,
		     int *plain_fd_r, char *peer_name, size_t n)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = {0, 0};
	int rc, was_pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	rc = do_handshake(ctx, server, fd, p, plain_fd_r, peer_name, n);
	while (!was_pending && sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int hr_tls_client(struct hr_tls_ctx *ctx, int fd, const struct hr_tls_peer *p, int *plain_fd_r,
		  char *peer_name, size_t n)
{
	return handshake(ctx, 0, fd, p, plain_fd_r, peer_name, n);
}

int hr_tls_server(struct hr_tls_ctx *ctx, int fd, const struct hr_tls_peer *p, int *plain_fd_r,
		  char *peer_name, size_t n)
{
	return handshake(ctx, 1, fd, p, plain_fd_r, peer_name, n);
}
