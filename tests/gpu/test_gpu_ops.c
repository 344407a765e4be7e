/* Every CUDA op, in both storage types, against its CPU twin (the CPU ops are themselves held
 * against float64 references in tests/unit) on fresh random inputs. Inputs are rounded to the
 * storage type first, so both twins compute on the same values. Tolerances: fp32 rtol 1e-5
 * (2e-5 where a product sums hundreds of terms in another order); what the bf16 backend stores
 * in bf16 rtol 1e-2 (BF16_RTOL: each stored value is rounded, 2^-9 relative); what it keeps in
 * fp32 (LayerNorm statistics, losses, probabilities, master weights, optimizer state) the fp32
 * tolerance. Backward ops start from random gradients, so accumulation (+=) is checked too.
 * Skips (exit 77) when no GPU is present. */
#include "gpu_common.h"

#define BF16_RTOL 1e-2

static const kiln_backend *cpu;

/* Random host inputs (h, rounded to what the device stores) and their device copies (d):
 * the backend's storage type, or fp32 (f32) for the buffers that are fp32 in every precision. */
typedef struct twin {
    float *h, *d;
    size_t n;
    int f32;
} twin;

static twin twin_make(const kiln_backend *be, size_t n, float std, int f32)
{
    twin t = {new_normal(n, std), NULL, n, f32};
    if (!f32) round_to_storage(be, t.h, n);
    t.d = dev_copy_as(be, t.h, n, f32);
    return t;
}

static twin twin_new(const kiln_backend *be, size_t n, float std) { return twin_make(be, n, std, 0); }
static twin twin_f32(const kiln_backend *be, size_t n, float std) { return twin_make(be, n, std, 1); }

/* The host side (as the CPU op left it) onto the device side, rounded to storage on both. */
static void twin_upload(const kiln_backend *be, twin *t)
{
    if (!t->f32) round_to_storage(be, t->h, t->n);
    upload_as(be, t->d, t->h, t->n, t->f32);
}

/* The device side read back. */
static float *twin_result(const kiln_backend *be, const twin *t)
{
    return host_copy_as(be, t->d, t->n, t->f32);
}

/* Compares the device side with the host side (run through the CPU op) and frees both. rtol
 * is the fp32 tolerance; bf16 storage is judged at BF16_RTOL against the terms' scale. */
static void twin_check(const kiln_backend *be, const char *what, twin *t, double rtol)
{
    float *got = twin_result(be, t);
    int bf16 = is_bf16(be) && !t->f32;
    char label[96];
    snprintf(label, sizeof label, "%s [%s]", what, is_bf16(be) ? "bf16" : "fp32");
    check_twin_frac(label, got, t->h, t->n, bf16 ? fmax(rtol, BF16_RTOL) : rtol, bf16 ? 1.0 : 0.1);
    free(got);
    be->free(t->d);
    free(t->h);
}

static void twin_free(const kiln_backend *be, twin *t)
{
    be->free(t->d);
    free(t->h);
}

/* got == want bit for bit, want rounded to the storage type (the op's own last step). */
static void check_stored_exactly(const kiln_backend *be, const char *what, const float *got,
                                 const float *want, size_t n)
{
    float *w = malloc(n * sizeof *w);
    memcpy(w, want, n * sizeof *w);
    round_to_storage(be, w, n);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&got[i], &w[i], sizeof(float)) != 0;
    CHECK(differ == 0, "%s [%s]: %zu of %zu elements are not the CPU's, rounded", what,
          is_bf16(be) ? "bf16" : "fp32", differ, n);
    free(w);
}

