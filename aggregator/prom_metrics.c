/* aggregator/prom_metrics.c: fluent-plugin-prometheus's <metric>s and their registry; see prom_metrics.h. */
#include "aggregator/prom_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/prom.h"
#include "aggregator/record.h"

enum { PM_COUNTER, PM_GAUGE, PM_SUMMARY, PM_HISTOGRAM };
static const char *const type_names[] = {"counter", "gauge", "summary", "histogram"};

/* ---- the registry ------------------------------------------------------------------------------- */

typedef struct pm_series {
    struct pm_series *next, *onext; /* hash chain; insertion order */
    uint64_t h;
    char *key; /* the label values, each NUL-terminated */
    size_t klen;
    double v, sum;
    uint64_t count;
    uint64_t *buckets;
} pm_series;

typedef struct pm_family {
    struct pm_family *next;
    char *name, *help;
    int type;
    char **labels;
    size_t nlabels;
    double *bounds;
    char **bound_text;
    size_t nb;
    pthread_mutex_t mu;
    pm_series *tab[256];
    pm_series *first, *last;
} pm_family;

static pm_family *families;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int same_labels(const pm_family *f, char **labels, size_t n)
{
    if (f->nlabels != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f->labels[i], labels[i]))
            return 0;
    return 1;
}

static pm_family *family_get(const char *name, int type, const char *help, char **labels, size_t nlabels,
                             double *bounds, char **btext, size_t nb, char *err, size_t errlen)
{
    pthread_mutex_lock(&reg_mu);
    pm_family *f = families;
    for (; f; f = f->next)
        if (!strcmp(f->name, name))
            break;
    if (f) {
        if (f->type != type)
            snprintf(err, errlen, "%s has already been registered as %s type", name, type_names[f->type]);
        else if (!same_labels(f, labels, nlabels))
            snprintf(err, errlen, "%s has already been registered with other labels", name);
        else
            err[0] = 0;
        pthread_mutex_unlock(&reg_mu);
        return err[0] ? NULL : f;
    }
    f = calloc(1, sizeof *f);
    if (f) {
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        f->type = type;
        f->labels = calloc(nlabels + 1, sizeof *f->labels);
        for (size_t i = 0; f->labels && i < nlabels; i++)
            f->labels[i] = strdup(labels[i]);
        f->nlabels = nlabels;
        f->bounds = nb ? malloc(nb * sizeof *f->bounds) : NULL;
        f->bound_text = nb ? calloc(nb, sizeof *f->bound_text) : NULL;
        for (size_t i = 0; i < nb && f->bounds && f->bound_text; i++) {
            f->bounds[i] = bounds[i];
            f->bound_text[i] = strdup(btext[i]);
        }
        f->nb = nb;
        pthread_mutex_init(&f->mu, NULL);
        f->next = families;
        families = f;
    }
    pthread_mutex_unlock(&reg_mu);
    if (!f)
        snprintf(err, errlen, "out of memory");
    return f;
}

/* Under f->mu: the series of `key`, made (at zero) when it is new; NULL out of memory. */
static pm_series *series_get(pm_family *f, const char *key, size_t klen)
{
    uint64_t h = fnv(key, klen);
    pm_series *s = f->tab[h & 255];
    while (s && !(s->h == h && s->klen == klen && !memcmp(s->key, key, klen)))
        s = s->next;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || !(s->key = malloc(klen ? klen : 1)) ||
            (f->type == PM_HISTOGRAM && !(s->buckets = calloc(f->nb + 1, sizeof *s->buckets)))) {
            if (s)
                free(s->key);
            free(s);
            return NULL;
        }
        memcpy(s->key, key, klen);
        s->klen = klen;
        s->h = h;
        s->next = f->tab[h & 255];
        f->tab[h & 255] = s;
        if (f->last)
            f->last->onext = s;
        else
            f->first = s;
        f->last = s;
    }
    return s;
}

