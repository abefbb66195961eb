/* stats.h - percentiles for the figures that drills, status and benchmarks report. */
#ifndef HR_STATS_H
#define HR_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Nearest-rank percentile (0 < pct <= 100) of v[0..n); sorts v in place; 0 if n == 0. */
uint64_t hr_percentile_u64(uint64_t *v, size_t n, double pct);
int64_t hr_percentile_i64(int64_t *v, size_t n, double pct);

#endif
