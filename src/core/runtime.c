/* Threads and stop requests. A signal handler may only set a flag; the job notices it at the
 * next safe point (end of a step), writes a checkpoint and exits with KILN_EXIT_PREEMPTED. */
#include "kiln/runtime.h"
#include <cblas.h>
#include <omp.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

double kiln_time_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_stop_signal(int sig) { stop_signal = sig; }

void kiln_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int kiln_signals_pending(void) { return (int)stop_signal; }

int kiln_threads_set(int n)
{
    if (n > 0) omp_set_num_threads(n);
    int threads = omp_get_max_threads();
    /* OpenBLAS keeps its own pool; match it so GEMMs and OpenMP kernels use the same cores */
    openblas_set_num_threads(threads);
    return threads;
}

/* ---- the watchdog ---- */

static char watchdog_message[1024];
static size_t watchdog_len;

static void on_watchdog(int sig)
{
    (void)sig;
    ssize_t ignored = write(2, watchdog_message, watchdog_len);
    (void)ignored;
    _exit(1);
}

void kiln_watchdog_arm(unsigned seconds, const char *message)
{
    int n = snprintf(watchdog_message, sizeof watchdog_message, "%s\n", message);
    watchdog_len = n > 0 && (size_t)n < sizeof watchdog_message ? (size_t)n : sizeof watchdog_message - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds ? seconds : 1);
}

void kiln_watchdog_disarm(void) { alarm(0); }

void kiln_part_of(uint64_t n, int part, int parts, uint64_t *first, uint64_t *count)
{
    /* n * part / parts without overflow: n < 2^64, parts < 2^31 */
    uint64_t q = n / (uint64_t)parts, r = n % (uint64_t)parts;
    uint64_t lo = q * (uint64_t)part + r * (uint64_t)part / (uint64_t)parts;
    uint64_t hi = q * (uint64_t)(part + 1) + r * (uint64_t)(part + 1) / (uint64_t)parts;
    *first = lo, *count = hi - lo;
}
