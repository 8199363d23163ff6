/*
 * aggregator/inputs/kafka.c: `<source @type kafka>`, a Kafka consumer-group
 * input (fluent-plugin-kafka's kafka_group / rdkafka_group) on librdkafka.
 *
 * One thread per source polls a burst of messages (up to max_poll_records
 * or what arrived within 100 ms), turns them into batches of weir's entry
 * format (one per tag), routes them like in_forward does and waits until
 * every output has the records (the burst's ticket). Only then are the
 * burst's offsets stored; librdkafka commits stored offsets (auto commit,
 * and synchronously on a revoke and at close), so a record is committed
 * only after every matching output's buffer holds it: at-least-once. If an
 * output refused the records (ticket failed: a full buffer with
 * throw_exception), the partitions are rewound to the burst's first offsets
 * and the burst is read again after a pause.
 *
 * Rebalances: the rebalance callback runs on the consumer thread (inside
 * rd_kafka_consumer_poll): on a revoke it first routes the burst collected
 * so far and waits for its ticket, stores its offsets, commits synchronously
 * and only then releases the partitions, so the next owner starts exactly
 * after the last record weir has delivered.
 *
 * Ownership: the source owns its rd_kafka_t, parser, router_ctx and the
 * messages of the current burst (destroyed after their ticket completed).
 * Created/freed on the main thread; everything else on the consumer thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "lib/batch.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "lib/mp.h"
#include "aggregator/compat_params.h"
#include "aggregator/filter.h"
#include "aggregator/inputs/kafka_meta.h"
#include "aggregator/kafka_conf.h"
#include "aggregator/parse.h"
#include "aggregator/record.h"
#include "aggregator/router.h"
#include "aggregator/source.h"

enum { FMT_IN_JSON, FMT_IN_MSGPACK, FMT_IN_TEXT };
enum { TAG_FROM_TOPIC, TAG_FROM_RECORD };
enum { TIME_NOW, TIME_KAFKA, TIME_RECORD };

typedef struct kafka_in_conf {
    char **brokers;
    char **topics;
    char *consumer_group;
    int format;
    char *message_key;
    int add_headers;
    char *headers_key;
    int start_from;
    char *tag;
    int tag_source;
    char *record_tag_key;
    char *add_prefix;
    char *add_suffix;
    int time_source;
    char *kafka_message_key;
    int64_t max_poll_records;
    double retry_wait;
    conf_hash rdkafka_options;
    /* fluent-plugin-kafka's names (kafka_group, rdkafka_group) */
    kafka_common common;
    char *host;
    int64_t port;
    int use_record_time;
    char *record_time_key;
    char *time_format;
    int64_t retry_wait_seconds;
    int start_from_beginning;
    int64_t max_bytes, min_bytes, max_wait_time, session_timeout, offset_commit_interval, refresh_topic_interval;
    int64_t max_batch_size;
    conf_hash kafka_configs;
    kmeta_conf meta; /* decorate_events, DLQ labelling (kafka_meta.h) */
    conf_slot compat[24];
} kafka_in_conf;

enum { KI_C0 = __COUNTER__ };
#define S COMPAT_SLOT(kafka_in_conf, __COUNTER__ - KI_C0 - 1)

