/* What a person reads of a sweep: `kiln sweep status DIR` (a table of the trials and the best
 * so far) and `kiln sweep report DIR --out report.html`, one self-contained page whose plots
 * are inline SVG (no scripts needed to draw them; a few lines of script sort the table):
 *   - learning curves of every trial from its metrics.jsonl, rung results marked, so a trial
 *     promoted twice is one curve reaching the last rung;
 *   - the best so far at each rung against wall time and against compute (steps trained);
 *   - each searched value against the objective at the trial's highest rung.
 * Both read the journal without its lock, so they are safe while workers run. The plan (space,
 * rungs, objective) comes from the config the sweep was started with (its start event). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "sweep_internal.h"

/* ---- the sweep as recorded ---- */

typedef struct sweep_view {
    sweep_plan plan;
    sweep_state state;
} sweep_view;

static kiln_status view_open(const char *dir, sweep_view *v)
{
    return kiln_sweep_open_recorded(dir, &v->plan, &v->state);
}

static void view_close(sweep_view *v)
{
    kiln_sweep_state_free(&v->state);
    kiln_sweep_plan_free(&v->plan);
}

/* A trial ASHA did not promote is paused while the sweep runs (it may be promoted later) and
 * stopped once the sweep is complete. */
static const char *state_name(const sweep_view *v, sweep_trial_state s)
{
    static const char *const names[] = {"new", "running", "paused", "done", "failed"};
    return s == TRIAL_PAUSED && v->state.finished ? "stopped" : names[s];
}

/* Text from the config (a path, a choice's value) inside HTML. */
static void html_text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '\'': fputs("&#39;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

static int highest(const sweep_view *v, const sweep_trial *t)
{
    for (int k = v->plan.n_rungs - 1; k >= 0; k--)
        if (!isnan(t->value[k])) return k;
    return -1;
}

/* ---- status ---- */

/* The same as JSON, values at full precision (for scripts and pipelines). */
static kiln_status status_json(const sweep_view *v, FILE *out)
{
    const sweep_plan *p = &v->plan;
    json_t *trials = json_array(), *rungs = json_array();
    for (int k = 0; k < p->n_rungs; k++) json_array_append_new(rungs, json_integer(p->rungs[k]));
    for (int64_t i = 0; i < v->state.n_trials; i++) {
        const sweep_trial *t = &v->state.trials[i];
        json_t *values = json_array(), *params = json_object();
        for (int k = 0; k < p->n_rungs; k++)
            json_array_append_new(values, isnan(t->value[k]) ? json_null() : json_real(t->value[k]));
        for (int d = 0; d < p->n_dims; d++) {
            char value[KILN_CFG_STR_MAX];
            kiln_sweep_dim_format(&p->dims[d], t->point.x[d], value, sizeof value);
            json_object_set_new(params, p->dims[d].key, json_string(value));
        }
        json_t *row = json_pack("{s:I, s:s, s:i, s:o, s:o}", "trial", (json_int_t)i, "state",
                                state_name(v, t->state), "rung", t->rung, "values", values, "params", params);
        if (row && t->state == TRIAL_FAILED) json_object_set_new(row, "error", json_string(t->error));
        json_array_append_new(trials, row);
    }
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(&v->state, &rung, &value);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:I}", "sweep", p->dir, "metric",
                            p->cfg.sweep.metric, "mode", p->cfg.sweep.mode, "complete",
                            v->state.finished, "rungs", rungs, "trials", trials, "registered",
                            (json_int_t)v->state.registered);
    if (doc && best >= 0)
        json_object_set_new(doc, "best", json_pack("{s:I, s:i, s:f}", "trial", (json_int_t)best,
                                                   "rung", rung, "value", value));
    int rc = doc ? json_dumpf(doc, out, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) : -1;
    json_decref(doc);
    fputc('\n', out);
    return rc == 0 ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "sweep status as JSON");
}

