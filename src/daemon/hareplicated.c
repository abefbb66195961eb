/*
 * hareplicated - the per-host daemon: owns the control socket (control.c)
 * and the replication port, and supervises one forked worker per VM (vm.c,
 * worker.c).  Runs on libevent; SIGTERM/SIGINT end the daemon, not the
 * workers: a daemon started later adopts them (adopt.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "ha/witness.h"
#include "net/tls.h"

struct hr_daemon_opts hr_dopts = {
    .control_path = HR_DEFAULT_CONTROL,
    .listen = "0.0.0.0:" HR_DEFAULT_PORT,
    .state_dir = HR_DEFAULT_STATE_DIR,
    .failover_timeout_ms = HR_FAILOVER_TIMEOUT_MS,
    .max_pause_ms = HR_MAX_PAUSE_MS,
    .max_mem_bytes = HR_DEFAULT_MAX_MEM_BYTES,
    .max_vcpus = HR_MAX_VCPUS,
    .epochs_log_max = 8ull << 20,
};

static struct event_base *base;

/* Is a daemon answering on path?  1 yes, 0 no (stale or absent). */
static int control_alive(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, alive;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	alive = !connect(fd, (struct sockaddr *)&sun, sizeof(sun)) || errno == EACCES ||
		errno == EAGAIN;
	close(fd);
	return alive;
}

static int mkdir_p(const char *dir, mode_t mode)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int open_control(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char dir[4096];
	char *slash;
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "hareplicated: --control %s: path too long\n", path);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		struct stat st;
		if (stat(dir, &st) < 0) {
			rc = mkdir_p(dir, 0700);
			if (rc < 0) {
				fprintf(stderr, "hareplicated: cannot create %s: %s\n", dir,
					hr_strerror(rc));
				return rc;
			}
		}
	}
	if (control_alive(path)) {
		fprintf(
		    stderr,
		    "hareplicated: another hareplicated answers on %s; not starting a second one\n",
		    path);
		return -EADDRINUSE;
	}
	unlink(path); /* stale socket of a dead daemon */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		fprintf(stderr, "hareplicated: control socket %s: %s\n", path, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

static int open_listen(const char *spec)
{
	char host[256] = "", port[16];
	const char *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	int fd, one = 1, gai;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':')
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - spec - 1), spec + 1);
		colon = rb + 1;
	} else if ((colon = strrchr(spec, ':'))) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	} else {
		colon = spec - 1; /* PORT only */
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (hr_parse_count(port, 0, 65535, &(uint64_t){0}) < 0)
		goto bad;
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai) {
		fprintf(stderr, "hareplicated: --listen %s: %s\n", spec, gai_strerror(gai));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		int rc = -errno;
		fprintf(stderr, "hareplicated: replication port %s: %s\n", spec, strerror(-rc));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	return fd;
bad:
	fprintf(stderr, "hareplicated: --listen %s: expected ADDR:PORT, [V6ADDR]:PORT or PORT\n",
		spec);
	return -EINVAL;
}

static void repl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			   int salen, void *arg)
{
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?", desc[NI_MAXHOST + NI_MAXSERV + 4];

	getnameinfo(sa, (socklen_t)salen, host, sizeof(host), serv, sizeof(serv),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(desc, sizeof(desc), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
	/* the worker uses blocking I/O */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	hr_vms_accept(fd, desc);
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	hr_vms_reap();
}

/* The daemon goes; the guests stay.  Workers keep replicating between
 * themselves, and a hareplicated started later adopts them (adopt.c). */
static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	if (hr_dopts.serve_witness)
		log_info(NULL, "signal %d: exiting; the witness table is saved", (int)sig);
	else
		log_info(NULL,
			 "signal %d: exiting; %u VM worker(s) keep running and are adopted by "
			 "the next hareplicated (stop a VM with `hareplicate stop`)",
			 (int)sig, hr_vms_nr_workers());
	event_base_loopexit(base, NULL);
}

/* Detach: the parent exits once the child is set up.  The child's stdin
 * and stdout become /dev/null, and stderr too unless keep_stderr (no
 * syslog: the log lines go there). */
static int daemonize(int keep_stderr)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe(pfd) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) == 1 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	if (chdir("/") < 0)
		return -errno;
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (!keep_stderr)
			dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	(void)!write(pfd[1], "x", 1);
	close(pfd[1]);
	return 0;
}

