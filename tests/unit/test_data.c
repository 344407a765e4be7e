/* Datasets, importers and the loader: importers are checked byte for byte against the inputs
 * through a plain HDF5 reader written here; dataset_open against hand-made bad files; the
 * loader against kiln_rng_permutation and against itself (ranks, seek, eval coverage). */
#define _XOPEN_SOURCE 700 /* nftw, to remove the temp dir */
#include "check.h"
#include "kiln/data.h"
#include "kiln/rng.h"
#include "kiln/runtime.h"
#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define PIXELS 784

static char tmp_dir[4096];

static void make_tmp_dir(void)
{
    const char *base = getenv("KILN_TEST_TMP");
    if (!base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_data.XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        perror(tmp_dir);
        exit(1);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tmp_dir(void) { nftw(tmp_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

/* A path inside tmp_dir; stays valid until free_tmp_paths at the end of the run. */
static char *tmp_paths[256];
static int n_tmp_paths;

static const char *tmp_path(const char *name)
{
    if (n_tmp_paths == 256) {
        fprintf(stderr, "test_data: too many temp paths\n");
        exit(1);
    }
    char *p = malloc(strlen(tmp_dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmp_dir, name);
    return tmp_paths[n_tmp_paths++] = p;
}

static void free_tmp_paths(void)
{
    while (n_tmp_paths) free(tmp_paths[--n_tmp_paths]);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* The status must be `want` and the message must contain every needle. */
static void check_fails_with(kiln_status st, kiln_status want, const char *call,
                             const char *const *needles)
{
    CHECK(st == want, "%s returned %s, expected %s (%s)", call, kiln_status_name(st),
          kiln_status_name(want), kiln_error_message());
    for (int i = 0; needles[i]; i++)
        CHECK(strstr(kiln_error_message(), needles[i]) != NULL, "message of %s lacks \"%s\": %s",
              call, needles[i], kiln_error_message());
    kiln_error_clear();
}
#define FAILS_WITH(call, want, ...)                                                        \
    do {                                                                                   \
        kiln_error_clear();                                                                \
        check_fails_with((call), (want), #call, (const char *const[]){__VA_ARGS__, NULL}); \
    } while (0)

/* ---- idx files ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void write_idx(const char *name, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const uint8_t *data, size_t n)
{
    uint8_t head[16];
    put_be32(head, magic);
    for (int i = 0; i < ndim; i++) put_be32(head + 4 + 4 * i, dims[i]);
    size_t head_len = 4 + 4 * (size_t)ndim;
    const char *path = tmp_path(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, head, (unsigned)head_len);
        if (n) gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(head, 1, head_len, f);
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static uint8_t fake_pixel(int split, uint32_t i, int j)
{
    return (uint8_t)((uint32_t)split * 101 + i * 7 + (uint32_t)j * 3);
}

static uint8_t fake_label(int split, uint32_t i)
{
    return (uint8_t)((i * 3 + (uint32_t)split) % 10);
}

/* A tiny idx set in tmp_dir (train: 5 images, test: 3), mixing plain and .gz files.
 * image_magic / n_train_labels / bad_label let a test break one thing. */
static void write_fake_idx(uint32_t image_magic, uint32_t n_train_labels, int bad_label)
{
    const char *prefix[2] = {"train", "t10k"};
    uint32_t count[2] = {5, 3};
    for (int s = 0; s < 2; s++) {
        uint8_t *img = malloc(count[s] * PIXELS), lab[16];
        for (uint32_t i = 0; i < count[s]; i++)
            for (int j = 0; j < PIXELS; j++) img[i * PIXELS + j] = fake_pixel(s, i, j);
        uint32_t n_lab = s == 0 ? n_train_labels : count[s];
        for (uint32_t i = 0; i < n_lab; i++) lab[i] = fake_label(s, i);
        if (bad_label && s == 1) lab[2] = 10;
        char name[64];
        uint32_t idims[3] = {count[s], 28, 28}, ldims[1] = {n_lab};
        snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix[s], s == 0 ? "" : ".gz");
        write_idx(name, s == 1, image_magic, idims, 3, img, count[s] * PIXELS);
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix[s], s == 0 ? ".gz" : "");
        write_idx(name, s == 0, 0x801, ldims, 1, lab, n_lab);
        free(img);
    }
}

static void remove_fake_idx(void)
{
    const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) unlink(tmp_path(names[i]));
}

/* ---- a plain HDF5 reader and writer, independent of the code under test ---- */

/* Reads dataset `name` as uint8; returns its element count and dims (up to 4). */
static uint8_t *h5_read_u8(const char *path, const char *name, int *ndim, hsize_t dims[4])
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    *ndim = H5Sget_simple_extent_dims(s, dims, NULL);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    uint8_t *buf = malloc((size_t)n + 1);
    H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

static int h5_read_int_attr(const char *path, const char *name)
{
    int v = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

/* Writes a dataset of file type ftype from memory of type mtype, creating parent groups. */
static void h5_put(hid_t f, const char *name, hid_t ftype, hid_t mtype, int ndim,
                   const hsize_t *dims, const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
}

/* tmp_path(name) holding /train/x (the given type and shape) and /train/y, 4 uint8 labels. */
static const char *put_train(const char *name, hid_t ftype, hid_t mtype, int ndim, const hsize_t *dims,
                             const void *x, const uint8_t *y)
{
    const char *p = tmp_path(name);
    hsize_t n[1] = {4};
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_put(f, "/train/x", ftype, mtype, ndim, dims, x);
    h5_put(f, "/train/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, n, y);
    H5Fclose(f);
    return p;
}

static void h5_put_int_attr(hid_t f, const char *name, int v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Sclose(s);
}

/* A classification file, d >= 3: x[i][0..1] = the row id i (low byte, high byte),
 * x[i][j] = i*j + 5 (mod 256) after that; y[i] = i % 10. */
static const char *write_classify(const char *name, int n, int d)
{
    const char *path = tmp_path(name);
    uint8_t *x = malloc((size_t)n * d), *y = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        x[i * d] = (uint8_t)i;
        x[i * d + 1] = (uint8_t)(i >> 8);
        for (int j = 2; j < d; j++) x[i * d + j] = (uint8_t)(i * j + 5);
        y[i] = (uint8_t)(i % 10);
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)n, (hsize_t)d}, yd[1] = {(hsize_t)n};
    h5_put(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, xd, x);
    h5_put(f, "/train/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, yd, y);
    H5Fclose(f);
    free(x);
    free(y);
    return path;
}

static uint8_t lm_token(int i) { return (uint8_t)(i * 37 + 11); }

static const char *write_lm(const char *name, int n)
{
    const char *path = tmp_path(name);
    uint8_t *t = malloc((size_t)n);
    for (int i = 0; i < n; i++) t[i] = lm_token(i);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {(hsize_t)n};
    h5_put(f, "/train/tokens", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dims, t);
    H5Fclose(f);
    free(t);
    return path;
}

/* ---- importers ---- */

static void check_split(const char *out, const char *group, int split, uint32_t count)
{
    char name[32];
    int ndim;
    hsize_t dims[4];
    snprintf(name, sizeof name, "/%s/x", group);
    uint8_t *x = h5_read_u8(out, name, &ndim, dims);
    CHECK(ndim == 2 && dims[0] == count && dims[1] == PIXELS, "%s shape", name);
    int bad = 0;
    for (uint32_t i = 0; i < count; i++)
        for (int j = 0; j < PIXELS; j++) bad += x[i * PIXELS + j] != fake_pixel(split, i, j);
    CHECK(bad == 0, "%s: %d pixels differ from the idx input", name, bad);
    snprintf(name, sizeof name, "/%s/y", group);
    uint8_t *y = h5_read_u8(out, name, &ndim, dims);
    CHECK(ndim == 1 && dims[0] == count, "%s shape", name);
    bad = 0;
    for (uint32_t i = 0; i < count; i++) bad += y[i] != fake_label(split, i);
    CHECK(bad == 0, "%s: %d labels differ from the idx input", name, bad);
    free(x);
    free(y);
}

static void test_import_fake(void)
{
    write_fake_idx(0x803, 5, 0);
    const char *out = tmp_path("fake.h5");
    CHECK_OK(kiln_import_fashion_mnist(tmp_dir, out));
    CHECK(!file_exists(tmp_path("fake.h5.tmp")), "tmp file left behind");
    check_split(out, "train", 0, 5);
    check_split(out, "test", 1, 3);
    CHECK(h5_read_int_attr(out, "num_classes") == 10, "num_classes attribute");

    kiln_dataset *ds = NULL;
    CHECK_OK(kiln_dataset_open(out, "test", KILN_DATA_CLASSIFY, 0, &ds));
    if (ds) {
        CHECK(kiln_dataset_rows(ds) == 3 && kiln_dataset_width(ds) == PIXELS, "test split dims");
        CHECK(kiln_dataset_num_classes(ds) == 10, "num_classes from attribute");
    }
    kiln_dataset_free(ds);

    /* a failure after the tmp file is written (rename onto a directory) removes the tmp */
    const char *dir_out = tmp_path("dir.h5");
    mkdir(dir_out, 0755);
    FAILS_WITH(kiln_import_fashion_mnist(tmp_dir, dir_out), KILN_ERR_IO, "cannot rename",
               "dir.h5'");
    CHECK(!file_exists(tmp_path("dir.h5.tmp")), "tmp file left after a failed rename");
    remove_fake_idx();
}

static void test_import_bad(void)
{
    const char *out = tmp_path("bad.h5");
    write_fake_idx(0x802, 5, 0);
    FAILS_WITH(kiln_import_fashion_mnist(tmp_dir, out), KILN_ERR_DATA,
               "train-images-idx3-ubyte'", "0x00000803", "0x00000802");
    CHECK(!file_exists(out) && !file_exists(tmp_path("bad.h5.tmp")), "output after bad magic");

    write_fake_idx(0x803, 4, 0);
    FAILS_WITH(kiln_import_fashion_mnist(tmp_dir, out), KILN_ERR_DATA,
               "train-labels-idx1-ubyte.gz' has 4 labels", "has 5 images");
    CHECK(!file_exists(out) && !file_exists(tmp_path("bad.h5.tmp")), "output after count mismatch");

    write_fake_idx(0x803, 5, 1);
    FAILS_WITH(kiln_import_fashion_mnist(tmp_dir, out), KILN_ERR_DATA,
               "t10k-labels-idx1-ubyte'", "index 2", "expected < 10, found 10");
    CHECK(!file_exists(out), "output after a bad label");
    remove_fake_idx();

    FAILS_WITH(kiln_import_fashion_mnist(tmp_dir, out), KILN_ERR_IO,
               "train-images-idx3-ubyte.gz' exists");
    CHECK(!file_exists(out), "output from an empty dir");
}

static void test_import_real(void)
{
    if (!file_exists(FMNIST_DIR "/train-images-idx3-ubyte.gz")) {
        printf("skip: %s not installed (apt-get install dataset-fashion-mnist)\n", FMNIST_DIR);
        return;
    }
    const char *out = tmp_path("fmnist.h5");
    CHECK_OK(kiln_import_fashion_mnist(FMNIST_DIR, out));
    kiln_dataset *train = NULL, *test = NULL;
    CHECK_OK(kiln_dataset_open(out, "train", KILN_DATA_CLASSIFY, 0, &train));
    CHECK_OK(kiln_dataset_open(out, "test", KILN_DATA_CLASSIFY, 0, &test));
    if (train && test) {
        CHECK(kiln_dataset_rows(train) == 60000 && kiln_dataset_rows(test) == 10000,
              "rows %llu / %llu", (unsigned long long)kiln_dataset_rows(train),
              (unsigned long long)kiln_dataset_rows(test));
        CHECK(kiln_dataset_width(train) == PIXELS, "width");
    }
    int ndim;
    hsize_t dims[4];
    uint8_t *y = h5_read_u8(out, "/train/y", &ndim, dims);
    int counts[10] = {0};
    for (hsize_t i = 0; i < dims[0]; i++) counts[y[i] < 10 ? y[i] : 0]++;
    CHECK(counts[0] == 6000 && counts[3] == 6000 && counts[9] == 6000, "class counts %d %d %d",
          counts[0], counts[3], counts[9]);
    CHECK(y[0] == 9 && y[1] == 0 && y[3] == 3, "first train labels: %d %d %d, expected 9 0 3",
          y[0], y[1], y[3]);
    free(y);
    kiln_dataset_free(train);
    kiln_dataset_free(test);
    unlink(out);
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_import_text(void)
{
    uint8_t a[1000], b[37], all[1037];
    for (int i = 0; i < 1000; i++) a[i] = (uint8_t)(i * 13);
    for (int i = 0; i < 37; i++) b[i] = (uint8_t)(250 + i);
    memcpy(all, a, 1000);
    memcpy(all + 1000, b, 37);
    const char *files[2] = {tmp_path("a.txt"), tmp_path("b.txt")};
    write_bytes(files[0], a, sizeof a);
    write_bytes(files[1], b, sizeof b);
    const char *out = tmp_path("text.h5");
    CHECK_OK(kiln_import_text(files, 2, 0.1, out));

    int ndim;
    hsize_t td[4], vd[4];
    uint8_t *train = h5_read_u8(out, "/train/tokens", &ndim, td);
    uint8_t *val = h5_read_u8(out, "/val/tokens", &ndim, vd);
    CHECK(td[0] == 934 && vd[0] == 103, "split sizes %llu + %llu, expected 934 + 103",
          (unsigned long long)td[0], (unsigned long long)vd[0]);
    CHECK(td[0] == 934 && memcmp(train, all, 934) == 0, "train bytes");
    CHECK(vd[0] == 103 && memcmp(val, all + 934, 103) == 0, "val bytes");
    CHECK(h5_read_int_attr(out, "vocab_size") == 256, "vocab_size");
    free(train);
    free(val);

    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t at = H5Aopen(f, "sources", H5P_DEFAULT);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    char *names[2] = {NULL, NULL};
    H5Aread(at, str, names);
    CHECK(names[0] && names[1] && !strcmp(names[0], files[0]) && !strcmp(names[1], files[1]),
          "sources attribute: %s, %s", names[0], names[1]);
    H5free_memory(names[0]);
    H5free_memory(names[1]);
    H5Tclose(str);
    H5Aclose(at);
    H5Fclose(f);

    const char *dir_out = tmp_path("textdir.h5");
    mkdir(dir_out, 0755);
    FAILS_WITH(kiln_import_text(files, 2, 0.1, dir_out), KILN_ERR_IO, "cannot rename");
    CHECK(count_files_with_suffix(tmp_dir, ".tmp") == 0, "tmp file left after a failed rename");

    const char *missing[2] = {files[0], tmp_path("nope.txt")};
    const char *out2 = tmp_path("text2.h5");
    FAILS_WITH(kiln_import_text(missing, 2, 0.1, out2), KILN_ERR_IO, "nope.txt",
               "No such file or directory");
    CHECK(!file_exists(out2) && count_files_with_suffix(tmp_dir, ".tmp") == 0,
          "output after a missing input");
}

/* Several processes importing to one path at once (parallel tests sharing a cached dataset)
 * each write their own temporary file: the survivor is one whole import, never a mix. */
static void test_import_concurrent(void)
{
    enum { BYTES = 4 << 20, WRITERS = 4, ROUNDS = 3 };
    uint8_t *text = malloc(BYTES);
    for (size_t i = 0; i < BYTES; i++) text[i] = (uint8_t)(i * 2654435761u >> 13);
    const char *files[1] = {tmp_path("big.txt")};
    write_bytes(files[0], text, BYTES);
    const char *out = tmp_path("shared.h5");
    for (int round = 0; round < ROUNDS; round++) {
        pid_t kids[WRITERS];
        for (int w = 0; w < WRITERS; w++)
            if ((kids[w] = fork()) == 0) _exit(kiln_import_text(files, 1, 0.1, out) == KILN_OK ? 0 : 1);
        int ok = 1;
        for (int w = 0; w < WRITERS; w++) {
            int status = 0;
            waitpid(kids[w], &status, 0);
            ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        CHECK(ok, "round %d: a concurrent import failed", round);
        int ndim;
        hsize_t td[4];
        uint8_t *train = h5_read_u8(out, "/train/tokens", &ndim, td);
        size_t n_train = BYTES - (size_t)(0.1 * BYTES);
        CHECK(train && td[0] == n_train && memcmp(train, text, n_train) == 0,
              "round %d: the surviving file is not one whole import", round);
        free(train);
        CHECK(count_files_with_suffix(tmp_dir, ".tmp") == 0, "round %d: tmp files left", round);
    }
    free(text);
}

/* ---- dataset_open errors ---- */

static void test_open_errors(void)
{
    kiln_dataset *ds = NULL;
    FAILS_WITH(kiln_dataset_open(tmp_path("absent.h5"), "train", KILN_DATA_CLASSIFY, 0, &ds),
               KILN_ERR_DATA, "dataset file '", "absent.h5': No such file or directory");
    CHECK(ds == NULL, "no dataset on failure");

    float xf[12];
    for (int i = 0; i < 12; i++) xf[i] = 0.5f * (float)i - 1.0f; /* negative and above 1: not pixels */
    uint8_t x8[4 * 28 * 28] = {0}, y8[5] = {0, 1, 2, 3, 4};
    hsize_t d2[2] = {4, 3}, d3[3] = {4, 28, 28}, d1_4[1] = {4}, d1_5[1] = {5};

    const char *p = put_train("float.h5", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, xf, y8);
    hid_t f;
    /* float32 rows (kiln features build) open as they are */
    CHECK_OK(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds));
    CHECK(kiln_dataset_rows(ds) == 4 && kiln_dataset_width(ds) == 3, "float32 rows: %d wide",
          kiln_dataset_width(ds));
    kiln_batch fb = {0};
    float fx[3 * 2];
    int32_t fy[2];
    fb.x = fx, fb.y = fy;
    uint64_t pick[2] = {3, 0};
    CHECK_OK(kiln_dataset_gather(ds, pick, 2, &fb));
    CHECK(fx[0] == xf[9] && fx[2] == xf[11] && fx[3] == xf[0] && fy[0] == 3 && fy[1] == 0,
          "float32 rows gathered as they are, unscaled: %g %g %g", fx[0], fx[2], fx[3]);
    kiln_dataset_free(ds);
    ds = NULL;
    FAILS_WITH(kiln_dataset_open(p, "test", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "no dataset '/test/x' in '", "float.h5' (expected uint8 [N,N])");
    double xd[12] = {0};
    p = put_train("double.h5", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d2, xd, y8);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/train/x'", "double.h5", "expected uint8 [N,N], found float64 [4,3]");
    xf[7] = NAN;
    p = put_train("nan.h5", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, xf, y8);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA, "nan.h5",
               "row 2 holds a NaN");

    p = put_train("rank3.h5", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, d3, x8, y8);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/train/x'", "rank3.h5", "expected uint8 [N,N], found uint8 [4,28,28]");

    p = tmp_path("ylen.h5");
    f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_put(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d2, x8);
    h5_put(f, "/train/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, d1_5, y8);
    H5Fclose(f);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/train/y'", "ylen.h5", "expected [4] (one label per row of /train/x), found [5]");

    int64_t y64[4] = {0, 1, 3, 2};
    p = tmp_path("range.h5");
    f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_put(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d2, x8);
    h5_put(f, "/train/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d1_4, y64);
    h5_put_int_attr(f, "num_classes", 3);
    H5Fclose(f);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/train/y'", "label 3 at row 2", "expected [0, 3)");

    /* train: float labels; test: no rows; the file: num_classes 0 */
    hsize_t d2_0[2] = {0, 3}, d1_0[1] = {0};
    p = tmp_path("misc.h5");
    f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_put(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d2, x8);
    h5_put(f, "/train/y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1_4, xf);
    h5_put(f, "/test/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d2_0, x8);
    h5_put(f, "/test/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, d1_0, y8);
    h5_put(f, "/val/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d2, x8);
    h5_put(f, "/val/y", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, d1_4, y8);
    h5_put_int_attr(f, "num_classes", 0);
    H5Fclose(f);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/train/y'", "misc.h5", "expected integer [N], found float32 [4]");
    FAILS_WITH(kiln_dataset_open(p, "test", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "'/test/x'", "misc.h5", "expected [N,D] with N, D > 0, found [0,3]");
    FAILS_WITH(kiln_dataset_open(p, "val", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "misc.h5", "attribute num_classes", "found 0");

    p = write_lm("short.h5", 8);
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_LM, 8, &ds), KILN_ERR_DATA,
               "'/train/tokens'", "at least seq_len + 1 = 9 tokens", "found 8");
    FAILS_WITH(kiln_dataset_open(p, "train", KILN_DATA_CLASSIFY, 0, &ds), KILN_ERR_DATA,
               "no dataset '/train/x'");
    CHECK(ds == NULL, "no dataset on failure");
}

/* ---- loader ---- */

static uint64_t row_of(const kiln_batch *b, int i, int d)
{
    return (uint64_t)lrintf(b->x[i * d] * 255.0f) +
           256 * (uint64_t)lrintf(b->x[i * d + 1] * 255.0f);
}

/* Checks every value of a classification batch against write_classify's pattern. */
static int batch_values_ok(const kiln_batch *b, int d)
{
    for (int i = 0; i < b->B; i++) {
        uint64_t r = row_of(b, i, d);
        if (b->y[i] != (int32_t)(r % 10)) return 0;
        for (int j = 2; j < d; j++)
            if (b->x[i * d + j] != (float)(uint8_t)(r * (uint64_t)j + 5) / 255.0f) return 0;
    }
    return 1;
}

/* Every loader test runs twice: with the prefetch thread, then preparing on the caller's
 * OpenMP threads (kiln_loader_opts.on_caller), which must give the same batches. */
static int loader_on_caller;

static kiln_loader *make_loader(kiln_dataset *ds, int batch, int shuffle, int drop_last,
                                uint64_t seed, int rank, int world)
{
    kiln_loader_opts o = {.batch = batch, .shuffle = shuffle, .drop_last = drop_last,
                          .seed = seed, .rank = rank, .world = world,
                          .on_caller = loader_on_caller};
    kiln_loader *l = NULL;
    CHECK_OK(kiln_loader_create(ds, &o, &l));
    return l;
}

/* Appends the rows of the next n batches (each of `batch` rows) to rows. */
static void take(kiln_loader *l, int n, int d, uint64_t *rows)
{
    for (int k = 0; k < n; k++) {
        const kiln_batch *b = NULL;
        CHECK_OK(kiln_loader_next(l, &b));
        if (!b) return;
        CHECK(batch_values_ok(b, d), "batch %d values", k);
        for (int i = 0; i < b->B; i++) *rows++ = row_of(b, i, d);
    }
}

static void test_loader_shuffle(kiln_dataset *ds24)
{
    kiln_loader *l = make_loader(ds24, 4, 1, 1, 7, 0, 1);
    kiln_loader *same = make_loader(ds24, 4, 1, 1, 7, 0, 1);
    kiln_loader *other = make_loader(ds24, 4, 1, 1, 8, 0, 1);
    uint64_t got[3][24], again[3][24], seed8[24], perm[24], e, p;
    take(l, 1, 3, got[0]);
    kiln_loader_cursor(l, &e, &p);
    CHECK(e == 0 && p == 4, "cursor after one batch: (%llu, %llu)", (unsigned long long)e,
          (unsigned long long)p);
    take(l, 5, 3, got[0] + 4);
    kiln_loader_cursor(l, &e, &p);
    CHECK(e == 1 && p == 0, "cursor after an epoch: (%llu, %llu)", (unsigned long long)e,
          (unsigned long long)p);
    take(l, 6, 3, got[1]);
    take(l, 6, 3, got[2]);
    for (int ep = 0; ep < 3; ep++) {
        kiln_rng_permutation(perm, 24, 7, (uint64_t)ep);
        CHECK(memcmp(got[ep], perm, sizeof perm) == 0, "epoch %d order != permutation(seed, %d)",
              ep, ep);
        int seen[24] = {0}, once = 1;
        for (int i = 0; i < 24; i++) seen[got[ep][i] % 24]++;
        for (int i = 0; i < 24; i++) once &= seen[i] == 1;
        CHECK(once, "epoch %d visits every row exactly once", ep);
    }
    CHECK(memcmp(got[0], got[1], sizeof got[0]) != 0, "epochs 0 and 1 have the same order");
    take(same, 18, 3, again[0]);
    CHECK(memcmp(got, again, sizeof got) == 0, "same seed, different order");
    take(other, 6, 3, seed8);
    CHECK(memcmp(got[0], seed8, sizeof seed8) != 0, "seeds 7 and 8 give the same order");
    kiln_loader_free(l);
    kiln_loader_free(same);
    kiln_loader_free(other);
}

/* Two ranks of batch 3 together see exactly the global batch of one rank of batch 6. */
static void test_loader_ranks(kiln_dataset *ds24)
{
    kiln_loader *r0 = make_loader(ds24, 3, 1, 1, 11, 0, 2);
    kiln_loader *r1 = make_loader(ds24, 3, 1, 1, 11, 1, 2);
    kiln_loader *one = make_loader(ds24, 6, 1, 1, 11, 0, 1);
    int ok = 1;
    for (int step = 0; step < 10; step++) {
        uint64_t a[3], b[3], g[6];
        take(r0, 1, 3, a);
        take(r1, 1, 3, b);
        take(one, 1, 3, g);
        ok &= memcmp(a, g, sizeof a) == 0 && memcmp(b, g + 3, sizeof b) == 0;
    }
    CHECK(ok, "rank slices do not partition the global batch");
    kiln_loader_free(r0);
    kiln_loader_free(r1);
    kiln_loader_free(one);
}

/* 23 rows, global batch 8, drop_last: 2 batches an epoch and the cursor rolls over. */
static void test_loader_drop_last(kiln_dataset *ds23)
{
    kiln_loader *l = make_loader(ds23, 4, 0, 1, 0, 1, 2);
    uint64_t rows[8], e, p;
    take(l, 2, 3, rows);
    uint64_t want[8] = {4, 5, 6, 7, 12, 13, 14, 15};
    CHECK(memcmp(rows, want, sizeof want) == 0, "rank 1 rows of an in-order epoch");
    kiln_loader_cursor(l, &e, &p);
    CHECK(e == 1 && p == 0, "cursor after 2 of 23 rows/8: (%llu, %llu)", (unsigned long long)e,
          (unsigned long long)p);
    take(l, 1, 3, rows);
    CHECK(rows[0] == 4, "next epoch starts over: row %llu", (unsigned long long)rows[0]);
    /* a cursor saved under a smaller global batch may sit past the last full batch */
    CHECK_OK(kiln_loader_seek(l, 3, 20));
    kiln_loader_cursor(l, &e, &p);
    CHECK(e == 4 && p == 0, "seek past the last full batch: (%llu, %llu)", (unsigned long long)e,
          (unsigned long long)p);
    kiln_loader_free(l);
    kiln_loader *none = NULL;
    kiln_loader_opts big = {.batch = 12, .shuffle = 1, .drop_last = 1, .rank = 0, .world = 2};
    FAILS_WITH(kiln_loader_create(ds23, &big, &none), KILN_ERR_DATA, "global batch of 24",
               "found 23 rows");
}

static void test_loader_seek(kiln_dataset *ds24)
{
    kiln_loader *a = make_loader(ds24, 5, 1, 1, 3, 0, 1); /* 4 batches an epoch, 4 rows dropped */
    uint64_t skip[15], ref[30], fresh[30], back[30], e, p;
    take(a, 3, 3, skip);
    kiln_loader_cursor(a, &e, &p);
    take(a, 6, 3, ref);
    kiln_loader *b = make_loader(ds24, 5, 1, 1, 3, 0, 1);
    CHECK_OK(kiln_loader_seek(b, e, p));
    take(b, 6, 3, fresh);
    CHECK(memcmp(ref, fresh, sizeof ref) == 0, "seek in a new loader reproduces the batches");
    CHECK_OK(kiln_loader_seek(a, e, p));
    take(a, 6, 3, back);
    CHECK(memcmp(ref, back, sizeof ref) == 0, "seek back drops the prefetched batch");
    FAILS_WITH(kiln_loader_seek(a, 0, 25), KILN_ERR_ARG, "found 25");
    kiln_loader_free(a);
    kiln_loader_free(b);
}

/* Eval with 2 ranks of batch 4 over n rows: ranks stay in step, every row comes exactly once
 * and in order (rank 0's rows, then rank 1's, batch after batch), the short last batch is split
 * last0/last1 among the ranks (possibly 0 rows, still a batch), then NULL once, then the next
 * epoch starts over. */
static void check_eval_epoch(kiln_dataset *ds, int n, int last0, int last1)
{
    kiln_loader *l[2] = {make_loader(ds, 4, 0, 0, 0, 0, 2), make_loader(ds, 4, 0, 0, 0, 1, 2)};
    int n_batches = (n + 7) / 8, next_row = 0, in_order = 1, last[2] = {-1, -1};
    for (int step = 0; step < n_batches; step++)
        for (int r = 0; r < 2; r++) {
            const kiln_batch *b = NULL;
            CHECK_OK(kiln_loader_next(l[r], &b));
            CHECK(b != NULL, "n=%d: eval batch %d of rank %d is NULL", n, step, r);
            if (!b) continue;
            for (int i = 0; i < b->B; i++) in_order &= row_of(b, i, 3) == (uint64_t)next_row++;
            last[r] = b->B;
        }
    CHECK(in_order && next_row == n, "n=%d: eval epoch gave %d rows, in order: %d", n, next_row,
          in_order);
    CHECK(last[0] == last0 && last[1] == last1, "n=%d: last batch sizes %d/%d, expected %d/%d",
          n, last[0], last[1], last0, last1);
    uint64_t e, p;
    kiln_loader_cursor(l[1], &e, &p);
    CHECK(e == 0 && p == (uint64_t)n, "n=%d: cursor before the end marker: (%llu, %llu)", n,
          (unsigned long long)e, (unsigned long long)p);
    for (int r = 0; r < 2; r++) {
        const kiln_batch *b = (const kiln_batch *)l[r];
        CHECK_OK(kiln_loader_next(l[r], &b));
        CHECK(b == NULL, "n=%d rank %d: no NULL at the end of the eval epoch", n, r);
        kiln_loader_cursor(l[r], &e, &p);
        CHECK(e == 1 && p == 0, "n=%d rank %d: cursor after the end marker", n, r);
        CHECK_OK(kiln_loader_next(l[r], &b));
        CHECK(b && b->B == 4 && row_of(b, 0, 3) == (uint64_t)(4 * r), "n=%d rank %d: restart", n,
              r);
        kiln_loader_free(l[r]);
    }
}

/* Seeks that land while the thread is preparing the batch after the one just returned: the
 * stale batch must be dropped. Big rows make the preparation long enough to be hit. */
static void test_loader_seek_race(kiln_dataset *big)
{
    enum { BATCH = 256 };
    uint64_t rows = kiln_dataset_rows(big), *perm = malloc(rows * sizeof *perm), got[BATCH];
    int d = kiln_dataset_width(big), bad = 0;
    kiln_loader *l = make_loader(big, BATCH, 1, 1, 5, 0, 1);
    for (int i = 0; i < 200; i++) {
        uint64_t e = (uint64_t)(i % 3), p = (uint64_t)(BATCH * (i % 4));
        take(l, 1, d, got);
        CHECK_OK(kiln_loader_seek(l, e, p));
        take(l, 1, d, got);
        kiln_rng_permutation(perm, rows, 5, e);
        bad += memcmp(got, perm + p, sizeof got) != 0;
    }
    CHECK(bad == 0, "%d of 200 batches after a seek came from the old position", bad);
    kiln_loader_free(l);
    free(perm);
}

/* Batches of 4 windows of 4099 tokens: big enough that a caller-prepared batch is split over
 * the threads, each writing its own rows of tokens and targets (T is not a multiple of
 * lm_token's period of 256, so a row in the wrong place shows). */
static void test_lm_wide_batch(void)
{
    enum { T = 4099, WINDOWS = 9 };
    kiln_dataset *ds = NULL;
    CHECK_OK(kiln_dataset_open(write_lm("lm_wide.h5", T * WINDOWS + 1), "train", KILN_DATA_LM, T,
                               &ds));
    if (!ds) return;
    kiln_loader *l = make_loader(ds, 4, 0, 0, 0, 0, 1);
    int wrong = 0, rows = 0;
    const kiln_batch *b = NULL;
    for (int k = 0; k < 3; k++) { /* batches of 4, 4 and 1 windows */
        CHECK_OK(kiln_loader_next(l, &b));
        if (!b) break;
        for (int i = 0; i < b->B; i++, rows++)
            for (int t = 0; t < T; t++) {
                wrong += b->tokens[i * T + t] != lm_token(rows * T + t);
                wrong += b->targets[i * T + t] != lm_token(rows * T + t + 1);
            }
    }
    CHECK(wrong == 0 && rows == WINDOWS, "wide LM batches: %d wrong tokens, %d windows", wrong,
          rows);
    kiln_loader_free(l);
    kiln_dataset_free(ds);
}

static void test_lm(void)
{
    const char *p = write_lm("lm.h5", 50);
    kiln_dataset *ds = NULL;
    CHECK_OK(kiln_dataset_open(p, "train", KILN_DATA_LM, 8, &ds));
    if (!ds) return;
    CHECK(kiln_dataset_rows(ds) == 6 && kiln_dataset_width(ds) == 8 &&
          kiln_dataset_num_classes(ds) == 256, "LM dims: %llu rows",
          (unsigned long long)kiln_dataset_rows(ds));
    kiln_loader *l = make_loader(ds, 4, 0, 0, 0, 0, 1);
    int ok = 1, rows = 0;
    const kiln_batch *b = NULL;
    for (int k = 0; k < 4; k++) { /* 2 batches, then NULL: more means a bug */
        CHECK_OK(kiln_loader_next(l, &b));
        if (!b) break;
        for (int i = 0; i < b->B; i++, rows++)
            for (int t = 0; t < 8; t++) {
                ok &= b->tokens[i * 8 + t] == lm_token(rows * 8 + t);
                ok &= b->targets[i * 8 + t] == lm_token(rows * 8 + t + 1);
                ok &= t == 7 || b->targets[i * 8 + t] == b->tokens[i * 8 + t + 1];
            }
    }
    CHECK(ok && rows == 6, "LM windows (rows %d): targets are inputs shifted by one", rows);
    kiln_loader_free(l);
    uint64_t bad_row = 6;
    kiln_batch scratch = {0};
    FAILS_WITH(kiln_dataset_gather(ds, &bad_row, 1, &scratch), KILN_ERR_ARG, "row 6 out of range");
    kiln_dataset_free(ds);
    CHECK_OK(kiln_dataset_open(p, "train", KILN_DATA_LM, 49, &ds));
    CHECK(ds && kiln_dataset_rows(ds) == 1, "one window of 50 tokens at seq_len 49");
    kiln_dataset_free(ds);
    test_lm_wide_batch();
}

static kiln_dataset *open_classify(const char *name, int n, int d)
{
    kiln_dataset *ds = NULL;
    CHECK_OK(kiln_dataset_open(write_classify(name, n, d), "train", KILN_DATA_CLASSIFY, 0, &ds));
    return ds;
}

static void test_loader(void)
{
    kiln_dataset *ds24 = open_classify("c24.h5", 24, 3), *ds23 = open_classify("c23.h5", 23, 3);
    kiln_dataset *ds17 = open_classify("c17.h5", 17, 3), *big = open_classify("big.h5", 1024, 784);
    if (ds24 && ds23 && ds17 && big) {
        CHECK(kiln_dataset_num_classes(ds24) == 10, "num_classes != max label + 1 (no attribute)");
        test_loader_shuffle(ds24);
        test_loader_ranks(ds24);
        test_loader_drop_last(ds23);
        test_loader_seek(ds24);
        check_eval_epoch(ds17, 17, 1, 0);
        check_eval_epoch(ds23, 23, 4, 3);
        check_eval_epoch(ds24, 24, 4, 4);
        test_loader_seek_race(big);
    }
    kiln_dataset_free(ds24);
    kiln_dataset_free(ds23);
    kiln_dataset_free(ds17);
    kiln_dataset_free(big);
}

/* Every byte converts to exactly what the division gives (the loaders and kiln infer use it). */
static void test_pixels_to_unit(void)
{
    uint8_t bytes[256 + 3];
    float got[256 + 3];
    for (int i = 0; i < 256 + 3; i++) bytes[i] = (uint8_t)(i % 256);
    kiln_pixels_to_unit(got, bytes, 256 + 3); /* not a multiple of the vector width */
    int wrong = 0;
    for (int i = 0; i < 256 + 3; i++) {
        volatile float want = (float)bytes[i] / 255.0f;
        if (got[i] != want && wrong++ < 5)
            CHECK(0, "pixel %d: %.9g, the division gives %.9g", bytes[i], got[i], want);
    }
    CHECK(wrong == 0, "%d of 259 pixels differ from v / 255", wrong);
}

int main(void)
{
    make_tmp_dir();
    test_pixels_to_unit();
    test_import_fake();
    test_import_bad();
    test_import_real();
    test_import_text();
    test_import_concurrent();
    test_open_errors();
    test_loader();
    test_lm();
    loader_on_caller = 1;
    kiln_threads_set(3); /* an uneven split of the rows */
    test_loader();
    test_lm();
    remove_tmp_dir();
    free_tmp_paths();
    TEST_MAIN_END();
}