kiln_status kiln_sweep_print_status(const char *dir, int as_json, FILE *out)
{
    sweep_view v;
    KILN_CHECK(view_open(dir, &v));
    if (as_json) {
        kiln_status st = status_json(&v, out);
        view_close(&v);
        return st;
    }
    const sweep_plan *p = &v.plan;
    fprintf(out, "sweep %s: %lld trials, %lld results, %lld failed; %s %s; rungs (steps):", dir,
            (long long)v.state.n_trials, (long long)v.state.results, (long long)v.state.failures,
            p->cfg.sweep.mode, p->cfg.sweep.metric);
    for (int k = 0; k < p->n_rungs; k++) fprintf(out, " %lld", (long long)p->rungs[k]);
    fprintf(out, "%s\n\n%6s  %-8s  %4s", v.state.finished ? " (complete)" : "", "trial", "state", "rung");
    for (int k = 0; k < p->n_rungs; k++) {
        char head[32];
        snprintf(head, sizeof head, "@%lld", (long long)p->rungs[k]);
        fprintf(out, "  %10s", head);
    }
    fprintf(out, "  values\n");
    for (int64_t i = 0; i < v.state.n_trials; i++) {
        const sweep_trial *t = &v.state.trials[i];
        fprintf(out, "%6lld  %-8s  %4d", (long long)i, state_name(&v, t->state), t->rung);
        for (int k = 0; k < p->n_rungs; k++)
            if (isnan(t->value[k])) fprintf(out, "  %10s", "-");
            else fprintf(out, "  %10.5g", t->value[k]);
        fprintf(out, " ");
        for (int d = 0; d < p->n_dims; d++) {
            char value[KILN_CFG_STR_MAX];
            kiln_sweep_dim_format(&p->dims[d], t->point.x[d], value, sizeof value);
            fprintf(out, " %s=%s", p->dims[d].key, value);
        }
        if (t->state == TRIAL_FAILED) fprintf(out, "  (%s)", t->error);
        fputc('\n', out);
    }
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(&v.state, &rung, &value);
    if (best >= 0)
        fprintf(out, "\nbest: trial %lld, %s %.6g at rung %d (%lld steps)%s\n", (long long)best,
                p->cfg.sweep.metric, value, rung, (long long)p->rungs[rung],
                v.state.registered ? "; registered" : "");
    view_close(&v);
    return KILN_OK;
}

/* ---- plots ---- */

enum { W = 640, H = 300, ML = 64, MR = 16, MT = 28, MB = 40 };

typedef struct plot {
    FILE *f;
    double x0, x1, y0, y1;
    int log_x;
    const sweep_dim *categories;        /* x is a choice: its values label the axis */
} plot;

static const char *const palette[] = {"#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3",
                                      "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"};

static double px(const plot *p, double x)
{
    double a = p->log_x ? log10(x) : x, lo = p->log_x ? log10(p->x0) : p->x0, hi = p->log_x ? log10(p->x1) : p->x1;
    return ML + (hi > lo ? (a - lo) / (hi - lo) : 0.5) * (W - ML - MR);
}

static double py(const plot *p, double y)
{
    return H - MB - (p->y1 > p->y0 ? (y - p->y0) / (p->y1 - p->y0) : 0.5) * (H - MT - MB);
}

