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
    .failover_timeout_ms = 500,
    .max_mem_bytes = HR_DEFAULT_MAX_MEM_BYTES,
    .max_vcpus = HR_MAX_VCPUS,
    .epochs_log_max = 8ull << 20,
};

static const char usage[] =
    "usage: hareplicated [OPTIONS]\n"
    "\n"
    "The hareplicate daemon: one per host.  It owns the control socket that the\n"
    "`hareplicate` command talks to and the replication port that the peer host's\n"
    "daemon connects to, and runs every protected VM in a worker process of its\n"
    "own (a VM that crashes, or a worker killed with SIGKILL, never takes the\n"
    "daemon down).  SIGTERM stops the daemon only: the workers keep their guests\n"
    "running and protected, and the next hareplicated adopts them.  Stop a VM\n"
    "with `hareplicate stop VM`.\n"
    "\n"
    "  --control PATH          control socket (default " HR_DEFAULT_CONTROL ");\n"
    "                          mode 0600, its directory is created 0700; the daemon\n"
    "                          refuses to start when another one answers there\n"
    "  --listen ADDR:PORT      replication port (default 0.0.0.0:" HR_DEFAULT_PORT
    "); [V6ADDR]:PORT\n"
    "                          or just PORT also work\n"
    "  --state-dir DIR         console files etc. (default " HR_DEFAULT_STATE_DIR
    ", created 0700)\n"
    "  --failover-timeout MS   a replica whose primary is silent this long promotes\n"
    "                          itself (default 500, at most 3600000)\n"
    "  --unprotected-output hold|release\n"
    "                          a primary whose backup's connection ended: hold the\n"
    "                          guest's output (default; the backup may be promoting\n"
    "                          behind a torn link, and two hosts must never speak\n"
    "                          for one VM) or release it (the guest stays visible\n"
    "                          when the backup really died, at the risk of two\n"
    "                          speakers on a torn link); with --witness, output\n"
    "                          is released while this host holds its lease.\n"
    "                          Either way the primary asks the peer for a new\n"
    "                          backup every second and re-protects itself\n"
    "  --max-memory SIZE       the most guest memory a primary may ask this host's\n"
    "                          backups for; more is refused before anything is\n"
    "                          allocated (default 64G)\n"
    "  --max-vcpus N           the same for vCPUs (1..64, default 64)\n"
    "  --epochs-log-max SIZE   STATE-DIR/VM.epochs (one line per epoch) becomes\n"
    "                          VM.epochs.1 at this size, the older one goes\n"
    "                          (default 8M, at least 4K)\n"
    "  --console-default SPEC  where a promoted replica's console goes; %s is the VM\n"
    "                          name (default file:STATE-DIR/%s.console); SPEC is\n"
    "                          file:/ABS/PATH or tcp:HOST:PORT\n"
    "  --witness HOST[:PORT]   the witness this host's VMs ask for a lease when\n"
    "                          primary and backup lose each other (default port\n"
    "                          " HR_DEFAULT_PORT "; [V6ADDR]:PORT; default: none)\n"
    "  --replica-tap PATTERN   the TAP a backup copy's network device uses on this\n"
    "                          host, %s standing for the VM name (e.g. hr-%s;\n"
    "                          default: the name the primary's `--net` gives)\n"
    "  --node NAME             this host's name at the witness and to its peers\n"
    "                          (the CN of its certificate, its PSK identity;\n"
    "                          default: the host name; [A-Za-z0-9_.-], 1..64)\n"
    "  --lease-ms MS           length of the leases asked for (default 0: twice\n"
    "                          --failover-timeout, at least 1000; at most 60000)\n"
    "  --cluster-mode          a cluster manager (Pacemaker, contrib/ocf/) decides\n"
    "                          where the VM runs: a backup never promotes itself\n"
    "                          (only `hareplicate promote` / `failover` does), and a\n"
    "                          primary without a backup holds its output until the\n"
    "                          cluster confirms the peer's copy is gone\n"
    "                          (`hareplicate promote` on that primary)\n"
    "  --serve-witness         be a witness only: answer lease requests on\n"
    "                          --listen (table in STATE-DIR/witness.table); runs no\n"
    "                          VMs and needs no /dev/kvm (docs/witness.md)\n"
    "\n"
    "Peer links (replication between the hosts, the witness's) are TLS 1.3 with\n"
    "both ends authenticated; one of these is required (docs/tls.md,\n"
    "`hareplicate cert`):\n"
    "  --tls-cert FILE --tls-key FILE\n"
    "                          this host's certificate and key (PEM), with one of:\n"
    "    --tls-ca FILE         peers must have a certificate signed by this CA, and\n"
    "                          its CN must be the --node the peer says it is\n"
    "    --tls-pin SHA256[,SHA256...]\n"
    "                          peers must have one of these certificates\n"
    "                          (`hareplicate cert fingerprint FILE`)\n"
    "  --tls-psk FILE          a pre-shared key instead (one per cluster, mode\n"
    "                          0600; the identity is --node)\n"
    "  --insecure              plain TCP: anyone who reaches the port can make this\n"
    "                          host run a VM; `status` says INSECURE\n"
    "A peer that does not authenticate is refused before anything it sends is\n"
    "read, and the refusal is logged with its address.  A witness and the hosts\n"
    "that use it need the same kind of options (one CA, pinned certificates, or\n"
    "one key); the witness grants a request only for the node its link\n"
    "authenticated as.\n"
    "\n"
    "  --pidfile FILE          write the daemon's pid there\n"
    "  -f, --foreground        stay in the foreground and log to stderr (default:\n"
    "                          detach and log to syslog, facility daemon)\n"
    "  -v, --verbose           debug logging\n"
    "  -h, --help              this text\n"
    "\n"
    "HA transitions are logged with stable tokens, one per state (+syncing,\n"
    "+protected, +unprotected, +backup, +promoting, +promoted, +demoted,\n"
    "+stopped, +failed) and per event (+backup-lost, +backup-silent,\n"
    "+primary-lost, +failover-start, +output-held, +output-released,\n"
    "+reprotect-start, +stand-down); with a witness also +lease-held,\n"
    "+lease-denied, +witness-registered, +witness-unreachable; `hareplicate\n"
    "status` uses the same names.\n"
    "A witness logs +lease-granted, +lease-denied, +lease-expired and\n"
    "+owner-changed; `hareplicate witness HOST[:PORT]` shows its table.\n"
    "\n"
    "Exit status: 0 after SIGTERM, 1 could not start (the reason is printed),\n"
    "2 bad usage.\n";