static const conf_spec kafka_in_spec[] = {
    {"brokers", CONF_ARRAY, "localhost:9092", 0, offsetof(kafka_in_conf, brokers), NULL,
     "bootstrap brokers, `host:port` list"},
    {"topics", CONF_ARRAY, NULL, 1, offsetof(kafka_in_conf, topics), NULL,
     "topic names; `/regexp/` (or `^regexp`) subscribes to every matching topic"},
    {"consumer_group", CONF_STR, NULL, 1, offsetof(kafka_in_conf, consumer_group), NULL,
     "the group id: every weir with the same group shares the partitions"},
    {"format", CONF_ENUM, "json", 0, offsetof(kafka_in_conf, format), "json|msgpack|text",
     "`json` (one object per message), `msgpack` (one map), `text` (the payload under `message_key`). A `<parse>` "
     "section replaces it"},
    {"message_key", CONF_STR, "message", 0, offsetof(kafka_in_conf, message_key), NULL,
     "key of the payload for `format text`"},
    {"add_headers", CONF_BOOL, "false", 0, offsetof(kafka_in_conf, add_headers), NULL,
     "add each Kafka header to the record as a string (top-level keys, or one map under `headers_key`)"},
    {"headers_key", CONF_STR, NULL, 0, offsetof(kafka_in_conf, headers_key), NULL,
     "with `add_headers`: put the headers in one map under this key"},
    {"start_from", CONF_ENUM, "earliest", 0, offsetof(kafka_in_conf, start_from), "earliest|latest",
     "where a group without committed offsets starts (`auto.offset.reset`)"},
    {"tag", CONF_STR, NULL, 0, offsetof(kafka_in_conf, tag), NULL, "the tag; default: the topic name"},
    {"tag_source", CONF_ENUM, "topic", 0, offsetof(kafka_in_conf, tag_source), "topic|record",
     "`record`: the tag is the record's `record_tag_key` value when it is a string (else as `topic`)"},
    {"record_tag_key", CONF_STR, "tag", 0, offsetof(kafka_in_conf, record_tag_key), NULL, "see `tag_source`"},
    {"add_prefix", CONF_STR, NULL, 0, offsetof(kafka_in_conf, add_prefix), NULL, "`PREFIX.` in front of the tag"},
    {"add_suffix", CONF_STR, NULL, 0, offsetof(kafka_in_conf, add_suffix), NULL, "`.SUFFIX` after the tag"},
    {"time_source", CONF_ENUM, "now", 0, offsetof(kafka_in_conf, time_source), "now|kafka|record",
     "event time: `now`, `kafka` (the message timestamp), `record` (the record's `time`, or the `<parse>` section's "
     "`time_key`). With `format json`/`text` the record stays as it was sent (a `time` field is kept and, unless "
     "`time_source record`, not interpreted)"},
    {"kafka_message_key", CONF_STR, NULL, 0, offsetof(kafka_in_conf, kafka_message_key), NULL,
     "add the message key to the record under this name"},
    {"max_poll_records", CONF_INT, "10000", 0, offsetof(kafka_in_conf, max_poll_records), NULL,
     "messages per burst, 1..1000000"},
    {"retry_wait", CONF_TIME, "1s", 0, offsetof(kafka_in_conf, retry_wait), NULL,
     "pause before reading again after an output refused a burst"},
    {"rdkafka_options", CONF_HASH, NULL, 0, offsetof(kafka_in_conf, rdkafka_options), NULL,
     "any librdkafka consumer property (SASL, SSL, `session.timeout.ms`, ...). `enable.auto.offset.store` is weir's "
     "and refused"},
    /* fluent-plugin-kafka's other parameters (in_kafka_group, in_rdkafka_group) */
    {"host", CONF_STR, NULL, 0, offsetof(kafka_in_conf, host), NULL, "with `port`: one broker instead of `brokers`"},
    {"port", CONF_INT, "0", 0, offsetof(kafka_in_conf, port), NULL, "see `host`"},
    {"use_record_time", CONF_BOOL, "false", 0, offsetof(kafka_in_conf, use_record_time), NULL,
     "deprecated form of `time_source record`"},
    {"record_time_key", CONF_STR, NULL, 0, offsetof(kafka_in_conf, record_time_key), NULL,
     "with `time_source record`: the key holding the time (default `time`)"},
    {"time_format", CONF_STR, NULL, 0, offsetof(kafka_in_conf, time_format), NULL,
     "with `time_source record`: strptime format of that value (default: a number of seconds or an ISO 8601 text)"},
    {"retry_wait_seconds", CONF_INT, NULL, 0, offsetof(kafka_in_conf, retry_wait_seconds), NULL,
     "the plugin's name for `retry_wait`, in seconds"},
    {"start_from_beginning", CONF_BOOL, NULL, 0, offsetof(kafka_in_conf, start_from_beginning), NULL,
     "`true`: `start_from earliest`; `false`: `latest`"},
    {"max_bytes", CONF_INT, NULL, 0, offsetof(kafka_in_conf, max_bytes), NULL,
     "`max.partition.fetch.bytes`; when not set (nor in `rdkafka_options`), 1/1024 of `<system> memory_budget` if "
     "that is under librdkafka's 1 MiB (64 KiB at least): a fetch is inflated whole before the pre-fetch queue's cap "
     "is checked (docs/architecture.md, \"Memory budget\")"},
    {"min_bytes", CONF_INT, NULL, 0, offsetof(kafka_in_conf, min_bytes), NULL, "`fetch.min.bytes`"},
    {"max_wait_time", CONF_INT, NULL, 0, offsetof(kafka_in_conf, max_wait_time), NULL,
     "seconds: `fetch.wait.max.ms`"},
    {"session_timeout", CONF_INT, NULL, 0, offsetof(kafka_in_conf, session_timeout), NULL,
     "seconds: `session.timeout.ms`"},
    {"offset_commit_interval", CONF_INT, NULL, 0, offsetof(kafka_in_conf, offset_commit_interval), NULL,
     "seconds: `auto.commit.interval.ms` (weir's default 1 s); offsets are still only stored after delivery"},
    {"refresh_topic_interval", CONF_INT, NULL, 0, offsetof(kafka_in_conf, refresh_topic_interval), NULL,
     "seconds: `topic.metadata.refresh.interval.ms` (new topics matching a `/regexp/`)"},
    {"max_batch_size", CONF_INT, NULL, 0, offsetof(kafka_in_conf, max_batch_size), NULL,
     "rdkafka_group's name for `max_poll_records`"},
    {"kafka_configs", CONF_HASH, NULL, 0, offsetof(kafka_in_conf, kafka_configs), NULL,
     "rdkafka_group's name for `rdkafka_options` (applied before it)"},
    KAFKA_META_ROWS(kafka_in_conf, meta),
    KAFKA_COMMON_ROWS(kafka_in_conf, common),
    {"retry_emit_limit", CONF_INT, NULL, 0, S, NULL,
     COMPAT_NOOP "weir never gives a burst up: it reads it again after `retry_wait` until the outputs take it"},
    {"disable_retry_limit", CONF_BOOL, "false", 0, S, NULL, COMPAT_NOOP "weir never gives a burst up: it reads it again after `retry_wait` until the outputs take it"},
    {"retry_limit", CONF_INT, "10", 0, S, NULL,
     COMPAT_NOOP "weir never gives a burst up: it reads it again after `retry_wait` until the outputs take it"},
    {"get_kafka_client_log", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "librdkafka's warnings are always in weir's log, its debug lines with `--log-level debug`"},
    {"offset_commit_threshold", CONF_INT, NULL, 0, S, NULL,
     COMPAT_NOOP "offsets are committed by time (`offset_commit_interval`), after delivery"},
    {"fetcher_max_queue_size", CONF_INT, NULL, 0, S, NULL,
     COMPAT_NOOP "ruby-kafka's queue; librdkafka's is `queued.max.messages.kbytes` in `rdkafka_options`"},
    {"max_wait_time_ms", CONF_INT, "250", 0, S, NULL,
     COMPAT_NOOP "a burst collects for at most 100 ms (or `max_poll_records` messages)"},
    {"interval", CONF_INT, "1", 0, S, NULL, COMPAT_NOOP "the consumer group is polled continuously"},
    {"add_offset_in_record", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_REFUSED "in_kafka's single-partition reader is not weir's: weir's kafka source is a consumer group "
     "(set `consumer_group`)"},
    {"partition", CONF_INT, "0", 0, S, NULL,
     COMPAT_REFUSED "weir's kafka source is a consumer group (set `consumer_group`); it reads no fixed partition"},
    {"offset", CONF_INT, "-1", 0, S, NULL,
     COMPAT_REFUSED "a consumer group starts from its committed offsets, or `start_from`"},
    {"offset_zookeeper", CONF_STR, NULL, 0, S, NULL,
     COMPAT_REFUSED "offsets are committed to Kafka by the consumer group"},
    {"offset_zk_root_node", CONF_STR, "/fluent-plugin-kafka", 0, S, NULL, COMPAT_NOOP "only with `offset_zookeeper`"},
    {"parse", CONF_SECTION, NULL, 0, 0, NULL,
     "any weir parser (regexp, logfmt, cri, ...) instead of `format`: `<parse>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

_Static_assert(__COUNTER__ - KI_C0 - 1 <= 24, "raise kafka_in_conf.compat");
#undef S

#define KIN_MAX_TAGS 64

/* Records of one tag in the current burst. A slot outlives its burst with
 * `hint`, the bytes its tag took last time: the next burst's buffer is made
 * that large at once instead of doubling up to it (each step of the
 * doubling touched fresh pages: 12.6 % of weir's CPU in the Phase 2
 * profile). Slots unused by the burst being collected give way to new tags. */
typedef struct kin_acc {
    char *tag;
    size_t tag_len;
    wbuf data;
    uint32_t records;
    size_t hint;
} kin_acc;

typedef struct kafka_in {
    source base;
    kafka_in_conf c;
    parser ps;
    int has_parser, parse_tried;
    kmeta km; /* metadata and retry count added to records */
    conf_node *parse_root; /* synthesized <parse> for `format` */
    rd_kafka_t *rk;
    rd_kafka_conf_t *kc; /* from create until start makes the client of it */
    router_ctx *route;
    pthread_t thread;
    int started;
    atomic_int stopping;
    /* the burst being collected (consumer thread) */
    rd_kafka_message_t **msgs;
    size_t nmsgs, cap;
    kin_acc acc[KIN_MAX_TAGS];
    size_t nacc;
    wbuf rec, tmp;
    /* counters */
    atomic_uint_fast64_t records, bursts, bad_messages, rewinds, commits;
} kafka_in;

/* ---- decoding ----------------------------------------------------------------------------- */

/* The slot of tag; NULL without memory, or with *full set when all
 * KIN_MAX_TAGS slots hold records of the burst being collected. */
static kin_acc *acc_for(kafka_in *k, const char *tag, size_t tag_len, int *full)
{
    for (size_t i = 0; i < k->nacc; i++)
        if (k->acc[i].tag_len == tag_len && !memcmp(k->acc[i].tag, tag, tag_len)) {
            kin_acc *a = &k->acc[i];
            if (!a->data.cap && a->hint)
                (void)wbuf_grow(&a->data, a->hint + a->hint / 8); /* a failure: it grows as it goes */
            return a;
        }
    if (k->nacc == KIN_MAX_TAGS) {
        /* full: the slots of tags this burst has not seen go */
        size_t keep = 0;
        for (size_t i = 0; i < k->nacc; i++) {
            if (!k->acc[i].records && !k->acc[i].data.len) {
                free(k->acc[i].tag);
                wbuf_free(&k->acc[i].data);
                continue;
            }
            k->acc[keep++] = k->acc[i];
        }
        for (size_t i = keep; i < k->nacc; i++)
            k->acc[i] = (kin_acc){0};
        k->nacc = keep;
        if (k->nacc == KIN_MAX_TAGS) {
            *full = 1;
            return NULL;
        }
    }
    kin_acc *a = &k->acc[k->nacc];
    if (!(a->tag = strndup(tag, tag_len)))
        return NULL;
    a->tag_len = tag_len;
    k->nacc++;
    return a;
}

/* Decode one message into k->rec (one map). 0, or -1 with why filled. */
static int decode_value(kafka_in *k, const rd_kafka_message_t *m, int *has_time, uint32_t *sec, uint32_t *nsec,
                        char *why, size_t whylen)
{
    k->rec.len = 0;
    *has_time = 0;
    const char *p = m->payload ? m->payload : "";
    size_t n = m->payload ? m->len : 0;
    if (k->has_parser) {
        int rc = parse_text(&k->ps, p, n, &k->rec, has_time, sec, nsec, why, whylen);
        if (rc != PARSE_OK) {
            if (rc == PARSE_NOMATCH)
                snprintf(why, whylen, "pattern not matched");
            return -1;
        }
        return 0;
    }
    /* msgpack: the payload must be one map */
    const uint8_t *q = (const uint8_t *)p, *end = q + n;
    mp_obj o;
    const uint8_t *s = q;
    if (mp_read(&s, end, &o) != MP_OK || o.type != MP_MAP || mp_skip(&q, end, 64) != MP_OK || q != end) {
        snprintf(why, whylen, "payload is not one msgpack map");
        return -1;
    }
    return wbuf_add(&k->rec, p, n);
}

/* Extra keys: kafka_message_key and headers. Rewrites k->rec. */
static int add_extras(kafka_in *k, const rd_kafka_message_t *m)
{
    rec_kv set[34];
    size_t nset = 0;
    wbuf *t = &k->tmp;
    t->len = 0;
    /* values are written into tmp first; offsets fixed up after (tmp may move) */
    size_t off[34], len[34];
    if (k->c.kafka_message_key && m->key) {
        off[nset] = t->len;
        if (mpw_str(t, m->key, m->key_len))
            return -1;
        len[nset] = t->len - off[nset];
        set[nset++] = (rec_kv){.key = k->c.kafka_message_key, .key_len = strlen(k->c.kafka_message_key)};
    }
    rd_kafka_headers_t *hs = NULL;
    if (k->c.add_headers && rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR && hs) {
        const char *name;
        const void *val;
        size_t vlen;
        if (k->c.headers_key) {
            /* all headers in one map under headers_key */
            size_t cnt = rd_kafka_header_cnt(hs);
            off[nset] = t->len;
            if (mpw_map(t, (uint32_t)cnt))
                return -1;
            for (size_t i = 0; i < cnt && rd_kafka_header_get_all(hs, i, &name, &val, &vlen) == 0; i++)
                if (mpw_str(t, name, strlen(name)) || (val ? mpw_str(t, val, vlen) : mpw_nil(t)))
                    return -1;
            len[nset] = t->len - off[nset];
            set[nset++] = (rec_kv){.key = k->c.headers_key, .key_len = strlen(k->c.headers_key)};
        } else {
            for (size_t i = 0; nset < 32 && rd_kafka_header_get_all(hs, i, &name, &val, &vlen) == 0; i++) {
                off[nset] = t->len;
                if (val ? mpw_str(t, val, vlen) : mpw_nil(t))
                    return -1;
                len[nset] = t->len - off[nset];
                set[nset++] = (rec_kv){.key = name, .key_len = strlen(name)};
            }
        }
    }
    if (!nset)
        return 0;
    /* room for the whole rewrite first: the values are in t, which must not move under rec_rewrite_n */
    size_t need = k->rec.len + 16;
    for (size_t i = 0; i < nset; i++)
        need += set[i].key_len + 5 + len[i];
    if (rec_reserve(t, need))
        return -1;
    for (size_t i = 0; i < nset; i++) {
        set[i].val = t->data + off[i];
        set[i].val_len = len[i];
    }
    size_t at = t->len;
    if (rec_rewrite_n(t, k->rec.data, k->rec.len, NULL, 0, set, nset))
        return -1;
    k->rec.len = 0;
    return wbuf_add(&k->rec, t->data + at, t->len - at);
}

/* decorate_events and the retry count (kafka_meta.c). Rewrites k->rec. */
static int add_meta(kafka_in *k, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hs = NULL;
    if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hs = NULL;
    kmeta_msg km = {.topic = rd_kafka_topic_name(m->rkt),
                    .partition = m->partition,
                    .offset = m->offset,
                    .key = m->key,
                    .key_len = m->key_len,
                    .timestamp = rd_kafka_message_timestamp(m, NULL),
                    .headers = hs};
    return kmeta_apply(&k->km, &km, &k->rec, &k->tmp);
}

/* The message's tag into tag (cap bytes, cut there); its length. */
static size_t message_tag(kafka_in *k, const rd_kafka_message_t *m, char *tag, size_t cap)
{
    const char *base = k->c.tag ? k->c.tag : rd_kafka_topic_name(m->rkt);
    size_t blen = strlen(base);
    if (k->c.tag_source == TAG_FROM_RECORD) {
        size_t vlen;
        const uint8_t *v = rec_get(k->rec.data, k->rec.len, k->c.record_tag_key, strlen(k->c.record_tag_key), &vlen);
        mp_obj o;
        if (v && mp_read(&v, v + vlen, &o) == MP_OK && o.type == MP_STR && o.len > 0) {
            base = (const char *)o.ptr;
            blen = o.len;
        }
    }
    /* prefix "." base "." suffix, cut at cap - 1 (no snprintf: 1.5 % of weir's CPU in Phase 2) */
    size_t n = 0;
    const char *parts[5] = {k->c.add_prefix, k->c.add_prefix ? "." : NULL, base, k->c.add_suffix ? "." : NULL,
                            k->c.add_suffix};
    for (int i = 0; i < 5; i++) {
        if (!parts[i])
            continue;
        size_t l = i == 2 ? blen : strlen(parts[i]);
        if (l > cap - 1 - n)
            l = cap - 1 - n;
        memcpy(tag + n, parts[i], l);
        n += l;
    }
    tag[n] = 0;
    return n;
}

/* One message into its tag's accumulator: 0, or KIN_FULL when every slot
 * holds records of this burst (the caller sends them on and calls again).
 * Undecodable messages are logged, counted and skipped (their offsets are
 * committed with the burst). */
#define KIN_FULL 1
static int take_message(kafka_in *k, const rd_kafka_message_t *m)
{
    char why[256] = "";
    int has_time;
    uint32_t sec = 0, nsec = 0;
    if (decode_value(k, m, &has_time, &sec, &nsec, why, sizeof why) || add_extras(k, m) ||
        (kmeta_active(&k->km) && add_meta(k, m))) {
        atomic_fetch_add(&k->bad_messages, 1);
        wlog_warn("in_kafka", "%s: skipping message at %s [%" PRId32 "] offset %" PRId64 ": %s", k->base.id,
                  rd_kafka_topic_name(m->rkt), m->partition, m->offset, why[0] ? why : "cannot decode it");
        return 0;
    }
    if (!has_time || k->c.time_source != TIME_RECORD) {
        int64_t ms = -1;
        if (k->c.time_source == TIME_KAFKA)
            ms = rd_kafka_message_timestamp(m, NULL);
        if (ms >= 0) {
            sec = (uint32_t)(ms / 1000);
            nsec = (uint32_t)(ms % 1000) * 1000000u;
        } else if (!has_time || k->c.time_source == TIME_NOW) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            sec = (uint32_t)ts.tv_sec;
            nsec = (uint32_t)ts.tv_nsec;
        }
    }
    char tag[512];
    size_t tag_len = message_tag(k, m, tag, sizeof tag);
    int full = 0;
    kin_acc *a = acc_for(k, tag, tag_len, &full);
    if (full)
        return KIN_FULL;
    size_t len0 = a ? a->data.len : 0;
    if (!a || batch_put_entry_head(&a->data, sec, nsec, NULL, 0) || wbuf_add(&a->data, k->rec.data, k->rec.len)) {
        if (a)
            a->data.len = len0;
        atomic_fetch_add(&k->bad_messages, 1);
        wlog_error("in_kafka", "%s: out of memory: message at %s [%" PRId32 "] offset %" PRId64 " skipped",
                   k->base.id, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
        return 0;
    }
    a->records++;
    return 0;
}

/* ---- bursts ----------------------------------------------------------------------------------- */

/* Offsets of the burst: per partition the first and the next-after-last. */
static rd_kafka_topic_partition_list_t *burst_offsets(kafka_in *k, int first)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < k->nmsgs; i++) {
        rd_kafka_message_t *m = k->msgs[i];
        const char *t = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, t, m->partition);
        if (!p) {
            p = rd_kafka_topic_partition_list_add(l, t, m->partition);
            p->offset = first ? m->offset : m->offset + 1;
        } else if (first ? m->offset < p->offset : m->offset + 1 > p->offset) {
            p->offset = first ? m->offset : m->offset + 1;
        }
    }
    return l;
}

