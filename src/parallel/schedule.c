/* Pipeline schedules as per-rank tables of actions, and a simulator that runs them against the
 * pipeline's dependencies (see kiln/schedule.h). The interleaved order is Megatron-LM's: virtual
 * micro-batch k runs on chunk (k mod pp v) / pp (backwards: the chunks in reverse) for
 * micro-batch (k / (pp v)) pp + k mod pp, after a warm-up of 2 (pp - 1 - stage) + (v - 1) pp
 * forwards. */
#include <stdlib.h>
#include <string.h>
#include "kiln/schedule.h"

static const char *const names[] = {"gpipe", "1f1b", "interleaved"};

int kiln_pp_schedule_parse(const char *name, kiln_pp_schedule *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) return *out = (kiln_pp_schedule)i, 1;
    return 0;
}

const char *kiln_pp_schedule_name(kiln_pp_schedule s) { return names[s]; }

kiln_status kiln_pp_schedule_check(kiln_pp_schedule s, int pp, int v, int m)
{
    if (pp < 1 || pp > 64) return KILN_ERROR(KILN_ERR_CONFIG, "parallel.pp=%d: expected 1 to 64 stages", pp);
    if (v < 1) return KILN_ERROR(KILN_ERR_CONFIG, "parallel.virtual_stages=%d: expected at least 1", v);
    if (m < 1) return KILN_ERROR(KILN_ERR_CONFIG, "%d micro-batches: expected at least 1", m);
    if (s != KILN_PP_INTERLEAVED && v != 1)
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.virtual_stages=%d belongs to parallel.schedule=interleaved "
                          "(parallel.schedule=%s runs one chunk a rank)", v, names[s]);
    if (s == KILN_PP_1F1B && m < pp)
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.schedule=1f1b with parallel.pp=%d needs at least %d micro-batches "
                          "(train.batch_size / train.micro_batch), found %d: the pipe would never fill", pp, pp, m);
    if (s == KILN_PP_INTERLEAVED && (m < pp || m % pp))
        return KILN_ERROR(KILN_ERR_CONFIG, "parallel.schedule=interleaved with parallel.pp=%d needs a multiple of %d "
                          "micro-batches (train.batch_size / train.micro_batch), found %d", pp, pp, m);
    if ((int64_t)m * v > (1 << 24)) return KILN_ERROR(KILN_ERR_CONFIG, "%d micro-batches x %d chunks: too many", m, v);
    return KILN_OK;
}

/* Virtual micro-batch k (interleaved): its micro-batch and chunk. */
static kiln_pp_action virtual_action(int k, int backward, int pp, int v)
{
    int group = k % (pp * v), chunk = group / pp;
    return (kiln_pp_action){(uint8_t)backward, (k / (pp * v)) * pp + k % pp, backward ? v - 1 - chunk : chunk};
}

static int warmup(kiln_pp_schedule s, int pp, int v, int m, int stage)
{
    int total = m * v;
    if (s == KILN_PP_GPIPE) return total;
    int w = s == KILN_PP_1F1B ? pp - 1 - stage : m == pp ? total : 2 * (pp - 1 - stage) + (v - 1) * pp;
    return w < total ? w : total;
}

kiln_status kiln_pp_schedule_table(kiln_pp_schedule s, int pp, int v, int m, int stage, kiln_pp_action **out,
                                   int *n)
{
    KILN_CHECK(kiln_pp_schedule_check(s, pp, v, m));
    if (stage < 0 || stage >= pp) return KILN_ERROR(KILN_ERR_ARG, "stage %d of %d", stage, pp);
    int total = m * v, w = warmup(s, pp, v, m, stage), at = 0;
    kiln_pp_action *a = malloc((size_t)(2 * total) * sizeof *a);
    KILN_CHECK_ALLOC(a);
    /* forwards k < w; then forward w + i with backward i; then the backwards left */
    for (int k = 0; k < w; k++) a[at++] = virtual_action(k, 0, pp, v);
    for (int i = 0; i < total - w; i++) {
        a[at++] = virtual_action(w + i, 0, pp, v);
        a[at++] = virtual_action(i, 1, pp, v);
    }
    for (int i = total - w; i < total; i++) a[at++] = virtual_action(i, 1, pp, v);
    *out = a, *n = at;
    return KILN_OK;
}

