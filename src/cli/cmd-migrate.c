/* cmd-migrate.c - `hareplicate migrate`: move a running VM to another host. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "common/util.h"
#include "common/kv.h"

static const char migrate_help[] =
    "Run on the host that runs VM: move it to the hareplicated at HOST (default\n"
    "port 7788), live.  The destination builds the VM as a backup would; memory\n"
    "is copied while the guest runs, then one epoch, then the hand-off: the\n"
    "guest pauses here, the last epoch goes, the destination commits it, runs\n"
    "the guest and confirms; only then does the VM stop here.  Output the guest\n"
    "produced is released as under protection (after the destination holds its\n"
    "epoch); the last epoch's output leaves from the destination.  At every\n"
    "moment one host runs the VM with its output released.\n\n"
    "A protected VM: its backup follows.  When the live phase starts its backup\n"
    "is told the VM stops (it discards its copy; the VM is unprotected until\n"
    "the hand-off); after the hand-off the destination asks the VM's backup\n"
    "host for a new backup (a full synchronisation) - or, when the destination\n"
    "is that host, this host, which then holds the backup.  If the migration\n"
    "fails, is cancelled, or the destination or the link dies before the\n"
    "hand-off, the VM runs on here (a protected one re-protects itself with its\n"
    "old backup host) and the destination discards its copy.  If the link dies\n"
    "after the last epoch left but before the destination confirmed, the\n"
    "result is in doubt: this host holds the guest's output and asks the\n"
    "destination, standing down if the VM runs there.\n\n"
    "  --max-bandwidth RATE  bytes per second, e.g. 100M: paces the live phase\n"
    "                        (the final epoch goes at full speed)\n"
    "  --json                JSON objects on stdout, one per line: one per live\n"
    "                        round (\"event\": \"round\": pages from each set, zero\n"
    "                        pages skipped, the never-sent set's size, dirty\n"
    "                        rate, bytes so far), one per change of phase\n"
    "                        (\"event\": \"phase\") and the final report\n"
    "  --cancel              cancel VM's migration in progress (Ctrl-C of the\n"
    "                        migrate command does the same)\n"
    "  --extend-live         the live phase does not end by itself: it keeps\n"
    "                        sending what the guest writes, round after round\n"
    "                        (1 s), until `hareplicate migrate VM --end-live`\n"
    "  --end-live            end VM's live phase at its next round: the last\n"
    "                        epoch and the hand-off follow\n"
    "  --control PATH        hareplicated's control socket (default\n"
    "                        $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "On a terminal a progress line shows the phase (connecting, live, handoff),\n"
    "bytes sent, rate and a rough ETA.  The final report (total time, downtime:\n"
    "the guest paused here until the destination confirmed it runs, bytes,\n"
    "epochs) is also in STATE-DIR/VM.migration on this host.\n\n"
    "Exit status: 0 migrated, 1 refused or failed (the VM runs on here; the\n"
    "reason is printed), 2 bad usage, 69 hareplicated not reachable, busy or\n"
    "not answering.\n";

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

struct prog {
	int json, tty, shown;
	char phase[16];			    /* --json: the last phase printed */
	uint64_t last_bytes[2], last_ms[2]; /* [0] ticks, [1] rounds */
	double rate;
};

static uint64_t getu(const struct hr_kvline *kv, const char *k)
{
	uint64_t v = 0;
	hr_kv_getu(kv, k, &v);
	return v;
}