/* The burst's messages and records go; with `all` the tags' slots too. */
static void burst_release(kafka_in *k, int all)
{
    for (size_t i = 0; i < k->nmsgs; i++)
        rd_kafka_message_destroy(k->msgs[i]);
    k->nmsgs = 0;
    for (size_t i = 0; i < k->nacc; i++) {
        wbuf_free(&k->acc[i].data);
        k->acc[i].records = 0;
        if (all) {
            free(k->acc[i].tag);
            k->acc[i] = (kin_acc){0};
        }
    }
    if (all)
        k->nacc = 0;
}

/* Send the records collected so far on, in the burst's ticket: one batch
 * per tag. The memory budget: at it the consumer stops polling (wait reason
 * source) until they fit, 30 s at most; they count (*held) until the
 * burst's ticket completes. */
static void burst_submit(kafka_in *k, ticket_sync *kt, uint64_t *nrec, size_t *held)
{
    size_t h = 0;
    for (size_t i = 0; i < k->nacc; i++)
        h += k->acc[i].data.len;
    source_mem_reserve(h, 30.0, (const int *)&k->stopping);
    *held += h;
    for (size_t i = 0; i < k->nacc; i++) {
        kin_acc *a = &k->acc[i];
        if (!a->records)
            continue;
        size_t len;
        uint8_t *data = wbuf_steal(&a->data, &len);
        a->hint = len;
        uint32_t records = a->records;
        a->records = 0;
        batch *b = batch_new(a->tag, a->tag_len, data, len, records);
        if (!b) {
            free(data);
            atomic_fetch_add(&kt->t.failed, 1);
            continue;
        }
        *nrec += records;
        router_route(k->route, k->base.label, b);
        size_t n = 0;
        rt_delivery *dl = router_ctx_deliveries(k->route, &n);
        atomic_fetch_add(&kt->t.outstanding, (int)n);
        for (size_t d = 0; d < n; d++)
            output_submit(dl[d].out, dl[d].b, &kt->t, dl[d].flags);
        router_ctx_reset(k->route);
        batch_unref(b);
    }
}

