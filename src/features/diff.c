/* `kiln features diff A.h5 B.h5`: how far the features of B have drifted from A's, per feature
 * (by name, over the raw values before transforms, both splits unless --split):
 *   PSI   the population stability index over 10 bins at A's deciles plus one bin for NA:
 *         sum over bins of (b - a) ln(b / a), shares floored at 1e-4 (0.1: a small shift, 0.2:
 *         a large one, by the usual reading);
 *   the change of the mean in units of A's standard deviation, and of the missing share.
 * Exits 0 when every feature's PSI is at most --threshold (0.2), 3 when one is above it or a
 * feature is in one file only, so that a pipeline can stop on it; 2 on bad input. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/registry.h"
#include "kiln/runtime.h"
#include "features_internal.h"

enum { BINS = 10, EXIT_DRIFT = 3 };
#define PSI_FLOOR 1e-4

typedef struct side {
    char path[PATH_MAX];
    char **names;
    int k;
    double *v;                         /* [rows, k] */
    uint64_t rows;
} side;

static void side_free(side *s)
{
    for (int j = 0; s->names && j < s->k; j++) free(s->names[j]);
    free(s->names), free(s->v);
}

/* One split's raw values appended to s->v. */
static kiln_status read_split(hid_t f, side *s, const char *split)
{
    char name[64];
    snprintf(name, sizeof name, "%s/raw", split);
    hid_t d;
    uint64_t shape[2] = {KILN_H5_ANY, (uint64_t)s->k};
    KILN_CHECK(kiln_h5_open_dataset(f, name, H5T_NATIVE_DOUBLE, 2, shape, &d));
    int nd;
    uint64_t dims[KILN_H5_MAX_DIMS];
    kiln_status st = kiln_h5_dataset_shape(d, &nd, dims);
    double *grown = st == KILN_OK ? realloc(s->v, ((s->rows + dims[0]) * (uint64_t)s->k + 1) * sizeof *grown) : NULL;
    if (st == KILN_OK && !grown) st = KILN_ERROR(KILN_ERR_NOMEM, "%s of '%s'", name, s->path);
    if (grown) s->v = grown;
    if (st == KILN_OK && dims[0] &&
        H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->v + s->rows * (uint64_t)s->k) < 0)
        st = KILN_H5_ERROR(KILN_ERR_DATA, "reading %s of '%s'", name, s->path);
    if (st == KILN_OK) s->rows += dims[0];
    H5Dclose(d);
    return st;
}

static kiln_status read_side(side *s, const char *which)
{
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(s->path, which, KILN_ERR_DATA, &f));
    uint64_t n = 0;
    kiln_status st = kiln_h5_exists(f, "features/raw_names")
                         ? kiln_h5_read_strings(f, "features/raw_names", s->path, &s->names, &n)
                         : KILN_ERROR(KILN_ERR_DATA, "'%s' has no features/raw_names: not made by kiln features build",
                                      s->path);
    if (st == KILN_OK && (n < 1 || n > 100000)) {
        st = KILN_ERROR(KILN_ERR_DATA, "'%s': %llu features", s->path, (unsigned long long)n);
        kiln_h5_free_strings(s->names, n), s->names = NULL, n = 0;
    }
    s->k = (int)n;
    H5Fclose(f);
    return st;
}

