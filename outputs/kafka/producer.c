/*
 * outputs/kafka/producer.c: fluent-plugin-kafka's `@type kafka2` (alias
 * `rdkafka2`) on librdkafka.
 *
 * Delivery: write() produces every record of the batch (one Kafka message
 * each, its opaque pointing at a per-write kmsg slot), then serves delivery
 * reports until every message of THIS write has one. Only then does it
 * return: messages with a successful report are done, retryable failures are
 * marked OUT_RETRY (the buffer re-queues only those), permanent ones
 * (too large, invalid) OUT_ERROR with librdkafka's reason (dead letter).
 * A full local queue waits (rd_kafka_poll) and produces the same message
 * again: never dropped, the batch is never re-enqueued whole.
 *
 * A batch the broker rejects as too large (topic max.message.bytes smaller
 * than librdkafka's produce batch) fails every message in it with
 * MSG_SIZE_TOO_LARGE; those messages are then sent again one at a time, so
 * only a record that is too large on its own is dead-lettered.
 *
 * Ownership and threads: one rd_kafka_t per output, created in init and
 * destroyed in exit (main thread), shared by the flush threads (librdkafka is
 * thread-safe). Each write owns its kmsg slots, payload scratch buffers and
 * header lists until every report arrived (librdkafka keeps the opaque until
 * then); any flush thread's rd_kafka_poll may serve another write's reports,
 * which is why a slot is only written by the report callback and read by its
 * owner after the release/acquire of `pending`. Topic names, keys and header
 * values are copied by librdkafka; payloads are not (no RD_KAFKA_MSG_F_COPY):
 * they live in the write's payload blocks, freed after the last report.
 */
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "lib/array.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/compat_params.h"
#include "aggregator/kafka_conf.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "outputs/format.h"
#include "outputs/kafka/route.h"
#include "outputs/kafka/zk.h"

_Static_assert(KAFKA_NO_PARTITION == RD_KAFKA_PARTITION_UA, "route.h: no partition is librdkafka's UA");

#define KAFKA_ISOLATE_MAX 1000 /* records re-sent one by one per write after a too-large batch */

typedef struct kafka_out {
    /* bound from config */
    char **brokers;
    char *zookeeper, *zookeeper_path;
    kafka_keys keys; /* topic, message key, partition (route.h) */
    conf_hash headers;
    conf_hash headers_from_record;
    int64_t required_acks;
    int compression;
    uint64_t max_send_limit_bytes;
    int exclude_topic_key, exclude_message_key, exclude_partition_key, exclude_partition;
    int use_event_time;
    double delivery_timeout;
    conf_hash rdkafka_options;
    kafka_common common;
    int idempotent;
    char *partitioner_hash_function;
    char *record_key;
    char **exclude_fields;
    double ack_timeout;
    int64_t max_send_retries;
    int discard_failed;
    char *discard_failed_regex;
    double slow_flush;
    int64_t rdk_buffering_max_ms, rdk_buffering_max_messages, rdk_message_max_bytes, rdk_message_max_num;
    char *output_data_type;
    int output_include_tag, output_include_time;
    char *time_format;
    conf_slot compat[40];
    /* state */
    rec_path record_path;
    int has_record_path;
    rec_path *excl;
    size_t nexcl;
    regex_t discard_re;
    int has_discard_re;
    fmt f;
    int strip_newline; /* json: one message per record, no '\n' */
    rd_kafka_t *rk;
    rd_kafka_conf_t *kc; /* from init until start makes the client of it */
    char **rec_hdr_names;
    rec_path *rec_hdr_paths;
    size_t nrec_hdrs;
    rec_kv drop[4];
    size_t ndrop;
    const char *id;
    /* counters */
    atomic_uint_fast64_t delivered, failed_retry, failed_error, queue_full_waits, isolated;
    atomic_int aborting; /* shutdown: writes give up waiting (kafka_abort) */
} kafka_out;

enum { KO_C0 = __COUNTER__ };
#define S COMPAT_SLOT(kafka_out, __COUNTER__ - KO_C0 - 1)

