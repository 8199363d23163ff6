/* lib/rx.c: PCRE2 with Ruby's regexp semantics; see rx.h. */
#include "rx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- per-thread match state ------------------------------------------------ */

typedef struct rx_tls {
    pcre2_match_data *md;
    uint32_t pairs;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    pcre2_match_context *lctx; /* rx_exec_limit's and rx_exec_budget's, with the limits set in it now */
    uint32_t lmatch, ldepth;
    PCRE2_SIZE loff;
} rx_tls;

static __thread rx_tls *tls;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
    rx_tls *t = p;
    if (!t)
        return;
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    pcre2_match_context_free(t->lctx);
    pcre2_jit_stack_free(t->jstack);
    free(t);
}

static void tls_init_key(void) { pthread_key_create(&tls_key, tls_free); }

static rx_tls *tls_get(uint32_t pairs)
{
    rx_tls *t = tls;
    if (!t) {
        pthread_once(&tls_once, tls_init_key);
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        t->mctx = pcre2_match_context_create(NULL);
        t->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
        t->lctx = pcre2_match_context_create(NULL);
        t->lmatch = t->ldepth = 10000000u; /* PCRE2's defaults */
        t->loff = PCRE2_UNSET;
        if (t->mctx && t->jstack)
            pcre2_jit_stack_assign(t->mctx, NULL, t->jstack);
        if (t->lctx && t->jstack)
            pcre2_jit_stack_assign(t->lctx, NULL, t->jstack);
        tls = t;
        pthread_setspecific(tls_key, t);
    }
    if (t->pairs < pairs) {
        uint32_t want = pairs < 32 ? 32 : pairs;
        pcre2_match_data *md = pcre2_match_data_create(want, NULL);
        if (!md)
            return NULL;
        pcre2_match_data_free(t->md);
        t->md = md;
        t->pairs = want;
    }
    return t;
}

void rx_thread_cleanup(void)
{
    if (tls) {
        pthread_setspecific(tls_key, NULL);
        tls_free(tls);
        tls = NULL;
    }
}

/* ---- Ruby -> PCRE2 ------------------------------------------------------------ */

static int is_flag_group(const char *s, size_t n, size_t i)
{
    /* s[i] == '(' && s[i+1] == '?': flags [imx-]+ followed by ')' or ':' */
    size_t j = i + 2;
    if (j >= n)
        return 0;
    size_t k = j;
    while (k < n && (s[k] == 'i' || s[k] == 'm' || s[k] == 'x' || s[k] == '-'))
        k++;
    return k > j && k < n && (s[k] == ')' || s[k] == ':');
}

static char *ruby_to_pcre(const char *s, size_t n)
{
    char *o = malloc(n * 12 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[++i];
            if (d == 'h' || d == 'H') {
                if (in_class && d == 'h') {
                    memcpy(o + j, "0-9a-fA-F", 9);
                    j += 9;
                } else if (!in_class) {
                    const char *rep = d == 'h' ? "[0-9a-fA-F]" : "[^0-9a-fA-F]";
                    size_t l = strlen(rep);
                    memcpy(o + j, rep, l);
                    j += l;
                } else {
                    o[j++] = '\\';
                    o[j++] = d;
                }
            } else {
                o[j++] = '\\';
                o[j++] = d;
            }
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < n && s[i + 1] == ':') { /* [:alpha:] */
                const char *e = memchr(s + i + 2, ']', n - i - 2);
                if (e && e[-1] == ':') {
                    size_t l = (size_t)(e - (s + i)) + 1;
                    memcpy(o + j, s + i, l);
                    j += l;
                    i += l - 1;
                    continue;
                }
            }
            if (c == ']')
                in_class = 0;
            o[j++] = c;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            o[j++] = c;
            if (i + 1 < n && s[i + 1] == '^')
                o[j++] = s[++i];
            if (i + 1 < n && s[i + 1] == ']') /* leading ] is literal */
                o[j++] = s[++i];
            continue;
        }
        if (c == '(' && i + 1 < n && s[i + 1] == '?' && is_flag_group(s, n, i)) {
            o[j++] = '(';
            o[j++] = '?';
            i += 2;
            while (s[i] != ')' && s[i] != ':') {
                o[j++] = s[i] == 'm' ? 's' : s[i];
                i++;
            }
            o[j++] = s[i];
            continue;
        }
        o[j++] = c;
    }
    o[j] = 0;
    return o;
}

