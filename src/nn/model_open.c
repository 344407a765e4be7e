/* A model rebuilt from what a user points at: a registry URI, a checkpoint file, a `latest`
 * pointer, a checkpoint directory or a run directory. The model section of the checkpoint's
 * config says which kind and shape, its tensors say the input width and the number of outputs,
 * and then its parameters are loaded into a model sized for the wanted batch. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kiln/ckpt.h"
#include "kiln/fs.h"
#include "kiln/h5util.h"
#include "kiln/model_open.h"
#include "model_impl.h"

kiln_status kiln_model_tensor_extent(hid_t file, const char *path, const char *name, int d,
                                     int *out)
{
    static const uint64_t any2[2] = {KILN_H5_ANY, KILN_H5_ANY};
    hid_t dset;
    uint64_t shape[KILN_H5_MAX_DIMS];
    int nd;
    kiln_status st = kiln_h5_open_dataset(file, name, H5T_NATIVE_FLOAT, 2, any2, &dset);
    if (st != KILN_OK) return st;
    st = kiln_h5_dataset_shape(dset, &nd, shape);
    H5Dclose(dset);
    KILN_CHECK(st);
    if (shape[d] > (uint64_t)INT32_MAX)
        return KILN_ERROR(KILN_ERR_CKPT, "'%s': tensor '%s' has extent %llu, more than a model "
                          "dimension can be", path, name, (unsigned long long)shape[d]);
    *out = (int)shape[d];
    return KILN_OK;
}

/* The newest valid checkpoint of checkpoint directory dir into path. */
static kiln_status newest_in(const char *arg, const char *dir, char *path, size_t len)
{
    int found;
    KILN_CHECK(kiln_ckpt_find_latest(dir, path, len, &found));
    if (!found)
        return KILN_ERROR(KILN_ERR_ARG, "'%s' has no checkpoint yet (nothing in '%s')", arg, dir);
    return KILN_OK;
}

/* A directory or a `latest` pointer, followed to the checkpoint file it leads to. */
static kiln_status follow_pointer(const char *arg, char *path, size_t len)
{
    struct stat sb;
    char dir[PATH_MAX], probe[PATH_MAX + 16];
    if (stat(path, &sb) != 0) return KILN_OK; /* the caller reports a missing file */
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        KILN_CHECK(kiln_path_format(probe, sizeof probe, "%s/ckpt/latest", dir));
        if (kiln_path_exists(probe)) {
            KILN_CHECK(kiln_path_format(probe, sizeof probe, "%s/ckpt", dir));
            return newest_in(arg, probe, path, len);
        }
        KILN_CHECK(kiln_path_format(probe, sizeof probe, "%s/latest", dir));
        if (kiln_path_exists(probe)) return newest_in(arg, dir, path, len);
        return KILN_ERROR(KILN_ERR_ARG, "'%s' is a directory, but neither a run directory (with "
                          "ckpt/latest) nor a checkpoint directory (with latest): name a "
                          "checkpoint file, a run directory or a registry:NAME@ALIAS", arg);
    }
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    if (strcmp(basename(copy), "latest") != 0) return KILN_OK;
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(dir, sizeof dir, "%s", dirname(copy));
    return newest_in(arg, dir, path, len);
}

kiln_status kiln_model_locate(const char *root, const char *arg, char *path, size_t len,
                              kiln_registry_ref *ref)
{
    kiln_registry_ref own;
    if (!ref) ref = &own;
    KILN_CHECK(kiln_registry_locate(root, arg, path, len, ref));
    if (!ref->version) KILN_CHECK(follow_pointer(arg, path, len));
    if (!kiln_path_exists(path) && !strcmp(path, arg))
        return KILN_ERROR(KILN_ERR_ARG, "no such file or directory");
    if (!kiln_path_exists(path))
        return KILN_ERROR(KILN_ERR_ARG, "it leads to '%s': no such file", path);
    return KILN_OK;
}

/* The model section of a checkpoint's config, and the widths its tensors imply. */
static kiln_status read_layout(const char *path, kiln_model_config *cfg,
                               const kiln_model_kind_impl **kind, int *in_dim, int *n_out)
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
    if (st == KILN_OK) st = kiln_config_load_sections(&kiln_model_section, cfg, config, path);
    const kiln_model_kind *pub = NULL;
    if (st == KILN_OK) st = kiln_model_kind_get("model.kind", cfg->kind, &pub);
    if (st == KILN_OK) {
        *kind = kiln_model_kind_impl_of(pub);
        st = (*kind)->read_widths(f, path, cfg, in_dim, n_out);
    }
    free(config);
    H5Fclose(f);
    return st;
}

static kiln_status describe_source(const char *root, const char *arg, kiln_model_source *src)
{
    memset(src, 0, sizeof *src);
    KILN_CHECK(kiln_model_locate(root, arg, src->path, sizeof src->path, &src->ref));
    if (src->ref.version)
        kiln_registry_format_uri(&src->ref, src->id, sizeof src->id);
    else
        snprintf(src->id, sizeof src->id, "%s", src->path);
    uint64_t bytes;
    return kiln_file_sha256(src->path, src->sha256, &bytes);
}

kiln_status kiln_model_open(const char *root, const char *arg, const kiln_backend *be,
                            int max_batch, kiln_model **model, kiln_model_config *cfg,
                            kiln_model_source *src)
{
    *model = NULL;
    kiln_model_config c;
    const kiln_model_kind_impl *kind = NULL;
    int in_dim = 0, n_out = 0;
    kiln_status st = describe_source(root, arg, src);
    if (st == KILN_OK) st = read_layout(src->path, &c, &kind, &in_dim, &n_out);
    if (st == KILN_OK) {
        c.recompute = 1; /* no backward: one set of block activations is enough */
        if (max_batch <= 0)
            max_batch = be->kind == KILN_DEVICE_CPU ? kind->pub.batch_cpu : kind->pub.batch_gpu;
        st = kiln_model_create(&c, in_dim, n_out, max_batch, be, 0, model);
    }
    if (st == KILN_OK) st = kiln_model_load_checkpoint(*model, src->path);
    if (st == KILN_OK && cfg) *cfg = c;
    if (st == KILN_OK) return KILN_OK;
    kiln_model_free(*model);
    *model = NULL;
    char inner[4096];
    snprintf(inner, sizeof inner, "%s", kiln_error_message());
    return KILN_ERROR(st, "model '%s': %s", arg, inner);
}