static const conf_spec kafka_spec[] = {
    {"brokers", CONF_ARRAY, "localhost:9092", 0, offsetof(kafka_out, brokers), NULL,
     "bootstrap brokers, `host:port` list (comma separated or JSON array)"},
    {"zookeeper", CONF_STR, NULL, 0, offsetof(kafka_out, zookeeper), NULL,
     "the brokers as registered in ZooKeeper instead of `brokers` (fluent-plugin-kafka's older outputs): "
     "ZooKeeper's connect string, `host:port[,host:port...][/chroot]`. Read once when the output starts (not by "
     "`--dry-run`); each broker's endpoint for the client's security protocol (`PLAINTEXT`, or `SSL` with the TLS "
     "parameters), else its `host`:`port`. weir does not start when none is found. Kafka 4 has no ZooKeeper"},
    {"zookeeper_path", CONF_STR, "/brokers/ids", 0, offsetof(kafka_out, zookeeper_path), NULL,
     "where the brokers registered (under the chroot, if any)"},
    {"default_topic", CONF_STR, NULL, 0, offsetof(kafka_out, keys.default_topic), NULL,
     "topic for records without `topic_key`; without it the **tag** is the topic (kafka2's rule)"},
    {"topic_key", CONF_STR, "topic", 0, offsetof(kafka_out, keys.topic_key), NULL,
     "record key whose string value is the topic"},
    {"default_message_key", CONF_STR, NULL, 0, offsetof(kafka_out, keys.default_message_key), NULL,
     "message key for records without `message_key_key`"},
    {"message_key_key", CONF_STR, "message_key", 0, offsetof(kafka_out, keys.message_key_key), NULL,
     "record key whose value is the message key (non-strings as their JSON text)"},
    {"partition_key_key", CONF_STR, "partition_key", 0, offsetof(kafka_out, keys.partition_key_key), NULL,
     "record key whose value picks the partition (murmur2, as the Java client hashes keys). When this parameter is "
     "set explicitly, librdkafka's sticky partitioning is turned off so records without a message key reach the "
     "partitioner too"},
    {"partition_key", CONF_STR, "partition", 0, offsetof(kafka_out, keys.partition_key), NULL,
     "record key holding an explicit partition number"},
    {"headers", CONF_HASH, NULL, 0, offsetof(kafka_out, headers), NULL,
     "static headers: `{\"name\":\"value\"}` or `name:value,name2:value2`"},
    {"headers_from_record", CONF_HASH, NULL, 0, offsetof(kafka_out, headers_from_record), NULL,
     "headers from the record: `{\"name\":\"$.record.accessor\"}` (non-strings as JSON text; a missing value adds "
     "no header)"},
    {"required_acks", CONF_INT, "-1", 0, offsetof(kafka_out, required_acks), NULL,
     "`acks`: `-1` (all in-sync replicas), `1`, `0`. Anything but `-1` turns the idempotent producer off"},
    {"compression_codec", CONF_ENUM, "none", 0, offsetof(kafka_out, compression), "none|gzip|snappy|lz4|zstd",
     "compression of produce batches"},
    {"max_send_limit_bytes", CONF_SIZE, "0", 0, offsetof(kafka_out, max_send_limit_bytes), NULL,
     "a formatted record larger than this is not sent: it goes to the dead-letter file / `<secondary>` with the "
     "reason; `0`: no limit"},
    {"exclude_topic_key", CONF_BOOL, "false", 0, offsetof(kafka_out, exclude_topic_key), NULL,
     "remove `topic_key` from the payload"},
    {"exclude_message_key", CONF_BOOL, "false", 0, offsetof(kafka_out, exclude_message_key), NULL,
     "remove `message_key_key` from the payload"},
    {"exclude_partition_key", CONF_BOOL, "false", 0, offsetof(kafka_out, exclude_partition_key), NULL,
     "remove `partition_key_key` from the payload"},
    {"exclude_partition", CONF_BOOL, "false", 0, offsetof(kafka_out, exclude_partition), NULL,
     "remove `partition_key` from the payload"},
    {"use_event_time", CONF_BOOL, "false", 0, offsetof(kafka_out, use_event_time), NULL,
     "the Kafka timestamp is the event time (otherwise the produce time)"},
    {"delivery_timeout", CONF_TIME, "60s", 0, offsetof(kafka_out, delivery_timeout), NULL,
     "librdkafka's `message.timeout.ms`: how long librdkafka retries a message before it reports it failed (then "
     "the buffer retries it)"},
    {"rdkafka_options", CONF_HASH, NULL, 0, offsetof(kafka_out, rdkafka_options), NULL,
     "any librdkafka producer property (`{\"k\":\"v\"}` or `k:v,k2:v2`), applied last: SASL, SSL, `linger.ms`, "
     "`batch.size`, `enable.idempotence`, ... An invalid property is a configuration error"},
    {"topic", CONF_STR, NULL, 0, offsetof(kafka_out, keys.topic), NULL,
     "every record's topic, with placeholders `${tag}`, `${tag[N]}`, `${key}` / `${$.a.b}` (a record value); wins "
     "over `topic_key` and `default_topic` (kafka2's rule)"},
    {"default_partition_key", CONF_STR, NULL, 0, offsetof(kafka_out, keys.default_partition_key), NULL,
     "partition key of records without `partition_key_key`"},
    {"default_partition", CONF_INT, "-1", 0, offsetof(kafka_out, keys.default_partition), NULL,
     "partition of records without `partition_key`; `-1`: the partitioner decides"},
    {"partitioner_hash_function", CONF_STR, NULL, 0, offsetof(kafka_out, partitioner_hash_function), NULL,
     "`crc32` or `murmur2`: the hash of partition keys and message keys. Unset: weir's default, murmur2 for "
     "`partition_key_key` values (the Java client's) and librdkafka's consistent-random for message keys"},
    {"record_key", CONF_STR, NULL, 0, offsetof(kafka_out, record_key), NULL,
     "send only this part of the record (record accessor, e.g. `$.data`); a record without it is not sent"},
    {"exclude_fields", CONF_ARRAY, NULL, 0, offsetof(kafka_out, exclude_fields), NULL,
     "record accessors removed from the payload (after topic, keys and headers were read)"},
    {"idempotent", CONF_BOOL, NULL, 0, offsetof(kafka_out, idempotent), NULL,
     "`enable.idempotence`. Unset: on when `required_acks` is -1 (weir's default)"},
    {"ack_timeout", CONF_TIME, NULL, 0, offsetof(kafka_out, ack_timeout), NULL,
     "how long the broker may take to acknowledge (`request.timeout.ms`)"},
    {"max_send_retries", CONF_INT, NULL, 0, offsetof(kafka_out, max_send_retries), NULL,
     "librdkafka's `message.send.max.retries` (within `delivery_timeout`; then the buffer retries). Unset: "
     "librdkafka's default"},
    {"discard_kafka_delivery_failed", CONF_BOOL, "false", 0, offsetof(kafka_out, discard_failed), NULL,
     "a message librdkafka reports failed is not retried: it goes to the dead-letter file / `<secondary>` (weir "
     "never drops records silently)"},
    {"discard_kafka_delivery_failed_regex", CONF_STR, NULL, 0, offsetof(kafka_out, discard_failed_regex), NULL,
     "the same, only for failures whose librdkafka message matches this regular expression (POSIX extended)"},
    {"rdkafka_buffering_max_ms", CONF_INT, NULL, 0, offsetof(kafka_out, rdk_buffering_max_ms), NULL,
     "`queue.buffering.max.ms`"},
    {"rdkafka_buffering_max_messages", CONF_INT, NULL, 0, offsetof(kafka_out, rdk_buffering_max_messages), NULL,
     "`queue.buffering.max.messages` (weir's default 1000000)"},
    {"rdkafka_message_max_bytes", CONF_INT, NULL, 0, offsetof(kafka_out, rdk_message_max_bytes), NULL,
     "`message.max.bytes`"},
    {"rdkafka_message_max_num", CONF_INT, NULL, 0, offsetof(kafka_out, rdk_message_max_num), NULL,
     "`batch.num.messages`"},
    {"output_data_type", CONF_STR, NULL, 0, offsetof(kafka_out, output_data_type), NULL,
     "v0.12 form of `<format>` (kafka_buffered, rdkafka): `json`, `ltsv`, `msgpack` or `single_value`"},
    {"output_include_tag", CONF_BOOL, "false", 0, offsetof(kafka_out, output_include_tag), NULL,
     "v0.12 form of `<inject> tag_key tag`: the tag under `tag`"},
    {"output_include_time", CONF_BOOL, "false", 0, offsetof(kafka_out, output_include_time), NULL,
     "v0.12 form of `<inject> time_key time`: the event time under `time` (integer seconds, or `time_format`)"},
    {"time_format", CONF_STR, NULL, 0, offsetof(kafka_out, time_format), NULL,
     "with `output_include_time`: strftime format of that time (local time)"},
    {"slow_flush_log_threshold", CONF_TIME, "20s", 0, offsetof(kafka_out, slow_flush), NULL,
     "Fluentd's output parameter: a write that takes longer is logged as a warning (`buffer flush took longer time "
     "than slow_flush_log_threshold`)"},
    KAFKA_COMMON_ROWS(kafka_out, common),
    /* accepted, no effect in weir: one warning each */
    {"use_default_for_unknown_topic", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "records for a topic that does not exist are retried by the buffer (then dead-lettered), not sent "
     "to `default_topic`"},
    {"use_default_for_unknown_partition_error", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "records refused with an unknown partition are retried by the buffer, not sent to `default_topic`"},
    {"resolve_seed_brokers", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "librdkafka tries every address a broker name resolves to"},
    {"get_kafka_client_log", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "librdkafka's warnings are always in weir's log, its debug lines with `--log-level debug`"},
    {"ignore_exceptions", CONF_ARRAY, NULL, 0, S, NULL,
     COMPAT_NOOP "Ruby exception classes; failed messages are retried by the buffer"},
    {"exception_backup", CONF_BOOL, "true", 0, S, NULL, COMPAT_NOOP "goes with `ignore_exceptions`"},
    {"active_support_notification_regex", CONF_STR, NULL, 0, S, NULL, COMPAT_NOOP "Ruby instrumentation"},
    {"share_producer", CONF_BOOL, "false", 0, S, NULL,
     COMPAT_NOOP "weir always has one producer per output, shared by its flush threads"},
    {"max_enqueue_retries", CONF_INT, "3", 0, S, NULL,
     COMPAT_NOOP "weir waits while librdkafka's queue is full; it never gives a message up there"},
    {"enqueue_retry_backoff", CONF_INT, "3", 0, S, NULL, COMPAT_NOOP "see `max_enqueue_retries`"},
    {"max_enqueue_bytes_per_second", CONF_SIZE, NULL, 0, S, NULL,
     COMPAT_NOOP "weir does not rate-limit producing; limit the flush rate with the buffer instead"},
    {"rdkafka_delivery_handle_poll_timeout", CONF_INT, "30", 0, S, NULL,
     COMPAT_NOOP "a write waits for every delivery report (each comes within `delivery_timeout`)"},
    {"unrecoverable_error_codes", CONF_ARRAY, "topic_authorization_failed,msg_size_too_large", 0, S, NULL,
     COMPAT_NOOP "weir's table decides: too large and invalid messages are dead-lettered, the rest retried"},
    {"kafka_agg_max_bytes", CONF_SIZE, "4k", 0, S, NULL,
     COMPAT_NOOP "ruby-kafka's batching; librdkafka batches by `rdkafka_options` (`batch.size`, `linger.ms`)"},
    {"kafka_agg_max_messages", CONF_INT, NULL, 0, S, NULL, COMPAT_NOOP "see `kafka_agg_max_bytes`"},
    {"monitoring_list", CONF_ARRAY, NULL, 0, S, NULL, COMPAT_NOOP "Ruby instrumentation"},
    {"format", CONF_SECTION, NULL, 0, 0, NULL,
     "`json` (the default: one object, no trailing newline), `msgpack`, `single_value` (`message_key`, "
     "`add_newline`), `ltsv`"},
    {"inject", CONF_SECTION, NULL, 0, 0, NULL, "keys added to each record: `<inject>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

_Static_assert(__COUNTER__ - KO_C0 - 1 <= 40, "raise kafka_out.compat");
#undef S

static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};

/* One message of one write. */
typedef struct kwrite kwrite;
typedef struct kmsg {
    kwrite *w;
    const uint8_t *pkey; /* partition_key_key value (points into the batch) or NULL */
    size_t pkey_len;
    rd_kafka_resp_err_t err; /* written by the report callback */
    int produced;            /* this attempt reached librdkafka's queue */
    uint8_t crc32, murmur2;  /* partitioner_hash_function set */
} kmsg;

struct kwrite {
    atomic_uint pending; /* messages produced and not yet reported */
};

/* ---- callbacks (any thread that polls) ------------------------------------------------ */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    kmsg *m = msg->_private;
    if (!m)
        return;
    m->err = msg->err;
    atomic_fetch_sub_explicit(&m->w->pending, 1, memory_order_acq_rel);
}

