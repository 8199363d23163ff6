/*
 * outputs/loki/labels.h: Loki label names, the label set of a record, and
 * its canonical text ({a="b", c="d"}, as Loki prints it: the stream key).
 *
 * lk_label_conf (and every lk_field) is bound in init and immutable after
 * it. An lk_labels is the scratch of one write (one thread): the set of the
 * record at hand, its names and values stored in its own `sc` buffer.
 */
#ifndef WEIR_LOKI_LABELS_H
#define WEIR_LOKI_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/record.h"

/* FNV-1a (64 bits): hashes of label sets, pairs and names. */
#define LK_FNV0 0xcbf29ce484222325ull
static inline uint64_t lk_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* A <label> or <structured_metadata> line: a name and where its value is. */
typedef struct lk_field {
    char *name;    /* label / metadata name (as configured) */
    rec_path path; /* where the value is in the record */
} lk_field;

/* Loki's label names: [a-zA-Z_][a-zA-Z0-9_]*. 1 when s is one. */
int lk_label_name_valid(const char *s);
/* s[0, n) made a label name (invalid characters -> '_', '_' before a
 * leading digit) into out (NUL-terminated, truncated to cap); its length. */
size_t lk_label_name_sanitize(char *out, size_t cap, const uint8_t *s, size_t n);
/* Append the lines of section sec (<label> when `labels`: names checked, or
 * <structured_metadata>) to *out; -1 with errors added. */
int lk_fields_bind(conf_node *sec, lk_field **out, size_t *nout, int labels, conf_errors *errs);
void lk_fields_free(lk_field *f, size_t n); /* the names, paths and the array */

/* Where a record's labels come from. */
typedef struct lk_label_conf {
    lk_field *labels; /* <label> */
    size_t nlabels;
    const conf_hash *extra; /* extra_labels: static (the bound parameter; NULL: none) */
    int extract_kubernetes_labels; /* every key of kube_labels, sanitised */
    rec_path kube_labels;          /* $.kubernetes.labels, compiled when extract_kubernetes_labels */
    int include_thread_label;      /* fluentd_thread="flush_thread_N" */
} lk_label_conf;

/* extra_labels (bound as a conf_hash: a JSON hash, non-string scalars as
 * text, or "k1:v1,k2:v2") for lc, its names checked; -1 with an error at
 * node n. lc points at h, which must outlive it. */
int lk_extra_labels_set(lk_label_conf *lc, const conf_hash *h, conf_node *n, conf_errors *errs);
void lk_label_conf_free(lk_label_conf *lc);

/* One label of a set: offsets into lk_labels.sc. */
typedef struct lk_kv {
    uint32_t noff, nlen, voff, vlen;
    uint32_t seq; /* insertion order: equal names keep the last */
    uint8_t dyn;  /* from the record: the cardinality guard may replace it */
} lk_kv;

typedef struct lk_labels {
    wbuf sc; /* names and values */
    lk_kv *kv;
    size_t nkv, cap_kv;
} lk_labels;

/* A static label (dyn as given); -1 on OOM. */
int lk_labels_add(lk_labels *ls, const char *name, size_t nlen, const void *val, size_t vlen, int dyn);
/* A record value (msgpack) as a dynamic label, its Ruby to_s; an empty
 * value adds nothing. -1 on OOM. */
int lk_labels_add_value(lk_labels *ls, const char *name, size_t nlen, const uint8_t *v, size_t vlen);
/* Sort by name (stable) and keep the last of equal names. */
void lk_labels_normalize(lk_labels *ls);
/* The label set of record e as lc says (extra, Kubernetes, <label>, thread
 * label `thread`; job="weir" when none applies), normalised. -1 on OOM or a
 * malformed Kubernetes labels map. */
int lk_labels_build(const lk_label_conf *lc, lk_labels *ls, const entry *e, int thread);
/* Of a normalised set: {a="b", c="d"} (values Go-quoted, as Loki prints
 * them), the JSON object, and the hash of the pairs. */
int lk_labels_text(const lk_labels *ls, wbuf *o);
int lk_labels_json(const lk_labels *ls, wbuf *o);
uint64_t lk_labels_hash(const lk_labels *ls);
void lk_labels_free(lk_labels *ls);

#endif