static void family_update(pm_family *f, const char *key, size_t klen, double v)
{
    pthread_mutex_lock(&f->mu);
    pm_series *s = series_get(f, key, klen);
    if (!s) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    switch (f->type) {
    case PM_COUNTER: s->v += v; break;
    case PM_GAUGE: s->v = v; break;
    case PM_HISTOGRAM:
        for (size_t i = 0; i < f->nb; i++)
            if (v <= f->bounds[i]) {
                s->buckets[i]++;
                break;
            }
        /* fall through */
    case PM_SUMMARY:
        s->sum += v;
        s->count++;
        break;
    }
    pthread_mutex_unlock(&f->mu);
}

static void num(struct evbuffer *o, double d)
{
    char t[32];
    size_t n = rec_double_text(t, d);
    t[n] = 0;
    evbuffer_add_printf(o, "%s", !strcmp(t, "Infinity") ? "+Inf" : !strcmp(t, "-Infinity") ? "-Inf" : t);
}

static void labels_text(struct evbuffer *o, const pm_family *f, const pm_series *s, const char *extra_k,
                        const char *extra_v)
{
    if (!f->nlabels && !extra_k)
        return;
    evbuffer_add(o, "{", 1);
    const char *v = s->key;
    char buf[1024];
    for (size_t i = 0; i < f->nlabels; i++) {
        evbuffer_add_printf(o, "%s%s=\"%s\"", i ? "," : "", f->labels[i], prom_label(v, buf, sizeof buf));
        v += strlen(v) + 1;
    }
    if (extra_k)
        evbuffer_add_printf(o, "%s%s=\"%s\"", f->nlabels ? "," : "", extra_k, extra_v);
    evbuffer_add(o, "}", 1);
}

