/*
 * witness-serve.c - `hareplicated --serve-witness`: answers witness
 * requests (ha/witness.h, docs/witness.md) on the --listen port.
 *
 * One request per TCP connection: the client sends one line (at most 512
 * bytes, LF-terminated or ended by its EOF), the witness answers and
 * closes.  A connection that has not sent its line within 2 s is closed;
 * a line too long, malformed or of another version gets an `error=` reply.
 * The link is TLS like every peer link (net/tls-event.h, the daemon's
 * --tls-* options; plain only with --insecure): nothing is read before the
 * client authenticated, and a request that changes the table must name the
 * node the client authenticated as.
 * The table lives in memory and in STATE-DIR/witness.table, saved (temp
 * file, fsync, rename, fsync of the directory) before any reply that
 * depends on a change: a granted lease survives a crash of the witness.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "ha/token.h"
#include "ha/witness.h"
#include "net/tls-event.h"

#define WIT_READ_TIMEOUT_S  2
#define WIT_WRITE_TIMEOUT_S 10
#define WIT_MAX_CONNS	    256
#define WIT_TABLE_FILE	    "witness.table"
#define WIT_TABLE_MAX	    (HR_WIT_MAX_RECORDS * HR_WIT_LINE_MAX + 64)

struct wit_conn {
	struct bufferevent *bev;
	struct hr_tls_ev *tls;
	char auth[HR_WIT_NAME_MAX + 1]; /* the node it authenticated as ("": none known) */
	char peer[NI_MAXHOST + NI_MAXSERV + 4];
	int closing; /* 1: reply queued; 2: reply sent, draining until EOF */
};

static struct {
	struct event_base *base;
	struct hr_wit_table table;
	char path[4096], tmp[4200], dir[4096];
	struct event *sweep;
	unsigned nr_conns;
} W;

static uint64_t now_ms(void)
{
	return hr_now_ns() / 1000000;
}

