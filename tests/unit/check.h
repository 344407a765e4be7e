/* Minimal test harness for unit tests: CHECK fails loudly with file:line and keeps going,
 * TEST_MAIN_END prints "N passed, N failed" and returns non-zero on any failure. */
#ifndef KILN_TEST_CHECK_H
#define KILN_TEST_CHECK_H
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/status.h"

static int test_passed, test_failed;

/* Entries of dir whose names end in suffix (-1 when dir cannot be listed). */
static inline int count_files_with_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    size_t ls = strlen(suffix);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        n += len >= ls && !strcmp(e->d_name + len - ls, suffix);
    }
    closedir(d);
    return n;
}

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            test_passed++;                                                                 \
        } else {                                                                           \
            test_failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
        }                                                                                  \
    } while (0)

/* A kiln call that must succeed; prints the recorded error and traceback otherwise. */
#define CHECK_OK(call)                                                                     \
    do {                                                                                   \
        kiln_status s_ = (call);                                                           \
        CHECK(s_ == KILN_OK, "%s -> %s: %s\n%s", #call, kiln_status_name(s_),              \
              kiln_error_message(), kiln_error_traceback());                               \
        kiln_error_clear();                                                                \
    } while (0)

/* A kiln call that must fail with status `want` and a message containing `needle`. */
#define CHECK_FAILS(call, want, needle)                                                    \
    do {                                                                                   \
        kiln_error_clear();                                                                \
        kiln_status s_ = (call);                                                           \
        CHECK(s_ == (want), "%s returned %s, expected %s (%s)", #call, kiln_status_name(s_), \
              kiln_status_name(want), kiln_error_message());                               \
        CHECK(strstr(kiln_error_message(), (needle)) != NULL,                              \
              "message of %s lacks \"%s\": %s", #call, (needle), kiln_error_message());    \
        kiln_error_clear();                                                                \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, rtol, atol, what)                                                \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_), "%s: %.9g vs %.9g", (what), a_, b_); \
    } while (0)

#define TEST_MAIN_END()                                                                    \
    do {                                                                                   \
        printf("%d passed, %d failed\n", test_passed, test_failed);                        \
        return test_failed ? 1 : (test_passed ? 0 : 2);                                    \
    } while (0)

#endif
