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
void kiln_strdict_free(kiln_strdict *d);

#endif