/* AWS MSK IAM: librdkafka's background thread asks for a token at start
 * and at 80 % of the last one's 15 minutes. */
static void msk_refresh_cb(rd_kafka_t *rk, const char *oauthbearer_config, void *opaque)
{
    (void)oauthbearer_config;
    kafka_out *c = opaque;
    kafka_msk_iam_refresh(rk, &c->common, "out_kafka", c->id);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_out *c = opaque;
    if (rd_kafka_fatal_error(rk, NULL, 0))
        wlog_error("out_kafka", "%s: fatal producer error: %s: %s", c->id, rd_kafka_err2name(err), reason);
    else /* transient: librdkafka reconnects and retries by itself */
        wlog_warn("out_kafka", "%s: %s: %s", c->id, rd_kafka_err2name(err), reason);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 4)
        wlog_warn("out_kafka", "librdkafka %s: %s", fac, buf);
    else
        wlog_debug("out_kafka", "librdkafka %s: %s", fac, buf);
}

/* partition_key_key: the record's value picks the partition (Java's murmur2,
 * like the Java client's default for keys). Otherwise librdkafka's default. */
static int32_t partitioner(const rd_kafka_topic_t *rkt, const void *key, size_t keylen, int32_t cnt,
                           void *rkt_opaque, void *msg_opaque)
{
    kmsg *m = msg_opaque;
    if (m && m->crc32) /* partitioner_hash_function crc32: ruby-kafka's partitioner */
        return m->pkey ? rd_kafka_msg_partitioner_consistent(rkt, m->pkey, m->pkey_len, cnt, rkt_opaque, msg_opaque)
                       : rd_kafka_msg_partitioner_consistent_random(rkt, key, keylen, cnt, rkt_opaque, msg_opaque);
    if (m && m->murmur2 && !m->pkey && key)
        return rd_kafka_msg_partitioner_murmur2(rkt, key, keylen, cnt, rkt_opaque, msg_opaque);
    if (m && m->pkey)
        return rd_kafka_msg_partitioner_murmur2(rkt, m->pkey, m->pkey_len, cnt, rkt_opaque, msg_opaque);
    return rd_kafka_msg_partitioner_consistent_random(rkt, key, keylen, cnt, rkt_opaque, msg_opaque);
}

