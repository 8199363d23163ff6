/*
 * outputs/elasticsearch/es.h: what the units of the Elasticsearch output
 * share: the plugin's context (the bound configuration, then what init
 * builds from it) and the buffer of one write. The units:
 *   elasticsearch.c  the plugin: parameters, init/exit, the write (rounds of bulk requests)
 *   index.c          the index name of a record (index_name, logstash_format, data streams)
 *   bulk.c           the _bulk body: action line + document line per record
 *   response.c       what an answer means for each record (the status table)
 *   hosts.c          hosts, their URLs, and failover of a request to the next host
 *   template.c       the index template, installed once before the first bulk
 * Ownership and threads: see elasticsearch.c.
 */
#ifndef WEIR_ES_H
#define WEIR_ES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/http.h"
#include "lib/wbuf.h"
#include "aggregator/record.h"
#include "aggregator/compat_params.h"
#include "aggregator/timeparse.h"
#include "outputs/elasticsearch/index.h"
#include "outputs/format.h"

#define ES_MOD "out_es"

enum { OP_INDEX, OP_CREATE, OP_UPDATE, OP_UPSERT };
enum { TLS_DEFAULT, TLS_1_0, TLS_1_1, TLS_1_2, TLS_1_3 }; /* ssl_*_version: "" TLSv1 TLSv1_1 TLSv1_2 TLSv1_3 */

#define ES_NCOMPAT 48 /* slots for the parameters accepted as no-ops or refused */

typedef struct out_es {
    /* bound from config */
    char *host;
    int64_t port;
    char **hosts;
    int scheme;
    char *path;
    char *user, *password, *api_key;
    int ssl_verify;
    char *ca_file, *client_cert, *client_key, *client_key_pass;
    int logstash_format;
    char *logstash_prefix, *logstash_prefix_separator, *logstash_dateformat;
    char *index_name;
    int include_tag_key;
    char *tag_key;
    char *time_key;
    int time_key_exclude_timestamp;
    int include_timestamp;
    int64_t time_precision;
    int utc_index;
    char *id_key;
    int generate_id;
    int write_operation;
    char *data_stream_name;
    char *template_name, *template_file;
    int template_overwrite;
    int compression_level;
    double request_timeout;
    char *bulk_threshold;
    int64_t max_in_flight;
    int64_t bulk_retry_limit;
    double bulk_retry_wait;
    char *cloud_id, *cloud_auth;
    double slow_flush;
    char *target_index_key;
    char *time_key_format;
    char *routing_key;
    char *parent_key;
    char *pipeline;
    char **remove_keys;
    char **remove_keys_on_update;
    char *remove_keys_on_update_key;
    int suppress_doc_wrap;
    int flatten_hashes;
    char *flatten_hashes_separator;
    conf_hash custom_headers;
    conf_hash customize_template;
    conf_hash templates;
    int use_legacy_template;
    int log_es_400_reason;
    int suppress_type_name;
    char *ssl_min_version, *ssl_max_version;
    int tls_min, tls_max; /* TLS_* */
    int include_chunk_id;
    char *chunk_id_key;
    conf_slot compat[ES_NCOMPAT];
    /* state */
    rec_path target_index_path, routing_path, parent_path;
    int has_target_index, has_routing, has_parent;
    size_t nremove, nremove_upd;
    rec_kv *remove, *remove_upd; /* remove_keys, remove_keys_on_update as drop lists */
    int legacy_forced;           /* use_legacy_template set: -1 unset, 0 composable, 1 legacy */
    char **bases; /* "scheme://host:port/path" per host, no trailing '/' */
    size_t nbases;
    atomic_uint rr;
    atomic_int failing; /* a whole-request failure was logged; cleared on success */
    http_client *http;
    char *auth_header;
    const char **headers; /* Content-Type, auth, custom_headers..., NULL */
    const char **json_headers; /* the same with Content-Type: application/json (templates) */
    char **custom_lines;      /* "Name: value" of custom_headers */
    es_index index;
    int add_ts;
    rec_path id_path, time_path;
    int has_id_path, has_time_path;
    tparse tp;
    size_t threshold; /* 0: unlimited */
    int gzip_level;
    /* template installation, done once before the first bulk: template_name/template_file, then
     * every `templates` entry (or the data stream's) */
    pthread_mutex_t tmpl_mu;
    int tmpl_mu_init;
    char **tmpl_body;  /* each template's content (after customize_template) */
    char **tmpl_url;   /* path after the base: "/_index_template/NAME" */
    size_t ntmpl;
    int tmpl_done;
    fmt_inject inj; /* <inject>: keys added to each record before anything else reads it */
} out_es;

/* Per sent record: where it goes next. RS_SOON: 429/503, worth another try
 * within this write after a short back-off. */
enum { RS_OK = 0, RS_RETRY = 1, RS_ERROR = 2, RS_SOON = 3 };

/* One write's records: the bulk body (bulk.c) and each sent record's
 * outcome (response.c). Owned by the write. */
typedef struct es_buf {
    wbuf body, idx, scratch, flat, tdel, upd, inj;
    /* caches (bulk.c): the @timestamp's date is formatted once per UTC day
     * (key: day + 1), the index name once per second and tag, or per UTC
     * day and tag when its directives name the day at most (key: second or
     * day + 1). 0: empty. */
    uint64_t ts_key;
    char ts_text[20]; /* YYYY-MM-DDTHH:MM:SS, the date from the cache */
    uint64_t ix_key;
    wbuf ix_tag, ix; /* the cached name's tag and the name */
    char chunk_id[33]; /* <metadata> include_chunk_id: this write's id, hex */
    uint32_t nsent;
    uint32_t *recno; /* sent record k -> its index in the batch */
    size_t *off;     /* sent record k -> start of its two lines in body; off[nsent] = body.len */
    uint8_t *st;     /* sent record k -> RS_* */
    char **why;      /* sent record k -> reason (malloc'd) or NULL */
} es_buf;

/* Copy a string, cut to fit. */
static inline void es_scopy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

#endif
