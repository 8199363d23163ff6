/* outputs/kafka/route.c: a record's topic, key and partition; see route.h. */
#include "outputs/kafka/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"

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

int kafka_topic_compile(kafka_keys *k, char *err, size_t errlen)
{
    const char *s = k->topic;
    while (s && *s) {
        const char *open = strstr(s, "${");
        size_t n = open ? (size_t)(open - s) : strlen(s);
        if (n) {
            kafka_topic_part *p = ARRAY_PUSH(k->tparts, k->ntparts);
            if (!p || !(p->lit = strndup(s, n)))
                goto oom;
            p->kind = KT_LIT;
        }
        if (!open)
            break;
        const char *close = strchr(open, '}');
        if (!close) {
            snprintf(err, errlen, "unclosed placeholder in topic '%s'", k->topic);
            return -1;
        }
        char in[256];
        snprintf(in, sizeof in, "%.*s", (int)(close - open - 2), open + 2);
        kafka_topic_part *p = ARRAY_PUSH(k->tparts, k->ntparts);
        if (!p)
            goto oom;
        memset(p, 0, sizeof *p);
        if (!strcmp(in, "tag")) {
            p->kind = KT_TAG;
        } else if (!strncmp(in, "tag[", 4)) {
            char *end;
            p->kind = KT_TAG_PART;
            p->tag_idx = (int)strtol(in + 4, &end, 10);
            if (end == in + 4 || strcmp(end, "]") != 0) {
                snprintf(err, errlen, "bad placeholder '${%s}' in topic", in);
                return -1;
            }
        } else {
            p->kind = KT_REC;
            char perr[200];
            if (rec_path_compile(&p->path, in, perr, sizeof perr) != 0) {
                p->kind = KT_LIT;
                snprintf(err, errlen, "bad placeholder '${%s}' in topic: %s", in, perr);
                return -1;
            }
        }
        s = close + 1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

void kafka_topic_free(kafka_keys *k)
{
    for (size_t i = 0; i < k->ntparts; i++) {
        free(k->tparts[i].lit);
        if (k->tparts[i].kind == KT_REC)
            rec_path_free(&k->tparts[i].path);
    }
    free(k->tparts);
    k->tparts = NULL;
    k->ntparts = 0;
}

/* The topic from the `topic` template into r->tbuf. 0, or -1 with why. */
static int topic_expand(const kafka_keys *k, const entry *e, kafka_route *r, wbuf *scratch, char *why, size_t whylen)
{
    size_t len = 0;
    for (size_t i = 0; i < k->ntparts; i++) {
        const kafka_topic_part *p = &k->tparts[i];
        const char *s = NULL;
        size_t n = 0;
        if (p->kind == KT_LIT) {
            s = p->lit;
            n = strlen(s);
        } else if (p->kind == KT_TAG) {
            s = e->tag;
            n = e->tag_len;
        } else if (p->kind == KT_TAG_PART) {
            int parts = 1;
            for (size_t j = 0; j < e->tag_len; j++)
                parts += e->tag[j] == '.';
            int idx = p->tag_idx < 0 ? p->tag_idx + parts : p->tag_idx;
            if (idx < 0 || idx >= parts) {
                snprintf(why, whylen, "tag '%.*s' has no part ${tag[%d]} for the topic", (int)e->tag_len, e->tag,
                         p->tag_idx);
                return -1;
            }
            s = e->tag;
            for (int j = 0; j < idx; j++)
                s = (const char *)memchr(s, '.', e->tag_len - (size_t)(s - e->tag)) + 1;
            const char *dot = memchr(s, '.', e->tag_len - (size_t)(s - e->tag));
            n = dot ? (size_t)(dot - s) : e->tag_len - (size_t)(s - e->tag);
        } else {
            size_t vlen;
            const uint8_t *v = rec_lookup(e->record, e->record_len, &p->path, &vlen);
            scratch->len = 0;
            if (!v || *v == 0xc0 || rec_value_text(scratch, v, vlen)) {
                snprintf(why, whylen, "record has no value for ${%s} in the topic", p->path.text);
                return -1;
            }
            s = (const char *)scratch->data;
            n = scratch->len;
        }
        if (len + n > KAFKA_TOPIC_MAX) {
            snprintf(why, whylen, "topic name is longer than %d bytes", KAFKA_TOPIC_MAX);
            return -1;
        }
        memcpy(r->tbuf + len, s, n);
        len += n;
    }
    r->tbuf[len] = 0;
    if (!len) {
        snprintf(why, whylen, "the topic name is empty");
        return -1;
    }
    r->topic = r->tbuf;
    return 0;
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
    if (c->ntparts) {
        if (topic_expand(c, e, r, scratch, why, whylen) != 0)
            return -1;
    } else if (t && tlen > 0 && tlen <= KAFKA_TOPIC_MAX) {
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
    if (!r->pkey && c->default_partition_key) {
        r->pkey = (const uint8_t *)c->default_partition_key;
        r->pkey_len = strlen(c->default_partition_key);
    }
    r->partition = c->default_partition >= 0 && c->default_partition < INT32_MAX ? (int32_t)c->default_partition
                                                                                  : KAFKA_NO_PARTITION;
    if (fv[F_PART]) {
        const uint8_t *v = fv[F_PART];
        mp_obj o;
        if (mp_read(&v, fv[F_PART] + fl[F_PART], &o) == MP_OK && o.type == MP_UINT && o.v.u < INT32_MAX)
            r->partition = (int32_t)o.v.u; /* MP_INT is always negative (lib/mp.h) */
    }
    return 0;
}
