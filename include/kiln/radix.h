/* Sorting 64-bit keys in linear time (src/core/radix.c): the feature builds sort millions of
 * (key, time) rows and training values, where a comparison sort was most of their time. */
#ifndef KILN_RADIX_H
#define KILN_RADIX_H
#include <stdint.h>
#include "kiln/status.h"

/* Sorts the n keys ascending, carrying values[i] along (values may be NULL), stably: equal keys
 * keep their order. Only the low `bits` bits of a key may be set. LSD radix with 16-bit digits,
 * a digit that all keys share skipped; scratch of 16 bytes a pair (KILN_ERR_NOMEM without it). */
kiln_status kiln_radix_sort(uint64_t *keys, uint64_t *values, uint64_t n, int bits);

/* A double as a key that sorts as the numbers do (-inf < ... < -0 < 0 < ... < inf), and back. */
uint64_t kiln_radix_of_double(double x);
double kiln_radix_to_double(uint64_t k);

#endif
