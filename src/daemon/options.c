/*
 * options.c - hareplicated's options: one table for the command line and
 * the configuration file (hareplicated.conf(5), read with common/conf.h).
 * A file key is the long option without its "--"; a flag takes yes or no
 * there.  The file is read first and the command line overrides it; for
 * the peer-link security options and for the witness role, any of a group
 * on the command line replaces the whole group from the file (a file's
 * `insecure = yes` must not clash with --tls-ca given by hand).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/util.h"
#include "daemon/console.h"
#include "daemon/daemon.h"
#include "ha/token.h"
#include "ha/witness.h"

static const char usage_text[] =
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
    "  --disk-dir DIR          where this host keeps its copies of other hosts' VM\n"
    "                          disks (a backup never writes a path its peer names):\n"
    "                          DIR/VM/diskN.img, created sparse with the primary's\n"
    "                          sizes (default STATE-DIR/disks, created 0700); a VM\n"
    "                          started here keeps its own --disk paths\n"
    "  --disk-durability ack|flush\n"
    "                          what a backup's acknowledgement promises of a disk\n"
    "                          write: ack (default) - applied to its image, which\n"
    "                          survives the crash of either host; flush - also\n"
    "                          fdatasync'd when the epoch holds a guest flush, which\n"
    "                          survives both hosts losing power\n"
    "  --failover-timeout MS   a replica whose primary is silent this long promotes\n"
    "                          itself (default 200, at most 3600000).  Heartbeats\n"
    "                          go out 8 times per timeout from a thread of their\n"
    "                          own, so checkpoint pauses and CPU stalls of the\n"
    "                          primary shorter than the timeout less one heartbeat\n"
    "                          (175 ms by default) never look like a death; a\n"
    "                          longer timeout rides out longer stalls, at the cost\n"
    "                          of a slower failover (the VM is silent about\n"
    "                          timeout + 20 ms after its host dies silently; a\n"
    "                          killed process is seen at once)\n"
    "  --max-pause MS          an engine that made no progress this long (one\n"
    "                          checkpoint pause, a stuck call) is wedged: its\n"
    "                          heartbeats stop on purpose so that the peer takes\n"
    "                          over (default 4000; 100..600000)\n"
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
    "                          detach and log to syslog, facility daemon; to the\n"
    "                          stderr it was started with when no syslog daemon\n"
    "                          answers on /dev/log)\n"
    "  -v, --verbose           debug logging\n"
    "\n"
    "  --config FILE           read settings from FILE (default, if it exists:\n"
    "                          " HR_DEFAULT_CONFIG ")\n"
    "                          of `key = value` lines, the keys the long options\n"
    "                          above without \"--\", flags taking yes or no\n"
    "                          (hareplicated.conf(5)); the command line wins\n"
    "  --no-config             read no configuration file\n"
    "  --check-config          check the settings (file and command line, the TLS\n"
    "                          files included), print them in the file's syntax\n"
    "                          and exit: 0 good, 1 a file cannot be used, 2 bad\n"
    "  -V, --version           print the version and exit\n"
    "  -h, --help              this text\n"
    "\n"
    "HA transitions are logged with stable tokens (`hareplicate status` uses the\n"
    "same names):\n";

/* after the tokens (listed from ha/token.c's table) */
static const char usage_tail[] =
    "`hareplicate witness HOST[:PORT]` shows a witness's table.\n"
    "\n"
    "Exit status: 0 after SIGTERM (or --help, --version, a good --check-config),\n"
    "1 could not start or a file could not be used (the reason is printed),\n"
    "2 bad usage or a bad setting in the configuration file (FILE:LINE: why).\n";

