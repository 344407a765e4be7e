/* Rank-aware logging. Level from KILN_LOG (debug|info|warn|error, default info).
 * info and debug print on rank 0 only unless KILN_LOG_ALL_RANKS=1; warnings and errors
 * print on every rank, prefixed with the rank so a multi-rank log says who spoke. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

typedef enum { KILN_LOG_DEBUG = 0, KILN_LOG_INFO, KILN_LOG_WARN, KILN_LOG_ERROR } kiln_log_level;

void kiln_log_init(int rank);
int kiln_log_enabled(kiln_log_level level);
void kiln_log(kiln_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define kiln_debug(...) kiln_log(KILN_LOG_DEBUG, __VA_ARGS__)
#define kiln_info(...) kiln_log(KILN_LOG_INFO, __VA_ARGS__)
#define kiln_warn(...) kiln_log(KILN_LOG_WARN, __VA_ARGS__)
#define kiln_errorf(...) kiln_log(KILN_LOG_ERROR, __VA_ARGS__)

#endif
