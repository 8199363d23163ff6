/*
 * outputs/loki/guard.h: the cardinality guard (`max_label_sets`) of one
 * output: the label sets it has sent and the values they used; beyond the
 * cap, new sets are rewritten to known values (rules in guard.c).
 *
 * Shared by the output's flush threads: every field after `mu` is read and
 * written under it (lk_guard_apply takes it; the metrics take it to read).
 * Sets are never forgotten.
 */
#ifndef WEIR_LOKI_GUARD_H
#define WEIR_LOKI_GUARD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/u64map.h"
#include "outputs/loki/labels.h"

typedef struct lk_name {
    char *name;
    uint64_t distinct; /* values seen while under the cap */
    uint64_t overflow; /* times this label was replaced */
} lk_name;

typedef struct lk_guard {
    size_t max_sets;            /* set by lk_guard_init, then constant */
    const char *overflow_value; /* likewise; not owned (the configuration's) */
    pthread_mutex_t mu;
    u64map sets;  /* label-set hash -> 1 */
    u64map pairs; /* name/value hash -> 1 */
    u64map names; /* name hash -> index into `nm` + 1 */
    lk_name *nm;
    size_t nnm, cap_nm;
    uint64_t overflow_total;
} lk_guard;

/* One write's memory of the last set the guard let through unchanged
 * (consecutive records mostly share a stream: no lock for them). Zeroed:
 * none. Owned by the write. */
typedef struct lk_guard_memo {
    uint64_t known;
    int set;
} lk_guard_memo;

/* g must be zeroed; lk_guard_free releases it (also when init failed later). */
void lk_guard_init(lk_guard *g, size_t max_sets, const char *overflow_value);
/* Apply the guard to the normalised set ls, rewriting dynamic values beyond
 * the cap (counted; each label's first replacement logged with `id`).
 * Returns lk_labels_hash of the set as it leaves. */
uint64_t lk_guard_apply(lk_guard *g, lk_labels *ls, lk_guard_memo *memo, const char *id);
void lk_guard_free(lk_guard *g);

#endif
