/* The search space of a sweep: one dimension per entry of sweep.space, a training config key
 * and its distribution:
 *   uniform(lo, hi)       a number, evenly in [lo, hi)
 *   loguniform(lo, hi)    a number, evenly in log between lo > 0 and hi
 *   int(lo, hi)           an integer in lo..hi, both included
 *   choice(a, b, ...)     one of the values as written ("adamw", 3, [256, 256])
 * A point holds each dimension's coordinate: the value (its log for loguniform) or a choice's
 * index. Whether a value suits its key (a width, a rate) is the trial's config to say. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sweep_internal.h"

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static kiln_status bad(const char *key, const char *text, const char *why)
{
    return KILN_ERROR(KILN_ERR_CONFIG, "sweep.space.%s: %s, found '%s' (distributions: "
                      "uniform(lo, hi), loguniform(lo, hi), int(lo, hi), choice(a, b, ...))",
                      key, why, text);
}

/* The arguments of "name(args)" split at top-level commas (brackets nest): *n of them. */
static int split_args(char *args, char **out, int max)
{
    int n = 0, depth = 0;
    char *start = args;
    for (char *c = args;; c++) {
        if (*c == '[' || *c == '(' || *c == '{') depth++;
        if (*c == ']' || *c == ')' || *c == '}') depth--;
        if ((*c == ',' && depth == 0) || *c == '\0') {
            int end = *c == '\0';
            *c = '\0';
            if (n < max) out[n] = trim(start);
            n++;
            if (end) break;
            start = c + 1;
        }
    }
    return n;
}

static int number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *s && !*end && errno == 0 && isfinite(*v);
}

static kiln_status parse_bounds(sweep_dim *d, char **args, int n, const char *text)
{
    if (n != 2) return bad(d->key, text, "expected two bounds");
    if (!number(args[0], &d->lo) || !number(args[1], &d->hi))
        return bad(d->key, text, "the bounds must be numbers");
    if (d->kind == DIST_INT && (d->lo != floor(d->lo) || d->hi != floor(d->hi)))
        return bad(d->key, text, "int bounds must be integers");
    if (d->kind == DIST_INT ? d->lo > d->hi : d->lo >= d->hi)
        return bad(d->key, text, d->kind == DIST_INT ? "low must not exceed high" : "low must be below high");
    if (d->kind == DIST_LOGUNIFORM && d->lo <= 0) return bad(d->key, text, "loguniform needs low > 0");
    return KILN_OK;
}

static kiln_status parse_choices(sweep_dim *d, char **args, int n, const char *text)
{
    if (n < 1 || (n == 1 && !args[0][0])) return bad(d->key, text, "choice needs at least one value");
    if (n > KILN_CFG_LIST_MAX * 4) return bad(d->key, text, "choice takes at most 64 values");
    d->choices = calloc((size_t)n, sizeof *d->choices);
    KILN_CHECK_ALLOC(d->choices);
    for (int i = 0; i < n; i++) {
        if (!args[i][0]) return bad(d->key, text, "a choice is empty");
        d->choices[i] = strdup(args[i]);
        KILN_CHECK_ALLOC(d->choices[i]);
        d->n_choices++;
    }
    return KILN_OK;
}

static kiln_status parse_one(sweep_dim *d, const char *text)
{
    char *copy = strdup(text);
    KILN_CHECK_ALLOC(copy);
    char *s = trim(copy), *open = strchr(s, '('), *args[KILN_CFG_LIST_MAX * 4 + 1];
    size_t n = strlen(s);
    kiln_status st;
    if (!open || n < 3 || s[n - 1] != ')') {
        st = bad(d->key, text, "expected a distribution");
    } else {
        s[n - 1] = '\0';
        *open = '\0';
        char *name = trim(s);
        int nargs = split_args(open + 1, args, KILN_CFG_LIST_MAX * 4 + 1);
        if (!strcmp(name, "uniform")) d->kind = DIST_UNIFORM;
        else if (!strcmp(name, "loguniform")) d->kind = DIST_LOGUNIFORM;
        else if (!strcmp(name, "int")) d->kind = DIST_INT;
        else if (!strcmp(name, "choice")) d->kind = DIST_CHOICE;
        else {
            free(copy);
            return bad(d->key, text, "unknown distribution");
        }
        st = d->kind == DIST_CHOICE ? parse_choices(d, args, nargs, text)
                                    : parse_bounds(d, args, nargs, text);
    }
    free(copy);
    return st;
}

kiln_status kiln_sweep_space_parse(const kiln_cfg_map *space, const kiln_cfg_key *keys, size_t n_keys,
                              sweep_dim **dims, int *n_dims)
{
    *dims = NULL;
    *n_dims = 0;
    if (space->n == 0)
        return KILN_ERROR(KILN_ERR_CONFIG, "sweep.space is empty: give at least one key to search, "
                          "e.g. --set 'sweep.space.optim.lr=loguniform(1e-4, 1e-2)'");
    sweep_dim *d = calloc((size_t)space->n, sizeof *d);
    KILN_CHECK_ALLOC(d);
    kiln_status st = KILN_OK;
    int n = 0;
    for (int i = 0; i < space->n && st == KILN_OK; i++, n++) {
        snprintf(d[i].key, sizeof d[i].key, "%s", space->items[i].key);
        int known = 0;
        for (size_t k = 0; k < n_keys && !known; k++) known = !strcmp(keys[k].path, d[i].key);
        st = known ? parse_one(&d[i], space->items[i].value)
                   : KILN_ERROR(KILN_ERR_CONFIG, "sweep.space.%s: '%s' is not a training config "
                                "key (see kiln train --help-config)", d[i].key, d[i].key);
    }
    if (st != KILN_OK) {
        kiln_sweep_space_free(d, n);
        return st;
    }
    *dims = d;
    *n_dims = n;
    return KILN_OK;
}

void kiln_sweep_space_free(sweep_dim *dims, int n_dims)
{
    for (int i = 0; dims && i < n_dims; i++) {
        for (int c = 0; c < dims[i].n_choices; c++) free(dims[i].choices[c]);
        free(dims[i].choices);
    }
    free(dims);
}

void kiln_sweep_dim_bounds(const sweep_dim *d, double *lo, double *hi)
{
    switch (d->kind) {
    case DIST_LOGUNIFORM: *lo = log(d->lo), *hi = log(d->hi); break;
    case DIST_CHOICE: *lo = 0.0, *hi = (double)d->n_choices; break;
    case DIST_INT: *lo = d->lo, *hi = d->hi + 1.0; break;
    default: *lo = d->lo, *hi = d->hi; break;
    }
}

double kiln_sweep_dim_from_unit(const sweep_dim *d, double u)
{
    double lo, hi;
    kiln_sweep_dim_bounds(d, &lo, &hi);
    double x = lo + u * (hi - lo);
    if (d->kind == DIST_INT || d->kind == DIST_CHOICE) x = floor(x);
    return x < hi ? x : (d->kind == DIST_INT || d->kind == DIST_CHOICE ? hi - 1.0 : x);
}

void kiln_sweep_dim_format(const sweep_dim *d, double x, char *buf, size_t len)
{
    switch (d->kind) {
    case DIST_LOGUNIFORM: snprintf(buf, len, "%.9g", exp(x)); break;
    case DIST_INT: snprintf(buf, len, "%lld", (long long)x); break;
    case DIST_CHOICE: {
        int i = (int)x;
        snprintf(buf, len, "%s", d->choices[i >= 0 && i < d->n_choices ? i : 0]);
        break;
    }
    default: snprintf(buf, len, "%.9g", x); break;
    }
}
