/* Checkpoints: save/prune/`latest`, bit-exact round trip of tensors and meta, flat-range reads
 * and writes (2-D and 3-D, against the flat reference), damage detection (truncation, flipped
 * bytes with and without the sidecar), shape mismatch, the fault switch (function and env),
 * inspect output, h5py compatibility; and the shared h5util helpers they rest on. */
#define _GNU_SOURCE
#include "check.h"
#include "kiln/ckpt.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define W_NAME "model/h0.attn.weight"
#define B_NAME "model/h0.attn.bias"
#define M_NAME "optim/m/h0.attn.weight3"
enum { NW = 60, NB = 6, NM = 24 }; /* w (10, 6), b (6), m (2, 3, 4) */

static char root[PATH_MAX]; /* this run's temp dir */
static float w[NW], b[NB], m[NM];
static kiln_ckpt_meta meta, loaded; /* 64 KiB each: not on the stack */

/* Values differ per step and cover signs, magnitudes and non-round mantissas. */
static void fill(int64_t step)
{
    for (int i = 0; i < NW; i++) w[i] = sinf(0.37f * (float)i + (float)step) * (float)(1 + i);
    for (int i = 0; i < NB; i++) b[i] = 1e-3f * (float)(i - 2) / (float)(step + 1);
    for (int i = 0; i < NM; i++) m[i] = cosf((float)(i * step)) * 1e4f;
}

static void tensors(kiln_ckpt_tensor t[3], float *wp, float *bp, float *mp)
{
    t[0] = (kiln_ckpt_tensor){W_NAME, wp, 2, {10, 6}, 0, NW};
    t[1] = (kiln_ckpt_tensor){B_NAME, bp, 1, {NB}, 0, NB};
    t[2] = (kiln_ckpt_tensor){M_NAME, mp, 3, {2, 3, 4}, 0, NM};
}

static void set_meta(int64_t step)
{
    memset(&meta, 0, sizeof meta);
    meta.step = step;
    meta.samples_seen = step * 32;
    meta.tokens_seen = step * 4096 + 1;
    meta.seed = 0x8000000000000123ull; /* above INT64_MAX: must survive as uint64 */
    meta.data_epoch = (uint64_t)step / 2;
    meta.data_pos = (uint64_t)step * 7;
    meta.best_eval_loss = step == 1 ? INFINITY : 1.0 / (double)step;
    snprintf(meta.config_text, sizeof meta.config_text,
             "model:\n  kind: gpt\n  n_layer: %lld\noptim:\n  lr: 3.0e-4\n", (long long)step);
}

static kiln_status save_step(const char *dir, int64_t step, int keep)
{
    kiln_ckpt_tensor t[3];
    fill(step);
    set_meta(step);
    tensors(t, w, b, m);
    return kiln_ckpt_save(NULL, dir, &meta, t, 3, keep);
}

static void path_in(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    CHECK(n < PATH_MAX, "path too long: %s/%s", dir, name);
}

static void make_dir(char *out, const char *name)
{
    path_in(out, root, name);
    CHECK(mkdir(out, 0777) == 0, "mkdir %s", out);
}

static int exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    path_in(p, dir, name);
    return access(p, F_OK) == 0;
}