/* ---- init -------------------------------------------------------------------------------- */

static int kafka_init(output *o, conf_node *n, conf_errors *errs)
{
    kafka_out *c = o->ctx;
    c->id = o->id;
    o->slow_flush = c->slow_flush; /* the engine warns */
    int bad = 0;
    /* output_data_type: the v0.12 form of <format> (kafka_buffered, rdkafka) */
    int deftype = FMT_JSON;
    if (c->output_data_type) {
        static const char *const names[] = {"json", "ltsv", "msgpack", "single_value"};
        static const int types[] = {FMT_JSON, FMT_LTSV, FMT_MSGPACK, FMT_SINGLE_VALUE};
        deftype = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(c->output_data_type, names[i]))
                deftype = types[i];
        if (deftype < 0) {
            conf_error_at(errs, n, "output_data_type",
                          "output_data_type '%s' is not supported by weir: json, ltsv, msgpack or single_value "
                          "(`attr:` lists: a record_transformer with keep_keys, then json)",
                          c->output_data_type);
            return -1;
        }
    }
    if (fmt_configure(&c->f, n, deftype, errs))
        return -1;
    if (c->output_include_tag && !c->f.inj.tag_key) {
        c->f.inj.tag_key = strdup("tag");
        c->f.inj.active = 1;
    }
    if (c->output_include_time && !c->f.inj.time_key) {
        c->f.inj.time_key = strdup("time");
        c->f.inj.time_type = c->time_format ? TT_STRING : TT_UNIXTIME;
        c->f.inj.time_format = c->time_format ? strdup(c->time_format) : NULL;
        c->f.inj.localtime = 1;
        c->f.inj.tz.zone = TIMEFMT_LOCAL;
        c->f.inj.active = 1;
    }
    {
        char why[256] = "";
        if (c->keys.topic && kafka_topic_compile(&c->keys, why, sizeof why) != 0) {
            conf_error_at(errs, n, "topic", "%s", why);
            return -1;
        }
        if (c->record_key) {
            if (rec_path_compile(&c->record_path, c->record_key, why, sizeof why) != 0) {
                conf_error_at(errs, n, "record_key", "bad record accessor '%s': %s", c->record_key, why);
                return -1;
            }
            c->has_record_path = 1;
        }
        for (size_t i = 0; c->exclude_fields && c->exclude_fields[i]; i++) {
            rec_path *np = realloc(c->excl, (c->nexcl + 1) * sizeof *np);
            if (!np)
                return -1;
            c->excl = np;
            if (rec_path_compile(&c->excl[c->nexcl], c->exclude_fields[i], why, sizeof why) != 0) {
                conf_error_at(errs, n, "exclude_fields", "bad record accessor '%s': %s", c->exclude_fields[i], why);
                return -1;
            }
            c->nexcl++;
        }
        if (c->discard_failed_regex) {
            int rc = regcomp(&c->discard_re, c->discard_failed_regex, REG_EXTENDED | REG_NOSUB);
            if (rc) {
                regerror(rc, &c->discard_re, why, sizeof why);
                conf_error_at(errs, n, "discard_kafka_delivery_failed_regex", "bad regular expression: %s", why);
                return -1;
            }
            c->has_discard_re = 1;
        }
        if (c->partitioner_hash_function) {
            if (strcmp(c->partitioner_hash_function, "crc32") && strcmp(c->partitioner_hash_function, "murmur2")) {
                conf_error_at(errs, n, "partitioner_hash_function", "valid options are crc32, murmur2");
                return -1;
            }
            c->keys.crc32 = !strcmp(c->partitioner_hash_function, "crc32");
        }
    }
    if (c->f.type != FMT_JSON && c->f.type != FMT_MSGPACK && c->f.type != FMT_SINGLE_VALUE &&
        c->f.type != FMT_LTSV) {
        conf_error_at(errs, n, "format", "kafka2: <format> must be json, msgpack, single_value or ltsv");
        return -1;
    }
    c->strip_newline = c->f.type == FMT_JSON || c->f.type == FMT_LTSV;
    if (!c->brokers || !c->brokers[0]) {
        conf_error_at(errs, n, "brokers", "kafka2: brokers is empty");
        return -1;
    }

    if (c->headers_from_record.n) {
        conf_hash *h = &c->headers_from_record;
        c->rec_hdr_names = calloc(h->n + 1, sizeof *c->rec_hdr_names);
        c->rec_hdr_paths = calloc(h->n + 1, sizeof *c->rec_hdr_paths);
        for (size_t i = 0; i < h->n && c->rec_hdr_names && c->rec_hdr_paths; i++) {
            char why[256];
            if (rec_path_compile(&c->rec_hdr_paths[c->nrec_hdrs], h->kv[i].v, why, sizeof why)) {
                conf_error_at(errs, n, "headers_from_record", "headers_from_record %s: bad accessor '%s': %s",
                              h->kv[i].k, h->kv[i].v, why);
                bad = -1;
                continue;
            }
            c->rec_hdr_names[c->nrec_hdrs++] = strdup(h->kv[i].k);
        }
    }
    if (c->exclude_topic_key && c->keys.topic_key)
        c->drop[c->ndrop++] = (rec_kv){.key = c->keys.topic_key, .key_len = strlen(c->keys.topic_key)};
    if (c->exclude_message_key && c->keys.message_key_key)
        c->drop[c->ndrop++] = (rec_kv){.key = c->keys.message_key_key, .key_len = strlen(c->keys.message_key_key)};
    if (c->exclude_partition_key && c->keys.partition_key_key)
        c->drop[c->ndrop++] = (rec_kv){.key = c->keys.partition_key_key, .key_len = strlen(c->keys.partition_key_key)};
    if (c->exclude_partition && c->keys.partition_key)
        c->drop[c->ndrop++] = (rec_kv){.key = c->keys.partition_key, .key_len = strlen(c->keys.partition_key)};

    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char num[64];
    bad |= kafka_conf_brokers(kc, n, c->brokers, errs);
    snprintf(num, sizeof num, "%" PRId64, c->required_acks);
    bad |= kafka_conf_set(kc, n, "required_acks", "acks", num, errs);
    bad |= kafka_conf_set(kc, n, "compression_codec", "compression.codec", codecs[c->compression], errs);
    /* Idempotent producer by default (no duplicates from librdkafka's own
     * retries, order kept); it needs acks=all. */
    const conf_hash *opts = &c->rdkafka_options;
    if (!conf_hash_get(opts, "enable.idempotence"))
        bad |= kafka_conf_set(kc, n, conf_get_value(n, "idempotent") ? "idempotent" : "rdkafka_options",
                              "enable.idempotence",
                              (conf_get_value(n, "idempotent") ? c->idempotent : c->required_acks == -1) ? "true"
                                                                                                          : "false",
                              errs);
    snprintf(num, sizeof num, "%.0f", c->delivery_timeout * 1000);
    bad |= kafka_conf_set(kc, n, "delivery_timeout", "message.timeout.ms", num, errs);
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "client.id", "weir", errs);
    /* room for several flush threads' chunks at once (librdkafka: 100000) */
    bad |= kafka_conf_set(kc, n, "rdkafka_options", "queue.buffering.max.messages", "1000000", errs);
    /* fluent-plugin-kafka's own names for librdkafka properties, when set */
    static const struct {
        const char *param, *prop;
        size_t off;
    } ints[] = {
        {"max_send_retries", "message.send.max.retries", offsetof(kafka_out, max_send_retries)},
        {"rdkafka_buffering_max_ms", "queue.buffering.max.ms", offsetof(kafka_out, rdk_buffering_max_ms)},
        {"rdkafka_buffering_max_messages", "queue.buffering.max.messages",
         offsetof(kafka_out, rdk_buffering_max_messages)},
        {"rdkafka_message_max_bytes", "message.max.bytes", offsetof(kafka_out, rdk_message_max_bytes)},
        {"rdkafka_message_max_num", "batch.num.messages", offsetof(kafka_out, rdk_message_max_num)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (conf_get_value(n, ints[i].param)) {
            snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)((const char *)c + ints[i].off));
            bad |= kafka_conf_set(kc, n, ints[i].param, ints[i].prop, num, errs);
        }
    if (conf_get_value(n, "ack_timeout")) {
        snprintf(num, sizeof num, "%.0f", c->ack_timeout * 1000);
        bad |= kafka_conf_set(kc, n, "ack_timeout", "request.timeout.ms", num, errs);
    }
    bad |= kafka_conf_common(kc, n, &c->common, opts, errs);
    for (size_t i = 0; i < opts->n; i++)
        bad |= kafka_conf_set(kc, n, "rdkafka_options", opts->kv[i].k, opts->kv[i].v, errs);

    if (conf_get_value(n, "partition_key_key") && !conf_hash_get(opts, "sticky.partitioning.linger.ms"))
        /* librdkafka's sticky partitioner would skip the callback for records
         * without a message key: let every record reach it */
        bad |= kafka_conf_set(kc, n, "partition_key_key", "sticky.partitioning.linger.ms", "0", errs);
    /* topic-level properties set above (acks, message.timeout.ms, ...) live
     * in the default topic conf: add the partitioner there, never replace it */
    rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(kc);
    if (!tc) {
        tc = rd_kafka_topic_conf_new();
        rd_kafka_conf_set_default_topic_conf(kc, tc);
    }
    rd_kafka_topic_conf_set_partitioner_cb(tc, partitioner);
    rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    rd_kafka_conf_set_log_cb(kc, log_cb);
    if (c->common.msk_key_id)
        rd_kafka_conf_set_oauthbearer_token_refresh_cb(kc, msk_refresh_cb);
    rd_kafka_conf_set_opaque(kc, c);
    if (bad) {
        rd_kafka_conf_destroy(kc);
        return -1;
    }
    /* the client is made by start: a configuration check (--dry-run) must
     * not start librdkafka's threads nor connect to the brokers */
    c->kc = kc;
    return 0;
}

