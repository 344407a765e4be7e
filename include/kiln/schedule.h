/* Pipeline schedules as tables (src/parallel/schedule.c): for each stage rank, the order in which
 * it runs the forward and backward of each micro-batch on each of its model chunks. The trainer
 * executes a table; tests and `kiln topo schedule` print and check them.
 *
 *   gpipe        every forward, then every backward: simple, holds all m micro-batches'
 *                activations, bubble (pp - 1) / (m + pp - 1) of the step
 *   1f1b         pp - 1 - stage forwards to fill the pipe, then one forward one backward, then
 *                the backwards left: the same bubble, at most pp - stage micro-batches held
 *   interleaved  1F1B over v chunks a rank (model stage c * pp + s on rank s): the bubble shrinks
 *                to (pp - 1) / (v m + pp - 1); m must be a multiple of pp
 *
 * The model has pp * v stages (chunks); chunk c of rank s is model stage c * pp + s. */
#ifndef KILN_SCHEDULE_H
#define KILN_SCHEDULE_H
#include <stdint.h>
#include "kiln/status.h"

typedef enum { KILN_PP_GPIPE = 0, KILN_PP_1F1B, KILN_PP_INTERLEAVED } kiln_pp_schedule;

typedef struct kiln_pp_action {
    uint8_t backward;                  /* 0: forward, 1: backward */
    int32_t micro;                     /* the micro-batch, 0 .. m-1 */
    int32_t chunk;                     /* the rank's model chunk, 0 .. v-1 */
} kiln_pp_action;

/* The schedule's name ("gpipe", "1f1b", "interleaved") to its kind; 0 when it is none. */
int kiln_pp_schedule_parse(const char *name, kiln_pp_schedule *out);
const char *kiln_pp_schedule_name(kiln_pp_schedule s);

/* What cannot run: KILN_ERR_CONFIG naming the parallel.* and train.* keys (pp, v, m are
 * parallel.pp, parallel.virtual_stages and train.batch_size / train.micro_batch). */
kiln_status kiln_pp_schedule_check(kiln_pp_schedule s, int pp, int v, int m);

/* Rank `stage`'s table: 2 m v actions into *out (the caller frees), in the order it runs them. */
kiln_status kiln_pp_schedule_table(kiln_pp_schedule s, int pp, int v, int m, int stage, kiln_pp_action **out,
                                   int *n);

/* The most micro-batch chunks whose activations a stage holds at once under the schedule (a
 * forward holds them until its backward): gpipe m v; 1f1b pp - stage; interleaved its warm-up
 * + 1, in chunks. */
int kiln_pp_schedule_bound(kiln_pp_schedule s, int pp, int v, int m, int stage);

/* Runs every rank's table against the pipeline's dependencies (a chunk's forward needs the
 * previous model stage's; its backward the next stage's backward and its own forward), each
 * forward taking t_fwd and each backward t_bwd (for one whole stage; a chunk takes 1/v of it),
 * communication free. Per stage: the time it idles within the step, and the most activations
 * it held. The step is the time the last action ends. KILN_ERR_INTERNAL when the tables
 * deadlock or break a dependency. */
typedef struct kiln_pp_timeline {
    double step;
    double idle[64];                   /* per stage (pp <= 64) */
    int held[64];
} kiln_pp_timeline;
kiln_status kiln_pp_schedule_simulate(kiln_pp_schedule s, int pp, int v, int m, double t_fwd, double t_bwd,
                                      kiln_pp_timeline *out);

/* The bubble's share of the step in theory: (pp - 1) / (m + pp - 1), interleaved
 * (pp - 1) / (v m + pp - 1). */
double kiln_pp_bubble_theory(kiln_pp_schedule s, int pp, int v, int m);

#endif