static void read_text(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void check_latest(const char *dir, const char *want)
{
    char path[PATH_MAX] = "";
    int found = -1;
    CHECK_OK(kiln_ckpt_find_latest(dir, path, sizeof path, &found));
    CHECK(found == 1 && ends_with(path, want), "find_latest(%s) -> %d '%s', want %s", dir, found,
          path, want);
}

/* ---- h5util ---- */

static void test_crc32(void)
{
    CHECK(kiln_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");
    const char *s = "kiln checkpoints combine range checksums";
    size_t n = strlen(s), cut = 11;
    uint32_t whole = kiln_crc32(0, s, n);
    uint32_t comb = kiln_crc32_combine(kiln_crc32(0, s, cut), kiln_crc32(0, s + cut, n - cut),
                                       n - cut);
    CHECK(whole == comb, "crc32_combine %08x vs %08x", comb, whole);
    CHECK(kiln_crc32_combine(0, whole, n) == whole, "combine onto the empty prefix");
}

static void test_attrs(hid_t f)
{
    static char big[70001], back[70001];
    char small[8];
    for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (char)('a' + i % 26);
    /* 70000 bytes: beyond HDF5's 64 KiB object-header limit for a fixed-size attribute */
    CHECK_OK(kiln_h5_write_attr_str(f, "config", big));
    CHECK_OK(kiln_h5_read_attr_str(f, "config", back, sizeof back));
    CHECK(!strcmp(big, back), "long string attribute round trip");
    CHECK_OK(kiln_h5_write_attr_str(f, "config", "short"));
    CHECK_OK(kiln_h5_read_attr_str(f, "config", back, sizeof back));
    CHECK(!strcmp(back, "short"), "replaced attribute reads '%s'", back);
    CHECK_FAILS(kiln_h5_read_attr_str(f, "config", small, 3), KILN_ERR_DATA, "attribute 'config'");

    int64_t i64;
    uint64_t u64;
    double f64;
    CHECK_OK(kiln_h5_write_attr_i64(f, "i", -5));
    CHECK_OK(kiln_h5_write_attr_u64(f, "u", 0xFFFFFFFFFFFFFFF0ull));
    CHECK_OK(kiln_h5_write_attr_f64(f, "d", -0.125));
    CHECK_OK(kiln_h5_read_attr_i64(f, "i", &i64));
    CHECK_OK(kiln_h5_read_attr_u64(f, "u", &u64));
    CHECK_OK(kiln_h5_read_attr_f64(f, "d", &f64));
    CHECK(i64 == -5 && u64 == 0xFFFFFFFFFFFFFFF0ull && f64 == -0.125, "numeric attributes");
    CHECK(kiln_h5_has_attr(f, "i") && !kiln_h5_has_attr(f, "nope"), "has_attr");
    CHECK_FAILS(kiln_h5_read_attr_i64(f, "d", &i64), KILN_ERR_DATA,
                "attribute 'd' of '/' in '");
    CHECK_FAILS(kiln_h5_read_attr_i64(f, "d", &i64), KILN_ERR_DATA,
                "expected one integer value, found 1 of type float64");
    CHECK_FAILS(kiln_h5_read_attr_f64(f, "nope", &f64), KILN_ERR_DATA, "no attribute 'nope'");
}

static void test_open_dataset(hid_t f)
{
    hsize_t dims[3] = {100, 28, 28};
    hid_t space = H5Screate_simple(3, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, "/train/x", H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(d >= 0, "create /train/x");
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);

    hid_t out = H5I_INVALID_HID;
    const uint64_t want_u8[2] = {KILN_H5_ANY, 784}, want_f32[3] = {KILN_H5_ANY, 28, 28};
    CHECK_FAILS(kiln_h5_open_dataset(f, "/train/x", H5T_NATIVE_UINT8, 2, want_u8, &out),
                KILN_ERR_DATA, "dataset '/train/x' in '");
    CHECK_FAILS(kiln_h5_open_dataset(f, "/train/x", H5T_NATIVE_UINT8, 2, want_u8, &out),
                KILN_ERR_DATA, "': expected uint8 [N,784], found float32 [100,28,28]");
    CHECK_FAILS(kiln_h5_open_dataset(f, "/train/y", H5T_NATIVE_UINT8, 2, want_u8, &out),
                KILN_ERR_DATA, "no dataset '/train/y' in '");
    CHECK_FAILS(kiln_h5_open_dataset(f, "/test/x", H5T_NATIVE_UINT8, 2, want_u8, &out),
                KILN_ERR_DATA, "no dataset '/test/x'");
    CHECK_OK(kiln_h5_open_dataset(f, "/train/x", H5T_NATIVE_FLOAT, 3, want_f32, &out));
    if (out >= 0) H5Dclose(out);
    CHECK(kiln_h5_exists(f, "/train") && kiln_h5_exists(f, "train/x") &&
          !kiln_h5_exists(f, "/val/x"), "exists");
}

/* Every range of a (3, 4, 5) dataset, read back against the flat reference; the data was
 * written as three uneven ranges, so writes go through the same selection. */
static void test_ranges(hid_t f)
{
    enum { N = 60 };
    float ref[N], got[N];
    for (int i = 0; i < N; i++) ref[i] = (float)i + 0.5f;
    hsize_t dims[3] = {3, 4, 5};
    hid_t space = H5Screate_simple(3, dims, NULL);
    hid_t d = H5Dcreate2(f, "r3", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    const uint64_t cuts[4] = {0, 7, 33, N};
    for (int k = 0; k < 3; k++)
        CHECK_OK(kiln_h5_write_range(d, H5T_NATIVE_FLOAT, H5P_DEFAULT, cuts[k],
                                     cuts[k + 1] - cuts[k], ref + cuts[k]));
    int bad = 0, tried = 0;
    for (uint64_t s = 0; s <= N; s++)
        for (uint64_t c = 0; s + c <= N; c++) {
            for (uint64_t i = 0; i < c; i++) got[i] = -1;
            tried++;
            if (kiln_h5_read_range(d, H5T_NATIVE_FLOAT, H5P_DEFAULT, s, c, got) != KILN_OK ||
                (c && memcmp(got, ref + s, c * sizeof(float)) != 0)) {
                if (!bad)
                    fprintf(stderr, "first bad range [%llu, +%llu): %s\n", (unsigned long long)s,
                            (unsigned long long)c, kiln_error_message());
                bad++;
            }
        }
    CHECK(bad == 0, "%d of %d ranges of a (3,4,5) dataset read wrong", bad, tried);
    CHECK_OK(kiln_h5_read_range(d, H5T_NATIVE_FLOAT, H5P_DEFAULT, 60, 0, NULL));
    CHECK_FAILS(kiln_h5_read_range(d, H5T_NATIVE_FLOAT, H5P_DEFAULT, 50, 11, got), KILN_ERR_ARG,
                "elements [50, 61) of dataset '/r3'");
    H5Dclose(d);
}

static void test_h5util(void)
{
    char p[PATH_MAX];
    test_crc32();
    path_in(p, root, "util.h5");
    kiln_h5_quiet();
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0, "create %s", p);
    if (f < 0) return;
    test_attrs(f);
    test_open_dataset(f);
    test_ranges(f);
    H5Fclose(f);
}

/* ---- checkpoints ---- */

static void test_keep_and_latest(const char *dir)
{
    char buf[128], all[PATH_MAX];
    for (int s = 1; s <= 3; s++) CHECK_OK(save_step(dir, s, 2));
    CHECK(!exists(dir, "step-00000001.h5") && !exists(dir, "step-00000001.h5.crc32"),
          "step 1 not pruned");
    CHECK(exists(dir, "step-00000002.h5") && exists(dir, "step-00000002.h5.crc32") &&
          exists(dir, "step-00000003.h5") && exists(dir, "step-00000003.h5.crc32"),
          "steps 2 and 3 with sidecars kept");
    CHECK(count_files_with_suffix(dir, ".tmp") == 0, "tmp files left");
    path_in(all, dir, "latest");
    read_text(all, buf, sizeof buf);
    CHECK(!strcmp(buf, "step-00000003.h5\n"), "latest reads '%s'", buf);
    check_latest(dir, "/step-00000003.h5");

    make_dir(all, "keepall");
    for (int s = 1; s <= 3; s++) CHECK_OK(save_step(all, s, 0));
    CHECK(count_files_with_suffix(all, ".h5") == 3 && count_files_with_suffix(all, ".crc32") == 3, "keep=0 keeps all");

    int found = -1;
    char path[PATH_MAX];
    make_dir(all, "empty");
    CHECK_OK(kiln_ckpt_find_latest(all, path, sizeof path, &found));
    CHECK(found == 0, "empty dir: found %d", found);
}

static void test_round_trip(const char *dir)
{
    char path[PATH_MAX];
    float w2[NW], b2[NB], m2[NM];
    kiln_ckpt_tensor t[3];
    tensors(t, w2, b2, m2);
    path_in(path, dir, "step-00000003.h5");
    CHECK_OK(kiln_ckpt_load(path, &loaded, t, 3));
    fill(3);
    set_meta(3);
    CHECK(!memcmp(w, w2, sizeof w) && !memcmp(b, b2, sizeof b) && !memcmp(m, m2, sizeof m),
          "tensors not bit-exact");
    CHECK(loaded.step == 3 && loaded.samples_seen == meta.samples_seen &&
          loaded.tokens_seen == meta.tokens_seen && loaded.seed == meta.seed &&
          loaded.data_epoch == meta.data_epoch && loaded.data_pos == meta.data_pos &&
          loaded.best_eval_loss == meta.best_eval_loss, "meta fields differ");
    CHECK(!strcmp(loaded.config_text, meta.config_text), "config '%s'", loaded.config_text);
    CHECK(!strcmp(loaded.kiln_version, KILN_VERSION), "kiln_version '%s'", loaded.kiln_version);

    char first[PATH_MAX];
    snprintf(first, sizeof first, "%s/../keepall/step-00000001.h5", dir);
    CHECK_OK(kiln_ckpt_load(first, &loaded, NULL, 0));
    CHECK(isinf(loaded.best_eval_loss) && loaded.best_eval_loss > 0, "+inf best_eval_loss");
}

/* Middle ranges through kiln_ckpt_load: rows crossed in 2-D, a dim-0 boundary crossed in 3-D. */
static void test_range_load(const char *dir)
{
    char path[PATH_MAX];
    float got[NW];
    path_in(path, dir, "step-00000003.h5");
    fill(3);
    kiln_ckpt_tensor t[2] = {{W_NAME, got, 2, {10, 6}, 9, 25},
                             {M_NAME, got + 25, 3, {2, 3, 4}, 5, 13}};
    CHECK_OK(kiln_ckpt_load(path, NULL, t, 2));
    CHECK(!memcmp(got, w + 9, 25 * sizeof(float)), "2-D range [9, 34)");
    CHECK(!memcmp(got + 25, m + 5, 13 * sizeof(float)), "3-D range [5, 18)");
}

/* One tensor given as two descriptors covering its halves: written as ranges into one
 * dataset whose crc32 is combined from the halves' (h5py checks it against zlib later). */
static void test_range_save(const char *dir)
{
    fill(7);
    set_meta(7);
    kiln_ckpt_tensor t[3] = {{W_NAME, w + 25, 2, {10, 6}, 25, 35},
                             {B_NAME, b, 1, {NB}, 0, NB},
                             {W_NAME, w, 2, {10, 6}, 0, 25}};
    CHECK_OK(kiln_ckpt_save(NULL, dir, &meta, t, 3, 0));
    float w2[NW];
    kiln_ckpt_tensor back = {W_NAME, w2, 2, {10, 6}, 0, NW};
    char path[PATH_MAX];
    path_in(path, dir, "step-00000007.h5");
    CHECK_OK(kiln_ckpt_load(path, NULL, &back, 1));
    CHECK(!memcmp(w, w2, sizeof w), "tensor saved in two ranges");

    t[0].start = 24;
    t[0].count = 36;
    CHECK_FAILS(kiln_ckpt_save(NULL, dir, &meta, t, 3, 0), KILN_ERR_ARG, "overlap at element 25");
    t[0].start = 26;
    t[0].count = 34;
    CHECK_FAILS(kiln_ckpt_save(NULL, dir, &meta, t, 3, 0), KILN_ERR_ARG, "skip element 25");
    CHECK(!exists(dir, "step-00000007.h5.tmp"), "failed save left its tmp");
    CHECK_OK(kiln_ckpt_verify(path)); /* the failed saves left the earlier step 7 intact */
}

static void test_truncated(const char *dir)
{
    char p2[PATH_MAX], sidecar[PATH_MAX];
    for (int s = 1; s <= 2; s++) CHECK_OK(save_step(dir, s, 0));
    path_in(p2, dir, "step-00000002.h5");
    path_in(sidecar, dir, "step-00000002.h5.crc32");
    CHECK(truncate(p2, file_size(p2) / 2) == 0, "truncate");
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "step-00000002.h5' is ");
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "truncated");
    unlink(sidecar);
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT,
                "step-00000002.h5' cannot be opened as HDF5");
    float w2[NW];
    kiln_ckpt_tensor t = {W_NAME, w2, 2, {10, 6}, 0, NW};
    CHECK_FAILS(kiln_ckpt_load(p2, &loaded, &t, 1), KILN_ERR_CKPT, "step-00000002.h5");
    check_latest(dir, "/step-00000001.h5");
}

