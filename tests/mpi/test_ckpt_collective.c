/* Collective checkpoint saves, on 3 ranks (tests/mpi/run_c.sh). Each rank writes an uneven
 * part of each tensor (cut mid-row, one rank with nothing of a tensor): the file verifies, reads
 * back bit-exact, and has the same datasets, crc32s and meta as the file one process writes.
 * Ranks that disagree (another tensor count, another name, a gap in the ranges) all fail with
 * one clear error and publish nothing; a fault switched on at rank 0 stops every rank half-way,
 * leaves the tmp and `latest`, and the next save cleans up. */
#include "check.h"
#include "kiln/ckpt.h"
#include "kiln/comm.h"
#include "kiln/h5util.h"
#include <limits.h>
#include <unistd.h>

enum { NT = 3 };
static const char *names[NT] = {"model/w", "model/b", "optim/m/x"};
static const int ndims[NT] = {2, 1, 3};
static const uint64_t shapes[NT][3] = {{10, 6}, {6}, {2, 3, 4}};
static const uint64_t numels[NT] = {60, 6, 24};
/* rank r writes [cut[t][r], cut[t][r+1]) of tensor t */
static const uint64_t cuts[NT][4] = {{0, 7, 41, 60}, {0, 3, 3, 6}, {0, 0, 13, 24}};

static float data[NT][60];
static kiln_ckpt_meta meta, loaded; /* 64 KiB each: not on the stack */
static int rank, world;

static void fill(int64_t step)
{
    for (int t = 0; t < NT; t++)
        for (uint64_t i = 0; i < numels[t]; i++)
            data[t][i] = sinf(0.37f * (float)i + (float)(t + step)) * (float)(1 + i);
    memset(&meta, 0, sizeof meta);
    meta.step = step;
    meta.samples_seen = step * 32;
    meta.seed = 0x8000000000000123ull;
    meta.data_pos = (uint64_t)step * 7;
    meta.best_eval_loss = 0.5;
    snprintf(meta.config_text, sizeof meta.config_text, "train:\n  seed: %lld\n", (long long)step);
}

/* This rank's part of every tensor (whole = 1: all of it, for a lone save). */
static void describe(kiln_ckpt_tensor *t, int whole)
{
    for (int i = 0; i < NT; i++) {
        uint64_t a = whole ? 0 : cuts[i][rank], b = whole ? numels[i] : cuts[i][rank + 1];
        t[i] = (kiln_ckpt_tensor){names[i], b > a ? data[i] + a : NULL, ndims[i], {0}, a, b - a};
        memcpy(t[i].shape, shapes[i], sizeof shapes[i]);
    }
}

static void path_of(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    CHECK(n < PATH_MAX, "path too long: %s/%s", dir, name);
}

static uint64_t crc_attr(const char *file, const char *dataset)
{
    uint64_t crc = 0;
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, dataset, H5P_DEFAULT);
    CHECK_OK(kiln_h5_read_attr_u64(d, "crc32", &crc));
    H5Dclose(d);
    H5Fclose(f);
    return crc;
}

/* Rank 0: the collective file against the one a lone process writes from the same data. */
static void compare_with_alone(const char *together, const char *alone_dir)
{
    kiln_ckpt_tensor t[NT];
    char alone[PATH_MAX];
    describe(t, 1);
    CHECK_OK(kiln_ckpt_save(NULL, alone_dir, &meta, t, NT, 0));
    path_of(alone, alone_dir, "step-00000001.h5");
    CHECK_OK(kiln_ckpt_verify(together));
    float back[NT][60];
    kiln_ckpt_tensor r[NT];
    describe(r, 1);
    for (int i = 0; i < NT; i++) r[i].data = back[i];
    CHECK_OK(kiln_ckpt_load(together, &loaded, r, NT));
    for (int i = 0; i < NT; i++) {
        CHECK(!memcmp(back[i], data[i], numels[i] * sizeof(float)), "%s reads back bit-exact",
              names[i]);
        CHECK(crc_attr(together, names[i]) == crc_attr(alone, names[i]),
              "%s: crc32 of the collective file equals the lone file's", names[i]);
    }
    CHECK(loaded.step == 1 && loaded.seed == meta.seed && loaded.data_pos == meta.data_pos &&
              !strcmp(loaded.config_text, meta.config_text),
          "meta round trip");
}

