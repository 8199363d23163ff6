/*
 * outputs/loki/grow.h: LK_GROW(arr, n, cap): room for one more element of a
 * malloc'd array (n used, cap allocated; 64, then doubling). 0, or -1 on
 * OOM, when the old array has been freed and arr is NULL.
 */
#ifndef WEIR_LOKI_GROW_H
#define WEIR_LOKI_GROW_H

#include <stdlib.h>

static inline void *lk_realloc_or_free(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        free(p);
    return q;
}

#define LK_GROW(arr, n, cap)                                                                                    \
    ((n) < (cap) ? 0                                                                                            \
                 : ((cap) = (cap) ? (cap) * 2 : 64, (arr) = lk_realloc_or_free((arr), (cap) * sizeof *(arr)), \
                    (arr) ? 0 : -1))

#endif