static void test_flipped_file(const char *dir)
{
    char p2[PATH_MAX];
    for (int s = 1; s <= 2; s++) CHECK_OK(save_step(dir, s, 0));
    path_in(p2, dir, "step-00000002.h5");
    flip_byte(p2, file_size(p2) / 2);
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "step-00000002.h5' has crc32");
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "sidecar");
    check_latest(dir, "/step-00000001.h5");
}

static char *inspect_output(const char *path, int show_config, kiln_status *st)
{
    static char out[65536];
    char cap[PATH_MAX];
    path_in(cap, root, "inspect.txt");
    fflush(stdout);
    int saved = dup(1), fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    *st = kiln_ckpt_inspect(path, show_config);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    read_text(cap, out, sizeof out);
    return out;
}

static void test_flipped_data(const char *dir)
{
    char p2[PATH_MAX], sidecar[PATH_MAX];
    for (int s = 1; s <= 2; s++) CHECK_OK(save_step(dir, s, 0));
    path_in(p2, dir, "step-00000002.h5");
    path_in(sidecar, dir, "step-00000002.h5.crc32");
    hid_t f = H5Fopen(p2, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, M_NAME, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    CHECK(off != HADDR_UNDEF && off > 0, "data offset of " M_NAME);
    unlink(sidecar);
    flip_byte(p2, (long)off + 4 * 13 + 2);
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "dataset '" M_NAME "' has crc32");
    CHECK_FAILS(kiln_ckpt_verify(p2), KILN_ERR_CKPT, "step-00000002.h5");
    float m2[NM];
    kiln_ckpt_tensor t = {M_NAME, m2, 3, {2, 3, 4}, 0, NM};
    CHECK_FAILS(kiln_ckpt_load(p2, &loaded, &t, 1), KILN_ERR_CKPT, M_NAME);
    check_latest(dir, "/step-00000001.h5");

    kiln_status st;
    const char *out = inspect_output(p2, 0, &st);
    CHECK(st == KILN_ERR_CKPT, "inspect of a damaged file returned %s", kiln_status_name(st));
    CHECK(strstr(out, "DAMAGED: checkpoint") && strstr(out, "1 damaged"), "inspect:\n%s", out);
    kiln_error_clear();
}

