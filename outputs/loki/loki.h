/*
 * outputs/loki/loki.h: the context of one loki output (out_loki), for
 * loki.c and the unit tests. The other units of outputs/loki take only
 * their part of it: lk_label_conf (labels.h), lk_entry_conf (encode.h),
 * lk_guard (guard.h).
 *
 * Everything bound or built in init is immutable after it; the guard, the
 * token (tok_mu) and the atomic counters are the shared mutable state.
 */
#ifndef WEIR_LOKI_LOKI_H
#define WEIR_LOKI_LOKI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "lib/http.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "outputs/loki/encode.h"
#include "outputs/loki/guard.h"
#include "outputs/loki/labels.h"
#include "outputs/loki/request.h"

typedef struct out_loki {
    /* bound from config */
    char *url, *username, *password, *bearer_token_file, *tenant, *default_tenant;
    conf_hash extra_labels;
    char **remove_keys;
    char *ca_cert, *cert, *key;
    int insecure_tls;
    int64_t max_label_sets;
    char *label_overflow_value;
    double timeout;
    int64_t gzip_level;
    conf_hash custom_headers;
    double slow_flush;
    char *min_version, *ciphers;
    char *compress; /* gzip (or snappy) | none: sets ent.compress */
    /* bound (extract_kubernetes_labels, include_thread_label; line_format,
     * drop_single_key, encoding), the rest built in init */
    lk_label_conf lab;
    lk_entry_conf ent;
    /* built in init */
    char *push_url;
    rec_path tenant_path;
    int tenant_dynamic;
    http_client *http;
    lk_guard guard;
    atomic_int next_thread;
    /* bearer token, re-read when the file changes (under tok_mu) */
    pthread_mutex_t tok_mu;
    char *token;
    struct timespec tok_mtime;
    /* counters */
    atomic_uint_fast64_t requests, req_failed, rejected_records;
    /* sent requests: records, bytes on the wire, bytes before compression */
    atomic_uint_fast64_t pushed_records, body_bytes, raw_bytes;
} out_loki;

/* The first steps of a write: every record of b into r (tenant, label set
 * through the guard, stream, line, metadata), then sorted by tenant, stream
 * and time. A record that cannot be formatted is marked OUT_ERROR in res and
 * counted in *nbad. 0, -1 out of memory, -2 malformed batch. */
int lk_collect(output *o, lk_req *r, const batch *b, out_result *res, uint32_t *nbad);

#endif