enum {
	O_CONTROL = 1,
	O_LISTEN,
	O_STATE_DIR,
	O_DISK_DIR,
	O_DISK_DURABILITY,
	O_FAILOVER_TIMEOUT,
	O_MAX_PAUSE,
	O_UNPROTECTED_OUTPUT,
	O_MAX_MEMORY,
	O_MAX_VCPUS,
	O_EPOCHS_LOG_MAX,
	O_CONSOLE_DEFAULT,
	O_WITNESS,
	O_REPLICA_TAP,
	O_NODE,
	O_LEASE_MS,
	O_SERVE_WITNESS,
	O_TLS_CERT,
	O_TLS_KEY,
	O_TLS_CA,
	O_TLS_PIN,
	O_TLS_PSK,
	O_INSECURE,
	O_CLUSTER_MODE,
	O_PIDFILE,
	O_FOREGROUND,
	O_VERBOSE,
	O_NR_SETTINGS, /* the ones above are settings (file and command line) */
	O_CONFIG = O_NR_SETTINGS,
	O_NO_CONFIG,
	O_CHECK_CONFIG,
	O_VERSION,
	O_HELP,
	O_NR
};

enum { G_NONE, G_SECURITY, G_ROLE };

static const struct dopt {
	const char *name;
	int has_arg; /* 0: a flag (yes/no in the file) */
	int group;   /* G_*: the command line replaces the file's whole group */
} dopts[O_NR] = {
    [O_CONTROL] = {"control", 1, G_NONE},
    [O_LISTEN] = {"listen", 1, G_NONE},
    [O_STATE_DIR] = {"state-dir", 1, G_NONE},
    [O_DISK_DIR] = {"disk-dir", 1, G_NONE},
    [O_DISK_DURABILITY] = {"disk-durability", 1, G_NONE},
    [O_FAILOVER_TIMEOUT] = {"failover-timeout", 1, G_NONE},
    [O_MAX_PAUSE] = {"max-pause", 1, G_NONE},
    [O_UNPROTECTED_OUTPUT] = {"unprotected-output", 1, G_NONE},
    [O_MAX_MEMORY] = {"max-memory", 1, G_NONE},
    [O_MAX_VCPUS] = {"max-vcpus", 1, G_NONE},
    [O_EPOCHS_LOG_MAX] = {"epochs-log-max", 1, G_NONE},
    [O_CONSOLE_DEFAULT] = {"console-default", 1, G_NONE},
    [O_WITNESS] = {"witness", 1, G_ROLE},
    [O_REPLICA_TAP] = {"replica-tap", 1, G_NONE},
    [O_NODE] = {"node", 1, G_NONE},
    [O_LEASE_MS] = {"lease-ms", 1, G_NONE},
    [O_SERVE_WITNESS] = {"serve-witness", 0, G_ROLE},
    [O_TLS_CERT] = {"tls-cert", 1, G_SECURITY},
    [O_TLS_KEY] = {"tls-key", 1, G_SECURITY},
    [O_TLS_CA] = {"tls-ca", 1, G_SECURITY},
    [O_TLS_PIN] = {"tls-pin", 1, G_SECURITY},
    [O_TLS_PSK] = {"tls-psk", 1, G_SECURITY},
    [O_INSECURE] = {"insecure", 0, G_SECURITY},
    [O_CLUSTER_MODE] = {"cluster-mode", 0, G_NONE},
    [O_PIDFILE] = {"pidfile", 1, G_NONE},
    [O_FOREGROUND] = {"foreground", 0, G_NONE},
    [O_VERBOSE] = {"verbose", 0, G_NONE},
    [O_CONFIG] = {"config", 1, G_NONE},
    [O_NO_CONFIG] = {"no-config", 0, G_NONE},
    [O_CHECK_CONFIG] = {"check-config", 0, G_NONE},
    [O_VERSION] = {"version", 0, G_NONE},
    [O_HELP] = {"help", 0, G_NONE},
};

/* "  title: +a, +b, ..." for the tokens of kinds, wrapped at 78 columns. */
static void usage_tokens(FILE *f, const char *title, unsigned kinds)
{
	size_t col = (size_t)fprintf(f, "  %s:", title);

	for (unsigned t = 0; t < HR_TOK_NR; t++) {
		const char *s = hr_token_str((enum hr_token)t);
		if (!(hr_token_kinds((enum hr_token)t) & kinds))
			continue;
		if (col + 1 + strlen(s) + 1 > 78) {
			fputs("\n   ", f);
			col = 3;
		}
		col += (size_t)fprintf(f, " %s", s);
	}
	fputc('\n', f);
}