/* The attributes carry their own checksum: a step edited from 4 to 7 (or a config edited),
 * with the sidecar gone, fails verification and loading instead of resuming at step 7. */
static void test_edited_attributes(const char *dir)
{
    char path[PATH_MAX], sidecar[PATH_MAX];
    CHECK_OK(save_step(dir, 4, 0));
    path_in(path, dir, "step-00000004.h5");
    path_in(sidecar, dir, "step-00000004.h5.crc32");
    CHECK_OK(kiln_ckpt_verify(path));
    unlink(sidecar);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK_OK(kiln_h5_write_attr_i64(f, "step", 7));
    H5Fclose(f);
    CHECK_FAILS(kiln_ckpt_verify(path), KILN_ERR_CKPT, "were edited or damaged");
    CHECK_FAILS(kiln_ckpt_verify(path), KILN_ERR_CKPT, "step 7");
    CHECK_FAILS(kiln_ckpt_load(path, &loaded, NULL, 0), KILN_ERR_CKPT, "meta_crc32");
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK_OK(kiln_h5_write_attr_i64(f, "step", 4));
    H5Fclose(f);
    CHECK_OK(kiln_ckpt_verify(path)); /* put back: whole again */
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK_OK(kiln_h5_write_attr_str(f, "config", "train:\n  seed: 99\n"));
    H5Fclose(f);
    CHECK_FAILS(kiln_ckpt_verify(path), KILN_ERR_CKPT, "were edited or damaged");
}

