/* Backend lookup by name, and the check that a backend fills every slot of its table, so a
 * missing op is reported by name ("no method X for backend Y") instead of crashing on NULL. */
#include <stddef.h>
#include <string.h>
#include "kiln/backend.h"
#ifdef KILN_HAVE_CUDA
#include "cuda_backend.h"
#endif

typedef void (*any_fn)(void);

/* Every function slot of kiln_backend: the memory methods, then one per kiln_ops member. */
static const struct {
    const char *name;
    size_t offset;
} backend_slots[] = {
#define MEMORY_SLOT(x) {#x, offsetof(kiln_backend, x)}
#define OP_SLOT(x) {#x, offsetof(kiln_backend, ops.x)}
    MEMORY_SLOT(alloc), MEMORY_SLOT(free), MEMORY_SLOT(copy_to_device),
    MEMORY_SLOT(copy_to_host), MEMORY_SLOT(synchronize),
    OP_SLOT(gemm), OP_SLOT(linear_forward), OP_SLOT(linear_backward), OP_SLOT(gelu_forward),
    OP_SLOT(gelu_backward), OP_SLOT(layernorm_forward), OP_SLOT(layernorm_backward),
    OP_SLOT(embedding_forward), OP_SLOT(embedding_backward), OP_SLOT(attention_forward),
    OP_SLOT(attention_backward), OP_SLOT(softmax_xent_forward), OP_SLOT(softmax_xent_backward),
    OP_SLOT(residual_forward), OP_SLOT(residual_backward), OP_SLOT(dropout_forward),
    OP_SLOT(dropout_backward), OP_SLOT(adamw_update), OP_SLOT(sgd_update), OP_SLOT(sum_squares),
    OP_SLOT(scale), OP_SLOT(zero), OP_SLOT(axpy), OP_SLOT(cast_from_f32),
#undef OP_SLOT
#undef MEMORY_SLOT
};
enum { MEMORY_SLOTS = 5, SLOTS = sizeof(backend_slots) / sizeof(backend_slots[0]) };
_Static_assert((SLOTS - MEMORY_SLOTS) * sizeof(any_fn) == sizeof(kiln_ops),
               "backend_slots must list every member of kiln_ops");

kiln_status kiln_backend_validate(const kiln_backend *be)
{
    if (be == NULL)
        return KILN_ERROR(KILN_ERR_ARG, "kiln_backend_validate: backend is NULL");
    for (size_t i = 0; i < SLOTS; i++) {
        any_fn fn;
        memcpy(&fn, (const char *)be + backend_slots[i].offset, sizeof fn);
        if (fn == NULL)
            return KILN_ERROR(KILN_ERR_UNSUPPORTED, "no method %s for backend %s",
                              backend_slots[i].name, be->name);
    }
    return KILN_OK;
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
