/*
 * witness-client.c - asking the witness (witness.h): one TCP connection per
 * request, non-blocking, every step bounded by one deadline (name
 * resolution included).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "common/kv.h"
#include "ha/witness.h"
#include "net/tls.h"

uint64_t hr_witness_lease_expiry_ns(uint64_t sent_ns, uint64_t lease_ms)
{
	uint64_t margin_ms = lease_ms / 10 > 50 ? lease_ms / 10 : 50;
	if (lease_ms <= margin_ms)
		return sent_ns;
	return sent_ns + (lease_ms - margin_ms) * 1000000ull;
}

/* "host", "host:port", "[v6]:port", "[v6]" -> host, port. */
static int split_addr(const char *addr, char *host, size_t host_size, char *port, size_t port_size)
{
	const char *colon, *h = addr;
	size_t hl;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || (rb[1] && rb[1] != ':'))
			return -EINVAL;
		h = addr + 1;
		hl = (size_t)(rb - h);
		colon = rb[1] ? rb + 1 : NULL;
	} else {
		colon = strchr(addr, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL; /* a bare v6 address needs brackets */
		hl = colon ? (size_t)(colon - addr) : strlen(addr);
	}
	if (!hl || hl >= host_size)
		return -EINVAL;
	snprintf(host, host_size, "%.*s", (int)hl, h);
	snprintf(port, port_size, "%s", colon ? colon + 1 : HR_WIT_DEFAULT_PORT);
	if (hr_parse_count(port, 1, 65535, &(uint64_t){0}) < 0)
		return -EINVAL;
	return 0;
}

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = hr_now_ns();
	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* Wait for events on fd until the deadline: 0, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int ms = ms_left(deadline_ns);
		if (!ms)
			return -ETIMEDOUT;
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_one(int family, const struct sockaddr *sa, socklen_t len, uint64_t deadline_ns)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc, err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline_ns) : -errno;
		if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			rc = -errno;
		else if (!rc && err)
			rc = -err;
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	return fd;
}

/*
 * Names resolved within the request's deadline.  getaddrinfo() cannot be
 * cut short, so a host name is looked up with getaddrinfo_a() and waited
 * for until the deadline; a lookup that outlives it goes on, and a later
 * request takes its answer.  Answers are kept (a few names per process): a
 * request uses the last one for its name at once, and one older than
 * RESOLVE_REFRESH_MS is looked up again meanwhile.  A numeric address
 * needs no lookup.
 */
#define RESOLVE_MAX_ADDRS  4
#define RESOLVE_NAMES	   4
#define RESOLVE_REFRESH_MS 30000

struct resolved {
	int n;
	struct {
		int family;
		socklen_t len;
		struct sockaddr_storage sa;
	} a[RESOLVE_MAX_ADDRS];
};

struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	int refs; /* its name's, and each waiter's */
};

/* One name: its lookup under way, its last answer. */
static struct res_name {
	char host[256], port[8];
	struct lookup *pending; /* running, or done and not taken yet */
	struct resolved last;	/* n = 0: none yet */
	uint64_t last_ns;
} res_names[RESOLVE_NAMES];
static pthread_mutex_t res_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep(struct resolved *r, const struct addrinfo *res)
{
	r->n = 0;
	for (const struct addrinfo *ai = res; ai && r->n < RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(r->a[0].sa))
			continue;
		r->a[r->n].family = ai->ai_family;
		r->a[r->n].len = ai->ai_addrlen;
		memcpy(&r->a[r->n].sa, ai->ai_addr, ai->ai_addrlen);
		r->n++;
	}
}

/* Under res_lock. */
static void lookup_put(struct lookup *lk)
{
	if (!--lk->refs)
		free(lk);
}

/* Under res_lock: a finished lookup's answer becomes the name's. */
static void harvest(struct res_name *rn)
{
	struct lookup *lk = rn->pending;

	if (!lk || gai_error(&lk->cb) == EAI_INPROGRESS)
		return;
	if (!gai_error(&lk->cb) && lk->cb.ar_result) {
		keep(&rn->last, lk->cb.ar_result);
		rn->last_ns = hr_now_ns();
	}
	if (lk->cb.ar_result)
		freeaddrinfo(lk->cb.ar_result);
	lk->cb.ar_result = NULL;
	rn->pending = NULL;
	lookup_put(lk);
}

/* Under res_lock: host's entry; else a free one, else the oldest one
 * without a lookup under way (NULL: every one has). */
static struct res_name *res_name(const char *host, const char *port)
{
	struct res_name *pick = NULL;

