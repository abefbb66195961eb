/*
 * tls-event.h - the server side of a peer link on a libevent bufferevent
 * (the witness, src/daemon/witness-serve.c): the same TLS 1.3 context,
 * modes and checks as hr_tls_server (tls.h), without a thread per link.
 *
 * Use:
 *   hr_tls_ev_server()   wraps an accepted socket; the bufferevent runs the
 *                        handshake (insecure: plain TCP, ready at once);
 *   hr_tls_ev_event()    first thing in the bufferevent's event callback:
 *                        1 the peer just authenticated (its name is known,
 *                        the accept byte hr_tls_client waits for is queued),
 *                        0 not the handshake's business (handle it), or
 *                        < 0 the peer was refused (already logged with its
 *                        address and why: free the connection);
 *   hr_tls_ev_ready()    whether bytes read may be used (never before 1);
 *   hr_tls_ev_shutdown() our side is done: TLS close_notify, then FIN;
 *   hr_tls_ev_free()     after bufferevent_free().
 * Nothing the peer sends is handed to the read callback before the
 * handshake and the identity check succeeded.
 */
#ifndef HR_NET_TLS_EVENT_H
#define HR_NET_TLS_EVENT_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "net/tls.h"

struct hr_tls_ev;

/* fd is consumed (closed on failure).  desc names the peer in logs. */
int hr_tls_ev_server(struct hr_tls_ctx *ctx, struct event_base *base, int fd, const char *desc,
		     struct bufferevent **bev_r, struct hr_tls_ev **t_r);
/* See above; name (may be NULL) gets the peer's CN or PSK identity on 1. */
int hr_tls_ev_event(struct hr_tls_ev *t, struct bufferevent *bev, short what, char *name, size_t n);
int hr_tls_ev_ready(const struct hr_tls_ev *t);
void hr_tls_ev_shutdown(struct hr_tls_ev *t, struct bufferevent *bev);
void hr_tls_ev_free(struct hr_tls_ev *t);

#endif
