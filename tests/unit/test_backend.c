/* The backend table: every required op of the CPU backend is there, a backend missing a
 * required op is refused by name, an optional op is asked for by name (supported where it is
 * filled, "not supported on backend X" where not), and the CPU's optional row_sq_norms against
 * a float64 reference. */
#include "check.h"
#include "kiln/backend.h"
#include "kiln/rng.h"

static void test_required_and_optional(void)
{
    const kiln_backend *cpu = kiln_backend_cpu();
    CHECK_OK(kiln_backend_validate(cpu));
    CHECK(kiln_backend_supports(cpu, "row_sq_norms"), "the CPU has row_sq_norms");
    CHECK(kiln_backend_supports(cpu, "gemm"), "the CPU has gemm");
    CHECK(!kiln_backend_supports(cpu, "no_such_op"), "an unknown op is not supported");
    CHECK(!kiln_backend_supports(cpu, "alloc"), "memory methods are not ops");

    /* a backend without the optional op is still valid, but a job that needs it is refused */
    kiln_backend lacking = *cpu;
    lacking.name = "lacking";
    lacking.ops.row_sq_norms = NULL;
    CHECK_OK(kiln_backend_validate(&lacking));
    CHECK(!kiln_backend_supports(&lacking, "row_sq_norms"), "NULL slot: not supported");
    const char *need[] = {"gemm", "row_sq_norms"};
    CHECK_FAILS(kiln_backend_require(&lacking, need, 2), KILN_ERR_UNSUPPORTED,
                "op row_sq_norms is not supported on backend lacking");
    CHECK_OK(kiln_backend_require(cpu, need, 2));

    /* a missing required op is refused by name */
    kiln_backend broken = *cpu;
    broken.name = "broken";
    broken.ops.layernorm_backward = NULL;
    CHECK_FAILS(kiln_backend_validate(&broken), KILN_ERR_UNSUPPORTED,
                "no method layernorm_backward for backend broken");
}

static void test_row_sq_norms(void)
{
    const kiln_backend *cpu = kiln_backend_cpu();
    int shapes[][2] = {{1, 1}, {7, 3}, {300, 784}, {4096, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], D = shapes[s][1];
        float *x = malloc((size_t)N * D * sizeof *x), *out = malloc((size_t)N * sizeof *out);
        kiln_rng_fill_normal(x, (size_t)N * D, 0.5f, 2.0f, 11, s, 0);
        cpu->ops.row_sq_norms(out, x, N, D, NULL);
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double want = 0.0;
            for (int d = 0; d < D; d++) want += (double)x[(size_t)i * D + d] * x[(size_t)i * D + d];
            double err = fabs(out[i] - want) / (want > 0 ? want : 1.0);
            if (err > worst) worst = err;
        }
        /* accumulated in double, rounded once to float: within half an ulp */
        CHECK(worst <= 6e-8, "row_sq_norms %dx%d: worst relative error %.3g", N, D, worst);
        free(x);
        free(out);
    }
}

/* NaN activations (a diverging run) flow through the softmax's exp as NaN: no undefined
 * behaviour on the way (its exponent bits were a negative signed shift; the sanitizer run of
 * this test catches that). */
static void test_nan_through_softmax(void)
{
    const kiln_backend *cpu = kiln_backend_cpu();
    float logits[2 * 4] = {0.5f, NAN, 1.0f, -2.0f, 1.0f, 2.0f, 3.0f, 4.0f}, losses[2], probs[8];
    int32_t targets[2] = {2, 3};
    cpu->ops.softmax_xent_forward(losses, probs, logits, targets, 2, 4, NULL);
    CHECK(isnan(losses[0]) && isfinite(losses[1]), "NaN row: loss %g; finite row: %g", losses[0],
          losses[1]);
}

int main(void)
{
    test_nan_through_softmax();
    test_required_and_optional();
    test_row_sq_norms();
    TEST_MAIN_END();
}
