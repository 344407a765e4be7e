/* GPT-2-style decoder: token + position embedding, L pre-LN transformer blocks (causal
 * self-attention, 4x GELU MLP), final LayerNorm, LM head tied to the token embedding.
 *
 * Blocks: 0 = embedding, 1..L = transformer blocks, L+1 = final LayerNorm. The residual
 * stream between blocks is always kept; with recompute, a block's inner activations live in
 * one shared set and are rebuilt from its input during backward (same ops, same dropout
 * masks, so the gradients are identical). Buffers hold the backend's storage type (bf16 with
 * train.precision=bf16), but LayerNorm statistics, probabilities and losses are fp32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/rng.h"
#include "model_impl.h"

enum { LN1_W, LN1_B, QKV_W, QKV_B, ATTPROJ_W, ATTPROJ_B, LN2_W, LN2_B, FC_W, FC_B, FCPROJ_W,
       FCPROJ_B, N_BLOCK_TENSORS };

typedef struct block_acts {
    float *ln1, *ln1_mean, *ln1_rstd;   /* (B,T,C), (B,T), (B,T) */
    float *qkv;                         /* (B,T,3C) */
    float *atty;                        /* (B,T,C) attention output before projection */
    float *att;                         /* (B,NH,T,T) attention probabilities */
    float *attproj;                     /* (B,T,C) after projection (and dropout) */
    float *res2;                        /* (B,T,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;   /* (B,T,C), (B,T), (B,T) */
    float *fch, *fch_gelu;              /* (B,T,4C) */
    float *fcproj;                      /* (B,T,C) after projection (and dropout) */
} block_acts;

typedef struct gpt_state {
    int L, NH, C, T, V;
    size_t wte, wpe, lnf_w, lnf_b;      /* parameter offsets */
    size_t (*blk)[N_BLOCK_TENSORS];     /* (L) each block's tensor offsets */
    float **res;                        /* L+1 of (B,T,C): res[0] embedding, res[l+1] block l out */
    block_acts *acts;                   /* L sets, or 1 with recompute */
    int n_sets;
    float *lnf, *lnf_mean, *lnf_rstd;   /* (B,T,C), (B,T), (B,T) */
    float *logits, *probs, *losses;     /* (B,T,V), (B,T,V), (B,T) */
    float *dres[2], *dA, *dB, *dC;      /* (B,T,C) gradient scratch */
    float *dbig1, *dbig2, *dqkv;        /* (B,T,4C), (B,T,4C), (B,T,3C) */
    float *att_scratch, *dlogits;       /* (B,NH,T,T), (B,T,V) */
    int B;                              /* rows of the last forward */
} gpt_state;

/* Dropout sites: 0 embedding, 1 attention projection, 2 MLP projection. */
static uint64_t gpt_dropout_stream(uint64_t step, int layer, int site)
{
    return (step << 16) | ((uint64_t)layer << 4) | (uint64_t)site;
}

static void gpt_dropout_fwd(kiln_model *m, float *x, size_t n, int layer, int site)
{
    float p = (float)m->cfg.dropout;
    if (!m->training || p <= 0.0f) return;
    m->be->ops.dropout_forward(x, x, p, m->seed, gpt_dropout_stream(m->step, layer, site), n,
                               m->be->stream);
}

/* Gradient before dropout: dout itself when dropout is off, else the masked copy in tmp. */
static const float *gpt_dropout_bwd(kiln_model *m, const float *dout, float *tmp, size_t n,
                                    int layer, int site)
{
    float p = (float)m->cfg.dropout;
    if (!m->training || p <= 0.0f) return dout;
    m->be->ops.zero(tmp, n, m->be->stream);
    m->be->ops.dropout_backward(tmp, dout, p, m->seed, gpt_dropout_stream(m->step, layer, site),
                                n, m->be->stream);
    return tmp;
}

#define P(off) kiln_model_param(m, (off))
#define G(off) kiln_model_grad(m, (off))