int main(int argc, char **argv)
{
	struct hr_dopts_run run;
	struct event *ev_chld, *ev_term, *ev_int;
	int ctl_fd, repl_fd, rc, use_syslog;

	rc = hr_dopts_parse(argc, argv, &run);
	if (rc < 0)
		return rc == -EINVAL ? 2 : 1;
	if (run.help) {
		hr_dopts_usage(stdout);
		return 0;
	}
	if (run.version) {
		printf("hareplicated (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return 0;
	}
	{
		char why[700];
		rc = hr_transport_init(why, sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "hareplicated: %s\n", why);
			return rc == -EINVAL ? 2 : 1;
		}
	}
	if (run.check_config) {
		hr_dopts_print(stdout, &run);
		return 0;
	}

	hr_log_init("hareplicated", 1, hr_dopts.verbose);
	signal(SIGPIPE, SIG_IGN);
	rc = mkdir_p(hr_dopts.state_dir, 0700);
	if (rc < 0) {
		fprintf(stderr, "hareplicated: --state-dir %s: %s\n", hr_dopts.state_dir,
			hr_strerror(rc));
		return 1;
	}
	ctl_fd = open_control(hr_dopts.control_path);
	if (ctl_fd < 0)
		return 1;
	repl_fd = open_listen(hr_dopts.listen);
	if (repl_fd < 0) {
		unlink(hr_dopts.control_path);
		return 1;
	}
	if (hr_dopts.serve_witness && hr_witness_load(hr_dopts.state_dir) < 0) {
		unlink(hr_dopts.control_path);
		return 1;
	}
	if (!hr_dopts.foreground) {
		use_syslog = hr_log_syslog_available();
		rc = daemonize(!use_syslog);
		if (rc < 0) {
			fprintf(stderr, "hareplicated: cannot detach: %s\n", hr_strerror(rc));
			return 1;
		}
		if (!hr_log_init("hareplicated", !use_syslog, hr_dopts.verbose))
			log_warnx(NULL, "no syslog daemon answers on %s: logging to stderr",
				  _PATH_LOG);
	}
	if (hr_dopts.pidfile) {
		FILE *f = fopen(hr_dopts.pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		} else {
			log_warnx(NULL, "pidfile %s: %s", hr_dopts.pidfile, strerror(errno));
		}
	}

	base = event_base_new();
	if (!base) {
		log_err(NULL, "cannot create the event loop");
		return 1;
	}
	hr_vms_init(base);
	if (hr_dopts.serve_witness) {
		/* no VMs here: the port answers witness requests */
		rc = hr_witness_serve(base, repl_fd);
		if (rc < 0 || hr_ctl_listen(base, ctl_fd) < 0) {
			log_err(NULL, "cannot serve as a witness: %s", hr_strerror(rc));
			unlink(hr_dopts.control_path);
			return 1;
		}
	} else {
		unsigned adopted = hr_vms_adopt_all();
		if (adopted)
			log_info(NULL, "adopted %u running VM worker(s)", adopted);
		if (hr_ctl_listen(base, ctl_fd) < 0 ||
		    !evconnlistener_new(base, repl_accept_cb, NULL,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
					repl_fd)) {
			log_err(NULL, "cannot listen");
			return 1;
		}
	}
	ev_chld = evsignal_new(base, SIGCHLD, sigchld_cb, NULL);
	ev_term = evsignal_new(base, SIGTERM, sigterm_cb, NULL);
	ev_int = evsignal_new(base, SIGINT, sigterm_cb, NULL);
	evsignal_add(ev_chld, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	signal(SIGHUP, SIG_IGN);

	if (hr_dopts.serve_witness)
		log_info(NULL,
			 "hareplicated %s: control %s, witness on %s, state %s, %u VM(s) in the "
			 "table",
			 PACKAGE_VERSION, hr_dopts.control_path, hr_dopts.listen,
			 hr_dopts.state_dir, hr_witness_serve_nr_vms());
	else
		log_info(NULL,
			 "hareplicated %s: control %s, replication %s, state %s, failover after "
			 "%llu ms%s%s%s",
			 PACKAGE_VERSION, hr_dopts.control_path, hr_dopts.listen,
			 hr_dopts.state_dir, (unsigned long long)hr_dopts.failover_timeout_ms,
			 hr_dopts.witness ? ", witness " : "",
			 hr_dopts.witness ? hr_dopts.witness : "",
			 hr_dopts.cluster_mode ? "; cluster mode: only the cluster promotes" : "");
	log_info(NULL, "settings: %s%s", run.config ? run.config : "no configuration file",
		 run.config ? " and the command line" : "");
	if (hr_dopts.insecure)
		log_warnx(NULL,
			  "INSECURE: --insecure: peer links are plain TCP, neither "
			  "authenticated nor encrypted; anyone who reaches %s can make "
			  "this host run a VM",
			  hr_dopts.listen);
	else if (hr_tls)
		log_info(NULL, "peer links: TLS 1.3, %s mode", hr_tls_ctx_mode(hr_tls));
	event_base_dispatch(base);

	hr_vms_reap();
	unlink(hr_dopts.control_path);
	if (hr_dopts.pidfile)
		unlink(hr_dopts.pidfile);
	log_info(NULL, "exiting");
	return 0;
}
