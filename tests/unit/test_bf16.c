/* The bf16 conversions (src/core/bf16.h) the CUDA kernels store and load through, against a
 * reference that rounds by comparing distances in double: every bf16 round-trips exactly, and
 * floats across the whole range (every exponent, ties, the overflow threshold, subnormals)
 * round to the nearest bf16 with ties to even. */
#include <float.h>
#include <stdint.h>
#include "check.h"
#include "../../src/core/bf16.h"

static kiln_bf16 bf(uint16_t bits) { return (kiln_bf16){bits}; }
static float from_bits(uint32_t u) { return kiln_f32_from_bits(u); }

/* The value of a bf16 pattern with the exponent unbounded: the pattern after the largest
 * finite one stands for 2^128, which is what IEEE rounding measures overflow against. */
static double unbounded_value(uint32_t bf_bits)
{
    if ((bf_bits & 0x7fffu) == 0x7f80u) return (bf_bits & 0x8000u) ? -0x1p128 : 0x1p128;
    return (double)kiln_bf16_to_f32(bf((uint16_t)bf_bits));
}

/* Nearest bf16 to a finite f, ties to the even pattern, by distance. */
static uint16_t reference_round(float f)
{
    uint32_t u = kiln_f32_bits(f);
    uint32_t low = u >> 16, high = low + 1; /* the neighbours toward zero and away from it */
    double d_low = fabs((double)f - unbounded_value(low));
    double d_high = fabs(unbounded_value(high) - (double)f);
    if (d_low < d_high || (d_low == d_high && (low & 1u) == 0)) return (uint16_t)low;
    return (uint16_t)high;
}

static void test_exact_values(void)
{
    struct { float f; uint16_t bits; } cases[] = {
        {1.0f, 0x3f80}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {INFINITY, 0x7f80}, {-INFINITY, 0xff80}, {0.15625f, 0x3e20},
        {1.0f + 0x1p-8f, 0x3f80},            /* halfway, kept half even: down */
        {1.0f + 3 * 0x1p-8f, 0x3f82},        /* halfway, kept half odd: up */
        {1.0f + 0x1p-8f + 0x1p-20f, 0x3f81}, /* just above halfway: up */
        {1.0f + 0x1p-8f - 0x1p-20f, 0x3f80}, /* just below halfway: down */
        {FLT_MAX, 0x7f80},                   /* past the largest bf16 + half an ulp: infinity */
        {0x1.fep127f, 0x7f7f},               /* the largest bf16 */
        {0x1p-149f, 0x0000},                 /* the smallest float subnormal underflows */
        {0x1p-133f, 0x0001},                 /* the smallest bf16 subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = kiln_bf16_from_f32(cases[i].f).bits;
        CHECK(got == cases[i].bits, "bf16(%a) = 0x%04x, expected 0x%04x", cases[i].f, got,
              cases[i].bits);
    }
    kiln_bf16 nan = kiln_bf16_from_f32(NAN), snan = kiln_bf16_from_f32(from_bits(0x7f800001u));
    CHECK(isnan(kiln_bf16_to_f32(nan)) && isnan(kiln_bf16_to_f32(snan)),
          "NaN converted to 0x%04x and 0x%04x: not NaN", nan.bits, snan.bits);
    CHECK((snan.bits & 0x0040) != 0, "a signalling NaN became 0x%04x, not a quiet NaN", snan.bits);
}

/* Every bf16 is a float: to_f32 is exact and from_f32 gives the same pattern back. */
static void test_round_trip(void)
{
    int bad = 0, nan_bad = 0;
    for (uint32_t b = 0; b <= 0xffffu; b++) {
        float f = kiln_bf16_to_f32(bf((uint16_t)b));
        if (kiln_f32_bits(f) != b << 16) bad++;
        if (isnan(f)) {
            nan_bad += !isnan(kiln_bf16_to_f32(kiln_bf16_from_f32(f)));
            continue;
        }
        bad += kiln_bf16_from_f32(f).bits != b;
    }
    CHECK(bad == 0 && nan_bad == 0, "%d bf16 patterns do not round-trip (%d NaNs)", bad, nan_bad);
}

/* Floats against the reference: a stride through all 2^32 patterns (every exponent, both
 * signs) and, around 4096 random kept halves, every dropped half near the tie. */
static void test_rounding(void)
{
    long checked = 0, bad = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 65521) { /* a prime: all low halves occur */
        float f = from_bits((uint32_t)u);
        if (isnan(f) || isinf(f)) continue;
        checked++;
        if (kiln_bf16_from_f32(f).bits != reference_round(f) && bad++ < 5)
            fprintf(stderr, "bf16(%a) = 0x%04x, nearest even is 0x%04x\n", f,
                    kiln_bf16_from_f32(f).bits, reference_round(f));
    }
    uint32_t state = 12345;
    for (int k = 0; k < 4096; k++) {
        state = state * 1664525u + 1013904223u;
        uint32_t hi = state & 0xffff0000u;
        for (uint32_t lo = 0x7ff0; lo <= 0x8010; lo++) {
            float f = from_bits(hi | lo);
            if (isnan(f) || isinf(f)) continue;
            checked++;
            bad += kiln_bf16_from_f32(f).bits != reference_round(f);
        }
    }
    CHECK(bad == 0, "%ld of %ld floats not rounded to the nearest even bf16", bad, checked);
    CHECK(checked > 100000, "only %ld floats checked", checked);
}

int main(void)
{
    test_exact_values();
    test_round_trip();
    test_rounding();
    TEST_MAIN_END();
}