static void plot_begin(plot *p, const char *title, const char *xlabel, const char *ylabel)
{
    if (!(p->y1 > p->y0)) p->y0 -= 0.5, p->y1 += 0.5;
    if (!(p->x1 > p->x0)) p->x0 -= 0.5, p->x1 += 0.5;
    double pad = 0.05 * (p->y1 - p->y0);
    p->y0 -= pad, p->y1 += pad;
    fprintf(p->f, "<figure><svg width='%d' height='%d' viewBox='0 0 %d %d' role='img'>"
            "<text x='%d' y='18' class='title'>%s</text>"
            "<line x1='%d' y1='%d' x2='%d' y2='%d' class='axis'/><line x1='%d' y1='%d' x2='%d' y2='%d' class='axis'/>",
            W, H, W, H, ML, title, ML, H - MB, W - MR, H - MB, ML, MT, ML, H - MB);
    for (int i = 0; i <= 4; i++) {
        double y = p->y0 + (p->y1 - p->y0) * i / 4.0;
        double x = p->log_x ? p->x0 * pow(p->x1 / p->x0, i / 4.0) : p->x0 + (p->x1 - p->x0) * i / 4.0;
        fprintf(p->f, "<text x='%d' y='%.1f' class='tick' text-anchor='end'>%.4g</text>"
                "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' class='grid'/>",
                ML - 6, py(p, y) + 4, y, ML, py(p, y), W - MR, py(p, y));
        if (!p->categories)
            fprintf(p->f, "<text x='%.1f' y='%d' class='tick' text-anchor='middle'>%.4g</text>",
                    px(p, x), H - MB + 16, x);
    }
    for (int c = 0; p->categories && c < p->categories->n_choices; c++) {
        fprintf(p->f, "<text x='%.1f' y='%d' class='tick' text-anchor='middle'>", px(p, c + 0.5), H - MB + 16);
        html_text(p->f, p->categories->choices[c]);
        fputs("</text>", p->f);
    }
    fprintf(p->f, "<text x='%d' y='%d' class='label' text-anchor='middle'>%s</text>"
            "<text x='14' y='%d' class='label' transform='rotate(-90 14 %d)' text-anchor='middle'>%s</text>",
            (ML + W - MR) / 2, H - 6, xlabel, (MT + H - MB) / 2, (MT + H - MB) / 2, ylabel);
}

static void plot_end(plot *p, const char *caption)
{
    fprintf(p->f, "</svg><figcaption>%s</figcaption></figure>\n", caption);
}

/* One trial's eval curve: (step, metric) from its metrics.jsonl. */
static int read_curve(const char *dir, int64_t id, const char *metric, double **xs, double **ys)
{
    char path[PATH_MAX + 64];
    const char *key = metric;
    snprintf(path, sizeof path, "%s/trials/%05lld/metrics.jsonl", dir, (long long)id);
    FILE *f = fopen(path, "r");
    int n = 0, cap = 0;
    *xs = *ys = NULL;
    char *line = NULL;
    size_t lcap = 0;
    while (f && getline(&line, &lcap, f) > 0) {
        json_t *ev = json_loads(line, 0, NULL);
        json_t *v = json_object_get(ev, key), *s = json_object_get(ev, "step");
        if (json_is_number(v) && json_is_integer(s)) {
            if (n == cap) {
                cap = cap ? 2 * cap : 32;
                double *gx = realloc(*xs, (size_t)cap * sizeof *gx), *gy = realloc(*ys, (size_t)cap * sizeof *gy);
                if (gx) *xs = gx;
                if (gy) *ys = gy;
                if (!gx || !gy) break;
            }
            (*xs)[n] = (double)json_integer_value(s);
            (*ys)[n++] = json_number_value(v);
        }
        json_decref(ev);
    }
    free(line);
    if (f) fclose(f);
    return n;
}

static void value_range(const sweep_view *v, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < v->state.n_trials; i++)
        for (int k = 0; k < v->plan.n_rungs; k++)
            if (!isnan(v->state.trials[i].value[k])) {
                *lo = fmin(*lo, v->state.trials[i].value[k]);
                *hi = fmax(*hi, v->state.trials[i].value[k]);
            }
    if (!isfinite(*lo)) *lo = 0.0, *hi = 1.0;
}

