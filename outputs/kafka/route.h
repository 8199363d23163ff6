/*
 * outputs/kafka/route.h: where one record goes in Kafka (fluent-plugin-kafka's
 * kafka2 rules): its topic, message key, partition key and partition, read
 * from the record's top-level keys in one pass. Pure: no librdkafka, so it
 * is unit-tested (test/unit/test_kafka.c).
 */
#ifndef WEIR_KAFKA_ROUTE_H
#define WEIR_KAFKA_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "aggregator/record.h"

/* One part of the `topic` parameter: text, ${tag}, ${tag[N]} or a record value ${key} / ${$.a.b}. */
enum { KT_LIT, KT_TAG, KT_TAG_PART, KT_REC };
typedef struct kafka_topic_part {
    int kind;
    char *lit;
    int tag_idx;
    rec_path path;
} kafka_topic_part;

/* The parameters (bound by the plugin's table). */
typedef struct kafka_keys {
    char *default_topic;       /* else the tag */
    char *topic_key;           /* record key naming the topic ("topic") */
    char *default_message_key; /* when the record has no message key */
    char *message_key_key;     /* record key of the message key ("message_key") */
    char *partition_key_key;   /* record key hashed (murmur2) to a partition ("partition_key") */
    char *partition_key;       /* record key holding the partition number ("partition") */
    char *topic;               /* kafka2's `topic`: every record's topic, with placeholders (wins over topic_key) */
    char *default_partition_key; /* partition key when the record has none */
    int64_t default_partition;   /* partition when the record has none; -1: none */
    int crc32;                   /* partitioner_hash_function crc32 set explicitly */
    /* `topic` compiled (kafka_topic_compile) */
    kafka_topic_part *tparts;
    size_t ntparts;
} kafka_keys;

/* Compile k->topic into k->tparts. 0, or -1 with err. */
int kafka_topic_compile(kafka_keys *k, char *err, size_t errlen);
void kafka_topic_free(kafka_keys *k);

#define KAFKA_TOPIC_MAX 255
#define KAFKA_NO_PARTITION (-1) /* librdkafka's RD_KAFKA_PARTITION_UA: the partitioner decides */

typedef struct kafka_route {
    const char *topic; /* tbuf (a record's value), default_topic or the tag: no copy of those */
    char tbuf[KAFKA_TOPIC_MAX + 1];
    const uint8_t *key; /* message key (into the record, the parameters or the scratch), or NULL */
    size_t key_len;
    const uint8_t *pkey; /* partition key (a string value in the record), or NULL */
    size_t pkey_len;
    int32_t partition; /* the record's partition number, or KAFKA_NO_PARTITION */
    /* which of the keys the record has (exclude_*_key drop only those) */
    int has_topic, has_key, has_pkey, has_partition;
} kafka_route;

/* The route of record e: topic = record[topic_key] (a string) || default_topic
 * || tag; key = record[message_key_key] (a string, or a scalar's text in
 * `scratch`) || default_message_key; pkey = record[partition_key_key] (a
 * string) || default_partition_key; partition = record[partition_key] when
 * a non-negative integer below 2^31 || default_partition. With `topic`, the
 * topic is its expansion for the record (a placeholder without a value is an
 * error). 0, or -1 with `why` when the topic name is longer than
 * KAFKA_TOPIC_MAX. The first of a duplicated key counts, as in rec_get. */
int kafka_route_of(const kafka_keys *k, const entry *e, kafka_route *r, wbuf *scratch, char *why, size_t whylen);

#endif
