/*
 * aggregator/compat_params.h: the parameters of a Fluentd plugin that weir
 * accepts without acting on them, and the ones it refuses, declared in the
 * plugin's conf_spec table like any other parameter so that binding checks
 * their values (Fluentd's types) and the docs list them with their status.
 *
 * A row is marked by the start of its description:
 *   COMPAT_NOOP "why"      accepted, no effect in weir: when the parameter is
 *                          set, compat_check() logs ONE warning naming it,
 *                          its file and line and the reason (the rest of the
 *                          description);
 *   COMPAT_REFUSED "why"   refused when set to anything but its default (the
 *                          row's `def`, Fluentd's default): a configuration
 *                          error with the reason. The default itself asks for
 *                          what weir does and is accepted silently.
 * Their values are stored in the plugin context's `compat` array of
 * conf_slot (COMPAT_SLOT picks one per row; conf_unbind frees them).
 *
 * Main thread (init), like conf_bind.
 */
#ifndef WEIR_COMPAT_PARAMS_H
#define WEIR_COMPAT_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "config/conf.h"

#define COMPAT_NOOP "**no-op** (one warning): "
#define COMPAT_REFUSED "**refused**: "

/* Storage for one bound value of any conf_type. */
typedef union conf_slot {
    char *s;
    char **a;
    int b;
    int64_t i;
    uint64_t z;
    double t;
    conf_hash h;
} conf_slot;

/* The offset of slot i of the context type's `compat` array. */
#define COMPAT_SLOT(type, i) (offsetof(type, compat) + (size_t)(i) * sizeof(conf_slot))

/* Is this row a no-op / refused one? */
int compat_is_noop(const conf_spec *s);
int compat_is_refused(const conf_spec *s);

/* For every no-op row whose parameter n sets: one warning (module, id: the
 * log's); for every refused row set to a value other than its default: an
 * error. Returns the number of errors added. */
int compat_check(const conf_node *n, const conf_spec *spec, const char *module, const char *id, conf_errors *errs);

/* The text of a no-op warning, for tests: "FILE:LINE: ID: parameter 'NAME'
 * has no effect in weir: WHY" (malloc'd). */
char *compat_noop_message(const conf_param *p, const conf_spec *s, const char *id);

#endif