static void test_shape_mismatch(const char *dir)
{
    char path[PATH_MAX];
    float buf[NW];
    path_in(path, dir, "step-00000003.h5");
    kiln_ckpt_tensor t = {W_NAME, buf, 2, {10, 5}, 0, 50};
    CHECK_FAILS(kiln_ckpt_load(path, NULL, &t, 1), KILN_ERR_CKPT,
                "dataset '" W_NAME "' in '");
    CHECK_FAILS(kiln_ckpt_load(path, NULL, &t, 1), KILN_ERR_CKPT,
                "expected float32 [10,5], found float32 [10,6]");
    kiln_ckpt_tensor missing = {"model/nope", buf, 1, {4}, 0, 4};
    CHECK_FAILS(kiln_ckpt_load(path, NULL, &missing, 1), KILN_ERR_CKPT, "no dataset 'model/nope'");
}

/* A save killed half-way (function switch, then the env switch in a child process) leaves
 * the previous checkpoint and `latest`; the next successful save removes the tmp files. */
static void test_fault(const char *dir)
{
    char latest[PATH_MAX], buf[128];
    path_in(latest, dir, "latest");
    CHECK_OK(save_step(dir, 1, 0));
    kiln_ckpt_fault_half_write(1);
    CHECK_FAILS(save_step(dir, 2, 0), KILN_ERR_INTERRUPTED, "stopped after 1 of 3 datasets");
    CHECK(exists(dir, "step-00000002.h5.tmp") && !exists(dir, "step-00000002.h5"),
          "function fault: tmp without rename");

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("KILN_FAULT_CKPT_HALF", "1", 1);
        _exit(save_step(dir, 3, 0) == KILN_OK ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 99, "env fault: child status %d", status);
    CHECK(exists(dir, "step-00000003.h5.tmp") && !exists(dir, "step-00000003.h5"),
          "env fault: tmp without rename");
    read_text(latest, buf, sizeof buf);
    CHECK(!strcmp(buf, "step-00000001.h5\n"), "latest after faults: '%s'", buf);
    check_latest(dir, "/step-00000001.h5");

    CHECK_OK(save_step(dir, 4, 0));
    CHECK(count_files_with_suffix(dir, ".tmp") == 0, "tmp files survived the next save");
    check_latest(dir, "/step-00000004.h5");
}

