/*
 * lib/sigv4.h: AWS Signature Version 4 in its query-string form (a
 * presigned GET URL, as botocore's SigV4QueryAuth makes it), for the AWS MSK
 * IAM token of the Kafka clients (aggregator/kafka_conf.c).
 *
 * The URL is https://HOST/?<canonical query>&X-Amz-Signature=<hex>[&User-Agent=..]:
 * the caller's parameters and X-Amz-Algorithm, -Credential, -Date, -Expires
 * and -SignedHeaders (host only), sorted and percent-encoded (everything but
 * A-Za-z0-9-_.~); the payload is the SHA-256 of an empty body. A User-Agent
 * parameter, when given, is appended after the signature (unsigned), as the
 * AWS MSK signer libraries do.
 */
#ifndef WEIR_SIGV4_H
#define WEIR_SIGV4_H

#include <time.h>

#include "lib/wbuf.h"

typedef struct sigv4_presign {
    const char *host;               /* kafka.us-east-1.amazonaws.com */
    const char *service, *region;   /* kafka-cluster, us-east-1 */
    const char *key_id, *secret;    /* the IAM access key */
    const char *const *params;      /* name, value, name, value, ..., NULL (unencoded; at most 8 pairs) */
    time_t now;                     /* signing time (UTC) */
    int expires;                    /* seconds (X-Amz-Expires) */
    const char *user_agent;         /* appended unsigned, or NULL */
} sigv4_presign;

/* Append the presigned URL to out. 0, or -1 (out of memory, too many
 * parameters, or a crypto failure). */
int sigv4_presign_url(wbuf *out, const sigv4_presign *p);

/* Append the base64url encoding of [p, p+n) without '=' padding. 0 or -1. */
int base64url_nopad(wbuf *out, const void *p, size_t n);

#endif
