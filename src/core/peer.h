/*
 * peer.h - the engine's end of one replication connection: the socket, its
 * frame reader, and the engine's control pipe, waited on together so that
 * a stop, abort or promote request interrupts any wait.
 */
#ifndef HR_CORE_PEER_H
#define HR_CORE_PEER_H

#include "core/stream.h"

struct hr_peer {
	const char *vm;
	int fd;	    /* -1 once closed */
	int ctl_fd; /* read end of the engine's control pipe */
	struct hr_frame_reader rd;
	/* liveness: heartbeats out on their own schedule, any byte in counts */
	uint64_t heartbeat_ms; /* 0 = none */
	uint64_t next_hb_ns;
	uint64_t hb_seq;
	uint64_t last_rx_ns; /* CLOCK_MONOTONIC of the last byte received */
	int handshake_ms;    /* how long the handshake may wait (0: HR_HANDSHAKE_MS) */
};

/* Take fd (non-blocking, TCP_NODELAY set here). */
void hr_peer_init(struct hr_peer *p, const char *vm, int fd, int ctl_fd);
void hr_peer_fini(struct hr_peer *p); /* does not close fd */
void hr_peer_close(struct hr_peer *p);

/* Wait for the socket or a control byte: the byte (> 0), 0 when the socket
 * is readable (or gone), -ETIMEDOUT.  timeout_ms -1 = forever. */
int hr_peer_wait(struct hr_peer *p, int timeout_ms);

/*
 * Receive one frame within timeout_ms.  0 with *f filled (release it);
 * -EINTR with *ctl_r set when a control byte came first; -ETIMEDOUT;
 * -ECONNRESET at EOF on a frame boundary; -HR_EPROTO (truncated or
 * malformed); -errno.
 */
int hr_peer_recv(struct hr_peer *p, struct hr_frame *f, int timeout_ms, int *ctl_r);

/* Read what the socket has without blocking: > 0 bytes, 0 EOF, -EAGAIN, -errno. */
ssize_t hr_peer_fill(struct hr_peer *p);

/* Send a HEARTBEAT if one is due (every heartbeat_ms) and the socket can
 * take it now: a heartbeat never waits behind queued page data - data in
 * flight is proof of life already.  Returns ms until the next one is due
 * (-1: heartbeats off). */
int hr_peer_heartbeat(struct hr_peer *p);

/* Milliseconds since the peer last sent a byte. */
uint64_t hr_peer_silent_ms(const struct hr_peer *p);

/* Send an ERROR frame (best effort). */
void hr_peer_send_error(struct hr_peer *p, int code, const char *text);

#endif
