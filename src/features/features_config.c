/* The schema of a feature spec: the tables, the spine, the split, the features (one line each,
 * src/features/spec.c), composed with the placement and registry sections. */
#include <stddef.h>
#include "kiln/features.h"

#define KF(path, type, field, def, choices, help) \
    {path, type, offsetof(kiln_features_config, features.field) - offsetof(kiln_features_config, features), def, \
     choices, help}

static const kiln_cfg_key feature_keys[] = {
    KF("tables", KILN_CFG_STRING, tables, "", NULL,
       "the HDF5 file of the tables, each imported by `kiln data import csv FILE.csv TABLES.h5:/NAME`"),
    KF("spine.table", KILN_CFG_STRING, table, "", NULL, "the table whose rows get features (one output row each)"),
    KF("spine.time", KILN_CFG_STRING, time, "", NULL,
       "the spine's timestamp column: a feature of a row uses only what was known before this time"),
    KF("spine.label", KILN_CFG_STRING, label, "", NULL,
       "the label: COLUMN OP NUMBER (OP one of > >= < <= == !=), e.g. 'arr_delay > 15'; rows whose column is NA "
       "are left out"),
    KF("valid_from", KILN_CFG_STRING, valid_from, "", NULL,
       "ISO 8601 time: spine rows at or after it are the validation split, the rest train (and fit the transforms)"),
    KF("features", KILN_CFG_MAP, define, "", NULL,
       "NAME: KIND(...) [by KEY] [over DURATION] [at TIME] [within DURATION] [created COLUMN] [| TRANSFORM ...]; "
       "KIND: count sum mean min max std last (of TABLE.COLUMN, a window), asof, lookup, hour dow day month, column"),
    KF("threads", KILN_CFG_INT, threads, "0", "[0,)", "CPU threads (0 = the rank's cores)"),
};

static const kiln_cfg_schema feature_section = {"features", feature_keys, sizeof feature_keys / sizeof feature_keys[0],
                                                NULL, 0};

#define PART(section, field) {&section, offsetof(kiln_features_config, field)}
static const kiln_cfg_part feature_parts[] = {
    PART(feature_section, features),
    PART(kiln_placement_section, placement),
    PART(kiln_registry_section, registry),
    PART(kiln_registry_publish_section, registry),
};

const kiln_cfg_schema kiln_features_schema = {"features", NULL, 0, feature_parts,
                                              sizeof feature_parts / sizeof feature_parts[0]};
