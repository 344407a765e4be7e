/* Evaluation during training: the shared loop (src/infer/eval.c) over the eval split, always
 * from its first row so that periodic evaluations are comparable and resume-independent. */
#include "kiln/infer.h"
#include "train_internal.h"

kiln_status train_evaluate(train_run *r, int max_batches, eval_result *out)
{
    return kiln_eval_loop(r->model, r->eval_loader, r->comm, (uint64_t)r->step, max_batches, out);
}
