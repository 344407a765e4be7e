/* A feature's line in the spec (features.NAME), parsed:
 *   AGG(TABLE.COLUMN) by KEY over DURATION [at TIME]    AGG: count sum mean min max std last
 *   asof(TABLE.COLUMN) by KEY [at TIME] [within DURATION] [created CREATED]
 *   lookup(TABLE.COLUMN) by KEY
 *   hour() | dow() | day() | month()                    of the spine's time (UTC)
 *   column(COLUMN)                                      a spine column as it is
 * then transforms, each after a '|': fill_mean, fill(V), indicator, standardize, minmax, log1p,
 * clip(LO, HI), buckets(N), codes, codes(MIN), hash(N) (transform.c). DURATION: a number and s,
 * m, h or d. Words are separated by spaces. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "features_internal.h"

static const char *const agg_names[] = {"count", "sum", "mean", "min", "max", "std", "last"};
static const char *const part_names[] = {"hour", "dow", "day", "month"};

const char *kiln_feat_agg_name(feat_agg a) { return agg_names[a]; }

int kiln_feat_duration(const char *s, int64_t *us)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0 || v > 1e6) return 0;
    double unit = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : 0;
    if (unit == 0) return 0;
    *us = (int64_t)(v * unit * 1e6 + 0.5);
    return 1;
}

/* Copies s[0..n) into out (size len); 0 when it does not fit or is empty. */
static int take(const char *s, size_t n, char *out, size_t len)
{
    if (n == 0 || n >= len) return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

/* "NAME(ARG)" at the start of s: the name and argument; *rest after ')'. */
static int call(const char *s, char *fn, size_t fn_len, char *arg, size_t arg_len, const char **rest)
{
    const char *open = strchr(s, '('), *close = open ? strchr(open, ')') : NULL;
    if (!open || !close || !take(s, (size_t)(open - s), fn, fn_len)) return 0;
    size_t n = (size_t)(close - open - 1);
    if (n >= arg_len) return 0;
    memcpy(arg, open + 1, n);
    arg[n] = '\0';
    *rest = close + 1;
    return 1;
}

static kiln_status bad(const char *name, const char *line, const char *why)
{
    return KILN_ERROR(KILN_ERR_CONFIG, "features.%s: '%s': %s", name, line, why);
}

/* The source's "TABLE.COLUMN". */
static int source(const char *arg, feature *f)
{
    const char *dot = strchr(arg, '.');
    return dot && take(arg, (size_t)(dot - arg), f->table, sizeof f->table) &&
           take(dot + 1, strlen(dot + 1), f->column, sizeof f->column);
}

/* The words after the call: by KEY, over D, at T, within D, created C. */
static kiln_status clauses(const char *name, const char *line, char *words, feature *f)
{
    char *save = NULL;
    for (char *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        char *v = strtok_r(NULL, " \t", &save);
        if (!v) return bad(name, line, "a clause without its value (by KEY, over DURATION, at COLUMN, within "
                           "DURATION, created COLUMN)");
        int ok = !strcmp(w, "by")        ? take(v, strlen(v), f->by, sizeof f->by)
                 : !strcmp(w, "at")      ? take(v, strlen(v), f->at, sizeof f->at)
                 : !strcmp(w, "created") ? take(v, strlen(v), f->created, sizeof f->created)
                 : !strcmp(w, "over")    ? kiln_feat_duration(v, &f->over_us)
                 : !strcmp(w, "within")  ? kiln_feat_duration(v, &f->within_us)
                                         : -1;
        if (ok == -1) return bad(name, line, "unknown clause (expected by, over, at, within or created)");
        if (!ok) return bad(name, line, !strcmp(w, "over") || !strcmp(w, "within")
                                            ? "a duration is a positive number and s, m, h or d (e.g. 1h, 7d)"
                                            : "a column name of 1 to 127 characters");
    }
    return KILN_OK;
}

/* An integer argument in [lo, hi]. */
static int whole(const char *arg, double lo, double hi, double *v)
{
    char *end;
    *v = strtod(arg, &end);
    return end != arg && !*end && *v >= lo && *v <= hi && *v == (double)(long long)*v;
}

int kiln_feat_is_categorical(const feature *f)
{
    return f->n_tr > 0 && (f->tr[0].kind == TR_CODES || f->tr[0].kind == TR_HASH);
}

/* codes and hash read a category's text: first, on a column, as-of or lookup; one buckets. */
static kiln_status check_transforms(const char *name, const char *line, const feature *f)
{
    int buckets = 0;
    for (int t = 0; t < f->n_tr; t++) {
        feat_tr_kind k = f->tr[t].kind;
        buckets += k == TR_BUCKETS;
        if ((k == TR_CODES || k == TR_HASH) && t > 0)
            return bad(name, line, "codes and hash read a category's text, so they come first");
        if ((k == TR_CODES || k == TR_HASH) && f->kind != FEAT_COLUMN && f->kind != FEAT_ASOF && f->kind != FEAT_LOOKUP)
            return bad(name, line, "codes and hash take a category: column(C), asof(T.C) or lookup(T.C) of a category "
                       "column");
    }
    return buckets > 1 ? bad(name, line, "one buckets a feature") : KILN_OK;
}

static kiln_status parse_transform(const char *name, const char *line, char *word, feature *f)
{
    while (isspace((unsigned char)*word)) word++;
    for (char *e = word + strlen(word); e > word && isspace((unsigned char)e[-1]);) *--e = '\0';
    if (f->n_tr == FEAT_MAX_TRANSFORMS) return bad(name, line, "at most 8 transforms");
    feat_transform *t = &f->tr[f->n_tr];
    if (!strcmp(word, "codes")) {
        t->kind = TR_CODES, t->a = 1;
        return f->n_tr++, KILN_OK;
    }
    static const char *const plain[] = {"fill_mean", NULL, "indicator", "standardize", "minmax", "log1p"};
    for (int k = 0; k < 6; k++)
        if (plain[k] && !strcmp(word, plain[k])) {
            t->kind = (feat_tr_kind)k;
            f->n_tr++;
            return KILN_OK;
        }
    char fn[32], arg[128];
    const char *rest;
    if (call(word, fn, sizeof fn, arg, sizeof arg, &rest) && !*rest) {
        char *end;
        if (!strcmp(fn, "fill")) {
            t->kind = TR_FILL, t->a = strtod(arg, &end);
            if (end != arg && !*end) return f->n_tr++, KILN_OK;
        } else if (!strcmp(fn, "buckets") || !strcmp(fn, "hash") || !strcmp(fn, "codes")) {
            t->kind = fn[0] == 'b' ? TR_BUCKETS : fn[0] == 'h' ? TR_HASH : TR_CODES;
            double hi = fn[0] == 'b' ? 1024 : fn[0] == 'h' ? 16777216 : 1e15;
            if (whole(arg, fn[0] == 'c' ? 1 : 2, hi, &t->a)) return f->n_tr++, KILN_OK;
            return KILN_ERROR(KILN_ERR_CONFIG, "features.%s: '%s': %s takes a whole number from %d to %.0f", name, word,
                              fn, fn[0] == 'c' ? 1 : 2, hi);
        } else if (!strcmp(fn, "clip")) {
            t->kind = TR_CLIP, t->a = strtod(arg, &end);
            if (end != arg && *end == ',') {
                char *e2;
                t->b = strtod(end + 1, &e2);
                if (e2 != end + 1 && !*e2 && t->a <= t->b) return f->n_tr++, KILN_OK;
            }
        }
    }
    return KILN_ERROR(KILN_ERR_CONFIG, "features.%s: unknown transform '%s' (expected fill_mean, fill(V), indicator, "
                      "standardize, minmax, log1p, clip(LO,HI), buckets(N), codes, codes(MIN) or hash(N))", name, word);
}

kiln_status kiln_feat_parse(const char *name, const char *line, feature *f)
{
    memset(f, 0, sizeof *f);
    if (!take(name, strlen(name), f->name, sizeof f->name)) return bad(name, line, "a name of 1 to 127 characters");
    char text[KILN_CFG_STR_MAX];
    snprintf(text, sizeof text, "%s", line);
    char *bar = strchr(text, '|');
    if (bar) *bar = '\0';
    char fn[32], arg[260];
    const char *rest;
    const char *s = text;
    while (isspace((unsigned char)*s)) s++;
    if (!call(s, fn, sizeof fn, arg, sizeof arg, &rest)) return bad(name, line, "expected KIND(...) first");
    int is_agg = -1, is_part = -1;
    for (int a = 0; a < 7; a++)
        if (!strcmp(fn, agg_names[a])) is_agg = a;
    for (int p = 0; p < 4; p++)
        if (!strcmp(fn, part_names[p])) is_part = p;
    char words[KILN_CFG_STR_MAX];
    snprintf(words, sizeof words, "%s", rest);
    KILN_CHECK(clauses(name, line, words, f));
    if (is_agg >= 0) {
        f->kind = FEAT_WINDOW, f->agg = (feat_agg)is_agg;
        if (!source(arg, f)) return bad(name, line, "the source is TABLE.COLUMN");
        if (!f->by[0] || !f->over_us) return bad(name, line, "a window needs 'by KEY' and 'over DURATION'");
    } else if (!strcmp(fn, "asof") || !strcmp(fn, "lookup")) {
        f->kind = fn[0] == 'a' ? FEAT_ASOF : FEAT_LOOKUP;
        if (!source(arg, f)) return bad(name, line, "the source is TABLE.COLUMN");
        if (!f->by[0]) return bad(name, line, "needs 'by KEY'");
        if (f->kind == FEAT_LOOKUP && (f->over_us || f->within_us || f->at[0] || f->created[0]))
            return bad(name, line, "a lookup takes only 'by KEY'");
    } else if (is_part >= 0) {
        f->kind = FEAT_TIME, f->part = (feat_part)is_part;
        if (arg[0] || f->by[0] || f->over_us) return bad(name, line, "a time part takes nothing: hour()");
    } else if (!strcmp(fn, "column")) {
        f->kind = FEAT_COLUMN;
        if (!take(arg, strlen(arg), f->column, sizeof f->column)) return bad(name, line, "column(NAME)");
    } else {
        return bad(name, line, "unknown kind (expected count, sum, mean, min, max, std, last, asof, lookup, hour, "
                   "dow, day, month or column)");
    }
    if (f->kind != FEAT_WINDOW && f->over_us) return bad(name, line, "'over' belongs to windowed aggregates");
    if (f->kind != FEAT_ASOF && (f->within_us || f->created[0]))
        return bad(name, line, "'within' and 'created' belong to asof");
    for (char *save = NULL, *w = bar ? strtok_r(bar + 1, "|", &save) : NULL; w; w = strtok_r(NULL, "|", &save))
        KILN_CHECK(parse_transform(name, line, w, f));
    return check_transforms(name, line, f);
}
