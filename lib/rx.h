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
    pcre2_code *code_ol; /* RX_GUARD: the same with PCRE2_USE_OFFSET_LIMIT, for rx_exec_budget's chunks */
    int jit_ol;
    uint32_t ncap; /* capture groups (not counting the whole match) */
    char *src;     /* as configured, for messages */
} rx;

enum {
    RX_SLASHES = 1, /* Fluentd's :regexp parameter type: "/re/flags" (flags i, m) or a bare pattern */
    RX_ICASE = 2,
    RX_DOTALL = 4, /* Ruby's /m */
    RX_SHORT_ERR = 8, /* an error message without the pattern's text: "PCRE2's message at offset N" */
    RX_GUARD = 16,    /* also compile what rx_exec_budget needs (a second code, with an offset limit) */
};

/* Compile `text`. Returns 0, or -1 with a message in err (no FILE:LINE). */
int rx_compile(rx *r, const char *text, int flags, char *err, size_t errlen);
void rx_free(rx *r);

/* Match anywhere in s[0..n). Returns 1 on a match, 0 if none, -1 on a PCRE2
 * error (match limit...). When ovec is not NULL it receives the thread's
 * ovector (2 * (ncap + 1) offsets, PCRE2_UNSET for unset groups), valid until
 * the next rx_* call on this thread. */
int rx_exec(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec);
/* rx_exec from the byte offset `start` of s (anchors and lookbehinds see
 * the whole subject): the matches after an earlier one (gsub, scan). */
int rx_exec_at(const rx *r, const uint8_t *s, size_t n, size_t start, const PCRE2_SIZE **ovec);
static inline int rx_match(const rx *r, const uint8_t *s, size_t n) { return rx_exec(r, s, n, NULL); }

/* rx_exec under PCRE2's limits: match_limit bounds the backtracking steps
 * (pcre2_set_match_limit; JIT too), depth_limit the nesting of the
 * interpreter (used when JIT is unavailable); 0 keeps PCRE2's default.
 * PCRE2 applies both to each start position of an unanchored search, so
 * the steps of one call can reach (positions tried) x match_limit: see
 * rx_exec_budget for a bound on the whole search. Returns 1, 0, RX_LIMIT
 * when a limit (or the JIT stack) was hit, or -1 on another error. */
enum { RX_LIMIT = -2, RX_TIMEOUT = -3 };
int rx_exec_limit(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec, uint32_t match_limit,
                  uint32_t depth_limit);

/* A budget shared by the searches of one text (grok: every pattern tried on
 * one record). match_limit and depth_limit are PCRE2's, per start position
 * (0: PCRE2's default); time_ns bounds the time of all the searches that
 * share the budget (0: none; t0 starts at 0 and is set by the first check). */
typedef struct rx_budget {
    uint32_t match_limit, depth_limit;
    uint64_t time_ns, t0;
} rx_budget;

/* rx_exec (r compiled with RX_GUARD) whose whole search is bounded. The
 * start positions are searched in chunks (a PCRE2 offset limit), first with
 * a small per-position limit (RX_FAST_LIMIT: what ordinary patterns on
 * ordinary lines need is far below); the positions of a chunk where that was
 * not enough are searched again, a few at a time, with b->match_limit; the
 * clock is read between chunks only (a line of at most RX_FAST_SPAN bytes
 * that no position makes hard reads none). So one record's steps are at
 * most about b->time_ns worth plus RX_SLOW_SPAN x match_limit, whatever the
 * line, instead of (line length) x match_limit. The result is the same as
 * rx_exec's when no limit is hit. Returns 1, 0, RX_LIMIT (a position needed
 * more than match_limit or depth_limit), RX_TIMEOUT (the time budget ran
 * out), or -1. */
#define RX_FAST_LIMIT 2000u
#define RX_FAST_SPAN 1024u
#define RX_SLOW_SPAN 16u
int rx_exec_budget(const rx *r, const uint8_t *s, size_t n, const PCRE2_SIZE **ovec, rx_budget *b);

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
