/* A model rebuilt from a checkpoint, for evaluation and inference: the checkpoint's config
 * says which architecture, its tensors say the input width and the number of outputs, and
 * then its parameters are loaded into a model sized for the wanted batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/infer.h"

/* Extent d of 2-D float dataset `name` in file (an error naming both when it is absent). */
static kiln_status tensor_extent(hid_t file, const char *name, int d, int *out)
{
    static const uint64_t any2[2] = {KILN_H5_ANY, KILN_H5_ANY};
    hid_t dset;
    uint64_t shape[KILN_H5_MAX_DIMS];
    int nd;
    KILN_CHECK(kiln_h5_open_dataset(file, name, H5T_NATIVE_FLOAT, 2, any2, &dset));
    kiln_status st = kiln_h5_dataset_shape(dset, &nd, shape);
    H5Dclose(dset);
    KILN_CHECK(st);
    *out = (int)shape[d];
    return KILN_OK;
}

/* The checkpoint's config, and the widths its tensors imply. */
static kiln_status read_layout(const char *path, kiln_train_config *cfg, int *in_dim, int *n_out)
{
    enum { CONFIG_MAX = 65536 };
    kiln_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    KILN_H5_CHECK(f, KILN_ERR_CKPT, "'%s' is not a readable HDF5 checkpoint", path);
    char *config = malloc(CONFIG_MAX);
    kiln_status st = config ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "reading '%s'", path);
    if (st == KILN_OK && !kiln_h5_has_attr(f, "config"))
        st = KILN_ERROR(KILN_ERR_CKPT, "'%s' is not a kiln checkpoint: it has no 'config' "
                        "attribute", path);
    if (st == KILN_OK) st = kiln_h5_read_attr_str(f, "config", config, CONFIG_MAX);
    if (st == KILN_OK) st = kiln_config_load_text(&kiln_train_schema, cfg, config, path, NULL, 0);
    if (st == KILN_OK && !strcmp(cfg->model.kind, "gpt")) {
        *in_dim = 0;
        st = tensor_extent(f, "model/wte", 0, n_out);
    } else if (st == KILN_OK) {
        char last[64];
        snprintf(last, sizeof last, "model/fc%d.weight", cfg->model.hidden.n);
        st = tensor_extent(f, "model/fc0.weight", 1, in_dim);
        if (st == KILN_OK) st = tensor_extent(f, last, 0, n_out);
    }
    free(config);
    H5Fclose(f);
    return st;
}

static kiln_status describe_source(const char *root, const char *arg, kiln_model_source *src)
{
    memset(src, 0, sizeof *src);
    KILN_CHECK(kiln_registry_locate(root, arg, src->path, sizeof src->path, &src->ref));
    if (!kiln_path_exists(src->path)) return KILN_ERROR(KILN_ERR_ARG, "no such file");
    if (src->ref.version)
        kiln_registry_format_uri(&src->ref, src->id, sizeof src->id);
    else
        snprintf(src->id, sizeof src->id, "%s", src->path);
    uint64_t bytes;
    return kiln_file_sha256(src->path, src->sha256, &bytes);
}

/* Rows per forward pass when the caller leaves it to us. A CPU thread computes each forward
 * alone, and 256 classifier rows keep a 512-wide layer's activations (512 KB) in its core's
 * L2: measured 10% faster than 1024 rows on the MLP of bench/infer_bench.sh, where the GEMMs
 * themselves run as fast at either size. A GPU wants more rows per launch. */
static int default_batch(const char *model_kind, const kiln_backend *be)
{
    if (!strcmp(model_kind, "gpt")) return 32;
    return be->kind == KILN_DEVICE_CPU ? 256 : 1024;
}

kiln_status kiln_model_open(const char *root, const char *path_or_uri, const kiln_backend *be,
                            int max_batch, kiln_model **model, kiln_train_config *cfg,
                            kiln_model_source *src)
{
    *model = NULL;
    kiln_train_config *c = malloc(sizeof *c);
    KILN_CHECK_ALLOC(c);
    int in_dim = 0, n_out = 0;
    kiln_status st = describe_source(root, path_or_uri, src);
    if (st == KILN_OK) st = read_layout(src->path, c, &in_dim, &n_out);
    if (st == KILN_OK) {
        c->model.recompute = 1; /* no backward: one set of block activations is enough */
        if (max_batch <= 0) max_batch = default_batch(c->model.kind, be);
        st = kiln_model_create(&c->model, in_dim, n_out, max_batch, be, 0, model);
    }
    if (st == KILN_OK) st = kiln_model_load_checkpoint(*model, src->path);
    if (st == KILN_OK && cfg) *cfg = *c;
    free(c);
    if (st == KILN_OK) return KILN_OK;
    kiln_model_free(*model);
    *model = NULL;
    char inner[4096];
    snprintf(inner, sizeof inner, "%s", kiln_error_message());
    return KILN_ERROR(st, "model '%s': %s", path_or_uri, inner);
}