void pmx_registry_write(struct evbuffer *o)
{
    pthread_mutex_lock(&reg_mu);
    for (pm_family *f = families; f; f = f->next) {
        pthread_mutex_lock(&f->mu);
        prom_head(o, f->name, type_names[f->type], f->help);
        for (pm_series *s = f->first; s; s = s->onext) {
            if (f->type == PM_COUNTER || f->type == PM_GAUGE) {
                evbuffer_add_printf(o, "%s", f->name);
                labels_text(o, f, s, NULL, NULL);
                evbuffer_add(o, " ", 1);
                num(o, s->v);
                evbuffer_add(o, "\n", 1);
                continue;
            }
            if (f->type == PM_HISTOGRAM) {
                uint64_t cum = 0;
                for (size_t i = 0; i <= f->nb; i++) {
                    cum += s->buckets[i];
                    evbuffer_add_printf(o, "%s_bucket", f->name);
                    labels_text(o, f, s, "le", i < f->nb ? f->bound_text[i] : "+Inf");
                    evbuffer_add_printf(o, " %llu\n", (unsigned long long)(i < f->nb ? cum : s->count));
                }
            }
            evbuffer_add_printf(o, "%s_sum", f->name);
            labels_text(o, f, s, NULL, NULL);
            evbuffer_add(o, " ", 1);
            num(o, s->sum);
            evbuffer_add_printf(o, "\n%s_count", f->name);
            labels_text(o, f, s, NULL, NULL);
            evbuffer_add_printf(o, " %llu\n", (unsigned long long)s->count);
        }
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ---- <metric> and <labels> ------------------------------------------------------------------------ */

enum { LP_LIT, LP_TAG, LP_TAG_PART, LP_TAG_PREFIX, LP_TAG_SUFFIX, LP_HOST, LP_WORKER, LP_KEY };

typedef struct lpart {
    int kind;
    char *text; /* LP_LIT: the text; LP_KEY: the key; others: the placeholder as written */
    size_t len;
    int32_t idx;
    int sub;      /* LP_KEY: 0 none, 1 [N], 2 ["k"] */
    char *subkey; /* 2 */
    size_t sublen;
    char *raw; /* the placeholder as written (kept when it does not resolve) */
    size_t rawlen;
} lpart;

typedef struct plabel {
    char *name;
    int accessor;
    rec_path path;
    lpart *parts;
    size_t nparts;
} plabel;

typedef struct pmetric {
    pm_family *f;
    int type;
    char *name;
    int has_key, key_accessor;
    char *key;
    rec_path keypath;
    plabel *labels;
    size_t nlabels;
} pmetric;

struct pmx {
    pmetric *m;
    size_t n;
    char hostname[256];
};

typedef struct metric_conf {
    char *name, *type, *desc, *key, *buckets;
    int initialized;
    int64_t max_series_per_metric;
} metric_conf;

const conf_spec pmx_metric_spec[] = {
    {"name", CONF_STR, NULL, 1, offsetof(metric_conf, name), NULL, "required: the metric's name"},
    {"type", CONF_STR, NULL, 1, offsetof(metric_conf, type), NULL,
     "required: `counter`, `gauge`, `summary` or `histogram`"},
    {"desc", CONF_STR, NULL, 1, offsetof(metric_conf, desc), NULL, "required: its help text"},
    {"key", CONF_STR, NULL, 0, offsetof(metric_conf, key), NULL,
     "the record's number (a key, or an accessor `$.a.b`); required but for a counter, which counts records "
     "without it"},
    {"buckets", CONF_STR, NULL, 0, offsetof(metric_conf, buckets), NULL,
     "histogram: comma-separated upper bounds (default .005,.01,.025,.05,.1,.25,.5,1,2.5,5,10)"},
    {"initialized", CONF_BOOL, "false", 0, offsetof(metric_conf, initialized), NULL,
     "`true`: the series exist from the start at zero: one per `<initlabels>` (label values; a label not given "
     "takes its own static value), or the static labels' one"},
    {"max_series_per_metric", CONF_INT, "0", 0, offsetof(metric_conf, max_series_per_metric), NULL,
     "accepted; no limit"},
    {"labels", CONF_SECTION, NULL, 0, 0, NULL, "`<labels>`: this metric's labels, after the plugin's"},
    {"initlabels", CONF_SECTION, NULL, 0, 0, NULL, "with `initialized true`: one series' label values"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int add_part(plabel *l, lpart p)
{
    lpart *g = realloc(l->parts, (l->nparts + 1) * sizeof *g);
    if (!g)
        return -1;
    l->parts = g;
    l->parts[l->nparts++] = p;
    return 0;
}

/* the plugin's PLACEHOLDER_REGEX: \${[^\[}]+(\[[^\]]+\])?} */
static int compile_value(plabel *l, const char *v)
{
    size_t n = strlen(v), i = 0, lit = 0;
    while (i < n) {
        if (v[i] == '$' && i + 1 < n && v[i + 1] == '{') {
            size_t j = i + 2;
            while (j < n && v[j] != '[' && v[j] != '}')
                j++;
            size_t ne = j;
            int sub = 0;
            size_t ss = 0, se = 0;
            if (j < n && v[j] == '[') {
                ss = j + 1;
                while (j < n && v[j] != ']')
                    j++;
                se = j;
                if (j < n)
                    j++;
                sub = se > ss ? 1 : -1;
            }
            if (ne > i + 2 && sub >= 0 && j < n && v[j] == '}') {
                lpart p = {0};
                p.raw = strndup(v + i, j + 1 - i);
                p.rawlen = j + 1 - i;
                const char *nm = v + i + 2;
                size_t nl = ne - (i + 2);
                int32_t idx;
#define IS(s) (nl == strlen(s) && !memcmp(nm, s, nl))
                if (IS("tag") && !sub)
                    p.kind = LP_TAG;
                else if (IS("hostname") && !sub)
                    p.kind = LP_HOST;
                else if (IS("worker_id") && !sub)
                    p.kind = LP_WORKER;
                else if ((IS("tag_parts") || IS("tag_prefix") || IS("tag_suffix")) && sub &&
                         rec_parse_index(v + ss, se - ss, 0, &idx) == 0) {
                    p.kind = IS("tag_parts") ? LP_TAG_PART : IS("tag_prefix") ? LP_TAG_PREFIX : LP_TAG_SUFFIX;
                    p.idx = idx;
                } else {
                    p.kind = LP_KEY;
                    p.text = strndup(nm, nl);
                    p.len = nl;
                    if (sub && se - ss >= 2 && v[ss] == '"' && v[se - 1] == '"') {
                        p.sub = 2;
                        p.subkey = strndup(v + ss + 1, se - ss - 2);
                        p.sublen = se - ss - 2;
                    } else if (sub && rec_parse_index(v + ss, se - ss, 0, &idx) == 0) {
                        p.sub = 1;
                        p.idx = idx;
                    } else if (sub) {
                        p.kind = LP_LIT; /* never resolves: stays as written */
                        free(p.text);
                        p.text = strdup(p.raw);
                        p.len = p.rawlen;
                    }
                }
#undef IS
                if (i > lit && add_part(l, (lpart){LP_LIT, strndup(v + lit, i - lit), i - lit, 0, 0, NULL, 0, NULL, 0}))
                    return -1;
                if (add_part(l, p))
                    return -1;
                i = j + 1;
                lit = i;
                continue;
            }
        }
        i++;
    }
    if (n > lit && add_part(l, (lpart){LP_LIT, strndup(v + lit, n - lit), n - lit, 0, 0, NULL, 0, NULL, 0}))
        return -1;
    return 0;
}

/* <labels> of section n merged into *ls (a key seen again takes the new value in its place) */
static int read_labels(conf_node *n, plabel **ls, size_t *nls, conf_errors *errs)
{
    conf_node *sec = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        if (strcmp(n->children[i]->name, "labels"))
            continue;
        if (sec) {
            conf_errors_add(errs, n->children[i]->file, n->children[i]->line, "labels section must have at most 1");
            return -1;
        }
        sec = n->children[i];
    }
    if (!sec)
        return 0;
    for (size_t k = 0; k < sec->nparams; k++) {
        conf_param *p = &sec->params[k];
        p->used = 1;
        const char *nm = p->key;
        int okname = (nm[0] >= 'a' && nm[0] <= 'z') || (nm[0] >= 'A' && nm[0] <= 'Z') || nm[0] == '_';
        for (size_t c = 1; nm[c] && okname; c++)
            okname = (nm[c] >= 'a' && nm[c] <= 'z') || (nm[c] >= 'A' && nm[c] <= 'Z') || nm[c] == '_' ||
                     (nm[c] >= '0' && nm[c] <= '9');
        if (!okname) {
            conf_errors_add(errs, p->file, p->line, "invalid label name '%s'", nm);
            return -1;
        }
        plabel l = {0};
        l.name = strdup(nm);
        const char *v = p->value;
        if (!strncmp(v, "$.", 2) || !strncmp(v, "$[", 2)) {
            char err[256];
            if (rec_path_compile(&l.path, v, err, sizeof err)) {
                conf_errors_add(errs, p->file, p->line, "invalid record accessor '%s': %s", v, err);
                free(l.name);
                return -1;
            }
            l.accessor = 1;
        } else if (compile_value(&l, v)) {
            return -1;
        }
        size_t at = *nls;
        for (size_t i = 0; i < *nls; i++)
            if (!strcmp((*ls)[i].name, nm))
                at = i;
        if (at == *nls) {
            plabel *g = realloc(*ls, (*nls + 1) * sizeof *g);
            if (!g)
                return -1;
            *ls = g;
            (*nls)++;
        } else {
            free((*ls)[at].name);
            rec_path_free(&(*ls)[at].path);
            for (size_t q = 0; q < (*ls)[at].nparts; q++) {
                free((*ls)[at].parts[q].text);
                free((*ls)[at].parts[q].subkey);
                free((*ls)[at].parts[q].raw);
            }
            free((*ls)[at].parts);
        }
        (*ls)[at] = l;
    }
    return 0;
}

static int copy_labels(const plabel *src, size_t n, plabel **out)
{
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        plabel *d = &(*out)[i];
        d->name = strdup(src[i].name);
        d->accessor = src[i].accessor;
        if (src[i].accessor) {
            char err[64];
            rec_path_compile(&d->path, src[i].path.text, err, sizeof err);
        }
        d->parts = calloc(src[i].nparts ? src[i].nparts : 1, sizeof *d->parts);
        d->nparts = src[i].nparts;
        for (size_t k = 0; d->parts && k < src[i].nparts; k++) {
            d->parts[k] = src[i].parts[k];
            d->parts[k].text = src[i].parts[k].text ? strdup(src[i].parts[k].text) : NULL;
            d->parts[k].subkey = src[i].parts[k].subkey ? strdup(src[i].parts[k].subkey) : NULL;
            d->parts[k].raw = src[i].parts[k].raw ? strdup(src[i].parts[k].raw) : NULL;
        }
    }
    return 0;
}

static void free_labels(plabel *ls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ls[i].name);
        rec_path_free(&ls[i].path);
        for (size_t k = 0; k < ls[i].nparts; k++) {
            free(ls[i].parts[k].text);
            free(ls[i].parts[k].subkey);
            free(ls[i].parts[k].raw);
        }
        free(ls[i].parts);
    }
    free(ls);
}