int rx_compile(rx *r, const char *text, int flags, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    size_t n = strlen(text);
    const char *pat = text;
    size_t plen = n;
    if ((flags & RX_SLASHES) && n && text[0] == '/') {
        const char *rs = strrchr(text, '/');
        size_t pos = (size_t)(rs - text);
        if (pos + 3 < n) {
            snprintf(err, errlen, "invalid regexp: missing right slash: %s", text);
            return -1;
        }
        for (const char *f = rs + 1; *f; f++) {
            if (*f == 'i')
                flags |= RX_ICASE;
            else if (*f == 'm')
                flags |= RX_DOTALL;
        }
        pat = text + 1;
        plen = pos > 0 ? pos - 1 : 0;
    }
    char *conv = ruby_to_pcre(pat, plen);
    if (!conv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE | PCRE2_DUPNAMES;
    if (flags & RX_ICASE)
        opts |= PCRE2_CASELESS;
    if (flags & RX_DOTALL)
        opts |= PCRE2_DOTALL;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (cc)
        pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int ec;
    PCRE2_SIZE eo;
    r->code = pcre2_compile((PCRE2_SPTR)conv, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, cc);
    /* a second code for rx_exec_budget: an offset limit costs the first one
     * about 20% of a match, so it is kept apart */
    if (r->code && (flags & RX_GUARD)) {
        r->code_ol = pcre2_compile((PCRE2_SPTR)conv, PCRE2_ZERO_TERMINATED, opts | PCRE2_USE_OFFSET_LIMIT, &ec, &eo, cc);
        if (!r->code_ol) {
            pcre2_code_free(r->code);
            r->code = NULL;
        } else {
            r->jit_ol = pcre2_jit_compile(r->code_ol, PCRE2_JIT_COMPLETE) == 0;
        }
    }
    pcre2_compile_context_free(cc);
    free(conv);
    if (!r->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        if (flags & RX_SHORT_ERR)
            snprintf(err, errlen, "%s at offset %zu", (char *)msg, (size_t)eo);
        else
            snprintf(err, errlen, "invalid regexp '%s': %s", text, (char *)msg);
        return -1;
    }
    r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
    pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ncap);
    r->src = strdup(text);
    return 0;
}

void rx_free(rx *r)
{
    if (r->code)
        pcre2_code_free(r->code);
    if (r->code_ol)
        pcre2_code_free(r->code_ol);
    free(r->src);
    memset(r, 0, sizeof *r);
}

int rx_exec(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec) { return rx_exec_at(r, s, n, 0, ovec); }

