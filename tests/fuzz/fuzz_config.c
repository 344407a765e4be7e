/* Fuzz target: the YAML config reader and --set overrides, against the composed train schema
 * (every section kiln has) and one section read out of a job's config (as from a checkpoint).
 * The input is YAML text; lines after a line "--" are --set overrides. */
#include <stdlib.h>
#include <string.h>
#include "kiln/infer.h"
#include "kiln/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* NUL bytes inside stay: the reader must refuse them, not cut there */
    const char *sets[16];
    int n_sets = 0;
    char *split = strstr(text, "\n--\n");
    if (split) {
        *split = '\0';
        for (char *line = strtok(split + 4, "\n"); line && n_sets < 16; line = strtok(NULL, "\n"))
            sets[n_sets++] = line;
    }
    static kiln_train_config train;
    static kiln_infer_config infer;
    static kiln_model_config model;
    if (kiln_config_load_text(&kiln_train_schema, &train, text, "fuzz.yaml", sets, n_sets) == KILN_OK) {
        char *yaml = kiln_config_to_yaml(&kiln_train_schema, &train);
        /* what was accepted is emitted and read back the same */
        static kiln_train_config again;
        if (yaml && kiln_config_load_text(&kiln_train_schema, &again, yaml, "emitted", NULL, 0) != KILN_OK)
            abort();
        if (yaml && memcmp(&train, &again, sizeof train) != 0) abort();
        free(yaml);
    }
    (void)kiln_config_load_text(&kiln_infer_schema, &infer, text, "fuzz.yaml", sets, n_sets);
    (void)kiln_config_load_sections(&kiln_model_section, &model, text, "fuzz.yaml");
    kiln_error_clear();
    free(text);
    return 0;
}