static const char *const default_buckets[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                              "0.5",   "1",    "2.5",   "5",    "10"};

/* A label whose value depends on no record and no tag. */
static int label_static(const plabel *l)
{
    if (l->accessor)
        return 0;
    for (size_t i = 0; i < l->nparts; i++)
        if (l->parts[i].kind != LP_LIT && l->parts[i].kind != LP_HOST && l->parts[i].kind != LP_WORKER)
            return 0;
    return 1;
}

static int label_value(const pmx *x, const plabel *l, const char *tag, size_t tl, const uint8_t *rec, size_t len,
                       wbuf *o);

/* initialized true (fluent-plugin-prometheus): the series of each <initlabels> exist from the start at zero;
 * a label an <initlabels> does not give takes its own value, which must then be static. Without
 * <initlabels>, the one series of the static labels. */
static int init_series(const pmx *x, const pmetric *m, conf_node *mn, conf_errors *errs)
{
    static const uint8_t empty_map[1] = {0x80};
    size_t nsec = 0;
    for (size_t i = 0; i < mn->nchildren; i++)
        nsec += !strcmp(mn->children[i]->name, "initlabels");
    for (size_t i = 0; i < mn->nchildren || (!nsec && i == 0); i++) {
        conf_node *il = nsec ? mn->children[i] : NULL;
        if (il && strcmp(il->name, "initlabels"))
            continue;
        wbuf key = {0};
        for (size_t k = 0; k < m->nlabels; k++) {
            const char *v = il ? conf_get_value(il, m->labels[k].name) : NULL;
            if (v) {
                wbuf_add(&key, v, strlen(v));
            } else if (label_static(&m->labels[k])) {
                label_value(x, &m->labels[k], "", 0, empty_map, 1, &key);
            } else {
                conf_errors_add(errs, il ? il->file : mn->file, il ? il->line : mn->line,
                                "initialized metric %s: <initlabels> must give label '%s' (its value comes from "
                                "each record)",
                                m->name ? m->name : "", m->labels[k].name);
                wbuf_free(&key);
                return -1;
            }
            wbuf_addc(&key, 0);
        }
        for (size_t k = 0; il && k < il->nparams; k++)
            if (!il->params[k].used) {
                conf_errors_add(errs, il->params[k].file, il->params[k].line,
                                "<initlabels> gives '%s', which is not a label of %s", il->params[k].key,
                                m->name ? m->name : "");
                wbuf_free(&key);
                return -1;
            }
        pthread_mutex_lock(&m->f->mu);
        series_get(m->f, key.len ? (const char *)key.data : "", key.len);
        pthread_mutex_unlock(&m->f->mu);
        wbuf_free(&key);
    }
    return 0;
}