static int kafka_start(output *o)
{
    kafka_out *c = o->ctx;
    if (c->zookeeper) {
        /* the brokers of the cluster, as the plugin's zookeeper option reads them at start */
        char proto[32] = "plaintext", err[400];
        size_t pl = sizeof proto;
        if (rd_kafka_conf_get(c->kc, "security.protocol", proto, &pl) != RD_KAFKA_CONF_OK)
            snprintf(proto, sizeof proto, "plaintext");
        wbuf list = {0};
        if (zk_kafka_brokers(c->zookeeper, c->zookeeper_path, proto, 10, &list, err, sizeof err) != 0 ||
            wbuf_addc(&list, 0)) {
            wlog_error("out_kafka", "%s: no brokers from ZooKeeper %s: %s", o->id, c->zookeeper, err);
            wbuf_free(&list);
            return -1;
        }
        char rerr[256];
        int rc = rd_kafka_conf_set(c->kc, "bootstrap.servers", (const char *)list.data, rerr, sizeof rerr);
        wlog_info("out_kafka", "%s: brokers from ZooKeeper %s%s: %s", o->id, c->zookeeper, c->zookeeper_path,
                  (const char *)list.data);
        wbuf_free(&list);
        if (rc != RD_KAFKA_CONF_OK) {
            wlog_error("out_kafka", "%s: bootstrap.servers from ZooKeeper: %s", o->id, rerr);
            return -1;
        }
    }
    c->rk = kafka_client_new(RD_KAFKA_PRODUCER, &c->kc, "out_kafka", o->id);
    return c->rk ? 0 : -1;
}

