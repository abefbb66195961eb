/*
 * worker.c - the child process that runs one VM's epoch engine.
 *
 * Lives from fork to _exit; never returns to the daemon's event loop.
 * SIGTERM/SIGINT ask the engine to stop, SIGUSR1 asks a backup to promote,
 * and the cluster's requests (daemon.h HR_SIG_*) release a lone primary's
 * output, demote (standby), resume a standby or drop this host's copy - all
 * through the engine's signal-safe requests.  Every engine event
 * becomes one kv.h status line to the daemon; the last line is
 * `event=exit rc=N error=TEXT`.  The daemon's requests come on the same
 * channel, one line each: `req=migrate to=HOST:PORT` and
 * `req=migrate-cancel`, `req=live-end` (vm-migrate.c); a migration's end
 * is an `event=migration` line.  The migration's part of all this is in
 * worker-migrate.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "daemon/worker-internal.h"
#include "ha/failover.h"
#include "ha/witness.h"
#include "net/tls.h"

struct hr_engine *volatile hr_w_eng;
volatile sig_atomic_t hr_w_stop;
static volatile sig_atomic_t g_promote, g_release, g_demote;

/* STATE-DIR/VM.epochs, appended; never through a symbolic link. */
static void epochs_open(struct worker *w)
{
	struct stat st;

	w->epochs_fd =
	    open(w->epochs_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w->epochs_fd < 0) {
		log_warnx(w->a->name, "cannot write per-epoch stats to %s: %s%s", w->epochs_path,
			  strerror(errno),
			  errno == ELOOP ? " (a symbolic link: not written through)" : "");
		return;
	}
	w->epochs_bytes = fstat(w->epochs_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The log is bounded: the full file becomes VM.epochs.1 (the one before
 * goes) and a new one starts. */
static void epochs_rotate(struct worker *w)
{
	char old[4200];

	snprintf(old, sizeof(old), "%s.1", w->epochs_path);
	close(w->epochs_fd);
	w->epochs_fd = -1;
	if (rename(w->epochs_path, old) < 0)
		log_warnx(w->a->name, "cannot rotate %s: %s", w->epochs_path, strerror(errno));
	epochs_open(w);
}

static void on_signal(int sig)
{
	struct hr_engine *eng = hr_w_eng;

	if (sig == HR_SIG_CLUSTER_RELEASE) {
		g_release = 1;
		if (eng)
			hr_engine_cluster_release(eng);
		return;
	}
	if (sig == HR_SIG_DEMOTE || sig == HR_SIG_RESUME) {
		g_demote = sig == HR_SIG_DEMOTE; /* a resume before the engine: nothing paused */
		if (eng && sig == HR_SIG_DEMOTE)
			hr_engine_demote(eng);
		else if (eng)
			hr_engine_resume(eng);
		return;
	}
	if (sig == HR_SIG_DROP) {
		hr_w_stop = 1;
		if (eng)
			hr_engine_abort(eng); /* as a crash: nothing unacknowledged leaves */
		else
			_exit(0);
		return;
	}
	if (sig == SIGUSR1) {
		g_promote = 1;
		if (eng)
			hr_engine_promote(eng);
		return;
	}
	hr_w_stop = 1;
	if (eng)
		hr_engine_stop(eng);
	else
		_exit(0); /* nothing built yet */
}

static void on_epoch(void *opaque, const struct hr_epoch_stats *st)
{
	struct worker *w = opaque;
	struct hr_sbuf sb = {0};
	char line[256];

	w->nr_epochs++;
	w->last = *st;
	hr_kv_add(&sb, "event", "epoch");
	hr_kv_addu(&sb, "nr_epochs", w->nr_epochs);
#define HR_X_ADD(f) hr_kv_addu(&sb, #f, st->f);
	HR_EPOCH_STATS_FIELDS(HR_X_ADD)
#undef HR_X_ADD
	hr_w_send_line(w, &sb, 1);
	hr_sbuf_free(&sb);
	int n = hr_epoch_stats_format(st, line, sizeof(line) - 1);
	if (w->epochs_fd >= 0 && n > 0 && n < (int)sizeof(line) - 1) {
		line[n++] = '\n';
		if (w->epochs_bytes + (uint64_t)n > hr_dopts.epochs_log_max)
			epochs_rotate(w);
		if (w->epochs_fd >= 0 && write(w->epochs_fd, line, (size_t)n) > 0)
			w->epochs_bytes += (uint64_t)n; /* O_APPEND: one write, one line */
	}
}

static void on_state(void *opaque, enum hr_role_state from, enum hr_role_state to,
		     enum hr_role_event ev)
{
	struct worker *w = opaque;
	struct hr_sbuf sb = {0};

	if (ev == HR_RE_MIGRATED && w->a->side == HR_SIDE_BACKUP) {
		/* a migration's destination runs the VM: its re-protection goes to
		 * the VM's backup host now (the engine's next reconnect) */
		pthread_mutex_lock(&w->send_lock);
		memcpy(w->a->reconnect_addr, w->a->migrated_backup, sizeof(w->a->reconnect_addr));
		memcpy(w->a->peer_node, w->a->migrated_backup_node, sizeof(w->a->peer_node));
		pthread_mutex_unlock(&w->send_lock);
		if (w->a->reconnect_addr[0])
			log_info(w->a->name, "after the hand-off: backup wanted from %s",
				 w->a->reconnect_addr);
	}
	/* side and held as the role machine has them (a promoted backup is a
	 * primary from its re-protection, migration or demotion on; held: see
	 * hr_role_is_held); reported here, and kept for the adopt line */
	const struct hr_role *r = hr_w_eng ? hr_engine_role(hr_w_eng) : NULL;
	if (r) {
		w->a->side = r->side;
		w->held = hr_role_is_held(r);
	}
	hr_kv_add(&sb, "event", "state");
	hr_kv_add(&sb, "state", hr_role_state_name(to));
	hr_kv_add(&sb, "from", hr_role_state_name(from));
	const char *tok = hr_role_event_token(ev);
	hr_kv_add(&sb, "token", tok ? tok : hr_role_state_token(to));
	hr_kv_add(&sb, "side", w->a->side == HR_SIDE_BACKUP ? "backup" : "primary");
	hr_kv_addu(&sb, "held", (uint64_t)w->held);
	if (w->a->side == HR_SIDE_PRIMARY && w->a->reconnect_addr[0])
		hr_kv_add(&sb, "peer", w->a->reconnect_addr); /* the backup host, for status */
	w->state = to;
	snprintf(w->token, sizeof(w->token), "%s", tok ? tok : hr_role_state_token(to));
	hr_w_send_line(w, &sb, 0);
	hr_sbuf_free(&sb);
}

/* A daemon connected to our adopt socket: it gets who we are and where we
 * stand, and from now on every status line. */
static void handover(struct worker *w, int fd)
{
	struct hr_worker_args *a = w->a;
	struct hr_sbuf sb = {0};

	hr_kv_add(&sb, "event", "adopt");
	hr_kv_add(&sb, "vm", a->name);
	hr_kv_add(&sb, "side", a->side == HR_SIDE_BACKUP ? "backup" : "primary");
	hr_kv_addu(&sb, "pid", (uint64_t)getpid());
	hr_kv_add(&sb, "peer", a->peer_desc ? a->peer_desc : "");
	hr_kv_add(&sb, "state", hr_role_state_name(w->state));
	hr_kv_add(&sb, "token", w->token[0] ? w->token : hr_role_state_token(w->state));
	hr_kv_addu(&sb, "held", (uint64_t)w->held);
	hr_kv_addu(&sb, "nr_epochs", w->nr_epochs);
	if (w->nr_epochs) {
#define HR_X_ADD(f) hr_kv_addu(&sb, #f, w->last.f);
		HR_EPOCH_STATS_FIELDS(HR_X_ADD)
#undef HR_X_ADD
	}
	if (a->side == HR_SIDE_PRIMARY) {
		hr_kv_addu(&sb, "epoch_us", a->epoch_us);
		hr_kv_addu(&sb, "min_epoch_us", a->min_epoch_us);
		hr_kv_addu(&sb, "memory_bytes", a->vm.mem_bytes);
		hr_kv_addu(&sb, "vcpus", a->vm.nr_vcpus);
	}
	pthread_mutex_lock(&w->send_lock);
	int old = a->status_fd;
	a->status_fd = fd;
	w->outq.len = w->outq_off = 0; /* the new daemon starts from this line */
	w->status_eof = 0;
	w->req_len = 0;
	hr_w_send_line_locked(w, &sb, 0);
	pthread_mutex_unlock(&w->send_lock);
	hr_sbuf_free(&sb);
	close(old);
	log_info(a->name, "adopted by a new hareplicated (worker %d keeps running the VM)",
		 (int)getpid());
}

/* One request line from the daemon (see the top of this file). */
static void daemon_request(struct worker *w, char *line)
{
	struct hr_kvline kv;
	struct hr_engine *eng = hr_w_eng;

	if (hr_kv_parse(&kv, line, strlen(line)) < 0)
		return;
	if (eng)
		hr_w_migrate_request(w, eng, &kv);
	hr_kv_free(&kv);
}

static void daemon_requests(struct worker *w)
{
	ssize_t n = read(w->a->status_fd, w->req + w->req_len, sizeof(w->req) - 1 - w->req_len);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			w->status_eof = 1;
		return;
	}
	w->req_len += (size_t)n;
	w->req[w->req_len] = '\0';
	char *p = w->req, *nl;
	while ((nl = strchr(p, '\n'))) {
		*nl = '\0';
		daemon_request(w, p);
		p = nl + 1;
	}
	w->req_len -= (size_t)(p - w->req);
	memmove(w->req, p, w->req_len);
	if (w->req_len == sizeof(w->req) - 1)
		w->req_len = 0; /* an overlong line: dropped */
}

/* The console sink's trouble, for `status` (nothing while it writes). */
static void console_status(struct worker *w, struct hr_sbuf *sb)
{
	struct hr_console_stats cs;
	hr_console_get_stats(w->con, &cs);
	if (!cs.error && !cs.held_bytes)
		return;
	hr_kv_add(sb, "console", w->a->console_spec);
	if (cs.error)
		hr_kv_add(sb, "console_error", hr_strerror(cs.error));
	hr_kv_addu(sb, "console_held_bytes", cs.held_bytes);
	hr_kv_addu(sb, "console_retries", cs.retries);
	if (cs.failing_since_s)
		hr_kv_addu(sb, "console_failing_since_s", cs.failing_since_s);
}

/* Every second: how long since the peer's last byte and since the last
 * role change, for `status` (a line the daemon may drop when busy). */
/* The witness standing changed since the last `live` line: say it now
 * (status must not show a standing a second old). */
static int standing_changed(int sent)
{
	struct hr_engine *eng = hr_w_eng;
	struct hr_engine_liveness l;
	if (!eng)
		return 0;
	hr_engine_liveness(eng, &l);
	return l.witness_standing != sent;
}

static void *liveness_thread(void *arg)
{
	struct worker *w = arg;
	int standing_sent = -1;
	while (!w->done) {
		struct hr_engine *eng = hr_w_eng;
		if (eng) {
			struct hr_engine_liveness l;
			struct hr_sbuf sb = {0};
			hr_engine_liveness(eng, &l);
			standing_sent = l.witness_standing;
			hr_kv_add(&sb, "event", "live");
			hr_kv_addu(&sb, "state_age_ms", l.state_age_ms);
			if (l.peer_silent_ms != UINT64_MAX)
				hr_kv_addu(&sb, "peer_silent_ms", l.peer_silent_ms);
			if (l.held_why[0]) {
				hr_kv_add(&sb, "held_why", l.held_why);
				hr_kv_addu(&sb, "held_ms", l.held_ms);
			}
			if (l.next_reprotect_ms)
				hr_kv_addu(&sb, "next_reprotect_ms", l.next_reprotect_ms);
			if (l.dropped_why[0])
				hr_kv_add(&sb, "dropped_why", l.dropped_why);
			hr_w_disks_status(w, &sb);
			if (l.witness_standing != HR_HA_W_NONE) {
				hr_kv_add(&sb, "witness", hr_ha_standing_name(l.witness_standing));
				char pn[sizeof(w->a->peer_node)];
				pthread_mutex_lock(&w->send_lock);
				memcpy(pn, w->a->peer_node, sizeof(pn));
				pthread_mutex_unlock(&w->send_lock);
				hr_kv_add(&sb, "peer_node", pn);
				hr_kv_addu(&sb, "lease_left_ms", l.lease_left_ms);
				if (l.witness_contact_ms != UINT64_MAX)
					hr_kv_addu(&sb, "witness_contact_ms", l.witness_contact_ms);
			}
			hr_w_migrate_progress(w, eng, &sb);
			console_status(w, &sb);
			hr_w_send_line(w, &sb, 1);
			hr_sbuf_free(&sb);
		}
		for (int i = 0; i < 20 && !w->done && !standing_changed(standing_sent); i++) {
			struct pollfd pf[2] = {{w->adopt_fd, POLLIN, 0}, {-1, POLLIN, 0}};
			if (!w->status_eof && hr_w_eng)
				pf[1].fd = w->a->status_fd; /* replaced only by handover, here */
			if (hr_w_status_pending(w))
				pf[1].events |= POLLOUT;
			if (poll(pf, 2, 50) <= 0)
				continue;
			if (pf[1].revents & POLLOUT)
				hr_w_status_flush(w);
			if (pf[0].revents & POLLIN) {
				int fd = accept4(w->adopt_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					handover(w, fd);
			} else if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
				daemon_requests(w);
			}
		}
	}
	return NULL;
}

/* Re-protection: ask the peer daemon for a new backup (engine.h). */
static int reconnect(void *opaque, int speaking, int *fd_r)
{
	struct worker *w = opaque;
	char node[sizeof(w->a->peer_node)] = "", addr[sizeof(w->a->reconnect_addr)];
	pthread_mutex_lock(&w->send_lock); /* a migration in doubt changes it */
	memcpy(addr, w->a->reconnect_addr, sizeof(addr));
	pthread_mutex_unlock(&w->send_lock);
	int rc = hr_reconnect_peer(addr, w->a->name, speaking, 2000, fd_r, node, sizeof(node));
	if (rc == 0) {
		pthread_mutex_lock(&w->send_lock); /* the liveness thread reads it */
		memcpy(w->a->peer_node, node, sizeof(node));
		pthread_mutex_unlock(&w->send_lock);
	}
	if (rc == 0)
		log_info(w->a->name, "re-protection: %s takes a new backup", addr);
	return rc;
}

/* Released output: the console (channel 0) goes to the console sink. */
static void output_sink(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len)
{
	if (chan == 0)
		hr_console_sink(opaque, offset, buf, len);
}

/* ... which pushes back at its bound instead of dropping (console.h). */
static int output_room(void *opaque, unsigned chan, int timeout_ms)
{
	return chan == 0 ? hr_console_room(opaque, timeout_ms) : 0;
}

/* Read one line (byte by byte: nothing after it is consumed).  0 or -errno. */
static int read_line(int fd, char *buf, size_t size, unsigned timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	size_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			return -ECONNRESET;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			tv = (struct timeval){0, 0};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			return 0;
		}
		n++;
	}
	return -HR_EPROTO;
}

