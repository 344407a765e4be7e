/* CPU backend, part 2: the layer ops with saved state (layernorm, embedding, attention,
 * softmax + cross-entropy) against float64 references, gradients by central differences
 * (ops_ref.h). Part 1 is test_ops.c. */
#include "ops_ref.h"

typedef struct {
    int N, C;
} layernorm_ctx;

/* theta = [inp (N,C), weight (C), bias (C)]; mean and rstd may be NULL. */
static void layernorm_ref_full(const layernorm_ctx *c, const double *theta, double *out,
                               double *mean, double *rstd)
{
    const double *w = theta + c->N * c->C, *bias = w + c->C;
    for (int n = 0; n < c->N; n++) {
        const double *x = theta + n * c->C;
        double m = 0.0, var = 0.0;
        for (int i = 0; i < c->C; i++)
            m += x[i] / c->C;
        for (int i = 0; i < c->C; i++)
            var += (x[i] - m) * (x[i] - m) / c->C;
        double s = 1.0 / sqrt(var + 1e-5);
        for (int i = 0; i < c->C; i++)
            out[n * c->C + i] = (x[i] - m) * s * w[i] + bias[i];
        if (mean) {
            mean[n] = m;
            rstd[n] = s;
        }
    }
}

static void layernorm_ref(const void *vctx, const double *theta, double *out)
{
    layernorm_ref_full(vctx, theta, out, NULL, NULL);
}

static void layernorm_fwd_saved(const layernorm_ctx *c, const float *theta, float *out,
                                float *mean, float *rstd)
{
    const float *w = theta + c->N * c->C;
    cpu_ops()->layernorm_forward(out, mean, rstd, theta, w, w + c->C, c->N, c->C, NULL);
}

static void layernorm_fwd(const void *vctx, const float *theta, float *out)
{
    const layernorm_ctx *c = vctx;
    float *mean = malloc(c->N * sizeof(float)), *rstd = malloc(c->N * sizeof(float));
    layernorm_fwd_saved(c, theta, out, mean, rstd);
    free(mean);
    free(rstd);
}

static void layernorm_bwd(const void *vctx, const float *theta, const float *dout, float *grad)
{
    const layernorm_ctx *c = vctx;
    float *out = malloc((size_t)c->N * c->C * sizeof(float));
    float *mean = malloc(c->N * sizeof(float)), *rstd = malloc(c->N * sizeof(float));
    layernorm_fwd_saved(c, theta, out, mean, rstd);
    const float *w = theta + c->N * c->C;
    float *dw = grad + c->N * c->C;
    cpu_ops()->layernorm_backward(grad, dw, dw + c->C, dout, theta, w, mean, rstd, c->N, c->C,
                                  NULL);
    free(out);
    free(mean);
    free(rstd);
}

static void test_layernorm(void)
{
    enum { N = 7 };
    layernorm_ctx c = {.N = N, .C = 19};
    size_t ntheta = (size_t)c.N * c.C + 2 * (size_t)c.C;
    ops_case lc = {.name = "layernorm", .ctx = &c, .ntheta = ntheta,
                   .nout = (size_t)c.N * c.C, .theta_std = 1.0f, .ref = layernorm_ref,
                   .forward = layernorm_fwd, .backward = layernorm_bwd, .fwd_rtol = 1e-5,
                   .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-5};
    check_ops_case(&lc);

    /* The saved statistics; inputs offset from 0 so the mean matters. */
    float *theta = new_normal(ntheta, 2.0f), *out = malloc(lc.nout * sizeof(float));
    for (int i = 0; i < c.N * c.C; i++)
        theta[i] += 3.0f;
    float mean[N], rstd[N];
    double *theta_d = to_double(theta, ntheta), *out_d = malloc(lc.nout * sizeof(double));
    double mean_d[N], rstd_d[N];
    layernorm_fwd_saved(&c, theta, out, mean, rstd);
    layernorm_ref_full(&c, theta_d, out_d, mean_d, rstd_d);
    check_array("layernorm forward, offset inputs", out, out_d, lc.nout, 1e-5, 1e-5);
    check_array("layernorm mean", mean, mean_d, c.N, 1e-6, 1e-6);
    check_array("layernorm rstd", rstd, rstd_d, c.N, 1e-5, 0.0);
    free(theta);
    free(out);
    free(theta_d);
    free(out_d);
}

typedef struct {
    int B, T, C, V, maxT;
    const int32_t *tokens;
} embedding_ctx;

/* theta = [wte (V,C), wpe (maxT,C)] */
static void embedding_ref(const void *vctx, const double *theta, double *out)
{
    const embedding_ctx *c = vctx;
    const double *wpe = theta + c->V * c->C;
    for (int bt = 0; bt < c->B * c->T; bt++)
        for (int i = 0; i < c->C; i++)
            out[bt * c->C + i] = theta[c->tokens[bt] * c->C + i] + wpe[(bt % c->T) * c->C + i];
}

