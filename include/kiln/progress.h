/* Progress for long work, on rank 0 only: a live bar when stderr is a terminal, otherwise a
 * plain line every `interval` seconds (logs of batch jobs stay readable). */
#ifndef KILN_PROGRESS_H
#define KILN_PROGRESS_H
#include <stdint.h>

typedef struct kiln_progress kiln_progress;

kiln_progress *kiln_progress_start(const char *what, uint64_t total, double interval_s, int rank);
/* done = units finished so far; extra = short text shown after the bar (may be NULL). */
void kiln_progress_update(kiln_progress *p, uint64_t done, const char *extra);
void kiln_progress_finish(kiln_progress *p);

#endif