static kiln_status read_values(side *s, const char *split)
{
    hid_t f;
    KILN_CHECK(kiln_h5_open_file(s->path, "features", KILN_ERR_DATA, &f));
    kiln_status st = KILN_OK;
    if (strcmp(split, "valid")) st = read_split(f, s, "train");
    if (st == KILN_OK && strcmp(split, "train")) st = read_split(f, s, "valid");
    H5Fclose(f);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct drift {
    double psi, mean_shift, missing_a, missing_b, mean_a, mean_b;
} drift;

/* Bin of v among the edges (the upper bound's position), NA in the last bin. */
static int bin_of(const double *edges, int n_edges, double v)
{
    if (isnan(v)) return BINS;
    int lo = 0, hi = n_edges;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v < edges[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static kiln_status measure(const side *a, int ja, const side *b, int jb, drift *d)
{
    double *sorted = malloc((a->rows + 1) * sizeof *sorted);
    KILN_CHECK_ALLOC(sorted);
    uint64_t n = 0, na_a = 0, na_b = 0;
    long double sa = 0, sb = 0, qa = 0;
    for (uint64_t i = 0; i < a->rows; i++) {
        double v = a->v[i * (uint64_t)a->k + ja];
        if (isnan(v)) na_a++;
        else sorted[n++] = v, sa += v;
    }
    qsort(sorted, n, sizeof *sorted, cmp_double);
    double edges[BINS - 1];
    for (int e = 0; e < BINS - 1; e++) edges[e] = n ? sorted[(uint64_t)((double)(e + 1) / BINS * (double)n)] : 0.0;
    double pa[BINS + 1] = {0}, pb[BINS + 1] = {0};
    for (uint64_t i = 0; i < a->rows; i++) pa[bin_of(edges, BINS - 1, a->v[i * (uint64_t)a->k + ja])] += 1;
    uint64_t nb = 0;
    for (uint64_t i = 0; i < b->rows; i++) {
        double v = b->v[i * (uint64_t)b->k + jb];
        pb[bin_of(edges, BINS - 1, v)] += 1;
        if (isnan(v)) na_b++;
        else sb += v, nb++;
    }
    d->mean_a = n ? (double)(sa / n) : NAN, d->mean_b = nb ? (double)(sb / nb) : NAN;
    for (uint64_t i = 0; i < n; i++) qa += ((long double)sorted[i] - d->mean_a) * ((long double)sorted[i] - d->mean_a);
    double sd = n > 1 ? (double)sqrtl(qa / (n - 1)) : 0.0;
    d->mean_shift = sd > 0 ? (d->mean_b - d->mean_a) / sd : (d->mean_b == d->mean_a ? 0.0 : INFINITY);
    d->missing_a = a->rows ? (double)na_a / (double)a->rows : 0.0;
    d->missing_b = b->rows ? (double)na_b / (double)b->rows : 0.0;
    d->psi = 0.0;
    for (int i = 0; i <= BINS; i++) {
        double x = fmax(pa[i] / (double)(a->rows ? a->rows : 1), PSI_FLOOR);
        double y = fmax(pb[i] / (double)(b->rows ? b->rows : 1), PSI_FLOOR);
        d->psi += (y - x) * log(y / x);
    }
    free(sorted);
    return KILN_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln features diff A B [--threshold PSI] [--split train|valid|all] [--json OUT.json]\n"
               "                          [--registry DIR]\n\n"
               "A and B: files made by kiln features build, or registry:NAME@ALIAS (--registry, else\n"
               "$KILN_REGISTRY, else ./registry).\n"
               "Drift of each feature of B against A (two outputs of kiln features build, matched by name, raw\n"
               "values before transforms): PSI over A's deciles and NA, the change of the mean in A's standard\n"
               "deviations, and of the missing share. Exit codes: 0 every PSI at most the threshold (0.2),\n"
               "3 one above it or a feature in one file only (a pipeline stops on it), 2 bad input.\n");
}

int kiln_features_diff_main(int argc, char **argv)
{
    double threshold = 0.2;
    const char *split = "all", *files[2] = {NULL, NULL}, *json_out = NULL, *registry = "";
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout), 0;
        if (!strcmp(argv[i], "--threshold") && i + 1 < argc) {
            char *end;
            threshold = strtod(argv[++i], &end);
            if (*end || !(threshold >= 0)) return usage(stderr), 2;
        } else if (!strcmp(argv[i], "--split") && i + 1 < argc) {
            split = argv[++i];
            if (strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "all")) return usage(stderr), 2;
        } else if (!strcmp(argv[i], "--registry") && i + 1 < argc) {
            registry = argv[++i];
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json_out = argv[++i];
        } else if (argv[i][0] != '-' && nf < 2) {
            files[nf++] = argv[i];
        } else {
            return usage(stderr), 2;
        }
    }
    if (nf != 2) return usage(stderr), 2;
    side a = {0}, b = {0};
    const char *root = kiln_registry_root(registry);
    kiln_status st = kiln_registry_locate(root, files[0], a.path, sizeof a.path, NULL);
    if (st == KILN_OK) st = kiln_registry_locate(root, files[1], b.path, sizeof b.path, NULL);
    if (st == KILN_OK) st = read_side(&a, "A");
    if (st == KILN_OK) st = read_side(&b, "B");
    if (st == KILN_OK) st = read_values(&a, split);
    if (st == KILN_OK) st = read_values(&b, split);
    int drifted = 0;
    json_t *rows = json_array();
    if (st == KILN_OK) {
        printf("%-32s %9s %10s %10s %10s\n", "feature", "PSI", "mean (sd)", "missing A", "missing B");
        for (int ja = 0; ja < a.k && st == KILN_OK; ja++) {
            int jb = -1;
            for (int j = 0; j < b.k; j++)
                if (!strcmp(a.names[ja], b.names[j])) jb = j;
            if (jb < 0) {
                printf("%-32s only in A\n", a.names[ja]);
                drifted = 1;
                continue;
            }
            drift d = {0};
            st = measure(&a, ja, &b, jb, &d);
            if (st != KILN_OK) break;
            int over = d.psi > threshold;
            drifted |= over;
            printf("%-32s %9.4f %+10.3f %10.4f %10.4f%s\n", a.names[ja], d.psi, d.mean_shift, d.missing_a, d.missing_b,
                   over ? "  DRIFT" : "");
            json_array_append_new(rows, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "feature", a.names[ja],
                                                  "psi", d.psi, "mean_shift_sd", isfinite(d.mean_shift) ? d.mean_shift : 1e308,
                                                  "mean_a", isfinite(d.mean_a) ? d.mean_a : 0.0, "mean_b",
                                                  isfinite(d.mean_b) ? d.mean_b : 0.0, "missing_a", d.missing_a,
                                                  "missing_b", d.missing_b, "drift", over));
        }
        for (int jb = 0; jb < b.k; jb++) {
            int found = 0;
            for (int j = 0; j < a.k; j++) found |= !strcmp(a.names[j], b.names[jb]);
            if (!found) printf("%-32s only in B\n", b.names[jb]), drifted = 1;
        }
    }
    side_free(&a), side_free(&b);
    if (st == KILN_OK && json_out) {
        json_t *doc = json_pack("{s:s, s:s, s:f, s:s, s:b, s:o}", "a", files[0], "b", files[1], "threshold", threshold,
                                "split", split, "drift", drifted, "features", rows);
        rows = NULL;
        char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(doc);
        st = text ? kiln_write_file_atomic(json_out, text, strlen(text)) : KILN_ERROR(KILN_ERR_NOMEM, "--json");
        free(text);
    }
    json_decref(rows);
    if (st != KILN_OK) {
        fprintf(stderr, "kiln features diff: error: %s\n", kiln_error_message());
        return 2;
    }
    printf("%s: %s\n", drifted ? "drift" : "no drift", drifted ? "a feature moved beyond the threshold or changed"
                                                                 : "every feature within the threshold");
    return drifted ? EXIT_DRIFT : 0;
}