static void progress(struct prog *p, const struct hr_kvline *kv)
{
	const char *phase = hr_kv_get(kv, "phase");
	uint64_t bytes = getu(kv, "bytes"), ms = getu(kv, "elapsed_ms"),
		 mem = getu(kv, "memory_bytes");
	const char *kind = hr_kv_get(kv, "kind");
	int round_end = kind && !strcmp(kind, "round"); /* else a tick: every second */

	/* the rate over the last second (ticks) or the last round (rounds) */
	int r = round_end;
	if (ms > p->last_ms[r] && bytes >= p->last_bytes[r])
		p->rate =
		    (double)(bytes - p->last_bytes[r]) * 1000.0 / (double)(ms - p->last_ms[r]);
	p->last_bytes[r] = bytes;
	p->last_ms[r] = ms;
	/* ETA: the live phase ends when the never-sent set is empty; it gets the
	 * share of the last round's pages it had (the rest went to dirty ones) */
	double eta = p->rate > 0 && mem > bytes ? (double)(mem - bytes) / p->rate : -1;
	uint64_t ns = getu(kv, "never_sent_sent"), dp = getu(kv, "dirty_sent");
	if (hr_kv_get(kv, "never_sent_left") && p->rate > 0 && ns + dp > 0) {
		double share = (double)ns / (double)(ns + dp);
		uint64_t left = getu(kv, "never_sent_left") * 4096;
		eta = left == 0 ? 0 : share > 0 ? (double)left / (p->rate * share) : -1;
	}
	/* --json: an object per live round, and one when the phase changes */
	if (p->json && !round_end && phase && !strcmp(phase, p->phase))
		return;
	if (p->json) {
		snprintf(p->phase, sizeof(p->phase), "%s", phase ? phase : "");
		char eta_j[32] = "null";
		if (eta >= 0)
			snprintf(eta_j, sizeof(eta_j), "%.1f", eta);
		/* the live phase's last round (MPLM): pages from each set */
		char rj[320] = "";
		if (round_end && hr_kv_get(kv, "round"))
			snprintf(rj, sizeof(rj),
				 ", \"round\": %llu, \"never_sent_sent\": %llu, \"dirty_sent\": "
				 "%llu, \"zero_skipped\": %llu, \"never_sent_left\": %llu, "
				 "\"dirty_rate\": %llu",
				 (unsigned long long)getu(kv, "round"),
				 (unsigned long long)getu(kv, "never_sent_sent"),
				 (unsigned long long)getu(kv, "dirty_sent"),
				 (unsigned long long)getu(kv, "zero_skipped"),
				 (unsigned long long)getu(kv, "never_sent_left"),
				 (unsigned long long)getu(kv, "dirty_rate"));
		printf("{\"event\": \"%s\", \"phase\": \"%s\", \"elapsed_ms\": %llu, "
		       "\"bytes\": %llu, \"rate_bps\": %.0f, \"eta_s\": %s%s}\n",
		       round_end ? "round" : "phase", phase ? phase : "", (unsigned long long)ms,
		       (unsigned long long)bytes, p->rate, eta_j, rj);
		fflush(stdout);
	} else if (p->tty) {
		char eta_s[32] = "-";
		if (eta >= 0)
			snprintf(eta_s, sizeof(eta_s), "~%.0fs", eta);
		fprintf(stderr,
			"\r%-10s %8.1f MiB  %7.1f MiB/s  %5.1fs  eta %-8s  never-sent %.1f MiB",
			phase ? phase : "", bytes / 1048576.0, p->rate / 1048576.0, ms / 1000.0,
			eta_s, getu(kv, "never_sent_left") * 4096 / 1048576.0);
		p->shown = 1;
	}
}