void hr_dopts_usage(FILE *f)
{
	fputs(usage_text, f);
	usage_tokens(f, "on entering a state", HR_TOKK_STATE);
	usage_tokens(f, "per event", HR_TOKK_EVENT);
	usage_tokens(f, "with a witness", HR_TOKK_LEASE);
	usage_tokens(f, "a witness logs", HR_TOKK_WITNESS);
	fputs(usage_tail, f);
}

/* Clear what the settings of group hold. */
static void clear_group(int group)
{
	if (group == G_SECURITY) {
		hr_dopts.tls_cert = hr_dopts.tls_key = hr_dopts.tls_ca = NULL;
		hr_dopts.tls_pin = hr_dopts.tls_psk = NULL;
		hr_dopts.insecure = 0;
	} else if (group == G_ROLE) {
		hr_dopts.witness = NULL;
		hr_dopts.serve_witness = 0;
	}
}

/*
 * Apply setting id with value val (NULL for a flag on the command line; a
 * flag's "yes" or "no" from the file).  pre is "--" on the command line,
 * "" in the file, so that the reason names what the user wrote.  0, or
 * -EINVAL with the reason in why.
 */
static int apply(int id, const char *val, const char *pre, char *why, size_t n)
{
	const char *name = dopts[id].name;
	int on = 1;
	uint64_t v;

	if (!dopts[id].has_arg && val) {
		if (strcmp(val, "yes") && strcmp(val, "no")) {
			snprintf(why, n, "%s%s takes yes or no, not '%s'", pre, name, val);
			return -EINVAL;
		}
		on = !strcmp(val, "yes");
	}
	switch (id) {
	case O_CONTROL:
		hr_dopts.control_path = val;
		break;
	case O_LISTEN:
		hr_dopts.listen = val;
		break;
	case O_STATE_DIR:
		hr_dopts.state_dir = val;
		break;
	case O_DISK_DIR:
		hr_dopts.disk_dir = val;
		break;
	case O_DISK_DURABILITY:
		if (strcmp(val, "ack") && strcmp(val, "flush")) {
			snprintf(why, n, "bad %s%s '%s' (ack or flush)", pre, name, val);
			return -EINVAL;
		}
		hr_dopts.disk_durability = val;
		break;
	case O_FAILOVER_TIMEOUT:
		if (hr_parse_count(val, 1, HR_FAILOVER_TIMEOUT_MAX_MS,
				   &hr_dopts.failover_timeout_ms) < 0) {
			snprintf(why, n, "bad %s%s '%s' (milliseconds, 1..%d)", pre, name, val,
				 HR_FAILOVER_TIMEOUT_MAX_MS);
			return -EINVAL;
		}
		break;
	case O_MAX_PAUSE:
		if (hr_parse_count(val, 100, 600000, &hr_dopts.max_pause_ms) < 0) {
			snprintf(why, n, "bad %s%s '%s' (milliseconds, 100..600000)", pre, name,
				 val);
			return -EINVAL;
		}
		break;
	case O_CONSOLE_DEFAULT:
		hr_dopts.console_pattern = val;
		break;
	case O_UNPROTECTED_OUTPUT:
		if (strcmp(val, "hold") && strcmp(val, "release")) {
			snprintf(why, n, "%s%s takes hold or release, not '%s'", pre, name, val);
			return -EINVAL;
		}
		hr_dopts.unprotected_release = !strcmp(val, "release");
		break;
	case O_REPLICA_TAP: {
		/* "%s" once at most; the result is checked when a replica is built */
		const char *pct = strstr(val, "%s");
		if (!*val || strlen(val) > 15 + 2 || strchr(val, ',') ||
		    (pct && strstr(pct + 2, "%")) || (!pct && strchr(val, '%'))) {
			snprintf(why, n,
				 "bad %s%s '%s' (an interface name, %%s standing for the VM name)",
				 pre, name, val);
			return -EINVAL;
		}
		hr_dopts.replica_tap = val;
		break;
	}
	case O_WITNESS:
		if (!*val) {
			snprintf(why, n, "%s%s takes HOST[:PORT]", pre, name);
			return -EINVAL;
		}
		hr_dopts.witness = val;
		break;
	case O_NODE:
		if (!hr_wit_name_ok(val)) {
			snprintf(why, n,
				 "bad %s%s '%s' ([A-Za-z0-9_.-], 1..64, not starting with '.' or "
				 "'-')",
				 pre, name, val);
			return -EINVAL;
		}
		hr_dopts.node = val;
		break;
	case O_LEASE_MS:
		if (hr_parse_count(val, HR_WIT_LEASE_MIN_MS, HR_WIT_LEASE_MAX_MS,
				   &hr_dopts.lease_ms) < 0) {
			snprintf(why, n, "bad %s%s '%s' (milliseconds, %d..%d)", pre, name, val,
				 HR_WIT_LEASE_MIN_MS, HR_WIT_LEASE_MAX_MS);
			return -EINVAL;
		}
		break;
	case O_SERVE_WITNESS:
		hr_dopts.serve_witness = on;
		break;
	case O_CLUSTER_MODE:
		hr_dopts.cluster_mode = on;
		break;
	case O_PIDFILE:
		hr_dopts.pidfile = val;
		break;
	case O_MAX_MEMORY:
		if (hr_parse_size(val, &v) < 0 || v < (2u << 20)) {
			snprintf(why, n, "bad %s%s '%s' (e.g. 16G; at least 2M)", pre, name, val);
			return -EINVAL;
		}
		hr_dopts.max_mem_bytes = v;
		break;
	case O_EPOCHS_LOG_MAX:
		if (hr_parse_size(val, &v) < 0 || v < 4096) {
			snprintf(why, n, "bad %s%s '%s' (e.g. 8M; at least 4K)", pre, name, val);
			return -EINVAL;
		}
		hr_dopts.epochs_log_max = v;
		break;
	case O_MAX_VCPUS:
		if (hr_parse_count(val, 1, HR_MAX_VCPUS, &v) < 0) {
			snprintf(why, n, "bad %s%s '%s' (1..%d)", pre, name, val, HR_MAX_VCPUS);
			return -EINVAL;
		}
		hr_dopts.max_vcpus = (unsigned)v;
		break;
	case O_TLS_CERT:
		hr_dopts.tls_cert = val;
		break;
	case O_TLS_KEY:
		hr_dopts.tls_key = val;
		break;
	case O_TLS_CA:
		hr_dopts.tls_ca = val;
		break;
	case O_TLS_PIN:
		hr_dopts.tls_pin = val;
		break;
	case O_TLS_PSK:
		hr_dopts.tls_psk = val;
		break;
	case O_INSECURE:
		hr_dopts.insecure = on;
		break;
	case O_FOREGROUND:
		hr_dopts.foreground = on;
		break;
	case O_VERBOSE:
		/* -v -v counts on the command line; the file says yes or no */
		hr_dopts.verbose = val ? on : hr_dopts.verbose + 1;
		break;
	}
	return 0;
}

