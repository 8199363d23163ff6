/*
 * aggregator/router.h: Fluentd tag patterns and the route table.
 *
 * Patterns: `*` one tag part, `**` zero or more parts (`a.**` matches `a`),
 * `{a,b}` alternatives, several space-separated patterns per directive.
 * This stage routes each batch to the first <match> whose pattern matches
 * (Fluentd's rule); filters, labels and copy come with the routing issue.
 * The table is immutable once built and read by every worker thread.
 */
#ifndef WEIR_ROUTER_H
#define WEIR_ROUTER_H

#include "aggregator/output.h"

int route_pattern_match(const char *pattern, const char *tag); /* one pattern */
int route_patterns_match(const char *patterns, const char *tag); /* space separated list */

typedef struct route {
    char *patterns;
    output *out;
} route;

typedef struct router {
    route *routes;
    size_t n;
} router;

output *router_match(const router *r, const char *tag);
int router_congested(const router *r);

#endif
