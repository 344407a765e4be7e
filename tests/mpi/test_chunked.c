/* The chunked-output engine on its own (kiln/chunked.h), on 3 ranks, with datasets of other
 * types and widths than kiln infer writes (int64 ids, double rows, a 1-D float): every row
 * lands once with the values its callback computed; a failure on whichever rank holds one
 * chunk ends every rank with the cause and leaves resumable progress; the rerun finishes and
 * the file equals, byte for byte, one written in one go; a finished output is accepted, and one
 * made by another job (an identity attribute differs) is refused and left alone. */
#include "check.h"
#include "kiln/chunked.h"
#include "kiln/comm.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include <limits.h>
#include <unistd.h>

enum { ROWS = 1000, CHUNK = 64, W = 3 };
static kiln_comm *comm;
static int rank;
static const char *dir;

typedef struct gen {
    int64_t fail_chunk;         /* the chunk whose computation fails, or -1 */
    uint64_t calls;
} gen;

static kiln_status compute(void *ctx, uint64_t chunk, uint64_t first, uint64_t rows,
                           void *const *bufs, uint32_t *source_crc)
{
    gen *g = ctx;
    g->calls++;
    if ((int64_t)chunk == g->fail_chunk)
        return KILN_ERROR(KILN_ERR_DATA, "row %llu is bad on purpose", (unsigned long long)first);
    int64_t *ids = bufs[0];
    double *rows3 = bufs[1];
    float *score = bufs[2];
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t row = first + r;
        ids[r] = (int64_t)(row * row) - 7;
        for (int k = 0; k < W; k++) rows3[r * W + k] = (double)row / (k + 1);
        score[r] = (float)row * 0.25f;
    }
    *source_crc = (uint32_t)first; /* any value: it is combined into input_crc32 */
    return KILN_OK;
}

static kiln_status write_out(const char *path, const char *who, int64_t fail_chunk,
                             kiln_chunked_result *res)
{
    const kiln_chunked_dataset sets[] = {{"ids", H5T_NATIVE_INT64, 1},
                                         {"group/rows", H5T_NATIVE_DOUBLE, W},
                                         {"score", H5T_NATIVE_FLOAT, 1}};
    uint64_t rows = ROWS;
    kiln_chunked_attr id[] = {{"who", KILN_ATTR_STR, who}, {"rows", KILN_ATTR_U64, &rows}};
    kiln_chunked_spec spec = {.output = path, .name = "test", .job = "the test", .output_flag = "path",
                              .rows = ROWS, .chunk_rows = CHUNK, .datasets = sets, .n_datasets = 3,
                              .identity = id, .n_identity = 2, .config = "a: 1\n",
                              .source_row_bytes = 8, .progress_interval = 1e9};
    gen g = {fail_chunk, 0};
    return kiln_chunked_write(comm, &spec, compute, &g, res);
}

static int same_bytes(const char *a, const char *b)
{
    uint32_t ca, cb;
    uint64_t sa, sb;
    return kiln_file_crc32(a, &ca, &sa) == KILN_OK && kiln_file_crc32(b, &cb, &sb) == KILN_OK &&
           ca == cb && sa == sb;
}

static void check_contents(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "open %s", path);
    if (f < 0) return;
    int64_t *ids = malloc(ROWS * sizeof *ids), complete = 0;
    double *rows = malloc(ROWS * W * sizeof *rows);
    hid_t d1 = H5Dopen2(f, "ids", H5P_DEFAULT), d2 = H5Dopen2(f, "group/rows", H5P_DEFAULT);
    CHECK_OK(kiln_h5_read_range(d1, H5T_NATIVE_INT64, H5P_DEFAULT, 0, ROWS, ids));
    CHECK_OK(kiln_h5_read_range(d2, H5T_NATIVE_DOUBLE, H5P_DEFAULT, 0, ROWS * W, rows));
    CHECK_OK(kiln_h5_read_attr_i64(f, "complete", &complete));
    int ok = complete == 1;
    for (uint64_t r = 0; r < ROWS; r++) {
        ok &= ids[r] == (int64_t)(r * r) - 7;
        for (int k = 0; k < W; k++) ok &= rows[r * W + k] == (double)r / (k + 1);
    }
    CHECK(ok, "%s: every row as computed, complete = 1", path);
    H5Dclose(d1);
    H5Dclose(d2);
    H5Fclose(f);
    free(ids);
    free(rows);
}

int main(int argc, char **argv)
{
    if (kiln_comm_init(&argc, &argv, 1, &comm) != KILN_OK || argc < 2) return 1;
    rank = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    dir = argv[1];
    char once[PATH_MAX], resumed[PATH_MAX], partial[PATH_MAX + 16];
    snprintf(once, sizeof once, "%s/once.h5", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.h5", dir);
    snprintf(partial, sizeof partial, "%s.partial", resumed);
    kiln_chunked_result res;

    CHECK_OK(write_out(once, "me", -1, &res));
    CHECK(!res.was_complete && res.computed_rows > 0, "rank %d computed %llu rows", rank,
          (unsigned long long)res.computed_rows);
    double total = (double)res.computed_rows;
    CHECK_OK(kiln_comm_allreduce_f64(comm, KILN_AXIS_WORLD, &total, 1));
    CHECK(total == ROWS, "every row computed once over the ranks: %g", total);
    if (rank == 0) check_contents(once);

    /* chunk 9 fails on whichever rank computes it: every rank stops, progress is kept */
    kiln_status st = write_out(resumed, "me", 9, &res);
    CHECK(st != KILN_OK, "a failing chunk fails the write on rank %d", rank);
    kiln_error_clear();
    CHECK(kiln_path_exists(partial) && !kiln_path_exists(resumed), "the partial output is kept");
    CHECK_OK(write_out(resumed, "me", -1, &res));
    total = (double)res.computed_rows;
    CHECK_OK(kiln_comm_allreduce_f64(comm, KILN_AXIS_WORLD, &total, 1));
    CHECK(total < ROWS, "the rerun computes only what was left: %g of %d rows", total, ROWS);
    CHECK_OK(kiln_comm_barrier(comm));
    if (rank == 0) CHECK(same_bytes(once, resumed), "resumed output equals the one-go output");

    CHECK_OK(write_out(resumed, "me", -1, &res));
    CHECK(res.was_complete && res.computed_rows == 0, "a finished output is accepted as it is");
    /* rank 0 finds it; the others learn of it, with the same status */
    CHECK_FAILS(write_out(resumed, "someone else", -1, &res), KILN_ERR_ARG,
                rank == 0 ? "belongs to another job: its who is 'me', this run's is 'someone else'"
                          : "another rank failed");
    CHECK_OK(kiln_comm_barrier(comm));
    if (rank == 0) CHECK(same_bytes(once, resumed), "another job's output is left alone");
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
