/* The `backend` config section: which compute backend a job runs on. */
#include <stddef.h>
#include "kiln/backend.h"

static const kiln_cfg_key backend_keys[] = {
    {"backend.name", KILN_CFG_STRING, offsetof(kiln_backend_config, name), "cpu", "cpu|cuda",
     "compute backend"},
};

const kiln_cfg_schema kiln_backend_section = {"backend", backend_keys, 1, NULL, 0};
