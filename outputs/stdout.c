/*
 * outputs/stdout.c: Fluentd's out_stdout. Default format is out_stdout's
 * "2026-11-21 22:51:57.123456789 +0000 tag: {json}"; any <format> works.
 * One write(2) per batch so lines from different outputs never interleave
 * mid-line.
 */
#include <errno.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>

#include "lib/fdio.h"
#include "lib/log.h"
#include "aggregator/output.h"
#include "outputs/format.h"

typedef struct out_stdout {
    fmt f;
    wbuf buf;
} out_stdout;

static const conf_spec stdout_spec[] = {
    {"format", CONF_SECTION, NULL, 0, 0, NULL,
     "how records are printed: `<format>`; default `stdout` (`TIME TAG: JSON`)"},
    {"inject", CONF_SECTION, NULL, 0, 0, NULL, "keys added to each record: `<inject>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int stdout_init(output *o, conf_node *n, conf_errors *errs)
{
    out_stdout *c = o->ctx;
    return fmt_configure(&c->f, n, FMT_STDOUT, errs);
}

static int stdout_write(output *o, const batch *b, out_result *res)
{
    out_stdout *c = o->ctx;
    c->buf.len = 0;
    batch_iter it;
    entry e;
    batch_iter_init(&it, b);
    while (batch_iter_next(&it, &e) == 1)
        if (fmt_record(&c->f, &c->buf, e.tag, e.tag_len, &e))
            return OUT_ERROR;
    if (fd_write_all(STDOUT_FILENO, c->buf.data, c->buf.len)) {
        wlog_error("out_stdout", "%s: write to stdout failed: %s", o->id, strerror(errno));
        return OUT_RETRY;
    }
    return OUT_OK;
}

static void stdout_exit(output *o)
{
    out_stdout *c = o->ctx;
    fmt_free(&c->f);
    wbuf_free(&c->buf);
}

OUT_PLUGIN(stdout, stdout, out_stdout);
