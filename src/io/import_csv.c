/* `kiln data import csv FILE.csv OUT.h5:/table`: a CSV file as a columnar HDF5 table.
 *
 * Parsed by libcsv (Debian's libcsv-dev), fed one line at a time so that every row is known by
 * its line. The first record names the columns. Two passes over the file:
 *   1. every record checked (as many fields as the header; a value of a column whose type is
 *      given must parse as that type) and, for the columns whose type is not given, the
 *      narrowest type every value fits: int64, then float64, then timestamp (ISO 8601), then
 *      bool (true/false), else category. A bad record is an error naming its line and column,
 *      or, with skip_bad_rows, left out and counted.
 *   2. the good records parsed into one array per column; categories coded in order of first
 *      appearance.
 * The table is written to a new file (OUT.tmp, synced, renamed) holding every other object of
 * OUT.h5 as it was, so an import either lands whole or leaves OUT.h5 untouched. Layout
 * (kiln/data.h): /table/COL, one dataset per column, and /table/.categories/COL. */
#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/data.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "kiln/strdict.h"

enum { MAX_COLUMNS = 4096, MAX_NA = 32 };

static const char *const type_names[] = {"auto", "int64", "float64", "bool", "timestamp", "category"};

const char *kiln_csv_type_name(kiln_csv_type t) { return type_names[t]; }

int kiln_csv_type_parse(const char *s, kiln_csv_type *t)
{
    for (int i = 0; i < (int)(sizeof type_names / sizeof type_names[0]); i++)
        if (!strcmp(s, type_names[i])) return *t = (kiln_csv_type)i, 1;
    return 0;
}

/* ---- values ---- */

static int parse_int64(const char *s, int64_t *v)
{
    if (!*s) return 0;
    /* the common case by hand: [-+]digits, at most 18 of them (no overflow possible) */
    const char *p = s + (*s == '-' || *s == '+');
    uint64_t x = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 19) x = x * 10 + (uint64_t)(*p++ - '0'), digits++;
    if (digits > 0 && digits < 19) /* strtoll would stop where this did: an integer only at the end */
        return *p ? 0 : (*v = *s == '-' ? -(int64_t)x : (int64_t)x, 1);
    char *end;
    errno = 0;
    long long y = strtoll(s, &end, 10);
    if (*end || errno) return 0;
    *v = y;
    return 1;
}

static int parse_float64(const char *s, double *v)
{
    if (!*s) return 0;
    char *end;
    double x = strtod(s, &end);
    if (*end) return 0;
    *v = x;
    return 1;
}

static int parse_bool(const char *s, int forced, uint8_t *v)
{
    static const char *const yes[] = {"true", "True", "TRUE", "1", "yes", "t"};
    static const char *const no[] = {"false", "False", "FALSE", "0", "no", "f"};
    int n = forced ? 6 : 3; /* inferred: only the words, so 0/1 columns stay integers */
    for (int i = 0; i < n; i++) {
        if (!strcmp(s, yes[i])) return *v = 1, 1;
        if (!strcmp(s, no[i])) return *v = 0, 1;
    }
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n digits at s into *v. */
static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 1;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* ISO 8601: YYYY-MM-DD, then optionally (T or space) HH:MM[:SS[.fraction]], then optionally Z
 * or an offset +HH[:MM] / -HH[:MM]; without one the time is UTC. Microseconds since the epoch. */
int kiln_parse_iso8601(const char *s, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return 0;
    const char *p = s + 10;
    int64_t frac = 0;
    if (*p == 'T' || *p == ' ') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || h > 23 || mi > 59) return 0;
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec) || sec > 60) return 0;
            p += 3;
            if (*p == '.' || *p == ',') {
                int n = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, n++)
                    if (n < 6) frac = frac * 10 + (*p - '0');
                if (n == 0) return 0;
                for (; n < 6; n++) frac *= 10;
            }
        }
    }
    int offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0, sign = *p == '-' ? -1 : 1;
        if (!digits(p + 1, 2, &oh) || oh > 23) return 0;
        p += 3;
        if (*p == ':') p++;
        if (*p && (!digits(p, 2, &om) || om > 59)) return 0;
        if (*p) p += 2;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p) return 0;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
    *us = secs * 1000000 + frac;
    return 1;
}