static int save_table(void)
{
	char *text;
	size_t len;
	int fd, dfd, rc;

	rc = hr_wit_table_dump(&W.table, &text, &len);
	if (rc < 0)
		return rc;
	fd = open(W.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = hr_write_all(fd, text, len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(W.tmp, W.path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(W.tmp);
		goto out;
	}
	dfd = open(W.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0)
			rc = -errno;
		close(dfd);
	}
out:
	free(text);
	return rc;
}

static int load_table(void)
{
	struct stat st;
	char *text;
	unsigned line = 0;
	int fd, rc;

	fd = open(W.path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		hr_wit_table_init(&W.table);
		return 0;
	}
	if (fstat(fd, &st) < 0 || st.st_size > WIT_TABLE_MAX) {
		rc = st.st_size > WIT_TABLE_MAX ? -EFBIG : -errno;
		close(fd);
		return rc;
	}
	text = malloc((size_t)st.st_size + 1);
	rc = text ? hr_read_all(fd, text, (uint64_t)st.st_size) : -ENOMEM;
	close(fd);
	if (!rc) {
		rc = hr_wit_table_load(&W.table, text, (size_t)st.st_size, now_ms(), &line);
		if (rc < 0)
			log_err(NULL, "witness: %s: line %u is not a witness table record", W.path,
				line);
	}
	free(text);
	return rc;
}

static void rearm(void)
{
	uint64_t next = hr_wit_table_next_expiry(&W.table), now = now_ms();
	struct timeval tv = {0, 0};

	if (next == UINT64_MAX) {
		evtimer_del(W.sweep);
		return;
	}
	if (next > now) {
		tv.tv_sec = (time_t)((next - now) / 1000);
		tv.tv_usec = (suseconds_t)((next - now) % 1000 * 1000);
	}
	tv.tv_usec += 1000; /* expiry is "now >= expiry_ms": wake just after it */
	evtimer_add(W.sweep, &tv);
}

static void log_expired(void *arg, const struct hr_wit_rec *r)
{
	hr_token_log(r->vm, HR_TOK_LEASE_EXPIRED, "%s's lease ended (owner %s, term %llu)",
		     r->holder, r->owner, (unsigned long long)r->term);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	if (hr_wit_table_expire(&W.table, now_ms(), log_expired, NULL)) {
		int rc = save_table();
		if (rc < 0)
			log_err(NULL, "witness: cannot save %s: %s", W.path, hr_strerror(rc));
	}
	rearm();
}

/* Log what one request did; before is the table as it was. */
static void log_events(const struct hr_wit_req *req, const struct hr_wit_reply *rep,
		       const struct hr_wit_rec *before, unsigned ev)
{
	const char *op = hr_wit_op_name(req->op);
	unsigned long long term = (unsigned long long)rep->term;

	if (ev & HR_WIT_EV_DENIED) {
		if (req->peer[0])
			hr_token_log(req->vm, HR_TOK_LEASE_DENIED, "%s by %s (%s %s): %s", op,
				     req->node, req->op == HR_WIT_CLAIM ? "backup of" : "backup",
				     req->peer, rep->why);
		else
			hr_token_log(req->vm, HR_TOK_LEASE_DENIED, "%s by %s: %s", op, req->node,
				     rep->why);
		return;
	}
	if (ev & HR_WIT_EV_EXPIRED && before)
		hr_token_log(req->vm, HR_TOK_LEASE_EXPIRED,
			     "%s's lease ended (owner %s, term %llu)", before->holder,
			     before->owner, (unsigned long long)before->term);
	if (ev & HR_WIT_EV_CREATED)
		log_info(req->vm, "new record (%s by %s): owner %s, backup %s, term %llu", op,
			 req->node, rep->owner, rep->backup[0] ? rep->backup : "none", term);
	if (ev & HR_WIT_EV_OWNER && before)
		hr_token_log(req->vm, HR_TOK_OWNER_CHANGED,
			     "%s -> %s (backup %s promoted), term %llu", before->owner, rep->owner,
			     rep->owner, term);
	else if (ev & HR_WIT_EV_BACKUP && before)
		log_info(req->vm, "backup of %s: %s -> %s, term %llu", rep->owner,
			 before->backup[0] ? before->backup : "none",
			 rep->backup[0] ? rep->backup : "none", term);
	if (ev & HR_WIT_EV_LEASE_NEW)
		hr_token_log(req->vm, HR_TOK_LEASE_GRANTED, "%s for %llu ms (owner %s, term %llu)",
			     rep->holder, (unsigned long long)rep->lease_ms, rep->owner, term);
	if (ev & HR_WIT_EV_RENEWED)
		log_debug(req->vm, "lease of %s renewed for %llu ms", rep->holder,
			  (unsigned long long)rep->lease_ms);
	if (ev & HR_WIT_EV_DROPPED && before)
		log_info(req->vm, "lease of %s ended by %s (%s)", before->holder, op, req->node);
	if (ev & HR_WIT_EV_DELETED)
		log_info(req->vm, "forgotten: owner %s stopped the VM", req->node);
}

/* Decide one request; the reply line (no newline) goes to out. */
static void handle(struct wit_conn *c, const struct hr_wit_req *req, struct evbuffer *out)
{
	struct hr_wit_table before;
	struct hr_wit_reply rep;
	struct hr_wit_rec *rb;
	char line[HR_WIT_LINE_MAX];
	unsigned ev;
	int rc, len;

	if (req->op == HR_WIT_LIST) {
		uint64_t now = now_ms();
		evbuffer_add_printf(out, "hrw=1 nr=%u\n", W.table.nr);
		for (unsigned i = 0; i < W.table.nr; i++) {
			memset(&rep, 0, sizeof(rep));
			hr_wit_rec_reply(&W.table.recs[i], now, &rep);
			len = hr_wit_reply_format(&rep, line, sizeof(line));
			if (len > 0)
				evbuffer_add_printf(out, "%s\n", line);
		}
		return;
	}
	if (req->op != HR_WIT_QUERY &&
	    hr_transport_check_node(req->vm, c->peer, c->auth, req->node) < 0) {
		len = hr_wit_error_format("node is not the one this link authenticated as", line,
					  sizeof(line));
		goto reply;
	}
	if (hr_wit_table_copy(&before, &W.table) < 0) {
		len = hr_wit_error_format("witness out of memory", line, sizeof(line));
		goto reply;
	}
	rc = hr_wit_table_apply(&W.table, req, now_ms(), &rep, &ev);
	if (rc == -EINVAL) {
		hr_wit_table_free(&before);
		len = hr_wit_error_format(rep.why, line, sizeof(line));
		goto reply;
	}
	if (ev & HR_WIT_EV_PERSIST) {
		rc = save_table();
		if (rc < 0) {
			/* nothing may be granted that a restart would forget */
			log_err(req->vm, "witness: cannot save %s: %s; %s by %s refused", W.path,
				hr_strerror(rc), hr_wit_op_name(req->op), req->node);
			hr_wit_table_free(&W.table);
			W.table = before;
			len = hr_wit_error_format("witness cannot save its table", line,
						  sizeof(line));
			goto reply;
		}
	}
	rb = hr_wit_table_find(&before, req->vm);
	log_events(req, &rep, rb, ev);
	hr_wit_table_free(&before);
	len = hr_wit_reply_format(&rep, line, sizeof(line));
	if (ev & (HR_WIT_EV_LEASE_NEW | HR_WIT_EV_RENEWED | HR_WIT_EV_DROPPED | HR_WIT_EV_EXPIRED |
		  HR_WIT_EV_DELETED))
		rearm();
	log_debug(req->vm, "witness: %s from %s by %s: granted=%d", hr_wit_op_name(req->op),
		  c->peer, req->node[0] ? req->node : "-", rep.granted);
reply:
	if (len > 0)
		evbuffer_add_printf(out, "%s\n", line);
}

static void conn_free(struct wit_conn *c)
{
	bufferevent_free(c->bev);
	hr_tls_ev_free(c->tls);
	free(c);
	W.nr_conns--;
}

static void linger(struct wit_conn *c);

static void reply_and_close(struct wit_conn *c)
{
	struct timeval wr = {WIT_WRITE_TIMEOUT_S, 0};

	c->closing = 1;
	bufferevent_set_timeouts(c->bev, NULL, &wr);
	bufferevent_enable(c->bev, EV_WRITE);
	/* write_cb lingers once the output is flushed */
	if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
		linger(c);
}

static void dispatch(struct wit_conn *c, const char *line, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct hr_wit_req req;
	char err[160], buf[HR_WIT_LINE_MAX];
	int rc;

	rc = hr_wit_req_parse(line, len, &req, err, sizeof(err));
	if (rc < 0) {
		log_debug(NULL, "witness: bad request from %s: %s", c->peer, err);
		if (hr_wit_error_format(err, buf, sizeof(buf)) > 0)
			evbuffer_add_printf(out, "%s\n", buf);
	} else {
		handle(c, &req, out);
	}
	reply_and_close(c);
}

static void too_long(struct wit_conn *c)
{
	char buf[HR_WIT_LINE_MAX];
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
	log_debug(NULL, "witness: request line over %d bytes from %s refused", HR_WIT_LINE_MAX,
		  c->peer);
	if (hr_wit_error_format("request line too long (limit 512 bytes)", buf, sizeof(buf)) > 0)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\n", buf);
	reply_and_close(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct wit_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!hr_tls_ev_ready(c->tls))
		return; /* never: nothing is read before the handshake */
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) >= HR_WIT_LINE_MAX)
			too_long(c);
		return;
	}
	if (len >= HR_WIT_LINE_MAX)
		too_long(c);
	else
		dispatch(c, line, len);
	free(line);
}

