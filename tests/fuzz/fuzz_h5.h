/* Structure-aware fuzzing of kiln's HDF5 readers: the fuzz bytes are decoded into edits of a
 * valid file (a checkpoint, a dataset, a partial output), each replacing, adding or deleting
 * an attribute or a dataset chosen from the names kiln's readers look for, with a fuzz-chosen
 * type, shape and contents. What kiln makes of the edited file is then kiln's to get right:
 * bytes HDF5 itself cannot parse are HDF5's own fuzzing's business, and kiln checks a
 * checkpoint's sidecar crc32 before HDF5 reads it. */
#ifndef KILN_FUZZ_H5_H
#define KILN_FUZZ_H5_H
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuzz_bytes {
    const uint8_t *p;
    size_t n;
} fuzz_bytes;

static uint8_t fz_u8(fuzz_bytes *b)
{
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

static uint64_t fz_u64(fuzz_bytes *b, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | fz_u8(b);
    return v;
}

/* Names kiln's readers look for, and some they do not. */
static const char *const fz_names[] = {
    "format_version", "step", "samples_seen", "tokens_seen", "seed", "data_epoch", "data_pos",
    "best_eval_loss", "config", "kiln_version", "created", "meta_crc32", "crc32", "num_classes",
    "vocab_size", "complete", "chunk_rows", "input_rows", "input_width", "model", "settings",
    "outputs", "model/fc0.weight", "model/fc0.bias", "model/fc1.weight", "model/fc1.bias",
    "optim/m/fc0.weight", "model/wte", "train/x", "train/y", "test/x", "test/y",
    "train/tokens", "val/tokens", "x", "tokens", "probs", "topk_index", "topk_prob",
    "progress/done", "progress/crc32", "embedding", "loss", "other",
    /* index files */
    "format", "kind", "metric", "dim", "rows", "nlist", "nprobe", "ef", "input_crc32", "vectors", "ids",
    "ivf/centroids", "ivf/offsets", "pq/codebooks", "pq/codes", "hnsw/levels", "hnsw/offsets",
    "hnsw/neighbors", "attributes/label"};
enum { FZ_N_NAMES = sizeof fz_names / sizeof fz_names[0] };

static hid_t fz_type(uint8_t t)
{
    static const hid_t *const types[] = {&H5T_NATIVE_UINT8_g, &H5T_NATIVE_INT32_g,
                                         &H5T_NATIVE_INT64_g, &H5T_NATIVE_UINT64_g,
                                         &H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g,
                                         &H5T_NATIVE_INT8_g, &H5T_NATIVE_UINT32_g};
    return *types[t % 8];
}

/* A space of 0..3 dimensions, each 0..9 or (rarely) up to 300. */
static hid_t fz_space(fuzz_bytes *b, hsize_t *numel)
{
    int nd = fz_u8(b) % 4;
    hsize_t dims[3];
    *numel = 1;
    for (int d = 0; d < nd; d++) {
        uint8_t v = fz_u8(b);
        dims[d] = v < 240 ? v % 10 : (hsize_t)(v - 239) * 5;
        *numel *= dims[d];
    }
    return nd ? H5Screate_simple(nd, dims, NULL) : H5Screate(H5S_SCALAR);
}

/* Fills count elements of size elem with fuzz bytes (zero once they run out). */
static void *fz_data(fuzz_bytes *b, hsize_t count, size_t elem)
{
    size_t bytes = (size_t)count * elem;
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    for (size_t i = 0; buf && i < bytes && b->n; i++) buf[i] = fz_u8(b);
    return buf;
}

static void fz_delete(hid_t f, const char *name)
{
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
}

static void fz_string_attr(hid_t obj, const char *name, fuzz_bytes *b)
{
    size_t len = fz_u8(b);
    char *s = fz_data(b, len + 1, 1);
    if (!s) return;
    s[len] = '\0';
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, t, s), H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(s);
}

static void fz_number_attr(hid_t obj, const char *name, fuzz_bytes *b)
{
    hid_t t = fz_type(fz_u8(b));
    hsize_t numel;
    hid_t sp = fz_space(b, &numel);
    void *v = fz_data(b, numel, H5Tget_size(t));
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = v ? H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (a >= 0) H5Awrite(a, t, v), H5Aclose(a);
    H5Sclose(sp);
    free(v);
}

static void fz_dataset(hid_t f, const char *name, fuzz_bytes *b)
{
    hid_t t = fz_type(fz_u8(b));
    hsize_t numel;
    hid_t sp = fz_space(b, &numel);
    void *v = fz_data(b, numel, H5Tget_size(t));
    fz_delete(f, name);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = v ? H5Dcreate2(f, name, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (d >= 0) {
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        if (fz_u8(b) & 1) fz_number_attr(d, "crc32", b);
        H5Dclose(d);
    }
    H5Pclose(lcpl);
    H5Sclose(sp);
    free(v);
}

/* Applies the edits the fuzz bytes describe to the file at path (opened read-write). */
static void fuzz_h5_edit(const char *path, const uint8_t *data, size_t size)
{
    fuzz_bytes b = {data, size};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return;
    for (int edits = 0; b.n && edits < 8; edits++) {
        uint8_t op = fz_u8(&b);
        const char *name = fz_names[fz_u8(&b) % FZ_N_NAMES];
        switch (op % 5) {
        case 0: fz_delete(f, name); break;
        case 1: fz_string_attr(f, name, &b); break;
        case 2: fz_number_attr(f, name, &b); break;
        case 3:
        case 4: fz_dataset(f, name, &b); break;
        }
    }
    H5Fclose(f);
}

/* A scratch path for this process, and a copy of template into it. */
static void fuzz_copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
}

#endif
