/* aggregator/inputs/kafka_meta.c: Kafka metadata and retry counts on consumed records; see kafka_meta.h. */
#include "aggregator/inputs/kafka_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_PH "<topic>"
#define N_PH "<N>"
#define TOPIC_PH_LEN 7
#define N_PH_LEN 3
#define N_MAX_DIGITS 18

int kmeta_pattern_check(const char *pat, char *why, size_t whylen)
{
    int topics = 0, ns = 0, literal = 0;
    const char *prev = NULL; /* the placeholder just before, if any */
    for (const char *p = pat; *p;) {
        if (!strncmp(p, TOPIC_PH, TOPIC_PH_LEN) || !strncmp(p, N_PH, N_PH_LEN)) {
            int is_topic = p[1] == 't';
            if (prev) {
                snprintf(why, whylen, "`%s`: `<topic>` and `<N>` must be separated by some text", pat);
                return -1;
            }
            if (is_topic ? topics++ : ns++) {
                snprintf(why, whylen, "`%s`: `%s` twice", pat, is_topic ? TOPIC_PH : N_PH);
                return -1;
            }
            prev = p;
            p += is_topic ? TOPIC_PH_LEN : N_PH_LEN;
            continue;
        }
        prev = NULL;
        literal = 1;
        p++;
    }
    if (!literal) {
        snprintf(why, whylen, "`%s`: a pattern needs some literal text (`<topic>.dlq`)", pat);
        return -1;
    }
    return 0;
}

typedef struct pm {
    const char *end;
    int64_t n;
    const char *base;
    size_t blen;
} pm;

static int pm_match(pm *c, const char *p, const char *s)
{
    for (;;) {
        if (!*p)
            return s == c->end;
        if (!strncmp(p, TOPIC_PH, TOPIC_PH_LEN)) {
            /* the longest <topic> that lets the rest match */
            for (size_t l = (size_t)(c->end - s); l >= 1; l--)
                if (pm_match(c, p + TOPIC_PH_LEN, s + l)) {
                    c->base = s;
                    c->blen = l;
                    return 1;
                }
            return 0;
        }
        if (!strncmp(p, N_PH, N_PH_LEN)) {
            size_t d = 0;
            while (s + d < c->end && s[d] >= '0' && s[d] <= '9')
                d++;
            for (size_t l = d; l >= 1; l--) {
                if (l > N_MAX_DIGITS || !pm_match(c, p + N_PH_LEN, s + l))
                    continue;
                int64_t v = 0;
                for (size_t i = 0; i < l; i++)
                    v = v * 10 + (s[i] - '0');
                c->n = v;
                return 1;
            }
            return 0;
        }
        if (s == c->end || *s != *p)
            return 0;
        p++;
        s++;
    }
}

int kmeta_pattern_match(const char *pat, const char *topic, size_t tlen, int64_t *n, const char **base,
                        size_t *blen)
{
    pm c = {.end = topic + tlen, .n = -1};
    if (!pm_match(&c, pat, topic))
        return 0;
    *n = c.n;
    *base = c.base;
    *blen = c.blen;
    return 1;
}

int kmeta_header_count(const void *val, size_t len, int64_t *n)
{
    const uint8_t *v = val;
    if (!v)
        return 0;
    size_t a = 0, b = len;
    while (a < b && (v[a] == ' ' || v[a] == '\t'))
        a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\n' || v[b - 1] == '\r'))
        b--;
    if (b > a && b - a <= N_MAX_DIGITS) {
        int64_t x = 0;
        size_t i = a;
        for (; i < b && v[i] >= '0' && v[i] <= '9'; i++)
            x = x * 10 + (v[i] - '0');
        if (i == b) {
            *n = x;
            return 1;
        }
    }
    /* binary only when it is not text: "many" is no count */
    int printable = 1;
    for (size_t i = 0; i < len; i++)
        if (v[i] < 0x20 || v[i] > 0x7e)
            printable = 0;
    if (printable)
        return 0;
    if (len == 4) {
        *n = (int64_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3]);
        return 1;
    }
    if (len == 8) {
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | v[i];
        if (x > INT64_MAX)
            return 0;
        *n = (int64_t)x;
        return 1;
    }
    return 0;
}

