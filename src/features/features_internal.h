/* The parts of `kiln features`, one concern per file:
 *   spec.c       a feature's line: its kind, source, key, window and transforms, checked
 *   tables.c     columns of the imported tables as float64 values and shared integer keys
 *   compute.c    the features of the spine rows: windows, as-of joins, lookups, time parts
 *   transform.c  transforms fitted on the training split, applied to both
 *   build.c      `kiln features build`: the spine, the features, the split, the file
 *   diff.c       `kiln features diff A B`: drift per feature (PSI, mean, missing share)
 *   features_job.c  the job-table entry */
#ifndef KILN_FEATURES_INTERNAL_H
#define KILN_FEATURES_INTERNAL_H
#include <stdint.h>
#include "kiln/features.h"

/* ---- a feature (spec.c) ---- */

typedef enum { FEAT_WINDOW = 0, FEAT_ASOF, FEAT_LOOKUP, FEAT_TIME, FEAT_COLUMN } feat_kind;
typedef enum { AGG_COUNT = 0, AGG_SUM, AGG_MEAN, AGG_MIN, AGG_MAX, AGG_STD, AGG_LAST } feat_agg;
typedef enum { PART_HOUR = 0, PART_DOW, PART_DAY, PART_MONTH } feat_part;
typedef enum { TR_FILL_MEAN = 0, TR_FILL, TR_INDICATOR, TR_STANDARDIZE, TR_MINMAX, TR_LOG1P, TR_CLIP } feat_tr_kind;

enum { FEAT_MAX_TRANSFORMS = 8 };

typedef struct feat_transform {
    feat_tr_kind kind;
    double a, b;                       /* fill: the value; clip: lo, hi */
} feat_transform;

typedef struct feature {
    char name[KILN_CFG_MAP_KEY_MAX];
    feat_kind kind;
    feat_agg agg;
    feat_part part;
    char table[128], column[128];      /* the source: TABLE.COLUMN (time parts: the spine) */
    char by[128];                      /* the key column, in the spine and in the table */
    char at[128];                      /* the table's time column (default: the spine's time name) */
    char created[128];                 /* as-of: a creation time column; rows created after t unseen */
    int64_t over_us, within_us;        /* window length; as-of tolerance (0: none) */
    feat_transform tr[FEAT_MAX_TRANSFORMS];
    int n_tr;
} feature;

/* One features.NAME line into f; errors name the feature and show what was expected. */
kiln_status kiln_feat_parse(const char *name, const char *line, feature *f);
/* "90s", "15m", "1h", "7d": microseconds. */
int kiln_feat_duration(const char *s, int64_t *us);
const char *kiln_feat_agg_name(feat_agg a);

/* ---- tables (tables.c) ---- */

/* A column read whole: values as float64 (NA: NaN; a category: its code; a timestamp: seconds),
 * and for int64 and timestamp columns the raw int64 too (NA: INT64_MIN; timestamps in us). */
typedef struct feat_column {
    char table[128], name[128];
    char type[16];                     /* int64 | float64 | bool | timestamp | category */
    uint64_t rows;
    double *v;                         /* every type but timestamp */
    int64_t *t;                        /* int64 and timestamp: the raw values */
    int32_t *codes;                    /* category: the codes; strings in cats */
    char **cats;
    int32_t n_cats;
} feat_column;

kiln_status kiln_feat_column_read(const char *file, const char *table, const char *name, feat_column *c);
void kiln_feat_column_free(feat_column *c);
/* The keys of a column as integers comparable across tables: an int64 column's values, a
 * category's strings interned in dict (shared by every table of a build); NA as INT64_MIN. */
typedef struct feat_dict feat_dict;
kiln_status kiln_feat_dict_new(feat_dict **d);
void kiln_feat_dict_free(feat_dict *d);
kiln_status kiln_feat_keys(const feat_column *c, feat_dict *d, int64_t *keys);

/* ---- computing (compute.c) ---- */

typedef struct feat_spine {
    uint64_t rows;
    const int64_t *time;               /* us */
} feat_spine;

/* Feature f of every spine row into out (float64, NaN where there is nothing). skeys: the
 * spine's keys for f.by (NULL for time parts); the table's keys, times and values. */
kiln_status kiln_feat_window(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                             const int64_t *keys, const int64_t *times, const double *values, double *out);
kiln_status kiln_feat_asof(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                           const int64_t *keys, const int64_t *times, const int64_t *created, const double *values,
                           double *out);
kiln_status kiln_feat_lookup(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                             const int64_t *keys, const double *values, double *out);
void kiln_feat_time_part(feat_part part, const feat_spine *s, double *out);

/* ---- transforms (transform.c) ---- */

/* What a transform learned from the training split (fill: the mean; standardize: mean, std;
 * minmax: min, max), stored with the output so that new rows are transformed the same way. */
typedef struct feat_fitted {
    double a[FEAT_MAX_TRANSFORMS], b[FEAT_MAX_TRANSFORMS];
} feat_fitted;

/* f's transforms applied in order to the n values of x in place, each fitted on the rows whose
 * train[i] is 1 as they stand at that step, or, given what a build learned (kiln features
 * apply), with that; an indicator (1 where the value is NA at that step) goes to ind (NULL when
 * f has none). What was used goes to fit. */
void kiln_feat_transform(const feature *f, double *x, uint64_t n, const uint8_t *train, const feat_fitted *given,
                         double *ind, feat_fitted *fit);
/* Columns f adds to the matrix: 1, or 2 with an indicator. */
int kiln_feat_width(const feature *f);

/* `kiln features diff A.h5 B.h5 ...` (argv[0] is "diff"): the exit code. */
int kiln_features_diff_main(int argc, char **argv);

#endif
