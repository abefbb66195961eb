/*
 * tls.h - the peer-link transport: TLS 1.3 on a connected TCP socket, with
 * mutual authentication, handed to the replication engine as a plaintext fd.
 *
 * Modes (exactly one, chosen by which fields of struct hr_tls_config are set):
 *   CA      cert_file + key_file + ca_file: the peer's certificate must chain
 *           to ca_file; its subject CN is the peer's node name.
 *   pinned  cert_file + key_file + peer_fingerprints: the peer's leaf
 *           certificate's SHA-256 (of its DER) must be in the list; no CA.
 *   PSK     psk_file (+ node_name): TLS 1.3 external PSK (psk_dhe_ke, so
 *           still forward-secret); the identity sent is our node name, the
 *           peer's identity is its node name.  One key per cluster.
 *   insecure: plain TCP.  hr_tls_client/server hand fd back unchanged and
 *           log a warning per link.  Only with an explicit --insecure.
 *
 * In every TLS mode both sides authenticate (the server sets
 * SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT), only TLS 1.3 is
 * offered, there are no session tickets and no resumption.  A refused peer
 * is logged with its address and the reason ("client certificate not signed
 * by the configured CA", "fingerprint not pinned", "peer speaks plain TCP",
 * "handshake timeout", ...) and no byte from it ever reaches the caller.
 *
 * After the handshake a pump thread (tls-pump.c) owns the TCP socket and the
 * SSL object and relays between it and one end of an AF_UNIX socketpair; the
 * caller gets the other end, which behaves like the TCP socket would:
 *   - the caller's shutdown(SHUT_WR) -> the pump sends TLS close_notify and
 *     shuts the TCP socket for writing (after the data written before it);
 *   - the caller's close() or shutdown(SHUT_RDWR) -> the same, then the
 *     pump closes the TCP socket (flushing for at most HR_TLS_LINGER_MS);
 *   - the peer's close_notify or FIN -> EOF on the caller's fd (it can still
 *     write, as on a half-closed TCP socket);
 *   - the peer's reset, a TLS error, or a write failure -> the pump closes
 *     its end: EOF (ECONNRESET if the caller had unread-by-the-pump data
 *     pending) on read, EPIPE on write;
 *   - silence stays silence: the pump never sends anything of its own;
 *   - buffering is bounded: the socketpair holds ~HR_TLS_PAIR_BUF bytes each
 *     way and the pump at most one chunk (HR_TLS_CHUNK, and its records:
 *     HR_TLS_WIRE) on top, so a peer
 *     that stops reading makes the caller's writes block (EAGAIN) as a full
 *     socket would, and a heartbeat never waits behind megabytes in the pump.
 * The caller's fd is blocking like a fresh socket; TCP options set on it fail
 * harmlessly (it is AF_UNIX).  The pump sets TCP_NODELAY on the TCP socket.
 *
 * Errors: 0, -errno, -HR_EAUTH (peer refused: not authenticated),
 * -HR_ETLS (handshake failed otherwise, or bad configuration), -ETIMEDOUT.
 */
#ifndef HR_NET_TLS_H
#define HR_NET_TLS_H

#include <stddef.h>

#define HR_TLS_PAIR_BUF	  (128 * 1024) /* SO_SNDBUF/SO_RCVBUF asked for on the socketpair */
#define HR_TLS_CHUNK	  (128 * 1024) /* the most plaintext the pump holds per direction */
#define HR_TLS_WIRE	  (160 * 1024) /* records made, not yet sent (one chunk's worth) */
#define HR_TLS_LINGER_MS  10000	       /* flush after the caller's close, at most */
#define HR_TLS_FP_HEX_LEN 95	       /* "AB:CD:..." for 32 bytes, without the NUL */

struct hr_tls_config {
	const char *cert_file; /* PEM certificate (CA and pinned modes) */
	const char *key_file;  /* PEM private key for cert_file */
	const char *ca_file;   /* CA mode: PEM CA certificate(s) the peer must chain to */
	/* pinned mode: SHA-256 fingerprints of accepted peer certificates, comma
	 * or space separated, hex with or without colons (case ignored) */
	const char *peer_fingerprints;
	const char *psk_file;  /* PSK mode: 32..64 bytes as hex, mode 0600 or stricter */
	const char *node_name; /* PSK mode: our identity (required there) */
	int insecure;	       /* plain TCP; every other field ignored */
};

struct hr_tls_ctx;

/* One link, for the handshake and the logs. */
struct hr_tls_peer {
	const char *vm;		 /* VM the link is for, NULL when not known yet */
	const char *desc;	 /* peer address for logs ("10.0.0.2:7100"); NULL: getpeername */
	const char *expect_name; /* NULL: any authenticated peer; else its CN / PSK identity */
	int deadline_ms;	 /* whole handshake; <= 0 means 10 s */
	int quiet;		 /* log a link that works at debug level (one per request) */
};

/* Build a context from cfg (files are read now).  On failure err says why. */
int hr_tls_ctx_new(struct hr_tls_ctx **ctx_r, const struct hr_tls_config *cfg, char *err,
		   size_t errlen);
/* Drop the caller's reference; running pumps keep theirs. */
void hr_tls_ctx_free(struct hr_tls_ctx *ctx);
/* "CA", "pinned", "PSK" or "insecure". */
const char *hr_tls_ctx_mode(const struct hr_tls_ctx *ctx);
/* Plain TCP (--insecure)?  NULL counts as insecure. */
int hr_tls_ctx_insecure(const struct hr_tls_ctx *ctx);

/*
 * Handshake on the connected TCP socket fd (blocking or not), as client or
 * server, within p->deadline_ms.  fd is always consumed: on success the pump
 * owns it (or, insecure, *plain_fd_r == fd); on failure it is closed.  On
 * success *plain_fd_r is the caller's end and peer_name (if not NULL) gets
 * the peer's CN or PSK identity ("" when insecure).
 */
int hr_tls_client(struct hr_tls_ctx *ctx, int fd, const struct hr_tls_peer *p, int *plain_fd_r,
		  char *peer_name, size_t n);
int hr_tls_server(struct hr_tls_ctx *ctx, int fd, const struct hr_tls_peer *p, int *plain_fd_r,
		  char *peer_name, size_t n);

/* "ip:port" of fd's peer into buf (for hr_tls_peer.desc); returns buf. */
const char *hr_tls_peer_addr(int fd, char *buf, size_t n);

/*
 * Bytes that arrived for the caller's end plain_fd of a TLS link and that
 * its pump has not passed on yet (the TCP socket's receive queue and the
 * pump's chunk), or -ENOENT when plain_fd is no TLS link's.  A backup asks
 * before it calls its primary silent: a pump kept from running by a
 * starved host is not a silent primary.  Advisory: the figure may be
 * stale by the time it is used.
 */
long hr_tls_rx_queued(int plain_fd);

/* Pump threads alive in this process (tests: every link's thread ends). */
unsigned hr_tls_pumps_running(void);

#endif