/*
 * The reply is out: end our side and read (and drop) whatever the client
 * still sends until its EOF or WIT_READ_TIMEOUT_S.  Closing with unread
 * input would reset the connection and could destroy the reply before the
 * client reads it (a client that sent an over-long line, say).
 */
static void linger(struct wit_conn *c)
{
	struct timeval tmo = {WIT_READ_TIMEOUT_S, 0};

	c->closing = 2;
	hr_tls_ev_shutdown(c->tls, c->bev);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_set_timeouts(c->bev, &tmo, NULL);
	bufferevent_enable(c->bev, EV_READ);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct wit_conn *c = arg;
	if (c->closing == 1 && !evbuffer_get_length(bufferevent_get_output(bev)))
		linger(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct wit_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int rc = hr_tls_ev_event(c->tls, bev, what, c->auth, sizeof(c->auth));

	if (rc < 0) {
		conn_free(c); /* refused (logged) */
		return;
	}
	if (rc > 0) {
		if (evbuffer_get_length(in))
			read_cb(bev, c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !(what & BEV_EVENT_ERROR) &&
	    !c->closing) {
		/* the client half-closed: a last line without LF is still a request */
		size_t len = evbuffer_get_length(in);
		char buf[HR_WIT_LINE_MAX];
		if (len >= HR_WIT_LINE_MAX) {
			too_long(c);
			return;
		}
		if (len) {
			evbuffer_remove(in, buf, len);
			dispatch(c, buf, len);
			return;
		}
	}
	if (c->closing == 1 && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
		bufferevent_disable(bev, EV_READ);
		return; /* the client's EOF: the reply still goes out */
	}
	if ((what & BEV_EVENT_TIMEOUT) && !c->closing)
		log_debug(NULL, "witness: %s sent no request within %d s", c->peer,
			  WIT_READ_TIMEOUT_S);
	conn_free(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct timeval tmo = {WIT_READ_TIMEOUT_S, 0};
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
	struct wit_conn *c;

	if (W.nr_conns >= WIT_MAX_CONNS) {
		static const char msg[] = "hrw=1 error=witness%20busy\n";
		if (hr_tls_ctx_insecure(hr_tls)) /* a TLS client would not read it */
			(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	getnameinfo(sa, (socklen_t)salen, host, sizeof(host), serv, sizeof(serv),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(c->peer, sizeof(c->peer), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
	if (hr_tls_ev_server(hr_tls, W.base, fd, c->peer, &c->bev, &c->tls) < 0) {
		log_warnx(NULL, "witness: cannot take the connection from %s: out of memory",
			  c->peer);
		free(c);
		return;
	}
	W.nr_conns++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev, &tmo, &tmo);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int hr_witness_load(const char *state_dir)
{
	int rc;

	snprintf(W.dir, sizeof(W.dir), "%s", state_dir);
	snprintf(W.path, sizeof(W.path), "%s/" WIT_TABLE_FILE, state_dir);
	snprintf(W.tmp, sizeof(W.tmp), "%s.tmp", W.path);
	rc = load_table();
	if (rc < 0) {
		log_err(NULL,
			"witness: cannot load %s: %s (refusing to start with a table it cannot "
			"trust)",
			W.path, hr_strerror(rc));
		return rc;
	}
	for (unsigned i = 0; i < W.table.nr; i++)
		if (W.table.recs[i].holder[0])
			log_info(W.table.recs[i].vm,
				 "witness restarted: %s's lease counts as held for %llu ms",
				 W.table.recs[i].holder,
				 (unsigned long long)W.table.recs[i].lease_ms);
	return 0;
}

int hr_witness_serve(struct event_base *base, int listen_fd)
{
	W.base = base;
	W.sweep = evtimer_new(base, sweep_cb, NULL);
	if (!W.sweep ||
	    !evconnlistener_new(base, accept_cb, NULL,
				LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, listen_fd))
		return -ENOMEM;
	rearm();
	return 0;
}

unsigned hr_witness_serve_nr_vms(void)
{
	return W.table.nr;
}