static void test_gemm(const kiln_backend *be)
{
    int M = 37, N = 53, K = 61;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            twin A = twin_new(be, (size_t)(ta ? K : M) * lda + 1, 1.0f);
            twin B = twin_new(be, (size_t)(tb ? N : K) * ldb, 1.0f);
            twin C = twin_new(be, (size_t)M * ldc, 1.0f);
            /* A + 1: a view aligned to one element only, as tensors in the flat buffer are */
            size_t e = kiln_precision_bytes(be->precision);
            cpu->ops.gemm(ta, tb, M, N, K, 0.7f, A.h + 1, lda, B.h, ldb, 0.3f, C.h, ldc, NULL);
            be->ops.gemm(ta, tb, M, N, K, 0.7f, (const float *)((char *)A.d + e), lda, B.d, ldb,
                         0.3f, C.d, ldc, be->stream);
            CHECK_OK(be->synchronize(be->stream));
            char what[64];
            snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
            twin_check(be, what, &C, 2e-5);
            twin_free(be, &A);
            twin_free(be, &B);
        }
}

/* An element view of a device buffer of the backend's storage type. */
static float *dev_at(const kiln_backend *be, float *d, size_t i)
{
    return (float *)((char *)d + i * kiln_precision_bytes(be->precision));
}

static void test_linear(const kiln_backend *be)
{
    int N = 70, C = 96, OC = 80;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        twin x = twin_new(be, (size_t)N * C, 1.0f), w = twin_new(be, (size_t)OC * C + 1, 0.1f);
        twin b = twin_new(be, OC + 1, 1.0f), out = twin_new(be, (size_t)N * OC, 1.0f);
        const float *bh = with_bias ? b.h + 1 : NULL, *bd = with_bias ? dev_at(be, b.d, 1) : NULL;
        float *wd = dev_at(be, w.d, 1);
        cpu->ops.linear_forward(out.h, x.h, w.h + 1, bh, N, C, OC, NULL);
        be->ops.linear_forward(out.d, x.d, wd, bd, N, C, OC, be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, with_bias ? "linear_forward (bias)" : "linear_forward", &out, 2e-5);

        twin dout = twin_new(be, (size_t)N * OC, 1.0f), dx = twin_new(be, (size_t)N * C, 1.0f);
        twin dw = twin_new(be, (size_t)OC * C, 1.0f), db = twin_new(be, OC, 1.0f);
        float *dxh = with_bias ? dx.h : NULL, *dxd = with_bias ? dx.d : NULL; /* NULL dinp too */
        cpu->ops.linear_backward(dxh, dw.h, with_bias ? db.h : NULL, dout.h, x.h, w.h + 1, N, C,
                                 OC, NULL);
        be->ops.linear_backward(dxd, dw.d, with_bias ? db.d : NULL, dout.d, x.d, wd, N, C, OC,
                                be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, "linear_backward dinp", &dx, 2e-5);
        twin_check(be, "linear_backward dweight", &dw, 2e-5);
        twin_check(be, "linear_backward dbias", &db, 2e-5);
        twin_free(be, &x);
        twin_free(be, &w);
        twin_free(be, &b);
        twin_free(be, &dout);
    }
}

static void test_attention(const kiln_backend *be)
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
        twin_upload(be, &att);
        cpu->ops.attention_backward(dqkv.h, scratch.h, dout.h, qkv.h, att.h, B, T, C, NH, NULL);
        be->ops.attention_backward(dqkv.d, scratch.d, dout.d, qkv.d, att.d, B, T, C, NH,
                                   be->stream);
        CHECK_OK(be->synchronize(be->stream));
        twin_check(be, "attention_forward out", &out, 2e-5);
        twin_check(be, "attention_backward dqkv", &dqkv, 2e-5);
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
    twin_check(be, "attention_forward probabilities", &att, 2e-5);
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
    CHECK_OK(be->synchronize(be->stream));
    /* x + x: both adds land (from the device's own da, so each side rounds once per add) */
    float *da_dev = twin_result(be, &da);
    memcpy(da.h, da_dev, n * sizeof(float));
    free(da_dev);
    cpu->ops.residual_backward(da.h, da.h, dy.h, n, NULL);
    be->ops.residual_backward(da.d, da.d, dy.d, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "residual_forward", &out, 1e-6);
    twin_check(be, "residual_backward da (aliased)", &da, 1e-6);
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
    float *zeroed = twin_result(be, &z);
    check_stored_exactly(be, "zero", zeroed, z.h, n);
    free(zeroed);
    twin_free(be, &z);
    twin_check(be, "axpy", &a, 1e-6);

    /* the cast is the rounding itself */
    twin src = twin_f32(be, n, 3.0f), dst = twin_new(be, n, 1.0f);
    be->ops.cast_from_f32(dst.d, src.d, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    float *cast = twin_result(be, &dst);
    check_stored_exactly(be, "cast_from_f32", cast, src.h, n);
    free(cast);
    twin_free(be, &src);
    twin_free(be, &dst);
    twin_free(be, &x);
    twin_free(be, &y);
    twin_free(be, &dy);
}