pmx *pmx_create(conf_node *n, conf_errors *errs)
{
    pmx *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    if (gethostname(x->hostname, sizeof x->hostname - 1) != 0)
        snprintf(x->hostname, sizeof x->hostname, "localhost");
    plabel *base = NULL;
    size_t nbase = 0;
    int bad = read_labels(n, &base, &nbase, errs);
    for (size_t i = 0; i < n->nchildren && !bad; i++) {
        conf_node *mn = n->children[i];
        if (strcmp(mn->name, "metric"))
            continue;
        metric_conf mc = {0};
        if (conf_bind(mn, pmx_metric_spec, &mc, errs)) {
            bad = -1;
            conf_unbind(pmx_metric_spec, &mc);
            break;
        }
        int type = -1;
        for (int t = 0; t < 4; t++)
            if (!strcmp(mc.type, type_names[t]))
                type = t;
        pmetric m = {0};
        m.type = type;
        if (type < 0) {
            conf_error_at(errs, mn, "type", "type option must be 'counter', 'gauge', 'summary' or 'histogram'");
            bad = -1;
        } else if (!mc.key && type != PM_COUNTER) {
            conf_error_at(errs, mn, "key", "%s metric requires 'key' option", mc.type);
            bad = -1;
        }
        double bounds[64];
        char *btext[64];
        size_t nb = 0;
        char **bv = NULL;
        if (!bad && type == PM_HISTOGRAM) {
            if (mc.buckets) {
                bv = conf_parse_array(mc.buckets);
                for (size_t k = 0; bv && bv[k] && nb < 64; k++) {
                    char *e;
                    bounds[nb] = strtod(bv[k], &e);
                    if (e == bv[k] || *e || (nb && bounds[nb] <= bounds[nb - 1])) {
                        conf_error_at(errs, mn, "buckets", "buckets must be increasing numbers: '%s'", mc.buckets);
                        bad = -1;
                        break;
                    }
                    btext[nb++] = bv[k];
                }
            } else {
                for (size_t k = 0; k < 11; k++) {
                    bounds[nb] = strtod(default_buckets[k], NULL);
                    btext[nb++] = (char *)default_buckets[k];
                }
            }
        }
        if (!bad) {
            if (copy_labels(base, nbase, &m.labels))
                bad = -1;
            m.nlabels = nbase;
            if (!bad && read_labels(mn, &m.labels, &m.nlabels, errs))
                bad = -1;
        }
        if (!bad && mc.key) {
            m.has_key = 1;
            m.key = strdup(mc.key);
            if (!strncmp(mc.key, "$.", 2) || !strncmp(mc.key, "$[", 2)) {
                char err[256];
                if (rec_path_compile(&m.keypath, mc.key, err, sizeof err)) {
                    conf_error_at(errs, mn, "key", "invalid record accessor '%s': %s", mc.key, err);
                    bad = -1;
                }
                m.key_accessor = 1;
            }
        }
        if (!bad) {
            char **names = calloc(m.nlabels + 1, sizeof *names);
            for (size_t k = 0; names && k < m.nlabels; k++)
                names[k] = m.labels[k].name;
            char err[256];
            m.f = names ? family_get(mc.name, type, mc.desc, names, m.nlabels, bounds, btext, nb, err, sizeof err)
                        : NULL;
            free(names);
            if (!m.f) {
                conf_error_at(errs, mn, "name", "%s", err);
                bad = -1;
            }
            m.name = strdup(mc.name);
        }
        if (!bad && mc.initialized && init_series(x, &m, mn, errs))
            bad = -1;
        conf_strv_free(bv);
        conf_unbind(pmx_metric_spec, &mc);
        pmetric *g = realloc(x->m, (x->n + 1) * sizeof *g);
        if (!g) {
            bad = -1;
            break;
        }
        x->m = g;
        x->m[x->n++] = m;
    }
    free_labels(base, nbase);
    if (bad) {
        pmx_free(x);
        return NULL;
    }
    return x;
}

