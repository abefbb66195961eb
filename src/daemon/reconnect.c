/*
 * reconnect.c - a worker asks its peer daemon for a (new) backup of its VM:
 * the daemon-to-daemon preamble of daemon.h, from a worker, blocking and
 * bounded in time.  Used for re-protection: a primary whose backup was
 * lost, and a promoted backup looking for its old primary's host; and
 * (hr_peer_open) a new primary's first link, on the socket the daemon
 * connected.  TLS (src/net/tls.h) comes first, then the preamble.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "net/tls.h"

const char *hr_listen_port(void)
{
	const char *c = strrchr(hr_dopts.listen, ':');
	return c ? c + 1 : hr_dopts.listen;
}

int hr_addr_with_port(char *out, size_t size, const char *desc, const char *port)
{
	const char *c = strrchr(desc, ':');
	size_t host_len = c ? (size_t)(c - desc) : strlen(desc);
	int n = snprintf(out, size, "%.*s:%s", (int)host_len, desc, port);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* HOST[:PORT] or [V6]:PORT -> "host:port" with the default port. */
int hr_addr_norm(const char *to, char *out, size_t size, char *host, size_t hsz, char *port,
		 size_t psz)
{
	const char *colon;
	if (to[0] == '[') {
		const char *rb = strchr(to, ']');
		if (!rb || (rb[1] && rb[1] != ':'))
			return -EINVAL;
		snprintf(host, hsz, "%.*s", (int)(rb - to - 1), to + 1);
		colon = rb[1] ? rb + 1 : NULL;
	} else {
		colon = strchr(to, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL;
		snprintf(host, hsz, "%.*s", colon ? (int)(colon - to) : (int)strlen(to), to);
	}
	snprintf(port, psz, "%s", colon ? colon + 1 : HR_DEFAULT_PORT);
	if (!host[0] || hr_parse_count(port, 1, 65535, &(uint64_t){0}) < 0)
		return -EINVAL;
	snprintf(out, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	return 0;
}

/* Does host:port name this daemon's own replication port? */
int hr_addr_is_self(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *to = NULL, *me = NULL;
	char lhost[256], lport[16], laddr[300];
	int self = 0;

	if (hr_addr_norm(hr_dopts.listen, laddr, sizeof(laddr), lhost, sizeof(lhost), lport,
			 sizeof(lport)) < 0 ||
	    strcmp(port, lport))
		return 0;
	if (getaddrinfo(host, port, &hints, &to))
		return 0;
	int any = !strcmp(lhost, "0.0.0.0") || !strcmp(lhost, "::");
	if (!getaddrinfo(lhost, lport, &hints, &me)) {
		for (struct addrinfo *a = to; a && !self; a = a->ai_next)
			for (struct addrinfo *b = me; b && !self; b = b->ai_next)
				self = a->ai_addrlen == b->ai_addrlen &&
				       !memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen);
		freeaddrinfo(me);
	}
	if (any && !self) /* a wildcard listener: the loopback is us */
		for (struct addrinfo *a = to; a && !self; a = a->ai_next)
			self = (a->ai_family == AF_INET &&
				(ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >>
				 24) == 127);
	freeaddrinfo(to);
	return self;
}

/* "host:port" / "[v6]:port" -> host, port. */
static int split(const char *addr, char *host, size_t hsize, const char **port_r)
{
	const char *c = strrchr(addr, ':');
	if (!c || c == addr || !c[1])
		return -EINVAL;
	const char *h = addr;
	size_t len = (size_t)(c - addr);
	if (h[0] == '[' && len >= 2 && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len >= hsize)
		return -ENAMETOOLONG;
	memcpy(host, h, len);
	host[len] = '\0';
	*port_r = c + 1;
	return 0;
}

static int connect_bounded(const char *addr, int timeout_ms, int *fd_r)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char host[256];
	const char *port;
	int rc, fd;

	if ((rc = split(addr, host, sizeof(host), &port)) < 0)
		return rc;
	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return -errno;
	}
	rc = connect(fd, res->ai_addr, res->ai_addrlen) < 0 ? -errno : 0;
	freeaddrinfo(res);
	if (rc == -EINPROGRESS) {
		struct pollfd p = {fd, POLLOUT, 0};
		int err = 0;
		socklen_t len = sizeof(err);
		if (poll(&p, 1, timeout_ms) <= 0)
			rc = -ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
			rc = -(err ? err : errno);
		else
			rc = 0;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*fd_r = fd;
	return 0;
}

/* One line within the deadline, nothing after it consumed. */
static int read_line_until(int fd, char *buf, size_t size, uint64_t deadline_ns)
{
	size_t n = 0;
	while (n + 1 < size) {
		uint64_t now = hr_now_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)((deadline_ns - now) / 1000000) + 1) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return 0;
		}
		n++;
	}
	return -HR_EPROTO;
}

/* hr_peer_open; a migration's preamble also names the VM's backup host
 * (backup, backup_node: NULL when none), for the destination's
 * re-protection after the hand-off. */
