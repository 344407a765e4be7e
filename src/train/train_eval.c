/* Evaluation: mean loss (per target) and top-1 accuracy over the eval split, always from its
 * first row so that periodic evaluations are comparable and resume-independent. */
#include "kiln/log.h"
#include "train_internal.h"

kiln_status train_evaluate(train_run *r, int max_batches, eval_result *out)
{
    double loss_sum = 0.0;
    int64_t correct = 0, targets = 0;
    KILN_CHECK(kiln_loader_seek(r->eval_loader, 0, 0));
    for (int nb = 0; max_batches <= 0 || nb < max_batches; nb++) {
        const kiln_batch *b;
        KILN_CHECK(kiln_loader_next(r->eval_loader, &b));
        if (!b) break;
        if (b->B == 0) continue;
        float loss;
        int64_t hits, n;
        KILN_CHECK(kiln_model_forward(r->model, b, 0, (uint64_t)r->step, &loss, &hits, &n));
        loss_sum += (double)loss * (double)n;
        correct += hits;
        targets += n;
    }
    double sums[3] = {loss_sum, (double)correct, (double)targets};
    KILN_CHECK(kiln_comm_allreduce_f64(r->comm, KILN_AXIS_DP, sums, 3));
    loss_sum = sums[0];
    correct = (int64_t)sums[1];
    targets = (int64_t)sums[2];
    out->targets = targets;
    out->loss = targets ? loss_sum / (double)targets : 0.0;
    out->accuracy = targets ? (double)correct / (double)targets : 0.0;
    return KILN_OK;
}
