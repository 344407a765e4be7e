/* A model's parameters from a checkpoint: warm starts (train.init_from), evaluation and
 * inference. Only model/<tensor> is read; every tensor must be there with this model's shape,
 * and the checkpoint may hold no model tensor this model lacks, so a checkpoint of another
 * architecture or size is refused with the tensor that differs. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include "kiln/ckpt.h"
#include "kiln/h5util.h"
#include "model_impl.h"

#define MODEL_GROUP "model"

/* Datasets directly under /model in the checkpoint. */
static kiln_status count_stored(const char *path, hsize_t *n)
{
    kiln_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    KILN_H5_CHECK(f, KILN_ERR_CKPT, "checkpoint '%s' cannot be opened as HDF5", path);
    H5G_info_t info = {0};
    herr_t rc = kiln_h5_exists(f, MODEL_GROUP) ? H5Gget_info_by_name(f, MODEL_GROUP, &info, H5P_DEFAULT) : 0;
    H5Fclose(f);
    KILN_H5_CHECK(rc, KILN_ERR_CKPT, "checkpoint '%s': cannot list '/%s'", path, MODEL_GROUP);
    *n = info.nlinks;
    return KILN_OK;
}

kiln_status kiln_model_load_checkpoint(kiln_model *m, const char *path)
{
    int n = m->n_tensors;
    hsize_t stored = 0;
    KILN_CHECK(count_stored(path, &stored));
    if (stored != (hsize_t)n)
        return KILN_ERROR(KILN_ERR_CKPT, "checkpoint '%s' holds %llu model tensors under /%s, "
                          "this %s model has %d: the architecture or size differs", path,
                          (unsigned long long)stored, MODEL_GROUP, m->cfg.kind, n);
    kiln_ckpt_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[96] = calloc((size_t)n, sizeof *names);
    kiln_status st = t && names ? KILN_OK : KILN_ERROR(KILN_ERR_NOMEM, "loading '%s'", path);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        const kiln_tensor_info *ti = &m->tensors[i];
        snprintf(names[i], sizeof names[i], MODEL_GROUP "/%s", ti->name);
        t[i] = (kiln_ckpt_tensor){names[i], kiln_model_host_params(m) + ti->offset, ti->ndim,
                                  {0}, 0, ti->numel};
        for (int d = 0; d < ti->ndim; d++) t[i].shape[d] = ti->shape[d];
    }
    if (st == KILN_OK) st = kiln_ckpt_load(path, NULL, t, n);
    if (st == KILN_OK) st = kiln_model_params_to_device(m); /* a no-op on the CPU */
    free(t);
    free(names);
    return st;
}