/* ---- write --------------------------------------------------------------------------------- */

/* Scratch of one write (one flush thread). */
#define KAFKA_BLOCK (1u << 20) /* payload block: many messages' bytes, freed after their reports */

typedef struct kscratch {
    /* payload: the current block. librdkafka references the bytes of each
     * message (no RD_KAFKA_MSG_F_COPY) until its delivery report, so a block
     * never moves once it holds a payload (max = cap); a record that does
     * not fit retires it to `old` and starts a new one. */
    wbuf payload, rec, key, hdr;
    uint8_t **old;
    size_t nold, capold;
    /* the topic handle of the last record: produced by handle, not by name,
     * librdkafka's lookup by name takes its handle's write lock per message */
    char topic[256];
    rd_kafka_topic_t *rkt;
} kscratch;

static void kscratch_free(kscratch *s)
{
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    s->rkt = NULL;
    ARRAY_FREE_ALL(s->old, s->nold);
    s->old = NULL;
    s->nold = s->capold = 0;
    wbuf_free(&s->payload);
    wbuf_free(&s->rec);
    wbuf_free(&s->key);
    wbuf_free(&s->hdr);
}

/* Produce one record. Returns 0 when it is in librdkafka's queue (a report
 * will come), else a definitive error code with m->err set. */
