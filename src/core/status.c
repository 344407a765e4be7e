/* Error recording for kiln_status: the first message of a failure chain plus a traceback of
 * the KILN_CHECK frames it passed. Thread-local, so the prefetch thread cannot clobber the
 * main thread's error. */
#include "kiln/status.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[4096];
static _Thread_local char err_trace[4096];

kiln_status kiln_error_at(kiln_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    snprintf(err_trace, sizeof err_trace, "  at %s:%d (%s)\n", file, line, kiln_status_name(code));
    return code;
}

void kiln_error_trace(const char *file, int line, const char *call)
{
    size_t used = strlen(err_trace);
    if (used + 1 < sizeof err_trace)
        snprintf(err_trace + used, sizeof err_trace - used, "  at %s:%d: %s\n", file, line, call);
}

const char *kiln_error_message(void) { return err_msg[0] ? err_msg : "(no message recorded)"; }
const char *kiln_error_traceback(void) { return err_trace; }

void kiln_error_clear(void)
{
    err_msg[0] = '\0';
    err_trace[0] = '\0';
}

const char *kiln_status_name(kiln_status s)
{
    switch (s) {
    case KILN_OK: return "ok";
    case KILN_ERR_ARG: return "invalid argument";
    case KILN_ERR_CONFIG: return "config error";
    case KILN_ERR_IO: return "I/O error";
    case KILN_ERR_DATA: return "data error";
    case KILN_ERR_CKPT: return "checkpoint error";
    case KILN_ERR_NOMEM: return "out of memory";
    case KILN_ERR_MPI: return "MPI error";
    case KILN_ERR_HDF5: return "HDF5 error";
    case KILN_ERR_NUMERIC: return "numerical error";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_INTERRUPTED: return "interrupted";
    case KILN_ERR_DEVICE: return "device error";
    case KILN_ERR_CONFLICT: return "conflict";
    case KILN_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