static void block_forward(kiln_model *m, int l, block_acts *a, const float *x, float *out)
{
    gpt_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    const size_t *w = s->blk[l];
    int B = s->B, T = s->T, C = s->C, BT = B * T;
    size_t btc = (size_t)BT * C;
    op->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, P(w[LN1_W]), P(w[LN1_B]), BT, C, st);
    op->linear_forward(a->qkv, a->ln1, P(w[QKV_W]), P(w[QKV_B]), BT, C, 3 * C, st);
    op->attention_forward(a->atty, a->att, a->qkv, B, T, C, s->NH, st);
    op->linear_forward(a->attproj, a->atty, P(w[ATTPROJ_W]), P(w[ATTPROJ_B]), BT, C, C, st);
    gpt_dropout_fwd(m, a->attproj, btc, l, 1);
    op->residual_forward(a->res2, x, a->attproj, btc, st);
    op->layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, P(w[LN2_W]), P(w[LN2_B]), BT,
                          C, st);
    op->linear_forward(a->fch, a->ln2, P(w[FC_W]), P(w[FC_B]), BT, C, 4 * C, st);
    op->gelu_forward(a->fch_gelu, a->fch, btc * 4, st);
    op->linear_forward(a->fcproj, a->fch_gelu, P(w[FCPROJ_W]), P(w[FCPROJ_B]), BT, 4 * C, C, st);
    gpt_dropout_fwd(m, a->fcproj, btc, l, 2);
    op->residual_forward(out, a->res2, a->fcproj, btc, st);
}

/* dx += d(block input), given dout = d(block output). */
static void block_backward(kiln_model *m, int l, block_acts *a, const float *x,
                           const float *dout, float *dx)
{
    gpt_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    const size_t *w = s->blk[l];
    int B = s->B, T = s->T, C = s->C, BT = B * T;
    size_t btc = (size_t)BT * C;

    /* MLP branch: out = res2 + fcproj */
    float *dres2 = s->dA;
    op->zero(dres2, btc, st);
    op->axpy(dres2, dout, 1.0f, btc, st);
    const float *dfcproj = gpt_dropout_bwd(m, dout, s->dB, btc, l, 2);
    op->zero(s->dbig1, btc * 4, st);
    op->linear_backward(s->dbig1, G(w[FCPROJ_W]), G(w[FCPROJ_B]), dfcproj, a->fch_gelu,
                        P(w[FCPROJ_W]), BT, 4 * C, C, st);
    op->zero(s->dbig2, btc * 4, st);
    op->gelu_backward(s->dbig2, a->fch, s->dbig1, btc * 4, st);
    op->zero(s->dB, btc, st);
    op->linear_backward(s->dB, G(w[FC_W]), G(w[FC_B]), s->dbig2, a->ln2, P(w[FC_W]), BT, C, 4 * C, st);
    op->layernorm_backward(dres2, G(w[LN2_W]), G(w[LN2_B]), s->dB, a->res2, P(w[LN2_W]),
                           a->ln2_mean, a->ln2_rstd, BT, C, st);

    /* attention branch: res2 = x + attproj */
    op->axpy(dx, dres2, 1.0f, btc, st);
    const float *dattproj = gpt_dropout_bwd(m, dres2, s->dB, btc, l, 1);
    op->zero(s->dC, btc, st);
    op->linear_backward(s->dC, G(w[ATTPROJ_W]), G(w[ATTPROJ_B]), dattproj, a->atty,
                        P(w[ATTPROJ_W]), BT, C, C, st);
    op->zero(s->dqkv, btc * 3, st);
    op->attention_backward(s->dqkv, s->att_scratch, s->dC, a->qkv, a->att, B, T, C, s->NH, st);
    op->zero(s->dB, btc, st);
    op->linear_backward(s->dB, G(w[QKV_W]), G(w[QKV_B]), s->dqkv, a->ln1, P(w[QKV_W]), BT, C,
                        3 * C, st);
    op->layernorm_backward(dx, G(w[LN1_W]), G(w[LN1_B]), s->dB, x, P(w[LN1_W]), a->ln1_mean,
                           a->ln1_rstd, BT, C, st);
}

static block_acts *acts_for(gpt_state *s, int l) { return &s->acts[s->n_sets == 1 ? 0 : l]; }

