/*
 * outputs/kafka/kafka_common.h: helpers shared by the Kafka output
 * (producer.c) and input (consumer.c): Fluentd hash parameters.
 * Ownership: kafka_parse_hash returns a malloc'd vector the caller frees
 * with kafka_kv_free.
 */
#ifndef WEIR_KAFKA_COMMON_H
#define WEIR_KAFKA_COMMON_H

#include <stddef.h>

typedef struct kafka_kv {
    char *k, *v;
} kafka_kv;

/* A Fluentd `hash` value: a JSON object ({"a":"1","b":2}; non-string
 * values become their JSON text) or "a:1,b:2". 0, or -1 on a bad value. */
int kafka_parse_hash(const char *s, kafka_kv **out, size_t *n);
void kafka_kv_free(kafka_kv *kv, size_t n);

#endif
