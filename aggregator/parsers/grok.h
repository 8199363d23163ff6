/*
 * aggregator/parsers/grok.h: grok patterns (fluent-plugin-grok-parser's
 * `%{NAME}`, `%{NAME:field}`, `%{NAME:field:type}` macros) for the `grok`
 * <parse> type (grok.c), its unit tests and fuzz target.
 *
 *   grok_patterns.c  the built-in library, written for weir: every name in
 *                    two series, `legacy` (logstash's classic field names)
 *                    and `ecs-v1` (Elastic Common Schema names,
 *                    `[http][request][method]` -> "http.request.method");
 *                    only composite patterns (HTTPD_*, SYSLOGBASE, ...) differ
 *   grok.c           pattern sets (the library plus custom pattern files:
 *                    `NAME regexp` lines, `#` comments; a later definition
 *                    of a name replaces an earlier one), expansion of a
 *                    pattern to one regexp, and the parse type itself
 *
 * Expansion follows the plugin: a reference is found the way its
 * PATTERN_RE finds one (name [A-z0-9]+, field [@\[\]A-z0-9_:.-]+? (shortest),
 * type string|bool|integer|float|time[:format]|array[:c]); text that is no
 * reference stays as it is. `%{NAME:field}` becomes a named group, `%{NAME}`
 * a non-capturing one, recursively. Field names need not be PCRE2 names:
 * each named reference gets a generated group name (`__wgN`) and the field
 * it stands for is kept beside the regexp. Errors: an unknown name, a name
 * whose definition refers back to itself (directly or not), nesting deeper
 * than GROK_MAX_DEPTH, or an expansion longer than GROK_MAX_REGEXP bytes.
 */
#ifndef WEIR_GROK_H
#define WEIR_GROK_H

#include <stddef.h>
#include <stdint.h>

enum { GROK_LEGACY = 0, GROK_ECS_V1 = 1 };
#define GROK_MAX_DEPTH 64
#define GROK_MAX_REGEXP (1u << 20)
#define GROK_GROUP_PREFIX "__wg" /* generated group names: __wg0, __wg1, ... */

/* One built-in pattern: its definition in each series (ecs NULL: the same). */
typedef struct grok_def {
    const char *name, *legacy, *ecs;
} grok_def;
extern const grok_def grok_builtin[]; /* terminated by a NULL name */

/* A set of named definitions. */
typedef struct grok_set grok_set;
grok_set *grok_set_new(int series); /* the built-in library of that series; NULL: out of memory */
void grok_set_free(grok_set *s);
/* Define (or redefine) name. def NULL: a name without a regexp (an error
 * only where it is used). file/line say where (NULL: built in). 0 or -1. */
int grok_set_put(grok_set *s, const char *name, size_t nlen, const char *def, size_t dlen, const char *file, int line);
/* Read pattern definitions from text: one `NAME regexp` per line (blank
 * separated; the rest of the line is the regexp), `#` lines and blank lines
 * skipped. 0 or -1 (out of memory). */
int grok_set_load_text(grok_set *s, const char *text, size_t n, const char *file);
/* A file, or every regular file of a directory (names in sorted order,
 * dot files skipped). 0, or -1 with err ("PATH: reason"). */
int grok_set_load_path(grok_set *s, const char *path, char *err, size_t errlen);

/* A field of an expanded pattern: the record key, and the type given after
 * it (NULL: none given, a string). */
typedef struct grok_field {
    char *key;
    char *type; /* "integer", "time:%d/%b/%Y", "array:|", ... or NULL */
} grok_field;

typedef struct grok_expansion {
    char *regexp;         /* NUL-terminated, Ruby syntax (lib/rx.h converts it) */
    size_t len;
    grok_field *fields;   /* fields[i] is the group named __wg<i> */
    size_t nfields;
} grok_expansion;

/* Expand pattern. 0, or -1 with err (a sentence, no FILE:LINE: the caller
 * knows where the pattern was written). */
int grok_expand(const grok_set *s, const char *pattern, grok_expansion *out, char *err, size_t errlen);
void grok_expansion_free(grok_expansion *e);

/* The longest run of literal text (at least 3 bytes) that every match of
 * pattern must contain, read from the pattern as written: text outside
 * groups, classes and %{...} references, a character followed by a
 * quantifier left out. NULL (no prefilter) when there is none, or when the
 * pattern has an alternation at its top level, inline flags ((?i), (?x)...)
 * or \Q. malloc'd; *len its length. A text without it cannot match. */
char *grok_required_literal(const char *pattern, size_t *len);

#endif
