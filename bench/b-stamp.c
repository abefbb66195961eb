/* b-stamp - prefix every line with the wall clock in ms (CLOCK_REALTIME,
 * the clock of bash's $EPOCHREALTIME), for the logs of `make bench-xen`
 * (bench/b-xen-remus.sh, bench/b-xen-hr.sh) in dom0 of the nested Xen host,
 * where a shell loop stamping lines costs ~70 ms a line under TCG.
 *
 *   b-stamp              stamp stdin until EOF
 *   b-stamp -f FILE      follow FILE as it grows (polled every 5 ms; NULs,
 *                        CRs dropped), until killed
 *
 * A line is stamped when its first byte is read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* copy buf to stdout, a stamp before each line's first byte */
static void stamp_out(const char *buf, ssize_t n, int *at_bol)
{
	long long ms = now_ms();

	for (ssize_t i = 0; i < n; i++) {
		char c = buf[i];

		if (c == '\0' || c == '\r')
			continue;
		if (*at_bol) {
			printf("%lld ", ms);
			*at_bol = 0;
		}
		putchar(c);
		if (c == '\n')
			*at_bol = 1;
	}
	fflush(stdout);
}

static int stamp_fd(int fd, int follow)
{
	char buf[4096];
	int at_bol = 1;
	const struct timespec tick = {0, 5 * 1000 * 1000};

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (!follow)
				return 0;
			nanosleep(&tick, NULL);
			continue;
		}
		stamp_out(buf, n, &at_bol);
	}
}

int main(int argc, char **argv)
{
	int fd = 0, follow = 0, rc;

	if (argc == 3 && strcmp(argv[1], "-f") == 0) {
		const struct timespec tick = {0, 5 * 1000 * 1000};

		follow = 1;
		/* the file may not exist yet */
		while ((fd = open(argv[2], O_RDONLY)) < 0 && errno == ENOENT)
			nanosleep(&tick, NULL);
		if (fd < 0) {
			fprintf(stderr, "b-stamp: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: b-stamp [-f FILE]\n");
		return 2;
	}
	rc = stamp_fd(fd, follow);
	if (rc < 0)
		fprintf(stderr, "b-stamp: read: %s\n", strerror(-rc));
	return rc < 0;
}
