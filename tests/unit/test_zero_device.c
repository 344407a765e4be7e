/* ZeRO-3 on a device backend, checked without a GPU: the CPU's ops behind a backend that says
 * it is a device (its memory is host memory, so every copy is a memcpy), so the paths a GPU
 * takes run here. Once the shard is taken the model holds no whole-model parameters, device
 * or host mirror; the shard has a host mirror of its own, which kiln_dp_params_to_host fills
 * for checkpoints and kiln_dp_params_to_device brings back into the next forward (another
 * model's parameters loaded there give its loss). On one rank
 * 3 AdamW steps of a small GPT under ZeRO-3 equal ZeRO-0 bit for bit (no sum is split across
 * ranks), and so do the parameters each reports holding for a checkpoint. */
#include "dp_run.h"
#include "kiln/rng.h"

enum { V = DP_RUN_V, T = DP_RUN_T, B = 3, STEPS = 3 };

static kiln_backend device; /* the CPU's table, claiming to be a device */

static float forward(dp_run *r, const kiln_batch *b, int training, int t)
{
    float loss = NAN;
    CHECK_OK(kiln_model_forward(r->m, b, training, (uint64_t)t, &loss, NULL, NULL));
    return loss;
}

int main(int argc, char **argv)
{
    device = *kiln_backend_cpu();
    device.name = "device-on-host";
    device.kind = KILN_DEVICE_CUDA;
    kiln_comm *comm = NULL;
    CHECK_OK(kiln_comm_init(&argc, &argv, 1, &comm));
    int32_t tokens[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)(kiln_rng_uniform(9, 1, (uint64_t)i) * V);
        targets[i] = (int32_t)(kiln_rng_uniform(9, 2, (uint64_t)i) * V);
    }
    kiln_batch batch = {.B = B, .tokens = tokens, .targets = targets};

    dp_run z0, z3;
    dp_run_init(&z0, comm, &device, 0, B, 5);
    dp_run_init(&z3, comm, &device, 3, B, 5);
    size_t n = kiln_model_num_params(z3.m);
    CHECK(kiln_model_params(z3.m) == NULL && kiln_model_host_params(z3.m) == NULL,
          "ZeRO-3 left the model's whole parameters (%p) or host mirror (%p) allocated",
          (void *)kiln_model_params(z3.m), (void *)kiln_model_host_params(z3.m));
    CHECK_FAILS(kiln_model_params_to_host(z3.m), KILN_ERR_INTERNAL, "sharded (ZeRO-3)");
    for (int t = 1; t <= STEPS; t++) {
        float l0 = dp_run_step(&z0, &batch, t, NULL), l3 = dp_run_step(&z3, &batch, t, NULL);
        CHECK(l0 == l3, "step %d: ZeRO-3 loss %.9g, ZeRO-0 %.9g", t, l3, l0);
    }

    /* what each would write to a checkpoint: the same fp32 parameters */
    CHECK_OK(kiln_dp_params_to_host(z0.dp));
    CHECK_OK(kiln_dp_params_to_host(z3.dp));
    float *p0, *p3;
    size_t lo0, hi0, lo3, hi3;
    kiln_dp_held_params(z0.dp, &p0, &lo0, &hi0);
    kiln_dp_held_params(z3.dp, &p3, &lo3, &hi3);
    CHECK(lo3 == 0 && hi3 == n && lo0 == 0 && hi0 == n, "held [%zu, %zu) and [%zu, %zu) of %zu",
          lo3, hi3, lo0, hi0, n);
    CHECK(p3 != kiln_dp_shard_params(z3.dp), "ZeRO-3 on a device holds its shard without a host mirror");
    CHECK(!memcmp(p0, p3, n * sizeof(float)), "ZeRO-3's host mirror differs from ZeRO-0's parameters");

    /* a load into the mirror reaches the next forward, though a block is still gathered from
     * the last one: a model of another seed's parameters give that model's loss */
    forward(&z3, &batch, 0, STEPS + 1);
    dp_run other;
    dp_run_init(&other, comm, &device, 0, B, 6);
    float *po;
    size_t lo, hi;
    CHECK_OK(kiln_dp_params_to_host(other.dp));
    kiln_dp_held_params(other.dp, &po, &lo, &hi);
    memcpy(p3, po, n * sizeof(float));
    CHECK_OK(kiln_dp_params_to_device(z3.dp));
    float want = forward(&other, &batch, 0, STEPS + 1), got = forward(&z3, &batch, 0, STEPS + 1);
    CHECK(got == want && want != forward(&z0, &batch, 0, STEPS + 1),
          "loss after loading another model's parameters: %.9g, that model's %.9g", got, want);
    dp_run_free(&other);
    dp_run_free(&z0);
    dp_run_free(&z3);
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
