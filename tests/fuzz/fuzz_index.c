/* Fuzz target: an index file (src/ann/index_file.c, hnsw.c, pq.c, search.c). A flat, an
 * IVF-flat, an IVF-PQ and an HNSW index of a small random set are written once; each input
 * picks one, edits it (fuzz_h5.h: attributes and datasets replaced, added, deleted) and then
 * recomputes every dataset's crc32 as kiln reads it, as someone rewriting the file on purpose
 * would, so that the checks behind the checksums (shapes, offsets, list lengths, graph links,
 * levels, the entry point) are what stands between the file and the search. A file kiln
 * accepts is then searched: it must never read outside what it allocated. */
#include <unistd.h>
#include "fuzz_h5.h"
#include "../../src/ann/ann_internal.h"
#include "kiln/backend.h"
#include "kiln/h5util.h"

enum { ROWS = 300, DIM = 8, KINDS = 4 };
static char templates[KINDS][256], work[256];
static const kiln_backend *be;

static float frand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f;
}

static void write_template(int kind)
{
    uint32_t seed = 7;
    ann_index x = {.kind = (ann_kind)kind, .metric = ANN_L2, .dim = DIM, .rows = ROWS};
    x.vectors = malloc(ROWS * DIM * sizeof(float));
    for (int i = 0; i < ROWS * DIM; i++) x.vectors[i] = frand(&seed);
    snprintf(x.input, sizeof x.input, "none.h5:/x");
    if (kind == ANN_IVF_FLAT || kind == ANN_IVF_PQ) {
        x.nlist = 4, x.nprobe = 2;
        x.centroids = malloc(4 * DIM * sizeof(float));
        for (int i = 0; i < 4 * DIM; i++) x.centroids[i] = frand(&seed);
        x.offsets = malloc(5 * sizeof(int64_t));
        x.ids = malloc(ROWS * sizeof(int64_t));
        for (int l = 0; l <= 4; l++) x.offsets[l] = l * ROWS / 4;
        for (int i = 0; i < ROWS; i++) x.ids[i] = (i * 7) % ROWS;
    }
    if (kind == ANN_IVF_PQ) {
        x.pq_m = 2;
        x.codebooks = malloc(2 * 256 * (DIM / 2) * sizeof(float));
        for (int i = 0; i < 2 * 256 * (DIM / 2); i++) x.codebooks[i] = frand(&seed);
        x.codes = malloc(ROWS * 2);
        for (int i = 0; i < ROWS * 2; i++) x.codes[i] = (uint8_t)(frand(&seed) * 256);
        free(x.vectors);
        x.vectors = NULL;
    }
    if (kind == ANN_HNSW) {
        x.hnsw_m = 4, x.ef_construction = 16, x.ef = 8;
        if (kiln_ann_hnsw_build(&x, 1, 1, 1e9, NULL) != KILN_OK) abort();
    }
    if (kiln_ann_index_write(templates[kind], &x) != KILN_OK) abort();
    kiln_ann_index_free(&x);
}

/* Every dataset's crc32 made right for what is in it now, read as kiln reads it. */
static void recompute_crcs(const char *path)
{
    static const struct { const char *name; hid_t *type; size_t size; } sets[] = {
        {"vectors", &H5T_NATIVE_FLOAT_g, 4},       {"ids", &H5T_NATIVE_INT64_g, 8},
        {"ivf/centroids", &H5T_NATIVE_FLOAT_g, 4}, {"ivf/offsets", &H5T_NATIVE_INT64_g, 8},
        {"pq/codebooks", &H5T_NATIVE_FLOAT_g, 4},  {"pq/codes", &H5T_NATIVE_UINT8_g, 1},
        {"hnsw/levels", &H5T_NATIVE_INT32_g, 4},   {"hnsw/offsets", &H5T_NATIVE_INT64_g, 8},
        {"hnsw/neighbors", &H5T_NATIVE_INT32_g, 4}};
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        if (H5Lexists(f, sets[i].name, H5P_DEFAULT) <= 0) continue;
        hid_t d = H5Dopen2(f, sets[i].name, H5P_DEFAULT);
        if (d < 0) continue;
        hid_t sp = H5Dget_space(d);
        hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        void *buf = n >= 0 && n < (1 << 22) ? malloc((size_t)n * sets[i].size + 1) : NULL;
        if (buf && H5Dread(d, *sets[i].type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            uint64_t crc = kiln_crc32(0, buf, (size_t)n * sets[i].size);
            if (H5Aexists(d, "crc32") > 0) H5Adelete(d, "crc32");
            hid_t as = H5Screate(H5S_SCALAR), a = H5Acreate2(d, "crc32", H5T_NATIVE_UINT64, as, H5P_DEFAULT, H5P_DEFAULT);
            if (a >= 0) H5Awrite(a, H5T_NATIVE_UINT64, &crc), H5Aclose(a);
            H5Sclose(as);
        }
        free(buf);
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (kiln_backend_get("cpu", &be) != KILN_OK) abort();
    for (int k = 0; k < KINDS; k++) {
        snprintf(templates[k], sizeof templates[k], "/tmp/fuzz_index.%d.%d.h5", (int)getpid(), k);
        write_template(k);
    }
    snprintf(work, sizeof work, "/tmp/fuzz_index.%d.work.h5", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    fuzz_copy(templates[data[0] % KINDS], work);
    fuzz_h5_edit(work, data + 1, size - 1);
    recompute_crcs(work);
    ann_index idx;
    if (kiln_ann_index_read(work, &idx) == KILN_OK) {
        float q[2 * DIM];
        for (int i = 0; i < 2 * DIM; i++) q[i] = (float)i / 16.0f;
        int k = idx.rows < 3 ? (int)idx.rows : 3;
        ann_search_opts o = {.k = k, .filter_attr = -1};
        ann_scratch *s = NULL;
        if (idx.dim == DIM && k > 0 && kiln_ann_scratch_new(&idx, k, 16, &s) == KILN_OK) {
            int64_t ids[6];
            float dist[6];
            kiln_ann_search(be, &idx, &o, q, 2, ids, dist, s);
            kiln_ann_scratch_free(s);
        }
        kiln_ann_index_free(&idx);
    }
    kiln_error_clear();
    return 0;
}
