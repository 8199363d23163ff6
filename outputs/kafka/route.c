/* outputs/kafka/route.c: a record's topic, key and partition; see route.h. */
#include "outputs/kafka/route.h"

#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "aggregator/record.h"

enum { F_TOPIC, F_MKEY, F_PKEY, F_PART, F_N };

/* The values of the routing keys in ONE pass over the record's top-level map
 * (the first of a duplicated key, like rec_get). */
static void find_fields(const kafka_keys *c, const entry *e, const uint8_t *v[F_N], size_t vlen[F_N])
{
    const char *names[F_N] = {c->topic_key, c->message_key_key, c->partition_key_key, c->partition_key};
    size_t nlen[F_N];
    int want = 0;
    for (int i = 0; i < F_N; i++) {
        v[i] = NULL;
        vlen[i] = 0;
        nlen[i] = names[i] ? strlen(names[i]) : 0;
        want += names[i] != NULL;
    }
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    mp_obj m;
    if (!want || mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return;
    for (uint32_t k = 0; k < m.len && want; k++) {
        mp_obj key;
        if (mp_read(&p, end, &key) != MP_OK)
            return;
        const uint8_t *val = p;
        /* mp_read steps over a whole scalar or string (the usual values);
         * only a non-empty container needs the walk of mp_skip */
        mp_obj vo;
        if (mp_read(&p, end, &vo) != MP_OK)
            return;
        if ((vo.type == MP_MAP || vo.type == MP_ARRAY) && vo.len) {
            p = val;
            if (mp_skip(&p, end, 64) != MP_OK)
                return;
        }
        if (key.type != MP_STR && key.type != MP_BIN)
            continue;
        for (int i = 0; i < F_N; i++)
            if (names[i] && !v[i] && key.len == nlen[i] && !memcmp(key.ptr, names[i], nlen[i])) {
                v[i] = val;
                vlen[i] = (size_t)(p - val);
                want--;
            }
    }
}

/* A string value (or the text of a scalar when scratch is given); NULL for nil/absent. */
static const uint8_t *str_value(const uint8_t *v, size_t vlen, size_t *len, wbuf *scratch)
{
    if (!v)
        return NULL;
    mp_obj o;
    const uint8_t *q = v;
    if (mp_read(&q, v + vlen, &o) != MP_OK || o.type == MP_NIL)
        return NULL;
    if (o.type == MP_STR || o.type == MP_BIN) {
        *len = o.len;
        return o.ptr;
    }
    if (!scratch)
        return NULL;
    scratch->len = 0;
    if (rec_value_text(scratch, v, vlen))
        return NULL;
    *len = scratch->len;
    return scratch->data;
}

int kafka_route_of(const kafka_keys *c, const entry *e, kafka_route *r, wbuf *scratch, char *why, size_t whylen)
{
    const uint8_t *fv[F_N];
    size_t fl[F_N];
    find_fields(c, e, fv, fl);
    r->has_topic = fv[F_TOPIC] != NULL;
    r->has_key = fv[F_MKEY] != NULL;
    r->has_pkey = fv[F_PKEY] != NULL;
    r->has_partition = fv[F_PART] != NULL;
    /* topic: record[topic_key] || default_topic || tag */
    size_t tlen = 0;
    const uint8_t *t = str_value(fv[F_TOPIC], fl[F_TOPIC], &tlen, NULL);
    if (t && tlen > 0 && tlen <= KAFKA_TOPIC_MAX) {
        memcpy(r->tbuf, t, tlen);
        r->tbuf[tlen] = 0;
        r->topic = r->tbuf;
    } else if (t && tlen) {
        snprintf(why, whylen, "topic name of %zu bytes in record key '%s' is too long", tlen, c->topic_key);
        return -1;
    } else {
        const char *topic = c->default_topic ? c->default_topic : e->tag;
        if (strlen(topic) > KAFKA_TOPIC_MAX) {
            snprintf(why, whylen, "topic name '%.64s...' is too long", topic);
            return -1;
        }
        r->topic = topic;
    }
    r->key_len = 0;
    r->key = str_value(fv[F_MKEY], fl[F_MKEY], &r->key_len, scratch);
    if (!r->key && c->default_message_key) {
        r->key = (const uint8_t *)c->default_message_key;
        r->key_len = strlen(c->default_message_key);
    }
    r->pkey_len = 0;
    r->pkey = str_value(fv[F_PKEY], fl[F_PKEY], &r->pkey_len, NULL);
    r->partition = KAFKA_NO_PARTITION;
    if (fv[F_PART]) {
        const uint8_t *v = fv[F_PART];
        mp_obj o;
        if (mp_read(&v, fv[F_PART] + fl[F_PART], &o) == MP_OK && o.type == MP_UINT && o.v.u < INT32_MAX)
            r->partition = (int32_t)o.v.u; /* MP_INT is always negative (lib/mp.h) */
    }
    return 0;
}
