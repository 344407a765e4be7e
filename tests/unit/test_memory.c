/* The memory a rank holds per parameter (kiln_dp_memory_of, what the trainer's memory line
 * reports) for each storage type and ZeRO stage, against the byte counts docs/cuda.md and
 * docs/parallel.md give: fp32 4 + 4 + 8, bf16 (4 + 2) + 2 + 8 with AdamW, both 16 bytes a
 * parameter without ZeRO, and 16 a parameter of the shard (plus the buffers) at ZeRO-3. */
#include "check.h"
#include "kiln/parallel.h"

static void check_memory(const char *what, kiln_precision p, kiln_dp_sizes sizes, int n_states,
                         size_t want_params, size_t want_grads, size_t want_optim)
{
    size_t params = 0, grads = 0, optim = 0;
    kiln_dp_memory_of(p, &sizes, n_states, &params, &grads, &optim);
    CHECK(params == want_params && grads == want_grads && optim == want_optim,
          "%s: params %zu grads %zu optim %zu B, expected %zu %zu %zu", what, params, grads, optim,
          want_params, want_grads, want_optim);
}

int main(void)
{
    size_t n = 1000003, s = n / 2, A = 4096, G = 777;
    CHECK(kiln_precision_bytes(KILN_PRECISION_FP32) == 4 && kiln_precision_bytes(KILN_PRECISION_BF16) == 2,
          "element sizes %zu and %zu", kiln_precision_bytes(KILN_PRECISION_FP32),
          kiln_precision_bytes(KILN_PRECISION_BF16));
    const kiln_precision fp32 = KILN_PRECISION_FP32, bf16 = KILN_PRECISION_BF16;
    /* AdamW (m, v) without ZeRO: 16 bytes a parameter in both precisions */
    kiln_dp_sizes whole = {n, n, 0, 0, 0};
    check_memory("fp32 adamw", fp32, whole, 2, 4 * n, 4 * n, 8 * n);
    check_memory("bf16 adamw", bf16, whole, 2, 6 * n, 2 * n, 8 * n);
    size_t p, g, o;
    kiln_dp_memory_of(bf16, &whole, 2, &p, &g, &o);
    CHECK(p + g + o == 16 * n, "bf16 with AdamW holds %zu B for %zu parameters, not 16 each",
          p + g + o, n);
    /* SGD keeps one state */
    check_memory("bf16 sgd", bf16, whole, 1, 6 * n, 2 * n, 4 * n);
    /* ZeRO-1 on 2 ranks: the shard's state, the whole gradient (reduce-scattered in place) */
    kiln_dp_sizes z1 = {n, s, 1, 0, 0};
    check_memory("fp32 zero-1", fp32, z1, 2, 4 * n, 4 * n, 8 * s);
    check_memory("bf16 zero-1", bf16, z1, 2, 6 * n, 2 * n, 8 * s);
    /* ZeRO-2: the shard's gradient and the staging arena, in the storage type */
    kiln_dp_sizes z2 = {n, s, 2, A, 0};
    check_memory("fp32 zero-2", fp32, z2, 2, 4 * n, 4 * (s + A), 8 * s);
    check_memory("bf16 zero-2", bf16, z2, 2, 6 * n, 2 * (s + A), 8 * s);
    /* ZeRO-3: the parameter shard (fp32, with bf16 storage also its bf16 copy, which the
     * all-gathers send) and the gather buffer in the storage type */
    kiln_dp_sizes z3 = {n, s, 3, A, G};
    check_memory("fp32 zero-3", fp32, z3, 2, 4 * (s + G), 4 * (s + A), 8 * s);
    check_memory("bf16 zero-3", bf16, z3, 2, 6 * s + 2 * G, 2 * (s + A), 8 * s);
    kiln_dp_memory_of(bf16, &z3, 2, &p, &g, &o);
    CHECK(p + g + o == 16 * s + 2 * (G + A),
          "bf16 zero-3 holds %zu B, not 16 a parameter of the shard plus the gather buffer and "
          "arena (%zu B)", p + g + o, 16 * s + 2 * (G + A));
    kiln_dp_sizes none = {0, 0, 1, 0, 0};
    check_memory("no parameters", bf16, none, 2, 0, 0, 0);
    TEST_MAIN_END();
}
