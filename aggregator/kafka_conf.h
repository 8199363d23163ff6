/*
 * aggregator/kafka_conf.h: librdkafka properties from the configuration, the
 * same way for the kafka source (aggregator/inputs/kafka.c) and the kafka2
 * output (outputs/kafka/producer.c): a property librdkafka refuses is a
 * configuration error at the parameter it came from.
 */
#ifndef WEIR_KAFKA_CONF_H
#define WEIR_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "config/conf.h"

/* Set key=v; librdkafka's refusal becomes an error at parameter `param` of
 * n ("librdkafka refused key=v: why"). 0, or -1. */
int kafka_conf_set(rd_kafka_conf_t *kc, const conf_node *n, const char *param, const char *key, const char *v,
                   conf_errors *errs);
/* bootstrap.servers: the NULL-terminated `brokers` parameter, comma-joined. */
int kafka_conf_brokers(rd_kafka_conf_t *kc, const conf_node *n, char *const *brokers, conf_errors *errs);

/* The client (a consumer or a producer) made from *kc, which it takes
 * (*kc = NULL); made by the plugin's start, not its init, so that a
 * configuration check starts no threads and connects to nothing. NULL on
 * failure, logged as "ID: cannot create the consumer: why" under `module`
 * (*kc kept). */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t **kc, const char *module, const char *id);

#endif
