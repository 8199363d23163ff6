/*
 * aggregator/ruby_expr.h: the Ruby expressions of record_transformer's
 * `enable_ruby true` (and record_modifier's ${...}), evaluated per record
 * without a Ruby interpreter.
 *
 * An expression is compiled once, at configuration time, to a tree; a form
 * outside the subset below is a configuration error naming what is not
 * supported, never kept as text. Per record it is evaluated against the
 * event (tag, time, record, hostname) with Ruby's semantics for the subset:
 *
 *   values   nil true false 12 -3 1.5 'text' "text #{expr}" /regexp/imx
 *            [a, b] record tag time tag_parts tag_prefix tag_suffix
 *            hostname ENV['X'] ENV.fetch('X'[, d]) Socket.gethostname
 *            Time.now Time.at(n) @name (record_modifier's prepare_value)
 *   operators  a[i] a.m a.m(args) a&.m  ! - * / % + - < <= > >= == != =~ !~
 *            && || and ?: (Ruby's precedence)
 *   methods  listed in ruby_eval.c's table (String, Integer, Float, Hash,
 *            Array, Time and nil methods the configs use: to_s to_i to_f
 *            upcase downcase strip gsub sub split dig fetch strftime ...)
 *
 * A runtime error (a method of nil, a comparison of a String with an
 * Integer, a division by zero) fails the record with Ruby's message, as
 * Fluentd does (the record goes to @ERROR).
 *
 * Files: ruby_parse.c (lexer, parser, tree), ruby_eval.c (values,
 * operators, methods), ruby_prepare.c (prepare_value). Thread safety: a
 * compiled tree is immutable; evaluation uses thread-local scratch only.
 */
#ifndef WEIR_RUBY_EXPR_H
#define WEIR_RUBY_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

typedef struct rb_node rb_node;

/* What an expression sees of one event. */
typedef struct rb_env {
    const char *tag;
    size_t tag_len;
    uint32_t sec, nsec;
    const uint8_t *rec; /* the record: exactly one msgpack map of len bytes (what a filter gets) */
    size_t len;
    const char *hostname;
    size_t hostname_len;
} rb_env;

/* Compile the code src[0..n). NULL with a message in err when it is not in
 * the subset (or out of memory). */
rb_node *rb_compile(const char *src, size_t n, char *err, size_t errlen);
void rb_free(rb_node *e);

/* The end of the code of a "${...}" / "#{...}" whose code starts at s:
 * the matching '}' (braces inside string literals, regexps and nested
 * interpolations skipped), or NULL when there is none before end. */
const char *rb_code_end(const char *s, const char *end);

/* Evaluate e for one event: append its value as msgpack (rb_eval_value:
 * the Ruby value's own type; a Time as its to_s) or as text (rb_eval_text:
 * Ruby's to_s, nil is ""). 0, or -1 with Ruby's error message in err. */
int rb_eval_value(const rb_node *e, const rb_env *env, wbuf *out, char *err, size_t errlen);
int rb_eval_text(const rb_node *e, const rb_env *env, wbuf *out, char *err, size_t errlen);

/* record_modifier's prepare_value: instance variables set once, at start, by
 * `@name = expr` statements (separated by ';' or line breaks; `require ...`
 * statements are skipped, anything else is an error). Each expression is
 * evaluated when it is read, against an empty record, the empty tag and the
 * current time; later statements see the earlier variables. */
typedef struct rb_ivars {
    char **names;
    wbuf *vals; /* each a msgpack value */
    size_t n;
} rb_ivars;
int rb_prepare(const char *src, size_t n, rb_ivars *iv, char *err, size_t errlen);
void rb_ivars_free(rb_ivars *iv);
/* The variables that rb_compile resolves `@name` against, until called again
 * (NULL: none; `@name` is then a configuration error, as is a name iv does not
 * hold). The value is copied into the tree. Main thread, configuration time. */
void rb_ivars_use(const rb_ivars *iv);
const rb_ivars *rb_ivars_current(void);

/* Ruby's to_s of a msgpack value, outside any expression (formatters that
 * write value.to_s): nil is "", a Hash/Array its inspect ({"a"=>[1, nil]}),
 * a Float as Float#to_s. 0 or -1 (malformed, too deep, out of memory). */
int rb_value_to_s(const uint8_t *v, size_t n, wbuf *out);

#endif
