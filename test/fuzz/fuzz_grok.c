/*
 * test/fuzz/fuzz_grok.c: libFuzzer target for <parse> @type grok: pattern
 * files, expansion, compilation and matching, from one input:
 *
 *   FLAGS DEFS \0 PATTERNS \0 LINE
 *
 * FLAGS (one byte): bit 0 grok_pattern_series ecs-v1, bit 1
 * grok_failure_key, bit 2 grok_name_key, bit 3 keep_time_key, bit 4 a small
 * grok_match_limit (1000). DEFS is written to a custom pattern file
 * (`NAME regexp` lines). PATTERNS holds up to four patterns separated by
 * \x01: one is grok_pattern, several are <grok> sections. A configuration
 * error is fine (unknown names, loops, bad regexps: the point is that they
 * are found, not crashed on, and that nothing leaks); a configured parser
 * must then turn LINE into exactly one well-formed map, or fail leaving its
 * output as it was (fuzz_parse_common.h's check).
 *
 * Built and run (clang, ASan + UBSan) by
 *   FUZZ_ONLY=grok scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/grok.
 */
#include "fuzz_parse_common.h"

#include <unistd.h>

#include "lib/rx.h"

/* 'text' as a single-quoted config value: only \' and \\ are escapes */
static void put_quoted(wbuf *b, const uint8_t *s, size_t n)
{
    wbuf_addc(b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'' || s[i] == '\\')
            wbuf_addc(b, '\\');
        wbuf_addc(b, s[i]);
    }
    wbuf_addc(b, '\'');
}

static void put_str(wbuf *b, const char *s) { wbuf_add(b, s, strlen(s)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/weir-fuzz-grok-%d.pat", (int)getpid());
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    const uint8_t *z1 = memchr(p, 0, (size_t)(end - p));
    if (!z1)
        return 0;
    const uint8_t *pats = z1 + 1;
    const uint8_t *z2 = memchr(pats, 0, (size_t)(end - pats));
    if (!z2)
        return 0;
    const uint8_t *line = z2 + 1;
    size_t line_len = (size_t)(end - line);

    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(p, 1, (size_t)(z1 - p), f);
    fclose(f);

    /* the <parse> section */
    wbuf conf = {0};
    put_str(&conf, "<parse>\n@type grok\ngrok_timeout 20ms\ncustom_pattern_path ");
    put_str(&conf, path);
    put_str(&conf, "\n");
    if (flags & 1)
        put_str(&conf, "grok_pattern_series ecs-v1\n");
    if (flags & 2)
        put_str(&conf, "grok_failure_key grokfailure\n");
    if (flags & 4)
        put_str(&conf, "grok_name_key grokname\n");
    if (flags & 8)
        put_str(&conf, "keep_time_key true\n");
    if (flags & 16)
        put_str(&conf, "grok_match_limit 1000\n");
    const uint8_t *alts[4];
    size_t alen[4], nalts = 0;
    for (const uint8_t *a = pats; nalts < 4;) {
        const uint8_t *sep = memchr(a, 1, (size_t)(z2 - a));
        alts[nalts] = a;
        alen[nalts++] = (size_t)((sep ? sep : z2) - a);
        if (!sep)
            break;
        a = sep + 1;
    }
    if (nalts == 1) {
        put_str(&conf, "grok_pattern ");
        put_quoted(&conf, alts[0], alen[0]);
        put_str(&conf, "\n");
    } else {
        for (size_t i = 0; i < nalts; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "<grok>\nname alt%zu\npattern ", i);
            put_str(&conf, nm);
            put_quoted(&conf, alts[i], alen[i]);
            put_str(&conf, "\n</grok>\n");
        }
    }
    put_str(&conf, "</parse>\n");
    wbuf_addc(&conf, 0);

    conf_errors errs = {0};
    conf_node *root = conf_parse_string((const char *)conf.data, "fuzz.conf", &errs);
    if (root && root->nchildren == 1) {
        parser ps;
        if (parse_configure(&ps, root->children[0], &errs) == 0) {
            check(&ps, line, line_len);
            check(&ps, line, line_len / 2); /* a cut line too */
        } else if (errs.n == 0) {
            abort(); /* a failed configuration says why */
        }
        parse_free(&ps);
    }
    conf_free(root);
    conf_errors_free(&errs);
    wbuf_free(&conf);
    rx_thread_cleanup();
    return 0;
}
