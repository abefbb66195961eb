/* ctl.c - talk to hareplicated over its control socket (see ctl.h). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/ctl.h"
#include "common/kv.h"
#include "common/paths.h"
#include "common/util.h"

#define CTL_REPLY_TIMEOUT_S 60

const char *hr_ctl_path(const char *opt)
{
	const char *env = getenv("HAREPLICATE_CONTROL");
	if (opt)
		return opt;
	return env && *env ? env : HR_DEFAULT_CONTROL;
}

int hr_ctl_request(const char *path, const char *cmd, struct hr_sbuf *req, FILE *out)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {CTL_REPLY_TIMEOUT_S, 0};
	struct hr_sbuf line = {0}, reply = {0};
	char buf[4096];
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "hareplicate %s: cannot reach hareplicated at %s: path too long\n",
			cmd, path);
		return HR_CTL_EXIT_UNREACHABLE;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		fprintf(stderr, "hareplicate %s: cannot reach hareplicated at %s: %s%s\n", cmd,
			path, strerror(e),
			e == ENOENT || e == ECONNREFUSED
			    ? " (is hareplicated running? see --control)"
			: e == EACCES ? " (root only)"
				      : "");
		if (fd >= 0)
			close(fd);
		return HR_CTL_EXIT_UNREACHABLE;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	hr_kv_add(&line, "v", "1");
	hr_kv_add(&line, "cmd", cmd);
	if (req && req->len) {
		hr_sbuf_add(&line, " ", 1);
		hr_sbuf_add(&line, req->p, req->len);
	}
	hr_sbuf_add(&line, "\n", 1);
	if (line.oom || line.len > HR_KV_MAX_LINE) {
		fprintf(stderr, "hareplicate %s: request too large\n", cmd);
		rc = 1;
		goto out;
	}
	/* SIGPIPE is ignored (main): a daemon that closed on us (busy) may
	 * still have said why, so read its answer after a failed write too */
	int wrc = hr_write_all(fd, line.p, line.len);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && !wrc) {
			fprintf(stderr,
				"hareplicate %s: hareplicated at %s is not answering (busy?): %s\n",
				cmd, path, errno == EAGAIN ? "no reply in time" : strerror(errno));
			rc = HR_CTL_EXIT_UNREACHABLE;
			goto out;
		}
		if (n <= 0)
			break;
		hr_sbuf_add(&reply, buf, (size_t)n);
	}
	if (wrc < 0 && !reply.len) {
		fprintf(stderr, "hareplicate %s: cannot reach hareplicated at %s: %s\n", cmd, path,
			strerror(-wrc));
		rc = HR_CTL_EXIT_UNREACHABLE;
		goto out;
	}
	/* the last line is `ok` or `error: ...` */
	if (!reply.len || reply.p[reply.len - 1] != '\n') {
		fprintf(
		    stderr,
		    "hareplicate %s: hareplicated at %s closed the connection without an answer\n",
		    cmd, path);
		rc = 1;
		goto out;
	}
	reply.p[--reply.len] = '\0';
	char *last = strrchr(reply.p, '\n');
	char *final = last ? last + 1 : reply.p;
	if (last)
		fwrite(reply.p, 1, (size_t)(last - reply.p + 1), out);
	if (!strcmp(final, "ok")) {
		rc = 0;
	} else if (!strncmp(final, "error: hareplicated busy", 24)) {
		fprintf(stderr, "hareplicate %s: %s (at %s; try again)\n", cmd, final + 7, path);
		rc = HR_CTL_EXIT_UNREACHABLE;
	} else if (!strncmp(final, "error: ", 7)) {
		fprintf(stderr, "hareplicate %s: %s\n", cmd, final + 7);
		rc = 1;
	} else {
		fprintf(stderr, "hareplicate %s: unexpected reply from hareplicated: %s\n", cmd,
			final);
		rc = 1;
	}
out:
	fflush(out);
	close(fd);
	hr_sbuf_free(&line);
	hr_sbuf_free(&reply);
	return rc;
}

int hr_ctl_vm_command(const struct hr_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"control", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *control = NULL;
	struct hr_sbuf req = {0};
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case 'h':
			return hr_cmd_help(cmd);
		default:
			return hr_cmd_usage(cmd);
		}
	}
	if (argc - optind != 1)
		return hr_cmd_usage(cmd);
	hr_kv_add(&req, "vm", argv[optind]);
	rc = hr_ctl_request(hr_ctl_path(control), cmd->name, &req, stdout);
	hr_sbuf_free(&req);
	return rc;
}