/* Route the burst, wait until every output has it, store its offsets.
 * A burst of more than KIN_MAX_TAGS tags goes in several rounds of batches,
 * all in the one ticket. Returns 0, or -1 when an output refused it
 * (partitions rewound). */
static int burst_flush(kafka_in *k)
{
    if (!k->nmsgs)
        return 0;
    /* the ticket of the burst: every output that gets a batch of it reports here */
    ticket_sync kt;
    ticket_sync_init(&kt, 1); /* guard until every batch is submitted */
    uint64_t nrec = 0;
    size_t held = 0;
    for (size_t i = 0; i < k->nmsgs; i++)
        if (take_message(k, k->msgs[i]) == KIN_FULL) {
            burst_submit(k, &kt, &nrec, &held);
            (void)take_message(k, k->msgs[i]); /* the slots are free now */
        }
    burst_submit(k, &kt, &nrec, &held);
    ticket_done(&kt.t, 1);
    int rc = 0;
    /* the outputs hold the burst; stateful filters (aggregate's changelog)
     * make the state it produced durable before its offsets are stored */
    int waited = ticket_sync_wait(&kt);
    mb_release(held);
    if (waited == 0 && filter_hooks_barrier() == 0) {
        rd_kafka_topic_partition_list_t *l = burst_offsets(k, 0);
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->rk, l);
        if (e)
            /* a partition revoked meanwhile: its next owner reads these again */
            wlog_warn("in_kafka", "%s: cannot store offsets of %zu messages: %s", k->base.id, k->nmsgs,
                      rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        atomic_fetch_add(&k->records, nrec);
        atomic_fetch_add(&k->bursts, 1);
    } else {
        rd_kafka_topic_partition_list_t *l = burst_offsets(k, 1);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 5000);
        wlog_warn("in_kafka", "%s: an output refused %" PRIu64 " records of %zu messages; reading them again in "
                  "%.1fs%s%s",
                  k->base.id, nrec, k->nmsgs, k->c.retry_wait, e ? ": seek failed: " : "",
                  e ? rd_kafka_error_string(e) : "");
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
        atomic_fetch_add(&k->rewinds, 1);
        rc = -1;
    }
    burst_release(k, 0);
    return rc;
}

