/*
 * config/conf.c: the configuration tree of conf.h: building it (sections,
 * parameters, the pool of file names the nodes point to), lookups, freeing,
 * and the fingerprint a reload compares. The parser that fills it is
 * conf_parse.c; the units are listed in conf_int.h.
 */
#include "config/conf_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"
#include "lib/log.h"

/* ---- tree building ------------------------------------------------------ */

const char *cfg_pool_name(parser *ps, const char *name)
{
    conf_root *r = ps->root;
    r->files = grow(r->files, r->nfiles, sizeof *r->files);
    r->files[r->nfiles] = xstrdup(name);
    return r->files[r->nfiles++];
}

conf_node *cfg_node_add(conf_node *parent, const char *name, size_t namelen, char *arg, const char *file, int line)
{
    conf_node *n = xcalloc(1, sizeof *n);
    n->name = xstrndup(name, namelen);
    n->arg = arg;
    n->file = file;
    n->line = line;
    n->parent = parent;
    parent->children = grow(parent->children, parent->nchildren, sizeof *parent->children);
    parent->children[parent->nchildren++] = n;
    return n;
}

/* Takes ownership of key and value. */
conf_param *cfg_node_set_param(conf_node *n, char *key, char *value, const char *file, int line)
{
    for (size_t i = 0; i < n->nparams; i++) {
        conf_param *p = &n->params[i];
        if (strcmp(p->key, key) == 0) {
            /* Fluentd keeps parameters in a hash: the last value wins, and the
             * consumers should see one entry, not two. */
            free(key);
            free(p->value);
            p->value = value;
            p->file = file;
            p->line = line;
            p->used = 0;
            p->bare = 0;
            return p;
        }
    }
    n->params = grow(n->params, n->nparams, sizeof *n->params);
    n->params[n->nparams] = (conf_param){.key = key, .value = value, .file = file, .line = line};
    return &n->params[n->nparams++];
}

void conf_node_set(conf_node *n, const char *key, const char *value, const char *file, int line)
{
    cfg_node_set_param(n, xstrdup(key), xstrdup(value), file, line);
}

void cfg_node_del_param(conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++) {
        if (strcmp(n->params[i].key, key) != 0)
            continue;
        free(n->params[i].key);
        free(n->params[i].value);
        memmove(&n->params[i], &n->params[i + 1], (n->nparams - i - 1) * sizeof *n->params);
        n->nparams--;
        return;
    }
}

/* ---- warnings ----------------------------------------------------------- */

static conf_root *root_of(const conf_node *n)
{
    while (n && n->parent)
        n = n->parent;
    /* only the parser makes a ROOT node (as a conf_root) */
    return n && n->name && !strcmp(n->name, "ROOT") ? (conf_root *)n : NULL;
}

void conf_warn(const conf_node *n, const char *file, int line, const char *fmt, ...)
{
    conf_root *r = root_of(n);
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!r) {
        if (file && line > 0)
            wlog_warn("config", "%s:%d: %s", file, line, msg);
        else
            wlog_warn("config", "%s", msg);
        return;
    }
    conf_errors one = {0};
    conf_errors_add(&one, file, line, "warning: %s", msg);
    for (size_t i = 0; i < r->warns.n; i++)
        if (!strcmp(r->warns.msgs[i], one.msgs[0])) {
            conf_errors_free(&one);
            return;
        }
    errors_move(&r->warns, &one);
}

const conf_errors *conf_warnings(const conf_node *root)
{
    return root && !root->parent && root->name && !strcmp(root->name, "ROOT") ? &((const conf_root *)root)->warns
                                                                               : NULL;
}

/* ---- lookups and freeing ------------------------------------------------ */

void cfg_node_free_empty(conf_node *n)
{
    for (size_t i = 0; i < n->nparams; i++) {
        free(n->params[i].key);
        free(n->params[i].value);
    }
    free(n->params);
    free(n->children);
    free(n->name);
    free(n->arg);
    free(n);
}

void conf_free(conf_node *root)
{
    conf_node *n = root;

    /* Post-order walk through the parent pointers: no recursion, so any
     * nesting depth the parser accepted can be freed. */
    while (n) {
        conf_node *up;
        if (n->nchildren) {
            n = n->children[--n->nchildren];
            continue;
        }
        up = n == root ? NULL : n->parent;
        if (n == root) {
            conf_root *r = (conf_root *)root;
            ARRAY_FREE_ALL(r->files, r->nfiles);
            conf_errors_free(&r->warns);
        }
        cfg_node_free_empty(n);
        n = up;
    }
}

conf_param *conf_get(const conf_node *n, const char *key)
{
    if (!n || !key)
        return NULL;
    for (size_t i = n->nparams; i-- > 0;) {
        if (strcmp(n->params[i].key, key) == 0) {
            n->params[i].used = 1;
            return &n->params[i];
        }
    }
    return NULL;
}

const char *conf_get_value(const conf_node *n, const char *key)
{
    const conf_param *p = conf_get(n, key);
    return p ? p->value : NULL;
}

conf_param *conf_plugin_type(const conf_node *n, conf_errors *errs)
{
    conf_param *type = conf_get(n, "@type");
    if (!type || !type->value[0]) {
        conf_errors_add(errs, n->file, n->line, "missing @type in <%s%s%s>", n->name, n->arg ? " " : "",
                        n->arg ? n->arg : "");
        return NULL;
    }
    return type;
}

char *conf_plugin_id(const conf_node *n, const char *plugin, int index)
{
    const char *id = conf_get_value(n, "@id");
    if (id)
        return strdup(id);
    char def[64];
    snprintf(def, sizeof def, "%s.%d", plugin, index);
    return strdup(def);
}

/* ---- fingerprint (reload) ------------------------------------------------------ */

static int fp_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *b = realloc(*buf, nc);
        if (!b)
            return -1;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* Length-prefixed pieces, so no value can imitate structure. */
static int fp_str(char **buf, size_t *len, size_t *cap, const char *s)
{
    char pre[24];
    size_t n = s ? strlen(s) : 0;
    int pl = snprintf(pre, sizeof pre, s ? "%zu:" : "-:", n);
    return fp_add(buf, len, cap, pre, (size_t)pl) || (s && fp_add(buf, len, cap, s, n)) ? -1 : 0;
}

static int fp_node(char **buf, size_t *len, size_t *cap, const conf_node *n)
{
    if (fp_add(buf, len, cap, "<", 1) || fp_str(buf, len, cap, n->name) || fp_str(buf, len, cap, n->arg))
        return -1;
    for (size_t i = 0; i < n->nparams; i++)
        if (fp_str(buf, len, cap, n->params[i].key) || fp_str(buf, len, cap, n->params[i].value))
            return -1;
    for (size_t i = 0; i < n->nchildren; i++)
        if (fp_node(buf, len, cap, n->children[i]))
            return -1;
    return fp_add(buf, len, cap, ">", 1);
}

char *conf_fingerprint(const conf_node *n)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (fp_node(&buf, &len, &cap, n) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
