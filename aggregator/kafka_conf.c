/* aggregator/kafka_conf.c: librdkafka properties from the configuration; see kafka_conf.h. */
#include "aggregator/kafka_conf.h"

#include <stdio.h>
#include <string.h>

#include "lib/log.h"

int kafka_conf_set(rd_kafka_conf_t *kc, const conf_node *n, const char *param, const char *key, const char *v,
                   conf_errors *errs)
{
    char err[512];
    if (rd_kafka_conf_set(kc, key, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        conf_error_at(errs, n, param, "librdkafka refused %s=%s: %s", key, v, err);
        return -1;
    }
    return 0;
}

int kafka_conf_brokers(rd_kafka_conf_t *kc, const conf_node *n, char *const *brokers, conf_errors *errs)
{
    char joined[4096] = "";
    for (size_t i = 0; brokers && brokers[i]; i++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? "," : "", brokers[i]);
    return kafka_conf_set(kc, n, "brokers", "bootstrap.servers", joined, errs);
}

rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t **kc, const char *module, const char *id)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, *kc, err, sizeof err);
    if (!rk) {
        wlog_error(module, "%s: cannot create the %s: %s", id, type == RD_KAFKA_CONSUMER ? "consumer" : "producer",
                   err);
        return NULL;
    }
    *kc = NULL; /* rd_kafka_new took it */
    return rk;
}
