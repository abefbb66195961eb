/* drill-net.c - processes and network namespaces for `hareplicate drill`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ha/drill/drill.h"
#include "common/util.h"

static void child_redirect(int out_fd, const char *errlog)
{
	int devnull = open("/dev/null", O_RDWR);
	int err = errlog ? open(errlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;

	if (devnull >= 0)
		dup2(devnull, 0);
	if (err < 0)
		err = devnull;
	dup2(out_fd >= 0 ? out_fd : err, 1);
	dup2(err, 2);
}

int drill_cmd(char *const argv[], char *out, size_t size, const char *errlog, unsigned timeout_ms)
{
	int pfd[2] = {-1, -1};
	size_t n = 0;
	int status;

	if (out && pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		if (out) {
			close(pfd[0]);
			close(pfd[1]);
		}
		return -e;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		child_redirect(out ? pfd[1] : -1, errlog);
		execvp(argv[0], argv);
		fprintf(stderr, "drill: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	uint64_t end = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (out) {
		close(pfd[1]);
		for (;;) {
			uint64_t now = hr_now_ns();
			if (now >= end)
				break;
			struct pollfd p = {pfd[0], POLLIN, 0};
			if (poll(&p, 1, (int)((end - now) / 1000000 + 1)) <= 0)
				continue;
			char tmp[4096];
			ssize_t r = read(pfd[0], tmp, sizeof(tmp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			size_t take = (size_t)r < size - 1 - n ? (size_t)r : size - 1 - n;
			memcpy(out + n, tmp, take);
			n += take;
		}
		close(pfd[0]);
		out[n] = '\0';
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (hr_now_ns() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *drill_ip_bin = "ip";

int drill_ip(const char *errlog, const char *fmt, ...)
{
	char line[512], *argv[40], *save = NULL;
	unsigned n = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char copy[sizeof(line)];
	memcpy(copy, line, sizeof(line));
	argv[n++] = (char *)drill_ip_bin;
	for (char *t = strtok_r(copy, " ", &save); t && n < 39; t = strtok_r(NULL, " ", &save))
		argv[n++] = t;
	argv[n] = NULL;
	int rc = drill_cmd(argv, NULL, 0, errlog, 10000);
	if (rc != 0) {
		fprintf(stderr, "hareplicate drill: `ip %s` failed (%d)%s%s\n", line, rc,
			errlog ? "; see " : "", errlog ? errlog : "");
		return -1;
	}
	return 0;
}

int drill_enter_netns(const char *netns)
{
	char path[256];

	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

pid_t drill_spawn(const char *netns, char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid != 0) {
		if (pid > 0)
			setpgid(pid, pid);
		return pid;
	}
	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	child_redirect(-1, log);
	if (netns && drill_enter_netns(netns) < 0) {
		fprintf(stderr, "drill: cannot enter netns %s: %s\n", netns, strerror(errno));
		_exit(127);
	}
	execv(argv[0], argv);
	fprintf(stderr, "drill: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	int ppid;
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

unsigned drill_descendants(pid_t root, pid_t *pids, unsigned max)
{
	unsigned n = 0;
	int grew = 1;

	/* a few passes over /proc: enough for daemon -> worker (-> helper) */
	for (int pass = 0; grew && pass < 4; pass++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		grew = 0;
		if (!d)
			return n;
		while ((de = readdir(d)) && n < max) {
			pid_t pid = atoi(de->d_name);
			if (pid <= 0)
				continue;
			pid_t pp = ppid_of(pid);
			int parent_known = pp == root, already = 0;
			for (unsigned i = 0; i < n; i++) {
				if (pids[i] == pid)
					already = 1;
				if (pids[i] == pp)
					parent_known = 1;
			}
			if (parent_known && !already) {
				pids[n++] = pid;
				grew = 1;
			}
		}
		closedir(d);
	}
	return n;
}
