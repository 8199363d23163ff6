/*
 * aggregator/params.h: `weir --list-params`: every parameter table (core
 * sections, then every plugin in registry order with its sub-sections) as
 * Markdown, one section per table:
 *
 *   <!-- params:NAME -->
 *   ### heading
 *
 *   | parameter | type | default | description |
 *   ...
 *
 * scripts/gen-config-docs.py (make docs, make docs-check) puts each table
 * between the <!-- params:NAME --> and <!-- /params:NAME --> markers of
 * docs/configuration.md and docs/outputs/ (*.md). Deterministic; needs no
 * configuration.
 */
#ifndef WEIR_PARAMS_H
#define WEIR_PARAMS_H

#include <stdio.h>

/* Print every table to `out`. 0, or -1 when a row has no description (said
 * on stderr; the listing is still complete). */
int params_list(FILE *out);

#endif
