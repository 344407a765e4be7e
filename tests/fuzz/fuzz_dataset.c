/* Fuzz target: a dataset file (a Fashion-MNIST-like classification set and a text set) edited
 * as the input says (fuzz_h5.h), then opened as every kind and split kiln reads, and a batch
 * gathered from it. */
#include <unistd.h>
#include "fuzz_h5.h"
#include "kiln/data.h"

static char tmpl[256], work[256];

static void write_template(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t x[8 * 12], y[8], tokens[64];
    for (int i = 0; i < 8 * 12; i++) x[i] = (uint8_t)(i * 37);
    for (int i = 0; i < 8; i++) y[i] = (uint8_t)(i % 3);
    for (int i = 0; i < 64; i++) tokens[i] = (uint8_t)(i * 11);
    hsize_t dx[2] = {8, 12}, dy[1] = {8}, dt[1] = {64};
    const char *xs[2] = {"train/x", "test/x"}, *ys[2] = {"train/y", "test/y"};
    const char *ts[2] = {"train/tokens", "val/tokens"};
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    for (int s = 0; s < 2; s++) {
        hid_t sx = H5Screate_simple(2, dx, NULL), sy = H5Screate_simple(1, dy, NULL);
        hid_t st = H5Screate_simple(1, dt, NULL);
        hid_t d = H5Dcreate2(f, xs[s], H5T_STD_U8LE, sx, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x), H5Dclose(d);
        d = H5Dcreate2(f, ys[s], H5T_STD_U8LE, sy, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, y), H5Dclose(d);
        d = H5Dcreate2(f, ts[s], H5T_STD_U8LE, st, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens), H5Dclose(d);
        H5Sclose(sx), H5Sclose(sy), H5Sclose(st);
    }
    H5Pclose(lcpl);
    H5Fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(tmpl, sizeof tmpl, "/tmp/fuzz_dataset.%d.h5", (int)getpid());
    snprintf(work, sizeof work, "/tmp/fuzz_dataset.%d.work.h5", (int)getpid());
    write_template(tmpl);
    return 0;
}

static void read_all(const char *split, kiln_data_kind kind, int seq_len)
{
    kiln_dataset *ds = NULL;
    if (kiln_dataset_open(work, split, kind, seq_len, &ds) != KILN_OK) return;
    uint64_t rows[4] = {0, 1, kiln_dataset_rows(ds) - 1, kiln_dataset_rows(ds) / 2};
    int w = kiln_dataset_width(ds), n = kiln_dataset_rows(ds) < 4 ? (int)kiln_dataset_rows(ds) : 4;
    float *x = calloc((size_t)4 * (size_t)(w > 0 ? w : 1), sizeof *x);
    int32_t *y = calloc(4, sizeof *y), *tok = calloc((size_t)4 * (size_t)(w > 0 ? w : 1), sizeof *tok),
            *tgt = calloc((size_t)4 * (size_t)(w > 0 ? w : 1), sizeof *tgt);
    kiln_batch b = {0, x, y, tok, tgt};
    if (x && y && tok && tgt) (void)kiln_dataset_gather(ds, rows, n, &b);
    (void)kiln_dataset_num_classes(ds);
    free(x), free(y), free(tok), free(tgt);
    kiln_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_copy(tmpl, work);
    fuzz_h5_edit(work, data, size);
    read_all("train", KILN_DATA_CLASSIFY, 0);
    read_all("test", KILN_DATA_CLASSIFY, 0);
    read_all("train", KILN_DATA_LM, 5);
    read_all("val", KILN_DATA_LM, 7);
    kiln_error_clear();
    return 0;
}
