/*
 * outputs/elasticsearch/index.c: the index name of a record.
 *
 * The index name comes from the record's time (utc_index) and the
 * ${tag}/${tag[N]}/${key}/${$.a.b} placeholders of index_name or
 * logstash_prefix; it is lowercased as ES requires. Its template is
 * data_stream_name for a data stream, logstash_prefix +
 * logstash_prefix_separator + logstash_dateformat under logstash_format
 * ("logstash-%Y.%m.%d": a daily index), else index_name ("fluentd").
 * Literal text may hold strftime directives; the time is the one bulk.c
 * chose for the record (es_record_time: time_key, @timestamp or event time).
 *
 * Threads: a compiled template is read-only; expanding is reentrant.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"
#include "lib/timefmt.h"
#include "outputs/elasticsearch/es.h"
#include "outputs/elasticsearch/index.h"

void es_index_free(es_index *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->p[i].lit);
        if (t->p[i].kind == PT_REC)
            rec_path_free(&t->p[i].path);
    }
    free(t->p);
    memset(t, 0, sizeof *t);
}

static es_index_part *index_add(es_index *t, int kind)
{
    es_index_part *p = ARRAY_PUSH(t->p, t->n);
    if (p)
        p->kind = kind;
    return p;
}

/* Compile "logs-${tag}-%Y.%m.%d" into parts. -1 with err on a bad placeholder. */
int es_index_compile(es_index *t, const char *s, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->day_only = 1;
    while (*s) {
        const char *ph = strstr(s, "${");
        size_t litlen = ph ? (size_t)(ph - s) : strlen(s);
        if (litlen) {
            es_index_part *p = index_add(t, PT_LIT);
            if (!p || !(p->lit = strndup(s, litlen)))
                goto oom;
            p->has_pct = memchr(s, '%', litlen) != NULL;
            for (size_t k = 0; k + 1 < litlen; k++)
                if (s[k] == '%') {
                    if (!strchr("YmdyjFeC%", s[k + 1]))
                        t->day_only = 0;
                    k++;
                }
        }
        if (!ph)
            break;
        const char *close = strchr(ph + 2, '}');
        /* an accessor like ${$['a.b']} holds no '}' before its end */
        if (!close) {
            snprintf(err, errlen, "unterminated placeholder in '%s'", ph);
            return -1;
        }
        char in[512];
        size_t n = (size_t)(close - ph - 2);
        if (n == 0 || n >= sizeof in) {
            snprintf(err, errlen, "bad placeholder '%.*s'", (int)(close - ph + 1), ph);
            return -1;
        }
        memcpy(in, ph + 2, n);
        in[n] = 0;
        if (strcmp(in, "tag") == 0) {
            if (!index_add(t, PT_TAG))
                goto oom;
        } else if (strncmp(in, "tag[", 4) == 0) {
            char *end;
            long idx = strtol(in + 4, &end, 10);
            if (end == in + 4 || strcmp(end, "]") != 0) {
                snprintf(err, errlen, "bad tag placeholder '${%.100s}' (expected ${tag[N]})", in);
                return -1;
            }
            es_index_part *p = index_add(t, PT_TAG_PART);
            if (!p)
                goto oom;
            p->tag_idx = (int)idx;
        } else {
            es_index_part *p = index_add(t, PT_REC);
            if (!p)
                goto oom;
            char perr[200] = "";
            if (rec_path_compile(&p->path, in, perr, sizeof perr) != 0) {
                p->kind = PT_LIT; /* nothing to free */
                snprintf(err, errlen, "bad record placeholder '${%.100s}': %.150s", in, perr);
                return -1;
            }
            t->per_record = 1;
        }
        s = close + 1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* The n-th dot-separated part of the tag (negative: from the end). */
static int tag_part(const char *tag, size_t len, int idx, const char **out, size_t *olen)
{
    int parts = 1;
    for (size_t i = 0; i < len; i++)
        parts += tag[i] == '.';
    if (idx < 0)
        idx += parts;
    if (idx < 0 || idx >= parts)
        return -1;
    const char *s = tag, *end = tag + len;
    for (int k = 0; k < idx; k++)
        s = (const char *)memchr(s, '.', (size_t)(end - s)) + 1;
    const char *dot = memchr(s, '.', (size_t)(end - s));
    *out = s;
    *olen = (size_t)((dot ? dot : end) - s);
    return 0;
}

/* Expand the template for one record into out (lowercased). -1 with err when a
 * placeholder has no value in this record. */
int es_index_expand(const es_index *t, wbuf *out, const entry *e, uint32_t sec, int utc, char *err, size_t errlen)
{
    size_t start = out->len;
    for (size_t i = 0; i < t->n; i++) {
        const es_index_part *p = &t->p[i];
        int rc = 0;
        if (p->kind == PT_LIT) {
            if (p->has_pct) {
                char tb[512];
                size_t n = time_fmt(tb, sizeof tb, p->lit, sec, 0, utc);
                rc = wbuf_add(out, tb, n);
            } else {
                rc = wbuf_add(out, p->lit, strlen(p->lit));
            }
        } else if (p->kind == PT_TAG) {
            rc = wbuf_add(out, e->tag, e->tag_len);
        } else if (p->kind == PT_TAG_PART) {
            const char *s;
            size_t n;
            if (tag_part(e->tag, e->tag_len, p->tag_idx, &s, &n) != 0) {
                snprintf(err, errlen, "tag '%.*s' has no part ${tag[%d]}", (int)e->tag_len, e->tag, p->tag_idx);
                return -1;
            }
            rc = wbuf_add(out, s, n);
        } else {
            size_t vlen;
            const uint8_t *v = rec_lookup(e->record, e->record_len, &p->path, &vlen);
            if (!v || *v == 0xc0) {
                snprintf(err, errlen, "record has no value for ${%s} in the index name", p->path.text);
                return -1;
            }
            rc = rec_value_text(out, v, vlen);
        }
        if (rc)
            return -1;
    }
    for (size_t i = start; i < out->len; i++)
        out->data[i] = (uint8_t)tolower(out->data[i]);
    return 0;
}

int es_index_init(out_es *c, char *err, size_t errlen)
{
    const char *src = c->index_name;
    char *ls = NULL;
    if (c->data_stream_name) {
        src = c->data_stream_name;
    } else if (c->logstash_format) {
        size_t l = strlen(c->logstash_prefix) + strlen(c->logstash_prefix_separator) + strlen(c->logstash_dateformat);
        ls = malloc(l + 1);
        if (!ls) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(ls, l + 1, "%s%s%s", c->logstash_prefix, c->logstash_prefix_separator, c->logstash_dateformat);
        src = ls;
    }
    int rc = es_index_compile(&c->index, src, err, errlen);
    free(ls);
    return rc;
}
