/* Model-level checks: the MLP's and GPT's analytic gradients against central finite
 * differences of the loss (every parameter of tiny models, dropout on and off), activation
 * recomputation giving bit-identical gradients, gradient accumulation over micro-batches
 * matching one large batch, the block hooks' contract that ZeRO relies on, and a forward of
 * zero rows (a rank with no rows of an eval batch still runs it). */
#include <string.h>
#include "check.h"
#include "kiln/model.h"
#include "kiln/rng.h"

static kiln_model_config gpt_config(double dropout, int recompute)
{
    kiln_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.kind, "gpt");
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.block_size = 5;
    c.dropout = dropout;
    c.recompute = recompute;
    c.init_std = 0.3; /* larger than GPT-2's 0.02 so every path carries visible gradient */
    return c;
}

static kiln_model_config mlp_config(double dropout)
{
    kiln_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.kind, "mlp");
    c.hidden.n = 2;
    c.hidden.v[0] = 7;
    c.hidden.v[1] = 5;
    c.dropout = dropout;
    return c;
}

typedef struct batch_store {
    float x[8 * 6];
    int32_t y[8], tokens[8 * 5], targets[8 * 5];
    kiln_batch b;
} batch_store;

static void make_batch(batch_store *s, int B, int lm, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->b.B = B;
    for (int i = 0; i < B * 6; i++) s->x[i] = kiln_rng_uniform(seed, 1, (uint64_t)i);
    for (int i = 0; i < B; i++) s->y[i] = (int32_t)(kiln_rng_uniform(seed, 2, (uint64_t)i) * 3.0f);
    for (int i = 0; i < B * 5; i++) {
        s->tokens[i] = (int32_t)(kiln_rng_uniform(seed, 3, (uint64_t)i) * 11.0f);
        s->targets[i] = (int32_t)(kiln_rng_uniform(seed, 4, (uint64_t)i) * 11.0f);
    }
    s->targets[3] = -1; /* an ignored position */
    if (lm) { s->b.tokens = s->tokens; s->b.targets = s->targets; }
    else { s->b.x = s->x; s->b.y = s->y; }
}

static float loss_of(kiln_model *m, const kiln_batch *b, int training)
{
    float loss;
    CHECK_OK(kiln_model_forward(m, b, training, 7, &loss, NULL, NULL));
    return loss;
}

/* Every parameter: (L(p+h) - L(p-h)) / 2h against the analytic gradient.
 * Float32 forward passes with h = 1e-2 give differences good to about 1e-3 absolute;
 * wiring mistakes show up as errors of order the gradient itself. */
static void check_gradients(kiln_model *m, const kiln_batch *b, int training, const char *what)
{
    size_t n = kiln_model_num_params(m);
    float *p = kiln_model_params(m), *g = kiln_model_grads(m);
    memset(g, 0, n * sizeof *g);
    loss_of(m, b, training);
    CHECK_OK(kiln_model_backward(m, 1.0f));
    int bad = 0;
    double max_err = 0.0, max_g = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i], h = 1e-2f;
        p[i] = keep + h;
        double lp = loss_of(m, b, training);
        p[i] = keep - h;
        double lm = loss_of(m, b, training);
        p[i] = keep;
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[i]);
        if (err > 2e-3 + 2e-2 * fabs(fd)) {
            if (bad++ < 5) fprintf(stderr, "%s: param %zu analytic %.6g fd %.6g\n", what, i, g[i], fd);
        }
        if (err > max_err) max_err = err;
        if (fabs(g[i]) > max_g) max_g = fabs(g[i]);
    }
    CHECK(bad == 0, "%s: %d of %zu gradients off (max err %.3g)", what, bad, n, max_err);
    CHECK(max_g > 1e-3, "%s: gradients are all ~0 (max %.3g): the check would be vacuous", what, max_g);
    printf("%s: %zu params, max |fd - analytic| = %.2e, max |g| = %.3f\n", what, n, max_err, max_g);
}

