/* tls-event.c - TLS server links on libevent bufferevents (tls-event.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "common/log.h"
#include "net/tls-event.h"
#include "net/tls-internal.h"

struct hr_tls_ev {
	struct hr_tls_ctx *ctx;
	struct hs h;
	int ready;   /* authenticated (or insecure) */
	int refused; /* logged once */
	char desc[96];
};

int hr_tls_ev_server(struct hr_tls_ctx *ctx, struct event_base *base, int fd, const char *desc,
		     struct bufferevent **bev_r, struct hr_tls_ev **t_r)
{
	struct hr_tls_ev *t = calloc(1, sizeof(*t));
	struct bufferevent *bev = NULL;
	SSL *ssl = NULL;

	*bev_r = NULL;
	*t_r = NULL;
	if (!t)
		goto fail;
	t->ctx = ctx;
	t->h.ctx = ctx;
	t->h.server = 1;
	snprintf(t->desc, sizeof(t->desc), "%s", desc);
	if (ctx->mode == HR_TLS_INSECURE) {
		t->ready = 1;
		bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	} else {
		ssl = SSL_new(ctx->server);
		if (!ssl || hr_tls_hs_attach(ssl, &t->h))
			goto fail;
		/* frees ssl on failure and, with CLOSE_ON_FREE, ssl and fd later */
		bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
		ssl = NULL;
		if (bev)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	}
	if (!bev)
		goto fail_fd_gone;
	*bev_r = bev;
	*t_r = t;
	return 0;
fail:
	SSL_free(ssl);
	close(fd);
fail_fd_gone:
	ERR_clear_error();
	free(t);
	return -ENOMEM;
}

static int refuse(struct hr_tls_ev *t, int rc)
{
	if (!t->refused)
		log_warnx(NULL, "TLS: refused client %s: %s", t->desc,
			  t->h.reason[0] ? t->h.reason : hr_strerror(rc));
	t->refused = 1;
	return rc;
}

int hr_tls_ev_event(struct hr_tls_ev *t, struct bufferevent *bev, short what, char *name, size_t n)
{
	unsigned char byte = HR_TLS_ACCEPT_BYTE;
	char who[HR_TLS_NAME_MAX] = "";
	unsigned long code;
	int rc = -HR_ETLS;

	if (t->ready)
		return 0;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		rc = ssl ? hr_tls_peer_identity(ssl, &t->h, who, sizeof(who)) : -HR_ETLS;
		if (!rc && bufferevent_write(bev, &byte, 1) < 0)
			rc = -ENOMEM;
		if (rc)
			return refuse(t, rc);
		t->ready = 1;
		if (name && n)
			snprintf(name, n, "%s", who);
		log_debug(NULL, "TLS link from client %s (%s mode, %s, peer '%s')", t->desc,
			  hr_tls_ctx_mode(t->ctx), SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
			  who);
		return 1;
	}
	/* anything else before the handshake ended refuses the peer */
	if (t->h.reason[0])
		rc = -HR_EAUTH; /* the verify callback said why */
	while ((code = bufferevent_get_openssl_error(bev))) {
		int r1 = hr_tls_reason_of(&t->h, code, "during the handshake");
		if (r1 && rc == -HR_ETLS)
			rc = r1;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		hr_tls_set_reason(&t->h, "handshake timeout");
		rc = -ETIMEDOUT;
	} else if (what & BEV_EVENT_EOF) {
		hr_tls_set_reason(&t->h, "peer closed the connection during the handshake");
		rc = -ECONNRESET;
	} else if (!t->h.reason[0] && EVUTIL_SOCKET_ERROR()) {
		hr_tls_set_reason(&t->h, "%s during the handshake",
				  strerror(EVUTIL_SOCKET_ERROR()));
	}
	return refuse(t, rc);
}

int hr_tls_ev_ready(const struct hr_tls_ev *t)
{
	return t->ready;
}

void hr_tls_ev_shutdown(struct hr_tls_ev *t, struct bufferevent *bev)
{
	SSL *ssl = t->ctx->mode == HR_TLS_INSECURE ? NULL : bufferevent_openssl_get_ssl(bev);
	if (ssl && t->ready) {
		SSL_shutdown(ssl); /* one close_notify record, written to the socket now */
		ERR_clear_error();
	}
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

void hr_tls_ev_free(struct hr_tls_ev *t)
{
	free(t);
}
