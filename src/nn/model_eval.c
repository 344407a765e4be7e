/* The evaluation loop: mean loss and top-1 accuracy of a model over a dataset split, each rank
 * scoring its slice of every batch. Training runs it on its eval split, `kiln eval` on any
 * model and split. */
#include "kiln/model_open.h"

kiln_status kiln_eval_loop(kiln_model *m, kiln_loader *l, kiln_comm *c, uint64_t step,
                           int max_batches, kiln_eval_result *out)
{
    double loss_sum = 0.0;
    int64_t correct = 0, targets = 0;
    KILN_CHECK(kiln_loader_seek(l, 0, 0));
    for (int nb = 0; max_batches <= 0 || nb < max_batches; nb++) {
        const kiln_batch *b;
        KILN_CHECK(kiln_loader_next(l, &b));
        if (!b) break;
        /* a rank with no rows of this batch still runs the forward: under ZeRO-3 it takes part
         * in every block's parameter all-gather */
        float loss;
        int64_t hits, n;
        KILN_CHECK(kiln_model_forward(m, b, 0, step, &loss, &hits, &n));
        loss_sum += (double)loss * (double)n;
        correct += hits;
        targets += n;
    }
    double sums[3] = {loss_sum, (double)correct, (double)targets};
    KILN_CHECK(kiln_comm_allreduce_f64(c, KILN_AXIS_DP, sums, 3));
    out->targets = (int64_t)sums[2];
    out->loss = out->targets ? sums[0] / sums[2] : 0.0;
    out->accuracy = out->targets ? sums[1] / sums[2] : 0.0;
    return KILN_OK;
}
