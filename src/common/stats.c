#include <stdlib.h>

#include "common/stats.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static size_t rank(size_t n, double pct)
{
	size_t k = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	return k > n ? n : k;
}

uint64_t hr_percentile_u64(uint64_t *v, size_t n, double pct)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[rank(n, pct) - 1];
}

int64_t hr_percentile_i64(int64_t *v, size_t n, double pct)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_i64);
	return v[rank(n, pct) - 1];
}
