#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "util.h"

int hr_parse_size(const char *s, uint64_t *bytes_r)
{
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = 1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1ull << 40;
		end++;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (*end && strcasecmp(end, "iB") && strcasecmp(end, "B"))
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*bytes_r = v * mul;
	return 0;
}

int hr_parse_duration_us(const char *s, uint64_t *us_r)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	double mul;
	if (!*end || !strcmp(end, "ms"))
		mul = 1e3;
	else if (!strcmp(end, "us"))
		mul = 1;
	else if (!strcmp(end, "s"))
		mul = 1e6;
	else
		return -EINVAL;
	*us_r = (uint64_t)(v * mul + 0.5);
	return 0;
}

uint64_t hr_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int hr_write_all(int fd, const void *buf, uint64_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t r = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (uint64_t)r;
	}
	return 0;
}

int hr_read_all(int fd, void *buf, uint64_t len)
{
	char *p = buf;
	while (len) {
		ssize_t r = read(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -HR_EBADSNAP;
		p += r;
		len -= (uint64_t)r;
	}
	return 0;
}