static rd_kafka_resp_err_t produce_one(kafka_out *c, kmsg *m, const entry *e, kscratch *s, char *why,
                                       size_t whylen)
{
    kafka_route rt;
    if (kafka_route_of(&c->keys, e, &rt, &s->key, why, whylen) != 0)
        return RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
    const char *topic = rt.topic;
    const uint8_t *key = rt.key;
    size_t klen = rt.key_len;
    m->pkey = rt.pkey;
    m->pkey_len = rt.pkey_len;
    m->crc32 = c->keys.crc32 == 1;
    m->murmur2 = c->partitioner_hash_function && !c->keys.crc32;
    int32_t partition = rt.partition;

    /* headers (copied now: the record may be rewritten below) */
    rd_kafka_headers_t *hs = NULL;
    if (c->headers.n || c->nrec_hdrs) {
        hs = rd_kafka_headers_new(c->headers.n + c->nrec_hdrs);
        for (size_t i = 0; i < c->headers.n; i++)
            rd_kafka_header_add(hs, c->headers.kv[i].k, -1, c->headers.kv[i].v, -1);
        for (size_t i = 0; i < c->nrec_hdrs; i++) {
            size_t vlen;
            const uint8_t *v = rec_lookup(e->record, e->record_len, &c->rec_hdr_paths[i], &vlen);
            if (!v)
                continue;
            s->hdr.len = 0;
            if (rec_value_text(&s->hdr, v, vlen) == 0)
                rd_kafka_header_add(hs, c->rec_hdr_names[i], -1, s->hdr.data, (ssize_t)s->hdr.len);
        }
    }

    /* payload */
    entry fe = *e;
    int drop = (c->exclude_topic_key && rt.has_topic) || (c->exclude_message_key && rt.has_key) ||
               (c->exclude_partition_key && rt.has_pkey) || (c->exclude_partition && rt.has_partition);
    if (drop) {
        s->rec.len = 0;
        if (rec_rewrite_n(&s->rec, e->record, e->record_len, c->drop, c->ndrop, NULL, 0) == 0) {
            fe.record = s->rec.data;
            fe.record_len = s->rec.len;
        }
    }
    if (c->nexcl) {
        s->hdr.len = 0;
        if (rec_delete(&s->hdr, fe.record, fe.record_len, c->excl, c->nexcl) >= 0) {
            wbuf t = s->rec; /* the result becomes the record buffer */
            s->rec = s->hdr;
            s->hdr = t;
            fe.record = s->rec.data;
            fe.record_len = s->rec.len;
        }
    }
    if (c->has_record_path) {
        size_t vlen;
        const uint8_t *v = rec_lookup(fe.record, fe.record_len, &c->record_path, &vlen);
        if (!v || *v == 0xc0) {
            if (hs)
                rd_kafka_headers_destroy(hs);
            snprintf(why, whylen, "record has no value for record_key '%s'", c->record_key);
            return RD_KAFKA_RESP_ERR__BAD_MSG;
        }
        fe.record = v;
        fe.record_len = vlen;
    }
    size_t start = s->payload.len;
    if (!s->payload.data || fmt_record(&c->f, &s->payload, e->tag, e->tag_len, &fe)) {
        /* the block is full (or this is the first record): a new block */
        s->payload.len = start;
        if (start) {
            if (s->nold == s->capold) {
                size_t nc = s->capold ? s->capold * 2 : 8;
                uint8_t **no = realloc(s->old, nc * sizeof *no);
                if (!no) {
                    if (hs)
                        rd_kafka_headers_destroy(hs);
                    snprintf(why, whylen, "out of memory");
                    return RD_KAFKA_RESP_ERR__QUEUE_FULL; /* retried */
                }
                s->old = no;
                s->capold = nc;
            }
            s->old[s->nold++] = s->payload.data;
        } else {
            free(s->payload.data);
        }
        s->payload = (wbuf){0};
        start = 0;
        if (wbuf_grow(&s->payload, KAFKA_BLOCK) || fmt_record(&c->f, &s->payload, e->tag, e->tag_len, &fe)) {
            s->payload.len = 0;
            if (hs)
                rd_kafka_headers_destroy(hs);
            snprintf(why, whylen, "cannot format the record");
            return RD_KAFKA_RESP_ERR__BAD_MSG;
        }
    }
    s->payload.max = s->payload.cap; /* freeze: bytes already produced never move */
    const uint8_t *payload = s->payload.data + start;
    size_t plen = s->payload.len - start;
    if (c->strip_newline && plen && payload[plen - 1] == '\n')
        plen--;
    if (c->max_send_limit_bytes && plen > c->max_send_limit_bytes) {
        if (hs)
            rd_kafka_headers_destroy(hs);
        snprintf(why, whylen, "message of %zu bytes is over max_send_limit_bytes (%" PRIu64 ")", plen,
                 c->max_send_limit_bytes);
        return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    }
    /* CreateTime: given here, librdkafka skips a clock read per message; the
     * coarse clock (kernel tick, 1-4 ms) costs no TSC read */
    int64_t ts;
    if (c->use_event_time) {
        ts = (int64_t)e->sec * 1000 + e->nsec / 1000000;
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }

    if (!s->rkt || strcmp(s->topic, topic)) {
        if (s->rkt)
            rd_kafka_topic_destroy(s->rkt);
        s->rkt = rd_kafka_topic_new(c->rk, topic, NULL); /* the default topic conf */
        memcpy(s->topic, topic, strlen(topic) + 1);
    }
    kwrite *w = m->w;
    for (;;) {
        atomic_fetch_add_explicit(&w->pending, 1, memory_order_relaxed);
        rd_kafka_vu_t vu[8];
        size_t nvu = 0;
        if (s->rkt)
            vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_RKT, .u.rkt = s->rkt};
        else
            vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic};
        vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition};
        vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = 0}; /* referenced, not copied */
        vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)(uintptr_t)payload, plen}};
        if (key)
            vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)(uintptr_t)key, klen}};
        vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = m};
        if (ts)
            vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = ts};
        if (hs)
            vu[nvu++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hs};
        rd_kafka_error_t *err = rd_kafka_produceva(c->rk, vu, nvu);
        if (!err) {
            m->produced = 1;
            return RD_KAFKA_RESP_ERR_NO_ERROR; /* headers now belong to librdkafka */
        }
        atomic_fetch_sub_explicit(&w->pending, 1, memory_order_relaxed);
        rd_kafka_resp_err_t code = rd_kafka_error_code(err);
        if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL && !atomic_load(&c->aborting)) {
            /* back-pressure: serve reports until there is room, same message again */
            rd_kafka_error_destroy(err);
            atomic_fetch_add_explicit(&c->queue_full_waits, 1, memory_order_relaxed);
            rd_kafka_poll(c->rk, 50);
            continue;
        }
        snprintf(why, whylen, "%s", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
        if (hs)
            rd_kafka_headers_destroy(hs);
        return code;
    }
}

/* What a failure means for the buffer. */
static int err_status(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return OUT_OK;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
        return OUT_ERROR;
    default:
        return OUT_RETRY;
    }
}