int rx_exec_at(const rx *r, const uint8_t *s, size_t n, size_t start, const PCRE2_SIZE **ovec)
{
    rx_tls *t = tls_get(r->ncap + 1);
    if (!t)
        return -1;
    if (!s)
        s = (const uint8_t *)"";
    int rc = r->jit ? pcre2_jit_match(r->code, s, n, start, 0, t->md, t->mctx)
                    : pcre2_match(r->code, s, n, start, 0, t->md, t->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -1;
    if (ovec)
        *ovec = pcre2_get_ovector_pointer(t->md);
    return 1;
}

/* the limits of the next match with t->lctx (0: PCRE2's default, 10 million) */
static inline void lctx_set(rx_tls *t, uint32_t match, uint32_t depth, PCRE2_SIZE off)
{
    match = match ? match : 10000000u;
    depth = depth ? depth : 10000000u;
    if (t->lmatch != match)
        pcre2_set_match_limit(t->lctx, t->lmatch = match);
    if (t->ldepth != depth)
        pcre2_set_depth_limit(t->lctx, t->ldepth = depth);
    if (t->loff != off)
        pcre2_set_offset_limit(t->lctx, t->loff = off);
}

int rx_exec_limit(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec, uint32_t match_limit,
                  uint32_t depth_limit)
{
    rx_tls *t = tls_get(r->ncap + 1);
    if (!t || !t->lctx)
        return -1;
    if (!s)
        s = (const uint8_t *)"";
    lctx_set(t, match_limit, depth_limit, PCRE2_UNSET);
    int rc = r->jit ? pcre2_jit_match(r->code, s, n, 0, 0, t->md, t->lctx)
                    : pcre2_match(r->code, s, n, 0, 0, t->md, t->lctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT)
        return RX_LIMIT;
    if (rc < 0)
        return -1;
    if (ovec)
        *ovec = pcre2_get_ovector_pointer(t->md);
    return 1;
}

/* one call of rx_exec_budget: start positions start..last (last >= n: to the end) */
static int budget_call(const rx *r, rx_tls *t, const uint8_t *s, size_t n, size_t start, size_t last, uint32_t limit,
                       uint32_t depth)
{
    int ol = last < n;
    pcre2_code *code = ol ? r->code_ol : r->code;
    int jit = ol ? r->jit_ol : r->jit;
    lctx_set(t, limit, depth, ol ? (PCRE2_SIZE)last : PCRE2_UNSET);
    int rc = jit ? pcre2_jit_match(code, s, n, start, 0, t->md, t->lctx)
                 : pcre2_match(code, s, n, start, 0, t->md, t->lctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT)
        return RX_LIMIT;
    return rc < 0 ? -1 : 1;
}

/* 1 when the budget's time is spent (the first call starts the clock) */
static int budget_over(rx_budget *b)
{
    if (!b->time_ns)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (!b->t0)
        b->t0 = now;
    return now - b->t0 > b->time_ns;
}

int rx_exec_budget(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec, rx_budget *b)
{
    if (!r->code_ol) /* not compiled with RX_GUARD */
        return rx_exec_limit(r, s, n, ovec, b->match_limit, b->depth_limit);
    rx_tls *t = tls_get(r->ncap + 1);
    if (!t || !t->lctx)
        return -1;
    if (!s)
        s = (const uint8_t *)"";
    uint32_t big = b->match_limit ? b->match_limit : 10000000u;
    uint32_t fast = big < RX_FAST_LIMIT ? big : RX_FAST_LIMIT;
    size_t start = 0;
    if (n <= RX_FAST_SPAN) { /* the usual line: one search, as rx_exec_limit would do it */
        lctx_set(t, fast, b->depth_limit, PCRE2_UNSET);
        int rc = r->jit ? pcre2_jit_match(r->code, s, n, 0, 0, t->md, t->lctx)
                        : pcre2_match(r->code, s, n, 0, 0, t->md, t->lctx);
        if (rc >= 0) {
            if (ovec)
                *ovec = pcre2_get_ovector_pointer(t->md);
            return 1;
        }
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc != PCRE2_ERROR_MATCHLIMIT && rc != PCRE2_ERROR_DEPTHLIMIT && rc != PCRE2_ERROR_HEAPLIMIT &&
            rc != PCRE2_ERROR_JIT_STACKLIMIT)
            return -1;
        if (fast == big)
            return RX_LIMIT;
        /* a hard line: below, the slow pass over its one chunk */
    }
    int known_hard = n <= RX_FAST_SPAN;
    for (;;) {
        size_t last = n - start > RX_FAST_SPAN ? start + RX_FAST_SPAN - 1 : n;
        int rc = known_hard ? RX_LIMIT : budget_call(r, t, s, n, start, last, fast, b->depth_limit);
        known_hard = 0;
        if (rc == RX_LIMIT && fast < big) {
            /* some position of this chunk needs more: the chunk again, a few positions at a time, with the full limit */
            rc = 0;
            for (size_t s2 = start; rc == 0 && s2 <= last;) {
                if (budget_over(b))
                    return RX_TIMEOUT;
                size_t l2 = last - s2 >= RX_SLOW_SPAN ? s2 + RX_SLOW_SPAN - 1 : last;
                rc = budget_call(r, t, s, n, s2, l2, big, b->depth_limit);
                if (l2 >= n)
                    break;
                s2 = l2 + 1;
                while (s2 < n && (s[s2] & 0xc0) == 0x80)
                    s2++;
            }
        }
        if (rc != 0) {
            if (rc == 1 && ovec)
                *ovec = pcre2_get_ovector_pointer(t->md);
            return rc;
        }
        if (last >= n)
            return 0;
        if (budget_over(b))
            return RX_TIMEOUT;
        start = last + 1;
        while (start < n && (s[start] & 0xc0) == 0x80) /* a chunk starts on a character */
            start++;
    }
}

rx_name *rx_names(const rx *r, size_t *n)
{
    uint32_t count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    *n = 0;
    pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
    if (!count)
        return NULL;
    pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &table);
    rx_name *v = calloc(count, sizeof *v);
    if (!v)
        return NULL;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = table + (size_t)i * esize;
        v[i].group = (uint32_t)e[0] << 8 | e[1];
        v[i].name = (const char *)e + 2;
        v[i].len = strlen(v[i].name);
    }
    /* the table is sorted by name; Ruby reports names in pattern order */
    for (uint32_t i = 1; i < count; i++) {
        rx_name x = v[i];
        uint32_t j = i;
        while (j > 0 && v[j - 1].group > x.group) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    *n = count;
    return v;
}

int rx_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k + 1;
    }
    return 1;
}