/* Epoch seconds (a given timestamp column may hold them): an integer or a decimal number. */
static int parse_epoch(const char *s, int64_t *us)
{
    double v;
    if (!parse_float64(s, &v) || !isfinite(v) || fabs(v) > 9.2e12) return 0;
    *us = (int64_t)llround(v * 1e6);
    return 1;
}

static int parse_timestamp(const char *s, int forced, int64_t *us)
{
    return kiln_parse_iso8601(s, us) || (forced && parse_epoch(s, us));
}

/* ---- reading records: libcsv fed a line at a time ---- */

typedef struct record {
    char **field;                      /* NUL-terminated copies, valid until the next record */
    size_t *len;
    int n, cap;
    size_t *field_cap;
} record;

typedef struct reader reader;
typedef kiln_status (*row_fn)(reader *r, const record *rec);

struct reader {
    const char *path;
    FILE *f;
    struct csv_parser p;
    record rec;
    int64_t line, rec_line;            /* the line being fed; the line the record began on */
    int in_record;
    row_fn on_row;
    void *ctx;
    kiln_status st;                    /* the first failure of a callback */
    int too_wide;
};

static void on_field(void *s, size_t len, void *data)
{
    reader *r = data;
    if (!r->in_record) r->in_record = 1, r->rec_line = r->line, r->rec.n = 0;
    record *rec = &r->rec;
    if (rec->n == MAX_COLUMNS + 1) {
        r->too_wide = 1;
        return;
    }
    if (rec->n == rec->cap) {
        int cap = rec->cap ? 2 * rec->cap : 32;
        char **f = realloc(rec->field, (size_t)cap * sizeof *f);
        if (f) rec->field = f;
        size_t *l = realloc(rec->len, (size_t)cap * sizeof *l);
        if (l) rec->len = l;
        size_t *c = realloc(rec->field_cap, (size_t)cap * sizeof *c);
        if (c) rec->field_cap = c;
        if (!f || !l || !c) {
            if (r->st == KILN_OK) r->st = KILN_ERROR(KILN_ERR_NOMEM, "a record of '%s'", r->path);
            return;
        }
        for (int i = rec->cap; i < cap; i++) rec->field[i] = NULL, rec->field_cap[i] = 0;
        rec->cap = cap;
    }
    int i = rec->n;
    if (rec->field_cap[i] < len + 1) {
        char *g = realloc(rec->field[i], len + 1);
        if (!g) {
            if (r->st == KILN_OK) r->st = KILN_ERROR(KILN_ERR_NOMEM, "a field of '%s'", r->path);
            return;
        }
        rec->field[i] = g, rec->field_cap[i] = len + 1;
    }
    if (len) memcpy(rec->field[i], s, len);
    rec->field[i][len] = '\0';
    rec->len[i] = len;
    rec->n++;
}

static void on_record(int c, void *data)
{
    (void)c;
    reader *r = data;
    if (!r->in_record) return; /* libcsv reports no empty lines; nothing to do */
    r->in_record = 0;
    if (r->st != KILN_OK) return;
    if (r->too_wide) {
        r->st = KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": more than %d fields", r->path, r->rec_line,
                           MAX_COLUMNS);
        return;
    }
    r->st = r->on_row(r, &r->rec);
}

/* Every record of the file, in order, to on_row (stops at the first failure). */
static kiln_status scan(const char *path, row_fn on_row, void *ctx)
{
    reader r = {.path = path, .on_row = on_row, .ctx = ctx};
    r.f = fopen(path, "rb");
    if (!r.f) return KILN_ERROR(KILN_ERR_IO, "CSV file '%s': %s", path, strerror(errno));
    if (csv_init(&r.p, CSV_APPEND_NULL | CSV_STRICT | CSV_STRICT_FINI) != 0) {
        fclose(r.f);
        return KILN_ERROR(KILN_ERR_NOMEM, "CSV parser");
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while (r.st == KILN_OK && (got = getline(&line, &cap, r.f)) > 0) {
        r.line++;
        if (csv_parse(&r.p, line, (size_t)got, on_field, on_record, &r) != (size_t)got && r.st == KILN_OK)
            r.st = KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": %s", path, r.line, csv_strerror(csv_error(&r.p)));
    }
    if (r.st == KILN_OK && ferror(r.f)) r.st = KILN_ERROR(KILN_ERR_IO, "reading '%s': %s", path, strerror(errno));
    if (r.st == KILN_OK && csv_fini(&r.p, on_field, on_record, &r) != 0 && r.st == KILN_OK)
        r.st = KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": %s (a quote opened and never closed)", path,
                          r.rec_line, csv_strerror(csv_error(&r.p)));
    free(line);
    csv_free(&r.p);
    fclose(r.f);
    for (int i = 0; i < r.rec.cap; i++) free(r.rec.field[i]);
    free(r.rec.field), free(r.rec.len), free(r.rec.field_cap);
    return r.st;
}

