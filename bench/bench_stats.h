/* Latency statistics shared by the benchmark programs. */
#ifndef TLPB_BENCH_STATS_H
#define TLPB_BENCH_STATS_H

#include <stdint.h>
#include <stdlib.h>

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..1) of n nanosecond samples, in microseconds;
 * sorts ns in place. */
static inline double bench_percentile_us(uint64_t *ns, int n, double p)
{
    qsort(ns, (size_t)n, sizeof(*ns), bench_cmp_u64);
    int i = (int)(p * (n - 1) + 0.5);
    return (double)ns[i] / 1e3;
}

#endif
