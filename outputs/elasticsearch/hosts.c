/*
 * outputs/elasticsearch/hosts.c: the nodes of the output and the failover
 * of requests between them.
 *
 * `hosts` is "h1:9200,h2:9201" (scheme, port and path from the parameters
 * of those names) or full URLs "https://h:9200/prefix"; without it, host and
 * port. Each es_perform_failover (a round of bulk requests, a template
 * request) starts at the next host (round robin on c->rr); a request that
 * fails on one host (transport error, or a whole-request status of
 * es_status_next_host: 401/403/408/429/5xx) is sent to the next one within
 * the same write, up to one try per host.
 *
 * Threads: c->bases is built by init; a failover may run on several flush
 * threads at once (c->rr is atomic, the http_client is thread-safe).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "outputs/elasticsearch/hosts.h"
#include "outputs/elasticsearch/response.h"

static char *make_base(const char *scheme, const char *host, long port, const char *path)
{
    char buf[2048];
    const char *p = path ? path : "";
    int v6 = strchr(host, ':') && host[0] != '[';
    snprintf(buf, sizeof buf, "%s://%s%s%s:%ld%s%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port,
             (*p && *p != '/') ? "/" : "", p);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '/')
        buf[--n] = 0;
    return strdup(buf);
}

/* `hosts`: "h1:9200,h2:9201" or full URLs "https://h:9200/prefix". */
int es_hosts_parse(out_es *c, conf_node *n, conf_errors *errs)
{
    const char *scheme = c->scheme ? "https" : "http";
    size_t cnt = 0;
    if (c->hosts)
        while (c->hosts[cnt])
            cnt++;
    c->bases = calloc(cnt ? cnt : 1, sizeof *c->bases);
    if (!c->bases)
        return -1;
    if (!cnt) {
        c->bases[0] = make_base(scheme, c->host, (long)c->port, c->path);
        c->nbases = 1;
        return c->bases[0] ? 0 : -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *h = c->hosts[i];
        char *b;
        if (strstr(h, "://")) {
            if (strncmp(h, "http://", 7) != 0 && strncmp(h, "https://", 8) != 0) {
                conf_error_at(errs, n, "hosts", "host '%s': the scheme must be http or https", h);
                return -1;
            }
            b = strdup(h);
            if (b) {
                size_t l = strlen(b);
                while (l && b[l - 1] == '/')
                    b[--l] = 0;
            }
        } else {
            char hostbuf[512];
            long port = (long)c->port;
            const char *colon = strrchr(h, ':');
            /* "h:port", "[::1]:port"; a bare IPv6 address has several colons */
            if (colon && (h[0] == '[' ? colon > strchr(h, ']') : strchr(h, ':') == colon)) {
                char *end;
                port = strtol(colon + 1, &end, 10);
                if (*end || port <= 0 || port > 65535) {
                    conf_error_at(errs, n, "hosts", "host '%s': bad port", h);
                    return -1;
                }
                snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(colon - h), h);
            } else {
                snprintf(hostbuf, sizeof hostbuf, "%s", h);
            }
            b = make_base(scheme, hostbuf, port, c->path);
        }
        if (!b)
            return -1;
        c->bases[c->nbases++] = b;
    }
    return 0;
}

/* Build the URL for request i against host (start + attempt). */
static char *url_for(out_es *c, unsigned host, const char *suffix)
{
    const char *b = c->bases[host % c->nbases];
    size_t l = strlen(b) + strlen(suffix) + 1;
    char *u = malloc(l);
    if (u)
        snprintf(u, l, "%s%s", b, suffix);
    return u;
}

/*
 * Run reqs (their url fields are set here) with failover: a request that had a
 * transport error or a retryable whole-request status is sent again to the
 * next host, up to one try per host. urls[] holds the malloc'd URLs.
 */
void es_perform_failover(output *o, out_es *c, http_req *reqs, char **urls, size_t n, const char *suffix)
{
    unsigned start = atomic_fetch_add_explicit(&c->rr, 1, memory_order_relaxed);
    size_t *todo = malloc(n * sizeof *todo);
    http_req *group = malloc(n * sizeof *group);
    if (!todo || !group) {
        free(todo);
        free(group);
        for (size_t i = 0; i < n; i++) {
            reqs[i].transport_error = 1;
            snprintf(reqs[i].error, sizeof reqs[i].error, "out of memory");
        }
        return;
    }
    size_t ntodo = n;
    for (size_t i = 0; i < n; i++)
        todo[i] = i;
    for (size_t attempt = 0; attempt < c->nbases && ntodo; attempt++) {
        for (size_t k = 0; k < ntodo; k++) {
            size_t i = todo[k];
            free(urls[i]);
            urls[i] = url_for(c, (unsigned)(start + attempt), suffix);
            http_req_clear(&reqs[i]);
            reqs[i].url = urls[i] ? urls[i] : "";
            group[k] = reqs[i];
        }
        http_perform(c->http, group, ntodo);
        size_t next = 0;
        for (size_t k = 0; k < ntodo; k++) {
            size_t i = todo[k];
            reqs[i] = group[k];
            if (reqs[i].transport_error || es_status_next_host(reqs[i].status)) {
                if (attempt + 1 < c->nbases)
                    wlog_warn(ES_MOD, "%s: %s: %s; trying the next host", o->id, reqs[i].url,
                              reqs[i].transport_error ? reqs[i].error : "retryable status");
                todo[next++] = i;
            }
        }
        ntodo = next;
    }
    free(todo);
    free(group);
}