/* ---- the table being read ---- */

typedef struct column {
    char name[256];
    kiln_csv_type type;                /* given, or decided by pass 1 */
    int given;
    unsigned fits;                     /* pass 1, auto columns: the types every value fits so far */
    uint64_t na;
    void *data;                        /* pass 2: int64_t, double, uint8_t or int32_t per row */
    kiln_strdict cats;                 /* categories: their codes, in order of first appearance */
} column;

typedef struct table {
    const char *path;
    const kiln_csv_options *o;
    column *col;
    int n_cols;
    char na[MAX_NA][64];
    int n_na;
    uint8_t na_first[256];             /* the first bytes of the NA tokens ('\0': the empty one) */
    uint64_t rows, bad, records;       /* good rows, skipped rows, data records seen */
    uint64_t at;                       /* pass 2: the row being filled */
    unsigned char *bad_mask;           /* pass 1 → 2: which data records are left out */
    uint64_t bad_cap;
} table;

#define FITS(t) (1u << (t))

static int is_na(const table *t, const char *s)
{
    if (!t->na_first[(unsigned char)s[0]]) return 0; /* most fields: a number is no NA token */
    for (int i = 0; i < t->n_na; i++)
        if (!strcmp(s, t->na[i])) return 1;
    return 0;
}

/* Whether s is a value of type ty (given: a column whose type the user set). */
static int value_fits(kiln_csv_type ty, const char *s, int given)
{
    int64_t i;
    double d;
    uint8_t b;
    switch (ty) {
    case KILN_CSV_INT64: return parse_int64(s, &i);
    case KILN_CSV_FLOAT64: return parse_float64(s, &d);
    case KILN_CSV_BOOL: return parse_bool(s, given, &b);
    case KILN_CSV_TIMESTAMP: return parse_timestamp(s, given, &i);
    default: return 1;
    }
}

static kiln_status header_row(reader *r, const record *rec)
{
    table *t = r->ctx;
    t->n_cols = rec->n;
    t->col = calloc((size_t)rec->n, sizeof *t->col);
    KILN_CHECK_ALLOC(t->col);
    for (int c = 0; c < rec->n; c++) {
        const char *name = rec->field[c];
        if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || name[0] == '.' || strlen(name) >= sizeof t->col[c].name)
            return KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": column %d is named '%s'; a column needs a name "
                              "of 1 to 255 characters, without '/' and not starting with '.'", t->path, r->rec_line,
                              c + 1, name);
        for (int d = 0; d < c; d++)
            if (!strcmp(t->col[d].name, name))
                return KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": columns %d and %d are both named '%s'",
                                  t->path, r->rec_line, d + 1, c + 1, name);
        snprintf(t->col[c].name, sizeof t->col[c].name, "%s", name);
        t->col[c].fits = FITS(KILN_CSV_INT64) | FITS(KILN_CSV_FLOAT64) | FITS(KILN_CSV_BOOL) | FITS(KILN_CSV_TIMESTAMP);
    }
    return KILN_OK;
}

/* Marks data record i (0-based) as left out. */
static kiln_status mark_bad(table *t, uint64_t i)
{
    if (i / 8 >= t->bad_cap) {
        uint64_t cap = t->bad_cap ? 2 * t->bad_cap : 4096;
        while (cap <= i / 8) cap *= 2;
        unsigned char *m = realloc(t->bad_mask, cap);
        KILN_CHECK_ALLOC(m);
        memset(m + t->bad_cap, 0, cap - t->bad_cap);
        t->bad_mask = m, t->bad_cap = cap;
    }
    t->bad_mask[i / 8] |= (unsigned char)(1u << (i % 8));
    return KILN_OK;
}