static void embedding_fwd(const void *vctx, const float *theta, float *out)
{
    const embedding_ctx *c = vctx;
    cpu_ops()->embedding_forward(out, c->tokens, theta, theta + c->V * c->C, c->B, c->T, c->C,
                                 NULL);
}

static void embedding_bwd(const void *vctx, const float *theta, const float *dout, float *grad)
{
    const embedding_ctx *c = vctx;
    cpu_ops()->embedding_backward(grad, grad + c->V * c->C, dout, c->tokens, c->B, c->T, c->C,
                                  c->V, NULL);
}

static void test_embedding(void)
{
    /* 15 tokens from a vocabulary of 7: repeats (whose gradients add up) and an unused id 6,
     * and maxT > T: rows of unused tokens and positions must get no gradient. */
    static const int32_t tokens[15] = {0, 3, 3, 1, 5, 2, 3, 0, 4, 4, 5, 5, 5, 1, 2};
    embedding_ctx c = {.B = 3, .T = 5, .C = 10, .V = 7, .maxT = 8, .tokens = tokens};
    ops_case ec = {.name = "embedding", .ctx = &c, .ntheta = (size_t)(c.V + c.maxT) * c.C,
                   .nout = (size_t)c.B * c.T * c.C, .theta_std = 1.0f, .ref = embedding_ref,
                   .forward = embedding_fwd, .backward = embedding_bwd, .fwd_rtol = 1e-6,
                   .fwd_atol = 0.0, .grad_rtol = 1e-5, .grad_atol = 1e-6};
    check_ops_case(&ec);
}

typedef struct {
    int B, T, C, NH;
} attention_ctx;