int kiln_pp_schedule_bound(kiln_pp_schedule s, int pp, int v, int m, int stage)
{
    int w = warmup(s, pp, v, m, stage);
    return w < m * v ? w + 1 : m * v;
}

double kiln_pp_bubble_theory(kiln_pp_schedule s, int pp, int v, int m)
{
    return (double)(pp - 1) / ((s == KILN_PP_INTERLEAVED ? v : 1) * (double)m + pp - 1);
}

/* ---- the simulator ---- */

typedef struct sim {
    int pp, v, m;
    double *end_f, *end_b;             /* [micro][model stage]: when it ended; < 0 not yet */
} sim;

static double *at(const sim *z, double *t, int micro, int g) { return &t[(size_t)micro * (size_t)(z->pp * z->v) + g]; }

/* When rank stage's action can start given what has ended (< 0: not yet; -2: never, its own
 * forward has not run). */
static double ready(const sim *z, int stage, const kiln_pp_action *a)
{
    int g = a->chunk * z->pp + stage, last = z->pp * z->v - 1;
    if (!a->backward) return g == 0 ? 0 : *at(z, z->end_f, a->micro, g - 1);
    if (*at(z, z->end_f, a->micro, g) < 0) return -2;
    return g == last ? *at(z, z->end_f, a->micro, g) : *at(z, z->end_b, a->micro, g + 1);
}

kiln_status kiln_pp_schedule_simulate(kiln_pp_schedule s, int pp, int v, int m, double t_fwd, double t_bwd,
                                      kiln_pp_timeline *out)
{
    KILN_CHECK(kiln_pp_schedule_check(s, pp, v, m));
    memset(out, 0, sizeof *out);
    size_t cells = (size_t)m * (size_t)(pp * v);
    sim z = {pp, v, m, malloc(cells * sizeof(double)), malloc(cells * sizeof(double))};
    kiln_pp_action *tables[64] = {0};
    int len[64] = {0}, next[64] = {0}, held[64] = {0};
    double free_at[64] = {0}, busy[64] = {0};
    kiln_status st = z.end_f && z.end_b ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "simulating");
    for (size_t i = 0; st == KILN_OK && i < cells; i++) z.end_f[i] = z.end_b[i] = -1;
    for (int r = 0; st == KILN_OK && r < pp; r++) st = kiln_pp_schedule_table(s, pp, v, m, r, &tables[r], &len[r]);
    int64_t left = 2 * (int64_t)m * v * pp;
    for (int moved = 1; st == KILN_OK && left > 0;) {
        if (!moved) {
            st = KILN_ERROR(KILN_ERR_INTERNAL, "schedule %s (pp %d, v %d, m %d) deadlocks: no stage can go on",
                            names[s], pp, v, m);
            break;
        }
        moved = 0;
        for (int r = 0; r < pp; r++) {
            if (next[r] == len[r]) continue;
            const kiln_pp_action *a = &tables[r][next[r]];
            double dep = ready(&z, r, a);
            if (dep < 0) continue;
            double start = dep > free_at[r] ? dep : free_at[r], took = (a->backward ? t_bwd : t_fwd) / v;
            double *end = at(&z, a->backward ? z.end_b : z.end_f, a->micro, a->chunk * pp + r);
            *end = free_at[r] = start + took;
            busy[r] += took;
            held[r] += a->backward ? -1 : 1;
            if (held[r] > out->held[r]) out->held[r] = held[r];
            next[r]++, left--, moved = 1;
        }
    }
    for (int r = 0; st == KILN_OK && r < pp; r++) out->step = free_at[r] > out->step ? free_at[r] : out->step;
    for (int r = 0; st == KILN_OK && r < pp; r++) out->idle[r] = out->step - busy[r];
    for (int r = 0; r < pp; r++) free(tables[r]);
    free(z.end_f), free(z.end_b);
    return st;
}