static int is_bad(const table *t, uint64_t i)
{
    return i / 8 < t->bad_cap && (t->bad_mask[i / 8] >> (i % 8) & 1);
}

/* A bad record: an error, or with skip_bad_rows one more left out. */
static kiln_status bad_record(reader *r, table *t, kiln_status error)
{
    if (!t->o->skip_bad_rows) return error;
    kiln_error_clear();
    t->bad++;
    return mark_bad(t, t->records - 1);
}

static kiln_status apply_options(table *t);

static kiln_status check_row(reader *r, const record *rec)
{
    table *t = r->ctx;
    if (!t->col) { /* the header: then the options, which name its columns */
        KILN_CHECK(header_row(r, rec));
        return apply_options(t);
    }
    t->records++;
    if (rec->n != t->n_cols)
        return bad_record(r, t, KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ": %d field%s, but the header has %d "
                                           "columns", t->path, r->rec_line, rec->n, rec->n == 1 ? "" : "s",
                                           t->n_cols));
    for (int c = 0; c < t->n_cols; c++) {
        column *col = &t->col[c];
        const char *s = rec->field[c];
        if (!col->given || is_na(t, s)) continue;
        if (!value_fits(col->type, s, 1))
            return bad_record(r, t, KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 ", column '%s': '%.64s' is not of type "
                                               "%s", t->path, r->rec_line, col->name, s,
                                               kiln_csv_type_name(col->type)));
    }
    for (int c = 0; c < t->n_cols; c++) {
        column *col = &t->col[c];
        const char *s = rec->field[c];
        if (col->given || !col->fits || is_na(t, s)) continue;
        int64_t i;
        if (col->fits & FITS(KILN_CSV_INT64) && parse_int64(s, &i)) { /* an integer is a float too */
            col->fits &= FITS(KILN_CSV_INT64) | FITS(KILN_CSV_FLOAT64);
            continue;
        }
        for (int ty = KILN_CSV_INT64; ty <= KILN_CSV_TIMESTAMP; ty++)
            if (col->fits & FITS(ty) && !value_fits((kiln_csv_type)ty, s, 0)) col->fits &= ~FITS(ty);
    }
    t->rows++;
    return KILN_OK;
}

/* ---- pass 2: the values ---- */

/* The code of category s, added when new. */
static kiln_status category_code(column *col, const char *s, int32_t *code)
{
    int64_t id;
    KILN_CHECK(kiln_strdict_intern(&col->cats, s, &id));
    if (id >= INT32_MAX) return KILN_ERROR(KILN_ERR_DATA, "column '%s' has more than 2^31 categories", col->name);
    *code = (int32_t)id;
    return KILN_OK;
}

static kiln_status store_value(column *col, uint64_t row, const char *s, int na)
{
    int given = col->given;
    switch (col->type) {
    case KILN_CSV_INT64: {
        int64_t v = KILN_CSV_NA_INT64;
        if (!na) parse_int64(s, &v);
        ((int64_t *)col->data)[row] = v;
        break;
    }
    case KILN_CSV_FLOAT64: {
        double v = NAN;
        if (!na) parse_float64(s, &v);
        ((double *)col->data)[row] = v;
        break;
    }
    case KILN_CSV_BOOL: {
        uint8_t v = KILN_CSV_NA_BOOL;
        if (!na) parse_bool(s, given, &v);
        ((uint8_t *)col->data)[row] = v;
        break;
    }
    case KILN_CSV_TIMESTAMP: {
        int64_t v = KILN_CSV_NA_INT64;
        if (!na) parse_timestamp(s, given, &v);
        ((int64_t *)col->data)[row] = v;
        break;
    }
    default: {
        int32_t code = -1;
        if (!na) KILN_CHECK(category_code(col, s, &code));
        ((int32_t *)col->data)[row] = code;
    }
    }
    col->na += (uint64_t)na;
    return KILN_OK;
}