static kiln_status gpt_forward(kiln_model *m, const kiln_batch *b, int training, uint64_t step,
                               float *loss, int64_t *n_correct, int64_t *n_targets)
{
    gpt_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    s->B = b->B;
    int BT = b->B * s->T, C = s->C;
    const kiln_pass fwd = KILN_PASS_FORWARD;
    kiln_model_block_begin(m, 0, fwd);
    op->embedding_forward(s->res[0], b->tokens, P(s->wte), P(s->wpe), b->B, s->T, C, st);
    kiln_model_block_end(m, 0, fwd);
    gpt_dropout_fwd(m, s->res[0], (size_t)BT * C, 0, 0);
    for (int l = 0; l < s->L; l++) {
        kiln_model_block_begin(m, l + 1, fwd);
        block_forward(m, l, acts_for(s, l), s->res[l], s->res[l + 1]);
        kiln_model_block_end(m, l + 1, fwd);
    }
    kiln_model_block_begin(m, s->L + 1, fwd);
    op->layernorm_forward(s->lnf, s->lnf_mean, s->lnf_rstd, s->res[s->L], P(s->lnf_w), P(s->lnf_b),
                          BT, C, st);
    kiln_model_block_end(m, s->L + 1, fwd);
    kiln_model_block_begin(m, 0, fwd); /* the tied LM head reads the embedding again */
    op->linear_forward(s->logits, s->lnf, P(s->wte), NULL, BT, C, s->V, st);
    kiln_model_block_end(m, 0, fwd);
    op->softmax_xent_forward(s->losses, s->probs, s->logits, b->targets, BT, s->V, st);
    m->probs = s->probs;
    return kiln_model_xent_summary(m, s->losses, s->probs, BT, s->V, loss, n_correct, n_targets);
}

static kiln_status gpt_backward(kiln_model *m, float target_scale)
{
    gpt_state *s = m->impl;
    const kiln_ops *op = &m->be->ops;
    void *st = m->be->stream;
    int BT = s->B * s->T, C = s->C;
    size_t btc = (size_t)BT * C;

    op->zero(s->dlogits, (size_t)BT * s->V, st);
    op->softmax_xent_backward(s->dlogits, s->probs, m->batch->targets, target_scale, BT, s->V, st);
    op->zero(s->dA, btc, st);
    const kiln_pass bwd = KILN_PASS_BACKWARD;
    kiln_model_block_begin(m, 0, bwd); /* the head adds the first part of wte's gradient */
    op->linear_backward(s->dA, G(s->wte), NULL, s->dlogits, s->lnf, P(s->wte), BT, C, s->V, st);
    kiln_model_block_end(m, 0, bwd);
    float *dcur = s->dres[0], *dnext = s->dres[1];
    op->zero(dcur, btc, st);
    kiln_model_block_begin(m, s->L + 1, bwd);
    op->layernorm_backward(dcur, G(s->lnf_w), G(s->lnf_b), s->dA, s->res[s->L], P(s->lnf_w),
                           s->lnf_mean, s->lnf_rstd, BT, C, st);
    kiln_model_block_done(m, s->L + 1);
    for (int l = s->L - 1; l >= 0; l--) {
        block_acts *a = acts_for(s, l);
        kiln_model_block_begin(m, l + 1, bwd);
        /* the last block's activations are still in the shared set */
        if (m->cfg.recompute && l < s->L - 1) block_forward(m, l, a, s->res[l], s->res[l + 1]);
        op->zero(dnext, btc, st);
        block_backward(m, l, a, s->res[l], dcur, dnext);
        kiln_model_block_done(m, l + 1);
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    const float *demb = gpt_dropout_bwd(m, dcur, s->dA, btc, 0, 0);
    /* block 0's gradients are still open from the head (it is `reused`); its parameters are
     * not read here */
    op->embedding_backward(G(s->wte), G(s->wpe), demb, m->batch->tokens, s->B, s->T, C, s->V, st);
    kiln_model_block_done(m, 0);
    return KILN_OK;
}

static void gpt_free(kiln_model *m)
{
    gpt_state *s = m->impl;
    if (!s) return;
    void (*fr)(void *) = m->be->free;
    for (int i = 0; s->res && i <= s->L; i++) fr(s->res[i]);
    free(s->res);
    for (int i = 0; s->acts && i < s->n_sets; i++) {
        block_acts *a = &s->acts[i];
        float *bufs[] = {a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->atty, a->att, a->attproj,
                         a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, a->fch, a->fch_gelu, a->fcproj};
        for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) fr(bufs[k]);
    }
    free(s->acts);
    free(s->blk);
    float *bufs[] = {s->lnf, s->lnf_mean, s->lnf_rstd, s->logits, s->probs, s->losses, s->dres[0],
                     s->dres[1], s->dA, s->dB, s->dC, s->dbig1, s->dbig2, s->dqkv,
                     s->att_scratch, s->dlogits};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) fr(bufs[k]);
    free(s);
    m->impl = NULL;
}

/* Per position: "embed" (token + position embedding), "h<l>" (block l's output), "lnf" (after
 * the final LayerNorm), "logits", "probs", "loss". */
