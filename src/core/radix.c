/* LSD radix sort of 64-bit keys with 16-bit digits: each pass counts the digit's values, turns
 * the counts into places and moves every pair to its place in key order, stably, so after the
 * last pass the keys are sorted and equal keys keep their first order. A pass whose digit is the
 * same in every key moves nothing and is skipped. */
#include <stdlib.h>
#include <string.h>
#include "kiln/radix.h"

enum { DIGIT_BITS = 16, BUCKETS = 1 << DIGIT_BITS };

static void pass(const uint64_t *k, const uint64_t *v, uint64_t *k2, uint64_t *v2, uint64_t n, int shift,
                 uint64_t *place)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t at = place[(k[i] >> shift) & (BUCKETS - 1)]++;
        k2[at] = k[i];
        if (v) v2[at] = v[i];
    }
}

/* Counts of the digit at shift into place as starting positions; 0 when one value has them all. */
static int places(const uint64_t *k, uint64_t n, int shift, uint64_t *place)
{
    memset(place, 0, BUCKETS * sizeof *place);
    for (uint64_t i = 0; i < n; i++) place[(k[i] >> shift) & (BUCKETS - 1)]++;
    if (place[(k[0] >> shift) & (BUCKETS - 1)] == n) return 0;
    uint64_t total = 0;
    for (int d = 0; d < BUCKETS; d++) {
        uint64_t c = place[d];
        place[d] = total, total += c;
    }
    return 1;
}

kiln_status kiln_radix_sort(uint64_t *keys, uint64_t *values, uint64_t n, int bits)
{
    if (n < 2) return KILN_OK;
    uint64_t *place = malloc(BUCKETS * sizeof *place), *k2 = malloc(n * sizeof *k2);
    uint64_t *v2 = values ? malloc(n * sizeof *v2) : NULL;
    if (!place || !k2 || (values && !v2)) {
        free(place), free(k2), free(v2);
        return KILN_ERROR(KILN_ERR_NOMEM, "sorting %llu keys", (unsigned long long)n);
    }
    uint64_t *k = keys, *v = values;
    for (int shift = 0; shift < bits; shift += DIGIT_BITS) {
        if (!places(k, n, shift, place)) continue;
        pass(k, v, k2, v2, n, shift, place);
        uint64_t *t = k;
        k = k2, k2 = t;
        t = v, v = v2, v2 = t;
    }
    if (k != keys) { /* the sorted pairs are in the scratch: copy them home */
        memcpy(keys, k, n * sizeof *keys);
        if (values) memcpy(values, v, n * sizeof *values);
        k2 = k, v2 = v;
    }
    free(place), free(k2), free(v2);
    return KILN_OK;
}

uint64_t kiln_radix_of_double(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b >> 63 ? ~b : b | (1ull << 63);
}

double kiln_radix_to_double(uint64_t k)
{
    uint64_t b = k >> 63 ? k & ~(1ull << 63) : ~k;
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