void pmx_free(pmx *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++) {
        free_labels(x->m[i].labels, x->m[i].nlabels);
        free(x->m[i].key);
        free(x->m[i].name);
        rec_path_free(&x->m[i].keypath);
    }
    free(x->m);
    free(x);
}

/* ---- per record -------------------------------------------------------------------------------------- */

static int tag_piece(const char *t, size_t n, int kind, int32_t idx, size_t *s, size_t *e)
{
    /* tag.split('.') */
    size_t parts = 1;
    for (size_t i = 0; i < n; i++)
        parts += t[i] == '.';
    if (!n)
        return -1;
    int64_t k = idx;
    if (kind == LP_TAG_PART && k < 0)
        k += (int64_t)parts;
    if (k < 0 || k >= (int64_t)parts)
        return -1;
    if (kind == LP_TAG_SUFFIX) { /* the last k+1 parts */
        size_t start = n, seen = 0;
        while (start > 0) {
            if (t[start - 1] == '.' && ++seen == (size_t)k + 1)
                break;
            start--;
        }
        *s = start;
        *e = n;
        return 0;
    }
    size_t ps = 0;
    for (int64_t i = 0; i < k; i++)
        ps = (size_t)((const char *)memchr(t + ps, '.', n - ps) - t) + 1;
    const char *dot = memchr(t + ps, '.', n - ps);
    *s = kind == LP_TAG_PREFIX ? 0 : ps;
    *e = dot ? (size_t)(dot - t) : n;
    return 0;
}

