/*
 * control.c - the control socket of hareplicated.
 *
 * Control protocol, version 1.  A Unix stream socket (mode 0600 in a 0700
 * directory); a client connects, sends ONE request line and reads the reply;
 * the daemon closes the connection after the reply.  The peer's SO_PEERCRED
 * uid must be 0 (or the daemon's own uid, for unprivileged test daemons).
 *
 * Request: one line (LF-terminated, or ended by the client's EOF), at most
 * 64 KiB, of space-separated key=value pairs in the kv.h encoding (bytes
 * outside '!'..'~' and '%', '=', ' ' are %XX).  `v=1` and `cmd=` are
 * required; unknown keys are ignored, unknown commands are an error.
 *
 *   v=1 cmd=ping
 *   v=1 cmd=status [vm=NAME] [json=1]
 *   v=1 cmd=start vm=NAME peer=HOST[:PORT] kernel=/ABS/PATH [backend=kvm]
 *       [memory_bytes=N] [vcpus=N] [epoch_us=N] [min_epoch_us=N] [append=CMDLINE]
 *       [console=SPEC] [net=SPEC]
 *   v=1 cmd=stop vm=NAME
 *   v=1 cmd=failover vm=NAME
 *   v=1 cmd=promote vm=NAME | cmd=demote vm=NAME [drop=1]   (vm-cluster.c)
 *   v=1 cmd=migrate vm=NAME to=HOST[:PORT] [max_bandwidth=BYTES_PER_S]
 *       [test_hold_ms=N]   (tests: wait N ms before the hand-off)
 *   v=1 cmd=migrate vm=NAME cancel=1 | extend_live=1 | end_live=1
 *
 * Reply: zero or more lines of body (text for people, or with json=1 one
 * JSON document), then exactly one final line: `ok` or `error: MESSAGE`.
 * `start` answers once the worker built the VM and the backup took the
 * handshake (or with the reason it did not); `stop` once the worker has
 * exited; `failover` once the engine reports the promotion (or with an
 * error after 10 s); `migrate` sends a `progress=1 ...` body line every
 * second while it waits, then a `report=1 ...` line and `ok` (the VM runs
 * on the destination) or `error:` (it runs on here).  A migrate whose
 * connection goes away is cancelled.
 *
 * A connection that sends no complete request within 5 s is closed; when
 * 128 are open, the oldest one still silent makes room for a new one (so
 * idle connections cannot lock the operator out).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "common/kv.h"

#define CTL_IDLE_TIMEOUT_S 5
#define CTL_MAX_CONNS	   128

struct hr_ctl_conn {
	struct hr_ctl_conn *prev, *next; /* all connections, oldest first */
	struct bufferevent *bev;
	struct hr_dvm *vm; /* a VM request waiting on, if any */
	int busy;	   /* a request was dispatched */
	int closing;	   /* reply queued: free once written */
};

static unsigned nr_conns;
static struct hr_ctl_conn *conns_head, *conns_tail;

static void conn_free(struct hr_ctl_conn *cc)
{
	if (cc->vm)
		hr_vms_ctl_gone(cc->vm);
	if (cc->prev)
		cc->prev->next = cc->next;
	else
		conns_head = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	else
		conns_tail = cc->prev;
	bufferevent_free(cc->bev);
	free(cc);
	nr_conns--;
}

/* Close the oldest connection that has not sent a request; 0 if there is none. */
static int evict_silent(void)
{
	for (struct hr_ctl_conn *cc = conns_head; cc; cc = cc->next)
		if (!cc->busy && !cc->closing) {
			conn_free(cc);
			return 1;
		}
	return 0;
}

void hr_ctl_set_vm(struct hr_ctl_conn *cc, struct hr_dvm *vm)
{
	cc->vm = vm;
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct hr_ctl_conn *cc = arg;
	if (cc->closing && !evbuffer_get_length(bufferevent_get_output(bev)))
		conn_free(cc);
}

void hr_ctl_progress(struct hr_ctl_conn *cc, const char *line)
{
	struct evbuffer *out = bufferevent_get_output(cc->bev);
	evbuffer_add(out, line, strlen(line));
	evbuffer_add(out, "\n", 1);
}

void hr_ctl_reply(struct hr_ctl_conn *cc, const char *body, const char *err)
{
	struct evbuffer *out = bufferevent_get_output(cc->bev);

	if (body && *body) {
		evbuffer_add(out, body, strlen(body));
		if (body[strlen(body) - 1] != '\n')
			evbuffer_add(out, "\n", 1);
	}
	if (err) {
		/* one line: no newline may hide in the message */
		evbuffer_add(out, "error: ", 7);
		for (const char *p = err; *p; p++)
			evbuffer_add(out, *p == '\n' ? " " : p, 1);
		evbuffer_add(out, "\n", 1);
	} else {
		evbuffer_add(out, "ok\n", 3);
	}
	cc->closing = 1;
	cc->vm = NULL;
	bufferevent_disable(cc->bev, EV_READ);
	bufferevent_set_timeouts(cc->bev, NULL, NULL);
	bufferevent_enable(cc->bev, EV_WRITE);
}

