/* Fuzz target: a checkpoint edited as the input says (fuzz_h5.h), sidecar removed so that the
 * HDF5 contents reach kiln's readers, then everything that reads checkpoints: verify, load,
 * inspect, and opening it as a model. Errors are fine; crashes, hangs and sanitizer reports
 * are findings. */
#include <stdio.h>
#include <unistd.h>
#include "fuzz_h5.h"
#include "kiln/ckpt.h"
#include "kiln/model.h"
#include "kiln/model_open.h"

static char tmpl[256], work[256];

static void make_template(void)
{
    kiln_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.kind, "mlp");
    c.hidden.n = 1;
    c.hidden.v[0] = 4;
    kiln_model *m = NULL;
    if (kiln_model_create(&c, 6, 3, 4, kiln_backend_cpu(), 1, &m) != KILN_OK) abort();
    int n = kiln_model_num_tensors(m);
    kiln_ckpt_tensor t[8];
    char names[8][96];
    for (int i = 0; i < n; i++) {
        const kiln_tensor_info *ti = kiln_model_tensor(m, i);
        snprintf(names[i], sizeof names[i], "model/%s", ti->name);
        t[i] = (kiln_ckpt_tensor){names[i], kiln_model_params(m) + ti->offset, ti->ndim,
                                  {ti->shape[0], ti->shape[1], ti->shape[2], ti->shape[3]}, 0,
                                  ti->numel};
    }
    static kiln_ckpt_meta meta;
    meta.step = 4;
    snprintf(meta.config_text, sizeof meta.config_text,
             "model:\n  kind: \"mlp\"\n  hidden: [4]\ntrain:\n  steps: 10\n");
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/fuzz_ckpt.%d", (int)getpid());
    if (kiln_ckpt_save(NULL, dir, &meta, t, n, 1) != KILN_OK) abort();
    snprintf(tmpl, sizeof tmpl, "%s/step-00000004.h5", dir);
    snprintf(work, sizeof work, "%s/fuzzed.h5", dir);
    kiln_model_free(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!freopen("/dev/null", "w", stdout)) abort(); /* inspect prints */
    make_template();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_copy(tmpl, work);
    fuzz_h5_edit(work, data, size);
    static kiln_ckpt_meta meta;
    float buf[64];
    kiln_ckpt_tensor t = {"model/fc0.weight", buf, 2, {4, 6}, 0, 24};
    (void)kiln_ckpt_verify(work);
    (void)kiln_ckpt_load(work, &meta, &t, 1);
    (void)kiln_ckpt_inspect(work, 1);
    kiln_model *m = NULL;
    kiln_model_config cfg;
    kiln_model_source src;
    if (kiln_model_open("/nonexistent-registry", work, kiln_backend_cpu(), 4, &m, &cfg, &src) ==
        KILN_OK)
        kiln_model_free(m);
    kiln_error_clear();
    return 0;
}
