/* Optimizers over the flat parameter buffer, LR schedules and global-norm clipping. */
#ifndef KILN_OPTIM_H
#define KILN_OPTIM_H
#include <stddef.h>
#include "kiln/backend.h"
#include "kiln/config.h"
#include "kiln/model.h"
#include "kiln/status.h"

typedef struct kiln_optim_config {
    kiln_cfg_str name;          /* "adamw" | "sgd" */
    double lr, beta1, beta2, eps, weight_decay, momentum, grad_clip;
} kiln_optim_config;

typedef struct kiln_schedule_config {
    kiln_cfg_str kind;          /* "constant" | "cosine" | "step" */
    double warmup_frac;         /* fraction of total steps of linear warmup */
    int warmup_steps;           /* absolute warmup; wins over warmup_frac when > 0 */
    double min_lr;              /* cosine floor */
    int step_every;             /* step: multiply by gamma every step_every steps */
    double gamma;
} kiln_schedule_config;

/* The `optim` and `schedule` config sections (src/optim/optim_config.c). */
extern const kiln_cfg_schema kiln_optim_section;
extern const kiln_cfg_schema kiln_schedule_section;

typedef struct kiln_optim kiln_optim;

/* State for the flat parameter range [lo, hi) only (ZeRO shards it; the whole model is
 * 0, kiln_model_num_params). Updates touch only that range. */
kiln_status kiln_optim_create(const kiln_optim_config *cfg, const kiln_model *m,
                              const kiln_backend *be, size_t lo, size_t hi, kiln_optim **out);
void kiln_optim_free(kiln_optim *o);
/* One update of the range [lo, hi): params (fp32) and grads (the backend's storage type) hold
 * it (element k is parameter lo + k; the model gives the tensors, for weight decay); with bf16
 * storage params_copy is the range of the bf16 copy the ops read, written in the same pass
 * (NULL with fp32 storage). t is the 1-based step; grad_scale multiplies gradients (clipping). */
void kiln_optim_step(kiln_optim *o, const kiln_model *m, float *params, float *params_copy,
                     const float *grads, float lr, float grad_scale, int t);
/* Named state buffers mirroring the parameters of [lo, hi) ("m", "v" for AdamW; "momentum"
 * for SGD): element k of a state belongs to parameter lo + k. */
int kiln_optim_num_states(const kiln_optim *o);
const char *kiln_optim_state_name(const kiln_optim *o, int i);
float *kiln_optim_state(kiln_optim *o, int i);
/* The states as host memory (the buffers themselves on the CPU; mirrors on a GPU, refreshed by
 * kiln_optim_states_to_host and copied back by kiln_optim_states_to_device). */
float *kiln_optim_host_state(kiln_optim *o, int i);
kiln_status kiln_optim_states_to_host(kiln_optim *o);
kiln_status kiln_optim_states_to_device(kiln_optim *o);
void kiln_optim_range(const kiln_optim *o, size_t *lo, size_t *hi);

/* Learning rate for 0-based step of total_steps. */
double kiln_schedule_lr(const kiln_schedule_config *s, double base_lr, long step, long total_steps);

/* Global L2 norm of the gradient buffer (double accumulation), and the factor that clips it
 * to max_norm (1 when max_norm <= 0 or the norm is within it). */
double kiln_grad_global_norm(const kiln_backend *be, const float *grads, size_t n);
float kiln_clip_factor(double norm, double max_norm);

#endif