static int exists_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    path_of(p, dir, name);
    return access(p, F_OK) == 0;
}

static void latest_is(const char *dir, const char *want)
{
    char p[PATH_MAX], line[64] = "";
    path_of(p, dir, "latest");
    FILE *f = fopen(p, "r");
    if (f && !fgets(line, sizeof line, f)) line[0] = '\0';
    if (f) fclose(f);
    line[strcspn(line, "\n")] = '\0';
    CHECK(!strcmp(line, want), "latest names '%s', expected '%s'", line, want);
}

/* Every rank must fail with `needle` and nothing of step 2 may appear. */
static void check_rejected(kiln_comm *comm, const char *dir, kiln_ckpt_tensor *t, int n,
                           const char *needle)
{
    fill(2);
    CHECK_FAILS(kiln_ckpt_save(comm, dir, &meta, t, n, 0), KILN_ERR_ARG, needle);
    CHECK_OK(kiln_comm_barrier(comm));
    CHECK(!exists_in(dir, "step-00000002.h5") && !exists_in(dir, "step-00000002.h5.tmp"),
          "a rejected save leaves no step-2 file (%s)", needle);
    latest_is(dir, "step-00000001.h5");
}

static void check_disagreements(kiln_comm *comm, const char *dir)
{
    kiln_ckpt_tensor t[NT];
    describe(t, 0);
    check_rejected(comm, dir, t, rank == 2 ? NT - 1 : NT, "every rank must list the same tensors");
    describe(t, 0);
    if (rank == 1) t[2].name = "optim/m/y";
    check_rejected(comm, dir, t, NT, "another name or shape on rank");
    describe(t, 0);
    if (rank == 1) t[0].count--;
    check_rejected(comm, dir, t, NT, "skip element 40");
}

static void check_fault(kiln_comm *comm, const char *dir)
{
    kiln_ckpt_tensor t[NT];
    fill(2);
    describe(t, 0);
    if (rank == 0) kiln_ckpt_fault_half_write(1); /* rank 0's switch decides for all */
    CHECK_FAILS(kiln_ckpt_save(comm, dir, &meta, t, NT, 0), KILN_ERR_INTERRUPTED,
                "stopped after 1 of 3 datasets");
    CHECK_OK(kiln_comm_barrier(comm));
    CHECK(exists_in(dir, "step-00000002.h5.tmp") && !exists_in(dir, "step-00000002.h5"),
          "the interrupted save left its tmp only");
    latest_is(dir, "step-00000001.h5");
    fill(3);
    describe(t, 0);
    CHECK_OK(kiln_ckpt_save(comm, dir, &meta, t, NT, 0));
    CHECK_OK(kiln_comm_barrier(comm));
    CHECK(!exists_in(dir, "step-00000002.h5.tmp"), "the next save removed the stale tmp");
    latest_is(dir, "step-00000003.h5");
}

int main(int argc, char **argv)
{
    kiln_comm *comm;
    CHECK_OK(kiln_comm_init(&argc, &argv, 1, &comm));
    rank = kiln_comm_rank(comm, KILN_AXIS_WORLD);
    world = kiln_comm_size(comm, KILN_AXIS_WORLD);
    if (world != 3 || argc != 2) {
        fprintf(stderr, "usage: mpiexec -n 3 %s WORK_DIR\n", argv[0]);
        return 2;
    }
    char dir[PATH_MAX], alone_dir[PATH_MAX], together[PATH_MAX];
    path_of(dir, argv[1], "together");
    path_of(alone_dir, argv[1], "alone");
    path_of(together, dir, "step-00000001.h5");

    kiln_ckpt_tensor t[NT];
    fill(1);
    describe(t, 0);
    CHECK_OK(kiln_ckpt_save(comm, dir, &meta, t, NT, 0));
    CHECK_OK(kiln_comm_barrier(comm));
    if (rank == 0) compare_with_alone(together, alone_dir);
    check_disagreements(comm, dir);
    check_fault(comm, dir);
    kiln_comm_finalize(comm);
    TEST_MAIN_END();
}
