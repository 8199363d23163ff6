/* lib/u64map.c: the u64 -> u64 open-addressing map (contract in u64map.h). */
#include <stdlib.h>
#include <string.h>

#include "lib/u64map.h"

static int u64map_grow(u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    uint64_t *k = calloc(ncap, sizeof *k), *v = calloc(ncap, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = m->keys[i] & (ncap - 1);
        while (k[j])
            j = (j + 1) & (ncap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = ncap;
    return 0;
}

uint64_t *u64map_at(u64map *m, uint64_t key, int add, int *added)
{
    key = key ? key : 1;
    if (added)
        *added = 0;
    if (m->cap) {
        size_t j = key & (m->cap - 1);
        while (m->keys[j]) {
            if (m->keys[j] == key)
                return &m->vals[j];
            j = (j + 1) & (m->cap - 1);
        }
    }
    if (!add)
        return NULL;
    if ((m->n + 1) * 10 > m->cap * 7 && u64map_grow(m))
        return NULL;
    size_t j = key & (m->cap - 1);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->vals[j] = 0;
    m->n++;
    if (added)
        *added = 1;
    return &m->vals[j];
}

void u64map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
