/*
 * aggregator/filters/parser.c: Fluentd's filter_parser.
 *
 * Parses the value at key_name (a record accessor) with the <parse> section
 * and replaces the record with the result, or merges it into the record
 * (reserve_data, Hash#merge: parsed keys win). The event time becomes the
 * parsed time (or, with estimate_current_event, the current time when the
 * text has none) unless reserve_time.
 *
 * Invalid records (key missing or nil, text not matching, a parser error
 * such as a bad time) go to @ERROR (FILTER_ERROR) with Fluentd's reason when
 * emit_invalid_record_to_error is true (the default). As in Fluentd, with
 * reserve_data true the record ALSO stays in the stream when the key is
 * missing or the pattern does not match (FILTER_ERROR_KEEP). With
 * emit_invalid_record_to_error false the record is kept (reserve_data, plus
 * an empty hash_value_field map if configured) or dropped.
 *
 * Regexp parsing of text with invalid UTF-8 fails like Ruby ("invalid byte
 * sequence in UTF-8", always to @ERROR) unless replace_invalid_sequence
 * true, which replaces each invalid sequence with '?' and parses again.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "lib/log.h"

#include "aggregator/filter.h"
#include "aggregator/parse.h"
#include "aggregator/record.h"

/*
 * CRI partial lines: containerd splits a long line into "P" lines ended by
 * an "F" line. With <parse> @type cri the filter holds the text of P lines
 * per (tag, stream) and parses the whole line when its F line arrives (with
 * the first part's timestamp). Workers share the table, hence the mutex;
 * one container's lines normally come from one connection, in order.
 * Bounds: a joined line is emitted once it passes CRI_JOIN_MAX bytes (even
 * without its F line: nothing is lost, the line is split), and at most
 * CRI_JOIN_KEYS streams are held at once (beyond, parts pass unjoined).
 */
#define CRI_JOIN_MAX (1u << 20)
#define CRI_JOIN_KEYS 4096

typedef struct cri_pending {
    struct cri_pending *next;
    char *key; /* tag NUL stream */
    size_t key_len;
    wbuf text; /* "TIME STREAM F " of the first part, then the log parts */
} cri_pending;

typedef struct cri_join {
    pthread_mutex_t mu;
    cri_pending *list;
    size_t n;
} cri_join;

enum { CRI_PASS, CRI_HOLD, CRI_JOINED };

/* Returns CRI_HOLD (a P line kept), CRI_JOINED (*out holds the whole line to
 * parse) or CRI_PASS (a line to parse as it is). */
static int cri_join_step(cri_join *j, const char *tag, size_t tag_len, const char *s, size_t n, wbuf *out)
{
    /* TIME SP STREAM SP LOGTAG SP LOG */
    const char *sp1 = memchr(s, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s)) : NULL;
    const char *sp3 = sp2 ? memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - s)) : NULL;
    if (!sp3)
        return CRI_PASS;
    int partial = sp2[1] == 'P' && (sp2 + 2 == sp3 || sp2[2] == ':');
    char key[1024];
    size_t sl = (size_t)(sp2 - sp1 - 1);
    if (tag_len + 1 + sl > sizeof key)
        return CRI_PASS;
    memcpy(key, tag, tag_len);
    key[tag_len] = 0;
    memcpy(key + tag_len + 1, sp1 + 1, sl);
    size_t kl = tag_len + 1 + sl;
    const char *log = sp3 + 1;
    size_t loglen = n - (size_t)(log - s);

    pthread_mutex_lock(&j->mu);
    cri_pending **pp = &j->list, *p;
    for (p = *pp; p && !(p->key_len == kl && !memcmp(p->key, key, kl)); pp = &p->next, p = *pp)
        ;
    int rc;
    if (partial) {
        if (!p && j->n >= CRI_JOIN_KEYS) {
            pthread_mutex_unlock(&j->mu);
            return CRI_PASS; /* too many streams mid-line: this part is parsed alone */
        }
        if (!p) {
            p = calloc(1, sizeof *p);
            p->key = malloc(kl);
            memcpy(p->key, key, kl);
            p->key_len = kl;
            /* the first part's "TIME STREAM " and an F tag */
            wbuf_add(&p->text, s, (size_t)(sp2 + 1 - s));
            wbuf_add(&p->text, "F ", 2);
            p->next = j->list;
            j->list = p;
            j->n++;
        }
        if (p->text.len + loglen <= CRI_JOIN_MAX) {
            wbuf_add(&p->text, log, loglen);
            pthread_mutex_unlock(&j->mu);
            return CRI_HOLD;
        }
        /* too long: what was held goes out now with this part, as one line */
        wbuf_add(&p->text, log, loglen);
        rc = CRI_JOINED;
    } else {
        if (!p) {
            pthread_mutex_unlock(&j->mu);
            return CRI_PASS;
        }
        wbuf_add(&p->text, log, loglen);
        rc = CRI_JOINED;
    }
    out->len = 0;
    wbuf_add(out, p->text.data, p->text.len);
    *pp = p->next;
    j->n--;
    wbuf_free(&p->text);
    free(p->key);
    free(p);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

