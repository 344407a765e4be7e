/* A rank whose micro-batch scores nothing (every target masked) still takes part in every
 * collective of the step, on 3 ranks (tests/mpi/run_c.sh): the last rank's targets are all
 * -1. Under ZeRO-3 each block's parameters are all-gathered as backward begins it, so a rank
 * that skipped backward would leave the others waiting in a gather (the test then times out).
 * A GPT (tied LM head: the embedding block is begun twice in backward) trains 3 AdamW steps
 * under ZeRO-2 and ZeRO-3, and each rank's shard of parameters must match ZeRO-0 on the same
 * ranks within 1e-5; every rank reports the same loss at every stage. */
#include "dp_run.h"
#include "kiln/rng.h"

enum { V = DP_RUN_V, T = DP_RUN_T, B = 2, STEPS = 3 };

/* One step; returns the mean loss over every rank's scored targets. */
static double train_step(dp_run *r, const kiln_batch *b, kiln_comm *c, int t)
{
    int64_t scored = 0;
    float loss = dp_run_step(r, b, t, &scored);
    double sums[2] = {scored ? (double)loss * (double)scored : 0.0, (double)scored};
    CHECK_OK(kiln_comm_allreduce_f64(c, KILN_AXIS_DP, sums, 2));
    return sums[0] / sums[1];
}

int main(int argc, char **argv)
{
    kiln_comm *comm = NULL;
    CHECK_OK(kiln_comm_init(&argc, &argv, 1, &comm));
    int rank = kiln_comm_rank(comm, KILN_AXIS_DP), world = kiln_comm_size(comm, KILN_AXIS_DP);
    int32_t tokens[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)(kiln_rng_uniform(9, (uint64_t)rank, (uint64_t)i) * V);
        /* the last rank scores nothing */
        targets[i] = rank == world - 1 ? -1 : (int32_t)(kiln_rng_uniform(9, 100u + (uint64_t)rank, (uint64_t)i) * V);
    }
    kiln_batch batch = {.B = B, .tokens = tokens, .targets = targets};

    dp_run z0, zs[2];
    int stages[2] = {2, 3};
    dp_run_init(&z0, comm, kiln_backend_cpu(), 0, B, 5);
    for (int s = 0; s < 2; s++) dp_run_init(&zs[s], comm, kiln_backend_cpu(), stages[s], B, 5);
    for (int t = 1; t <= STEPS; t++) {
        double l0 = train_step(&z0, &batch, comm, t);
        for (int s = 0; s < 2; s++) {
            double l = train_step(&zs[s], &batch, comm, t);
            CHECK(fabs(l - l0) <= 1e-5 * fabs(l0), "rank %d step %d: ZeRO-%d loss %.9g, ZeRO-0 %.9g",
                  rank, t, stages[s], l, l0);
        }
    }
    const float *p0 = kiln_model_params(z0.m);
    for (int s = 0; s < 2; s++) {
        size_t lo, hi, bad = 0;
        kiln_dp_shard(zs[s].dp, &lo, &hi);
        const float *p = kiln_dp_shard_params(zs[s].dp);
        for (size_t i = lo; i < hi; i++)
            bad += !(fabsf(p[i - lo] - p0[i]) <= 1e-5f * (1.0f + fabsf(p0[i])));
        CHECK(bad == 0, "rank %d: %zu of the %zu parameters of its ZeRO-%d shard differ from ZeRO-0",
              rank, bad, hi - lo, stages[s]);
        dp_run_free(&zs[s]);
    }
    dp_run_free(&z0);
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