static int too_large(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* Serve delivery reports until every message of `w` has one. librdkafka
 * reports each message within message.timeout.ms (delivery_timeout). */
static void wait_reports(kafka_out *c, kwrite *w, uint32_t total)
{
    double t0 = clock_mono();
    double next_log = t0 + c->delivery_timeout + 10;
    int purged = 0;
    while (atomic_load_explicit(&w->pending, memory_order_acquire) > 0) {
        if (!purged && atomic_load(&c->aborting)) {
            /* shutdown: every message still held is reported at once (kafka_abort) */
            rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = 1;
        }
        rd_kafka_poll(c->rk, 10);
        double now = clock_mono();
        if (now > next_log) {
            wlog_warn("out_kafka", "%s: %u of %u messages still without a delivery report after %.0fs", c->id,
                      atomic_load(&w->pending), total, now - t0);
            next_log = now + 30;
        }
    }
}

static int kafka_write(output *o, const batch *b, out_result *res)
{
    kafka_out *c = o->ctx;
    uint32_t n = b->nrecords;
    if (!n)
        return OUT_OK;
    kwrite w;
    atomic_init(&w.pending, 0);
    kmsg *m = calloc(n, sizeof *m);
    entry *es = calloc(n, sizeof *es);
    char **why = calloc(n, sizeof *why);
    if (!m || !es || !why) {
        free(m);
        free(es);
        free(why);
        snprintf(res->reason, sizeof res->reason, "out of memory");
        wlog_error("out_kafka", "%s: out of memory for a batch of %u records", o->id, n);
        return OUT_RETRY;
    }
    kscratch s = {0};
    double t0 = clock_mono();
    batch_iter it;
    batch_iter_init(&it, b);
    uint32_t got = 0;
    char reason[512];
    while (got < n && batch_iter_next(&it, &es[got]) == 1) {
        m[got].w = &w;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__PURGE_QUEUE; /* shutdown: not produced, retried */
        if (!atomic_load(&c->aborting))
            e = produce_one(c, &m[got], &es[got], &s, reason, sizeof reason);
        else
            snprintf(reason, sizeof reason, "weir is shutting down");
        if (e) {
            m[got].err = e;
            why[got] = strdup(reason);
        }
        got++;
    }
    double t1 = clock_mono();
    wait_reports(c, &w, got);
    wlog_debug("out_kafka", "%s: %u messages produced in %.1f ms, reported after %.1f ms more", o->id, got,
               (t1 - t0) * 1e3, (clock_mono() - t1) * 1e3);

    /* a batch the broker found too large: each of its records alone */
    uint32_t isolated = 0;
    for (uint32_t i = 0; i < got; i++) {
        if (!m[i].produced || !too_large(m[i].err) || isolated >= KAFKA_ISOLATE_MAX)
            continue;
        isolated++;
        m[i].err = 0;
        m[i].produced = 0;
        rd_kafka_resp_err_t e = produce_one(c, &m[i], &es[i], &s, reason, sizeof reason);
        if (e) {
            m[i].err = e;
            free(why[i]);
            why[i] = strdup(reason);
            continue;
        }
        wait_reports(c, &w, 1);
    }
    if (isolated)
        atomic_fetch_add_explicit(&c->isolated, isolated, memory_order_relaxed);

    uint32_t nok = 0, nretry = 0, nerr = 0;
    rd_kafka_resp_err_t first_err = 0;
    for (uint32_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = i < got ? m[i].err : RD_KAFKA_RESP_ERR__BAD_MSG;
        int st = err_status(e);
        int purged = e == RD_KAFKA_RESP_ERR__PURGE_QUEUE || e == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
        if (st == OUT_RETRY && i < got && m[i].produced && !purged &&
            (c->has_discard_re ? regexec(&c->discard_re, rd_kafka_err2str(e), 0, NULL, 0) == 0 : c->discard_failed))
            st = OUT_ERROR; /* discard_kafka_delivery_failed: not retried */
        if (st == OUT_OK) {
            nok++;
            continue;
        }
        if (!first_err)
            first_err = e;
        if (st == OUT_RETRY)
            nretry++;
        else
            nerr++;
        char r[600];
        snprintf(r, sizeof r, "kafka: %s: %s", rd_kafka_err2name(e),
                 i < got && why[i] ? why[i] : rd_kafka_err2str(e));
        out_result_mark(res, i, st, r);
    }
    atomic_fetch_add_explicit(&c->delivered, nok, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->failed_retry, nretry, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->failed_error, nerr, memory_order_relaxed);
    if (nretry || nerr)
        wlog_warn("out_kafka", "%s: %u of %u messages delivered, %u to retry, %u refused (first: %s)", o->id, nok,
                  n, nretry, nerr, rd_kafka_err2str(first_err));
    ARRAY_FREE_ALL(why, n);
    free(es);
    free(m);
    kscratch_free(&s);
    if (nok == 0 && nretry == n) {
        /* nothing went through: retry the chunk as it is (back-off, retry budget) */
        out_result_free(res);
        snprintf(res->reason, sizeof res->reason, "kafka: %s", rd_kafka_err2str(first_err));
        return OUT_RETRY;
    }
    return OUT_OK;
}

/* Shutdown (buffer/sink.h, abort): a write waiting for delivery reports
 * (brokers down or refusing us: up to delivery_timeout) gets them now. Each
 * write purges the messages librdkafka still holds, queued and in flight
 * (wait_reports): their reports come at once with __PURGE_QUEUE /
 * __PURGE_INFLIGHT and are retried (a file buffer keeps the chunk for the
 * next start; in-flight ones may then be sent twice, as after a crash); a
 * write waiting for queue space stops waiting, and the rest of its batch is
 * not produced. */
static void kafka_abort(output *o)
{
    kafka_out *c = o->ctx;
    atomic_store(&c->aborting, 1);
    if (c->rk && rd_kafka_outq_len(c->rk) > 0)
        wlog_info("out_kafka", "%s: shutting down: %d messages not yet delivered go back to the buffer", o->id,
                  rd_kafka_outq_len(c->rk));
}

static void kafka_exit(output *o)
{
    kafka_out *c = o->ctx;
    if (c->kc) {
        rd_kafka_conf_destroy(c->kc);
        c->kc = NULL;
    }
    if (c->rk) {
        rd_kafka_flush(c->rk, 10000);
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
        wlog_info("out_kafka", "%s: stopped: %" PRIuFAST64 " messages delivered, %" PRIuFAST64 " to retry, %" PRIuFAST64
                  " refused, %" PRIuFAST64 " queue-full waits",
                  o->id, atomic_load(&c->delivered), atomic_load(&c->failed_retry), atomic_load(&c->failed_error),
                  atomic_load(&c->queue_full_waits));
    }
    for (size_t i = 0; i < c->nrec_hdrs; i++) {
        free(c->rec_hdr_names[i]);
        rec_path_free(&c->rec_hdr_paths[i]);
    }
    free(c->rec_hdr_names);
    free(c->rec_hdr_paths);
    fmt_free(&c->f);
    kafka_topic_free(&c->keys);
    if (c->has_record_path)
        rec_path_free(&c->record_path);
    rec_paths_free(c->excl, c->nexcl);
    if (c->has_discard_re)
        regfree(&c->discard_re);
}

OUT_PLUGIN(kafka2, kafka, kafka_out, .start = kafka_start, .abort = kafka_abort);
OUT_PLUGIN(rdkafka2, kafka, kafka_out, .start = kafka_start, .abort = kafka_abort);
/* fluent-plugin-kafka's older names: kafka_buffered (ruby-kafka, v0.12 API) and rdkafka (librdkafka, v0.12 API) */
OUT_PLUGIN(kafka_buffered, kafka, kafka_out, .start = kafka_start, .abort = kafka_abort);
OUT_PLUGIN(rdkafka, kafka, kafka_out, .start = kafka_start, .abort = kafka_abort);