typedef struct fp_ctx {
    char *key_name;
    int reserve_data, reserve_time, remove_key_name_field, replace_invalid_sequence, emit_invalid;
    char *inject_key_prefix;
    char *hash_value_field;
    /* compiled */
    rec_path key;
    parser parser;
    size_t prefix_len, hvf_len;
    cri_join *join; /* <parse> @type cri only; mutable state behind a const ctx */
} fp_ctx;

static const conf_spec fp_spec[] = {
    {"key_name", CONF_STR, NULL, 1, offsetof(fp_ctx, key_name), NULL, "record accessor of the text to parse"},
    {"reserve_data", CONF_BOOL, "false", 0, offsetof(fp_ctx, reserve_data), NULL,
     "merge the parsed values into the record (parsed keys win) instead of replacing it"},
    {"reserve_time", CONF_BOOL, "false", 0, offsetof(fp_ctx, reserve_time), NULL,
     "keep the event time instead of the parsed one"},
    {"remove_key_name_field", CONF_BOOL, "false", 0, offsetof(fp_ctx, remove_key_name_field), NULL,
     "on success, remove `key_name` from the record"},
    {"inject_key_prefix", CONF_STR, NULL, 0, offsetof(fp_ctx, inject_key_prefix), NULL, "prefix for the parsed keys"},
    {"replace_invalid_sequence", CONF_BOOL, "false", 0, offsetof(fp_ctx, replace_invalid_sequence), NULL,
     "regexp parser: replace invalid UTF-8 with `?` and parse; otherwise such text goes to `@ERROR` (`invalid byte "
     "sequence in UTF-8`)"},
    {"hash_value_field", CONF_STR, NULL, 0, offsetof(fp_ctx, hash_value_field), NULL,
     "put the parsed values under this key"},
    {"emit_invalid_record_to_error", CONF_BOOL, "true", 0, offsetof(fp_ctx, emit_invalid), NULL,
     "invalid records go to `@ERROR` with Fluentd's reason (`log does not exist`, `pattern not matched with data "
     "'...'`, a time error); `false`: kept (with `reserve_data`) or dropped"},
    {"parse", CONF_SECTION, NULL, 1, 0, NULL, "the parser: `<parse>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int fp_init(filter *f, conf_node *n, conf_errors *errs)
{
    fp_ctx *c = f->ctx;
    char err[256];
    int bad = 0;
    if (rec_path_compile(&c->key, c->key_name, err, sizeof err) != 0) {
        const conf_param *p = conf_get(n, "key_name");
        conf_errors_add(errs, p->file, p->line, "invalid key_name '%s': %s", c->key_name, err);
        bad = -1;
    }
    conf_node *ps = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        if (strcmp(n->children[i]->name, "parse"))
            continue;
        if (ps) {
            conf_errors_add(errs, n->children[i]->file, n->children[i]->line, "more than one <parse> in <%s%s%s>",
                            n->name, n->arg ? " " : "", n->arg ? n->arg : "");
            bad = -1;
            continue;
        }
        ps = n->children[i];
    }
    if (ps && parse_configure(&c->parser, ps, errs) != 0)
        bad = -1;
    if (!bad && c->parser.type == PARSE_CRI) {
        c->join = calloc(1, sizeof *c->join);
        pthread_mutex_init(&c->join->mu, NULL);
    }
    c->prefix_len = c->inject_key_prefix ? strlen(c->inject_key_prefix) : 0;
    c->hvf_len = c->hash_value_field ? strlen(c->hash_value_field) : 0;
    return bad;
}

static void fp_exit(filter *f)
{
    fp_ctx *c = f->ctx;
    if (c->join) {
        if (c->join->n)
            wlog_warn("filter_parser", "%s: %zu partial CRI lines never got their final (F) part; discarded at "
                      "shutdown",
                      f->id, c->join->n);
        while (c->join->list) {
            cri_pending *p = c->join->list;
            c->join->list = p->next;
            wbuf_free(&p->text);
            free(p->key);
            free(p);
        }
        pthread_mutex_destroy(&c->join->mu);
        free(c->join);
    }
    rec_path_free(&c->key);
    parse_free(&c->parser);
}

/* Fluentd's handle_parsed: values (a map at m) with inject_key_prefix and
 * hash_value_field, merged into the record (rec) when reserve_data. */
static int compose(const fp_ctx *c, filter_call *call, const uint8_t *rec, size_t len, const uint8_t *m, size_t mlen,
                   int remove_key)
{
    wbuf *sc = call->scratch, *out = call->out;
    size_t start = out->len;
    mp_obj mo;
    const uint8_t *p = m, *end = m + mlen;
    if (mp_read(&p, end, &mo) != MP_OK || mo.type != MP_MAP)
        return -1;
    /* every scratch write below fits: pointers into scratch stay valid (m
     * itself may be in scratch: re-derive it after growing) */
    int in_sc = sc->data && m >= sc->data && m < sc->data + sc->len;
    size_t moff = in_sc ? (size_t)(m - sc->data) : 0;
    size_t need = mlen + (size_t)mo.len * (c->prefix_len + 8) + c->hvf_len + len + 64;
    if (rec_reserve(sc, need))
        return -1;
    if (in_sc) {
        m = sc->data + moff;
        end = m + mlen;
        p = m;
        if (mp_read(&p, end, &mo) != MP_OK)
            return -1;
    }
    const uint8_t *vals = m;
    size_t vlen = mlen;
    if (c->prefix_len) {
        rec_hdr h;
        size_t off = sc->len;
        if (rec_hdr_open(sc, &h, 1, mo.len))
            return -1;
        for (uint32_t i = 0; i < mo.len; i++) {
            const uint8_t *k;
            uint32_t kn;
            if (rec_read_str(&p, end, &k, &kn) != 1)
                return -1; /* parsers only write string keys */
            size_t so;
            if (rec_str_open(sc, &so) || rec_add(sc, c->inject_key_prefix, c->prefix_len) || rec_add(sc, k, kn) ||
                rec_str_close(sc, so))
                return -1;
            const uint8_t *v = p;
            if (rec_skip(&p, end) != 0 || rec_add(sc, v, (size_t)(p - v)))
                return -1;
        }
        if (rec_hdr_close(sc, &h, mo.len))
            return -1;
        vals = sc->data + off;
        vlen = sc->len - off;
    }
    if (!c->reserve_data) {
        if (c->hash_value_field)
            return mpw_map(out, 1) || mpw_str(out, c->hash_value_field, c->hvf_len) || rec_add(out, vals, vlen) ? -1
                                                                                                                    : 0;
        return rec_add(out, vals, vlen);
    }
    /* record.merge(r) */
    rec_kv drop[1];
    size_t ndrop = 0;
    const uint8_t *base = rec;
    size_t blen = len;
    if (remove_key) {
        if (c->key.n == 1 && c->key.steps[0].key) {
            drop[ndrop++] = (rec_kv){c->key.steps[0].key, c->key.steps[0].key_len, NULL, 0};
        } else {
            size_t off = sc->len;
            if (rec_delete(sc, rec, len, &c->key, 1) < 0)
                return -1;
            base = sc->data + off;
            blen = sc->len - off;
        }
    }
    if (c->hash_value_field) {
        rec_kv kv = {c->hash_value_field, c->hvf_len, vals, vlen};
        return rec_rewrite_n(out, base, blen, drop, ndrop, &kv, 1);
    }
    rec_kv kstack[64], *kv = kstack;
    p = vals;
    end = vals + vlen;
    if (mp_read(&p, end, &mo) != MP_OK)
        return -1;
    if (mo.len > 64 && !(kv = malloc(mo.len * sizeof *kv)))
        return -1;
    int rc = rec_read_pairs(&p, end, kv, mo.len);
    if (rc == 0)
        rc = rec_rewrite_n(out, base, blen, drop, ndrop, kv, mo.len);
    if (kv != kstack)
        free(kv);
    if (rc)
        out->len = start;
    return rc;
}

static inline uint64_t key_sig(const uint8_t *k, size_t n)
{
    unsigned h = n ? (unsigned)(n * 7u + k[0] * 3u + k[n - 1]) : 0;
    return 1ull << (h & 63);
}

static int map_header(const uint8_t **p, const uint8_t *end, uint32_t *n)
{
    const uint8_t *q = *p;
    if (q < end && (*q & 0xf0) == 0x80) {
        *n = *q & 0x0f;
        *p = q + 1;
        return 0;
    }
    if (end - q >= 3 && *q == 0xde) {
        *n = mp_be16(q + 1);
        *p = q + 3;
        return 0;
    }
    if (end - q >= 5 && *q == 0xdf) {
        *n = mp_be32(q + 1);
        *p = q + 5;
        return 0;
    }
    return -1;
}

static size_t map_hdr_size(uint32_t n) { return n < 16 ? 1 : n < 65536 ? 3 : 5; }

enum { FAST_MERGED = 1, FAST_USE_SCRATCH = 2, FAST_NO = 3 };

/*
 * The hot path (reserve_data, no prefix, no hash_value_field, no
 * remove_key_name_field): the text is parsed straight behind a copy of the
 * record's pairs in `out`. When no parsed key is already in the record (the
 * usual case), that already is record.merge(parsed). Otherwise the parsed
 * map goes to scratch for the general merge. Returns FAST_* or a PARSE_*
 * failure.
 */
static int fast_merge(const fp_ctx *c, filter_call *call, const uint8_t *rec, size_t len, const uint8_t *s,
                      uint32_t sn, int *has_time, uint32_t *ts, uint32_t *tns, char *why, size_t whylen)
{
    wbuf *out = call->out;
    const uint8_t *p = rec, *end = rec + len;
    uint32_t nrec;
    if (map_header(&p, end, &nrec) || nrec > 32)
        return FAST_NO;
    const uint8_t *keys[32];
    uint32_t klens[32];
    uint64_t mask = 0;
    const uint8_t *body = p;
    for (uint32_t i = 0; i < nrec; i++) {
        if (rec_read_str(&p, end, &keys[i], &klens[i]) != 1 || rec_skip(&p, end))
            return FAST_NO;
        mask |= key_sig(keys[i], klens[i]);
    }
    size_t blen = (size_t)(p - body), start = out->len, hs = map_hdr_size(nrec + 8);
    if (rec_reserve(out, hs + blen + 16))
        return FAST_NO;
    out->len += hs;
    memcpy(out->data + out->len, body, blen);
    out->len += blen;
    size_t moff = out->len;
    size_t koff[64];
    uint32_t klen[64];
    parse_keys pk = {koff, klen, 64, 0, 0};
    int rc = parse_text_keys(&c->parser, (const char *)s, sn, out, has_time, ts, tns, why, whylen, &pk);
    if (rc != PARSE_OK) {
        out->len = start;
        return rc;
    }
    const uint8_t *m = out->data + moff, *me = out->data + out->len, *q = m;
    uint32_t nm;
    if (pk.overflow || map_header(&q, me, &nm) || nm != pk.n) {
        out->len = start;
        return FAST_NO;
    }
    size_t mh = (size_t)(q - m);
    for (uint32_t i = 0; i < nm; i++) {
        const uint8_t *k = out->data + koff[i];
        uint32_t kn = klen[i];
        if (!(key_sig(k, kn) & mask))
            continue;
        for (uint32_t r = 0; r < nrec; r++) {
            if (klens[r] == kn && !memcmp(keys[r], k, kn)) {
                /* the record has this key: merge the general way */
                size_t mlen = out->len - moff;
                call->scratch->len = 0;
                if (rec_add(call->scratch, out->data + moff, mlen)) {
                    out->len = start;
                    return FAST_NO;
                }
                out->len = start;
                return FAST_USE_SCRATCH;
            }
        }
    }
    /* drop the parsed map's header, then write the merged count */
    memmove(out->data + moff, out->data + moff + mh, out->len - moff - mh);
    out->len -= mh;
    uint32_t total = nrec + nm;
    size_t need = map_hdr_size(total);
    if (need != hs) {
        if (need > hs && rec_reserve(out, need - hs)) {
            out->len = start;
            return FAST_NO;
        }
        memmove(out->data + start + need, out->data + start + hs, out->len - start - hs);
        out->len = out->len + need - hs;
    }
    uint8_t *d = out->data + start;
    if (need == 1)
        d[0] = (uint8_t)(0x80 | total);
    else if (need == 3)
        d[0] = 0xde, d[1] = (uint8_t)(total >> 8), d[2] = (uint8_t)total;
    else
        d[0] = 0xdf, d[1] = (uint8_t)(total >> 24), d[2] = (uint8_t)(total >> 16), d[3] = (uint8_t)(total >> 8),
        d[4] = (uint8_t)total;
    return FAST_MERGED;
}

/* Fluentd: emit_error_event when emit_invalid_record_to_error, and with
 * reserve_data the record ALSO stays in the stream (with an empty
 * hash_value_field map when that is configured). */
static int invalid(const fp_ctx *c, filter_call *call, const uint8_t *rec, size_t len, const char *why)
{
    if (c->emit_invalid)
        snprintf(call->err, sizeof call->err, "%s", why);
    if (!c->reserve_data)
        return c->emit_invalid ? FILTER_ERROR : FILTER_DROP;
    int keep = c->emit_invalid ? FILTER_ERROR_KEEP : FILTER_KEEP;
    if (!c->hash_value_field)
        return keep;
    static const uint8_t empty_map[] = {0x80};
    call->scratch->len = 0;
    if (compose(c, call, rec, len, empty_map, 1, 0))
        return FILTER_ERROR;
    return c->emit_invalid ? FILTER_ERROR_KEEP : FILTER_MODIFY;
}

static int parse_and_compose(const fp_ctx *c, filter_call *call, const uint8_t *rec, size_t len, const uint8_t *s,
                             uint32_t sn, char *why, size_t whylen);

static int fp_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const fp_ctx *c = f->ctx;
    wbuf *sc = call->scratch;
    char why[256];
    size_t vl;
    const uint8_t *v = rec_lookup(rec, len, &c->key, &vl);
    if (!v || *v == 0xc0) {
        snprintf(why, sizeof why, "%s does not exist", c->key_name);
        return invalid(c, call, rec, len, why);
    }
    const uint8_t *q = v, *s;
    uint32_t sn;
    int r = rec_read_str(&q, v + vl, &s, &sn);
    if (r != 1) {
        if (c->parser.type == PARSE_NONE) {
            /* parser none takes any value as it is */
            sc->len = 0;
            if (mpw_map(sc, 1) || mpw_str(sc, c->parser.mkey, c->parser.mkey_len) || rec_add(sc, v, vl))
                return FILTER_ERROR;
            size_t ml = sc->len;
            if (c->parser.estimate_current_event && !c->reserve_time) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                call->sec = (uint32_t)ts.tv_sec;
                call->nsec = (uint32_t)ts.tv_nsec;
            }
            if (compose(c, call, rec, len, sc->data, ml, c->remove_key_name_field))
                return FILTER_ERROR;
            return FILTER_MODIFY;
        }
        if (!c->emit_invalid)
            return FILTER_DROP;
        snprintf(call->err, sizeof call->err, "parse failed: the value of %s is not a string", c->key_name);
        return FILTER_ERROR;
    }
    wbuf local = {0};
    if (c->join) {
        wbuf *line = call->aux ? call->aux : &local; /* the joined line; the parser uses scratch */
        int jr = cri_join_step(c->join, call->tag, call->tag_len, (const char *)s, sn, line);
        if (jr == CRI_HOLD)
            return FILTER_DROP; /* held until its F line; not a loss */
        if (jr == CRI_JOINED) {
            s = line->data;
            sn = (uint32_t)line->len;
        }
    }
    int frc = parse_and_compose(c, call, rec, len, s, sn, why, sizeof why);
    wbuf_free(&local);
    return frc;
}

