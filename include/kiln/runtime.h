/* Process-wide runtime: threads and stop requests (SIGTERM/SIGUSR1, e.g. Slurm preemption). */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H
#include <stdint.h>

/* Seconds on a monotonic clock (for intervals and rates). */
double kiln_time_s(void);

/* Part `part` of `parts` equal contiguous parts of [0, n) (a rank's share of rows or bytes):
 * [*first, *first + *count), the sizes differing by at most one, without overflow. */
void kiln_part_of(uint64_t n, int part, int parts, uint64_t *first, uint64_t *count);

/* Exit code of a job that stopped at a safe point after a signal, checkpoint written. */
#define KILN_EXIT_PREEMPTED 75

/* Set OpenMP and OpenBLAS threads; n <= 0 keeps the default (OMP_NUM_THREADS or all cores).
 * Returns the number in effect. */
int kiln_threads_set(int n);

/* Catch SIGTERM and SIGUSR1: they only set a flag that long jobs poll at safe points. */
void kiln_signals_install(void);
/* The signal number received, or 0. */
int kiln_signals_pending(void);

/* A deadline for a call that can wait forever on a peer that has already given up (HDF5
 * closing a file collectively after a rank's write failed): unless disarmed within `seconds`,
 * the message goes to stderr and the process exits with code 1, which ends an MPI job. */
void kiln_watchdog_arm(unsigned seconds, const char *message);
void kiln_watchdog_disarm(void);

#endif