static kiln_status fill_row(reader *r, const record *rec)
{
    table *t = r->ctx;
    if (t->records++ == 0) return KILN_OK; /* the header */
    if (is_bad(t, t->records - 2)) return KILN_OK;
    if (rec->n != t->n_cols || t->at >= t->rows) /* the file changed between the passes */
        return KILN_ERROR(KILN_ERR_DATA, "'%s' line %" PRId64 " changed while it was read", t->path, r->rec_line);
    for (int c = 0; c < t->n_cols; c++) KILN_CHECK(store_value(&t->col[c], t->at, rec->field[c], is_na(t, rec->field[c])));
    t->at++;
    return KILN_OK;
}

/* ---- options: types and NA tokens ---- */

static kiln_status set_type(table *t, const char *name, const char *type, const char *origin)
{
    kiln_csv_type ty;
    if (!kiln_csv_type_parse(type, &ty))
        return KILN_ERROR(KILN_ERR_CONFIG, "%s: column '%s' has type '%s'; expected int64, float64, bool, "
                          "timestamp, category or auto", origin, name, type);
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->col[c].name, name)) {
            t->col[c].type = ty;
            t->col[c].given = ty != KILN_CSV_AUTO;
            return KILN_OK;
        }
    return KILN_ERROR(KILN_ERR_CONFIG, "%s: '%s' has no column '%s'", origin, t->path, name);
}

static void clear_na(table *t)
{
    t->n_na = 0;
    memset(t->na_first, 0, sizeof t->na_first);
}

static kiln_status add_na(table *t, const char *token, size_t n, const char *origin)
{
    if (t->n_na == MAX_NA || n >= sizeof t->na[0])
        return KILN_ERROR(KILN_ERR_CONFIG, "%s: at most %d NA tokens of under 64 characters", origin, MAX_NA);
    memcpy(t->na[t->n_na], token, n);
    t->na[t->n_na][n] = '\0';
    t->na_first[(unsigned char)t->na[t->n_na++][0]] = 1;
    return KILN_OK;
}

static kiln_status set_na(table *t, const char *list, const char *origin)
{
    clear_na(t);
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        KILN_CHECK(add_na(t, p, comma ? (size_t)(comma - p) : strlen(p), origin));
        if (!comma) return KILN_OK;
        p = comma + 1;
    }
}

static kiln_status schema_value(void *ctx, const char *path, const char *const *items, int n, int is_seq, int quoted)
{
    (void)quoted;
    table *t = ctx;
    if (!strncmp(path, "columns.", 8) && n == 1 && !is_seq) return set_type(t, path + 8, items[0], t->o->schema);
    if (!strcmp(path, "na")) {
        clear_na(t);
        for (int i = 0; i < n; i++) KILN_CHECK(add_na(t, items[i], strlen(items[i]), t->o->schema));
        return KILN_OK;
    }
    return KILN_ERROR(KILN_ERR_CONFIG, "%s: unknown key '%s' (expected columns.NAME: TYPE and na: [TOKENS])",
                      t->o->schema, path);
}

static kiln_status apply_options(table *t)
{
    const kiln_csv_options *o = t->o;
    KILN_CHECK(set_na(t, "NA,,null,NULL,N/A", "the default NA tokens"));
    if (o->schema && o->schema[0]) {
        char *text = NULL;
        KILN_CHECK(kiln_config_read_file(o->schema, &text));
        kiln_status st = kiln_config_walk_values(text, o->schema, schema_value, t);
        free(text);
        KILN_CHECK(st);
    }
    if (o->na) KILN_CHECK(set_na(t, o->na, "--na"));
    if (!o->types || !o->types[0]) return KILN_OK;
    char list[4096];
    if (strlen(o->types) >= sizeof list) return KILN_ERROR(KILN_ERR_CONFIG, "--types is longer than %zu", sizeof list);
    snprintf(list, sizeof list, "%s", o->types);
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) return KILN_ERROR(KILN_ERR_CONFIG, "--types: '%s' is not COLUMN=TYPE", item);
        *eq = '\0';
        KILN_CHECK(set_type(t, item, eq + 1, "--types"));
    }
    return KILN_OK;
}

