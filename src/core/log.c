/* Rank-aware logging to stderr with a time stamp relative to start-up. In a Slurm job the
 * prefix carries the job (and step) id, so lines from a requeued job's runs, appended to one
 * log, and lines gathered from many jobs say where they came from. */
#include "kiln/log.h"
#include "kiln/runtime.h"
#include "kiln/slurm.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int log_rank;
static int log_all_ranks;
static kiln_log_level log_level = KILN_LOG_INFO;
static double log_t0;
static char log_job[48]; /* "123.0 " (job.step) in a Slurm job, else empty */

static kiln_log_level level_from_env(void)
{
    const char *s = getenv("KILN_LOG");
    if (!s || !*s) return KILN_LOG_INFO;
    if (!strcmp(s, "debug")) return KILN_LOG_DEBUG;
    if (!strcmp(s, "warn")) return KILN_LOG_WARN;
    if (!strcmp(s, "error")) return KILN_LOG_ERROR;
    return KILN_LOG_INFO;
}

void kiln_log_init(int rank)
{
    log_rank = rank;
    log_level = level_from_env();
    const char *all = getenv("KILN_LOG_ALL_RANKS");
    log_all_ranks = all && !strcmp(all, "1");
    log_t0 = kiln_time_s();
    const kiln_slurm_job *job = kiln_slurm();
    if (job->in_job && job->step_id >= 0)
        snprintf(log_job, sizeof log_job, "%s.%d ", job->job_id, job->step_id);
    else if (job->in_job)
        snprintf(log_job, sizeof log_job, "%s ", job->job_id);
}

int kiln_log_enabled(kiln_log_level level)
{
    if (level < log_level) return 0;
    if (level <= KILN_LOG_INFO && log_rank != 0 && !log_all_ranks) return 0;
    return 1;
}

void kiln_log(kiln_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!kiln_log_enabled(level)) return;
    if (log_t0 == 0.0) log_t0 = kiln_time_s();
    double t = kiln_time_s() - log_t0;
    char line[8192];
    int n = snprintf(line, sizeof line, "[kiln %sr%d %8.2fs %s] ", log_job, log_rank, t, names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line); /* one write per line keeps ranks' lines whole */
}