static struct event_base *base;

enum {
	OPT_TLS_CERT = 1000,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_TLS_PIN,
	OPT_TLS_PSK,
	OPT_INSECURE,
	OPT_CLUSTER,
};

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

static int daemonize(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	/* the parent exits once the child is set up */
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
	static const struct option longopts[] = {
	    {"control", required_argument, NULL, 'C'},
	    {"listen", required_argument, NULL, 'l'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"failover-timeout", required_argument, NULL, 't'},
	    {"console-default", required_argument, NULL, 'c'},
	    {"unprotected-output", required_argument, NULL, 'u'},
	    {"witness", required_argument, NULL, 'W'},
	    {"replica-tap", required_argument, NULL, 'R'},
	    {"node", required_argument, NULL, 'N'},
	    {"lease-ms", required_argument, NULL, 'L'},
	    {"serve-witness", no_argument, NULL, 'S'},
	    {"cluster-mode", no_argument, NULL, OPT_CLUSTER},
	    {"pidfile", required_argument, NULL, 'p'},
	    {"max-memory", required_argument, NULL, 'M'},
	    {"max-vcpus", required_argument, NULL, 'V'},
	    {"epochs-log-max", required_argument, NULL, 'E'},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
	    {"tls-pin", required_argument, NULL, OPT_TLS_PIN},
	    {"tls-psk", required_argument, NULL, OPT_TLS_PSK},
	    {"insecure", no_argument, NULL, OPT_INSECURE},
	    {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *pidfile = NULL;
	static char hostname[256];
	char pattern[4096];
	struct event *ev_chld, *ev_term, *ev_int;
	int c, ctl_fd, repl_fd, rc;

	while ((c = getopt_long(argc, argv, "fvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			hr_dopts.control_path = optarg;
			break;
		case 'l':
			hr_dopts.listen = optarg;
			break;
		case 's':
			hr_dopts.state_dir = optarg;
			break;
		case 't':
			if (hr_parse_count(optarg, 1, HR_FAILOVER_TIMEOUT_MAX_MS,
					   &hr_dopts.failover_timeout_ms) < 0) {
				fprintf(stderr,
					"hareplicated: bad --failover-timeout '%s' (milliseconds, "
					"1..%d)\n",
					optarg, HR_FAILOVER_TIMEOUT_MAX_MS);
				return 2;
			}
			break;
		case 'c':
			hr_dopts.console_pattern = optarg;
			break;
		case 'u':
			if (strcmp(optarg, "hold") && strcmp(optarg, "release")) {
				fprintf(
				    stderr,
				    "hareplicated: --unprotected-output takes hold or release, not "
				    "'%s'\n",
				    optarg);
				return 2;
			}
			hr_dopts.unprotected_release = !strcmp(optarg, "release");
			if (hr_dopts.unprotected_release)
				fprintf(stderr,
					"hareplicated: --unprotected-output release: a torn "
					"link can make two hosts speak for one VM\n");
			break;
		case OPT_CLUSTER:
			hr_dopts.cluster_mode = 1;
			break;
		case 'R': {
			/* "%s" once at most; the result is checked when a replica is built */
			const char *pct = strstr(optarg, "%s");
			if (!*optarg || strlen(optarg) > 15 + 2 || strchr(optarg, ',') ||
			    (pct && strstr(pct + 2, "%")) || (!pct && strchr(optarg, '%'))) {
				fprintf(stderr,
					"hareplicated: bad --replica-tap '%s' (an interface name, "
					"%%s standing for the VM name)\n",
					optarg);
				return 2;
			}
			hr_dopts.replica_tap = optarg;
			break;
		}
		case 'W':
			if (!*optarg) {
				fprintf(stderr, "hareplicated: --witness takes HOST[:PORT]\n");
				return 2;
			}
			hr_dopts.witness = optarg;
			break;
		case 'N':
			if (!hr_wit_name_ok(optarg)) {
				fprintf(stderr,
					"hareplicated: bad --node '%s' ([A-Za-z0-9_.-], 1..64, "
					"not starting with '.' or '-')\n",
					optarg);
				return 2;
			}
			hr_dopts.node = optarg;
			break;
		case 'L':
			if (hr_parse_count(optarg, HR_WIT_LEASE_MIN_MS, HR_WIT_LEASE_MAX_MS,
					   &hr_dopts.lease_ms) < 0) {
				fprintf(
				    stderr,
				    "hareplicated: bad --lease-ms '%s' (milliseconds, %d..%d)\n",
				    optarg, HR_WIT_LEASE_MIN_MS, HR_WIT_LEASE_MAX_MS);
				return 2;
			}
			break;
		case 'S':
			hr_dopts.serve_witness = 1;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'M':
			if (hr_parse_size(optarg, &hr_dopts.max_mem_bytes) < 0 ||
			    hr_dopts.max_mem_bytes < (2u << 20)) {
				fprintf(stderr,
					"hareplicated: bad --max-memory '%s' (e.g. 16G; at least "
					"2M)\n",
					optarg);
				return 2;
			}
			break;
		case 'E':
			if (hr_parse_size(optarg, &hr_dopts.epochs_log_max) < 0 ||
			    hr_dopts.epochs_log_max < 4096) {
				fprintf(
				    stderr,
				    "hareplicated: bad --epochs-log-max '%s' (e.g. 8M; at least "
				    "4K)\n",
				    optarg);
				return 2;
			}
			break;
		case 'V': {
			uint64_t n;
			if (hr_parse_count(optarg, 1, HR_MAX_VCPUS, &n) < 0) {
				fprintf(stderr, "hareplicated: bad --max-vcpus '%s' (1..%d)\n",
					optarg, HR_MAX_VCPUS);
				return 2;
			}
			hr_dopts.max_vcpus = (unsigned)n;
			break;
		}
		case OPT_TLS_CERT:
			hr_dopts.tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			hr_dopts.tls_key = optarg;
			break;
		case OPT_TLS_CA:
			hr_dopts.tls_ca = optarg;
			break;
		case OPT_TLS_PIN:
			hr_dopts.tls_pin = optarg;
			break;
		case OPT_TLS_PSK:
			hr_dopts.tls_psk = optarg;
			break;
		case OPT_INSECURE:
			hr_dopts.insecure = 1;
			break;
		case 'f':
			hr_dopts.foreground = 1;
			break;
		case 'v':
			hr_dopts.verbose++;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hareplicated: unexpected argument '%s'\n", argv[optind]);
		fputs(usage, stderr);
		return 2;
	}
	if (hr_dopts.state_dir[0] != '/' || hr_dopts.control_path[0] != '/') {
		fprintf(stderr, "hareplicated: --state-dir and --control take absolute paths\n");
		return 2;
	}
	if (!hr_dopts.node) {
		if (gethostname(hostname, sizeof(hostname) - 1) < 0)
			hostname[0] = '\0';
		hr_dopts.node = hostname;
		if (hr_dopts.witness && !hr_wit_name_ok(hostname)) {
			fprintf(stderr,
				"hareplicated: the host name '%s' is no witness node name; give "
				"--node NAME\n",
				hostname);
			return 2;
		}
	}
	if (hr_dopts.cluster_mode &&
	    (hr_dopts.witness || hr_dopts.serve_witness || hr_dopts.unprotected_release)) {
		fprintf(stderr, "hareplicated: --cluster-mode: the cluster decides who runs a VM "
				"and whether its output leaves; no --witness, --serve-witness or "
				"--unprotected-output release with it\n");
		return 2;
	}
	if (hr_dopts.serve_witness && hr_dopts.witness) {
		fprintf(stderr, "hareplicated: --serve-witness and --witness: a witness does not "
				"ask another witness\n");
		return 2;
	}
	{
		char why[700];
		rc = hr_transport_init(why, sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "hareplicated: %s\n", why);
			return rc == -EINVAL ? 2 : 1;
		}
	}
	if (!hr_dopts.console_pattern) {
		snprintf(pattern, sizeof(pattern), "file:%s/%%s.console", hr_dopts.state_dir);
		hr_dopts.console_pattern = pattern;
	}
	{
		/* check the pattern with a sample name */
		char sample[4200];
		const char *p = strstr(hr_dopts.console_pattern, "%s");
		snprintf(sample, sizeof(sample), "%.*s%s%s",
			 p ? (int)(p - hr_dopts.console_pattern)
			   : (int)strlen(hr_dopts.console_pattern),
			 hr_dopts.console_pattern, p ? "vm" : "", p ? p + 2 : "");
		extern int hr_console_check_spec(const char *spec);
		if (hr_console_check_spec(sample) < 0) {
			fprintf(stderr,
				"hareplicated: bad --console-default '%s' (file:/ABS/PATH or "
				"tcp:HOST:PORT, %%s = VM name)\n",
				hr_dopts.console_pattern);
			return 2;
		}
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
		rc = daemonize();
		if (rc < 0) {
			fprintf(stderr, "hareplicated: cannot detach: %s\n", hr_strerror(rc));
			return 1;
		}
		hr_log_init("hareplicated", 0, hr_dopts.verbose);
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		} else {
			log_warnx(NULL, "pidfile %s: %s", pidfile, strerror(errno));
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
	if (pidfile)
		unlink(pidfile);
	log_info(NULL, "exiting");
	return 0;
}