/* After pass 1: every auto column's type, the narrowest its values fit; the arrays. */
static kiln_status decide_types(table *t)
{
    static const size_t width[] = {0, 8, 8, 1, 8, 4};
    for (int c = 0; c < t->n_cols; c++) {
        column *col = &t->col[c];
        if (!col->given) {
            col->type = KILN_CSV_CATEGORY;
            for (int ty = KILN_CSV_INT64; ty <= KILN_CSV_TIMESTAMP; ty++)
                if (col->fits & FITS(ty)) {
                    col->type = (kiln_csv_type)ty;
                    break;
                }
        }
        col->data = malloc((size_t)t->rows * width[col->type] + 1);
        if (!col->data) return KILN_ERROR(KILN_ERR_NOMEM, "column '%s' of %" PRIu64 " rows", col->name, t->rows);
    }
    return KILN_OK;
}

/* ---- writing ---- */

typedef struct writer {
    table *t;
    const char *group;
    const char *old_file;              /* OUT.h5 as it was (NULL: none): its other objects are kept */
    uint32_t crc;
    uint64_t bytes;
} writer;

static kiln_status write_categories(hid_t g, const column *col)
{
    char name[300];
    snprintf(name, sizeof name, ".categories/%s", col->name);
    return kiln_h5_write_strings(g, name, (const char *const *)col->cats.s, (uint64_t)col->cats.n);
}

static kiln_status write_column(hid_t g, const table *t, const column *col)
{
    static const hid_t *ftype[] = {NULL, &H5T_STD_I64LE_g, &H5T_IEEE_F64LE_g, &H5T_STD_U8LE_g, &H5T_STD_I64LE_g,
                                   &H5T_STD_I32LE_g};
    static const hid_t *mtype[] = {NULL, &H5T_NATIVE_INT64_g, &H5T_NATIVE_DOUBLE_g, &H5T_NATIVE_UINT8_g,
                                   &H5T_NATIVE_INT64_g, &H5T_NATIVE_INT32_g};
    uint64_t shape[1] = {t->rows};
    KILN_CHECK(kiln_h5_write_dataset(g, col->name, *ftype[col->type], *mtype[col->type], 1, shape, col->data));
    hid_t d = H5Dopen2(g, col->name, H5P_DEFAULT);
    KILN_H5_CHECK(d, KILN_ERR_HDF5, "reopening column '%s'", col->name);
    kiln_status st = kiln_h5_write_attr_str(d, "type", kiln_csv_type_name(col->type));
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(d, "na_count", col->na);
    if (st == KILN_OK && col->type == KILN_CSV_TIMESTAMP) st = kiln_h5_write_attr_str(d, "unit", "us since 1970-01-01 UTC");
    H5Dclose(d);
    if (st == KILN_OK && col->type == KILN_CSV_CATEGORY) st = write_categories(g, col);
    return st;
}

typedef struct other_objects {
    const char *skip;
    hid_t dst;
} other_objects;

/* Copies every root object of the old file but the table's own into the new one. */
static herr_t copy_other(hid_t root, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    const other_objects *oo = data;
    if (!strcmp(name, oo->skip)) return 0;
    return H5Ocopy(root, name, oo->dst, name, H5P_DEFAULT, H5P_DEFAULT);
}