static void test_gradients(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    batch_store s;
    double dropouts[2] = {0.0, 0.3};
    for (int d = 0; d < 2; d++) {
        kiln_model *m;
        kiln_model_config c = mlp_config(dropouts[d]);
        CHECK_OK(kiln_model_create(&c, 6, 3, 8, be, 11, &m));
        make_batch(&s, 8, 0, 5);
        check_gradients(m, &s.b, 1, d ? "mlp+dropout" : "mlp");
        kiln_model_free(m);

        c = gpt_config(dropouts[d], 0);
        CHECK_OK(kiln_model_create(&c, 0, 11, 3, be, 11, &m));
        make_batch(&s, 3, 1, 6);
        check_gradients(m, &s.b, 1, d ? "gpt+dropout" : "gpt");
        kiln_model_free(m);
    }
}

static void test_recompute_identical(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    batch_store s;
    make_batch(&s, 3, 1, 9);
    kiln_model *plain, *recomp;
    kiln_model_config c0 = gpt_config(0.2, 0), c1 = gpt_config(0.2, 1);
    CHECK_OK(kiln_model_create(&c0, 0, 11, 3, be, 3, &plain));
    CHECK_OK(kiln_model_create(&c1, 0, 11, 3, be, 3, &recomp));
    size_t n = kiln_model_num_params(plain);
    CHECK(n == kiln_model_num_params(recomp), "same parameter count");
    CHECK(!memcmp(kiln_model_params(plain), kiln_model_params(recomp), n * sizeof(float)),
          "same init");
    float l0, l1;
    CHECK_OK(kiln_model_forward(plain, &s.b, 1, 4, &l0, NULL, NULL));
    CHECK_OK(kiln_model_backward(plain, 1.0f));
    CHECK_OK(kiln_model_forward(recomp, &s.b, 1, 4, &l1, NULL, NULL));
    CHECK_OK(kiln_model_backward(recomp, 1.0f));
    CHECK(l0 == l1, "loss with recompute %.9g vs %.9g", l1, l0);
    CHECK(!memcmp(kiln_model_grads(plain), kiln_model_grads(recomp), n * sizeof(float)),
          "gradients with and without recomputation differ");
    kiln_model_free(plain);
    kiln_model_free(recomp);
}

static void test_accumulation(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    kiln_model *m;
    kiln_model_config c = mlp_config(0.0);
    CHECK_OK(kiln_model_create(&c, 6, 3, 8, be, 2, &m));
    size_t n = kiln_model_num_params(m);
    batch_store full, half;
    make_batch(&full, 8, 0, 21);
    float *g_full = malloc(n * sizeof(float)), loss;
    memset(kiln_model_grads(m), 0, n * sizeof(float));
    CHECK_OK(kiln_model_forward(m, &full.b, 1, 0, &loss, NULL, NULL));
    CHECK_OK(kiln_model_backward(m, 1.0f));
    memcpy(g_full, kiln_model_grads(m), n * sizeof(float));
    memset(kiln_model_grads(m), 0, n * sizeof(float));
    for (int part = 0; part < 2; part++) {
        half = full;
        half.b.B = 4;
        half.b.x = half.x + part * 4 * 6;
        half.b.y = half.y + part * 4;
        CHECK_OK(kiln_model_forward(m, &half.b, 1, 0, &loss, NULL, NULL));
        CHECK_OK(kiln_model_backward(m, 0.5f));
    }
    double max_err = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(g_full[i] - kiln_model_grads(m)[i]);
        if (e > max_err) max_err = e;
    }
    CHECK(max_err < 1e-6, "2 x 4 accumulated vs 8 at once: max diff %.3g (fp32 rounding only)", max_err);
    free(g_full);
    kiln_model_free(m);
}

/* Causality: changing the token at position t changes no prediction at positions < t. */
static void test_gpt_causal(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    kiln_model *m;
    kiln_model_config c = gpt_config(0.0, 0);
    CHECK_OK(kiln_model_create(&c, 0, 11, 3, be, 5, &m));
    batch_store s;
    make_batch(&s, 3, 1, 13);
    const int T = 5, V = 11, t = 3;
    float loss, before[3 * 5 * 11];
    CHECK_OK(kiln_model_forward(m, &s.b, 0, 0, &loss, NULL, NULL));
    memcpy(before, kiln_model_probs(m), sizeof before);
    for (int b = 0; b < 3; b++) s.tokens[b * T + t] = (s.tokens[b * T + t] + 1) % V;
    CHECK_OK(kiln_model_forward(m, &s.b, 0, 0, &loss, NULL, NULL));
    const float *after = kiln_model_probs(m);
    int past_same = 1, later_changed = 0;
    for (int b = 0; b < 3; b++)
        for (int p = 0; p < T; p++)
            for (int v = 0; v < V; v++) {
                size_t i = ((size_t)b * T + p) * V + v;
                if (p < t && before[i] != after[i]) past_same = 0;
                if (p >= t && before[i] != after[i]) later_changed = 1;
            }
    CHECK(past_same, "a later token changed an earlier prediction: attention is not causal");
    CHECK(later_changed, "changing a token changed nothing at or after it");
    kiln_model_free(m);
}

