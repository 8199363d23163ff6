/*
 * outputs/kafka/zk.h: the brokers a Kafka cluster registered in ZooKeeper
 * (`/brokers/ids/<id>`, JSON), read once over ZooKeeper's wire protocol
 * (zk.c). For fluent-plugin-kafka's `zookeeper` parameter. Blocking; the
 * output's start (not a configuration check).
 */
#ifndef WEIR_OUTPUTS_KAFKA_ZK_H
#define WEIR_OUTPUTS_KAFKA_ZK_H

#include <stddef.h>

#include "lib/wbuf.h"

/* connect: ZooKeeper's connect string "h1:p1,h2:p2[/chroot]"; path: where
 * the brokers registered ("/brokers/ids"); protocol: the clients' security
 * protocol ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"): each broker's
 * endpoint whose listener maps to it. Appends "host:port,host:port" to out.
 * 0, or -1 with err (no server answered within timeout seconds, no such
 * node, no broker with such an endpoint). */
int zk_kafka_brokers(const char *connect, const char *path, const char *protocol, double timeout, wbuf *out,
                     char *err, size_t errlen);

/* The address in one broker registration ({"host", "port", "endpoints",
 * "listener_security_protocol_map"}, JSON) for clients speaking `protocol`
 * (any case): the endpoint whose listener maps to it (or is named so), else,
 * for PLAINTEXT, "host":"port". 0 with "host:port" appended to out, -1 when
 * there is none (or the JSON is not an object). */
int zk_broker_address(const uint8_t *data, size_t len, const char *protocol, wbuf *out);

#endif