static kiln_status fill_file(hid_t file, void *ctx)
{
    writer *w = ctx;
    table *t = w->t;
    if (w->old_file) {
        hid_t old = H5Fopen(w->old_file, H5F_ACC_RDONLY, H5P_DEFAULT);
        KILN_H5_CHECK(old, KILN_ERR_DATA, "cannot open '%s' to keep its other objects", w->old_file);
        other_objects oo = {w->group, file};
        herr_t rc = H5Literate(old, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_other, &oo);
        H5Fclose(old);
        if (rc < 0) return KILN_H5_ERROR(KILN_ERR_HDF5, "copying the other objects of '%s'", w->old_file);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, w->group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    KILN_H5_CHECK(g, KILN_ERR_HDF5, "creating group '%s'", w->group);
    kiln_status st = KILN_OK;
    for (int c = 0; c < t->n_cols && st == KILN_OK; c++) st = write_column(g, t, &t->col[c]);
    size_t names_len = 1;
    for (int c = 0; c < t->n_cols; c++) names_len += strlen(t->col[c].name) + 1;
    char *names = calloc(1, names_len);
    if (st == KILN_OK && !names) st = KILN_ERROR(KILN_ERR_NOMEM, "column names");
    for (int c = 0; st == KILN_OK && c < t->n_cols; c++) {
        strcat(names, t->col[c].name);
        if (c + 1 < t->n_cols) strcat(names, "\n");
    }
    if (st == KILN_OK) st = kiln_h5_write_attr_str(g, "columns", names);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(g, "rows", t->rows);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(g, "bad_rows_skipped", t->bad);
    if (st == KILN_OK) st = kiln_h5_write_attr_str(g, "source", t->path);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(g, "source_crc32", w->crc);
    if (st == KILN_OK) st = kiln_h5_write_attr_u64(g, "source_bytes", w->bytes);
    free(names);
    H5Gclose(g);
    return st;
}

/* ---- the command ---- */

static void table_free(table *t)
{
    for (int c = 0; t->col && c < t->n_cols; c++) {
        column *col = &t->col[c];
        kiln_strdict_free(&col->cats);
        free(col->data);
    }
    free(t->col), free(t->bad_mask);
}

/* OUT.h5:/table into file and group (a plain OUT.h5: the group "table"). */
static kiln_status split_target(const char *target, char *file, size_t flen, char *group, size_t glen)
{
    const char *colon = strstr(target, ":/");
    size_t n = colon ? (size_t)(colon - target) : strlen(target);
    if (n == 0 || n >= flen || (colon && (!colon[2] || strlen(colon + 2) >= glen)))
        return KILN_ERROR(KILN_ERR_ARG, "'%s': expected OUT.h5:/table (for example data/flights.h5:/flights)", target);
    memcpy(file, target, n);
    file[n] = '\0';
    snprintf(group, glen, "%s", colon ? colon + 2 : "table");
    for (const char *p = group; *p; p++)
        if (*p == '/' || (p == group && *p == '.'))
            return KILN_ERROR(KILN_ERR_ARG, "'%s': the table is one name (no '/', not starting with '.')", target);
    return KILN_OK;
}

kiln_status kiln_import_csv(const char *csv_path, const char *target, const kiln_csv_options *o,
                            kiln_csv_report *report)
{
    char file[PATH_MAX], group[256];
    KILN_CHECK(split_target(target, file, sizeof file, group, sizeof group));
    table t = {.path = csv_path, .o = o};
    double t0 = kiln_time_s();
    kiln_status st = scan(csv_path, check_row, &t);
    if (st == KILN_OK && !t.col) st = KILN_ERROR(KILN_ERR_DATA, "'%s' is empty: expected a header line", csv_path);
    if (st == KILN_OK && t.rows == 0)
        st = KILN_ERROR(KILN_ERR_DATA, "'%s' has no data rows%s", csv_path, t.bad ? " (every one was bad)" : "");
    if (st == KILN_OK) st = decide_types(&t);
    if (st == KILN_OK) {
        t.records = 0;
        st = scan(csv_path, fill_row, &t);
    }
    if (st == KILN_OK && t.at != t.rows) st = KILN_ERROR(KILN_ERR_DATA, "'%s' changed while it was read", csv_path);
    writer w = {&t, group, NULL, 0, 0};
    uint32_t crc = 0;
    if (st == KILN_OK) st = kiln_file_crc32(csv_path, &crc, &w.bytes);
    w.crc = crc;
    if (st == KILN_OK && kiln_path_exists(file)) w.old_file = file;
    if (st == KILN_OK) st = kiln_h5_write_file_atomic(file, fill_file, &w);
    if (st == KILN_OK && report) {
        report->rows = t.rows, report->bad_rows = t.bad, report->columns = t.n_cols, report->seconds = kiln_time_s() - t0;
        report->types = calloc((size_t)t.n_cols, sizeof *report->types);
        report->names = calloc((size_t)t.n_cols, sizeof *report->names);
        for (int c = 0; report->types && report->names && c < t.n_cols; c++) {
            report->types[c] = t.col[c].type;
            report->names[c] = strdup(t.col[c].name);
        }
    }
    table_free(&t);
    return st;
}

void kiln_csv_report_free(kiln_csv_report *r)
{
    for (int c = 0; r->names && c < r->columns; c++) free(r->names[c]);
    free(r->names), free(r->types);
    memset(r, 0, sizeof *r);
}
