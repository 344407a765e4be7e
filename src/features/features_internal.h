/* The parts of `kiln features`, one concern per file:
 *   spec.c       a feature's line: its kind, source, key, window and transforms, checked
 *   tables.c     columns of the imported tables as float64 values and shared integer keys
 *   compute.c    the features of the spine rows: windows, as-of joins, lookups, time parts
 *   exchange.c   a keyed feature on many ranks: rows to the rank owning their key and back
 *   transform.c  transforms fitted on the training split, applied to both
 *   fit.c        fitting and statistics on many ranks: each feature's on one rank, then shared
 *   build.c      `kiln features build`: the spine, the features, the split
 *   write.c      the output file, written by every rank
 *   diff.c       `kiln features diff A B`: drift per feature (PSI, mean, missing share)
 *   features_job.c  the job-table entry */
#ifndef KILN_FEATURES_INTERNAL_H
#define KILN_FEATURES_INTERNAL_H
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include "kiln/features.h"

/* ---- a feature (spec.c) ---- */

typedef enum { FEAT_WINDOW = 0, FEAT_ASOF, FEAT_LOOKUP, FEAT_TIME, FEAT_COLUMN } feat_kind;
typedef enum { AGG_COUNT = 0, AGG_SUM, AGG_MEAN, AGG_MIN, AGG_MAX, AGG_STD, AGG_LAST } feat_agg;
typedef enum { PART_HOUR = 0, PART_DOW, PART_DAY, PART_MONTH } feat_part;
typedef enum {
    TR_FILL_MEAN = 0, TR_FILL, TR_INDICATOR, TR_STANDARDIZE, TR_MINMAX, TR_LOG1P, TR_CLIP, TR_BUCKETS, TR_CODES, TR_HASH
} feat_tr_kind;

enum { FEAT_MAX_TRANSFORMS = 8 };

typedef struct feat_transform {
    feat_tr_kind kind;
    double a, b;                       /* fill: the value; clip: lo, hi; buckets, hash: N; codes: MIN */
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

/* 1 when f's first transform reads a category's text (codes, hash). */
int kiln_feat_is_categorical(const feature *f);
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
    uint64_t rows;                     /* rows read: [first, first + rows) of the table's total */
    uint64_t first, total;
    double *v;                         /* every type but timestamp */
    int64_t *t;                        /* int64 and timestamp: the raw values */
    int32_t *codes;                    /* category: the codes; strings in cats */
    char **cats;
    int32_t n_cats;
} feat_column;

kiln_status kiln_feat_column_read(const char *file, const char *table, const char *name, feat_column *c);
/* Part `part` of `parts` equal contiguous parts of the column (a rank's share), its categories
 * whole (so that every rank interns the same strings in the same order); parts 0: no rows,
 * only its type and categories. */
kiln_status kiln_feat_column_read_part(const char *file, const char *table, const char *name, int part, int parts,
                                       feat_column *c);
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
/* rows: each table row's number in its table, for messages (NULL: 0, 1, ...). */
kiln_status kiln_feat_lookup(const feature *f, const feat_spine *s, const int64_t *skeys, uint64_t n,
                             const int64_t *keys, const double *values, const uint64_t *rows, double *out);
void kiln_feat_time_part(feat_part part, const feat_spine *s, double *out);

/* How far a feature looks back (a window's W, an as-of's tolerance; 0: no bound). Time is cut
 * into blocks of 16 look-backs (0: one block): a spine row at t sees events of its block and of
 * the end of the one before only.
 * Ranks share a key's rows block by block (exchange.c), and window sums restart every
 * look-back (compute.c), so that a hot key spreads over the ranks and its values stay
 * bit-identical. */
int64_t kiln_feat_lookback_us(const feature *f);
int64_t kiln_feat_block_us(const feature *f);
int64_t kiln_feat_block(const feature *f, int64_t t);

/* ---- many ranks (exchange.c) ---- */

/* A rank's share of a keyed feature's inputs: its spine rows (keys, times) and its rows of the
 * table (keys, times and created where the feature has them, values), rows first_event on. */
typedef struct feat_keyed_share {
    uint64_t n_spine;
    const int64_t *skeys, *stimes;
    uint64_t n_events, first_event;
    const int64_t *keys, *times, *created;
    const double *values;
} feat_keyed_share;

/* Collective over comm's world: the feature of this rank's spine rows into out, each row's key
 * owned by one rank (a hash), computed there; the same values on any number of ranks. */
kiln_status kiln_feat_keyed(kiln_comm *comm, const feature *f, const feat_keyed_share *in, double *out);

/* ---- transforms (transform.c) ---- */

/* What a transform learned from the training split (fill_mean: the mean; standardize: mean, std;
 * minmax: min, max; buckets: the quantiles; codes: the categories kept), stored with the output
 * so that new rows are transformed the same way. a and b per transform, as /features/transform_a
 * and _b hold them; a feature has at most one buckets and one codes. */