static void dispatch(struct hr_ctl_conn *cc, const char *line, size_t len)
{
	struct hr_kvline req;
	const char *cmd, *v;
	char msg[160];
	int rc;

	cc->busy = 1;
	bufferevent_set_timeouts(cc->bev, NULL, NULL);
	rc = hr_kv_parse(&req, line, len);
	if (rc < 0) {
		hr_ctl_reply(cc, NULL,
			     rc == -E2BIG
				 ? "request too large"
				 : "malformed request (expected key=value pairs, %XX escapes)");
		return;
	}
	v = hr_kv_get(&req, "v");
	cmd = hr_kv_get(&req, "cmd");
	if (!v || strcmp(v, "1")) {
		hr_ctl_reply(cc, NULL,
			     "unsupported protocol version (this hareplicated speaks v=1)");
	} else if (!cmd) {
		hr_ctl_reply(cc, NULL, "missing cmd=");
	} else if (!strcmp(cmd, "ping")) {
		hr_ctl_reply(cc, "hareplicated " PACKAGE_VERSION "\n", NULL);
	} else if (!strcmp(cmd, "status")) {
		const char *json = hr_kv_get(&req, "json");
		hr_vms_cmd_status(cc, hr_kv_get(&req, "vm"), json && strcmp(json, "0"));
	} else if (!strcmp(cmd, "start")) {
		hr_vms_cmd_start(cc, &req);
	} else if (!strcmp(cmd, "stop")) {
		hr_vms_cmd_stop(cc, hr_kv_get(&req, "vm"));
	} else if (!strcmp(cmd, "failover")) {
		hr_vms_cmd_failover(cc, hr_kv_get(&req, "vm"));
	} else if (!strcmp(cmd, "promote")) {
		hr_vms_cmd_promote(cc, hr_kv_get(&req, "vm"));
	} else if (!strcmp(cmd, "demote")) {
		const char *drop = hr_kv_get(&req, "drop");
		hr_vms_cmd_demote(cc, hr_kv_get(&req, "vm"), drop && !strcmp(drop, "1"));
	} else if (!strcmp(cmd, "migrate")) {
		hr_vms_cmd_migrate(cc, &req);
	} else {
		snprintf(msg, sizeof(msg),
			 "unknown command '%.64s' (ping, status, start, stop, failover, promote, "
			 "demote, migrate)",
			 cmd);
		log_info(NULL, "control: unknown command '%.64s'", cmd);
		hr_ctl_reply(cc, NULL, msg);
	}
	hr_kv_free(&req);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct hr_ctl_conn *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	if (cc->busy || cc->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) > HR_KV_MAX_LINE) {
			log_info(NULL, "control: request line over %u bytes refused",
				 HR_KV_MAX_LINE);
			evbuffer_drain(in, evbuffer_get_length(in));
			cc->busy = 1;
			hr_ctl_reply(cc, NULL, "request line too long (limit 65536 bytes)");
		}
		return;
	}
	if (len > HR_KV_MAX_LINE) {
		free(line);
		cc->busy = 1;
		hr_ctl_reply(cc, NULL, "request line too long (limit 65536 bytes)");
		return;
	}
	dispatch(cc, line, len);
	free(line);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hr_ctl_conn *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !(what & BEV_EVENT_ERROR)) {
		/* Client half-closed: a last line without LF is still a request. */
		if (!cc->busy && !cc->closing && evbuffer_get_length(in)) {
			size_t len = evbuffer_get_length(in);
			if (len > HR_KV_MAX_LINE) {
				cc->busy = 1;
				hr_ctl_reply(cc, NULL, "request line too long (limit 65536 bytes)");
				return;
			}
			char *line = malloc(len);
			if (line) {
				evbuffer_remove(in, line, len);
				dispatch(cc, line, len);
				free(line);
				return;
			}
		}
		if (cc->busy || cc->closing) {
			bufferevent_disable(bev, EV_READ);
			return; /* the reply still goes out */
		}
	}
	conn_free(cc);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct event_base *base = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval idle = {CTL_IDLE_TIMEOUT_S, 0};
	struct hr_ctl_conn *cc;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		static const char msg[] = "error: permission denied (root only)\n";
		log_warnx(NULL, "control: connection from uid %d refused",
			  len ? (int)cred.uid : -1);
		(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	if (nr_conns >= CTL_MAX_CONNS && evict_silent())
		log_debug(NULL, "control: %d connections open; closed the oldest silent one",
			  CTL_MAX_CONNS);
	if (nr_conns >= CTL_MAX_CONNS) {
		static const char msg[] = "error: hareplicated busy: too many control requests "
					  "in progress\n";
		(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	cc = calloc(1, sizeof(*cc));
	if (!cc) {
		close(fd);
		return;
	}
	cc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!cc->bev) {
		close(fd);
		free(cc);
		return;
	}
	nr_conns++;
	cc->prev = conns_tail;
	if (conns_tail)
		conns_tail->next = cc;
	else
		conns_head = cc;
	conns_tail = cc;
	bufferevent_setcb(cc->bev, read_cb, write_cb, event_cb, cc);
	bufferevent_set_timeouts(cc->bev, &idle, &idle);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

int hr_ctl_listen(struct event_base *base, int fd)
{
	struct evconnlistener *l = evconnlistener_new(
	    base, accept_cb, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	return l ? 0 : -ENOMEM;
}