static void curves_plot(FILE *f, const sweep_view *v, int64_t best)
{
    const sweep_plan *p = &v->plan;
    plot pl = {f, 0.0, (double)p->rungs[p->n_rungs - 1], 0, 0, 0, NULL};
    value_range(v, &pl.y0, &pl.y1);
    int n_trials = (int)v->state.n_trials;
    double **xs = calloc((size_t)n_trials + 1, sizeof *xs), **ys = calloc((size_t)n_trials + 1, sizeof *ys);
    int *ns = calloc((size_t)n_trials + 1, sizeof *ns);
    for (int i = 0; xs && ys && ns && i < n_trials; i++) {
        ns[i] = read_curve(p->dir, i, p->cfg.sweep.metric, &xs[i], &ys[i]);
        for (int k = 0; k < ns[i]; k++) pl.y0 = fmin(pl.y0, ys[i][k]), pl.y1 = fmax(pl.y1, ys[i][k]);
    }
    plot_begin(&pl, "Learning curves", "training steps", p->cfg.sweep.metric);
    for (int k = 0; k < p->n_rungs; k++)
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' class='rung'/>", px(&pl, (double)p->rungs[k]),
                MT, px(&pl, (double)p->rungs[k]), H - MB);
    for (int i = 0; xs && ys && ns && i < n_trials; i++) {
        const sweep_trial *t = &v->state.trials[i];
        const char *color = i == best ? "#c00000" : palette[i % 10];
        fprintf(f, "<g><title>trial %d (%s, rung %d)</title><polyline fill='none' stroke='%s' "
                "stroke-width='%s' points='", i, state_name(v, t->state), t->rung, color, i == best ? "2.5" : "1");
        for (int k = 0; k < ns[i]; k++) fprintf(f, "%.1f,%.1f ", px(&pl, xs[i][k]), py(&pl, ys[i][k]));
        fprintf(f, "'/>");
        for (int k = 0; k < p->n_rungs; k++)
            if (!isnan(t->value[k]))
                fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>", px(&pl, (double)p->rungs[k]),
                        py(&pl, t->value[k]), color);
        fprintf(f, "</g>");
        free(xs[i]), free(ys[i]);
    }
    free(xs), free(ys), free(ns);
    plot_end(&pl, "Each trial's evaluations (lines) and its result at each rung it reached (dots; "
                  "dashed lines are the rungs). A promoted trial continues its own curve; the best "
                  "trial is drawn thick and red.");
}

/* Results in the order they happened: time, compute so far, rung, value. */
typedef struct happened {
    double t, steps, value;
    int rung;
} happened;

static int cmp_time(const void *a, const void *b)
{
    double x = ((const happened *)a)->t, y = ((const happened *)b)->t;
    return x < y ? -1 : x > y;
}

