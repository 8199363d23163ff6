/*
 * outputs/elasticsearch/template.c: the index template (template_name,
 * template_file, template_overwrite), installed once before the first bulk.
 *
 * The API follows the file's content: a composable template (a "template"
 * object, "composed_of" or "data_stream") goes to /_index_template/NAME,
 * a legacy one to /_template/NAME. A data stream without template_name and
 * template_file gets a minimal composable template named after the stream.
 * Unless template_overwrite, an existing template of that name is kept.
 * use_legacy_template, when set, picks the API instead of the content;
 * customize_template replaces text in the file first; `templates` adds more
 * name/file pairs, installed after template_name's.
 *
 * Threads: loaded by init; installed by the first write under c->tmpl_mu
 * (several flush threads may write at once).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fdio.h"
#include "lib/http.h"
#include "lib/log.h"
#include "outputs/elasticsearch/hosts.h"
#include "outputs/elasticsearch/template.h"

static char *read_file(const char *path, char *err, size_t errlen)
{
    wbuf b = {0};
    if (errlen > 12 && file_read_all(path, 64u << 20, &b, err + 12, errlen - 12)) {
        memcpy(err, "cannot open ", 12); /* "cannot open PATH: reason" */
        return NULL;
    }
    return (char *)b.data;
}

/* customize_template: every key of the hash replaced by its value
 * (lowercased, as fluent-plugin-elasticsearch does) in the template text. */
static char *customize(const conf_hash *h, char *text)
{
    for (size_t i = 0; i < h->n; i++) {
        const char *k = h->kv[i].k;
        size_t kl = strlen(k);
        if (!kl)
            continue;
        wbuf b = {0};
        const char *s = text, *hit;
        while ((hit = strstr(s, k))) {
            if (wbuf_add(&b, s, (size_t)(hit - s)))
                goto oom;
            for (const char *v = h->kv[i].v; *v; v++)
                if (wbuf_addc(&b, (char)tolower((unsigned char)*v)))
                    goto oom;
            s = hit + kl;
        }
        if (wbuf_add(&b, s, strlen(s)) || wbuf_addc(&b, 0))
            goto oom;
        free(text);
        text = (char *)b.data;
        continue;
    oom:
        wbuf_free(&b);
        free(text);
        return NULL;
    }
    return text;
}

/* Add one template: read the file (customized), check it, pick the API from
 * its content (a composable template has a "template" object, "composed_of"
 * or "data_stream") unless use_legacy_template says which. */
/* Append one template to install: PUT API + urlencoded NAME with BODY
 * (taken: freed on failure). */
static int template_push(out_es *c, const char *api, const char *name, char *body)
{
    wbuf u = {0};
    char **nb = realloc(c->tmpl_body, (c->ntmpl + 1) * sizeof *nb);
    if (nb)
        c->tmpl_body = nb;
    char **nu = realloc(c->tmpl_url, (c->ntmpl + 1) * sizeof *nu);
    if (nu)
        c->tmpl_url = nu;
    if (!nb || !nu || wbuf_add(&u, api, strlen(api)) || http_urlencode(&u, name, strlen(name)) || wbuf_addc(&u, 0)) {
        wbuf_free(&u);
        free(body);
        return -1;
    }
    c->tmpl_body[c->ntmpl] = body;
    c->tmpl_url[c->ntmpl++] = (char *)u.data;
    return 0;
}

static int template_add(out_es *c, conf_node *n, const char *param, const char *name, const char *file,
                        conf_errors *errs)
{
    char err[300] = "";
    char *body = read_file(file, err, sizeof err);
    if (!body) {
        conf_error_at(errs, n, param, "%s", err);
        return -1;
    }
    if (!(body = customize(&c->customize_template, body)))
        return -1;
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!j || !json_is_object(j)) {
        conf_error_at(errs, n, param, "%s is not a JSON object: %s (line %d)", file, j ? "not an object" : je.text,
                      je.line);
        json_decref(j);
        free(body);
        return -1;
    }
    int composable = json_is_object(json_object_get(j, "template")) || json_object_get(j, "composed_of") ||
                     json_object_get(j, "data_stream");
    json_decref(j);
    if (c->legacy_forced >= 0)
        composable = !c->legacy_forced;
    return template_push(c, composable ? "/_index_template/" : "/_template/", name, body);
}

