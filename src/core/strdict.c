/* Interned strings: ids in order of first appearance, found by an FNV-1a hash with linear
 * probing, the table kept at most half full. */
#include <stdlib.h>
#include <string.h>
#include "kiln/strdict.h"

uint64_t kiln_strdict_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64: offset basis, then the prime */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static kiln_status rehash(kiln_strdict *d)
{
    uint64_t n = d->n_slots ? 2 * d->n_slots : 1024;
    int64_t *slots = calloc(n, sizeof *slots);
    KILN_CHECK_ALLOC(slots);
    for (int64_t i = 0; i < d->n; i++) {
        uint64_t h = kiln_strdict_hash(d->s[i]) & (n - 1);
        while (slots[h]) h = (h + 1) & (n - 1);
        slots[h] = i + 1;
    }
    free(d->slots);
    d->slots = slots, d->n_slots = n;
    return KILN_OK;
}

kiln_status kiln_strdict_intern(kiln_strdict *d, const char *s, int64_t *id)
{
    if ((uint64_t)d->n * 2 >= d->n_slots) KILN_CHECK(rehash(d));
    uint64_t h = kiln_strdict_hash(s) & (d->n_slots - 1);
    for (; d->slots[h]; h = (h + 1) & (d->n_slots - 1))
        if (!strcmp(d->s[d->slots[h] - 1], s)) return *id = d->slots[h] - 1, KILN_OK;
    if (d->n == d->cap) {
        int64_t cap = d->cap ? 2 * d->cap : 64;
        char **g = realloc(d->s, (size_t)cap * sizeof *g);
        KILN_CHECK_ALLOC(g);
        d->s = g, d->cap = cap;
    }
    d->s[d->n] = strdup(s);
    KILN_CHECK_ALLOC(d->s[d->n]);
    d->slots[h] = d->n + 1;
    *id = d->n++;
    return KILN_OK;
}

int64_t kiln_strdict_find(const kiln_strdict *d, const char *s)
{
    if (!d->n_slots) return -1;
    for (uint64_t h = kiln_strdict_hash(s) & (d->n_slots - 1); d->slots[h]; h = (h + 1) & (d->n_slots - 1))
        if (!strcmp(d->s[d->slots[h] - 1], s)) return d->slots[h] - 1;
    return -1;
}

void kiln_strdict_free(kiln_strdict *d)
{
    for (int64_t i = 0; i < d->n; i++) free(d->s[i]);
    free(d->s), free(d->slots);
    memset(d, 0, sizeof *d);
}
