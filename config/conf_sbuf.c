/*
 * config/conf_sbuf.c: the string builder (sbuf, conf_int.h) the parser's
 * units build values, paths and expansions with. Out of memory aborts.
 */
#include "config/conf_int.h"

#include <stdlib.h>
#include <string.h>

void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->d = xrealloc(b->d, cap);
        b->cap = cap;
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = '\0';
}

void sb_putc(sbuf *b, char c)
{
    sb_putn(b, &c, 1);
}

void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

char *sb_take(sbuf *b)
{
    char *s = b->d ? b->d : xstrdup("");
    *b = (sbuf){0};
    return s;
}

void sb_free(sbuf *b)
{
    free(b->d);
    *b = (sbuf){0};
}