/* ---- rebalance (consumer thread, inside rd_kafka_consumer_poll) ------------------------------- */

static void parts_hook(const rd_kafka_topic_partition_list_t *parts, int assigned)
{
    if (!parts || parts->cnt <= 0)
        return;
    filter_part *fp = calloc((size_t)parts->cnt, sizeof *fp);
    if (!fp)
        return;
    for (int i = 0; i < parts->cnt; i++)
        fp[i] = (filter_part){parts->elems[i].topic, parts->elems[i].partition};
    filter_hooks_partitions(fp, (size_t)parts->cnt, assigned);
    free(fp);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    kafka_in *k = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        wlog_info("in_kafka", "%s: assigned %d partition%s", k->base.id, parts->cnt, parts->cnt == 1 ? "" : "s");
        parts_hook(parts, 1); /* aggregate's changelog restores the partitions' state first */
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                wlog_error("in_kafka", "%s: incremental assign failed: %s", k->base.id, rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        return;
    }
    /* revoke (or error): deliver what was read, commit it, then let go */
    burst_flush(k);
    rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
    if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
        wlog_warn("in_kafka", "%s: commit before releasing partitions failed: %s", k->base.id, rd_kafka_err2str(ce));
    else
        atomic_fetch_add(&k->commits, 1);
    parts_hook(parts, 0);
    wlog_info("in_kafka", "%s: releasing %d partition%s (%s)", k->base.id, parts->cnt, parts->cnt == 1 ? "" : "s",
              rd_kafka_err2name(err));
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

/* AWS MSK IAM: the token, from librdkafka's background thread. */
static void in_msk_refresh_cb(rd_kafka_t *rk, const char *oauthbearer_config, void *opaque)
{
    (void)oauthbearer_config;
    kafka_in *k = opaque;
    kafka_msk_iam_refresh(rk, &k->c.common, "in_kafka", k->base.id);
}

static void in_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_in *k = opaque;
    if (rd_kafka_fatal_error(rk, NULL, 0))
        wlog_error("in_kafka", "%s: fatal consumer error: %s: %s", k->base.id, rd_kafka_err2name(err), reason);
    else
        wlog_warn("in_kafka", "%s: %s: %s", k->base.id, rd_kafka_err2name(err), reason);
}

