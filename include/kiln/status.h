/* Status codes and the check macros that build a traceback.
 *
 * Every fallible function returns a kiln_status. The first failure records a message
 * (kiln_error); every KILN_CHECK it passes through on the way up appends "file:line: call",
 * so the top level can print what went wrong and where. Library code never exits. */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

/* A kiln_status cannot be dropped silently: under C23 (how kiln builds) and C++17 the type is
 * [[nodiscard]], so a call whose status is ignored is a warning (an error with KILN_WERROR);
 * `(void)call()` says the status is ignored on purpose. */
#if (defined(__STDC_VERSION__) && __STDC_VERSION__ > 201710L) || \
    (defined(__cplusplus) && __cplusplus >= 201703L)
#define KILN_NODISCARD [[nodiscard]]
#else
#define KILN_NODISCARD
#endif

typedef enum KILN_NODISCARD {
    KILN_OK = 0,
    KILN_ERR_ARG,         /* a caller passed something invalid */
    KILN_ERR_CONFIG,      /* bad YAML, unknown key, wrong type */
    KILN_ERR_IO,          /* open/read/write/rename/fsync failed */
    KILN_ERR_DATA,        /* a dataset file is missing, malformed or of the wrong shape */
    KILN_ERR_CKPT,        /* a checkpoint is missing, truncated or fails its checksum */
    KILN_ERR_NOMEM,
    KILN_ERR_MPI,
    KILN_ERR_HDF5,
    KILN_ERR_NUMERIC,     /* non-finite loss or gradient */
    KILN_ERR_UNSUPPORTED, /* no method X for backend Y */
    KILN_ERR_INTERRUPTED, /* a signal asked us to stop at a safe point */
    KILN_ERR_DEVICE,      /* a CUDA, cuBLAS or NCCL call failed, or no usable GPU */
    KILN_ERR_CONFLICT,    /* someone else changed it first (a compare-and-set lost) */
    KILN_ERR_INTERNAL
} kiln_status;

/* Records the first error of a failure chain (printf-style message) and returns code. */
kiln_status kiln_error_at(kiln_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends one traceback frame; used by the check macros. */
void kiln_error_trace(const char *file, int line, const char *call);
/* The recorded message (without traceback), and the traceback ("  at file:line: call" lines). */
const char *kiln_error_message(void);
const char *kiln_error_traceback(void);
void kiln_error_clear(void);
const char *kiln_status_name(kiln_status s);

#define KILN_ERROR(code, ...) kiln_error_at((code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failing status, adding this frame to the traceback. */
#define KILN_CHECK(call)                                                                   \
    do {                                                                                   \
        kiln_status kiln_s_ = (call);                                                      \
        if (kiln_s_ != KILN_OK) {                                                          \
            kiln_error_trace(__FILE__, __LINE__, #call);                                   \
            return kiln_s_;                                                                \
        }                                                                                  \
    } while (0)

/* Same, but store the status in st and jump to a cleanup label. */
#define KILN_CHECK_GOTO(st, call, label)                                                   \
    do {                                                                                   \
        (st) = (call);                                                                     \
        if ((st) != KILN_OK) {                                                             \
            kiln_error_trace(__FILE__, __LINE__, #call);                                   \
            goto label;                                                                    \
        }                                                                                  \
    } while (0)

/* Allocation that fails with a clear message. */
#define KILN_CHECK_ALLOC(ptr)                                                              \
    do {                                                                                   \
        if ((ptr) == NULL)                                                                 \
            return KILN_ERROR(KILN_ERR_NOMEM, "out of memory allocating %s", #ptr);        \
    } while (0)

#endif
