/* Strings interned to dense ids in order of first appearance (a hash table with open
 * addressing): categories of a CSV column, keys matched across tables. */
#ifndef KILN_STRDICT_H
#define KILN_STRDICT_H
#include <stdint.h>
#include "kiln/status.h"

typedef struct kiln_strdict {
    char **s;                          /* s[id]: the strings, in order of first appearance */
    int64_t n, cap;
    int64_t *slots;                    /* id + 1; 0: empty */
    uint64_t n_slots;
} kiln_strdict;

/* The id of s, added when new (KILN_ERR_NOMEM when memory runs out). */
kiln_status kiln_strdict_intern(kiln_strdict *d, const char *s, int64_t *id);
/* The id of s, or -1 when it was never interned. */
int64_t kiln_strdict_find(const kiln_strdict *d, const char *s);
void kiln_strdict_free(kiln_strdict *d);
/* 64-bit FNV-1a of s's bytes (offset basis 14695981039346656037, prime 1099511628211): stable
 * across machines and runs, so a hashed feature is reproducible anywhere. */
uint64_t kiln_strdict_hash(const char *s);

#endif