static void in_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 4)
        wlog_warn("in_kafka", "librdkafka %s: %s", fac, buf);
    else
        wlog_debug("in_kafka", "librdkafka %s: %s", fac, buf);
}

/* ---- thread ------------------------------------------------------------------------------------ */

static void *consumer_main(void *arg)
{
    kafka_in *k = arg;
    while (!atomic_load(&k->stopping)) {
        if (router_congested(k->base.rt)) {
            /* outputs are behind: keep the group membership alive, read nothing */
            usleep(10000);
            continue;
        }
        int timeout = 100;
        while (k->nmsgs < (size_t)k->c.max_poll_records && !atomic_load(&k->stopping)) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, timeout);
            if (!m)
                break;
            timeout = 0;
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    wlog_warn("in_kafka", "%s: %s", k->base.id, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            if (k->nmsgs == k->cap) {
                size_t cap = k->cap ? k->cap * 2 : 1024;
                rd_kafka_message_t **a = realloc(k->msgs, cap * sizeof *a);
                if (!a) {
                    wlog_error("in_kafka", "%s: out of memory; message not taken (read again later)", k->base.id);
                    rd_kafka_message_destroy(m);
                    break;
                }
                k->msgs = a;
                k->cap = cap;
            }
            k->msgs[k->nmsgs++] = m;
        }
        if (burst_flush(k) != 0) {
            for (double w = 0; w < k->c.retry_wait && !atomic_load(&k->stopping); w += 0.05)
                usleep(50000);
        }
    }
    /* deliver what was read, then leave the group (revoke: commit) */
    burst_flush(k);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk);
    if (e)
        wlog_warn("in_kafka", "%s: closing the consumer: %s", k->base.id, rd_kafka_err2str(e));
    return NULL;
}

/* ---- plugin ------------------------------------------------------------------------------------ */

static void kin_free(source *s);