typedef struct feat_fitted {
    double a[FEAT_MAX_TRANSFORMS], b[FEAT_MAX_TRANSFORMS];
    double *edges;                     /* buckets: the quantiles, increasing */
    uint64_t n_edges;
    char **kept;                       /* codes: the categories kept (code k + 1), most frequent first */
    int64_t *kept_count;               /* their training rows */
    int32_t n_kept;
} feat_fitted;
void kiln_feat_fitted_free(feat_fitted *f);

/* The strings of a category feature's source column: its raw values are positions in them. */
typedef struct feat_cats {
    char **s;
    int32_t n;
} feat_cats;

/* f's transforms applied in order to the n values of x in place, each fitted on the rows whose
 * train[i] is 1 as they stand at that step (into fit), or, given what a build learned, with
 * that (fit, when not NULL, then gets a and b only). src: the source's categories (codes, hash;
 * else NULL). An indicator (1 where the value is NA at that step) goes to ind (NULL when f has
 * none). */
kiln_status kiln_feat_transform(const feature *f, double *x, uint64_t n, const uint8_t *train,
                                const feat_fitted *given, const feat_cats *src, double *ind, feat_fitted *fit);
/* The n values (no NaN) sorted ascending, in linear time. */
kiln_status kiln_feat_sort_values(double *v, uint64_t n);
/* The q-quantile of m sorted values, interpolated linearly between order statistics (numpy's
 * default); NaN when m is 0. */
double kiln_feat_quantile(const double *sorted, uint64_t m, double q);
/* Columns f adds to the matrix: 1, or 2 with an indicator. */
int kiln_feat_width(const feature *f);

/* ---- fitting on many ranks (fit.c) ---- */

/* A feature's statistics over the training split, before transforms: FEAT_N_STATS numbers
 * (count, missing share, mean, std, min, max, quantiles), then a histogram of FEAT_HIST_BINS
 * equal bins from min to max (the last closed, as numpy.histogram). */
enum { FEAT_N_STATS = 13, FEAT_HIST_BINS = 20, FEAT_STATS_ROW = FEAT_N_STATS + FEAT_HIST_BINS };
extern const char *const kiln_feat_stat_names[FEAT_N_STATS];

/* Collective: f's transforms fitted on the training values of every rank's rows (col[i] where
 * fit_rows[i]), gathered in spine order on rank owner, and their statistics; both then on
 * every rank (fit allocated there: kiln_feat_fitted_free), the same whatever the number of
 * ranks. src: the source's categories, as for kiln_feat_transform. */
kiln_status kiln_feat_fit(kiln_comm *comm, int owner, const feature *f, const double *col, const uint8_t *fit_rows,
                          uint64_t n, const feat_cats *src, feat_fitted *fit, double stats[FEAT_STATS_ROW]);

/* ---- a build (build.c) and its output file (write.c) ---- */

typedef struct feat_build {
    const kiln_features_config *c;
    kiln_comm *comm;
    int rank, size;
    const char *output, *config_yaml;
    const char *state;                 /* apply: the build whose transforms are used (else NULL) */
    char state_path[PATH_MAX];
    feature *f;
    int n;                             /* K features */
    feat_dict *dict;
    feat_spine spine;                  /* this rank's share of the spine rows */
    uint64_t first, total;             /* the share's first spine row; spine rows in all */
    feat_column time;                  /* the share of the spine's time column */
    double *raw;                       /* [rows, K], row-major: the features before transforms */
    uint8_t *y, *keep, *train;         /* label; rows with a label; the training split */
    uint64_t n_train, n_valid;         /* this rank's rows of each split */
    uint64_t all_train, all_valid;     /* every rank's */
    uint64_t train_at, valid_at;       /* where this rank's rows go in the output */
    uint32_t tables_crc;
    int width;                         /* the columns of x (indicators count) */
    char (*names)[KILN_CFG_MAP_KEY_MAX + 16];
    double *xt;                        /* transformed features [rows, width] */
    feat_fitted *fitted;               /* [K]: what each feature's transforms learned (or were given) */
    feat_cats *cats;                   /* [K]: a categorical feature's source strings (else empty) */
    double *stats;                     /* [K, FEAT_STATS_ROW] over the training split */
} feat_build;

/* The fitted state in a build's output (state.c): written by rank 0 with the rest of the file,
 * read by apply (--state, a file or registry URI) into b->fitted, after checking that the state
 * was built with this spec's features, line for line. */
kiln_status kiln_feat_state_write(hid_t file, const feat_build *b);
kiln_status kiln_feat_state_read(feat_build *b);
/* Feature j's source column checked against its use (codes and hash need a category; a category
 * is a value only through them, or counted by a window) and, for a category, its strings into
 * b->cats[j]. */
kiln_status kiln_feat_source_check(feat_build *b, int j);

/* Collective: the output written whole and atomically: rank 0 creates OUTPUT.tmp with
 * everything but the rows, the rows' datasets allocated; every rank writes its rows into them
 * with MPI-IO; rank 0 commits the file. */
kiln_status kiln_feat_write(feat_build *b);

/* `kiln features diff A.h5 B.h5 ...` (argv[0] is "diff"): the exit code. */
int kiln_features_diff_main(int argc, char **argv);

#endif
