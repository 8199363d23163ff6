/*
 * aggregator/tagmatch.h: Fluentd's tag patterns, as <match>, <filter> and
 * the tap use them.
 *
 *   a.b        exactly that tag
 *   *          one tag part (any run of characters without a dot)
 *   **         zero or more tag parts (`a.**` matches `a` too, `**.x`
 *              matches `x`)
 *   {a,b}      alternatives (nested alternatives allowed)
 *   /regexp/   (Fluentd 1.11.2+) a regular expression anchored on the whole
 *              tag
 *
 * A directive has several space-separated patterns: any one matching is a
 * match. Patterns are matched as text each time (the router caches the
 * outcome per tag in its plans: aggregator/router.c).
 */
#ifndef WEIR_TAGMATCH_H
#define WEIR_TAGMATCH_H

int route_pattern_match(const char *pattern, const char *tag);   /* one pattern (no /regexp/) */
int route_patterns_match(const char *patterns, const char *tag); /* space separated list */

#endif
