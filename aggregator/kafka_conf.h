/*
 * aggregator/kafka_conf.h: librdkafka properties from the configuration, the
 * same way for the kafka source (aggregator/inputs/kafka.c) and the kafka2
 * output (outputs/kafka/producer.c): a property librdkafka refuses is a
 * configuration error at the parameter it came from.
 */
#ifndef WEIR_KAFKA_CONF_H
#define WEIR_KAFKA_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "config/conf.h"
#include "lib/wbuf.h"

/* Set key=v; librdkafka's refusal becomes an error at parameter `param` of
 * n ("librdkafka refused key=v: why"). 0, or -1. */
int kafka_conf_set(rd_kafka_conf_t *kc, const conf_node *n, const char *param, const char *key, const char *v,
                   conf_errors *errs);
/* bootstrap.servers: the NULL-terminated `brokers` parameter, comma-joined. */
int kafka_conf_brokers(rd_kafka_conf_t *kc, const conf_node *n, char *const *brokers, conf_errors *errs);

/* fluent-plugin-kafka's client parameters shared by its inputs and outputs
 * (client id, TLS, SASL, timeouts), bound through KAFKA_COMMON_ROWS into a
 * kafka_common member of the plugin's context. */
typedef struct kafka_common {
    char *client_id;
    int sasl_over_ssl;
    char **ssl_ca_cert;
    char *ssl_client_cert, *ssl_client_cert_key, *ssl_client_cert_key_password, *ssl_client_cert_chain;
    int ssl_ca_certs_from_system, ssl_verify_hostname;
    char *principal, *keytab, *service_name;
    char *username, *password, *scram_mechanism;
    char *msk_key_id, *msk_secret, *msk_region; /* AWS MSK IAM: SASL OAUTHBEARER with a SigV4 token */
    int64_t connect_timeout, socket_timeout; /* seconds; 0: librdkafka's */
} kafka_common;

#define KAFKA_COMMON_ROWS(T, m)                                                                                      \
    {"client_id", CONF_STR, NULL, 0, offsetof(T, m.client_id), NULL, "`client.id` (default `weir`)"},              \
    {"ssl_ca_cert", CONF_ARRAY, NULL, 0, offsetof(T, m.ssl_ca_cert), NULL,                                           \
     "CA certificate file (PEM) to verify the brokers (`ssl.ca.location`; one file); turns TLS on"},               \
    {"ssl_client_cert", CONF_STR, NULL, 0, offsetof(T, m.ssl_client_cert), NULL,                                     \
     "client certificate (PEM, `ssl.certificate.location`; put an intermediate chain in the same file)"},          \
    {"ssl_client_cert_chain", CONF_STR, NULL, 0, offsetof(T, m.ssl_client_cert_chain), NULL,                         \
     "intermediate certificates (PEM) sent after `ssl_client_cert` (both files read at start, `ssl.certificate.pem`)"}, \
    {"ssl_client_cert_key", CONF_STR, NULL, 0, offsetof(T, m.ssl_client_cert_key), NULL,                             \
     "its key (`ssl.key.location`)"},                                                                              \
    {"ssl_client_cert_key_password", CONF_STR, NULL, 0, offsetof(T, m.ssl_client_cert_key_password), NULL,           \
     "the key's passphrase (`ssl.key.password`)"},                                                                  \
    {"ssl_ca_certs_from_system", CONF_BOOL, "false", 0, offsetof(T, m.ssl_ca_certs_from_system), NULL,               \
     "verify the brokers with the system CAs (`ssl.ca.location probe`); turns TLS on"},                            \
    {"ssl_verify_hostname", CONF_BOOL, "true", 0, offsetof(T, m.ssl_verify_hostname), NULL,                          \
     "check the broker's host name (`ssl.endpoint.identification.algorithm https`/`none`)"},                       \
    {"sasl_over_ssl", CONF_BOOL, "true", 0, offsetof(T, m.sasl_over_ssl), NULL,                                      \
     "with SASL: `SASL_SSL` (`true`) or `SASL_PLAINTEXT`"},                                                        \
    {"username", CONF_STR, NULL, 0, offsetof(T, m.username), NULL,                                                   \
     "SASL user (`sasl.username`); mechanism PLAIN, or SCRAM with `scram_mechanism`"},                             \
    {"password", CONF_STR, NULL, 0, offsetof(T, m.password), NULL, "SASL password"},                                 \
    {"scram_mechanism", CONF_STR, NULL, 0, offsetof(T, m.scram_mechanism), NULL,                                     \
     "`sha256` or `sha512`: SASL SCRAM-SHA-256/512"},                                                              \
    {"sasl_aws_msk_iam_access_key_id", CONF_STR, NULL, 0, offsetof(T, m.msk_key_id), NULL,                         \
     "AWS MSK IAM: the IAM access key id; with the two below, SASL OAUTHBEARER with a SigV4-signed token "         \
     "(AWS's MSK IAM signer format, renewed every 12 minutes)"},                                                  \
    {"sasl_aws_msk_iam_secret_key_id", CONF_STR, NULL, 0, offsetof(T, m.msk_secret), NULL,                          \
     "AWS MSK IAM: the IAM secret access key"},                                                                    \
    {"sasl_aws_msk_iam_aws_region", CONF_STR, NULL, 0, offsetof(T, m.msk_region), NULL,                             \
     "AWS MSK IAM: the cluster's region (the token is signed for `kafka.REGION.amazonaws.com`)"},                 \
    {"principal", CONF_STR, NULL, 0, offsetof(T, m.principal), NULL,                                                 \
     "Kerberos principal: SASL GSSAPI (`sasl.kerberos.principal`)"},                                               \
    {"keytab", CONF_STR, NULL, 0, offsetof(T, m.keytab), NULL, "Kerberos keytab (`sasl.kerberos.keytab`)"},          \
    {"service_name", CONF_STR, NULL, 0, offsetof(T, m.service_name), NULL,                                           \
     "Kerberos service name (`sasl.kerberos.service.name`)"},                                                      \
    {"connect_timeout", CONF_INT, "0", 0, offsetof(T, m.connect_timeout), NULL,                                      \
     "seconds to set up a broker connection (`socket.connection.setup.timeout.ms`); 0: librdkafka's default"},     \
    {"socket_timeout", CONF_INT, "0", 0, offsetof(T, m.socket_timeout), NULL,                                        \
     "seconds of network timeout (`socket.timeout.ms`); 0: librdkafka's default"}