static source *kin_create(conf_node *n, int index, conf_errors *errs)
{
    kafka_in *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    extern const source_plugin in_kafka_plugin;
    source_init(&k->base, &in_kafka_plugin, n, index);
    if (conf_bind(n, kafka_in_spec, &k->c, errs) || compat_check(n, kafka_in_spec, "config", k->base.id, errs)) {
        kin_free(&k->base);
        return NULL;
    }
    int bad = 0;
    if (kmeta_configure(&k->km, &k->c.meta, k->c.consumer_group, n, errs))
        bad = -1;
    /* fluent-plugin-kafka's names for weir's parameters */
    if (k->c.use_record_time)
        k->c.time_source = TIME_RECORD;
    if (conf_get_value(n, "retry_wait_seconds"))
        k->c.retry_wait = (double)k->c.retry_wait_seconds;
    if (conf_get_value(n, "start_from_beginning"))
        k->c.start_from = k->c.start_from_beginning ? 0 : 1;
    if (conf_get_value(n, "max_batch_size"))
        k->c.max_poll_records = k->c.max_batch_size;
    if (k->c.host) {
        char hp[600];
        snprintf(hp, sizeof hp, "%s:%lld", k->c.host, (long long)(k->c.port > 0 ? k->c.port : 9092));
        conf_strv_free(k->c.brokers);
        k->c.brokers = calloc(2, sizeof *k->c.brokers);
        if (!k->c.brokers || !(k->c.brokers[0] = strdup(hp))) {
            kin_free(&k->base);
            return NULL;
        }
    }
    if (k->c.max_poll_records < 1 || k->c.max_poll_records > 1000000) {
        conf_error_at(errs, n, "max_poll_records", "max_poll_records must be between 1 and 1000000");
        bad = -1;
    }
    if (!k->c.topics || !k->c.topics[0]) {
        conf_error_at(errs, n, "topics", "topics is empty");
        bad = -1;
    }
    if (!k->c.brokers || !k->c.brokers[0]) {
        conf_error_at(errs, n, "brokers", "brokers is empty");
        bad = -1;
    }
    /* the parser: a <parse> section, or one built from `format` */
    conf_node *pn = NULL;
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, "parse"))
            pn = n->children[i];
    if (!pn && k->c.format != FMT_IN_MSGPACK) {
        char text[512];
        char tk[300] = "";
        if (k->c.record_time_key || k->c.time_format)
            snprintf(tk, sizeof tk, "%s%s%s%s%s", k->c.record_time_key ? "  time_key \"" : "",
                     k->c.record_time_key ? k->c.record_time_key : "", k->c.record_time_key ? "\"\n" : "",
                     k->c.time_format ? "  time_format " : "", k->c.time_format ? k->c.time_format : "");
        if (k->c.time_format)
            strncat(tk, "\n", sizeof tk - strlen(tk) - 1);
        if (k->c.format == FMT_IN_JSON)
            snprintf(text, sizeof text, "<parse>\n  @type json\n  keep_time_key true\n%s</parse>\n", tk);
        else
            snprintf(text, sizeof text, "<parse>\n  @type none\n  message_key \"%s\"\n</parse>\n", k->c.message_key);
        k->parse_root = conf_parse_string(text, "<kafka format>", errs);
        if (k->parse_root && k->parse_root->nchildren)
            pn = k->parse_root->children[0];
    }
    if (pn) {
        k->parse_tried = 1;
        if (parse_configure(&k->ps, pn, errs)) {
            bad = -1;
        } else {
            k->has_parser = 1;
            /* `format`: the record stays as it was sent; its "time" is only
             * read with time_source record */
            if (k->parse_root && k->c.time_source != TIME_RECORD) {
                k->ps.tkey = NULL;
                k->ps.tkey_len = 0;
            }
        }
    }
    if (bad) {
        kin_free(&k->base);
        return NULL;
    }

    const conf_hash *opts = &k->c.rdkafka_options;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    bad |= kafka_conf_brokers(kc, n, k->c.brokers, errs);
    bad |= kafka_conf_set(kc, n, "consumer_group", "group.id", k->c.consumer_group, errs);
    bad |= kafka_conf_set(kc, n, "start_from", "auto.offset.reset", k->c.start_from ? "latest" : "earliest", errs);
    /* at-least-once: offsets are stored by weir after delivery, committed by librdkafka */
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "enable.auto.offset.store", "false", errs);
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "enable.auto.commit", "true", errs);
    /* a crashed instance's successor re-reads at most ~1 s of records */
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "auto.commit.interval.ms", "1000", errs);
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "client.id", "weir", errs);
    static const struct {
        const char *param, *prop;
        size_t off;
        int ms;
    } ints[] = {
        {"max_bytes", "max.partition.fetch.bytes", offsetof(kafka_in_conf, max_bytes), 0},
        {"min_bytes", "fetch.min.bytes", offsetof(kafka_in_conf, min_bytes), 0},
        {"max_wait_time", "fetch.wait.max.ms", offsetof(kafka_in_conf, max_wait_time), 1},
        {"session_timeout", "session.timeout.ms", offsetof(kafka_in_conf, session_timeout), 1},
        {"offset_commit_interval", "auto.commit.interval.ms", offsetof(kafka_in_conf, offset_commit_interval), 1},
        {"refresh_topic_interval", "topic.metadata.refresh.interval.ms",
         offsetof(kafka_in_conf, refresh_topic_interval), 1},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (conf_get_value(n, ints[i].param)) {
            char num[32];
            snprintf(num, sizeof num, "%lld",
                     (long long)*(const int64_t *)((const char *)&k->c + ints[i].off) * (ints[i].ms ? 1000 : 1));
            bad |= kafka_conf_set(kc, n, ints[i].param, ints[i].prop, num, errs);
        }
    bad |= kafka_conf_common(kc, n, &k->c.common, opts, errs);
    for (size_t i = 0; i < k->c.kafka_configs.n; i++)
        bad |= kafka_conf_set(kc, n, "kafka_configs", k->c.kafka_configs.kv[i].k, k->c.kafka_configs.kv[i].v, errs);
    for (size_t i = 0; i < opts->n; i++) {
        if (!strcmp(opts->kv[i].k, "enable.auto.offset.store")) {
            conf_error_at(errs, n, "rdkafka_options",
                          "enable.auto.offset.store is set by weir (offsets are stored after delivery)");
            bad = -1;
            continue;
        }
        bad |= kafka_conf_set(kc, n, "rdkafka_options", opts->kv[i].k, opts->kv[i].v, errs);
    }
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    rd_kafka_conf_set_error_cb(kc, in_error_cb);
    rd_kafka_conf_set_log_cb(kc, in_log_cb);
    if (k->c.common.msk_key_id)
        rd_kafka_conf_set_oauthbearer_token_refresh_cb(kc, in_msk_refresh_cb);
    rd_kafka_conf_set_opaque(kc, k);
    if (bad) {
        rd_kafka_conf_destroy(kc);
        kin_free(&k->base);
        return NULL;
    }
    /* the client is made by start: a configuration check (--dry-run) must
     * not start librdkafka's threads nor connect to the brokers */
    k->kc = kc;
    return &k->base;
}

