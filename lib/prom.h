/* lib/prom.h: Prometheus text exposition helpers (for /metrics writers). */
#ifndef WEIR_LIB_PROM_H
#define WEIR_LIB_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* "# HELP name help\n# TYPE name type\n" */
void prom_head(struct evbuffer *o, const char *name, const char *type, const char *help);
/* A label value escaped (backslash, quote, newline) into buf; returns buf. */
const char *prom_label(const char *s, char *buf, size_t cap);
/* A relaxed load of a counter. */
static inline uint64_t prom_ld(atomic_uint_fast64_t *a) { return atomic_load_explicit(a, memory_order_relaxed); }

#endif