/* Set the properties of k on kc (before rdkafka_options, which may override
 * them; `opts` is checked so that a property given there is not set here).
 * 0, or -1 with errors added. */
int kafka_conf_common(rd_kafka_conf_t *kc, const conf_node *n, const kafka_common *k, const conf_hash *opts,
                      conf_errors *errs);

/* AWS MSK IAM: the token for key k_id/secret in region at time now, as
 * AWS's MSK IAM SASL signers make it (the base64url, unpadded, of a SigV4
 * presigned GET of https://kafka.REGION.amazonaws.com/?Action=kafka-cluster:Connect,
 * 900 s), and its expiry in ms. 0 or -1. */
int kafka_msk_iam_token(wbuf *token, int64_t *expiry_ms, const char *key_id, const char *secret, const char *region,
                        time_t now, const char *user_agent);
/* librdkafka's OAUTHBEARER refresh, from the plugin's refresh callback (set
 * when k->msk_key_id is): a fresh token for k, or the failure, set on rk. */
void kafka_msk_iam_refresh(rd_kafka_t *rk, const kafka_common *k, const char *module, const char *id);

/* The client (a consumer or a producer) made from *kc, which it takes
 * (*kc = NULL); made by the plugin's start, not its init, so that a
 * configuration check starts no threads and connects to nothing. NULL on
 * failure, logged as "ID: cannot create the consumer: why" under `module`
 * (*kc kept). */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t **kc, const char *module, const char *id);

/* The consumer's pre-fetch queue (librdkafka's queued.max.messages.kbytes,
 * 64 MiB by default) at most a quarter of the memory budget, unless
 * rdkafka_options sets it; a partition's fetch (max.partition.fetch.bytes,
 * 1 MiB by default, inflated whole past the queue's cap) at most 1/1024 of
 * it, unless max_bytes or rdkafka_options set that (docs/architecture.md,
 * "Memory budget"). */
void kafka_conf_fetch_queue(rd_kafka_conf_t *kc, const conf_hash *opts, uint64_t budget, const char *id);

#endif