static int kin_start(source *s, const source_env *env)
{
    kafka_in *k = (kafka_in *)s;
    kafka_conf_fetch_queue(k->kc, &k->c.rdkafka_options, mb_limit(), s->id);
    if (!(k->rk = kafka_client_new(RD_KAFKA_CONSUMER, &k->kc, "in_kafka", s->id)))
        return -1;
    rd_kafka_poll_set_consumer(k->rk);
    if (!(k->route = router_ctx_new(s->rt))) {
        wlog_error("in_kafka", "%s: out of memory", s->id);
        return -1;
    }
    size_t nt = 0;
    while (k->c.topics[nt])
        nt++;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)nt);
    for (size_t i = 0; i < nt; i++) {
        const char *t = k->c.topics[i];
        char pat[1024];
        size_t tl = strlen(t);
        if (tl > 2 && t[0] == '/' && t[tl - 1] == '/') {
            /* /regexp/ -> librdkafka's "^regexp" subscription */
            snprintf(pat, sizeof pat, "%s%.*s", t[1] == '^' ? "" : "^", (int)(tl - 2), t + 1);
            t = pat;
        }
        rd_kafka_topic_partition_list_add(l, t, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        wlog_error("in_kafka", "%s: cannot subscribe: %s", s->id, rd_kafka_err2str(e));
        return -1;
    }
    if (pthread_create(&k->thread, NULL, consumer_main, k)) {
        wlog_error("in_kafka", "%s: cannot start its thread: %s", s->id, strerror(errno));
        return -1;
    }
    k->started = 1;
    wlog_info("in_kafka", "%s: consuming %zu topic pattern%s as group %s", s->id, nt, nt == 1 ? "" : "s",
              k->c.consumer_group);
    return 0;
}

static void kin_stop(source *s)
{
    kafka_in *k = (kafka_in *)s;
    if (!k->started)
        return;
    atomic_store(&k->stopping, 1);
    pthread_join(k->thread, NULL);
    k->started = 0;
    wlog_info("in_kafka", "%s: stopped: %" PRIuFAST64 " records in %" PRIuFAST64 " bursts, %" PRIuFAST64
              " undecodable messages skipped, %" PRIuFAST64 " rewinds",
              s->id, atomic_load(&k->records), atomic_load(&k->bursts), atomic_load(&k->bad_messages),
              atomic_load(&k->rewinds));
}

static void kin_free(source *s)
{
    kafka_in *k = (kafka_in *)s;
    if (!k)
        return;
    kin_stop(s);
    burst_release(k, 1);
    free(k->msgs);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    if (k->kc)
        rd_kafka_conf_destroy(k->kc);
    if (k->route)
        router_ctx_free(k->route);
    if (k->parse_tried)
        parse_free(&k->ps);
    conf_free(k->parse_root);
    kmeta_free(&k->km);
    conf_unbind(kafka_in_spec, &k->c);
    wbuf_free(&k->rec);
    wbuf_free(&k->tmp);
    source_fini(&k->base);
    free(k);
}

static const parser *kin_parser(const source *s)
{
    const kafka_in *k = (const kafka_in *)s;
    return k->has_parser ? &k->ps : NULL;
}

const source_plugin in_kafka_plugin = {
    .name = "kafka",
    .spec = kafka_in_spec,
    .create = kin_create,
    .start = kin_start,
    .stop = kin_stop,
    .free = kin_free,
    .parser = kin_parser,
};

/* fluent-plugin-kafka's consumer-group inputs, which this source is */
const source_plugin in_kafka_group_plugin = {
    .name = "kafka_group",
    .spec = kafka_in_spec,
    .create = kin_create,
    .start = kin_start,
    .stop = kin_stop,
    .free = kin_free,
};

const source_plugin in_rdkafka_group_plugin = {
    .name = "rdkafka_group",
    .spec = kafka_in_spec,
    .create = kin_create,
    .start = kin_start,
    .stop = kin_stop,
    .free = kin_free,
};
