/* Learning-rate schedules: constant, linear warmup + cosine decay to min_lr, and step decay.
 * Warmup (linear from lr/warmup to lr) applies to all three. */
#include <math.h>
#include <string.h>
#include "kiln/optim.h"

static long warmup_steps(const kiln_schedule_config *s, long total)
{
    if (s->warmup_steps > 0) return s->warmup_steps;
    return (long)floor(s->warmup_frac * (double)total + 0.5);
}

double kiln_schedule_lr(const kiln_schedule_config *s, double base_lr, long step, long total)
{
    long warm = warmup_steps(s, total);
    if (step < warm) return base_lr * (double)(step + 1) / (double)warm;
    if (!strcmp(s->kind, "cosine")) {
        long span = total - warm;
        double progress = span > 0 ? (double)(step - warm) / (double)span : 1.0;
        if (progress > 1.0) progress = 1.0;
        return s->min_lr + 0.5 * (base_lr - s->min_lr) * (1.0 + cos(M_PI * progress));
    }
    if (!strcmp(s->kind, "step") && s->step_every > 0)
        return base_lr * pow(s->gamma, (double)((step - warm) / s->step_every));
    return base_lr;
}
