/*
 * aggregator/parsers/grok_expand.c: grok pattern sets (the built-in library
 * of one series plus custom pattern files) and the expansion of a pattern
 * into one regexp with its fields; see grok.h. Configuration time only.
 */
#include "aggregator/parsers/grok.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/fdio.h"
#include "lib/wbuf.h"

/* ---- pattern sets ------------------------------------------------------------------------ */

typedef struct gs_entry {
    char *name;
    char *def;        /* NULL: a name without a regexp */
    const char *file; /* NULL: built in */
    int line;
} gs_entry;

struct grok_set {
    gs_entry *v; /* open addressing, cap a power of two */
    size_t cap, n;
    char **files; /* file names entries point to */
    size_t nfiles;
};

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static gs_entry *slot(const grok_set *s, const char *name, size_t nlen)
{
    size_t m = s->cap - 1, i = (size_t)hash_name(name, nlen) & m;
    while (s->v[i].name && !(strlen(s->v[i].name) == nlen && !memcmp(s->v[i].name, name, nlen)))
        i = (i + 1) & m;
    return &s->v[i];
}

static int grow(grok_set *s)
{
    grok_set big = {calloc(s->cap * 2, sizeof(gs_entry)), s->cap * 2, 0, NULL, 0};
    if (!big.v)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i].name)
            *slot(&big, s->v[i].name, strlen(s->v[i].name)) = s->v[i];
    free(s->v);
    s->v = big.v;
    s->cap = big.cap;
    return 0;
}

int grok_set_put(grok_set *s, const char *name, size_t nlen, const char *def, size_t dlen, const char *file, int line)
{
    if ((s->n + 1) * 4 > s->cap * 3 && grow(s))
        return -1;
    gs_entry *e = slot(s, name, nlen);
    char *d = def ? strndup(def, dlen) : NULL;
    if (def && !d)
        return -1;
    if (e->name) {
        free(e->def);
    } else {
        if (!(e->name = strndup(name, nlen))) {
            free(d);
            return -1;
        }
        s->n++;
    }
    e->def = d;
    e->file = file;
    e->line = line;
    return 0;
}

static const gs_entry *lookup(const grok_set *s, const char *name, size_t nlen)
{
    const gs_entry *e = slot(s, name, nlen);
    return e->name ? e : NULL;
}

grok_set *grok_set_new(int series)
{
    grok_set *s = calloc(1, sizeof *s);
    if (!s || !(s->v = calloc(s->cap = 256, sizeof *s->v))) {
        free(s);
        return NULL;
    }
    for (const grok_def *d = grok_builtin; d->name; d++) {
        const char *def = series == GROK_ECS_V1 && d->ecs ? d->ecs : d->legacy;
        if (grok_set_put(s, d->name, strlen(d->name), def, strlen(def), NULL, 0)) {
            grok_set_free(s);
            return NULL;
        }
    }
    return s;
}

void grok_set_free(grok_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++) {
        free(s->v[i].name);
        free(s->v[i].def);
    }
    for (size_t i = 0; i < s->nfiles; i++)
        free(s->files[i]);
    free(s->files);
    free(s->v);
    free(s);
}

static const char *keep_file(grok_set *s, const char *file)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (!strcmp(s->files[i], file))
            return s->files[i];
    char **nf = realloc(s->files, (s->nfiles + 1) * sizeof *nf);
    if (!nf)
        return NULL;
    s->files = nf;
    if (!(nf[s->nfiles] = strdup(file)))
        return NULL;
    return nf[s->nfiles++];
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

int grok_set_load_text(grok_set *s, const char *text, size_t n, const char *file)
{
    const char *f = keep_file(s, file ? file : "-");
    if (!f)
        return -1;
    int line = 0;
    for (size_t i = 0; i < n;) {
        const char *b = text + i, *nl = memchr(b, '\n', n - i);
        size_t len = nl ? (size_t)(nl - b) : n - i;
        i += len + (nl ? 1 : 0);
        line++;
        while (len && (b[len - 1] == '\r' || b[len - 1] == '\n'))
            len--;
        while (len && blank(*b))
            b++, len--;
        if (!len || *b == '#')
            continue;
        size_t nl_ = 0;
        while (nl_ < len && !blank(b[nl_]))
            nl_++;
        size_t d = nl_;
        while (d < len && blank(b[d]))
            d++;
        /* the regexp is the rest of the line as written (Ruby's split(/\s+/, 2)) */
        if (grok_set_put(s, b, nl_, d < len ? b + d : NULL, len - d, f, line))
            return -1;
    }
    return 0;
}

