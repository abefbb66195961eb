/* tls-internal.h - shared by tls.c (context, handshake), tls-pump.c and cert.c. */
#ifndef HR_NET_TLS_INTERNAL_H
#define HR_NET_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "net/tls.h"

#define HR_TLS_PSK_LEN	32 /* what `hareplicate cert psk` writes */
#define HR_TLS_PSK_MAX	64
#define HR_TLS_MAX_PINS 16
#define HR_TLS_NAME_MAX 65

enum hr_tls_mode { HR_TLS_INSECURE, HR_TLS_CA, HR_TLS_PINNED, HR_TLS_PSK };

struct hr_tls_ctx {
	int refs; /* atomic: the caller's + one per running pump */
	enum hr_tls_mode mode;
	SSL_CTX *client, *server;
	unsigned char pins[HR_TLS_MAX_PINS][32];
	unsigned nr_pins;
	unsigned char psk[HR_TLS_PSK_MAX];
	size_t psk_len;
	char node_name[HR_TLS_NAME_MAX];
};

#define HR_TLS_REASON_MAX  256
#define HR_TLS_ACCEPT_BYTE 0x01 /* transport version 1: the server accepted us */

/* One handshake, reachable from the OpenSSL callbacks through ex_data. */
struct hs {
	struct hr_tls_ctx *ctx;
	int server;
	char reason[HR_TLS_REASON_MAX]; /* why the peer was refused, set by callbacks */
	char psk_identity[HR_TLS_NAME_MAX];
};

/* Make h reachable from ssl's callbacks (h must outlive the handshake). */
int hr_tls_hs_attach(SSL *ssl, struct hs *h);
/* Set h->reason unless a reason is already there (the first is the real one). */
void hr_tls_set_reason(struct hs *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The reason one queued OpenSSL error stands for (see tls.c); its -errno,
 * or 0 when the error is not the SSL library's. */
int hr_tls_reason_of(struct hs *h, unsigned long code, const char *when);
/* After the handshake: the peer's CN or PSK identity into name, or
 * -HR_EAUTH with h->reason set. */
int hr_tls_peer_identity(SSL *ssl, struct hs *h, char *name, size_t n);

/* SHA-256 of crt's DER as "AB:CD:..." (n >= 96). */
int hr_tls_x509_fingerprint(X509 *crt, char *hex, size_t n);

void hr_tls_ctx_ref(struct hr_tls_ctx *ctx);

/*
 * Start the pump for a finished handshake: on success the pump owns ssl and
 * fd (and a ctx reference) and *plain_fd_r is the caller's end.  On failure
 * nothing is taken.
 */
int hr_tls_pump_start(struct hr_tls_ctx *ctx, SSL *ssl, int fd, const char *vm, const char *desc,
		      int *plain_fd_r);

#endif
