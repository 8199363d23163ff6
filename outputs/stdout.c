/*
 * outputs/stdout.c: Fluentd's out_stdout. Default format is out_stdout's
 * "2026-11-21 22:51:57.123456789 +0000 tag: {json}"; any <format> works.
 * One write(2) per batch so lines from different outputs never interleave
 * mid-line.
 *
 * Also Fluentd's filter_stdout (`<filter> @type stdout`), here because it is
 * out_stdout's formatter: each record is printed as out_stdout prints it
 * (one write(2) per line) and passes on unchanged.
 */
#include <errno.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>

#include "lib/fdio.h"
#include "lib/log.h"
#include "aggregator/filter.h"
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

/* ---- the filter ------------------------------------------------------------------------------------- */

typedef struct fstdout_ctx {
    fmt f;
} fstdout_ctx;

static const conf_spec fstdout_spec[] = {
    {"format", CONF_SECTION, NULL, 0, 0, NULL,
     "how records are printed: `<format>`; default `stdout` (`TIME TAG: JSON`)"},
    {"inject", CONF_SECTION, NULL, 0, 0, NULL, "keys added to the printed record (not to the one passed on): `<inject>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int fstdout_init(filter *f, conf_node *n, conf_errors *errs)
{
    fstdout_ctx *c = f->ctx;
    return fmt_configure(&c->f, n, FMT_STDOUT, errs);
}

static int fstdout_filter(filter *f, filter_call *call, const uint8_t *rec, size_t rec_len)
{
    fstdout_ctx *c = f->ctx;
    entry e = {call->tag, (uint32_t)call->tag_len, call->sec, call->nsec, call->meta, call->meta_len, rec, rec_len};
    call->scratch->len = 0;
    if (fmt_record(&c->f, call->scratch, call->tag, call->tag_len, &e) == 0 &&
        fd_write_all(STDOUT_FILENO, call->scratch->data, call->scratch->len))
        wlog_error("filter_stdout", "%s: write to stdout failed: %s", f->id, strerror(errno));
    call->scratch->len = 0;
    return FILTER_KEEP;
}

static void fstdout_exit(filter *f)
{
    fstdout_ctx *c = f->ctx;
    fmt_free(&c->f);
}

FILTER_PLUGIN(stdout, fstdout);