static int conf_setting(void *arg, const char *key, const char *val, char *why, size_t n)
{
	for (int id = 1; id < O_NR_SETTINGS; id++) {
		if (strcmp(dopts[id].name, key))
			continue;
		char *copy = strdup(val); /* kept for the life of the process */
		if (!copy) {
			snprintf(why, n, "out of memory");
			return -ENOMEM;
		}
		int rc = apply(id, copy, "", why, n);
		if (rc < 0)
			free(copy);
		return rc;
	}
	snprintf(why, n, "unknown key '%s'%s", key,
		 !strcmp(key, "config") || !strcmp(key, "help") || !strcmp(key, "version") ||
			 !strcmp(key, "no-config") || !strcmp(key, "check-config")
		     ? " (a command-line option only)"
		     : "");
	return -EINVAL;
}

/* getopt_long's table from dopts (short options: -f -v -V -h). */
static void build_longopts(struct option *lo)
{
	for (int id = 1; id < O_NR; id++)
		lo[id - 1] = (struct option){
		    dopts[id].name, dopts[id].has_arg ? required_argument : no_argument, NULL, id};
	lo[O_NR - 1] = (struct option){NULL, 0, NULL, 0};
}

static int short_id(int c)
{
	switch (c) {
	case 'f':
		return O_FOREGROUND;
	case 'v':
		return O_VERBOSE;
	case 'V':
		return O_VERSION;
	case 'h':
		return O_HELP;
	}
	return c;
}