/* Primary: TLS and the preamble on the socket the daemon connected
 * (hr_peer_open); a->peer_fd becomes the plaintext end. */
static int primary_preamble(struct worker *w)
{
	struct hr_worker_args *a = w->a;
	int fd = -1, rc;

	rc = hr_peer_open(a->peer_fd, a->peer_desc, a->name, 0, 10000, &fd, a->peer_node,
			  sizeof(a->peer_node), w->error, sizeof(w->error));
	a->peer_fd = fd; /* consumed either way */
	if (rc < 0) {
		log_warnx(a->name, "%s", w->error);
		return rc;
	}
	if (hr_dopts.witness && (!a->peer_node[0] || !strcmp(a->peer_node, hr_dopts.node))) {
		snprintf(w->error, sizeof(w->error),
			 "peer %s %s: with a witness both hosts need their own --node name",
			 a->peer_desc,
			 a->peer_node[0] ? "has this host's --node name" : "sent no --node name");
		log_warnx(a->name, "%s", w->error);
		return -EINVAL;
	}
	return 0;
}

/*
 * A migration's source names the VM's backup host (backup=, backup_node=):
 * after the hand-off this host asks it for a backup - or, when that host is
 * this one (the VM migrates to its backup's host), the source's host, which
 * then holds the backup: a protected VM's backup follows it.
 */
