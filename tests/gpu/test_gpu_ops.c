/* Every CUDA op against its CPU twin (the CPU ops are themselves held against float64
 * references in tests/unit) on fresh random inputs. fp32: rtol 1e-5 (2e-5 where a product
 * sums hundreds of terms in another order); bf16 (matrix products on bf16 tensor cores):
 * rtol 1e-2. Backward ops start from random gradients, so accumulation (+=) is checked too.
 * Skips (exit 77) when no GPU is present. */
#include "gpu_common.h"

static const kiln_backend *cpu;

/* Random host inputs and their device copies. */
typedef struct twin {
    float *h, *d;
    size_t n;
} twin;

static twin twin_new(const kiln_backend *be, size_t n, float std)
{
    twin t = {new_normal(n, std), NULL, n};
    t.d = dev_copy(be, t.h, n);
    return t;
}

/* Compares the device side with the host side (run through the CPU op) and frees both. */
static void twin_check(const kiln_backend *be, const char *what, twin *t, double rtol)
{
    float *got = host_copy_free(be, t->d, t->n);
    check_twin_frac(what, got, t->h, t->n, rtol, be->precision == KILN_PRECISION_BF16 ? 1.0 : 0.1);
    free(got);
    free(t->h);
}

static void twin_free(const kiln_backend *be, twin *t)
{
    be->free(t->d);
    free(t->h);
}

static void test_gemm(const kiln_backend *be, double rtol)
{
    int M = 37, N = 53, K = 61;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            twin A = twin_new(be, (size_t)(ta ? K : M) * lda + 1, 1.0f);
            twin B = twin_new(be, (size_t)(tb ? N : K) * ldb, 1.0f);
            twin C = twin_new(be, (size_t)M * ldc, 1.0f);
            /* A + 1: a view that is only 4-byte aligned, as tensors in the flat buffer are */
            cpu->ops.gemm(ta, tb, M, N, K, 0.7f, A.h + 1, lda, B.h, ldb, 0.3f, C.h, ldc, NULL);
            be->ops.gemm(ta, tb, M, N, K, 0.7f, A.d + 1, lda, B.d, ldb, 0.3f, C.d, ldc, be->stream);
            CHECK_OK(be->synchronize(be->stream));
            char what[64];
            snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
            twin_check(be, what, &C, rtol);
            twin_free(be, &A);
            twin_free(be, &B);
        }
}

static void test_linear(const kiln_backend *be, double rtol)
{
    int N = 70, C = 96, OC = 80;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        twin x = twin_new(be, (size_t)N * C, 1.0f), w = twin_new(be, (size_t)OC * C + 1, 0.1f);
        twin b = twin_new(be, OC + 1, 1.0f), out = twin_new(be, (size_t)N * OC, 1.0f);
        const float *bh = with_bias ? b.h + 1 : NULL, *bd = with_bias ? b.d + 1 : NULL;
        cpu->ops.linear_forward(out.h, x.h, w.h + 1, bh, N, C, OC, NULL);
        be->ops.linear_forward(out.d, x.d, w.d + 1, bd, N, C, OC, be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, with_bias ? "linear_forward (bias)" : "linear_forward", &out, rtol);

        twin dout = twin_new(be, (size_t)N * OC, 1.0f), dx = twin_new(be, (size_t)N * C, 1.0f);
        twin dw = twin_new(be, (size_t)OC * C, 1.0f), db = twin_new(be, OC, 1.0f);
        float *dxh = with_bias ? dx.h : NULL, *dxd = with_bias ? dx.d : NULL; /* NULL dinp too */
        cpu->ops.linear_backward(dxh, dw.h, with_bias ? db.h : NULL, dout.h, x.h, w.h + 1, N, C,
                                 OC, NULL);
        be->ops.linear_backward(dxd, dw.d, with_bias ? db.d : NULL, dout.d, x.d, w.d + 1, N, C,
                                OC, be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, "linear_backward dinp", &dx, rtol);
        twin_check(be, "linear_backward dweight", &dw, rtol);
        twin_check(be, "linear_backward dbias", &db, rtol);
        twin_free(be, &x);
        twin_free(be, &w);
        twin_free(be, &b);
        twin_free(be, &dout);
    }
}