static void report(struct prog *p, const struct hr_kvline *kv)
{
	const char *res = hr_kv_get(kv, "result"), *err = hr_kv_get(kv, "error");
	uint64_t live = getu(kv, "live_bytes"), ep = getu(kv, "epoch_bytes");
	int ok = res && !strcmp(res, "ok");

	if (p->shown) {
		fputc('\n', stderr);
		p->shown = 0;
	}
	if (p->json) {
		printf("{\"report\": true, \"result\": \"%s\", \"to\": \"%s\", \"total_ms\": %llu, "
		       "\"downtime_ms\": %.3f, \"bytes\": %llu, \"live_bytes\": %llu, "
		       "\"epoch_bytes\": %llu, \"epochs\": %llu, \"rounds\": %llu, \"dirty_rate\": "
		       "%llu, \"in_doubt\": %s}\n",
		       ok ? "ok" : "failed", hr_kv_get(kv, "to") ? hr_kv_get(kv, "to") : "",
		       (unsigned long long)getu(kv, "total_ms"), getu(kv, "downtime_us") / 1000.0,
		       (unsigned long long)(live + ep), (unsigned long long)live,
		       (unsigned long long)ep, (unsigned long long)getu(kv, "epochs"),
		       (unsigned long long)getu(kv, "rounds"),
		       (unsigned long long)getu(kv, "dirty_rate"),
		       getu(kv, "in_doubt") ? "true" : "false");
	} else if (ok) {
		printf("total %llu ms, downtime %.1f ms, %.1f MiB sent (%.1f live in %llu rounds, "
		       "%.1f in %llu epochs)\n",
		       (unsigned long long)getu(kv, "total_ms"), getu(kv, "downtime_us") / 1000.0,
		       (live + ep) / 1048576.0, live / 1048576.0,
		       (unsigned long long)getu(kv, "rounds"), ep / 1048576.0,
		       (unsigned long long)getu(kv, "epochs"));
	}
	(void)err; /* the final error line says it */
	fflush(stdout);
}

