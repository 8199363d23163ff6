/*
 * lib/u64map.h: a map from uint64_t keys to uint64_t values (open
 * addressing, linear probing), for keys that are already hashes: the slot is
 * the key's low bits, nothing is mixed in.
 *
 * Ownership: the map owns its two arrays. A zeroed u64map is an empty map;
 * u64map_free() releases the arrays and leaves it empty. One thread at a
 * time: the caller locks.
 * Key 0 marks an empty slot, so it is stored as key 1: 0 and 1 are the same
 * key (harmless for hashes, wrong for ids).
 * Growth: the capacity is a power of two, 1024 at the first insert, doubled
 * when an insert would fill it over 70 %. Entries are never removed. A
 * pointer into the map is valid until the next insert.
 */
#ifndef WEIR_U64MAP_H
#define WEIR_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct u64map {
    uint64_t *keys, *vals;
    size_t cap, n; /* n: keys held */
} u64map;

/* Pointer to the value of key, or NULL when absent. With `add`, an absent
 * key is inserted with value 0 (*added = 1 when added is not NULL); NULL
 * then means out of memory. */
uint64_t *u64map_at(u64map *m, uint64_t key, int add, int *added);
void u64map_free(u64map *m);

#endif
