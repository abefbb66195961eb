/* t-util.c - the strict number parsers (src/common/util.c) every input goes through. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/util.h"
#include "tap.h"

static void count(const char *s, uint64_t min, uint64_t max, int want_rc, uint64_t want)
{
	uint64_t v = 12345;
	int rc = hr_parse_count(s, min, max, &v);
	ok(rc == want_rc && (rc || v == want), "count '%s' in [%llu, %llu] -> rc %d v %llu", s,
	   (unsigned long long)min, (unsigned long long)max, rc, (unsigned long long)v);
}

static void size(const char *s, int want_rc, uint64_t want)
{
	uint64_t v = 12345;
	int rc = hr_parse_size(s, &v);
	ok(rc == want_rc && (rc || v == want), "size '%s' -> rc %d v %llu", s, rc,
	   (unsigned long long)v);
}

static void dur(const char *s, uint64_t unit, int want_rc, uint64_t want)
{
	uint64_t v = 12345;
	int rc = hr_parse_duration_unit_us(s, unit, &v);
	ok(rc == want_rc && (rc || v == want), "duration '%s' (unit %llu us) -> rc %d v %llu", s,
	   (unsigned long long)unit, rc, (unsigned long long)v);
}

int main(void)
{
	plan(49);
	count("0", 0, 10, 0, 0);
	count("64", 1, 64, 0, 64);
	count("65", 1, 64, -ERANGE, 0);
	count("0", 1, 64, -ERANGE, 0);
	count("-1", 0, UINT64_MAX, -EINVAL, 0);
	count("+1", 0, UINT64_MAX, -EINVAL, 0);
	count(" 1", 0, UINT64_MAX, -EINVAL, 0);
	count("1 ", 0, UINT64_MAX, -EINVAL, 0);
	count("abc", 0, UINT64_MAX, -EINVAL, 0);
	count("12abc", 0, UINT64_MAX, -EINVAL, 0);
	count("", 0, UINT64_MAX, -EINVAL, 0);
	count("0x10", 0, UINT64_MAX, -EINVAL, 0);
	count("18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX);
	count("18446744073709551616", 0, UINT64_MAX, -ERANGE, 0);
	count("99999999999999999999999", 0, UINT64_MAX, -ERANGE, 0);
	ok(hr_parse_count(NULL, 0, 1, &(uint64_t){0}) == -EINVAL, "count NULL -> -EINVAL");

	size("4096", 0, 4096);
	size("4096B", -EINVAL, 0);
	size("256M", 0, 256ull << 20);
	size("16GiB", 0, 16ull << 30);
	size("1t", 0, 1ull << 40);
	size("-1", -EINVAL, 0);
	size("-1G", -EINVAL, 0);
	size(" 1G", -EINVAL, 0);
	size("", -EINVAL, 0);
	size("1G ", -EINVAL, 0);
	size("1GX", -EINVAL, 0);
	size("1iB", -EINVAL, 0);
	size("16777216T", -ERANGE, 0);
	size("99999999999999999999", -ERANGE, 0);

	dur("25ms", 1000, 0, 25000);
	dur("40", 1000, 0, 40000);
	dur("500us", 1000, 0, 500);
	dur("1s", 1000, 0, 1000000);
	dur("1.5s", 1000, 0, 1500000);
	dur("0.25", 1000, 0, 250);
	dur("5", 1000000, 0, 5000000);
	dur("abc", 1000000, -EINVAL, 0);
	dur("-5", 1000, -EINVAL, 0);
	dur("", 1000, -EINVAL, 0);
	dur("1.", 1000, -EINVAL, 0);
	dur(".5", 1000, -EINVAL, 0);
	dur("inf", 1000, -EINVAL, 0);
	dur("nan", 1000, -EINVAL, 0);
	dur("1e3", 1000, -EINVAL, 0);
	dur("10 s", 1000, -EINVAL, 0);
	dur("10h", 1000, -EINVAL, 0);
	dur("18446744073709551615s", 1000, -ERANGE, 0);
	dur("18446744073709551616", 1000, -ERANGE, 0);
	return tap_done();
}
