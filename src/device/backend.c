/* Backend lookup by name, and the check that a backend fills every required slot of its
 * table, so a missing op is reported by name ("no method X for backend Y") instead of crashing
 * on NULL; optional ops are asked for by name (kiln_backend_supports, kiln_backend_require). */
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "kiln/backend.h"
#ifdef KILN_HAVE_CUDA
#include "cuda_backend.h"
#endif

typedef void (*any_fn)(void);

/* Every function slot of kiln_backend: the memory methods, then one per kiln_ops member. */
static const struct {
    const char *name;
    size_t offset;
    int optional;
} backend_slots[] = {
#define MEMORY_SLOT(x) {#x, offsetof(kiln_backend, x), 0}
#define OP_SLOT(x) {#x, offsetof(kiln_backend, ops.x), 0}
#define OPTIONAL_OP_SLOT(x) {#x, offsetof(kiln_backend, ops.x), 1}
    MEMORY_SLOT(alloc), MEMORY_SLOT(free), MEMORY_SLOT(copy_to_device),
    MEMORY_SLOT(copy_to_host), MEMORY_SLOT(synchronize),
    OP_SLOT(gemm), OP_SLOT(linear_forward), OP_SLOT(linear_backward), OP_SLOT(gelu_forward),
    OP_SLOT(gelu_backward), OP_SLOT(layernorm_forward), OP_SLOT(layernorm_backward),
    OP_SLOT(embedding_forward), OP_SLOT(embedding_backward), OP_SLOT(attention_forward),
    OP_SLOT(attention_backward), OP_SLOT(softmax_xent_forward), OP_SLOT(softmax_xent_backward),
    OP_SLOT(residual_forward), OP_SLOT(residual_backward), OP_SLOT(dropout_forward),
    OP_SLOT(dropout_backward), OP_SLOT(adamw_update), OP_SLOT(sgd_update), OP_SLOT(sum_squares),
    OP_SLOT(scale), OP_SLOT(zero), OP_SLOT(axpy), OP_SLOT(cast_from_f32),
    OPTIONAL_OP_SLOT(row_sq_norms),
#undef OPTIONAL_OP_SLOT
#undef OP_SLOT
#undef MEMORY_SLOT
};
enum { MEMORY_SLOTS = 5, SLOTS = sizeof(backend_slots) / sizeof(backend_slots[0]) };
_Static_assert((SLOTS - MEMORY_SLOTS) * sizeof(any_fn) == sizeof(kiln_ops),
               "backend_slots must list every member of kiln_ops");

static int slot_filled(const kiln_backend *be, size_t i)
{
    any_fn fn;
    memcpy(&fn, (const char *)be + backend_slots[i].offset, sizeof fn);
    return fn != NULL;
}

kiln_status kiln_backend_validate(const kiln_backend *be)
{
    if (be == NULL)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_backend_validate: backend is NULL");
    for (size_t i = 0; i < SLOTS; i++)
        if (!backend_slots[i].optional && !slot_filled(be, i))
            return KILN_ERROR(KILN_ERR_UNSUPPORTED, "no method %s for backend %s",
                              backend_slots[i].name, be->name);
    return KILN_OK;
}

int kiln_backend_supports(const kiln_backend *be, const char *op)
{
    for (size_t i = MEMORY_SLOTS; be && op && i < SLOTS; i++)
        if (!strcmp(backend_slots[i].name, op)) return slot_filled(be, i);
    return 0;
}

kiln_status kiln_backend_require(const kiln_backend *be, const char *const *ops, int n)
{
    for (int k = 0; k < n; k++)
        if (!kiln_backend_supports(be, ops[k]))
            return KILN_ERROR(KILN_ERR_UNSUPPORTED, "op %s is not supported on backend %s yet "
                              "(it exists on the CPU backend: use backend.name=cpu)", ops[k],
                              be ? be->name : "(none)");
    return KILN_OK;
}

int kiln_gpus_present(void)
{
    int n = 0;
    DIR *d = opendir("/proc/driver/nvidia/gpus"); /* one entry per GPU the driver manages */
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    if (n == 0 && access("/dev/nvidia0", F_OK) == 0) n = 1;
    return n;
}

static kiln_status parse_precision(const char *precision, kiln_precision *out)
{
    if (!strcmp(precision, "fp32")) *out = KILN_PRECISION_FP32;
    else if (!strcmp(precision, "bf16")) *out = KILN_PRECISION_BF16;
    else
        return KILN_ERROR(KILN_ERR_CONFIG, "train.precision must be fp32 or bf16, found '%s'",
                          precision);
    return KILN_OK;
}

kiln_status kiln_backend_select(const char *name, const char *precision, int gpu,
                                const kiln_backend **out)
{
    if (name == NULL || precision == NULL || out == NULL)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_backend_select: arguments must not be NULL");
    kiln_precision prec = KILN_PRECISION_FP32;
    KILN_CHECK(parse_precision(precision, &prec));
    if (strcmp(name, "cpu") == 0) {
        if (prec != KILN_PRECISION_FP32)
            return KILN_ERROR(KILN_ERR_CONFIG,
                              "train.precision=%s needs backend.name=cuda: the CPU backend "
                              "computes in fp32 only (set train.precision=fp32)", precision);
        KILN_CHECK(kiln_backend_validate(kiln_backend_cpu()));
        *out = kiln_backend_cpu();
        return KILN_OK;
    }
    if (strcmp(name, "cuda") == 0) {
#ifdef KILN_HAVE_CUDA
        KILN_CHECK(kiln_cuda_backend(prec, gpu, out));
        KILN_CHECK(kiln_backend_validate(*out));
        return KILN_OK;
#else
        return KILN_ERROR(KILN_ERR_UNSUPPORTED, "backend \"cuda\": this build of kiln has no "
                          "CUDA backend (configured without CUDA; rebuild with -DKILN_CUDA=ON "
                          "where nvcc is installed); use backend \"cpu\"");
#endif
    }
    return KILN_ERROR(KILN_ERR_ARG, "unknown backend \"%s\": expected \"cpu\" or \"cuda\"", name);
}

kiln_status kiln_backend_get(const char *name, const kiln_backend **out)
{
    if (name == NULL || out == NULL)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_backend_get: name and out must not be NULL");
    return kiln_backend_select(name, "fp32", -1, out);
}