static int label_value(const pmx *x, const plabel *l, const char *tag, size_t tl, const uint8_t *rec, size_t len,
                       wbuf *o)
{
    size_t vl;
    if (l->accessor) {
        const uint8_t *v = rec_lookup(rec, len, &l->path, &vl);
        return v ? rec_value_to_s(o, v, vl) : 0;
    }
    for (size_t i = 0; i < l->nparts; i++) {
        const lpart *p = &l->parts[i];
        size_t s, e;
        int r = 0;
        switch (p->kind) {
        case LP_LIT: r = rec_add(o, p->text, p->len); break;
        case LP_TAG: r = rec_add(o, tag, tl); break;
        case LP_HOST: r = rec_add(o, x->hostname, strlen(x->hostname)); break;
        case LP_WORKER: r = rec_add(o, "0", 1); break;
        case LP_TAG_PART:
        case LP_TAG_PREFIX:
        case LP_TAG_SUFFIX:
            r = tag_piece(tag, tl, p->kind, p->idx, &s, &e) ? rec_add(o, p->raw, p->rawlen) : rec_add(o, tag + s, e - s);
            break;
        case LP_KEY: {
            const uint8_t *v = rec_get(rec, len, p->text, p->len, &vl);
            const uint8_t *q = v;
            mp_obj ob;
            if (v && mp_read(&q, v + vl, &ob) != MP_OK)
                v = NULL;
            if (v && p->sub == 0 && ob.type != MP_ARRAY && ob.type != MP_MAP) {
                r = rec_value_to_s(o, v, vl);
            } else if (v && p->sub == 1 && ob.type == MP_ARRAY) {
                int64_t k = p->idx < 0 ? p->idx + (int64_t)ob.len : p->idx;
                const uint8_t *end = v + vl;
                int found = 0;
                for (uint32_t a = 0; a < ob.len && k >= 0; a++) {
                    const uint8_t *es = q;
                    if (rec_skip(&q, end))
                        break;
                    if ((int64_t)a == k) {
                        r = rec_value_to_s(o, es, (size_t)(q - es));
                        found = 1;
                        break;
                    }
                }
                if (!found)
                    r = rec_add(o, p->raw, p->rawlen);
            } else if (v && p->sub == 2 && ob.type == MP_MAP) {
                /* the map at v: rec_get on it */
                const uint8_t *sv = rec_get(v, vl, p->subkey, p->sublen, &vl);
                r = sv ? rec_value_to_s(o, sv, vl) : rec_add(o, p->raw, p->rawlen);
            } else {
                r = rec_add(o, p->raw, p->rawlen); /* unknown placeholder: as written */
            }
            break;
        }
        }
        if (r)
            return -1;
    }
    return 0;
}

int pmx_record(const pmx *x, const char *tag, size_t tag_len, const uint8_t *rec, size_t len, char *err,
               size_t errlen)
{
    int rc = 0;
    wbuf key = {0};
    for (size_t i = 0; i < x->n; i++) {
        const pmetric *m = &x->m[i];
        double v = 1;
        if (m->has_key) {
            size_t vl;
            const uint8_t *p = m->key_accessor ? rec_lookup(rec, len, &m->keypath, &vl)
                                               : rec_get(rec, len, m->key, strlen(m->key), &vl);
            mp_obj o;
            if (!p || mp_read(&p, p + vl, &o) != MP_OK || o.type == MP_NIL)
                continue;
            if (o.type == MP_BOOL && !o.v.b && m->type != PM_COUNTER)
                continue; /* `if value`: false skips */
            if (!mp_number(&o, &v)) {
                snprintf(err, errlen, "prometheus: failed to instrument %s: value must be a number", m->name);
                rc = -1;
                continue;
            }
        }
        key.len = 0;
        for (size_t k = 0; k < m->nlabels; k++)
            if (label_value(x, &m->labels[k], tag, tag_len, rec, len, &key) || wbuf_addc(&key, 0))
                goto out;
        family_update(m->f, key.len ? (const char *)key.data : "", key.len, v);
    }
out:
    wbuf_free(&key);
    return rc;
}