/* Block hook events, checked against the contract in kiln/model.h as they come. */
typedef struct hook_log {
    const kiln_model *m;
    int in_use;                         /* the block between begin and end/done, or -1 */
    int begins, ends, dones, last_done;
    int open[64];                       /* backward: gradients begun and not yet done */
    int ok;
} hook_log;

static kiln_status log_begin(void *ctx, int block, kiln_pass pass)
{
    hook_log *h = ctx;
    h->ok &= h->in_use < 0; /* one block at a time */
    h->in_use = block;
    h->begins++;
    if (pass == KILN_PASS_BACKWARD) h->open[block] = 1;
    return KILN_OK;
}

static kiln_status log_end(void *ctx, int block, kiln_pass pass)
{
    hook_log *h = ctx;
    h->ok &= h->in_use == block;
    h->in_use = -1;
    h->ends++;
    return KILN_OK;
}

static kiln_status log_done(void *ctx, int block)
{
    hook_log *h = ctx;
    h->ok &= (h->in_use == block || h->in_use < 0) && h->open[block] && block < h->last_done;
    /* a block is done once nothing later will add to it: every block after it is done */
    h->in_use = -1;
    h->open[block] = 0;
    h->last_done = block;
    h->dones++;
    return KILN_OK;
}

/* A tiny MLP (6 inputs, 3 classes) or GPT (vocabulary 11) for batches of up to 4, and a
 * batch of 4 for it. */
static kiln_model *tiny_model(int lm, double dropout, int recompute, batch_store *bs)
{
    kiln_model_config c = lm ? gpt_config(dropout, recompute) : mlp_config(dropout);
    kiln_model *m = NULL;
    CHECK_OK(kiln_model_create(&c, 6, lm ? 11 : 3, 4, kiln_backend_cpu(), 5, &m));
    make_batch(bs, 4, lm, 3);
    return m;
}

/* Forward begins and ends every block it reads, one at a time (the GPT's tied embedding
 * twice); backward begins every block before adding to its gradients and reports each done
 * once, last block first, the reused embedding last although the head began it first. */
static void test_block_hooks(void)
{
    for (int lm = 0; lm < 2; lm++) {
        const char *kind = lm ? "gpt" : "mlp";
        batch_store bs;
        kiln_model *m = tiny_model(lm, 0.1, 1, &bs);
        if (!m) continue;
        int nb = kiln_model_num_blocks(m);
        hook_log h = {m, -1, 0, 0, 0, nb, {0}, 1};
        kiln_block_hooks hooks = {&h, log_begin, log_end, log_done};
        kiln_model_set_block_hooks(m, &hooks);
        float loss;
        CHECK_OK(kiln_model_forward(m, &bs.b, 1, 0, &loss, NULL, NULL));
        CHECK(h.ok && h.in_use < 0 && h.begins == nb + lm && h.ends == h.begins,
              "%s forward: %d begins, %d ends for %d blocks (contract %s)", kind, h.begins,
              h.ends, nb, h.ok ? "kept" : "broken");
        h.begins = h.ends = 0;
        CHECK_OK(kiln_model_backward(m, 1.0f));
        CHECK(h.ok && h.dones == nb && h.last_done == 0 && h.begins == nb,
              "%s backward: %d begins, %d dones for %d blocks (contract %s)", kind, h.begins,
              h.dones, nb, h.ok ? "kept" : "broken");
        CHECK(kiln_model_block(m, 0)->reused == lm, "%s: block 0 reused = %d", kind,
              kiln_model_block(m, 0)->reused);
        kiln_model_free(m);
    }
}