static int parse_and_compose(const fp_ctx *c, filter_call *call, const uint8_t *rec, size_t len, const uint8_t *s,
                             uint32_t sn, char *why, size_t whylen)
{
    wbuf *sc = call->scratch;
    sc->len = 0;
    int has_time = 0;
    uint32_t ts = 0, tns = 0;
    int rc;
    if (c->reserve_data && !c->prefix_len && !c->hash_value_field && !c->remove_key_name_field) {
        rc = fast_merge(c, call, rec, len, s, sn, &has_time, &ts, &tns, why, whylen);
        if (rc == FAST_MERGED) {
            if (!c->reserve_time && has_time) {
                call->sec = ts;
                call->nsec = tns;
            }
            return FILTER_MODIFY;
        }
        if (rc == FAST_USE_SCRATCH)
            rc = PARSE_OK;
        else if (rc == FAST_NO)
            rc = parse_text(&c->parser, (const char *)s, sn, sc, &has_time, &ts, &tns, why, whylen);
    } else {
        rc = parse_text(&c->parser, (const char *)s, sn, sc, &has_time, &ts, &tns, why, whylen);
    }
    if (rc == PARSE_BADUTF8) {
        if (!c->replace_invalid_sequence) {
            snprintf(call->err, sizeof call->err, "invalid byte sequence in UTF-8");
            return FILTER_ERROR; /* Fluentd re-raises: @ERROR whatever emit_invalid_record_to_error says */
        }
        wbuf clean = {0}; /* rare: a copy of the scrubbed text */
        if (parse_scrub(&clean, s, sn)) {
            wbuf_free(&clean);
            return FILTER_ERROR;
        }
        sc->len = 0;
        rc = parse_text(&c->parser, (const char *)clean.data, clean.len, sc, &has_time, &ts, &tns, why, whylen);
        wbuf_free(&clean);
    }
    if (rc == PARSE_NOMATCH) {
        char msg[256];
        snprintf(msg, sizeof msg, "pattern not matched with data '%.*s'", (int)(sn > 180 ? 180 : sn), (const char *)s);
        return invalid(c, call, rec, len, msg);
    }
    if (rc != PARSE_OK) {
        if (!c->emit_invalid)
            return FILTER_DROP;
        snprintf(call->err, sizeof call->err, "%s", why);
        return FILTER_ERROR;
    }
    size_t ml = sc->len;
    if (compose(c, call, rec, len, sc->data, ml, c->remove_key_name_field)) {
        snprintf(call->err, sizeof call->err, "parser: out of memory or record too large");
        return FILTER_ERROR;
    }
    if (!c->reserve_time && has_time) {
        call->sec = ts;
        call->nsec = tns;
    }
    return FILTER_MODIFY;
}

static const parser *fp_parser(const filter *f) { return &((const fp_ctx *)f->ctx)->parser; }

FILTER_PLUGIN(parser, fp, .parser = fp_parser);
