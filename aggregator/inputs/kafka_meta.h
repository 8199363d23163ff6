/*
 * aggregator/inputs/kafka_meta.h: what the kafka source adds to a consumed
 * record besides its payload (aggregator/inputs/kafka.c):
 *
 *  - decorate_events (Logstash's kafka input): the message's topic,
 *    partition, offset, key, timestamp and consumer group (`basic`), and its
 *    headers (`extended`), as one map at `metadata_key`;
 *  - the retry count of records read from retry and dead-letter topics: a
 *    header (`retry_count_header`) or the topic name (`retry_topic_pattern`
 *    `<topic>.retry.<N>`, `dlq_topic_pattern` `<topic>.dlq`), written at
 *    `retry_count_key` with a flag at `dlq_key`.
 *
 * Configured once (kmeta_configure, main thread), then read-only: kmeta_apply
 * is reentrant (the consumer thread).
 */
#ifndef WEIR_KAFKA_META_H
#define WEIR_KAFKA_META_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/record.h"

enum { KMETA_NONE, KMETA_BASIC, KMETA_EXTENDED };

/* The bound parameters (rows: KAFKA_META_ROWS). */
typedef struct kmeta_conf {
    int decorate_events; /* choices "none|basic|extended|false|true" */
    char *metadata_key;
    char *retry_count_key, *dlq_key;
    char **retry_count_header, **retry_topic_pattern, **dlq_topic_pattern;
} kmeta_conf;

#define KAFKA_META_ROWS(T, m)                                                                                        \
    {"decorate_events", CONF_ENUM, "none", 0, offsetof(T, m.decorate_events), "none|basic|extended|false|true",      \
     "Logstash's option: add the message's Kafka metadata to the record as one map at `metadata_key`. `basic` "     \
     "(or `true`): `topic`, `partition`, `offset`, `key` (nil without one), `timestamp` (milliseconds since the "   \
     "epoch, nil when the message has none) and `consumer_group`; `extended`: also `headers` (a map of strings)"},  \
    {"metadata_key", CONF_STR, "kafka", 0, offsetof(T, m.metadata_key), NULL,                                      \
     "where `decorate_events` puts the map: a key, or a record accessor (`$.@metadata.kafka`: nested). Usable by "  \
     "the outputs: an Elasticsearch `id_key`, `${$.kafka.topic}` in an index name, a Loki label"},                 \
    {"retry_count_key", CONF_STR, NULL, 0, offsetof(T, m.retry_count_key), NULL,                                   \
     "DLQ labelling: write the record's retry count (an integer: the first `retry_count_header` found, else the "   \
     "`<N>` of a `retry_topic_pattern` the topic matches, else 0) at this key or record accessor "                 \
     "(`$.event.retry_count`: nested), and the `dlq_key` flag beside it. Unset: off"},                             \
    {"dlq_key", CONF_STR, NULL, 0, offsetof(T, m.dlq_key), NULL,                                                   \
     "with `retry_count_key`: where `true` (the topic matches a `dlq_topic_pattern`) or `false` is written; "      \
     "default `dlq` beside `retry_count_key` (`$.event.retry_count`: `$.event.dlq`)"},                              \
    {"retry_count_header", CONF_ARRAY, "retry_count,x-retry-count", 0, offsetof(T, m.retry_count_header), NULL,   \
     "headers holding the retry count (the first name found; its last occurrence): decimal text, or a 4- or "  \
     "8-byte big-endian integer (Spring Kafka's `retry_topic-attempts`)"},                                                                    \
    {"retry_topic_pattern", CONF_ARRAY, "<topic>.retry.<N>", 0, offsetof(T, m.retry_topic_pattern), NULL,          \
     "names of retry topics: `<topic>` any non-empty text, `<N>` the retry count (digits); "                       \
     "e.g. `<topic>-retry-<N>` for Spring Kafka"},                                                                  \
    {"dlq_topic_pattern", CONF_ARRAY, "<topic>.dlq", 0, offsetof(T, m.dlq_topic_pattern), NULL,                    \
     "names of dead-letter topics (`<topic>`, optional `<N>` as above); e.g. `<topic>-dlt`, `<topic>.DLQ`"}

typedef struct kmeta {
    int decorate;
    int retry_on;
    rec_path meta_path, retry_path, dlq_path;
    char *const *headers;        /* the conf's retry_count_header (not owned) */
    char *const *retry_patterns; /* not owned */
    char *const *dlq_patterns;   /* not owned */
    char *group;                 /* not owned */
} kmeta;

/* Check and compile the parameters of c (errors at node n). The kmeta refers
 * to c's strings: c must outlive it. 0, or -1 with errors added. */
int kmeta_configure(kmeta *m, const kmeta_conf *c, char *group, const conf_node *n, conf_errors *errs);
void kmeta_free(kmeta *m);
/* Anything to add? */
static inline int kmeta_active(const kmeta *m) { return m->decorate != KMETA_NONE || m->retry_on; }

/* A topic pattern: 0 when `pat` is well-formed (`<topic>` at most once,
 * `<N>` at most once and not next to `<topic>`, and some literal text),
 * -1 with why filled. */
int kmeta_pattern_check(const char *pat, char *why, size_t whylen);
/* Does `topic` (tlen bytes) match `pat`? 1 with *n the `<N>` (-1 when the
 * pattern has none) and base/blen the `<topic>` part (NULL, 0 without it);
 * 0 if not. A longer `<topic>` is preferred (`a.retry.1.retry.2`: topic
 * `a.retry.1`, N 2). */
int kmeta_pattern_match(const char *pat, const char *topic, size_t tlen, int64_t *n, const char **base,
                        size_t *blen);
/* A header value as a retry count: decimal text (surrounding blanks
 * allowed), or 4 or 8 bytes that are not all printable ASCII, a big-endian
 * integer. 1 with *n set (>= 0), 0
 * if it is neither. */
int kmeta_header_count(const void *val, size_t len, int64_t *n);

/* The message's retry count and DLQ flag (headers: may be NULL). */
void kmeta_retry_of(const kmeta *m, const char *topic, rd_kafka_headers_t *hs, int64_t *count, int *dlq);

/* What kmeta_apply needs of a message (rd_kafka_message_t's fields, so that
 * tests can build one without a broker). */
typedef struct kmeta_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    int64_t timestamp; /* ms, -1: none */
    rd_kafka_headers_t *headers; /* NULL: none */
} kmeta_msg;

/* Rewrite the record in *rec (one map) with the metadata and retry keys;
 * tmp is scratch. 0, or -1 (out of memory, malformed record). */
int kmeta_apply(const kmeta *m, const kmeta_msg *msg, wbuf *rec, wbuf *tmp);

#endif
