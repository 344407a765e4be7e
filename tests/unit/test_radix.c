/* kiln_radix_sort against qsort: random keys of every width (1 to 64 bits), many ties, so the
 * carried values show stability (equal keys keep their first order); doubles through
 * kiln_radix_of_double sort as numbers (-inf, negatives, -0, 0, denormals, inf) and come back
 * bit for bit; empty and one-element inputs. */
#include <stdint.h>
#include "check.h"
#include "kiln/radix.h"

typedef struct pair {
    uint64_t key, value;
} pair;

static int by_key_then_value(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->value < y->value ? -1 : x->value > y->value;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void test_pairs(int bits, uint64_t n, uint64_t distinct)
{
    uint64_t seed = 88172645463325252ull + (uint64_t)bits * 7919 + n;
    uint64_t *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
    pair *want = malloc(n * sizeof *want);
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    for (uint64_t i = 0; i < n; i++) {
        /* few distinct keys spread over the width: ties on every digit */
        uint64_t d = next(&seed) % distinct;
        k[i] = (d * 0x9e3779b97f4a7c15ull) & mask, v[i] = i;
        want[i] = (pair){k[i], i};
    }
    qsort(want, n, sizeof *want, by_key_then_value); /* (key, first position): the stable order */
    CHECK(kiln_radix_sort(k, v, n, bits) == KILN_OK, "sort");
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += k[i] != want[i].key || v[i] != want[i].value;
    CHECK(bad == 0, "%d bits, %llu keys (%llu distinct): %llu out of place", bits, (unsigned long long)n,
          (unsigned long long)distinct, (unsigned long long)bad);
    free(k), free(v), free(want);
}

static void test_doubles(void)
{
    double v[] = {3.5, -0.0, 0.0, -INFINITY, 1e-310, -2.25, INFINITY, -1e-310, 1e300, -1e300, 2.0, 0.0};
    enum { N = sizeof v / sizeof *v };
    double want[N] = {-INFINITY, -1e300, -2.25, -1e-310, -0.0, 0.0, 0.0, 1e-310, 2.0, 3.5, 1e300, INFINITY};
    uint64_t k[N];
    for (int i = 0; i < N; i++) k[i] = kiln_radix_of_double(v[i]);
    CHECK(kiln_radix_sort(k, NULL, N, 64) == KILN_OK, "sort doubles");
    for (int i = 0; i < N; i++) {
        double got = kiln_radix_to_double(k[i]);
        CHECK(got == want[i] && signbit(got) == signbit(want[i]), "doubles[%d]: %g, want %g", i, got, want[i]);
    }
}

int main(void)
{
    for (int bits = 1; bits <= 64; bits += bits < 20 ? 3 : 11) {
        test_pairs(bits, 50000, 37);
        test_pairs(bits, 20011, 20011);
    }
    test_pairs(64, 50000, 37);
    test_pairs(64, 1, 1);
    uint64_t none = 0;
    CHECK(kiln_radix_sort(&none, NULL, 0, 64) == KILN_OK, "empty");
    test_doubles();
    TEST_MAIN_END();
}
