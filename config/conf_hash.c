/* config/conf_hash.c: Fluentd's `hash` parameter type; see conf.h. */
#include "config/conf.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int push(conf_hash *h, const char *k, size_t kl, const char *v, size_t vl)
{
    conf_kv *a = realloc(h->kv, (h->n + 1) * sizeof *a);
    if (!a)
        return -1;
    h->kv = a;
    a[h->n].k = strndup(k, kl);
    a[h->n].v = strndup(v, vl);
    if (!a[h->n].k || !a[h->n].v) {
        free(a[h->n].k);
        free(a[h->n].v);
        return -1;
    }
    h->n++;
    return 0;
}

static int parse_json(const char *s, conf_hash *h)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(j, k, v)
    {
        if (json_is_string(v)) {
            rc |= push(h, k, strlen(k), json_string_value(v), json_string_length(v));
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            rc |= t ? push(h, k, strlen(k), t, strlen(t)) : -1;
            free(t);
        }
    }
    json_decref(j);
    return rc;
}

/* "k1:v1,k2:v2": each pair split at its first ':', spaces around trimmed,
 * pairs with an empty key skipped (Fluentd's behaviour). */
static int parse_pairs(const char *s, conf_hash *h)
{
    while (*s) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (!colon)
            return -1;
        const char *k = s, *ke = colon, *v = colon + 1, *ve = end;
        while (k < ke && *k == ' ')
            k++;
        while (ke > k && ke[-1] == ' ')
            ke--;
        while (v < ve && *v == ' ')
            v++;
        while (ve > v && ve[-1] == ' ')
            ve--;
        if (ke > k && push(h, k, (size_t)(ke - k), v, (size_t)(ve - v)))
            return -1;
        s = *end ? end + 1 : end;
    }
    return 0;
}

int conf_parse_hash(const char *s, conf_hash *out)
{
    memset(out, 0, sizeof *out);
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if ((*s == '{' ? parse_json(s, out) : parse_pairs(s, out)) == 0)
        return 0;
    conf_hash_free(out);
    return -1;
}

void conf_hash_free(conf_hash *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->kv[i].k);
        free(h->kv[i].v);
    }
    free(h->kv);
    h->kv = NULL;
    h->n = 0;
}

const char *conf_hash_get(const conf_hash *h, const char *k)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->kv[i].k, k))
            return h->kv[i].v;
    return NULL;
}