static void test_inspect(const char *dir)
{
    char path[PATH_MAX], norm[64];
    kiln_status st;
    path_in(path, dir, "step-00000003.h5");
    fill(3);
    double ss = 0;
    for (int i = 0; i < NW; i++) ss += (double)w[i] * w[i];
    snprintf(norm, sizeof norm, "%.6e", sqrt(ss));
    const char *out = inspect_output(path, 1, &st);
    CHECK(st == KILN_OK, "inspect returned %s: %s", kiln_status_name(st), kiln_error_message());
    CHECK(strstr(out, "step 3 ") && strstr(out, "n_layer: 3") && strstr(out, W_NAME) &&
          strstr(out, "[10,6]") && strstr(out, "[2,3,4]") && strstr(out, "float32") &&
          strstr(out, norm) && strstr(out, "3 datasets, 0 damaged"),
          "inspect output (want norm %s):\n%s", norm, out);
}

static const char *h5py_script(char *buf, size_t len)
{
    const char *src = getenv("KILN_SRC");
    if (src && *src) {
        snprintf(buf, len, "%s/tests/e2e/ckpt_h5py.py", src);
    } else {
        snprintf(buf, len, "%s", __FILE__);
        char *slash = strrchr(buf, '/');
        snprintf(slash ? slash + 1 : buf, len - (size_t)(slash ? slash + 1 - buf : 0),
                 "../e2e/ckpt_h5py.py");
    }
    return buf;
}

static int run_h5py(const char *ckpt, const char *specs)
{
    char script[PATH_MAX], cmd[3 * PATH_MAX];
    const char *py = getenv("KILN_PYTHON");
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' %s", py && *py ? py : "/usr/bin/python3",
             h5py_script(script, sizeof script), ckpt, specs);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_h5py(const char *keep_dir, const char *range_dir)
{
    char path[PATH_MAX];
    path_in(path, keep_dir, "step-00000003.h5");
    const char *ok = W_NAME "=10,6 " B_NAME "=6 " M_NAME "=2,3,4";
    CHECK(run_h5py(path, ok) == 0, "h5py check of %s", path);
    CHECK(run_h5py(path, W_NAME "=6,10") == 1, "h5py check must fail on a wrong shape");
    path_in(path, range_dir, "step-00000007.h5");
    CHECK(run_h5py(path, W_NAME "=10,6 " B_NAME "=6") == 0, "h5py check of a range save");
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

int main(void)
{
    const char *base = getenv("KILN_TEST_TMP");
    char dir[PATH_MAX];
    snprintf(root, sizeof root, "%s/test_ckpt-XXXXXX", base && *base ? base : "/tmp");
    CHECK_OK(kiln_mkdir_p(base && *base ? base : "/tmp"));
    if (!mkdtemp(root)) {
        fprintf(stderr, "cannot create %s\n", root);
        return 1;
    }
    test_h5util();

    char keep[PATH_MAX], ranges[PATH_MAX];
    make_dir(keep, "keep");
    test_keep_and_latest(keep);
    test_round_trip(keep);
    test_range_load(keep);
    make_dir(ranges, "ranges");
    test_range_save(ranges);
    make_dir(dir, "trunc");
    test_truncated(dir);
    make_dir(dir, "flip");
    test_flipped_file(dir);
    make_dir(dir, "flipdata");
    test_flipped_data(dir);
    make_dir(dir, "edited");
    test_edited_attributes(dir);
    test_shape_mismatch(keep);
    make_dir(dir, "fault");
    test_fault(dir);
    test_inspect(keep);
    test_h5py(keep, ranges);

    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END();
}