static void best_plot(FILE *f, const sweep_view *v, int by_compute)
{
    const sweep_plan *p = &v->plan;
    int64_t n = 0;
    happened *h = malloc((size_t)(v->state.results + 1) * sizeof *h);
    for (int64_t i = 0; h && i < v->state.n_trials; i++)
        for (int k = 0; k < p->n_rungs; k++)
            if (!isnan(v->state.trials[i].value[k]))
                h[n++] = (happened){v->state.trials[i].value_time[k],
                                    (double)(p->rungs[k] - (k ? p->rungs[k - 1] : 0)),
                                    v->state.trials[i].value[k], k};
    if (n > 1) qsort(h, (size_t)n, sizeof *h, cmp_time);
    double steps = 0.0;
    for (int64_t i = 0; i < n; i++) steps += h[i].steps, h[i].steps = steps;
    plot pl = {f, 0.0, n ? (by_compute ? h[n - 1].steps : h[n - 1].t) : 1.0, 0, 0, 0, NULL};
    value_range(v, &pl.y0, &pl.y1);
    plot_begin(&pl, by_compute ? "Best so far against compute" : "Best so far against wall time",
               by_compute ? "training steps over all trials" : "seconds since the sweep started",
               p->cfg.sweep.metric);
    for (int k = 0; k < p->n_rungs; k++) {
        double best = NAN;
        fprintf(f, "<g><title>rung %d (%lld steps)</title><polyline fill='none' stroke='%s' "
                "stroke-width='1.5' points='", k, (long long)p->rungs[k], palette[k % 10]);
        for (int64_t i = 0; i < n; i++) {
            if (h[i].rung != k) continue;
            if (isnan(best) || kiln_sweep_better(p, h[i].value, 0, best, 1)) {
                double x = by_compute ? h[i].steps : h[i].t;
                if (!isnan(best)) fprintf(f, "%.1f,%.1f ", px(&pl, x), py(&pl, best));
                best = h[i].value;
                fprintf(f, "%.1f,%.1f ", px(&pl, x), py(&pl, best));
            }
        }
        if (!isnan(best)) fprintf(f, "%.1f,%.1f", px(&pl, pl.x1), py(&pl, best));
        /* the legend where the lines are not: low when the best climbs (max), high otherwise */
        int legend_y = p->maximize ? H - MB - 8 - 14 * (p->n_rungs - 1 - k) : MT + 14 * (k + 1);
        fprintf(f, "'/></g><text x='%d' y='%d' class='tick' fill='%s'>rung %d</text>", W - MR - 60,
                legend_y, palette[k % 10], k);
    }
    free(h);
    plot_end(&pl, by_compute ? "The best result at each rung so far, against the training steps all "
                               "trials had spent by then: what ASHA saves shows here."
                             : "The best result at each rung so far, against wall time.");
}

static void param_plot(FILE *f, const sweep_view *v, int d)
{
    const sweep_plan *p = &v->plan;
    const sweep_dim *dim = &p->dims[d];
    plot pl = {f, 0, 0, 0, 0, dim->kind == DIST_LOGUNIFORM, dim->kind == DIST_CHOICE ? dim : NULL};
    double lo, hi;
    kiln_sweep_dim_bounds(dim, &lo, &hi);
    pl.x0 = dim->kind == DIST_LOGUNIFORM ? dim->lo : lo;
    pl.x1 = dim->kind == DIST_LOGUNIFORM ? dim->hi : hi;
    value_range(v, &pl.y0, &pl.y1);
    char title[256];
    snprintf(title, sizeof title, "%s against the objective", dim->key);
    plot_begin(&pl, title, dim->key, p->cfg.sweep.metric);
    for (int64_t i = 0; i < v->state.n_trials; i++) {
        const sweep_trial *t = &v->state.trials[i];
        int k = highest(v, t);
        if (k < 0) continue;
        double x = dim->kind == DIST_LOGUNIFORM ? exp(t->point.x[d]) : t->point.x[d] + (dim->kind == DIST_CHOICE ? 0.5 : 0.0);
        char value[KILN_CFG_STR_MAX];
        kiln_sweep_dim_format(dim, t->point.x[d], value, sizeof value);
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='%s' fill-opacity='0.8'><title>trial %lld: "
                "%s=", px(&pl, x), py(&pl, t->value[k]), palette[k % 10], (long long)i, dim->key);
        html_text(f, value);
        fprintf(f, ", %.5g at rung %d</title></circle>", t->value[k], k);
    }
    plot_end(&pl, "Each trial at its highest rung (the color is the rung).");
}