/* Zero rows: loss 0, nothing scored, and the model is unharmed for the next batch. */
static void test_empty_batch(void)
{
    for (int lm = 0; lm < 2; lm++) {
        const char *kind = lm ? "gpt" : "mlp";
        batch_store bs;
        kiln_model *m = tiny_model(lm, 0.0, 0, &bs);
        if (!m) continue;
        float before = loss_of(m, &bs.b, 0), loss = -1.0f;
        int64_t hits = -1, n = -1;
        bs.b.B = 0;
        CHECK_OK(kiln_model_forward(m, &bs.b, 0, 0, &loss, &hits, &n));
        CHECK(loss == 0.0f && hits == 0 && n == 0, "%s, 0 rows: loss %g, %lld hits, %lld targets",
              kind, loss, (long long)hits, (long long)n);
        bs.b.B = 4;
        CHECK(loss_of(m, &bs.b, 0) == before, "%s: a 0-row forward changed the next one", kind);
        kiln_model_free(m);
    }
}

/* No fixed-size table limits the depth: GPT-2 XL's 48 layers (580 tensors, 50 blocks) and a
 * 200-layer stack build, run forward and backward, and lay their tensors out in order. A
 * 48-layer GPT overflowed a 512-entry tensor table before. */
static void test_deep_gpt(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    int depths[] = {48, 200};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        kiln_model_config c = gpt_config(0.0, 1);
        c.n_layer = depths[d];
        c.n_head = 1;
        c.n_embd = 4;
        c.init_std = 0.02;
        kiln_model *m = NULL;
        CHECK_OK(kiln_model_create(&c, 0, 11, 2, be, 5, &m));
        if (!m) continue;
        CHECK(kiln_model_num_tensors(m) == 12 * depths[d] + 4 && kiln_model_num_blocks(m) == depths[d] + 2,
              "L=%d: %d tensors, %d blocks", depths[d], kiln_model_num_tensors(m), kiln_model_num_blocks(m));
        size_t next = 0;
        int ordered = 1;
        for (int i = 0; i < kiln_model_num_tensors(m); i++) {
            ordered &= kiln_model_tensor(m, i)->offset == next;
            next += kiln_model_tensor(m, i)->numel;
        }
        CHECK(ordered && next == kiln_model_num_params(m), "L=%d: tensors tile the flat buffer", depths[d]);
        batch_store s;
        make_batch(&s, 2, 1, 3);
        float loss = loss_of(m, &s.b, 0);
        CHECK(isfinite(loss) && loss > 0.0f, "L=%d: loss %g", depths[d], loss);
        CHECK_OK(kiln_model_backward(m, 1.0f));
        kiln_model_free(m);
    }
}

/* Jobs learn what a model takes and predicts from its kind's row, never from its name. */
static void test_model_kinds(void)
{
    const kiln_model_kind *k;
    CHECK_OK(kiln_model_kind_get("model.kind", "gpt", &k));
    CHECK(k && k->input == KILN_DATA_LM && !strcmp(k->eval_split, "val") &&
              !strcmp(k->infer_dataset, "tokens") && !strcmp(k->task, "next-token"),
          "gpt's row");
    CHECK_OK(kiln_model_kind_get("model.kind", "mlp", &k));
    CHECK(k && k->input == KILN_DATA_CLASSIFY && !strcmp(k->eval_split, "test") &&
              !strcmp(k->infer_dataset, "x") && k->batch_cpu == 256,
          "mlp's row");
    CHECK_FAILS(kiln_model_kind_get("model.kind", "rnn", &k), KILN_ERR_CONFIG,
                "model.kind: unknown model kind 'rnn' (kinds: mlp, gpt)");
    /* the kind a model reports is the one it was made as */
    batch_store bs;
    kiln_model *m = tiny_model(1, 0.0, 0, &bs);
    CHECK(m && !strcmp(kiln_model_kind_of(m)->name, "gpt"), "kind of a GPT");
    kiln_model_free(m);
    /* every kind is listed in model.kind's choices, and every choice is a kind */
    char choices[] = KILN_MODEL_KIND_CHOICES;
    int n = 0;
    for (char *tok = strtok(choices, "|"); tok; tok = strtok(NULL, "|"), n++)
        CHECK_OK(kiln_model_kind_get("model.kind", tok, &k));
    CHECK(n == 2, "choices list %d kinds", n);
}

int main(void)
{
    test_deep_gpt();
    test_model_kinds();
    test_block_hooks();
    test_empty_batch();
    test_gpt_causal();
    test_gradients();
    test_recompute_identical();
    test_accumulation();
    TEST_MAIN_END();
}