/* What only the whole set of settings can tell. */
static int check_all(void)
{
	static char hostname[256];
	static char pattern[4096];

	if (hr_dopts.state_dir[0] != '/' || hr_dopts.control_path[0] != '/') {
		fprintf(stderr, "hareplicated: --state-dir and --control take absolute paths\n");
		return -EINVAL;
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
			return -EINVAL;
		}
	}
	if (hr_dopts.serve_witness && hr_dopts.witness) {
		fprintf(stderr, "hareplicated: --serve-witness and --witness: a witness does not "
				"ask another witness\n");
		return -EINVAL;
	}
	if (hr_dopts.cluster_mode &&
	    (hr_dopts.witness || hr_dopts.serve_witness || hr_dopts.unprotected_release)) {
		fprintf(stderr, "hareplicated: --cluster-mode: the cluster decides who runs a VM "
				"and whether its output leaves; no --witness, --serve-witness or "
				"--unprotected-output release with it\n");
		return -EINVAL;
	}
	static char disk_dir[4096];
	if (!hr_dopts.disk_dir) {
		snprintf(disk_dir, sizeof(disk_dir), "%s/disks", hr_dopts.state_dir);
		hr_dopts.disk_dir = disk_dir;
	}
	if (hr_dopts.disk_dir[0] != '/') {
		fprintf(stderr, "hareplicated: --disk-dir takes an absolute path\n");
		return -EINVAL;
	}
	if (!hr_dopts.console_pattern) {
		snprintf(pattern, sizeof(pattern), "file:%s/%%s.console", hr_dopts.state_dir);
		hr_dopts.console_pattern = pattern;
	}
	/* check the pattern with a sample name */
	char sample[4200];
	const char *p = strstr(hr_dopts.console_pattern, "%s");
	snprintf(sample, sizeof(sample), "%.*s%s%s",
		 p ? (int)(p - hr_dopts.console_pattern) : (int)strlen(hr_dopts.console_pattern),
		 hr_dopts.console_pattern, p ? "vm" : "", p ? p + 2 : "");
	if (hr_console_check_spec(sample) < 0) {
		fprintf(stderr,
			"hareplicated: bad --console-default '%s' (file:/ABS/PATH or "
			"tcp:HOST:PORT, %%s = VM name)\n",
			hr_dopts.console_pattern);
		return -EINVAL;
	}
	if (hr_dopts.unprotected_release)
		fprintf(stderr, "hareplicated: --unprotected-output release: a torn link can make "
				"two hosts speak for one VM\n");
	return 0;
}

int hr_dopts_parse(int argc, char **argv, struct hr_dopts_run *run)
{
	struct option lo[O_NR];
	const char *config = HR_DEFAULT_CONFIG;
	int explicit_config = 0, c, rc;
	int cli_group[3] = {0};

	memset(run, 0, sizeof(*run));
	build_longopts(lo);
	/* pass 1: which file, and --help / --version before anything can fail */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "fvVh", lo, NULL)) != -1) {
		c = short_id(c);
		if (c == O_CONFIG) {
			config = optarg;
			explicit_config = 1;
		} else if (c == O_NO_CONFIG) {
			config = NULL;
		} else if (c == O_HELP) {
			run->help = 1;
		} else if (c == O_VERSION) {
			run->version = 1;
		} else if (c == O_CHECK_CONFIG) {
			run->check_config = 1;
		}
	}
	if (run->help || run->version)
		return 0;
	if (config && (explicit_config || access(config, F_OK) == 0)) {
		char err[1024];
		rc = hr_conf_read(config, conf_setting, NULL, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "hareplicated: %s\n", err);
			return rc;
		}
		run->config = config;
	}
	/* pass 2: the command line, over the file */
	opterr = 1;
	optind = 0;
	while ((c = getopt_long(argc, argv, "fvVh", lo, NULL)) != -1) {
		char why[600];
		c = short_id(c);
		if (c <= 0 || c >= O_NR) {
			hr_dopts_usage(stderr);
			return -EINVAL;
		}
		if (c >= O_NR_SETTINGS)
			continue; /* pass 1's */
		int g = dopts[c].group;
		if (g != G_NONE && !cli_group[g]) {
			clear_group(g);
			cli_group[g] = 1;
		}
		if (apply(c, optarg, "--", why, sizeof(why)) < 0) {
			fprintf(stderr, "hareplicated: %s\n", why);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hareplicated: unexpected argument '%s'\n", argv[optind]);
		hr_dopts_usage(stderr);
		return -EINVAL;
	}
	return check_all();
}

