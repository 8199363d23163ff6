/*
 * lib/array.h: arrays that grow one element at a time with realloc, for
 * what is built once from the configuration (rules, routes, users, parts of
 * a template): not for hot paths, where a capacity saves the reallocs.
 *
 *   rt_field *fd = ARRAY_PUSH(c->fields, c->nfields);   new zeroed last element, or NULL
 *   *ARRAY_XPUSH(r->labels, r->nlabels) = l;             the same; out of memory aborts
 *   ARRAY_APPEND(p->sources, p->nsources, src);          a copy of a value: 0, or -1
 *
 * `arr` is the array (a T *, NULL when empty) and `n` its size_t count, both
 * lvalues, each evaluated more than once. Out of memory leaves both as they
 * were (but for ARRAY_XPUSH, which logs and aborts).
 */
#ifndef WEIR_LIB_ARRAY_H
#define WEIR_LIB_ARRAY_H

#include <stddef.h>
#include <stdlib.h>

/* The functions behind the macros: arrp points to the array pointer. */
void *array_push(void *arrp, size_t *n, size_t size);
void *array_xpush(void *arrp, size_t *n, size_t size);
int array_append(void *arrp, size_t *n, size_t size, const void *v);

#define ARRAY_PUSH(arr, n) ((__typeof__(arr))array_push(&(arr), &(n), sizeof *(arr)))
#define ARRAY_XPUSH(arr, n) ((__typeof__(arr))array_xpush(&(arr), &(n), sizeof *(arr)))
#define ARRAY_APPEND(arr, n, v) array_append(&(arr), &(n), sizeof *(arr), (__typeof__(*(arr))[1]){(v)})

/* free() the first n pointers of the array arr (malloc'd strings, say),
 * then arr; arr may be NULL. */
#define ARRAY_FREE_ALL(arr, n)                                                                                         \
    do {                                                                                                               \
        for (size_t array_i_ = 0; (arr) && array_i_ < (size_t)(n); array_i_++)                                         \
            free((arr)[array_i_]);                                                                                     \
        free(arr);                                                                                                     \
    } while (0)

#endif
