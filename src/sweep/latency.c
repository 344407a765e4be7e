/* Decision latencies: every decision's seconds, for the quantiles a worker reports at its end
 * and `kiln sweep simulate` prints (bench/sweep_bench.sh reads both). */
#include <stdlib.h>
#include "sweep_internal.h"

kiln_status kiln_sweep_latency_add(sweep_latency *l, double seconds)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        double *grown = realloc(l->s, (size_t)cap * sizeof *grown);
        KILN_CHECK_ALLOC(grown);
        l->s = grown;
        l->cap = cap;
    }
    l->s[l->n++] = seconds;
    l->sum += seconds;
    return KILN_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double kiln_sweep_latency_quantile(sweep_latency *l, double q)
{
    if (!l->n) return 0.0;
    qsort(l->s, (size_t)l->n, sizeof *l->s, cmp_double);
    return l->s[(int64_t)(q * (double)(l->n - 1))];
}

void kiln_sweep_latency_free(sweep_latency *l)
{
    free(l->s);
    *l = (sweep_latency){0};
}