	for (int i = 0; i < RESOLVE_NAMES; i++) {
		struct res_name *rn = &res_names[i];
		harvest(rn);
		if (!strcmp(rn->host, host) && !strcmp(rn->port, port))
			return rn;
		if (!rn->pending && (!pick || rn->last_ns < pick->last_ns))
			pick = rn;
	}
	if (pick) {
		snprintf(pick->host, sizeof(pick->host), "%s", host);
		snprintf(pick->port, sizeof(pick->port), "%s", port);
		pick->last.n = 0;
		pick->last_ns = 0;
	}
	return pick;
}

/* Under res_lock: look the name up unless that runs already. */
static void start_lookup(struct res_name *rn)
{
	struct lookup *lk;

	if (rn->pending || !(lk = calloc(1, sizeof(*lk))))
		return;
	lk->hints.ai_socktype = SOCK_STREAM;
	lk->cb.ar_name = rn->host; /* rn outlives the lookup: it waits for it */
	lk->cb.ar_service = rn->port;
	lk->cb.ar_request = &lk->hints;
	lk->refs = 1;
	struct gaicb *list[1] = {&lk->cb};
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) {
		free(lk);
		return;
	}
	rn->pending = lk;
}

static int resolve(const char *host, const char *port, uint64_t deadline_ns, struct resolved *r)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
			*res;
	struct res_name *rn;
	struct lookup *lk;
	int rc;

	if (!getaddrinfo(host, port, &hints, &res)) {
		keep(r, res);
		freeaddrinfo(res);
		return r->n ? 0 : -EHOSTUNREACH;
	}
	pthread_mutex_lock(&res_lock);
	if (!(rn = res_name(host, port))) {
		pthread_mutex_unlock(&res_lock);
		return -EHOSTUNREACH; /* lookups of other names all under way */
	}
	if (rn->last.n) {
		*r = rn->last;
		if (hr_now_ns() - rn->last_ns > RESOLVE_REFRESH_MS * 1000000ull)
			start_lookup(rn);
		pthread_mutex_unlock(&res_lock);
		return 0;
	}
	start_lookup(rn);
	if (!(lk = rn->pending)) {
		pthread_mutex_unlock(&res_lock);
		return -EHOSTUNREACH;
	}
	lk->refs++;
	pthread_mutex_unlock(&res_lock);
	const struct gaicb *list[1] = {&lk->cb};
	for (;;) {
		int ms = ms_left(deadline_ns);
		if (!ms)
			break;
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		if (gai_suspend(list, 1, &ts) != EAI_INTR)
			break; /* done, or the time is up */
	}
	pthread_mutex_lock(&res_lock);
	harvest(rn);
	if (rn->last.n && !strcmp(rn->host, host) && !strcmp(rn->port, port)) {
		*r = rn->last;
		rc = 0;
	} else {
		rc = gai_error(&lk->cb) == EAI_INPROGRESS ? -ETIMEDOUT : -EHOSTUNREACH;
	}
	lookup_put(lk);
	pthread_mutex_unlock(&res_lock);
	return rc;
}

static int connect_addr(const char *addr, uint64_t deadline_ns)
{
	char host[256], port[8];
	struct resolved r;
	int rc = split_addr(addr, host, sizeof(host), port, sizeof(port));

	if (rc < 0 || (rc = resolve(host, port, deadline_ns, &r)) < 0)
		return rc;
	rc = -EHOSTUNREACH;
	for (int i = 0; i < r.n; i++) {
		rc = connect_one(r.a[i].family, (const struct sockaddr *)&r.a[i].sa, r.a[i].len,
				 deadline_ns);
		if (rc >= 0 || rc == -ETIMEDOUT)
			break;
	}
	return rc;
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline_ns)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		int rc = wait_fd(fd, POLLOUT, deadline_ns);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Read one line into buf (NUL-terminated, no newline) from fd, keeping what
 * follows it in buf after the NUL: *have is the byte count in buf, *used
 * that of the line and its newline.  0, -ETIMEDOUT, -HR_EPROTO (too long
 * or EOF before a newline), -errno.
 */
static int read_line(int fd, char *buf, size_t size, size_t *have, size_t *used,
		     uint64_t deadline_ns)
{
	if (*used) {
		memmove(buf, buf + *used, *have - *used);
		*have -= *used;
		*used = 0;
	}
	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		if (nl) {
			*nl = '\0';
			*used = (size_t)(nl - buf) + 1;
			return 0;
		}
		if (*have >= size - 1)
			return -HR_EPROTO;
		ssize_t n = recv(fd, buf + *have, size - 1 - *have, 0);
		if (n > 0) {
			*have += (size_t)n;
			continue;
		}
		if (!n)
			return -HR_EPROTO;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int rc = wait_fd(fd, POLLIN, deadline_ns);
		if (rc < 0)
			return rc;
	}
}

