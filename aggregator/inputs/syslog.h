/*
 * aggregator/inputs/syslog.h: the message half of the syslog input
 * (Fluentd's in_syslog with its default parser, parser_syslog's regexp
 * engine), without sockets, so that unit tests reach it; the source is
 * aggregator/inputs/syslog.c.
 *
 * RFC 3164 ("<PRI>Mmm dd hh:mm:ss HOST IDENT[PID]: MESSAGE") and RFC 5424
 * ("<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MESSAGE"), or `auto`
 * (5424 when "<PRI>" is followed by a version digit). The fields are those
 * Fluentd's regexps capture: host, ident, pid (3164 only when present),
 * msgid, extradata (5424), message; `time` with keep_time_key.
 */
#ifndef WEIR_INPUTS_SYSLOG_H
#define WEIR_INPUTS_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/rx.h"
#include "lib/wbuf.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"

enum { SL_RFC3164, SL_RFC5424, SL_AUTO };
enum { SL_TIME, SL_HOST, SL_IDENT, SL_PID, SL_MSGID, SL_EXTRADATA, SL_MESSAGE, SL_NFIELDS };

typedef struct syslog_parser {
    int format, with_priority, keep_time_key;
    tparse t3164, t5424, t5424_nosub;
    int spaces3164, spaces5424;
    rx re3164, re5424;
    int ready;
} syslog_parser;

/* time_format: NULL for the format's default ("%b %d %H:%M:%S"; for
 * rfc5424 rfc5424_time_format); 0, or -1 with err. */
int syslog_parser_init(syslog_parser *p, int format, int with_priority, const char *time_format,
                       const char *rfc5424_time_format, int keep_time_key, char *err, size_t errlen);
void syslog_parser_free(syslog_parser *p);

typedef struct syslog_fields {
    int pri; /* -1: none */
    const char *f[SL_NFIELDS];
    size_t n[SL_NFIELDS]; /* f[i] NULL: absent */
    uint32_t sec, nsec;
} syslog_fields;

/* Parse one message. 0; -1 when it does not match (in_syslog: "failed to
 * parse message"); -2 when it cannot be read at all or its time does not
 * parse (in_syslog: "invalid input"). */
int syslog_parse(const syslog_parser *p, const char *s, size_t n, syslog_fields *out);

/* The record: the fields in Fluentd's order (message with its line end
 * chomped), then the `extra` pairs. 0 or -1. */
int syslog_record(const syslog_fields *f, const rec_kv *extra, size_t nextra, wbuf *out);

/* in_syslog's names: "kern".."local7" (NULL above 23), "emerg".."debug" */
const char *syslog_facility(int pri);
const char *syslog_severity(int pri);

/* Framing of a TCP stream: the next message in buf[0..n) (octet_count:
 * "LEN MSG"; else ending at `delim`). Returns the bytes consumed (>0) with
 * msg and mlen set; 0 when more bytes are needed; -1 on a bad octet count. */
long syslog_frame(const char *buf, size_t n, int octet_count, const char *delim, size_t dlen, const char **msg,
                  size_t *mlen);

#endif
