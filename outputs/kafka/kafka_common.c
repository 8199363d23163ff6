/* outputs/kafka/kafka_common.c: see kafka_common.h. */
#include "outputs/kafka/kafka_common.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int push(kafka_kv **out, size_t *n, const char *k, size_t kl, const char *v, size_t vl)
{
    kafka_kv *a = realloc(*out, (*n + 1) * sizeof *a);
    if (!a)
        return -1;
    *out = a;
    a[*n].k = strndup(k, kl);
    a[*n].v = strndup(v, vl);
    if (!a[*n].k || !a[*n].v) {
        free(a[*n].k);
        free(a[*n].v);
        return -1;
    }
    (*n)++;
    return 0;
}

static int parse_json(const char *s, kafka_kv **out, size_t *n)
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
            rc |= push(out, n, k, strlen(k), json_string_value(v), json_string_length(v));
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            rc |= t ? push(out, n, k, strlen(k), t, strlen(t)) : -1;
            free(t);
        }
    }
    json_decref(j);
    return rc;
}

int kafka_parse_hash(const char *s, kafka_kv **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (*s == '{') {
        if (parse_json(s, out, n) == 0)
            return 0;
        kafka_kv_free(*out, *n);
        *out = NULL;
        *n = 0;
        return -1;
    }
    while (*s) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (!colon) {
            kafka_kv_free(*out, *n);
            *out = NULL;
            *n = 0;
            return -1;
        }
        const char *k = s, *ke = colon, *v = colon + 1, *ve = end;
        while (k < ke && *k == ' ')
            k++;
        while (ke > k && ke[-1] == ' ')
            ke--;
        while (v < ve && *v == ' ')
            v++;
        while (ve > v && ve[-1] == ' ')
            ve--;
        if (ke > k && push(out, n, k, (size_t)(ke - k), v, (size_t)(ve - v))) {
            kafka_kv_free(*out, *n);
            *out = NULL;
            *n = 0;
            return -1;
        }
        s = *end ? end + 1 : end;
    }
    return 0;
}

void kafka_kv_free(kafka_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].k);
        free(kv[i].v);
    }
    free(kv);
}