static void print_str(FILE *f, int id, const char *v)
{
	if (v)
		fprintf(f, "%s = %s\n", dopts[id].name, v);
	else
		fprintf(f, "# %s: not set\n", dopts[id].name);
}

static void print_flag(FILE *f, int id, int on)
{
	fprintf(f, "%s = %s\n", dopts[id].name, on ? "yes" : "no");
}

void hr_dopts_print(FILE *f, const struct hr_dopts_run *run)
{
	fprintf(f, "# hareplicated %s: settings from %s and the command line\n", PACKAGE_VERSION,
		run->config ? run->config : "(no file)");
	print_str(f, O_CONTROL, hr_dopts.control_path);
	print_str(f, O_LISTEN, hr_dopts.listen);
	print_str(f, O_STATE_DIR, hr_dopts.state_dir);
	print_str(f, O_DISK_DIR, hr_dopts.disk_dir);
	print_str(f, O_DISK_DURABILITY,
		  hr_dopts.disk_durability ? hr_dopts.disk_durability : "ack");
	fprintf(f, "failover-timeout = %llu\n", (unsigned long long)hr_dopts.failover_timeout_ms);
	fprintf(f, "max-pause = %llu\n", (unsigned long long)hr_dopts.max_pause_ms);
	print_str(f, O_UNPROTECTED_OUTPUT, hr_dopts.unprotected_release ? "release" : "hold");
	fprintf(f, "max-memory = %llu\n", (unsigned long long)hr_dopts.max_mem_bytes);
	fprintf(f, "max-vcpus = %u\n", hr_dopts.max_vcpus);
	fprintf(f, "epochs-log-max = %llu\n", (unsigned long long)hr_dopts.epochs_log_max);
	print_str(f, O_CONSOLE_DEFAULT, hr_dopts.console_pattern);
	print_str(f, O_WITNESS, hr_dopts.witness);
	print_str(f, O_REPLICA_TAP, hr_dopts.replica_tap);
	print_str(f, O_NODE, hr_dopts.node);
	if (hr_dopts.lease_ms)
		fprintf(f, "lease-ms = %llu\n", (unsigned long long)hr_dopts.lease_ms);
	else
		fprintf(f, "# lease-ms: not set (twice failover-timeout, at least 1000)\n");
	print_flag(f, O_SERVE_WITNESS, hr_dopts.serve_witness);
	print_flag(f, O_CLUSTER_MODE, hr_dopts.cluster_mode);
	print_str(f, O_TLS_CERT, hr_dopts.tls_cert);
	print_str(f, O_TLS_KEY, hr_dopts.tls_key);
	print_str(f, O_TLS_CA, hr_dopts.tls_ca);
	print_str(f, O_TLS_PIN, hr_dopts.tls_pin);
	print_str(f, O_TLS_PSK, hr_dopts.tls_psk);
	print_flag(f, O_INSECURE, hr_dopts.insecure);
	print_str(f, O_PIDFILE, hr_dopts.pidfile);
	print_flag(f, O_FOREGROUND, hr_dopts.foreground);
	print_flag(f, O_VERBOSE, hr_dopts.verbose > 0);
}