static const float *gpt_output(const kiln_model *m, const char *name, int *width)
{
    const gpt_state *s = m->impl;
    int l, end = 0;
    *width = s->C;
    if (!strcmp(name, "embed")) return s->res[0];
    if (!strcmp(name, "lnf")) return s->lnf;
    if (sscanf(name, "h%d%n", &l, &end) == 1 && !name[end] && l >= 0 && l < s->L) return s->res[l + 1];
    *width = s->V;
    if (!strcmp(name, "logits")) return s->logits;
    if (!strcmp(name, "probs")) return s->probs;
    *width = 1;
    if (!strcmp(name, "loss")) return s->losses;
    return NULL;
}

static void gpt_output_names(const kiln_model *m, char *buf, size_t len)
{
    const gpt_state *s = m->impl;
    snprintf(buf, len, "embed, h0..h%d (block outputs), lnf, logits, probs, loss", s->L - 1);
}

static const kiln_model_vtable gpt_vtable = {gpt_forward, gpt_backward, gpt_free, gpt_output,
                                             gpt_output_names};

static void gpt_layout(kiln_model *m, gpt_state *s)
{
    static const char *names[N_BLOCK_TENSORS] = {
        "ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
        "attn.proj.bias", "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias",
        "mlp.proj.weight", "mlp.proj.bias"};
    uint64_t C = (uint64_t)s->C;
    const uint64_t shapes[N_BLOCK_TENSORS][2] = {{C}, {C}, {3 * C, C}, {3 * C}, {C, C}, {C},
                                                 {C}, {C}, {4 * C, C}, {4 * C}, {C, 4 * C}, {C}};
    const uint64_t wte_shape[2] = {(uint64_t)s->V, C}, wpe_shape[2] = {(uint64_t)s->T, C};
    kiln_model_begin_block(m);
    m->blocks[0].reused = 1; /* the LM head is tied to wte */
    s->wte = kiln_model_add_tensor(m, "wte", 2, wte_shape, 1);
    s->wpe = kiln_model_add_tensor(m, "wpe", 2, wpe_shape, 1);
    for (int l = 0; l < s->L; l++) {
        kiln_model_begin_block(m);
        for (int k = 0; k < N_BLOCK_TENSORS; k++) {
            char name[64];
            snprintf(name, sizeof name, "h%d.%s", l, names[k]);
            int ndim = shapes[k][1] ? 2 : 1;
            s->blk[l][k] = kiln_model_add_tensor(m, name, ndim, shapes[k], ndim == 2);
        }
    }
    kiln_model_begin_block(m);
    s->lnf_w = kiln_model_add_tensor(m, "lnf.weight", 1, &shapes[LN1_W][0], 0);
    s->lnf_b = kiln_model_add_tensor(m, "lnf.bias", 1, &shapes[LN1_B][0], 0);
    /* nanoGPT's convention: 6 flops per matmul parameter per token (LM head included via the
     * tied embedding) plus 12*L*C*T for attention scores and mixing. */
    double matmul_params = (double)s->L * 12.0 * s->C * s->C + (double)s->V * s->C;
    m->flops_per_unit = 6.0 * matmul_params + 12.0 * s->L * s->C * s->T;
}

static void gpt_init_params(kiln_model *m, gpt_state *s, uint64_t seed)
{
    float std = (float)m->cfg.init_std;
    float proj_std = std / sqrtf(2.0f * (float)s->L); /* GPT-2: scale residual projections */
    for (int i = 0; i < m->n_tensors; i++) {
        const kiln_tensor_info *t = &m->tensors[i];
        float *p = kiln_model_host_params(m) + t->offset;
        const char *dot = strrchr(t->name, '.');
        int is_norm_weight = strstr(t->name, "ln") && dot && !strcmp(dot, ".weight");
        if (is_norm_weight) {
            for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
        } else if (t->ndim == 2) {
            int is_proj = strstr(t->name, ".proj.weight") != NULL;
            kiln_rng_fill_normal(p, t->numel, 0.0f, is_proj ? proj_std : std, seed, (uint64_t)i, 0);
        } /* biases stay zero (buffers are allocated zeroed) */
    }
}