/* Float64 causal attention over qkv (B,T,3C); att (B,NH,T,T) may be NULL. */
static void attention_ref_full(const attention_ctx *c, const double *qkv, double *out,
                               double *att)
{
    int T = c->T, C = c->C, hs = C / c->NH;
    double *p = malloc(T * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + (b * T + t) * 3 * C + h * hs;
                double maxv = -INFINITY, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + (b * T + j) * 3 * C + C + h * hs;
                    p[j] = 0.0;
                    for (int d = 0; d < hs; d++)
                        p[j] += q[d] * k[d] / sqrt(hs);
                    maxv = fmax(maxv, p[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += p[j] = exp(p[j] - maxv);
                for (int d = 0; d < hs; d++) {
                    double acc = 0.0;
                    for (int j = 0; j <= t; j++)
                        acc += p[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + h * hs + d];
                    out[(b * T + t) * C + h * hs + d] = acc;
                }
                for (int j = 0; att && j < T; j++)
                    att[((b * c->NH + h) * T + t) * T + j] = j <= t ? p[j] / sum : 0.0;
            }
    free(p);
}

static void attention_ref(const void *vctx, const double *theta, double *out)
{
    attention_ref_full(vctx, theta, out, NULL);
}

static size_t att_size(const attention_ctx *c) { return (size_t)c->B * c->NH * c->T * c->T; }

static void attention_fwd(const void *vctx, const float *theta, float *out)
{
    const attention_ctx *c = vctx;
    float *att = malloc(att_size(c) * sizeof(float));
    cpu_ops()->attention_forward(out, att, theta, c->B, c->T, c->C, c->NH, NULL);
    free(att);
}

static void attention_bwd(const void *vctx, const float *theta, const float *dout, float *grad)
{
    const attention_ctx *c = vctx;
    float *att = malloc(att_size(c) * sizeof(float)), *scratch = malloc(att_size(c) * sizeof(float));
    float *out = malloc((size_t)c->B * c->T * c->C * sizeof(float));
    cpu_ops()->attention_forward(out, att, theta, c->B, c->T, c->C, c->NH, NULL);
    cpu_ops()->attention_backward(grad, scratch, dout, theta, att, c->B, c->T, c->C, c->NH, NULL);
    free(att);
    free(scratch);
    free(out);
}

static void check_attention(const char *name, attention_ctx c)
{
    size_t nqkv = (size_t)c.B * c.T * 3 * c.C, nout = (size_t)c.B * c.T * c.C;
    ops_case ac = {.name = name, .ctx = &c, .ntheta = nqkv, .nout = nout, .theta_std = 1.0f,
                   .ref = attention_ref, .forward = attention_fwd, .backward = attention_bwd,
                   .fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-5};
    check_ops_case(&ac);

    /* The saved probabilities, including the exact zeros above the diagonal. */
    float *qkv = new_normal(nqkv, 1.5f), *out = malloc(nout * sizeof(float));
    float *att = malloc(att_size(&c) * sizeof(float));
    double *qkv_d = to_double(qkv, nqkv), *out_d = malloc(nout * sizeof(double));
    double *att_d = malloc(att_size(&c) * sizeof(double));
    cpu_ops()->attention_forward(out, att, qkv, c.B, c.T, c.C, c.NH, NULL);
    attention_ref_full(&c, qkv_d, out_d, att_d);
    char what[96];
    snprintf(what, sizeof what, "%s probabilities", name);
    check_array(what, att, att_d, att_size(&c), 1e-5, 1e-7);
    size_t nonzero = 0;
    for (size_t r = 0; r < att_size(&c) / c.T; r++)
        for (int j = (int)(r % c.T) + 1; j < c.T; j++)
            nonzero += att[r * c.T + j] != 0.0f;
    CHECK(nonzero == 0, "%s: %zu probabilities above the diagonal are not 0", name, nonzero);
    free(qkv);
    free(out);
    free(att);
    free(qkv_d);
    free(out_d);
    free(att_d);
}

static void test_attention(void)
{
    check_attention("attention hs=4", (attention_ctx){.B = 2, .T = 7, .C = 12, .NH = 3});
    check_attention("attention hs=64", (attention_ctx){.B = 1, .T = 17, .C = 128, .NH = 2});
    /* one full 64-column tile of the kernels and a 16-column tail */
    check_attention("attention hs=80", (attention_ctx){.B = 1, .T = 9, .C = 160, .NH = 2});
}

typedef struct {
    int N, V;
    const int32_t *targets;
} xent_ctx;

/* losses (N) from logits (N,V) in float64 (log-sum-exp); probs may be NULL. */
static void xent_ref_full(const xent_ctx *c, const double *logits, double *losses, double *probs)
{
    for (int n = 0; n < c->N; n++) {
        const double *z = logits + n * c->V;
        double maxv = -INFINITY, sum = 0.0;
        for (int i = 0; i < c->V; i++)
            maxv = fmax(maxv, z[i]);
        for (int i = 0; i < c->V; i++)
            sum += exp(z[i] - maxv);
        for (int i = 0; probs && i < c->V; i++)
            probs[n * c->V + i] = exp(z[i] - maxv) / sum;
        int32_t t = c->targets[n];
        losses[n] = t < 0 ? 0.0 : log(sum) - (z[t] - maxv);
    }
}

static void xent_ref(const void *vctx, const double *theta, double *out)
{
    xent_ref_full(vctx, theta, out, NULL);
}

/* The op's backward takes one scale for every row, so the functional is scale * sum(losses). */
static void test_xent(void)
{
    enum { N = 6, V = 11 };
    static const int32_t targets[N] = {3, 0, -1, 10, 3, 7}; /* row 2 ignored */
    xent_ctx c = {.N = N, .V = V, .targets = targets};
    const float scale = 1.0f / 5; /* 1 / (number of counted targets) */
    float *logits = new_normal(N * V, 3.0f), losses[N], *probs = malloc(N * V * sizeof(float));
    logits[4 * V + 3] = 60.0f; /* a confident correct row */
    logits[5 * V + 2] = 60.0f; /* a confident wrong row: probs[target] underflows in float */
    double *logits_d = to_double(logits, N * V), losses_d[N], *probs_d = malloc(N * V * sizeof(double));

    cpu_ops()->softmax_xent_forward(losses, probs, logits, targets, N, V, NULL);
    xent_ref_full(&c, logits_d, losses_d, probs_d);
    check_array("xent losses", losses, losses_d, N, 1e-5, 1e-6);
    check_array("xent probs", probs, probs_d, N * V, 1e-5, 1e-7);
    CHECK(losses[2] == 0.0f, "xent: ignored target has loss %g", losses[2]);

    double w[N];
    for (int n = 0; n < N; n++)
        w[n] = scale;
    double *fd = fd_gradient(xent_ref, &c, logits_d, N * V, w, N);
    float *dlogits = new_normal(N * V, 1.0f), *dlogits0 = malloc(N * V * sizeof(float));
    memcpy(dlogits0, dlogits, N * V * sizeof(float));
    cpu_ops()->softmax_xent_backward(dlogits, probs, targets, scale, N, V, NULL);
    for (int i = 0; i < N * V; i++)
        fd[i] += dlogits0[i]; /* the op accumulates onto what was there */
    check_array("xent backward vs finite differences", dlogits, fd, N * V, 1e-5, 1e-6);
    CHECK(memcmp(dlogits + 2 * V, dlogits0 + 2 * V, V * sizeof(float)) == 0,
          "xent backward touched the row of the ignored target");
    free(logits);
    free(probs);
    free(logits_d);
    free(probs_d);
    free(fd);
    free(dlogits);
    free(dlogits0);
}

int main(void)
{
    test_layernorm();
    test_embedding();
    test_attention();
    test_xent();
    TEST_MAIN_END();
}
