/* aggregator/kafka_conf.c: librdkafka properties from the configuration; see kafka_conf.h. */
#include "aggregator/kafka_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/sigv4.h"
#include "lib/wbuf.h"

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
    /* A SASL refresh callback (AWS MSK IAM) runs on librdkafka's background
     * thread, whatever the plugin polls: NOT_CONFIGURED when there is none. */
    rd_kafka_error_t *e = rd_kafka_sasl_background_callbacks_enable(rk);
    if (e) {
        if (rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR__NOT_CONFIGURED)
            wlog_error(module, "%s: cannot serve SASL callbacks: %s", id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    return rk;
}

int kafka_conf_common(rd_kafka_conf_t *kc, const conf_node *n, const kafka_common *k, const conf_hash *opts,
                      conf_errors *errs)
{
    int bad = 0;
    char num[32];
    if (k->client_id)
        bad |= kafka_conf_set(kc, n, "client_id", "client.id", k->client_id, errs);
    int tls = 0, sasl = 0;
    if (k->ssl_ca_cert && k->ssl_ca_cert[0]) {
        if (k->ssl_ca_cert[1]) {
            conf_error_at(errs, n, "ssl_ca_cert", "librdkafka takes one CA file: concatenate the certificates");
            bad = -1;
        }
        bad |= kafka_conf_set(kc, n, "ssl_ca_cert", "ssl.ca.location", k->ssl_ca_cert[0], errs);
        tls = 1;
    } else if (k->ssl_ca_certs_from_system) {
        bad |= kafka_conf_set(kc, n, "ssl_ca_certs_from_system", "ssl.ca.location", "probe", errs);
        tls = 1;
    }
    if (k->ssl_client_cert && k->ssl_client_cert_chain) {
        /* librdkafka takes one PEM: the certificate, then its chain */
        wbuf pem = {0};
        const char *files[2] = {k->ssl_client_cert, k->ssl_client_cert_chain}, *keys[2] = {"ssl_client_cert",
                                                                                          "ssl_client_cert_chain"};
        for (int i = 0; i < 2; i++) {
            FILE *f = fopen(files[i], "r");
            char buf[4096];
            size_t r;
            if (!f) {
                conf_error_at(errs, n, keys[i], "cannot read %s: %s", files[i], strerror(errno));
                bad = -1;
                continue;
            }
            while ((r = fread(buf, 1, sizeof buf, f)) > 0)
                wbuf_add(&pem, buf, r);
            fclose(f);
            if (pem.len && pem.data[pem.len - 1] != '\n')
                wbuf_addc(&pem, '\n');
        }
        wbuf_addc(&pem, 0);
        if (!bad)
            bad |= kafka_conf_set(kc, n, "ssl_client_cert_chain", "ssl.certificate.pem", (const char *)pem.data, errs);
        wbuf_free(&pem);
        tls = 1;
    } else if (k->ssl_client_cert_chain) {
        conf_error_at(errs, n, "ssl_client_cert_chain", "ssl_client_cert_chain needs ssl_client_cert");
        bad = -1;
    } else if (k->ssl_client_cert) {
        bad |= kafka_conf_set(kc, n, "ssl_client_cert", "ssl.certificate.location", k->ssl_client_cert, errs);
        tls = 1;
    }
    if (k->ssl_client_cert_key)
        bad |= kafka_conf_set(kc, n, "ssl_client_cert_key", "ssl.key.location", k->ssl_client_cert_key, errs);
    if (k->ssl_client_cert_key_password)
        bad |= kafka_conf_set(kc, n, "ssl_client_cert_key_password", "ssl.key.password",
                              k->ssl_client_cert_key_password, errs);
    if (tls)
        bad |= kafka_conf_set(kc, n, "ssl_verify_hostname", "ssl.endpoint.identification.algorithm",
                              k->ssl_verify_hostname ? "https" : "none", errs);
    if (k->msk_key_id || k->msk_secret || k->msk_region) {
        static const char *const names[3] = {"sasl_aws_msk_iam_access_key_id", "sasl_aws_msk_iam_secret_key_id",
                                             "sasl_aws_msk_iam_aws_region"};
        const char *vals[3] = {k->msk_key_id, k->msk_secret, k->msk_region};
        const char *given = k->msk_key_id ? names[0] : k->msk_secret ? names[1] : names[2];
        for (int i = 0; i < 3; i++)
            if (!vals[i] || !*vals[i]) {
                conf_error_at(errs, n, given, "AWS MSK IAM needs %s too", names[i]);
                bad = -1;
            }
        if (k->msk_region && strspn(k->msk_region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(k->msk_region)) {
            conf_error_at(errs, n, names[2], "'%s' is not an AWS region (e.g. us-east-1)", k->msk_region);
            bad = -1;
        }
        if (k->principal || k->username) {
            conf_error_at(errs, n, given, "AWS MSK IAM is a SASL mechanism of its own: remove `%s`",
                          k->principal ? "principal" : "username");
            bad = -1;
        }
        sasl = 1;
        bad |= kafka_conf_set(kc, n, given, "sasl.mechanisms", "OAUTHBEARER", errs);
        rd_kafka_conf_enable_sasl_queue(kc, 1);
    } else if (k->principal) {
        sasl = 1;
        bad |= kafka_conf_set(kc, n, "principal", "sasl.mechanisms", "GSSAPI", errs);
        bad |= kafka_conf_set(kc, n, "principal", "sasl.kerberos.principal", k->principal, errs);
        if (k->keytab)
            bad |= kafka_conf_set(kc, n, "keytab", "sasl.kerberos.keytab", k->keytab, errs);
    } else if (k->username) {
        sasl = 1;
        const char *mech = "PLAIN";
        if (k->scram_mechanism) {
            if (!strcmp(k->scram_mechanism, "sha256") || !strcmp(k->scram_mechanism, "SHA-256")) {
                mech = "SCRAM-SHA-256";
            } else if (!strcmp(k->scram_mechanism, "sha512") || !strcmp(k->scram_mechanism, "SHA-512")) {
                mech = "SCRAM-SHA-512";
            } else {
                conf_error_at(errs, n, "scram_mechanism", "scram_mechanism must be sha256 or sha512");
                bad = -1;
            }
        }
        bad |= kafka_conf_set(kc, n, "username", "sasl.mechanisms", mech, errs);
        bad |= kafka_conf_set(kc, n, "username", "sasl.username", k->username, errs);
        bad |= kafka_conf_set(kc, n, "password", "sasl.password", k->password ? k->password : "", errs);
    }
    if (k->service_name)
        bad |= kafka_conf_set(kc, n, "service_name", "sasl.kerberos.service.name", k->service_name, errs);
    if ((tls || sasl) && !conf_hash_get(opts, "security.protocol"))
        bad |= kafka_conf_set(kc, n, sasl ? "sasl_over_ssl" : "ssl_ca_cert", "security.protocol",
                              sasl ? (k->sasl_over_ssl || tls ? "SASL_SSL" : "SASL_PLAINTEXT") : "SSL", errs);
    if (k->connect_timeout > 0) {
        snprintf(num, sizeof num, "%lld", (long long)k->connect_timeout * 1000);
        bad |= kafka_conf_set(kc, n, "connect_timeout", "socket.connection.setup.timeout.ms", num, errs);
    }
    if (k->socket_timeout > 0) {
        snprintf(num, sizeof num, "%lld", (long long)k->socket_timeout * 1000);
        bad |= kafka_conf_set(kc, n, "socket_timeout", "socket.timeout.ms", num, errs);
    }
    return bad ? -1 : 0;
}

int kafka_msk_iam_token(wbuf *token, int64_t *expiry_ms, const char *key_id, const char *secret, const char *region,
                        time_t now, const char *user_agent)
{
    enum { EXPIRES = 900 }; /* seconds, as AWS's signers */
    char host[128];
    int hn = snprintf(host, sizeof host, "kafka.%s.amazonaws.com", region);
    if (hn < 0 || (size_t)hn >= sizeof host)
        return -1;
    static const char *const params[] = {"Action", "kafka-cluster:Connect", NULL};
    sigv4_presign p = {.host = host, .service = "kafka-cluster", .region = region, .key_id = key_id,
                       .secret = secret, .params = params, .now = now, .expires = EXPIRES,
                       .user_agent = user_agent};
    wbuf url = {0};
    int rc = sigv4_presign_url(&url, &p);
    if (!rc)
        rc = base64url_nopad(token, url.data, url.len) | wbuf_addc(token, 0);
    wbuf_free(&url);
    *expiry_ms = ((int64_t)now + EXPIRES) * 1000;
    return rc ? -1 : 0;
}

void kafka_msk_iam_refresh(rd_kafka_t *rk, const kafka_common *k, const char *module, const char *id)
{
    char err[512];
    wbuf token = {0};
    int64_t expiry_ms = 0;
    if (kafka_msk_iam_token(&token, &expiry_ms, k->msk_key_id, k->msk_secret, k->msk_region, time(NULL),
                            "weir/" WEIR_VERSION)) {
        wlog_error(module, "%s: cannot sign the AWS MSK IAM token", id);
        rd_kafka_oauthbearer_set_token_failure(rk, "cannot sign the AWS MSK IAM token");
    } else if (rd_kafka_oauthbearer_set_token(rk, (const char *)token.data, expiry_ms, k->msk_key_id, NULL, 0, err,
                                              sizeof err) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        wlog_error(module, "%s: librdkafka refused the AWS MSK IAM token: %s", id, err);
        rd_kafka_oauthbearer_set_token_failure(rk, err);
    } else {
        wlog_debug(module, "%s: AWS MSK IAM token signed for %s, valid 900 s", id, k->msk_region);
    }
    wbuf_free(&token);
}

void kafka_conf_fetch_queue(rd_kafka_conf_t *kc, const conf_hash *opts, uint64_t budget, const char *id)
{
    char val[64];
    size_t vl = sizeof val;
    if (!budget || rd_kafka_conf_get(kc, "queued.max.messages.kbytes", val, &vl) != RD_KAFKA_CONF_OK)
        return;
    for (size_t i = 0; i < opts->n; i++)
        if (!strcmp(opts->kv[i].k, "queued.max.messages.kbytes"))
            return;
    uint64_t cur = strtoull(val, NULL, 10), cap = budget / 4 / 1024;
    if (cap < 1024)
        cap = 1024; /* 1 MiB of queue at least */
    char err[256], num[32];
    if (cap < cur) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)cap);
        if (rd_kafka_conf_set(kc, "queued.max.messages.kbytes", num, err, sizeof err) == RD_KAFKA_CONF_OK)
            wlog_info("in_kafka", "%s: queued.max.messages.kbytes %s (a quarter of the memory budget)", id, num);
    }
    /* The queue is checked before a partition is fetched, and a fetch
     * response (max.partition.fetch.bytes of compressed batches, 1 MiB by
     * default) is inflated and queued whole: repetitive logs in lz4 or zstd
     * batches inflate ~100x, a 1 MiB fetch to ~100 MiB past the queue's cap
     * (measured: VmHWM 140 MiB for a 64 MiB budget). So a partition's fetch
     * is at most budget / 1024 (64 KiB at 64 MiB, 1 MiB from 1 GiB on),
     * unless the configuration (max_bytes, rdkafka_options) set it; a batch
     * larger than that is still fetched whole (KIP-74). */
    for (size_t i = 0; i < opts->n; i++)
        if (!strcmp(opts->kv[i].k, "max.partition.fetch.bytes") || !strcmp(opts->kv[i].k, "fetch.message.max.bytes"))
            return;
    vl = sizeof val;
    if (rd_kafka_conf_get(kc, "max.partition.fetch.bytes", val, &vl) != RD_KAFKA_CONF_OK)
        return;
    uint64_t fcur = strtoull(val, NULL, 10), fcap = budget / 1024;
    if (fcap < 65536)
        fcap = 65536;
    if (fcur != 1048576 || fcap >= fcur) /* not librdkafka's default: set by max_bytes */
        return;
    snprintf(num, sizeof num, "%llu", (unsigned long long)fcap);
    if (rd_kafka_conf_set(kc, "max.partition.fetch.bytes", num, err, sizeof err) == RD_KAFKA_CONF_OK)
        wlog_info("in_kafka", "%s: max.partition.fetch.bytes %s (1/1024 of the memory budget)", id, num);
}