/* The mask is the CPU's exactly: forward outputs equal the CPU's, rounded, bit for bit. */
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
    float *got = twin_result(be, &out);
    check_stored_exactly(be, "dropout_forward", got, out.h, n);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) dropped += out.h[i] == 0.0f;
    CHECK(fabs((double)dropped / n - p) < 0.01, "dropout dropped %zu of %zu (p %g)", dropped, n, p);
    free(got);
    twin_free(be, &out);
    twin_check(be, "dropout_backward", &dx, 1e-6);
    /* in place, as the models call it */
    twin y = twin_new(be, n, 1.0f);
    cpu->ops.dropout_forward(y.h, y.h, p, 7, 8, n, NULL);
    be->ops.dropout_forward(y.d, y.d, p, 7, 8, n, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    got = twin_result(be, &y);
    check_stored_exactly(be, "dropout_forward in place", got, y.h, n);
    free(got);
    twin_free(be, &y);
    twin_free(be, &x);
    twin_free(be, &dy);
}

static void test_layernorm(const kiln_backend *be)
{
    int N = 600, C = 100; /* more rows than one reduction chunk; C not a multiple of 32 */
    twin x = twin_new(be, (size_t)N * C, 2.0f), w = twin_new(be, C, 1.0f), b = twin_new(be, C, 1.0f);
    twin out = twin_new(be, (size_t)N * C, 1.0f), mean = twin_f32(be, N, 1.0f);
    twin rstd = twin_f32(be, N, 1.0f);
    cpu->ops.layernorm_forward(out.h, mean.h, rstd.h, x.h, w.h, b.h, N, C, NULL);
    be->ops.layernorm_forward(out.d, mean.d, rstd.d, x.d, w.d, b.d, N, C, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    float *m = twin_result(be, &mean), *r = twin_result(be, &rstd);
    check_twin("layernorm mean (fp32 in every precision)", m, mean.h, N, 1e-5);
    check_twin("layernorm rstd (fp32 in every precision)", r, rstd.h, N, 1e-5);
    free(m);
    free(r);
    twin dy = twin_new(be, (size_t)N * C, 1.0f), dx = twin_new(be, (size_t)N * C, 1.0f);
    twin dw = twin_new(be, C, 1.0f), db = twin_new(be, C, 1.0f);
    /* backward from the CPU's statistics on both sides */
    twin_upload(be, &mean);
    twin_upload(be, &rstd);
    cpu->ops.layernorm_backward(dx.h, dw.h, db.h, dy.h, x.h, w.h, mean.h, rstd.h, N, C, NULL);
    be->ops.layernorm_backward(dx.d, dw.d, db.d, dy.d, x.d, w.d, mean.d, rstd.d, N, C, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "layernorm_forward out", &out, 1e-5);
    twin_check(be, "layernorm_backward dinp", &dx, 2e-5);
    twin_check(be, "layernorm_backward dweight", &dw, 2e-5);
    twin_check(be, "layernorm_backward dbias", &db, 2e-5);
    twin_free(be, &mean);
    twin_free(be, &rstd);
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
    cpu->ops.embedding_backward(dwte.h, dwpe.h, dout.h, tokens, B, T, C, V, NULL);
    be->ops.embedding_backward(dwte.d, dwpe.d, dout.d, tok_d, B, T, C, V, be->stream);
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
    twin logits = twin_new(be, (size_t)N * V, 3.0f), probs = twin_f32(be, (size_t)N * V, 1.0f);
    twin losses = twin_f32(be, N, 1.0f), dlogits = twin_new(be, (size_t)N * V, 1.0f);
    cpu->ops.softmax_xent_forward(losses.h, probs.h, logits.h, targets, N, V, NULL);
    be->ops.softmax_xent_forward(losses.d, probs.d, logits.d, tgt_d, N, V, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    float *fresh = twin_result(be, &probs); /* forward's probabilities */
    check_twin("softmax_xent_forward probs (fp32 in every precision)", fresh, probs.h,
               (size_t)N * V, 1e-5);
    free(fresh);
    twin_upload(be, &probs);
    cpu->ops.softmax_xent_backward(dlogits.h, probs.h, targets, 0.25f, N, V, NULL);
    be->ops.softmax_xent_backward(dlogits.d, probs.d, tgt_d, 0.25f, N, V, be->stream);
    CHECK_OK(be->synchronize(be->stream));
    twin_check(be, "softmax_xent_forward losses (fp32)", &losses, 1e-5);
    twin_check(be, "softmax_xent_backward", &dlogits, 1e-5);
    twin_free(be, &probs);
    be->free(tgt_d);
    twin_free(be, &logits);
}

/* After an update with a params_copy: the copy is the device's own fp32 result, rounded. */
static void check_param_copy(const kiln_backend *be, const char *what, const twin *params,
                             const float *copy_d, size_t n)
{
    float *p = twin_result(be, params), *copy = host_copy_as(be, copy_d, n, 0);
    check_stored_exactly(be, what, copy, p, n);
    free(p);
    free(copy);
}

static void test_optim_ops(const kiln_backend *be)
{
    size_t n = 50001;
    /* fp32 master weights and state, gradients in the storage type */
    twin p = twin_f32(be, n, 1.0f), m = twin_f32(be, n, 0.1f), g = twin_new(be, n, 1.0f);
    twin v = twin_f32(be, n, 0.1f);
    float *copy = dev_copy_as(be, p.h, n, 0);
    for (size_t i = 0; i < n; i++) v.h[i] = fabsf(v.h[i]); /* a second moment is >= 0 */
    twin_upload(be, &v);
    for (int t = 1; t <= 3; t++) {
        cpu->ops.adamw_update(p.h, NULL, m.h, v.h, g.h, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f,
                              t, NULL);
        be->ops.adamw_update(p.d, copy, m.d, v.d, g.d, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f,
                             t, be->stream);
    }
    CHECK_OK(be->synchronize(be->stream));
    check_param_copy(be, "adamw params_copy", &p, copy, n);
    twin_check(be, "adamw params", &p, 1e-5);
    twin_check(be, "adamw m", &m, 1e-5);
    twin_check(be, "adamw v", &v, 1e-5);

    twin q = twin_f32(be, n, 1.0f), mom = twin_f32(be, n, 0.1f);
    for (int t = 0; t < 3; t++) {
        cpu->ops.sgd_update(q.h, NULL, mom.h, g.h, n, 0.1f, 0.9f, 1e-2f, 0.5f, NULL);
        be->ops.sgd_update(q.d, t == 2 ? copy : NULL, mom.d, g.d, n, 0.1f, 0.9f, 1e-2f, 0.5f,
                           be->stream);
    }
    CHECK_OK(be->synchronize(be->stream));
    check_param_copy(be, "sgd params_copy", &q, copy, n);
    twin_check(be, "sgd params", &q, 1e-5);
    twin_check(be, "sgd momentum", &mom, 1e-5);
    be->free(copy);

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
    const kiln_backend *both[2] = {fp32, bf16};
    for (int k = 0; k < 2; k++) {
        const kiln_backend *be = both[k];
        test_gemm(be);
        test_linear(be);
        test_attention(be);
        test_pointwise(be);
        test_dropout(be);
        test_layernorm(be);
        test_embedding(be);
        test_softmax_xent(be);
        test_optim_ops(be);
    }
    TEST_MAIN_END();
}
