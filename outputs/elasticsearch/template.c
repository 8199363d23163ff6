/*
 * outputs/elasticsearch/template.c: the index template (template_name,
 * template_file, template_overwrite), installed once before the first bulk.
 *
 * The API follows the file's content: a composable template (a "template"
 * object, "composed_of" or "data_stream") goes to /_index_template/NAME,
 * a legacy one to /_template/NAME. A data stream without template_name and
 * template_file gets a minimal composable template named after the stream.
 * Unless template_overwrite, an existing template of that name is kept.
 *
 * Threads: loaded by init; installed by the first write under c->tmpl_mu
 * (several flush threads may write at once).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http.h"
#include "lib/log.h"
#include "outputs/elasticsearch/hosts.h"
#include "outputs/elasticsearch/template.h"

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    wbuf b = {0};
    char tmp[8192];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (wbuf_add(&b, tmp, r)) {
            fclose(f);
            wbuf_free(&b);
            snprintf(err, errlen, "out of memory reading %s", path);
            return NULL;
        }
    fclose(f);
    wbuf_addc(&b, 0);
    return (char *)b.data;
}

/* Read and check the template; pick the API from its content: a composable
 * template has a "template" object, "composed_of" or "data_stream". */
int es_template_load(out_es *c, conf_node *n, conf_errors *errs)
{
    char err[300] = "";
    if (!c->template_name && !c->template_file)
        return 0;
    if (!c->template_name || !c->template_file) {
        conf_error_at(errs, n, c->template_name ? "template_file" : "template_name",
                      "template_name and template_file go together");
        return -1;
    }
    c->tmpl_body = read_file(c->template_file, err, sizeof err);
    if (!c->tmpl_body) {
        conf_error_at(errs, n, "template_file", "%s", err);
        return -1;
    }
    json_error_t je;
    json_t *j = json_loads(c->tmpl_body, 0, &je);
    if (!j || !json_is_object(j)) {
        conf_error_at(errs, n, "template_file", "%s is not a JSON object: %s (line %d)", c->template_file,
                      j ? "not an object" : je.text, je.line);
        json_decref(j);
        return -1;
    }
    int composable = json_is_object(json_object_get(j, "template")) || json_object_get(j, "composed_of") ||
                     json_object_get(j, "data_stream");
    json_decref(j);
    wbuf u = {0};
    const char *api = composable ? "/_index_template/" : "/_template/";
    if (wbuf_add(&u, api, strlen(api)) || http_urlencode(&u, c->template_name, strlen(c->template_name)) ||
        wbuf_addc(&u, 0)) {
        wbuf_free(&u);
        return -1;
    }
    c->tmpl_url = (char *)u.data;
    return 0;
}

/* A data stream needs a matching index template with "data_stream": {}.
 * Without template_name/template_file, install a minimal one named after the
 * stream unless one of that name exists (fluent-plugin-elasticsearch does the
 * same). Not for names with placeholders. */
int es_template_data_stream(out_es *c)
{
    if (!c->data_stream_name || c->tmpl_body || strstr(c->data_stream_name, "${") || strchr(c->data_stream_name, '%'))
        return 0;
    json_t *j = json_pack("{s:[s],s:{},s:i}", "index_patterns", c->data_stream_name, "data_stream", "priority", 500);
    if (!j)
        return -1;
    c->tmpl_body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    wbuf u = {0};
    if (!c->tmpl_body || wbuf_add(&u, "/_index_template/", 17) ||
        http_urlencode(&u, c->data_stream_name, strlen(c->data_stream_name)) || wbuf_addc(&u, 0)) {
        wbuf_free(&u);
        return -1;
    }
    c->tmpl_url = (char *)u.data;
    return 0;
}

/* Install the index template once (first write); 0 when done or not needed. */
int es_template_ensure(output *o, out_es *c, char *why, size_t whylen)
{
    if (!c->tmpl_url)
        return 0;
    pthread_mutex_lock(&c->tmpl_mu);
    int rc = 0;
    if (c->tmpl_done)
        goto out;
    char *url = NULL;
    if (!c->template_overwrite) {
        http_req get = {.method = "GET"};
        es_perform_failover(o, c, &get, &url, 1, c->tmpl_url);
        long st = get.status;
        http_req_clear(&get);
        free(url);
        url = NULL;
        if (st == 200) {
            wlog_info(ES_MOD, "%s: template %s exists; not overwritten (template_overwrite false)", o->id,
                      c->tmpl_url);
            c->tmpl_done = 1;
            goto out;
        }
    }
    http_req put = {.method = "PUT", .headers = (const char *const[]){"Content-Type: application/json",
                                                                      c->auth_header, NULL},
                    .body = (const uint8_t *)c->tmpl_body, .body_len = strlen(c->tmpl_body)};
    es_perform_failover(o, c, &put, &url, 1, c->tmpl_url);
    if (put.status >= 200 && put.status < 300) {
        wlog_info(ES_MOD, "%s: installed template %s", o->id, c->tmpl_url);
        c->tmpl_done = 1;
    } else {
        if (put.transport_error)
            snprintf(why, whylen, "cannot install template %.60s: %.120s", c->tmpl_url, put.error);
        else
            snprintf(why, whylen, "cannot install template %.60s: HTTP %ld %.120s", c->tmpl_url, put.status,
                     put.resp.len ? (const char *)put.resp.data : "");
        rc = -1;
    }
    http_req_clear(&put);
    free(url);
out:
    pthread_mutex_unlock(&c->tmpl_mu);
    return rc;
}