static void migrated_backup(struct hr_worker_args *a, const char *addr, const char *node)
{
	char norm[sizeof(a->migrated_backup)], host[128], port[16];

	a->migrated_backup[0] = a->migrated_backup_node[0] = '\0';
	if (!addr)
		return;
	if (hr_addr_norm(addr, norm, sizeof(norm), host, sizeof(host), port, sizeof(port)) < 0) {
		log_warnx(a->name, "migration from %s: malformed backup address ignored",
			  a->peer_desc);
		return;
	}
	node = node && hr_vm_name_ok(node) ? node : "";
	if ((node[0] && hr_dopts.node && !strcmp(node, hr_dopts.node)) ||
	    hr_addr_is_self(host, port)) {
		memcpy(a->migrated_backup, a->reconnect_addr, sizeof(a->migrated_backup));
		memcpy(a->migrated_backup_node, a->peer_node, sizeof(a->migrated_backup_node));
	} else {
		memcpy(a->migrated_backup, norm, sizeof(a->migrated_backup));
		snprintf(a->migrated_backup_node, sizeof(a->migrated_backup_node), "%s", node);
	}
}

/*
 * Backup: take the daemon preamble from the primary, ask our daemon whether
 * the name is free, answer the primary.  Fills a->name.
 */
static int backup_preamble(struct worker *w)
{
	struct hr_worker_args *a = w->a;
	char line[HR_PREAMBLE_MAX];
	struct hr_kvline kv;
	struct hr_sbuf sb = {0};
	const char *err = NULL;
	char code[16] = "refuse";
	int rc;

	/* TLS before anything else: a peer that does not authenticate is
	 * refused (and logged with its address by hr_tls_server) before one
	 * byte of what it sent is read here, and nothing is created */
	int plain_fd = -1;
	char auth[HR_VM_NAME_MAX + 1] = "";
	rc = hr_tls_server(
	    hr_tls, a->peer_fd,
	    &(struct hr_tls_peer){.desc = a->peer_desc, .deadline_ms = HR_TLS_DEADLINE_MS},
	    &plain_fd, auth, sizeof(auth));
	a->peer_fd = plain_fd; /* consumed either way */
	if (rc < 0) {
		snprintf(w->error, sizeof(w->error), "peer %s refused: %s", a->peer_desc,
			 rc == -HR_EAUTH ? "not authenticated" : hr_strerror(rc));
		return rc;
	}
	rc = read_line(a->peer_fd, line, sizeof(line), 10000);
	if (rc < 0) {
		log_warnx(NULL, "replication connection from %s: no valid preamble (%s)",
			  a->peer_desc, rc == -HR_EPROTO ? "line too long" : hr_strerror(rc));
		return rc;
	}
	rc = hr_kv_parse(&kv, line, strlen(line));
	if (rc < 0 || !hr_kv_get(&kv, "hrd") || strcmp(hr_kv_get(&kv, "hrd"), "1") ||
	    !hr_kv_get(&kv, "vm") || !hr_vm_name_ok(hr_kv_get(&kv, "vm"))) {
		log_warnx(NULL,
			  "replication connection from %s: not a hareplicated preamble; closing",
			  a->peer_desc);
		if (!rc && hr_kv_get(&kv, "hrd") && strcmp(hr_kv_get(&kv, "hrd"), "1"))
			err = "unsupported preamble version (this daemon speaks hrd=1)";
		else
			err = "malformed preamble";
		hr_kv_add(&sb, "hrd", "1");
		hr_kv_add(&sb, "status", "error");
		hr_kv_add(&sb, "error", err);
		hr_sbuf_add(&sb, "\n", 1);
		(void)hr_write_all(a->peer_fd, sb.p, sb.len);
		hr_sbuf_free(&sb);
		hr_kv_free(&kv);
		return -HR_EPROTO;
	}
	snprintf(a->name, sizeof(a->name), "%s", hr_kv_get(&kv, "vm"));
	const char *port = hr_kv_get(&kv, "port"), *speaking = hr_kv_get(&kv, "speaking");
	uint64_t portnr = 0;
	if (port && !hr_kv_getu(&kv, "port", &portnr) && portnr && portnr < 65536)
		hr_addr_with_port(a->reconnect_addr, sizeof(a->reconnect_addr), a->peer_desc, port);
	int peer_speaks = speaking && !strcmp(speaking, "1");
	const char *pn = hr_kv_get(&kv, "node");
	snprintf(a->peer_node, sizeof(a->peer_node), "%s", pn && hr_vm_name_ok(pn) ? pn : "");
	migrated_backup(a, hr_kv_get(&kv, "backup"), hr_kv_get(&kv, "backup_node"));
	hr_kv_free(&kv);
	if (hr_transport_check_node(a->name, a->peer_desc, auth, a->peer_node) < 0) {
		snprintf(w->error, sizeof(w->error),
			 "peer %s authenticated as '%s' but says it is "
			 "node '%s'",
			 a->peer_desc, auth, a->peer_node);
		hr_kv_add(&sb, "hrd", "1");
		hr_kv_add(&sb, "status", "error");
		hr_kv_add(&sb, "code", "refuse");
		hr_kv_add(&sb, "error", "the node name does not match the authenticated name");
		hr_sbuf_add(&sb, "\n", 1);
		(void)hr_write_all(a->peer_fd, sb.p, sb.len);
		hr_sbuf_free(&sb);
		return -HR_EAUTH;
	}
	if (hr_dopts.witness && (!a->peer_node[0] || !strcmp(a->peer_node, hr_dopts.node))) {
		log_warnx(a->name,
			  "backup from %s refused: with a witness both hosts need their own "
			  "--node name (the primary's: '%s')",
			  a->peer_desc, a->peer_node);
		hr_kv_add(&sb, "hrd", "1");
		hr_kv_add(&sb, "status", "error");
		hr_kv_add(&sb, "code", "refuse");
		hr_kv_add(&sb, "error", "with a witness both hosts need their own --node name");
		hr_sbuf_add(&sb, "\n", 1);
		(void)hr_write_all(a->peer_fd, sb.p, sb.len);
		hr_sbuf_free(&sb);
		return -EINVAL;
	}

	/* Ask the daemon: is the name free here? */
	hr_kv_add(&sb, "event", "backup");
	hr_kv_add(&sb, "vm", a->name);
	hr_kv_add(&sb, "speaking", peer_speaks ? "1" : "0");
	hr_w_send_line(w, &sb, 0);
	hr_sbuf_free(&sb);
	rc = read_line(a->status_fd, line, sizeof(line), 10000);
	if (rc < 0) {
		log_warnx(a->name, "backup: no answer from the daemon (%s)", hr_strerror(rc));
		err = "backup daemon did not answer";
	} else if (strncmp(line, "accept", 6)) {
		/* "refuse TEXT", "busy TEXT" (try again), "runs TEXT" (it speaks here) */
		char *sp = strchr(line, ' ');
		if (sp)
			*sp = '\0';
		snprintf(code, sizeof(code), "%s", line);
		err = sp ? sp + 1 : "refused";
		rc = -EEXIST;
	}

	hr_kv_add(&sb, "hrd", "1");
	hr_kv_add(&sb, "status", err ? "error" : "ok");
	if (!err && hr_dopts.node)
		hr_kv_add(&sb, "node", hr_dopts.node);
	if (err) {
		hr_kv_add(&sb, "code", code);
		hr_kv_add(&sb, "error", err);
	}
	hr_sbuf_add(&sb, "\n", 1);
	int wrc = hr_write_all(a->peer_fd, sb.p, sb.len);
	hr_sbuf_free(&sb);
	if (err) {
		log_warnx(a->name, "backup from %s refused: %s", a->peer_desc, err);
		return rc < 0 ? rc : -EEXIST;
	}
	return wrc;
}

