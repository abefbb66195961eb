/*
 * peer.h - the engine's end of one replication connection: the socket, its
 * frame reader, and the engine's control pipe, waited on together so that
 * a stop, abort or promote request interrupts any wait.
 *
 * Liveness has a path of its own (docs/design.md, "Threads and locks"):
 * every frame goes out under the link's send lock, and a heartbeat thread
 * per link sends a HEARTBEAT whenever nothing went out for one period.  It
 * never waits behind page data (it only try-locks, and sends only when the
 * socket is writable: data in flight is proof of life already), so a long
 * checkpoint pause, a slow save or a blocking call on the engine thread
 * does not silence the link.  The engine thread stamps its progress
 * (hr_peer_progress); when it made none for max_pause_ms, the heartbeat
 * thread stops sending on purpose, so that a wedged host is still seen as
 * dead by its peer.  Reading and every decision stay on the engine thread.
 */
#ifndef HR_CORE_PEER_H
#define HR_CORE_PEER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/stall.h"
#include "core/stream.h"

struct hr_peer {
	const char *vm;
	int fd;	    /* -1 once closed */
	int ctl_fd; /* read end of the engine's control pipe */
	struct hr_frame_reader rd;
	int handshake_ms; /* how long the handshake may wait (0: HR_HANDSHAKE_MS) */

	/* liveness (the heartbeat thread; atomics where both threads look) */
	uint64_t heartbeat_ms; /* period; 0 = no heartbeats */
	uint64_t max_pause_ms; /* engine progress older than this: wedged (0 = never) */
	uint64_t last_rx_ns;   /* CLOCK_MONOTONIC of the last byte received */
	uint64_t last_tx_ns;   /* ... of the last frame sent, by either thread */
	uint64_t progress_ns;  /* ... of the engine thread's last sign of progress */
	uint64_t hb_seq;       /* heartbeats sent */
	uint64_t hb_withheld;  /* periods the heartbeat was withheld: engine wedged */
	struct hr_stall stall; /* the heartbeat thread's: wedged or starved (stall.h) */
	unsigned starved_told; /* "starved, not wedged" logged */
	/* the send lock's holder, for the heartbeat thread: one that holds it
	 * while the socket has room is starved, not waiting, and gets the
	 * heartbeat's priority until it lets go (priority inheritance) */
	int tx_tid;		   /* gettid() of the holder, 0: free */
	uint64_t tx_since_ns;	   /* when it took the lock */
	int tx_boosted;		   /* the holder runs at the heartbeat's nice */
	int tx_nice;		   /* ... and goes back to this one on unlock */
	unsigned boost_told;	   /* logged once */
	pthread_mutex_t send_lock; /* held for one whole frame */
	pthread_t hb_thread;
	int hb_running;
	int hb_stop_fd; /* eventfd: the heartbeat thread ends */
};

/* Take fd (non-blocking, TCP_NODELAY set here). */
void hr_peer_init(struct hr_peer *p, const char *vm, int fd, int ctl_fd);
/* Stops the heartbeat thread if it runs; does not close fd. */
void hr_peer_fini(struct hr_peer *p);
/* Stops the heartbeat thread if it runs, then closes fd. */
void hr_peer_close(struct hr_peer *p);

/*
 * Start the heartbeat thread (heartbeat_ms and max_pause_ms set first; a
 * no-op without heartbeats or a socket).  0 or -errno.  Stopped by
 * hr_peer_liveness_stop, hr_peer_close or hr_peer_fini.
 */
int hr_peer_liveness_start(struct hr_peer *p);
void hr_peer_liveness_stop(struct hr_peer *p);

/* The engine thread is making progress (cheap: one clock read). */
void hr_peer_progress(struct hr_peer *p);

/* Send one frame under the send lock (hr_stream_send's arguments and
 * result); the heartbeat thread learns that the link is not idle. */
int hr_peer_send(struct hr_peer *p, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
		 const struct iovec *data, int nr_iov);
/* Bracket a frame written by another module (sender, receiver) on p->fd. */
void hr_peer_tx_lock(struct hr_peer *p);
void hr_peer_tx_unlock(struct hr_peer *p);

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

/* Milliseconds since the peer last sent a byte. */
uint64_t hr_peer_silent_ms(const struct hr_peer *p);

/* Send an ERROR frame (best effort). */
void hr_peer_send_error(struct hr_peer *p, int code, const char *text);

#endif
