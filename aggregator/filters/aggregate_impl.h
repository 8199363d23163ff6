/*
 * aggregator/filters/aggregate_impl.h: the aggregate filter's state, shared
 * by aggregate.c (correlation) and aggregate_chlog.c (its changelog in
 * Kafka: encoding of a saga, restore, the hooks into the kafka source).
 */
#ifndef WEIR_AGGREGATE_IMPL_H
#define WEIR_AGGREGATE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/rx.h"
#include "lib/u64map.h"
#include "lib/wbuf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

#define AGG_SHARDS 64
#define AGG_MAX_STR 256   /* step names, services, statuses: longer values are cut */
#define AGG_MAX_TRACE 128 /* longer trace ids are ignored */
#define AGG_MAX_STRS 65536 /* distinct strings per shard; beyond: "" (counted) */

enum { K_START, K_STEP, K_END, K_FAILURE, K_COMPENSATION, K_NONE, K_N = K_NONE };
enum { O_COMPLETED, O_FAILED, O_COMPENSATED, O_TIMED_OUT, O_EVICTED, O_OPEN };


typedef struct agg_step {
    uint64_t t; /* event time, ns */
    uint32_t name, service, status;
    uint32_t kind;
} agg_step;

/* F_CLOSED (changelog only): a closed saga kept for `timeout` as a marker,
 * so that replayed events of it are not counted again (aggregate_chlog.c) */
enum { F_STARTED = 1, F_CLOSED = 2 };

typedef struct saga {
    struct saga *hnext;       /* hash chain */
    struct saga *prev, *next; /* shard's LRU list: least recently active first */
    uint64_t h;
    uint64_t first, last; /* event times, ns */
    double seen;          /* clock of the last event */
    double enq;           /* clock when it was put at the list's tail (the list is in this order) */
    uint32_t events, nsteps, capsteps, dropped_steps;
    uint32_t failures, compensations;
    agg_step *steps;
    uint32_t *svcs; /* string ids, sorted at emission */
    uint8_t nsvc, capsvc, ntr, flags;
    uint16_t trlen, trcap, keylen;
    uint8_t *tr; /* trace ids: [len][bytes]... */
    /* changelog: the Kafka coordinates of the last event applied (stopic a
     * string id of the shard; spart -1: unknown) and, closed, the outcome */
    uint32_t stopic;
    int32_t spart;
    int64_t soff;
    uint8_t outcome;
    char key[];
} saga;

typedef struct agg_shard {
    pthread_mutex_t mu;
    saga **tab;
    size_t cap, n;
    saga *head, *tail;
    /* strings: id -> text, hash -> id + 1 */
    char **strs;
    uint32_t nstrs, capstrs;
    u64map strmap;
    size_t bytes; /* heap held by this shard's sagas and strings */
} agg_shard;

/* trace id -> the key hash of its open saga (copy_key_by_trace) */
typedef struct agg_trace_shard {
    pthread_mutex_t mu;
    uint64_t *k, *v; /* open addressing with deletion by backward shift; k 0 empty */
    size_t cap, n;
} agg_trace_shard;

typedef struct agg_state {
    struct agg_state *next; /* registry */
    char *fp;
    int refs;
    const filter *owner; /* the newest filter using it (the running configuration's) */
    agg_shard sh[AGG_SHARDS];
    agg_trace_shard ts[AGG_SHARDS];
    atomic_uint_fast64_t open, evicted, summaries, strs_dropped;
    struct agg_chlog *cl; /* the changelog in Kafka (NULL: none) */
} agg_state;

typedef struct agg_cond {
    rec_path path;
    rx re;
} agg_cond;

