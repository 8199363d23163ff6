/* aggregator/tagmatch.c: Fluentd's tag patterns; see tagmatch.h. */
#include "tagmatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rx.h"

static int match(const char *p, const char *t, int depth);

/* Try each alternative of the {a,b,c} group starting at p (which points at '{'). */
static int match_alts(const char *p, const char *t, int depth)
{
    const char *q = p + 1;
    int lvl = 1;
    const char *close = NULL;
    for (const char *s = q; *s; s++) {
        if (*s == '{')
            lvl++;
        else if (*s == '}' && --lvl == 0) {
            close = s;
            break;
        }
    }
    if (!close)
        return *t == '{' && match(p + 1, t + 1, depth + 1); /* unbalanced: literal */
    const char *rest = close + 1;
    size_t restlen = strlen(rest);
    const char *alt = q;
    lvl = 0;
    for (const char *s = q; s <= close; s++) {
        if (*s == '{')
            lvl++;
        else if (*s == '}' && s != close)
            lvl--;
        if ((lvl == 0 && *s == ',') || s == close) {
            size_t alen = (size_t)(s - alt);
            char *buf = malloc(alen + restlen + 1);
            if (!buf)
                return 0;
            memcpy(buf, alt, alen);
            memcpy(buf + alen, rest, restlen + 1);
            int ok = match(buf, t, depth + 1);
            free(buf);
            if (ok)
                return 1;
            alt = s + 1;
        }
    }
    return 0;
}

static int match(const char *p, const char *t, int depth)
{
    if (depth > 64)
        return 0;
    for (;;) {
        if (!*p)
            return !*t;
        if (p[0] == '.' && p[1] == '*' && p[2] == '*' && !p[3]) /* trailing ".**": "a.**" matches "a" too */
            return !*t || (*t == '.' && t[1]);
        if (p[0] == '*' && p[1] == '*') {
            const char *rest = p + 2;
            if (!*rest)
                return 1;
            if (*rest == '.') {
                /* "**.x": zero or more whole parts, then x */
                for (const char *s = t;; s++) {
                    if ((s == t || s[-1] == '.') && match(rest + 1, s, depth + 1))
                        return 1;
                    if (!*s)
                        return 0;
                }
            }
            for (const char *s = t;; s++) {
                if (match(rest, s, depth + 1))
                    return 1;
                if (!*s)
                    return 0;
            }
        }
        if (*p == '*') {
            /* one tag part: any run of non-dot characters */
            for (const char *s = t;; s++) {
                if (match(p + 1, s, depth + 1))
                    return 1;
                if (!*s || *s == '.')
                    return 0;
            }
        }
        if (*p == '{')
            return match_alts(p, t, depth);
        if (*p != *t)
            return 0;
        p++;
        t++;
    }
}

int route_pattern_match(const char *pattern, const char *tag) { return match(pattern, tag, 0); }

int route_patterns_match(const char *patterns, const char *tag)
{
    char one[1024];
    const char *s = patterns;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \t");
        if (!n)
            break;
        if (n < sizeof one) {
            memcpy(one, s, n);
            one[n] = 0;
            if (n >= 2 && one[0] == '/' && one[n - 1] == '/') {
                /* Fluentd 1.11.2+: <match /regexp/> (plans are cached per tag, so
                 * compiling here costs once per new tag) */
                rx re;
                char err[128], anchored[1100];
                int hit = 0;
                /* anchored on the whole tag, as Fluentd does */
                snprintf(anchored, sizeof anchored, "\\A(?:%.*s)\\z", (int)(n - 2), one + 1);
                if (rx_compile(&re, anchored, 0, err, sizeof err) == 0) {
                    hit = rx_match(&re, (const uint8_t *)tag, strlen(tag)) == 1;
                    rx_free(&re);
                }
                if (hit)
                    return 1;
            } else if (match(one, tag, 0)) {
                return 1;
            }
        }
        s += n;
    }
    return 0;
}