static int body_line(struct prog *p, char *line)
{
	struct hr_kvline kv;
	if (!strncmp(line, "progress=", 9) || !strncmp(line, "report=", 7) ||
	    !strncmp(line, "note=", 5)) {
		if (hr_kv_parse(&kv, line, strlen(line)) < 0)
			return 0;
		if (hr_kv_get(&kv, "progress"))
			progress(p, &kv);
		else if (hr_kv_get(&kv, "report"))
			report(p, &kv);
		else if (hr_kv_get(&kv, "text"))
			fprintf(stderr, "hareplicate migrate: note: %s\n", hr_kv_get(&kv, "text"));
		hr_kv_free(&kv);
		return 0;
	}
	if (!p->json)
		printf("%s\n", line);
	return 0;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* The migrate request, its body lines as they come, the final line. */
static int migrate_stream(const char *path, const char *vm, struct hr_sbuf *req, struct prog *p)
{
	struct hr_sbuf line = {0}, in = {0};
	struct timeval tv = {60, 0}; /* progress comes every second */
	char buf[4096];
	int fd = ctl_connect(path), rc = 1, cancelled = 0;

	if (fd < 0) {
		fprintf(stderr, "hareplicate migrate: cannot reach hareplicated at %s: %s%s\n",
			path, strerror(-fd),
			fd == -ENOENT || fd == -ECONNREFUSED
			    ? " (is hareplicated running? see --control)"
			    : "");
		return HR_CTL_EXIT_UNREACHABLE;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	hr_kv_add(&line, "v", "1");
	hr_kv_add(&line, "cmd", "migrate");
	hr_sbuf_add(&line, " ", 1);
	hr_sbuf_add(&line, req->p, req->len);
	hr_sbuf_add(&line, "\n", 1);
	if (line.oom || hr_write_all(fd, line.p, line.len) < 0) {
		fprintf(stderr, "hareplicate migrate: cannot send the request to %s\n", path);
		rc = HR_CTL_EXIT_UNREACHABLE;
		goto out;
	}
	for (;;) {
		if (g_interrupted && !cancelled) {
			struct hr_sbuf c = {0};
			FILE *null = fopen("/dev/null", "w");
			cancelled = 1;
			fprintf(stderr, "\nhareplicate migrate: cancelling the migration of %s\n",
				vm);
			hr_kv_add(&c, "vm", vm);
			hr_kv_add(&c, "cancel", "1");
			hr_ctl_request(path, "migrate", &c, null ? null : stdout);
			if (null)
				fclose(null);
			hr_sbuf_free(&c);
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr,
				"hareplicate migrate: hareplicated at %s is not answering: %s\n",
				path, errno == EAGAIN ? "no progress for 60 s" : strerror(errno));
			rc = HR_CTL_EXIT_UNREACHABLE;
			goto out;
		}
		if (n == 0)
			break;
		hr_sbuf_add(&in, buf, (size_t)n);
		char *nl;
		while (in.len && (nl = memchr(in.p, '\n', in.len))) {
			*nl = '\0';
			size_t used = (size_t)(nl - in.p) + 1;
			if (!strcmp(in.p, "ok")) {
				rc = 0;
			} else if (!strncmp(in.p, "error: ", 7)) {
				if (p->shown)
					fputc('\n', stderr);
				fprintf(stderr, "hareplicate migrate: %s\n", in.p + 7);
				rc = !strncmp(in.p, "error: hareplicated busy", 24)
					 ? HR_CTL_EXIT_UNREACHABLE
					 : 1;
			} else {
				body_line(p, in.p);
			}
			memmove(in.p, in.p + used, in.len - used);
			in.len -= used;
		}
	}
out:
	close(fd);
	hr_sbuf_free(&line);
	hr_sbuf_free(&in);
	return rc;
}

static int cmd_migrate(int argc, char **argv)
{
	enum { O_BW = 1000, O_JSON, O_CANCEL, O_EXTEND, O_END, O_CONTROL };
	static const struct option longopts[] = {
	    {"max-bandwidth", required_argument, NULL, O_BW},
	    {"json", no_argument, NULL, O_JSON},
	    {"cancel", no_argument, NULL, O_CANCEL},
	    {"extend-live", no_argument, NULL, O_EXTEND},
	    {"end-live", no_argument, NULL, O_END},
	    {"control", required_argument, NULL, O_CONTROL},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct hr_cmd *self = &hr_cmd_migrate;
	const char *control = NULL, *bw = NULL, *action = NULL;
	struct prog p = {0};
	struct hr_sbuf req = {0};
	uint64_t bw_bytes = 0;
	int c, rc, extend = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_BW:
			bw = optarg;
			break;
		case O_JSON:
			p.json = 1;
			break;
		case O_EXTEND:
			extend = 1;
			break;
		case O_CANCEL:
		case O_END:
			if (action) {
				fprintf(stderr, "hareplicate migrate: --cancel and --end-live "
						"exclude each other\n");
				return hr_cmd_usage(self);
			}
			action = c == O_CANCEL ? "cancel" : "end_live";
			break;
		case O_CONTROL:
			control = optarg;
			break;
		case 'h':
			return hr_cmd_help(self);
		default:
			return hr_cmd_usage(self);
		}
	}
	int nargs = argc - optind;
	if (nargs < 1 || (action && (nargs != 1 || extend || bw)) || (!action && nargs != 2)) {
		fprintf(stderr, "hareplicate migrate: %s\n",
			action ? "give only the VM with --cancel / --end-live"
			       : "VM and HOST[:PORT] are required");
		return hr_cmd_usage(self);
	}
	if (bw && (hr_parse_size(bw, &bw_bytes) < 0 || !bw_bytes)) {
		fprintf(stderr,
			"hareplicate migrate: bad --max-bandwidth '%s' (bytes per second, "
			"e.g. 100M)\n",
			bw);
		return 2;
	}
	hr_kv_add(&req, "vm", argv[optind]);
	if (action) {
		hr_kv_add(&req, action, "1");
		rc = hr_ctl_request(hr_ctl_path(control), "migrate", &req, stdout);
		hr_sbuf_free(&req);
		return rc;
	}
	hr_kv_add(&req, "to", argv[optind + 1]);
	if (bw_bytes)
		hr_kv_addu(&req, "max_bandwidth", bw_bytes);
	if (extend)
		hr_kv_add(&req, "extend_live", "1");
	const char *hold = getenv("HAREPLICATE_TEST_HANDOFF_HOLD_MS"); /* tests only */
	if (hold && *hold)
		hr_kv_add(&req, "test_hold_ms", hold);
	p.tty = isatty(2);
	struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: read returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = migrate_stream(hr_ctl_path(control), argv[optind], &req, &p);
	hr_sbuf_free(&req);
	return rc;
}

const struct hr_cmd hr_cmd_migrate = {
    "migrate",
    "VM HOST[:PORT] [--max-bandwidth RATE] [--extend-live] [--json] | VM --cancel | VM "
    "--end-live",
    migrate_help, cmd_migrate};