static void test_attention(const kiln_backend *be, double rtol)
{
    /* NH >= B and NH < B take the two ways of batching heads over cuBLAS calls */
    int shapes[2][4] = {{2, 33, 48, 4}, {3, 20, 32, 2}};
    for (int k = 0; k < 2; k++) {
        int B = shapes[k][0], T = shapes[k][1], C = shapes[k][2], NH = shapes[k][3];
        size_t btc = (size_t)B * T * C, att_n = (size_t)B * NH * T * T;
        twin qkv = twin_new(be, 3 * btc, 1.0f), out = twin_new(be, btc, 1.0f);
        twin att = twin_new(be, att_n, 1.0f);
        cpu->ops.attention_forward(out.h, att.h, qkv.h, B, T, C, NH, NULL);
        be->ops.attention_forward(out.d, att.d, qkv.d, B, T, C, NH, be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin dout = twin_new(be, btc, 1.0f), dqkv = twin_new(be, 3 * btc, 1.0f);
        twin scratch = twin_new(be, att_n, 1.0f);
        /* backward from the CPU's probabilities on both sides: checks backward alone */
        be->copy_to_device(att.d, att.h, att_n * sizeof(float), be->stream);
        cpu->ops.attention_backward(dqkv.h, scratch.h, dout.h, qkv.h, att.h, B, T, C, NH, NULL);
        be->ops.attention_backward(dqkv.d, scratch.d, dout.d, qkv.d, att.d, B, T, C, NH,
                                   be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, "attention_forward out", &out, rtol);
        twin_check(be, "attention_backward dqkv", &dqkv, rtol);
        twin_free(be, &att);
        twin_free(be, &qkv);
        twin_free(be, &dout);
        twin_free(be, &scratch);
    }
    /* the probabilities themselves, from a fresh forward */
    int B = 2, T = 33, C = 48, NH = 4;
    size_t btc = (size_t)B * T * C, att_n = (size_t)B * NH * T * T;
    twin qkv = twin_new(be, 3 * btc, 1.0f), out = twin_new(be, btc, 1.0f);
    twin att = twin_new(be, att_n, 1.0f);
    cpu->ops.attention_forward(out.h, att.h, qkv.h, B, T, C, NH, NULL);
    be->ops.attention_forward(out.d, att.d, qkv.d, B, T, C, NH, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "attention_forward probabilities", &att, rtol);
    twin_free(be, &qkv);
    twin_free(be, &out);
}

static void test_pointwise(const kiln_backend *be)
{
    size_t n = 100003;
    twin x = twin_new(be, n, 2.0f), y = twin_new(be, n, 1.0f), dy = twin_new(be, n, 1.0f);
    twin dx = twin_new(be, n, 1.0f), out = twin_new(be, n, 1.0f);
    cpu->ops.gelu_forward(out.h, x.h, n, NULL);
    be->ops.gelu_forward(out.d, x.d, n, be->stream);
    cpu->ops.gelu_backward(dx.h, x.h, dy.h, n, NULL);
    be->ops.gelu_backward(dx.d, x.d, dy.d, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "gelu_forward", &out, 1e-5);
    twin_check(be, "gelu_backward", &dx, 1e-5);

    out = twin_new(be, n, 1.0f);
    twin da = twin_new(be, n, 1.0f), db = twin_new(be, n, 1.0f);
    cpu->ops.residual_forward(out.h, x.h, y.h, n, NULL);
    be->ops.residual_forward(out.d, x.d, y.d, n, be->stream);
    cpu->ops.residual_backward(da.h, db.h, dy.h, n, NULL);
    be->ops.residual_backward(da.d, db.d, dy.d, n, be->stream);
    cpu->ops.residual_backward(da.h, da.h, dy.h, n, NULL); /* x + x: both adds land */
    be->ops.residual_backward(da.d, da.d, dy.d, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "residual_forward", &out, 1e-6);
    twin_check(be, "residual_backward da", &da, 1e-6);
    twin_check(be, "residual_backward db", &db, 1e-6);

    twin s = twin_new(be, n, 1.0f), z = twin_new(be, n, 1.0f), a = twin_new(be, n, 1.0f);
    cpu->ops.scale(s.h, -0.37f, n, NULL);
    be->ops.scale(s.d, -0.37f, n, be->stream);
    cpu->ops.zero(z.h, n - 1, NULL); /* all but the last element */
    be->ops.zero(z.d, n - 1, be->stream);
    cpu->ops.axpy(a.h, x.h, 1.5f, n, NULL);
    be->ops.axpy(a.d, x.d, 1.5f, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "scale", &s, 1e-6);
    twin_check(be, "zero", &z, 0.0);
    twin_check(be, "axpy", &a, 1e-6);
    twin_free(be, &x);
    twin_free(be, &y);
    twin_free(be, &dy);
}

/* The mask is the CPU's exactly: forward outputs equal bit for bit. */
static void test_dropout(const kiln_backend *be)
{
    size_t n = 70001;
    float p = 0.3f;
    twin x = twin_new(be, n, 1.0f), out = twin_new(be, n, 1.0f);
    twin dy = twin_new(be, n, 1.0f), dx = twin_new(be, n, 1.0f);
    cpu->ops.dropout_forward(out.h, x.h, p, 99, 1234, n, NULL);
    be->ops.dropout_forward(out.d, x.d, p, 99, 1234, n, be->stream);
    cpu->ops.dropout_backward(dx.h, dy.h, p, 99, 1234, n, NULL);
    be->ops.dropout_backward(dx.d, dy.d, p, 99, 1234, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    float *got = host_copy_free(be, out.d, n);
    size_t differ = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        differ += memcmp(&got[i], &out.h[i], sizeof(float)) != 0;
        dropped += out.h[i] == 0.0f;
    }
    CHECK(differ == 0, "dropout_forward: %zu of %zu elements differ from the CPU's", differ, n);
    CHECK(fabs((double)dropped / n - p) < 0.01, "dropout dropped %zu of %zu (p %g)", dropped, n, p);
    free(got);
    free(out.h);
    twin_check(be, "dropout_backward", &dx, 1e-6);
    /* in place, as the models call it */
    twin y = twin_new(be, n, 1.0f);
    cpu->ops.dropout_forward(y.h, y.h, p, 7, 8, n, NULL);
    be->ops.dropout_forward(y.d, y.d, p, 7, 8, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "dropout_forward in place", &y, 0.0);
    twin_free(be, &x);
    twin_free(be, &dy);
}

static void test_layernorm(const kiln_backend *be)
{
    int N = 600, C = 100; /* more rows than one reduction chunk; C not a multiple of 32 */
    twin x = twin_new(be, (size_t)N * C, 2.0f), w = twin_new(be, C, 1.0f), b = twin_new(be, C, 1.0f);
    twin out = twin_new(be, (size_t)N * C, 1.0f), mean = twin_new(be, N, 1.0f);
    twin rstd = twin_new(be, N, 1.0f);
    cpu->ops.layernorm_forward(out.h, mean.h, rstd.h, x.h, w.h, b.h, N, C, NULL);
    be->ops.layernorm_forward(out.d, mean.d, rstd.d, x.d, w.d, b.d, N, C, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin dy = twin_new(be, (size_t)N * C, 1.0f), dx = twin_new(be, (size_t)N * C, 1.0f);
    twin dw = twin_new(be, C, 1.0f), db = twin_new(be, C, 1.0f);
    /* backward from the CPU's statistics on both sides */
    be->copy_to_device(mean.d, mean.h, N * sizeof(float), be->stream);
    be->copy_to_device(rstd.d, rstd.h, N * sizeof(float), be->stream);
    cpu->ops.layernorm_backward(dx.h, dw.h, db.h, dy.h, x.h, w.h, mean.h, rstd.h, N, C, NULL);
    be->ops.layernorm_backward(dx.d, dw.d, db.d, dy.d, x.d, w.d, mean.d, rstd.d, N, C, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "layernorm_forward out", &out, 1e-5);
    twin_check(be, "layernorm_backward dinp", &dx, 2e-5);
    twin_check(be, "layernorm_backward dweight", &dw, 2e-5);
    twin_check(be, "layernorm_backward dbias", &db, 2e-5);
    float *m = host_copy_free(be, mean.d, N), *r = host_copy_free(be, rstd.d, N);
    check_twin("layernorm mean", m, mean.h, N, 1e-5);
    check_twin("layernorm rstd", r, rstd.h, N, 1e-5);
    free(m);
    free(r);
    free(mean.h);
    free(rstd.h);
    twin_free(be, &x);
    twin_free(be, &w);
    twin_free(be, &b);
    twin_free(be, &dy);
}

static void test_embedding(const kiln_backend *be)
{
    int B = 3, T = 17, C = 40, V = 50;
    int32_t tokens[3 * 17];
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)((i * 7 + 3) % 11); /* repeats */
    int32_t *tok_d = dev_copy_i32(be, tokens, (size_t)B * T);
    twin wte = twin_new(be, (size_t)V * C, 1.0f), wpe = twin_new(be, (size_t)T * C, 1.0f);
    twin out = twin_new(be, (size_t)B * T * C, 1.0f), dout = twin_new(be, (size_t)B * T * C, 1.0f);
    twin dwte = twin_new(be, (size_t)V * C, 1.0f), dwpe = twin_new(be, (size_t)T * C, 1.0f);
    cpu->ops.embedding_forward(out.h, tokens, wte.h, wpe.h, B, T, C, NULL);
    be->ops.embedding_forward(out.d, tok_d, wte.d, wpe.d, B, T, C, be->stream);
    cpu->ops.embedding_backward(dwte.h, dwpe.h, dout.h, tokens, B, T, C, NULL);
    be->ops.embedding_backward(dwte.d, dwpe.d, dout.d, tok_d, B, T, C, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "embedding_forward", &out, 1e-6);
    twin_check(be, "embedding_backward dwte", &dwte, 1e-5);
    twin_check(be, "embedding_backward dwpe", &dwpe, 1e-5);
    be->free(tok_d);
    twin_free(be, &wte);
    twin_free(be, &wpe);
    twin_free(be, &dout);
}

static void test_softmax_xent(const kiln_backend *be)
{
    int N = 37, V = 300;
    int32_t targets[37];
    for (int i = 0; i < N; i++) targets[i] = i % 5 == 4 ? -1 : (int32_t)((i * 31) % V);
    int32_t *tgt_d = dev_copy_i32(be, targets, N);
    twin logits = twin_new(be, (size_t)N * V, 3.0f), probs = twin_new(be, (size_t)N * V, 1.0f);
    twin losses = twin_new(be, N, 1.0f), dlogits = twin_new(be, (size_t)N * V, 1.0f);
    cpu->ops.softmax_xent_forward(losses.h, probs.h, logits.h, targets, N, V, NULL);
    be->ops.softmax_xent_forward(losses.d, probs.d, logits.d, tgt_d, N, V, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    be->copy_to_device(probs.d, probs.h, (size_t)N * V * sizeof(float), be->stream);
    cpu->ops.softmax_xent_backward(dlogits.h, probs.h, targets, 0.25f, N, V, NULL);
    be->ops.softmax_xent_backward(dlogits.d, probs.d, tgt_d, 0.25f, N, V, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "softmax_xent_forward losses", &losses, 1e-5);
    twin_check(be, "softmax_xent_backward", &dlogits, 1e-5);
    /* forward's probabilities, fresh */
    float *fresh_losses = be->alloc(N * sizeof(float));
    be->ops.softmax_xent_forward(fresh_losses, probs.d, logits.d, tgt_d, N, V, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "softmax_xent_forward probs", &probs, 1e-5);
    be->free(fresh_losses);
    be->free(tgt_d);
    twin_free(be, &logits);
}

static void test_optim_ops(const kiln_backend *be)
{
    size_t n = 50001;
    twin p = twin_new(be, n, 1.0f), m = twin_new(be, n, 0.1f), g = twin_new(be, n, 1.0f);
    twin v = twin_new(be, n, 0.1f);
    for (size_t i = 0; i < n; i++) v.h[i] = fabsf(v.h[i]); /* a second moment is >= 0 */
    be->copy_to_device(v.d, v.h, n * sizeof(float), be->stream);
    for (int t = 1; t <= 3; t++) {
        cpu->ops.adamw_update(p.h, m.h, v.h, g.h, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t, NULL);
        be->ops.adamw_update(p.d, m.d, v.d, g.d, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t,
                             be->stream);
    }
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "adamw params", &p, 1e-5);
    twin_check(be, "adamw m", &m, 1e-5);
    twin_check(be, "adamw v", &v, 1e-5);

    twin q = twin_new(be, n, 1.0f), mom = twin_new(be, n, 0.1f);
    for (int t = 0; t < 3; t++) {
        cpu->ops.sgd_update(q.h, mom.h, g.h, n, 0.1f, 0.9f, 1e-2f, 0.5f, NULL);
        be->ops.sgd_update(q.d, mom.d, g.d, n, 0.1f, 0.9f, 1e-2f, 0.5f, be->stream);
    }
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "sgd params", &q, 1e-5);
    twin_check(be, "sgd momentum", &mom, 1e-5);

    size_t big = 3000017; /* several blocks of the reduction's grid */
    twin x = twin_new(be, big, 1.0f);
    double want = cpu->ops.sum_squares(x.h, big, NULL), got = be->ops.sum_squares(x.d, big, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    CHECK_CLOSE(got, want, 1e-12, 0.0, "sum_squares");
    CHECK(be->ops.sum_squares(x.d, 0, be->stream) == 0.0, "sum_squares of nothing is not 0");
    twin_free(be, &x);
    twin_free(be, &g);
}

/* The backend's contract: zeroed allocations, copies both ways, errors surfaced by
 * synchronize. */
static void test_memory(const kiln_backend *be)
{
    size_t n = 1000;
    float *d = be->alloc(n * sizeof(float)), *h = malloc(n * sizeof(float));
    be->copy_to_host(h, d, n * sizeof(float), be->stream);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += h[i] != 0.0f;
    CHECK(nonzero == 0, "alloc: %zu of %zu floats not zero", nonzero, n);
    fill_normal(h, n, 1.0f);
    float *d2 = be->alloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    be->copy_to_device(d, h, n * sizeof(float), be->stream);
    be->copy_to_device(d2, d, n * sizeof(float), be->stream); /* device to device */
    be->copy_to_host(back, d2, n * sizeof(float), be->stream);
    CHECK(memcmp(h, back, n * sizeof(float)) == 0, "host -> device -> device -> host changed data");
    CHECK_OK(be->synchronize(be->stream));
    be->free(d);
    be->free(d2);
    free(h);
    free(back);
}

int main(void)
{
    const kiln_backend *fp32 = gpu_backend_or_skip("fp32"), *bf16 = gpu_backend_or_skip("bf16");
    cpu = kiln_backend_cpu();
    CHECK_OK(kiln_backend_validate(fp32));
    CHECK_OK(kiln_backend_validate(bf16));
    CHECK(fp32->precision == KILN_PRECISION_FP32 && bf16->precision == KILN_PRECISION_BF16,
          "backend precisions are wrong");
    test_memory(fp32);
    test_gemm(fp32, 2e-5);
    test_linear(fp32, 2e-5);
    test_attention(fp32, 2e-5);
    test_gemm(bf16, 1e-2);
    test_linear(bf16, 1e-2);
    test_attention(bf16, 1e-2);
    test_pointwise(fp32);
    test_dropout(fp32);
    test_layernorm(fp32);
    test_embedding(fp32);
    test_softmax_xent(fp32);
    test_optim_ops(fp32);
    TEST_MAIN_END();
}