static kiln_status gpt_alloc_acts(kiln_model *m, gpt_state *s)
{
    size_t B = (size_t)m->max_batch, T = (size_t)s->T, C = (size_t)s->C, BT = B * T;
    size_t att = B * (size_t)s->NH * T * T;
    s->res = calloc((size_t)s->L + 1, sizeof *s->res);
    s->acts = calloc((size_t)s->n_sets, sizeof *s->acts);
    KILN_CHECK_ALLOC(s->res);
    KILN_CHECK_ALLOC(s->acts);
    for (int l = 0; l <= s->L; l++) KILN_CHECK(kiln_model_alloc_acts(m, &s->res[l], BT * C, "residual"));
    for (int i = 0; i < s->n_sets; i++) {
        block_acts *a = &s->acts[i];
        struct { float **p; size_t n; } want[] = {
            {&a->ln1, BT * C}, {&a->qkv, BT * 3 * C}, {&a->atty, BT * C}, {&a->att, att},
            {&a->attproj, BT * C}, {&a->res2, BT * C}, {&a->ln2, BT * C},
            {&a->fch, BT * 4 * C}, {&a->fch_gelu, BT * 4 * C}, {&a->fcproj, BT * C}};
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            KILN_CHECK(kiln_model_alloc_acts(m, want[k].p, want[k].n, "block activations"));
        float **stats[] = {&a->ln1_mean, &a->ln1_rstd, &a->ln2_mean, &a->ln2_rstd};
        for (size_t k = 0; k < sizeof stats / sizeof stats[0]; k++)
            KILN_CHECK(kiln_model_alloc_f32(m, stats[k], BT, "LayerNorm statistics"));
    }
    size_t V = (size_t)s->V;
    struct { float **p; size_t n; } rest[] = {
        {&s->lnf, BT * C}, {&s->logits, BT * V}, {&s->dres[0], BT * C}, {&s->dres[1], BT * C},
        {&s->dA, BT * C}, {&s->dB, BT * C}, {&s->dC, BT * C}, {&s->dbig1, BT * 4 * C},
        {&s->dbig2, BT * 4 * C}, {&s->dqkv, BT * 3 * C}, {&s->att_scratch, att},
        {&s->dlogits, BT * V}};
    for (size_t k = 0; k < sizeof rest / sizeof rest[0]; k++)
        KILN_CHECK(kiln_model_alloc_acts(m, rest[k].p, rest[k].n, "head activations"));
    struct { float **p; size_t n; } f32[] = {
        {&s->lnf_mean, BT}, {&s->lnf_rstd, BT}, {&s->probs, BT * V}, {&s->losses, BT}};
    for (size_t k = 0; k < sizeof f32 / sizeof f32[0]; k++)
        KILN_CHECK(kiln_model_alloc_f32(m, f32[k].p, f32[k].n, "head statistics and losses"));
    return KILN_OK;
}

kiln_status kiln_gpt_init(kiln_model *m, uint64_t seed)
{
    const kiln_model_config *c = &m->cfg;
    if (c->n_layer <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "model.n_layer must be positive, found %d", c->n_layer);
    if (c->n_head <= 0 || c->n_embd <= 0 || c->n_embd % c->n_head)
        return KILN_ERROR(KILN_ERR_CONFIG,
                          "model.n_embd (%d) must be a positive multiple of model.n_head (%d)",
                          c->n_embd, c->n_head);
    if (c->block_size <= 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "model.block_size must be positive, found %d",
                          c->block_size);
    gpt_state *s = calloc(1, sizeof *s);
    KILN_CHECK_ALLOC(s);
    m->impl = s;
    m->vt = &gpt_vtable;
    m->data_kind = KILN_DATA_LM;
    s->L = c->n_layer;
    s->NH = c->n_head;
    s->C = c->n_embd;
    s->T = c->block_size;
    s->V = m->n_out;
    s->n_sets = c->recompute ? 1 : s->L;
    s->blk = calloc((size_t)s->L, sizeof *s->blk);
    KILN_CHECK_ALLOC(s->blk);
    gpt_layout(m, s);
    KILN_CHECK(kiln_model_alloc_buffers(m));
    gpt_init_params(m, s, seed);
    KILN_CHECK(kiln_model_params_to_device(m));
    KILN_CHECK(gpt_alloc_acts(m, s));
    return KILN_OK;
}

kiln_status kiln_gpt_read_widths(hid_t file, const char *path, const kiln_model_config *cfg,
                                 int *in_dim, int *n_out)
{
    *in_dim = 0; /* the context length is model.block_size */
    return kiln_model_tensor_extent(file, path, "model/wte", 0, n_out);
}
