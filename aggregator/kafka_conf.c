/* aggregator/kafka_conf.c: librdkafka properties from the configuration; see kafka_conf.h. */
#include "aggregator/kafka_conf.h"

#include <stdio.h>
#include <string.h>

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
