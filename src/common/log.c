#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_to_stderr = 1;
static int log_verbose;

int hr_log_syslog_available(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int type[2] = {SOCK_DGRAM, SOCK_STREAM};

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", _PATH_LOG);
	/* as the C library's syslog(): a datagram socket, else a stream one */
	for (int i = 0; i < 2; i++) {
		int fd = socket(AF_UNIX, type[i] | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 0;
		int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		int err = errno;
		close(fd);
		if (rc == 0)
			return 1;
		if (err != EPROTOTYPE)
			return 0;
	}
	return 0;
}

int hr_log_init(const char *ident, int to_stderr, int verbose)
{
	log_verbose = verbose;
	log_to_stderr = to_stderr || !hr_log_syslog_available();
	if (!log_to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	return !log_to_stderr;
}

void hr_vlog(enum hr_log_level lvl, const char *vm, const char *fmt, va_list ap)
{
	char msg[1024];

	if (lvl == HR_LOG_DEBUG && log_verbose < 1)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!log_to_stderr) {
		if (vm)
			syslog((int)lvl, "vm %s: %s", vm, msg);
		else
			syslog((int)lvl, "%s", msg);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	static const char *const tag[8] = {"", "", "", "error", "warning", "", "info", "debug"};
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s: %s%s%s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, tag[lvl & 7], vm ? "vm " : "", vm ? vm : "", vm ? ": " : "",
		msg);
}

void hr_log(enum hr_log_level lvl, const char *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	hr_vlog(lvl, vm, fmt, ap);
	va_end(ap);
}
