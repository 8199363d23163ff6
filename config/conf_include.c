/*
 * config/conf_include.c: "@include PATH" (relative to the including file,
 * globs allowed, sorted like Ruby): each file is read whole and parsed into
 * the section where the @include stands; include cycles, nesting deeper than
 * INCLUDE_MAX_DEPTH and non-regular files are errors. PATH may also be an
 * http:// or https:// URL (fetched with a GET, as Fluentd's open-uri does;
 * a relative @include inside it is relative to that URL) or a file:// URL.
 */
#include "config/conf_int.h"
#include "lib/http.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- reading files -------------------------------------------------------- */

int cfg_read_text(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    sbuf b = {0};
    char chunk[8192];
    size_t n;
    int err = 0;

    if (!f)
        return errno;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sb_putn(&b, chunk, n);
    if (ferror(f))
        err = errno ? errno : EIO;
    fclose(f);
    if (err) {
        sb_free(&b);
        return err;
    }
    *len = b.n;
    *text = sb_take(&b);
    return 0;
}

static char *resolve_relative(const char *from, const char *path)
{
    const char *slash = strrchr(from, '/');
    sbuf b = {0};

    if (path[0] == '/' || !slash)
        return xstrdup(path);
    sb_putn(&b, from, (size_t)(slash - from + 1));
    sb_puts(&b, path);
    return sb_take(&b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- @include ---------------------------------------------------------- */

static void include_file(parser *ps, const char *path, conf_node *cur, int depth, const char *from, int line)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int err;

    if (depth > INCLUDE_MAX_DEPTH) {
        conf_errors_add(ps->errs, from, line, "@include nested more than %d levels deep: '%s'", INCLUDE_MAX_DEPTH,
                        path);
        return;
    }
    if (stat(path, &st) < 0) {
        conf_errors_add(ps->errs, from, line, "cannot read included file '%s': %s", path, strerror(errno));
        return;
    }
    /* A FIFO or /dev/zero would block or never end. */
    if (!S_ISREG(st.st_mode)) {
        conf_errors_add(ps->errs, from, line, "cannot include '%s': not a regular file", path);
        return;
    }
    for (int i = 0; i < ps->nactive; i++) {
        if (ps->active[i].dev == st.st_dev && ps->active[i].ino == st.st_ino) {
            conf_errors_add(ps->errs, from, line, "@include cycle: '%s' is already being read", path);
            return;
        }
    }
    err = cfg_read_text(path, &text, &len);
    if (err) {
        conf_errors_add(ps->errs, from, line, "cannot read included file '%s': %s", path, strerror(err));
        return;
    }
    ps->active[ps->nactive].dev = st.st_dev;
    ps->active[ps->nactive].ino = st.st_ino;
    ps->nactive++;
    cfg_parse_text(ps, cfg_pool_name(ps, path), text, len, cur, depth);
    ps->nactive--;
    free(text);
}

/* An http(s) URL: one GET (certificates verified against the system's CAs,
 * no redirects followed, 10 s to connect, 30 s in all, 16 MiB at most); a
 * status other than 2xx is an error. */
#define INCLUDE_URL_MAX (16u << 20)

static void include_url(parser *ps, const char *url, conf_node *cur, int depth, const char *from, int line)
{
    if (depth > INCLUDE_MAX_DEPTH) {
        conf_errors_add(ps->errs, from, line, "@include nested more than %d levels deep: '%s'", INCLUDE_MAX_DEPTH,
                        url);
        return;
    }
    char err[256];
    http_opts o = {.timeout = 30, .connect_timeout = 10, .verify = 1, .max_in_flight = 1,
                   .max_response = INCLUDE_URL_MAX + 1};
    http_client *c = http_client_new(&o, err, sizeof err);
    if (!c) {
        conf_errors_add(ps->errs, from, line, "cannot include '%s': %s", url, err);
        return;
    }
    http_req r = {.method = "GET", .url = url};
    if (http_perform(c, &r, 1) < 0 || r.transport_error)
        conf_errors_add(ps->errs, from, line, "cannot include '%s': %s", url, r.error[0] ? r.error : "request failed");
    else if (r.status < 200 || r.status > 299)
        conf_errors_add(ps->errs, from, line, "cannot include '%s': HTTP %ld", url, r.status);
    else if (r.resp.len > INCLUDE_URL_MAX || r.resp_truncated)
        conf_errors_add(ps->errs, from, line, "cannot include '%s': larger than %u MiB (or an eighth of memory_budget)",
                        url, INCLUDE_URL_MAX >> 20);
    else {
        char empty[1] = "";
        cfg_parse_text(ps, cfg_pool_name(ps, url), r.resp.len ? (char *)r.resp.data : empty, r.resp.len, cur, depth);
    }
    http_req_clear(&r);
    http_client_free(c);
}

static int is_http_url(const char *p)
{
    return strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0;
}

/* "@include PATH": PATH is relative to the including file and may be a glob;
 * its statements land in `cur`, where the @include stands. */
void cfg_include(parser *ps, const src *s, const char *pattern, conf_node *cur, int depth, int line)
{
    glob_t g = {0};
    char *path;
    int r;

    if (!*pattern) {
        conf_errors_add(ps->errs, s->name, line, "@include without a path");
        return;
    }
    if (strncmp(pattern, "file://", 7) == 0) {
        pattern += 7;
    } else if (is_http_url(pattern)) {
        include_url(ps, pattern, cur, depth + 1, s->name, line);
        return;
    } else if (strstr(pattern, "://")) {
        conf_errors_add(ps->errs, s->name, line,
                        "cannot include '%s': only files, file://, http:// and https:// URLs can be included", pattern);
        return;
    }
    path = resolve_relative(s->name, pattern);
    if (is_http_url(path)) { /* relative to the URL of the including text */
        include_url(ps, path, cur, depth + 1, s->name, line);
        free(path);
        return;
    }
    if (!strpbrk(path, "*?[{")) {
        /* Unlike Fluentd, a plain path that does not exist is an error: a
         * typo should not silently drop part of the configuration. */
        include_file(ps, path, cur, depth + 1, s->name, line);
    } else {
        r = glob(path, GLOB_BRACE, NULL, &g);
        if (r == 0) {
            /* Ruby sorts the whole list; GLOB_BRACE sorts per alternative. */
            qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
            for (size_t i = 0; i < g.gl_pathc; i++)
                include_file(ps, g.gl_pathv[i], cur, depth + 1, s->name, line);
        } else if (r != GLOB_NOMATCH) {
            conf_errors_add(ps->errs, s->name, line, "cannot expand @include pattern '%s'", path);
        }
        globfree(&g);
    }
    free(path);
}
