/* `kiln features`: training sets built from event tables, correct in time (a feature at time t
 * sees only what was known before t), with fitted transforms (src/features/, docs/features.md).
 *
 * A feature spec is the job's config: the tables (imported by `kiln data import csv`), the
 * spine (the rows to build features for), the validation split by time, and the features, one
 * line each (src/features/spec.c):
 *   mean(flights.dep_delay) by origin over 1h      a windowed aggregate over [t - 1h, t)
 *   asof(weather.temp) by origin within 3h          the latest row at or before t
 *   lookup(planes.seats) by tailnum                 a static table
 *   hour()                                          a part of the spine's time
 * each optionally followed by transforms: `| fill_mean | standardize`. */
#ifndef KILN_FEATURES_H
#define KILN_FEATURES_H
#include "kiln/comm.h"
#include "kiln/config.h"
#include "kiln/job.h"
#include "kiln/registry.h"
#include "kiln/topo.h"

typedef struct kiln_features_config {
    struct {
        kiln_cfg_str tables;        /* the HDF5 file holding the tables (groups) */
        kiln_cfg_str table;         /* spine.table */
        kiln_cfg_str time;          /* spine.time: its timestamp column */
        kiln_cfg_str label;         /* spine.label: COLUMN OP NUMBER, e.g. "arr_delay > 15" */
        kiln_cfg_str valid_from;    /* spine rows at or after this ISO time are the validation split */
        kiln_cfg_map define;        /* features.NAME: "KIND(...) by ... | transform | ..." */
        int threads;
    } features;
    kiln_placement_config placement;
    kiln_registry_config registry;
} kiln_features_config;

extern const kiln_cfg_schema kiln_features_schema;

/* `kiln features build` (state NULL) and `kiln features apply` (state: a build's output, a file
 * or registry:NAME@ALIAS, whose fitted transforms are used): collective over comm's world, each
 * rank computing its share; the same file on any number of ranks. */
kiln_status kiln_features_build(const kiln_features_config *c, const char *config_yaml, const char *state,
                                const char *output, kiln_comm *comm);
extern const kiln_job_kind kiln_features_job;

#endif