static int load_file(grok_set *s, const char *path, char *err, size_t errlen)
{
    wbuf b = {0};
    if (file_read_all(path, 64u << 20, &b, err, errlen))
        return -1;
    int rc = 0;
    if (grok_set_load_text(s, (const char *)b.data, b.len, path)) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
    }
    wbuf_free(&b);
    return rc;
}

static int not_hidden(const struct dirent *d) { return d->d_name[0] != '.'; }

int grok_set_load_path(grok_set *s, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(s, path, err, errlen);
    struct dirent **names = NULL;
    int k = scandir(path, &names, not_hidden, alphasort);
    if (k < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < k; i++) {
        char full[4096];
        if (!rc) {
            snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && load_file(s, full, err, errlen))
                rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- expansion ---------------------------------------------------------------------------- */

/* One %{...} reference, read the way fluent-plugin-grok-parser's PATTERN_RE
 * reads it: (?<pattern>[A-z0-9]+)(?::(?<subname>[@\[\]A-z0-9_:.-]+?)
 * (?::(?<type>string|bool|integer|float|time(?::.+?)?|array(?::.)?))?)?\} */
typedef struct gref {
    const char *name, *sub, *type;
    size_t nlen, slen, tlen;
    size_t len; /* of the whole reference */
} gref;

static int name_ch(char c) { return (c >= 'A' && c <= 'z') || (c >= '0' && c <= '9'); }
static int sub_ch(char c) { return name_ch(c) || c == '@' || c == ':' || c == '.' || c == '-'; }

/* The type at t (after the ':'), then '}': its length up to the '}', or 0. */
static size_t type_at(const char *t, const char *end)
{
    static const char *const simple[] = {"string", "bool", "integer", "float"};
    size_t n = (size_t)(end - t);
    for (size_t i = 0; i < 4; i++) {
        size_t l = strlen(simple[i]);
        if (n > l && !memcmp(t, simple[i], l) && t[l] == '}')
            return l;
    }
    if (n > 4 && !memcmp(t, "time", 4)) {
        if (n > 6 && t[4] == ':') /* time:FORMAT, the shortest FORMAT (at least one character) before a '}' */
            for (size_t q = 6; q < n && t[q - 1] != '\n'; q++)
                if (t[q] == '}')
                    return q;
        if (t[4] == '}')
            return 4;
    }
    if (n > 5 && !memcmp(t, "array", 5)) {
        if (n > 7 && t[5] == ':' && t[6] != '\n' && t[7] == '}')
            return 7;
        if (t[5] == '}')
            return 5;
    }
    return 0;
}

/* s points to "%{". 1 with r filled when a reference starts here, else 0. */
static int read_ref(const char *s, const char *end, gref *r)
{
    const char *p = s + 2, *q = p;
    while (q < end && name_ch(*q))
        q++;
    if (q == p || q >= end)
        return 0;
    memset(r, 0, sizeof *r);
    r->name = p;
    r->nlen = (size_t)(q - p);
    if (*q == '}') {
        r->len = (size_t)(q + 1 - s);
        return 1;
    }
    if (*q != ':')
        return 0;
    const char *sub = q + 1;
    for (const char *k = sub + 1; k <= end && sub_ch(k[-1]); k++) { /* the field is sub..k, shortest first */
        if (k < end && *k == ':') {
            size_t tl = type_at(k + 1, end);
            if (tl) {
                r->sub = sub;
                r->slen = (size_t)(k - sub);
                r->type = k + 1;
                r->tlen = tl;
                r->len = (size_t)(k + 1 + tl + 1 - s);
                return 1;
            }
        }
        if (k < end && *k == '}') {
            r->sub = sub;
            r->slen = (size_t)(k - sub);
            r->len = (size_t)(k + 1 - s);
            return 1;
        }
    }
    return 0;
}

typedef struct xctx {
    const grok_set *set;
    wbuf out;
    grok_field *fields;
    size_t nfields, cap;
    const gs_entry *stack[GROK_MAX_DEPTH];
    int depth;
    char *err;
    size_t errlen;
    int failed;
} xctx;

static void fail(xctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(xctx *x, const char *fmt, ...)
{
    if (x->failed)
        return;
    x->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
}

/* " (in the definition of NAME, FILE:LINE)" for messages about nested references */
static void where(const xctx *x, char *buf, size_t n)
{
    buf[0] = 0;
    if (!x->depth)
        return;
    const gs_entry *e = x->stack[x->depth - 1];
    if (e->file)
        snprintf(buf, n, " (in the definition of %s, %s:%d)", e->name, e->file, e->line);
    else
        snprintf(buf, n, " (in the definition of %s, built in)", e->name);
}

/* fluent-plugin-grok-parser: a field written [a][b][c] (ECS) is the key "a.b.c" */
static char *field_key(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        char *k = malloc(n);
        if (!k)
            return NULL;
        size_t j = 0;
        for (size_t i = 1; i < n - 1; i++) {
            if (s[i] == ']' && i + 1 < n - 1 && s[i + 1] == '[') {
                k[j++] = '.';
                i++;
            } else {
                k[j++] = s[i];
            }
        }
        k[j] = 0;
        return k;
    }
    return strndup(s, n);
}

static void expand(xctx *x, const char *s, size_t n)
{
    const char *end = s + n, *lit = s;
    for (const char *p = s; p + 1 < end && !x->failed;) {
        gref r;
        if (!(p[0] == '%' && p[1] == '{' && read_ref(p, end, &r))) {
            p++;
            continue;
        }
        if (wbuf_add(&x->out, lit, (size_t)(p - lit)))
            return fail(x, "out of memory");
        char at[512];
        const gs_entry *e = lookup(x->set, r.name, r.nlen);
        if (!e || !e->def) {
            where(x, at, sizeof at);
            if (e)
                return fail(x, "grok pattern %%{%.*s} has no regexp (%s:%d)%s", (int)r.nlen, r.name, e->file, e->line,
                            at);
            return fail(x, "unknown grok pattern %%{%.*s}%s", (int)r.nlen, r.name, at);
        }
        for (int i = 0; i < x->depth; i++) {
            if (x->stack[i] != e)
                continue;
            char chain[1024];
            size_t l = 0;
            for (int k = i; k < x->depth && l < sizeof chain; k++)
                l += (size_t)snprintf(chain + l, sizeof chain - l, "%%{%s} -> ", x->stack[k]->name);
            if (l < sizeof chain)
                snprintf(chain + l, sizeof chain - l, "%%{%s}", e->name);
            return fail(x, "grok pattern loop: %s", chain);
        }
        if (x->depth == GROK_MAX_DEPTH)
            return fail(x, "grok patterns nested more than %d deep at %%{%s}", GROK_MAX_DEPTH, e->name);
        if (r.sub) {
            if (x->nfields == x->cap) {
                size_t nc = x->cap ? x->cap * 2 : 16;
                grok_field *nf = realloc(x->fields, nc * sizeof *nf);
                if (!nf)
                    return fail(x, "out of memory");
                x->fields = nf;
                x->cap = nc;
            }
            grok_field *f = &x->fields[x->nfields++];
            f->key = field_key(r.sub, r.slen);
            f->type = r.type ? strndup(r.type, r.tlen) : NULL;
            if (!f->key || (r.type && !f->type))
                return fail(x, "out of memory");
            char open[32];
            int ol = snprintf(open, sizeof open, "(?<" GROK_GROUP_PREFIX "%zu>", x->nfields - 1);
            if (wbuf_add(&x->out, open, (size_t)ol))
                return fail(x, "out of memory");
        } else if (wbuf_add(&x->out, "(?:", 3)) {
            return fail(x, "out of memory");
        }
        x->stack[x->depth++] = e;
        expand(x, e->def, strlen(e->def));
        x->depth--;
        if (x->failed)
            return;
        if (wbuf_addc(&x->out, ')'))
            return fail(x, "out of memory");
        if (x->out.len > GROK_MAX_REGEXP)
            return fail(x, "grok pattern expands to more than %u bytes", GROK_MAX_REGEXP);
        p += r.len;
        lit = p;
    }
    if (!x->failed && wbuf_add(&x->out, lit, (size_t)(end - lit)))
        fail(x, "out of memory");
}

int grok_expand(const grok_set *s, const char *pattern, grok_expansion *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    xctx x = {.set = s, .err = err, .errlen = errlen};
    expand(&x, pattern, strlen(pattern));
    if (!x.failed && wbuf_addc(&x.out, 0))
        fail(&x, "out of memory");
    out->fields = x.fields;
    out->nfields = x.nfields;
    if (x.failed) {
        wbuf_free(&x.out);
        grok_expansion_free(out);
        return -1;
    }
    out->regexp = (char *)x.out.data;
    out->len = x.out.len - 1;
    return 0;
}

void grok_expansion_free(grok_expansion *e)
{
    for (size_t i = 0; i < e->nfields; i++) {
        free(e->fields[i].key);
        free(e->fields[i].type);
    }
    free(e->fields);
    free(e->regexp);
    memset(e, 0, sizeof *e);
}

/* ---- a literal every match contains ---------------------------------------------------------------- */

typedef struct lrun {
    char *cur, *best;
    size_t n, bestn;
} lrun;

static void run_end(lrun *r)
{
    if (r->n > r->bestn) {
        memcpy(r->best, r->cur, r->n);
        r->bestn = r->n;
    }
    r->n = 0;
}

/* the run's last character is quantified: it may be absent (or repeated), drop it */
static void run_drop_last(lrun *r)
{
    while (r->n && ((uint8_t)r->cur[r->n - 1] & 0xc0) == 0x80)
        r->n--;
    if (r->n)
        r->n--;
}

static int is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

char *grok_required_literal(const char *p, size_t *len)
{
    size_t n = strlen(p);
    *len = 0;
    lrun r = {malloc(n + 1), malloc(n + 1), 0, 0};
    if (!r.cur || !r.best)
        goto none;
    int depth = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '%' && i + 1 < n && p[i + 1] == '{') {
            gref g;
            run_end(&r);
            i += read_ref(p + i, p + n, &g) ? g.len : 1; /* a reference is required, but not literal */
            continue;
        }
        if (c == '\\') {
            if (i + 1 >= n)
                goto none;
            char d = p[i + 1];
            if (d == 'Q')
                goto none;
            if (depth == 0 && !is_alnum(d) && (uint8_t)d < 0x80 && d != '\n') {
                r.cur[r.n++] = d; /* \[ \. \  ... stand for themselves */
            } else {
                run_end(&r); /* \d \b \x41 \1 ...: not literal text */
            }
            i += 2;
            continue;
        }
        if (c == '[') { /* a class: skip it */
            run_end(&r);
            i++;
            if (i < n && p[i] == '^')
                i++;
            if (i < n && p[i] == ']')
                i++;
            while (i < n && p[i] != ']') {
                if (p[i] == '\\')
                    i++;
                else if (p[i] == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
                    const char *e = strstr(p + i + 2, ":]");
                    if (e)
                        i = (size_t)(e - p) + 1;
                }
                i++;
            }
            i++;
            continue;
        }
        if (c == '(') {
            if (i + 2 < n && p[i + 1] == '?' &&
                ((p[i + 2] >= 'a' && p[i + 2] <= 'z') || (p[i + 2] >= 'A' && p[i + 2] <= 'Z') || p[i + 2] == '-' ||
                 p[i + 2] == '^'))
                goto none; /* inline flags (or (?P<...>): unsure, no prefilter */
            run_end(&r);
            depth++;
            i++;
            continue;
        }
        if (c == ')') {
            run_end(&r);
            if (depth)
                depth--;
            i++;
            continue;
        }
        if (c == '|') {
            if (depth == 0)
                goto none;
            i++;
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (depth == 0)
                run_drop_last(&r);
            run_end(&r);
            if (c == '{') { /* {n,m}: not text (nor, to be safe, a '{' that is no quantifier and what follows) */
                const char *e = strchr(p + i, '}');
                i = e ? (size_t)(e - p) : n;
            }
            i++;
            continue;
        }
        if (c == '.' || c == '^' || c == '$') {
            run_end(&r);
            i++;
            continue;
        }
        if (depth == 0)
            r.cur[r.n++] = c;
        else
            run_end(&r);
        i++;
    }
    run_end(&r);
    if (r.bestn < 3)
        goto none;
    free(r.cur);
    r.best[r.bestn] = 0;
    *len = r.bestn;
    return r.best;
none:
    free(r.cur);
    free(r.best);
    *len = 0;
    return NULL;
}
