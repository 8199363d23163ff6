/* lib/array.c: arrays grown one element at a time; see array.h. */
#include "lib/array.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

void *array_push(void *arrp, size_t *n, size_t size)
{
    /* the array pointer is a T *: read and written as bytes, not through a void ** */
    void *arr;
    memcpy(&arr, arrp, sizeof arr);
    char *a = realloc(arr, (*n + 1) * size);
    if (!a)
        return NULL;
    memcpy(arrp, &a, sizeof a);
    char *e = a + *n * size;
    memset(e, 0, size);
    (*n)++;
    return e;
}

void *array_xpush(void *arrp, size_t *n, size_t size)
{
    void *e = array_push(arrp, n, size);
    if (!e) {
        wlog_error("weir", "out of memory");
        abort();
    }
    return e;
}

int array_append(void *arrp, size_t *n, size_t size, const void *v)
{
    void *e = array_push(arrp, n, size);
    if (!e)
        return -1;
    memcpy(e, v, size);
    return 0;
}