void kmeta_retry_of(const kmeta *m, const char *topic, rd_kafka_headers_t *hs, int64_t *count, int *dlq)
{
    *count = -1;
    *dlq = 0;
    for (size_t i = 0; hs && m->headers && m->headers[i]; i++) {
        const void *v;
        size_t vl;
        if (rd_kafka_header_get_last(hs, m->headers[i], &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            kmeta_header_count(v, vl, count))
            break;
    }
    size_t tl = strlen(topic);
    int64_t n;
    const char *base;
    size_t blen;
    for (size_t i = 0; m->dlq_patterns && m->dlq_patterns[i]; i++)
        if (kmeta_pattern_match(m->dlq_patterns[i], topic, tl, &n, &base, &blen)) {
            *dlq = 1;
            if (*count < 0)
                *count = n;
            break;
        }
    for (size_t i = 0; !*dlq && *count < 0 && m->retry_patterns && m->retry_patterns[i]; i++)
        if (kmeta_pattern_match(m->retry_patterns[i], topic, tl, &n, &base, &blen))
            *count = n;
    if (*count < 0)
        *count = 0;
}

static int compile(rec_path *p, const char *text, const char *param, const conf_node *n, conf_errors *errs)
{
    char err[256];
    if (rec_path_compile(p, text, err, sizeof err)) {
        conf_error_at(errs, n, param, "%s: %s", param, err);
        return -1;
    }
    if (!p->n) {
        conf_error_at(errs, n, param, "%s: `%s` names no key", param, text);
        rec_path_free(p);
        return -1;
    }
    for (size_t i = 0; i < p->n; i++)
        if (!p->steps[i].key) {
            conf_error_at(errs, n, param, "%s: `%s` has an array index; only keys can be set", param, text);
            return -1;
        }
    return 0;
}

int kmeta_configure(kmeta *m, const kmeta_conf *c, char *group, const conf_node *n, conf_errors *errs)
{
    memset(m, 0, sizeof *m);
    static const int decorate[] = {KMETA_NONE, KMETA_BASIC, KMETA_EXTENDED, KMETA_NONE, KMETA_BASIC};
    m->decorate = decorate[c->decorate_events];
    m->group = group;
    m->headers = c->retry_count_header;
    m->retry_patterns = c->retry_topic_pattern;
    m->dlq_patterns = c->dlq_topic_pattern;
    int bad = 0;
    if (m->decorate != KMETA_NONE)
        bad |= compile(&m->meta_path, c->metadata_key, "metadata_key", n, errs);
    if (c->retry_count_key) {
        m->retry_on = 1;
        bad |= compile(&m->retry_path, c->retry_count_key, "retry_count_key", n, errs);
        if (c->dlq_key) {
            bad |= compile(&m->dlq_path, c->dlq_key, "dlq_key", n, errs);
        } else if (!bad) {
            /* `dlq` beside the retry count: the same path, last key replaced */
            char err[64];
            if (rec_path_compile(&m->dlq_path, c->retry_count_key, err, sizeof err) == 0) {
                m->dlq_path.steps[m->dlq_path.n - 1].key = "dlq";
                m->dlq_path.steps[m->dlq_path.n - 1].key_len = 3;
            }
        }
    } else if (c->dlq_key) {
        conf_error_at(errs, n, "dlq_key", "dlq_key needs retry_count_key");
        bad = -1;
    }
    char why[512];
    char *const *lists[] = {c->retry_topic_pattern, c->dlq_topic_pattern};
    const char *names[] = {"retry_topic_pattern", "dlq_topic_pattern"};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            if (kmeta_pattern_check(lists[l][i], why, sizeof why)) {
                conf_error_at(errs, n, names[l], "%s %s", names[l], why);
                bad = -1;
            }
    if (bad)
        kmeta_free(m);
    return bad ? -1 : 0;
}

void kmeta_free(kmeta *m)
{
    rec_path_free(&m->meta_path);
    rec_path_free(&m->retry_path);
    rec_path_free(&m->dlq_path);
    memset(m, 0, sizeof *m);
}

static int put_str(wbuf *t, const char *k, const void *v, size_t n)
{
    return mpw_str(t, k, strlen(k)) || (v ? mpw_str(t, v, n) : mpw_nil(t));
}

/* The decorate_events map. */
static int meta_value(const kmeta *m, const kmeta_msg *msg, wbuf *t)
{
    size_t nh = m->decorate == KMETA_EXTENDED && msg->headers ? rd_kafka_header_cnt(msg->headers) : 0;
    if (mpw_map(t, m->decorate == KMETA_EXTENDED ? 7 : 6) || put_str(t, "topic", msg->topic, strlen(msg->topic)) ||
        mpw_str(t, "partition", 9) || mpw_int(t, msg->partition) || mpw_str(t, "offset", 6) ||
        mpw_int(t, msg->offset) || put_str(t, "key", msg->key, msg->key_len) || mpw_str(t, "timestamp", 9) ||
        (msg->timestamp >= 0 ? mpw_int(t, msg->timestamp) : mpw_nil(t)) ||
        put_str(t, "consumer_group", m->group, m->group ? strlen(m->group) : 0))
        return -1;
    if (m->decorate != KMETA_EXTENDED)
        return 0;
    if (mpw_str(t, "headers", 7) || mpw_map(t, (uint32_t)nh))
        return -1;
    const char *name;
    const void *v;
    size_t vl;
    for (size_t i = 0; i < nh && rd_kafka_header_get_all(msg->headers, i, &name, &v, &vl) == 0; i++)
        if (put_str(t, name, v, vl))
            return -1;
    return 0;
}

/* rec = rec with path set to tmp[voff, voff+vlen); tmp keeps [0, voff+vlen). */
static int set_one(const rec_path *path, wbuf *rec, wbuf *tmp, size_t voff, size_t vlen)
{
    size_t room = rec->len + vlen + 16;
    for (size_t i = 0; i < path->n; i++)
        room += path->steps[i].key_len + 16;
    size_t at = tmp->len;
    if (rec_reserve(tmp, room)) /* no realloc below: the value stays where it is */
        return -1;
    if (rec_set_path(tmp, rec->data, rec->len, path, tmp->data + voff, vlen))
        return -1;
    rec->len = 0;
    int rc = wbuf_add(rec, tmp->data + at, tmp->len - at);
    tmp->len = at;
    return rc;
}

int kmeta_apply(const kmeta *m, const kmeta_msg *msg, wbuf *rec, wbuf *tmp)
{
    tmp->len = 0;
    if (m->decorate != KMETA_NONE) {
        if (meta_value(m, msg, tmp) || set_one(&m->meta_path, rec, tmp, 0, tmp->len))
            return -1;
        tmp->len = 0;
    }
    if (m->retry_on) {
        int64_t count;
        int dlq;
        kmeta_retry_of(m, msg->topic, msg->headers, &count, &dlq);
        if (mpw_int(tmp, count))
            return -1;
        size_t cl = tmp->len;
        if (mpw_bool(tmp, dlq) || set_one(&m->retry_path, rec, tmp, 0, cl) ||
            set_one(&m->dlq_path, rec, tmp, cl, tmp->len - cl))
            return -1;
        tmp->len = 0;
    }
    return 0;
}
