/* The table of model kinds: what each takes in and predicts, the defaults jobs use with it,
 * and what builds it. A new architecture is a file beside mlp.c and gpt.c plus a row here
 * (and its name in KILN_MODEL_KIND_CHOICES); no job changes. */
#include <stdio.h>
#include <string.h>
#include "model_impl.h"

/* A CPU thread computes each inference forward alone: 256 classifier rows keep a 512-wide
 * layer's activations (512 KB) in its core's L2, measured 10% faster than 1024 rows on the MLP
 * of bench/infer_bench.sh; a GPU wants more rows per launch. */
static const kiln_model_kind_impl kinds[] = {
    {{"mlp", "classify", KILN_DATA_CLASSIFY, "test", "x", 256, 1024}, kiln_mlp_init,
     kiln_mlp_read_widths},
    {{"gpt", "next-token", KILN_DATA_LM, "val", "tokens", 32, 32}, kiln_gpt_init,
     kiln_gpt_read_widths},
};
enum { N_KINDS = sizeof kinds / sizeof kinds[0] };

kiln_status kiln_model_kind_get(const char *key, const char *name, const kiln_model_kind **out)
{
    char list[256] = "";
    for (int i = 0; i < N_KINDS; i++) {
        if (!strcmp(kinds[i].pub.name, name)) {
            *out = &kinds[i].pub;
            return KILN_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", kinds[i].pub.name);
    }
    *out = NULL;
    return KILN_ERROR(KILN_ERR_CONFIG, "%s: unknown model kind '%s' (kinds: %s)", key, name, list);
}

const kiln_model_kind_impl *kiln_model_kind_impl_of(const kiln_model_kind *kind)
{
    return (const kiln_model_kind_impl *)kind; /* pub is the first member */
}
