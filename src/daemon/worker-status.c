/*
 * worker-status.c - the worker's status channel to its daemon: lines queue
 * here and go out as the socket takes them, so that a stopped or busy
 * daemon never blocks the engine thread (docs/design.md, "Threads and
 * locks").
 */
#include <string.h>
#include <sys/socket.h>

#include "daemon/worker-internal.h"

void hr_w_send_line(struct worker *w, struct hr_sbuf *sb, int may_drop)
{
	pthread_mutex_lock(&w->send_lock);
	hr_w_send_line_locked(w, sb, may_drop);
	pthread_mutex_unlock(&w->send_lock);
}

/* Write what the queue holds without blocking (send_lock held). */
static void flush_locked(struct worker *w)
{
	while (w->outq_off < w->outq.len) {
		ssize_t n = send(w->a->status_fd, w->outq.p + w->outq_off,
				 w->outq.len - w->outq_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break; /* full (the liveness thread flushes later) or gone */
		w->outq_off += (size_t)n;
	}
	if (w->outq_off == w->outq.len)
		w->outq.len = w->outq_off = 0;
}

/*
 * Status lines never block the engine thread (a stopped or busy daemon):
 * they queue here and go out as the socket takes them.  Stats lines
 * (may_drop) are dropped while anything is queued; when state lines pile up
 * past STATUS_QUEUE_MAX, the unsent ones are dropped as stale - the newest
 * carries the state in force - and the line being written is finished.
 */
#define STATUS_QUEUE_MAX (256u << 10)

void hr_w_send_line_locked(struct worker *w, struct hr_sbuf *sb, int may_drop)
{
	hr_sbuf_add(sb, "\n", 1);
	if (sb->oom)
		return;
	flush_locked(w);
	if (may_drop && w->outq.len)
		return;
	if (w->outq.len + sb->len > STATUS_QUEUE_MAX) {
		/* keep the partly written line (the daemon reads lines) */
		char *nl = w->outq_off ? memchr(w->outq.p + w->outq_off - 1, '\n',
						w->outq.len - w->outq_off + 1)
				       : NULL;
		w->outq.len = nl ? (size_t)(nl - w->outq.p) + 1 : w->outq_off;
		w->status_dropped++;
	}
	hr_sbuf_add(&w->outq, sb->p, sb->len);
	flush_locked(w);
}

int hr_w_status_pending(struct worker *w)
{
	pthread_mutex_lock(&w->send_lock);
	int pending = w->outq.len > w->outq_off;
	pthread_mutex_unlock(&w->send_lock);
	return pending;
}

void hr_w_status_flush(struct worker *w)
{
	pthread_mutex_lock(&w->send_lock);
	flush_locked(w);
	pthread_mutex_unlock(&w->send_lock);
}
