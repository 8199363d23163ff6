/*
 * config/conf.h: Fluentd-syntax configuration parser and typed binding.
 *
 * The parser turns a fluent.conf-style text into a tree of sections
 * (conf_node). It knows the *syntax* only: directives, parameters, nested
 * sections, quoting, @include, "#{ENV[...]}" expansion. What a section may
 * contain is decided by whoever consumes it, through conf_bind() and a table
 * of conf_spec rows (Fluent Bit's config_map idea: name, type, default,
 * offset into the plugin's context struct).
 *
 * Errors are collected, never printed: every function appends
 * "FILE:LINE: message" strings to a conf_errors so --dry-run can report all
 * of them at once.
 *
 * Threads: a parsed tree is immutable after parsing except for the `used`
 * flags set by conf_bind(); it is built and consumed on the main thread.
 */
#ifndef WEIR_CONF_H
#define WEIR_CONF_H

#include <stddef.h>
#include <stdint.h>

typedef struct conf_node conf_node;

typedef struct conf_errors {
    char **msgs; /* "FILE:LINE: message" */
    size_t n, cap;
} conf_errors;

void conf_errors_add(conf_errors *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void conf_errors_free(conf_errors *e);
/* An error at parameter `key` of section `n`, or at the section's line when
 * the parameter is absent. */
void conf_error_at(conf_errors *e, const conf_node *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Order the messages by file, then line (stable), the way a reader fixes them. */
void conf_errors_sort(conf_errors *e);

typedef struct conf_param {
    char *key;
    char *value; /* after unquoting, escapes and "#{ENV}" expansion; JSON arrays/hashes kept as text */
    const char *file; /* points into the tree's file-name pool */
    int line;
    int used; /* set by conf_bind / conf_get */
    int bare; /* written as a word alone on its line (no value): Fluentd takes it as "" */
} conf_param;

struct conf_node {
    char *name; /* "ROOT", "source", "match", "filter", "label", "buffer", "format", ... */
    char *arg;  /* text after the name inside <...>, e.g. "app.**" or "@ERROR"; NULL if none */
    const char *file;
    int line;
    conf_param *params;
    size_t nparams;
    conf_node **children;
    size_t nchildren;
    conf_node *parent;
};

/* Parse a file (follows @include relative to the including file's directory,
 * globs allowed). Returns the ROOT node, or NULL if a syntax error made the
 * tree unusable; errors go to `errs` either way. */
conf_node *conf_parse_file(const char *path, conf_errors *errs);
/* Parse text held in memory; `name` is used in error messages and as the
 * base for relative @include (its directory, or the cwd if it has none). */
conf_node *conf_parse_string(const char *text, const char *name, conf_errors *errs);
void conf_free(conf_node *root);

/*
 * Warnings: what Fluentd accepts with a warning (a v0.12 parameter it
 * converts, a parameter it does not use). A parsed tree keeps its own list,
 * "FILE:LINE: warning: message", each message once; whoever loads the
 * tree prints them (--dry-run: on stderr; running: in the log). conf_warn
 * adds to the list of the tree `n` belongs to (a node not in a parsed tree:
 * the message goes to the log at once).
 */
void conf_warn(const conf_node *n, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The warnings of the tree whose ROOT is `root` (NULL for any other node). */
const conf_errors *conf_warnings(const conf_node *root);

/*
 * Fluentd v1's compatibility layer (config/conf_compat.c), which the parse
 * functions above apply to every tree they return: `type`/`id`/`log_level`
 * become `@type`/`@id`/`@log_level`, and the v0.12 parameters written on a
 * plugin's section move into the <buffer>, <parse>, <format>, <inject> or
 * <extract> section Fluentd's compat_parameters helper builds for that plugin
 * (the same plugins, the same tables, the same values), each with one
 * warning naming its v1 form. Errors (Fluentd's ConfigErrors of the layer)
 * go to `errs`.
 */
void conf_compat_apply(conf_node *root, conf_errors *errs);
/* The v1 form of a v0.12 parameter name ("'retry_max_interval' in
 * <buffer>"), or NULL when `name` is none. */
const char *conf_compat_v1_form(const char *name);
/* 1 for a section that configures a plugin instance (<source>, <filter>,
 * <match>, <store>, <secondary>): where Fluentd converts v0.12 parameters. */
int conf_is_plugin_section(const conf_node *n);

/* The section's configuration as canonical text (name, argument, parameters
 * in order, subsections, recursively; not file names or lines): equal for
 * two sections that configure the same thing. malloc'd; NULL on OOM. */
char *conf_fingerprint(const conf_node *n);

/* Add (or replace) a parameter computed from the configuration (copies of
 * key and value), placed at file:line for messages. */
void conf_node_set(conf_node *n, const char *key, const char *value, const char *file, int line);

/* Lookups. conf_get marks the parameter used. */
conf_param *conf_get(const conf_node *n, const char *key);
const char *conf_get_value(const conf_node *n, const char *key); /* NULL if absent */

/* Value conversions; return 0 on success, -1 on a bad value (no error added). */
int conf_parse_bool(const char *s, int *out);        /* true/false/yes/no/on/off/1/0 ... Fluentd: "true"/"false" */
int conf_parse_int(const char *s, int64_t *out);
int conf_parse_size(const char *s, uint64_t *out);   /* 10, 8k, 8m, 1g, 1t (1024-based), "8MB"? no: Fluentd units k m g t */
int conf_parse_time(const char *s, double *out);     /* seconds: 1.5, 100ms, 10s, 5m, 2h, 1d (Fluentd's units, and ms) */
/* Array: a JSON array ["a","b"] or a comma separated list "a,b" (spaces trimmed).
 * Returns a NULL-terminated malloc'd vector of malloc'd strings, or NULL on error. */
char **conf_parse_array(const char *s);
void conf_strv_free(char **v);

typedef enum {
    CONF_STR,     /* char *   (malloc'd copy, NULL if no value and no default) */
    CONF_INT,     /* int64_t  */
    CONF_BOOL,    /* int      */
    CONF_SIZE,    /* uint64_t */
    CONF_TIME,    /* double seconds */
    CONF_ENUM,    /* int: index into `choices` ("json|msgpack|ltsv") */
    CONF_ARRAY,   /* char **  (NULL-terminated, malloc'd) */
    CONF_SECTION, /* no value: declares an allowed sub-section name; offset unused */
    CONF_HASH,    /* conf_hash: Fluentd's hash type, a JSON object or "k1:v1,k2:v2" */
} conf_type;

/* A CONF_HASH value, in the order written. A JSON value that is not a string
 * is kept as its compact JSON text ({"a":1} -> "1"). */
typedef struct conf_kv {
    char *k, *v;
} conf_kv;
typedef struct conf_hash {
    conf_kv *kv;
    size_t n;
} conf_hash;
/* Parse Fluentd's hash syntax into `out` (zeroed first). 0, or -1 (out empty). */
int conf_parse_hash(const char *s, conf_hash *out);
void conf_hash_free(conf_hash *h);
/* The value of key k, or NULL. */
const char *conf_hash_get(const conf_hash *h, const char *k);

typedef struct conf_spec {
    const char *name;
    conf_type type;
    const char *def;     /* default as text (parsed like a config value); NULL = none */
    int required;        /* missing -> error "missing required parameter 'x' in <match ...>" */
    size_t offset;       /* where to store in the target struct */
    const char *choices; /* CONF_ENUM only: "a|b|c" */
    /* One line for the docs (weir --list-params, docs/configuration.md):
     * what it does, units, special values. Markdown; never NULL in a row. */
    const char *desc;
} conf_spec;

/*
 * Bind the parameters of `n` to `out` using `specs` (terminated by a row with
 * name == NULL). For every row: the value from the config or the default is
 * converted and stored at out+offset. Errors added for: wrong value type
 * ("FILE:LINE: invalid size 'abc' for parameter 'chunk_limit_size'"), missing
 * required parameter, unknown parameter ("FILE:LINE: unknown parameter
 * 'flush_intervl' in <buffer>; did you mean 'flush_interval'?"), and
 * sub-sections not declared by a CONF_SECTION row (same did-you-mean rule).
 * Parameters starting with '@' (@type, @id, @label, @log_level) are never
 * reported as unknown here; the caller deals with them.
 * Returns 0 if no error was added, -1 otherwise (fills what it can).
 */
int conf_bind(conf_node *n, const conf_spec *specs, void *out, conf_errors *errs);
/* conf_bind, with more allowed sub-sections than `specs` declares (the ones
 * the caller handles for every plugin of a kind, e.g. an output's <buffer>
 * and <secondary>); NULL-terminated. */
int conf_bind_with(conf_node *n, const conf_spec *specs, void *out, const char *const *more_sections,
                   conf_errors *errs);
/* Free what conf_bind allocated in `out` (CONF_STR and CONF_ARRAY fields). */
void conf_unbind(const conf_spec *specs, void *out);

/* Closest candidate to `word` by edit distance among NULL-terminated `cands`,
 * or NULL if none is close enough (distance > max(2, len/3)). */
const char *conf_suggest(const char *word, const char *const *cands);
/* The error for a name that is none of `cands`: "unknown WHAT 'NAME' WHERE"
 * ("unknown parameter 'flush_intervl' in <buffer>"; where may be NULL), with
 * "; did you mean 'HINT'?" when conf_suggest finds one. A section's or a
 * directive's name (what "section" or "directive") is written <NAME>. */
void conf_error_unknown(conf_errors *e, const char *file, int line, const char *what, const char *name,
                        const char *where, const char *const *cands);

/* What every plugin section has. conf_plugin_type: its @type parameter, or
 * NULL with "missing @type in <name arg>" added. conf_plugin_id: its @id,
 * or PLUGIN.INDEX when it has none (malloc'd; NULL when out of memory). */
conf_param *conf_plugin_type(const conf_node *n, conf_errors *errs);
char *conf_plugin_id(const conf_node *n, const char *plugin, int index);

#endif