static int peer_open(int tcp_fd, const char *desc, const char *vm, int speaking, int timeout_ms,
		     const char *backup, const char *backup_node, int *fd_r, char *peer_node,
		     size_t peer_node_size, char *err, size_t errlen)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct hr_tls_peer tp = {.vm = vm, .desc = desc, .deadline_ms = HR_TLS_DEADLINE_MS};
	char auth[HR_VM_NAME_MAX + 1] = "", line[HR_PREAMBLE_MAX];
	struct hr_sbuf sb = {0};
	struct hr_kvline kv;
	int fd = -1, rc;

	err[0] = '\0';
	if (tp.deadline_ms > timeout_ms)
		tp.deadline_ms = timeout_ms;
	/* TLS first: nothing of ours is sent, nothing of theirs read before it */
	rc = hr_tls_client(hr_tls, tcp_fd, &tp, &fd, auth, sizeof(auth));
	if (rc < 0) {
		snprintf(err, errlen, "no authenticated link to peer %s: %s (its log says more)",
			 desc, hr_strerror(rc));
		return rc;
	}
	hr_kv_add(&sb, "hrd", "1");
	hr_kv_add(&sb, "vm", vm);
	hr_kv_add(&sb, "port", hr_listen_port()); /* where the peer finds us again */
	hr_kv_add(&sb, "speaking", speaking ? "1" : "0");
	if (hr_dopts.node)
		hr_kv_add(&sb, "node", hr_dopts.node);
	if (backup && backup[0])
		hr_kv_add(&sb, "backup", backup);
	if (backup_node && backup_node[0])
		hr_kv_add(&sb, "backup_node", backup_node);
	hr_sbuf_add(&sb, "\n", 1);
	rc = sb.oom ? -ENOMEM : hr_write_all(fd, sb.p, sb.len);
	hr_sbuf_free(&sb);
	if (rc < 0) {
		snprintf(err, errlen, "peer %s: sending the preamble failed: %s", desc,
			 hr_strerror(rc));
		goto out;
	}
	rc = read_line_until(fd, line, sizeof(line), deadline);
	if (rc < 0) {
		snprintf(err, errlen,
			 rc == -ETIMEDOUT
			     ? "peer %s did not answer the preamble in time (%s)"
			     : "peer %s closed the connection (%s); is it a hareplicated?",
			 desc, hr_strerror(rc));
		goto out;
	}
	if ((rc = hr_kv_parse(&kv, line, strlen(line))) < 0 || !hr_kv_get(&kv, "hrd") ||
	    !hr_kv_get(&kv, "status")) {
		hr_kv_free(&kv);
		snprintf(err, errlen,
			 "peer %s answered with something that is not a hareplicated "
			 "preamble",
			 desc);
		rc = -HR_EPROTO;
		goto out;
	}
	const char *status = hr_kv_get(&kv, "status"), *code = hr_kv_get(&kv, "code");
	if (strcmp(status, "ok")) {
		rc = code && !strcmp(code, "runs") ? -HR_EPROMOTED : -EAGAIN;
		snprintf(err, errlen, "peer %s refused: %s", desc,
			 hr_kv_get(&kv, "error") ? hr_kv_get(&kv, "error") : "no reason given");
		hr_kv_free(&kv);
		goto out;
	}
	const char *pn = hr_kv_get(&kv, "node");
	snprintf(peer_node, peer_node_size, "%s", pn && hr_vm_name_ok(pn) ? pn : "");
	hr_kv_free(&kv);
	if (hr_transport_check_node(vm, desc, auth, peer_node) < 0) {
		snprintf(err, errlen, "peer %s authenticated as '%s' but says it is node '%s'",
			 desc, auth, peer_node);
		rc = -HR_EAUTH;
		goto out;
	}
	*fd_r = fd;
	return 0;
out:
	close(fd);
	return rc;
}

int hr_peer_open(int tcp_fd, const char *desc, const char *vm, int speaking, int timeout_ms,
		 int *fd_r, char *peer_node, size_t peer_node_size, char *err, size_t errlen)
{
	return peer_open(tcp_fd, desc, vm, speaking, timeout_ms, NULL, NULL, fd_r, peer_node,
			 peer_node_size, err, errlen);
}

int hr_reconnect_peer(const char *addr, const char *vm, int speaking, int timeout_ms, int *fd_r,
		      char *peer_node, size_t peer_node_size)
{
	char err[512];
	int fd = -1, rc;

	if ((rc = connect_bounded(addr, timeout_ms / 2, &fd)) < 0)
		return rc;
	rc = hr_peer_open(fd, addr, vm, speaking, timeout_ms, fd_r, peer_node, peer_node_size, err,
			  sizeof(err));
	if (rc < 0)
		log_debug(vm, "re-protection: %s", err);
	return rc;
}

int hr_migrate_peer(const char *addr, const char *vm, const char *backup, const char *backup_node,
		    int timeout_ms, int *fd_r, char *peer_node, size_t peer_node_size, char *err,
		    size_t errlen)
{
	int fd = -1, rc;

	if ((rc = connect_bounded(addr, timeout_ms / 2, &fd)) < 0) {
		snprintf(err, errlen, "cannot reach %s: %s (is hareplicated running there?)", addr,
			 hr_strerror(rc));
		return rc;
	}
	return peer_open(fd, addr, vm, 0, timeout_ms, backup, backup_node, fd_r, peer_node,
			 peer_node_size, err, errlen);
}