typedef struct aggregate_ctx {
    char *key, *tag, *key_name;
    char *step_name_key, *service_key, *status_key, *trace_key;
    char **service_keys, **trace_keys;
    double timeout;
    int64_t max_open, max_steps, max_services, max_trace_ids;
    int copy_key_by_trace, drop_events, end_on_failure;
    rec_path kpath, npath, stpath;
    rec_path *svpaths, *trpaths;
    size_t nsv, ntrp;
    agg_cond *conds[K_N];
    size_t nconds[K_N];
    int any_cond;
    size_t tag_len;
    agg_state *st;
    char *cl_topic;        /* changelog_topic */
    char **cl_brokers;     /* changelog_brokers */
    int64_t cl_partitions; /* changelog_partitions */
    char *src_topic_key, *src_partition_key, *src_offset_key;
    rec_path tpath, ppath, opath;
    const filter *prev_owner; /* st's owner before this filter took it (a failed reload gives it back) */
} aggregate_ctx;


/* aggregate.c, aggregate_state.c */
extern double (*aggregate_clock)(void);
void agg_saga_free(saga *g);
uint64_t agg_hash(const void *p, size_t n);
uint32_t agg_str_id(agg_state *st, agg_shard *sh, const uint8_t *s, size_t n);
const char *agg_str_of(const agg_shard *sh, uint32_t id);
saga *agg_find(agg_shard *sh, uint64_t h, const uint8_t *k, size_t kl);
void agg_lru_unlink(agg_shard *sh, saga *g);
void agg_lru_append(agg_shard *sh, saga *g);
int agg_tab_insert(agg_shard *sh, saga *g);
void agg_tab_remove(agg_shard *sh, saga *g);
void agg_trace_put(agg_state *st, uint64_t th, uint64_t kh);
void agg_trace_del(agg_state *st, uint64_t th, uint64_t kh);
uint64_t agg_trace_get(agg_state *st, uint64_t th);
void agg_emit_summary(const aggregate_ctx *a, agg_shard *sh, saga *g, int outcome, filter_emit *em);
size_t agg_saga_bytes(const saga *g);
void agg_add_trace(const aggregate_ctx *a, saga *g, const uint8_t *s, uint32_t n);

/* aggregate_chlog.c: the changelog (docs/architecture.md "Correlation state") */

/* a saga's state as the changelog holds it (see agg_encode), read in place */
typedef struct agg_view {
    uint8_t flags, outcome;
    uint64_t first, last;
    uint32_t events, failures, compensations, dropped;
    const uint8_t *topic;
    uint16_t topic_len;
    int32_t part;
    int64_t off;
    uint32_t nsteps;
    const uint8_t *steps; /* nsteps x [u64 t][u8 kind][str16 name][str16 service][str16 status] */
    uint8_t nsvc, ntr;
    const uint8_t *svcs; /* nsvc x str16 */
    const uint8_t *trs;  /* ntr x [u8 len][bytes] */
    const uint8_t *end;
} agg_view;

/* Encode g (under its shard's lock) into w (appended). */
void agg_encode(const agg_shard *sh, const saga *g, wbuf *w);
/* Check and read an encoded state; 0, or -1 when it is not one (any bytes: never reads out of p[0..n)). */
int agg_view_parse(agg_view *v, const uint8_t *p, size_t n);
/* A new saga of key k from v, in shard sh (under its lock; not in the table or the list yet; caps of a). */
saga *agg_from_view(const aggregate_ctx *a, agg_shard *sh, const uint8_t *k, size_t kl, const agg_view *v);

/* Set up the changelog of a new state (a->cl_topic set); 0 or -1. */
int agg_chlog_new(aggregate_ctx *a, agg_state *st, const char *id);
void agg_chlog_free(agg_state *st);
/* The changelog's counters into s (left 0 without a changelog). */
void agg_chlog_stats(const agg_state *st, filter_stats *s);
/* g changed (open, or closed: a marker): its state to the changelog; under the shard's lock */
void agg_chlog_put(agg_state *st, const agg_shard *sh, const saga *g);
/* g's marker expired: a tombstone for its key */
void agg_chlog_tombstone(agg_state *st, const saga *g);
/* Out of its shard (table, list, trace index, counts) without a summary; under the shard's lock. */
void agg_drop(agg_state *st, agg_shard *sh, saga *g);

#endif