/* TLS over the connected fd (consumed): the plaintext fd, non-blocking. */
static int secure(struct hr_tls_ctx *tls, int fd, const char *addr, const char *vm,
		  uint64_t deadline_ns)
{
	struct hr_tls_peer p = {.vm = vm, .desc = addr, .quiet = 1};
	int pfd, rc;

	if (hr_tls_ctx_insecure(tls))
		return fd;
	p.deadline_ms = ms_left(deadline_ns);
	if (!p.deadline_ms) {
		close(fd);
		return -ETIMEDOUT;
	}
	rc = hr_tls_client(tls, fd, &p, &pfd, NULL, 0);
	if (rc < 0)
		return rc;
	if (fcntl(pfd, F_SETFL, fcntl(pfd, F_GETFL) | O_NONBLOCK) < 0) {
		rc = -errno;
		close(pfd);
		return rc;
	}
	return pfd;
}

/* Connect, send req, and read the first reply line into buf. */
static int exchange(struct hr_tls_ctx *tls, const char *addr, const struct hr_wit_req *req,
		    char *buf, size_t size, size_t *have, size_t *used, uint64_t deadline_ns,
		    int *fd_r)
{
	char line[HR_WIT_LINE_MAX];
	int len = hr_wit_req_format(req, line, sizeof(line) - 1);
	int fd, rc;

	if (len < 0)
		return -EINVAL;
	line[len++] = '\n';
	fd = connect_addr(addr, deadline_ns);
	if (fd >= 0)
		fd = secure(tls, fd, addr, req->vm[0] ? req->vm : NULL, deadline_ns);
	if (fd < 0)
		return fd;
	rc = send_all(fd, line, (size_t)len, deadline_ns);
	if (!rc)
		rc = read_line(fd, buf, size, have, used, deadline_ns);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*fd_r = fd;
	return 0;
}

int hr_witness_ask(struct hr_tls_ctx *tls, const char *addr, const struct hr_wit_req *req,
		   struct hr_wit_reply *rep, int timeout_ms)
{
	uint64_t sent_ns = hr_now_ns();
	uint64_t deadline_ns = sent_ns + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	char buf[HR_WIT_LINE_MAX + 1];
	size_t have = 0, used = 0;
	int fd, rc;

	memset(rep, 0, sizeof(*rep));
	if (req->op == HR_WIT_LIST || !hr_wit_name_ok(req->vm) ||
	    (req->op != HR_WIT_QUERY && !hr_wit_name_ok(req->node)) ||
	    (req->peer[0] && !hr_wit_name_ok(req->peer))) {
		snprintf(rep->why, sizeof(rep->why), "bad request (op, vm, node or peer)");
		return -EINVAL;
	}
	rc = exchange(tls, addr, req, buf, sizeof(buf), &have, &used, deadline_ns, &fd);
	if (rc < 0)
		return rc;
	close(fd);
	rc = hr_wit_reply_parse(buf, used - 1, rep);
	if (rc == -HR_EVERSION)
		rc = -HR_EPROTO;
	rep->sent_ns = sent_ns;
	return rc;
}

int hr_witness_list(struct hr_tls_ctx *tls, const char *addr, int timeout_ms,
		    void (*cb)(void *arg, const struct hr_wit_reply *rep), void *arg)
{
	uint64_t deadline_ns =
	    hr_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	struct hr_wit_req req = {.op = HR_WIT_LIST};
	struct hr_wit_reply rep;
	struct hr_kvline l;
	char buf[HR_WIT_LINE_MAX + 1];
	size_t have = 0, used = 0;
	uint64_t nr;
	int fd, rc;

	rc = exchange(tls, addr, &req, buf, sizeof(buf), &have, &used, deadline_ns, &fd);
	if (rc < 0)
		return rc;
	/* `hrw=1 nr=N`, then N records */
	rc = hr_kv_parse(&l, buf, used - 1) < 0 ? -HR_EPROTO : 0;
	if (!rc) {
		const char *v = hr_kv_get(&l, "hrw");
		if (!v || strcmp(v, "1") || hr_kv_getu(&l, "nr", &nr) < 0 ||
		    nr > HR_WIT_MAX_RECORDS)
			rc = hr_kv_get(&l, "error") ? -EINVAL : -HR_EPROTO;
		hr_kv_free(&l);
	}
	for (uint64_t i = 0; !rc && i < nr; i++) {
		rc = read_line(fd, buf, sizeof(buf), &have, &used, deadline_ns);
		if (!rc)
			rc = hr_wit_reply_parse(buf, used - 1, &rep);
		if (!rc && !rep.vm[0])
			rc = -HR_EPROTO;
		if (!rc)
			cb(arg, &rep);
	}
	close(fd);
	return rc == -HR_EVERSION ? -HR_EPROTO : rc;
}
