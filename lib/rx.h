/*
 * lib/rx.h: regular expressions for filters and parsers, PCRE2 with
 * Ruby's (Fluentd's) semantics where they differ:
 *   - `^` and `$` are always line anchors (Ruby has no single-line mode);
 *   - Ruby's /m (and inline (?m)) means "dot matches newline" (PCRE2_DOTALL);
 *   - \h / \H are hex digit / non-hex-digit (PCRE2 reads them as horizontal
 *     space);
 *   - subjects are UTF-8; invalid sequences never crash and never match a
 *     character (PCRE2_MATCH_INVALID_UTF).
 *
 * Compiled once at configuration time (JIT when available) and immutable
 * afterwards: one rx may be matched by several threads at once. The match
 * data a match needs is per thread (thread-local, grown as needed, freed at
 * thread exit; rx_thread_cleanup() frees it early).
 */
#ifndef WEIR_RX_H
#define WEIR_RX_H

#include <stddef.h>
#include <stdint.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

typedef struct rx {
    pcre2_code *code;
    int jit;       /* JIT-compiled: matched with pcre2_jit_match */
    uint32_t ncap; /* capture groups (not counting the whole match) */
    char *src;     /* as configured, for messages */
} rx;

enum {
    RX_SLASHES = 1, /* Fluentd's :regexp parameter type: "/re/flags" (flags i, m) or a bare pattern */
    RX_ICASE = 2,
    RX_DOTALL = 4, /* Ruby's /m */
};

/* Compile `text`. Returns 0, or -1 with a message in err (no FILE:LINE). */
int rx_compile(rx *r, const char *text, int flags, char *err, size_t errlen);
void rx_free(rx *r);

/* Match anywhere in s[0..n). Returns 1 on a match, 0 if none, -1 on a PCRE2
 * error (match limit...). When ovec is not NULL it receives the thread's
 * ovector (2 * (ncap + 1) offsets, PCRE2_UNSET for unset groups), valid until
 * the next rx_* call on this thread. */
int rx_exec(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec);
static inline int rx_match(const rx *r, const uint8_t *s, size_t n) { return rx_exec(r, s, n, NULL); }

/* Named groups in the order they appear in the pattern (Ruby's names order). */
typedef struct rx_name {
    const char *name; /* points into the compiled pattern's name table */
    size_t len;
    uint32_t group;
} rx_name;
/* Returns a malloc'd array (*n entries; NULL with *n = 0 if none). */
rx_name *rx_names(const rx *r, size_t *n);

/* 1 if s[0..n) is valid UTF-8. */
int rx_utf8_valid(const uint8_t *s, size_t n);

void rx_thread_cleanup(void);

#endif