int hr_worker_main(struct hr_worker_args *a)
{
	struct worker w = {
	    .a = a, .epochs_fd = -1, .adopt_fd = -1, .send_lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t tlive;
	int have_live = 0;
	struct hr_engine_config cfg = {0};
	struct hr_console *con = NULL;
	struct hr_engine *eng = NULL;
	struct sigaction sa = {0};
	char spec[1024];
	int rc, peer_fd;

	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(HR_SIG_CLUSTER_RELEASE, &sa, NULL);
	sigaction(HR_SIG_DEMOTE, &sa, NULL);
	sigaction(HR_SIG_RESUME, &sa, NULL);
	sigaction(HR_SIG_DROP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	if (a->side == HR_SIDE_BACKUP) {
		rc = backup_preamble(&w);
		if (rc < 0)
			goto out;
		/* %s -> name: only one %s, anything else passes through */
		const char *p = strstr(a->console_pattern, "%s");
		if (p)
			snprintf(spec, sizeof(spec), "%.*s%s%s", (int)(p - a->console_pattern),
				 a->console_pattern, a->name, p + 2);
		else
			snprintf(spec, sizeof(spec), "%s", a->console_pattern);
		a->console_spec = spec;
		a->ops = hr_backend_find("kvm");
		hr_w_disks_setup(&w);
		a->vm.name = a->name;
		a->vm.kernel_path = NULL;
		if (!a->ops) {
			rc = -HR_EBACKEND;
			goto out;
		}
		log_info(a->name, "backup: replica of the primary at %s, console %s", a->peer_desc,
			 a->console_spec);
	} else {
		rc = primary_preamble(&w);
		if (rc < 0)
			goto out;
		log_info(a->name,
			 "primary: replicating to %s every %llu us (min epoch %llu us), console %s",
			 a->peer_desc, (unsigned long long)a->epoch_us,
			 (unsigned long long)a->min_epoch_us, a->console_spec);
	}

	rc = hr_console_open(&con, a->console_spec, a->name);
	if (rc < 0) {
		snprintf(w.error, sizeof(w.error), "console %s: %s", a->console_spec,
			 rc == -ELOOP ? "a symbolic link; refusing to write through it"
				      : hr_strerror(rc));
		log_err(a->name, "%s", w.error);
		goto out;
	}

	/* tests: a small bound on the console's held output, to see the guest wait */
	uint64_t max_held;
	const char *mh = getenv("HR_TEST_CONSOLE_MAX_HELD");
	if (mh && hr_parse_count(mh, 1, UINT32_MAX, &max_held) == 0)
		hr_console_set_max_held(con, (size_t)max_held);

	/* every epoch's figures, for drills and operators (status shows the last) */
	snprintf(w.epochs_path, sizeof(w.epochs_path), "%s/%s.epochs", hr_dopts.state_dir, a->name);
	epochs_open(&w);

	cfg.name = a->name;
	cfg.ops = a->ops;
	cfg.vm = a->vm;
	cfg.vm.name = a->name;
	cfg.epoch_us = a->epoch_us;
	cfg.min_epoch_us = a->min_epoch_us;
	cfg.silence_ms = a->silence_ms;
	cfg.max_pause_ms = hr_dopts.max_pause_ms;
	cfg.unprotected_release = hr_dopts.unprotected_release;
	/* in cluster mode only the cluster promotes (`hareplicate promote`) */
	cfg.auto_promote = a->side == HR_SIDE_BACKUP && !hr_dopts.cluster_mode;
	cfg.limits.max_mem_bytes = hr_dopts.max_mem_bytes;
	cfg.limits.max_vcpus = hr_dopts.max_vcpus;
	cfg.output_sink = output_sink;
	cfg.output_room = output_room;
	cfg.output_opaque = con;
	w.con = con;
	cfg.on_state = on_state;
	cfg.state_opaque = &w;
	cfg.on_epoch = on_epoch;
	cfg.epoch_opaque = &w;
	if (a->reconnect_addr[0]) {
		cfg.reconnect = reconnect;
		cfg.reconnect_opaque = &w;
	}
	cfg.migrated_reprotect = a->migrated_backup[0] != '\0';
	cfg.replica_tap = hr_dopts.replica_tap;
	cfg.backup_disk_dir = w.disk_dir[0] ? w.disk_dir : NULL;
	cfg.disk_durability = hr_dopts.disk_durability;
	/* tests: a backup's Nth applied disk write fails (EIO): it drops its copy */
	uint64_t fail_after;
	const char *fa = getenv("HR_TEST_DISK_FAIL_AFTER");
	if (fa && hr_parse_count(fa, 1, UINT64_MAX, &fail_after) == 0)
		cfg.disk_fail_after = fail_after;
	cfg.migrate_connect = hr_w_migrate_connect;
	cfg.on_round = hr_w_on_round;
	cfg.round_opaque = &w;
	cfg.on_migration = hr_w_on_migration;
	cfg.migrate_opaque = &w;
	/* tests: both sides log a digest of guest RAM at the hand-off */
	cfg.mig_ram_digest = getenv("HR_TEST_MIGRATE_RAM_DIGEST") != NULL;
	char pages_path[4200];
	snprintf(pages_path, sizeof(pages_path), "%s/%s.ram-pages", hr_dopts.state_dir, a->name);
	if (cfg.mig_ram_digest)
		cfg.mig_ram_pages = pages_path; /* and a digest per page */
	if (hr_dopts.witness) {
		cfg.witness = hr_dopts.witness;
		cfg.witness_tls = hr_tls;
		cfg.node = hr_dopts.node;
		cfg.peer_node = a->peer_node; /* re-protection may name another peer */
		cfg.lease_ms = hr_witness_lease_ms(hr_dopts.lease_ms, hr_dopts.failover_timeout_ms);
	}
	rc = hr_engine_new(&eng, &cfg);
	if (rc < 0) {
		log_err(a->name, "engine: %s", hr_strerror(rc));
		goto out;
	}
	w.adopt_fd = hr_adopt_listen(a->name);
	if (w.adopt_fd < 0)
		log_warnx(a->name, "no adopt socket (%s): a restarted daemon will not see this VM",
			  hr_strerror(w.adopt_fd));
	hr_w_eng = eng;
	have_live = pthread_create(&tlive, NULL, liveness_thread, &w) == 0;
	if (hr_w_stop)
		hr_engine_stop(eng);
	if (g_promote)
		hr_engine_promote(eng);
	if (g_release)
		hr_engine_cluster_release(eng);
	if (g_demote)
		hr_engine_demote(eng);

	peer_fd = a->peer_fd;
	a->peer_fd = -1; /* the engine's from now on */
	if (a->side == HR_SIDE_BACKUP)
		rc = hr_engine_run_backup(eng, peer_fd);
	else
		rc = hr_engine_run_primary(eng, peer_fd);
	if (rc == -HR_EMIGRATED)
		log_info(a->name, "engine ended: the VM runs on %s now", w.mig_to);
	else if (rc < 0)
		log_warnx(a->name, "%s engine ended: %s",
			  a->side == HR_SIDE_BACKUP ? "backup" : "primary", hr_strerror(rc));
	else
		log_info(a->name, "engine ended");

out:;
	w.done = 1;
	if (have_live)
		pthread_join(tlive, NULL);
	if (w.adopt_fd >= 0) {
		close(w.adopt_fd);
		hr_adopt_unlink(a->name);
	}
	struct hr_sbuf sb = {0};
	hr_kv_add(&sb, "event", "exit");
	hr_kv_addf(&sb, "rc", "%d", rc);
	if (w.error[0])
		hr_kv_add(&sb, "error", w.error);
	else if (eng && hr_engine_error(eng)[0])
		hr_kv_add(&sb, "error", hr_engine_error(eng));
	else if (rc < 0)
		hr_kv_add(&sb, "error", hr_strerror(rc));
	if (hr_w_stop)
		hr_kv_add(&sb, "stopped", "1");
	hr_w_send_line(&w, &sb, 0);
	hr_sbuf_free(&sb);
	/* the last lines reach the daemon before this process ends (2 s at most:
	 * a stopped daemon learns of the exit from SIGCHLD, or adopts nothing) */
	for (int i = 0; i < 100 && hr_w_status_pending(&w); i++) {
		struct pollfd pf = {a->status_fd, POLLOUT, 0};
		if (poll(&pf, 1, 20) > 0 && (pf.revents & (POLLERR | POLLHUP)))
			break;
		hr_w_status_flush(&w);
	}
	hr_sbuf_free(&w.outq);
	hr_w_eng = NULL;
	if (eng)
		hr_engine_free(eng);
	hr_console_close(con, 2000);
	/* a link the engine never took (a refusal was its last words): closing
	 * it makes the TLS pump flush and end; wait for that (2 s at most), since
	 * the pump threads die with this process */
	if (a->peer_fd >= 0)
		close(a->peer_fd);
	for (int i = 0; i < 100 && hr_tls_pumps_running(); i++) /* 2 s */
		usleep(20000);
	return rc < 0 && rc != -HR_EMIGRATED && !hr_w_stop ? 1 : 0;
}