static void trial_table(FILE *f, const sweep_view *v)
{
    const sweep_plan *p = &v->plan;
    fprintf(f, "<table id='trials'><thead><tr><th>trial</th><th>state</th><th>rung</th>");
    for (int k = 0; k < p->n_rungs; k++) fprintf(f, "<th>%lld steps</th>", (long long)p->rungs[k]);
    for (int d = 0; d < p->n_dims; d++) fprintf(f, "<th>%s</th>", p->dims[d].key);
    fprintf(f, "</tr></thead><tbody>\n");
    for (int64_t i = 0; i < v->state.n_trials; i++) {
        const sweep_trial *t = &v->state.trials[i];
        fprintf(f, "<tr><td>%lld</td><td>%s</td><td>%d</td>", (long long)i, state_name(v, t->state), t->rung);
        for (int k = 0; k < p->n_rungs; k++)
            if (isnan(t->value[k])) fprintf(f, "<td></td>");
            else fprintf(f, "<td>%.6g</td>", t->value[k]);
        for (int d = 0; d < p->n_dims; d++) {
            char value[KILN_CFG_STR_MAX];
            kiln_sweep_dim_format(&p->dims[d], t->point.x[d], value, sizeof value);
            fputs("<td>", f);
            html_text(f, value);
            fputs("</td>", f);
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</tbody></table>\n");
}

static const char style_and_script[] =
    "<style>body{font:14px sans-serif;margin:24px;color:#222}figure{display:inline-block;margin:8px}"
    "figcaption{max-width:640px;font-size:12px;color:#555}.axis{stroke:#333}.grid{stroke:#eee}"
    ".rung{stroke:#999;stroke-dasharray:4 3}.title{font-weight:bold}.tick{font-size:11px}"
    ".label{font-size:12px}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;"
    "padding:2px 6px}th{cursor:pointer;background:#f4f4f4}</style>\n"
    "<script>document.addEventListener('DOMContentLoaded',function(){"
    "var t=document.getElementById('trials');if(!t)return;"
    "t.querySelectorAll('th').forEach(function(th,c){th.addEventListener('click',function(){"
    "var b=t.tBodies[0],r=Array.from(b.rows),up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';"
    "r.sort(function(a,z){var x=a.cells[c].textContent,y=z.cells[c].textContent,"
    "nx=parseFloat(x),ny=parseFloat(y);var d=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;"
    "return up?d:-d});r.forEach(function(x){b.appendChild(x)})})});"
    "document.body.dataset.ready='1'});</script>\n";

kiln_status kiln_sweep_write_report(const char *dir, const char *out_path)
{
    sweep_view v;
    KILN_CHECK(view_open(dir, &v));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        view_close(&v);
        return KILN_ERROR(KILN_ERR_NOMEM, "report");
    }
    int rung;
    double value;
    int64_t best = kiln_sweep_state_best(&v.state, &rung, &value);
    fputs("<!DOCTYPE html><html><head><meta charset='utf-8'><title>kiln sweep ", f);
    html_text(f, dir);
    fprintf(f, "</title>\n%s</head><body><h1>Sweep ", style_and_script);
    html_text(f, dir);
    fprintf(f, "</h1><p>%lld trials, %lld results, %lld failed; %s %s over %d "
            "rungs; sampler %s, scheduler %s, eta %d.",
            (long long)v.state.n_trials, (long long)v.state.results,
            (long long)v.state.failures, v.plan.cfg.sweep.mode, v.plan.cfg.sweep.metric,
            v.plan.n_rungs, v.plan.cfg.sweep.sampler, v.plan.cfg.sweep.scheduler, v.plan.cfg.sweep.eta);
    if (best >= 0)
        fprintf(f, " Best: trial %lld, %.6g at rung %d (%lld steps).", (long long)best, value, rung,
                (long long)v.plan.rungs[rung]);
    fprintf(f, "</p>\n");
    curves_plot(f, &v, best);
    best_plot(f, &v, 0);
    best_plot(f, &v, 1);
    for (int d = 0; d < v.plan.n_dims; d++) param_plot(f, &v, d);
    fprintf(f, "<h2>Trials</h2><p>Click a column to sort.</p>\n");
    trial_table(f, &v);
    fprintf(f, "</body></html>\n");
    fclose(f);
    view_close(&v);
    kiln_status st = text ? kiln_write_file_atomic(out_path, text, len) : KILN_ERROR(KILN_ERR_NOMEM, "report");
    free(text);
    return st;
}