int es_template_load(out_es *c, conf_node *n, conf_errors *errs)
{
    if (c->template_name || c->template_file) {
        if (!c->template_name || !c->template_file) {
            conf_error_at(errs, n, c->template_name ? "template_file" : "template_name",
                          "template_name and template_file go together");
            return -1;
        }
        if (template_add(c, n, "template_file", c->template_name, c->template_file, errs) != 0)
            return -1;
    }
    /* templates: {"name":"file", ...}, each installed like template_name/template_file */
    for (size_t i = 0; i < c->templates.n; i++)
        if (template_add(c, n, "templates", c->templates.kv[i].k, c->templates.kv[i].v, errs) != 0)
            return -1;
    return 0;
}

/* A data stream needs a matching index template with "data_stream": {}.
 * Without template_name/template_file, install a minimal one named after the
 * stream unless one of that name exists (fluent-plugin-elasticsearch does the
 * same). Not for names with placeholders. */
int es_template_data_stream(out_es *c)
{
    if (!c->data_stream_name || c->template_name || strstr(c->data_stream_name, "${") ||
        strchr(c->data_stream_name, '%'))
        return 0;
    json_t *j = json_pack("{s:[s],s:{},s:i}", "index_patterns", c->data_stream_name, "data_stream", "priority", 500);
    if (!j)
        return -1;
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return body ? template_push(c, "/_index_template/", c->data_stream_name, body) : -1;
}

void es_template_free(out_es *c)
{
    for (size_t i = 0; i < c->ntmpl; i++) {
        free(c->tmpl_body[i]);
        free(c->tmpl_url[i]);
    }
    free(c->tmpl_body);
    free(c->tmpl_url);
}

/* Install one template; 0 when done (or kept), -1 with why. */
static int install_one(output *o, out_es *c, const char *turl, const char *body, char *why, size_t whylen)
{
    char *url = NULL;
    if (!c->template_overwrite) {
        http_req get = {.method = "GET", .headers = c->json_headers};
        es_perform_failover(o, c, &get, &url, 1, turl);
        long st = get.status;
        http_req_clear(&get);
        free(url);
        url = NULL;
        if (st == 200) {
            wlog_info(ES_MOD, "%s: template %s exists; not overwritten (template_overwrite false)", o->id, turl);
            return 0;
        }
    }
    http_req put = {.method = "PUT", .headers = c->json_headers, .body = (const uint8_t *)body,
                    .body_len = strlen(body)};
    es_perform_failover(o, c, &put, &url, 1, turl);
    int rc = 0;
    if (put.status >= 200 && put.status < 300) {
        wlog_info(ES_MOD, "%s: installed template %s", o->id, turl);
    } else {
        if (put.transport_error)
            snprintf(why, whylen, "cannot install template %.60s: %.120s", turl, put.error);
        else
            snprintf(why, whylen, "cannot install template %.60s: HTTP %ld %.120s", turl, put.status,
                     put.resp.len ? (const char *)put.resp.data : "");
        rc = -1;
    }
    http_req_clear(&put);
    free(url);
    return rc;
}

/* Install the index templates once (first write); 0 when done or not needed. */
int es_template_ensure(output *o, out_es *c, char *why, size_t whylen)
{
    if (!c->ntmpl)
        return 0;
    pthread_mutex_lock(&c->tmpl_mu);
    int rc = 0;
    for (size_t i = (size_t)c->tmpl_done; i < c->ntmpl; i++) {
        if ((rc = install_one(o, c, c->tmpl_url[i], c->tmpl_body[i], why, whylen)) != 0)
            break;
        c->tmpl_done = (int)i + 1; /* the next write goes on from the first one not installed */
    }
    pthread_mutex_unlock(&c->tmpl_mu);
    return rc;
}
