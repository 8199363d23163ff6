/*
 * test/fuzz/fuzz_conf.c: libFuzzer target for the configuration parser and
 * binder (config/: the parser's units listed in conf_int.h, conf_bind.c).
 *
 *   FUZZ_ONLY=conf scripts/fuzz.sh 60   (clang, ASan + UBSan; every library source linked in;
 *   runs on a scratch copy of test/fuzz/corpus/conf, so new inputs stay out of the repository)
 *
 * Inputs that could make @include read arbitrary files of the host (any '/'
 * in them, or an ENV lookup that might produce one) are skipped: the
 * include machinery is plain file I/O and is covered by the unit tests.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"

typedef struct fuzz_ctx {
    char *str;
    int64_t i;
    int b;
    uint64_t size;
    double time;
    int e;
    char **arr;
} fuzz_ctx;

static const conf_spec specs[] = {
    {"path", CONF_STR, NULL, 1, offsetof(fuzz_ctx, str), NULL, "a required string"},
    {"workers", CONF_INT, "1", 0, offsetof(fuzz_ctx, i), NULL, "an integer"},
    {"compress", CONF_BOOL, "false", 0, offsetof(fuzz_ctx, b), NULL, "a boolean"},
    {"chunk_limit_size", CONF_SIZE, "8m", 0, offsetof(fuzz_ctx, size), NULL, "a size"},
    {"flush_interval", CONF_TIME, "60s", 0, offsetof(fuzz_ctx, time), NULL, "a time"},
    {"format", CONF_ENUM, "json", 0, offsetof(fuzz_ctx, e), "json|msgpack|ltsv", "an enum"},
    {"tags", CONF_ARRAY, "a,b", 0, offsetof(fuzz_ctx, arr), NULL, "an array"},
    {"buffer", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
    {"match", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int risky_include(const uint8_t *data, size_t size)
{
    return memmem(data, size, "@include", 8) &&
           (memchr(data, '/', size) || memmem(data, size, "ENV", 3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    conf_errors errs = {0};
    conf_node *root;
    char *text;

    if (risky_include(data, size))
        return 0;
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    root = conf_parse_string(text, "fuzz.conf", &errs);
    /* Every node, depth first, without recursion (nesting is unbounded). */
    for (conf_node *n = root; n;) {
        fuzz_ctx ctx = {0};
        conf_bind(n, specs, &ctx, &errs);
        conf_unbind(specs, &ctx);
        for (size_t i = 0; i < n->nparams; i++) {
            char **v = conf_parse_array(n->params[i].value);
            conf_strv_free(v);
            conf_suggest(n->params[i].key, (const char *const[]){"flush_interval", "path", NULL});
        }
        if (n->nchildren) {
            n = n->children[0];
            continue;
        }
        /* Next sibling of the nearest ancestor that has one. */
        while (n && n != root) {
            conf_node *p = n->parent;
            size_t k = 0;
            while (p->children[k] != n)
                k++;
            if (k + 1 < p->nchildren) {
                n = p->children[k + 1];
                break;
            }
            n = p;
        }
        if (n == root)
            n = NULL;
    }
    for (size_t i = 0; i < errs.n; i++)
        if (!strchr(errs.msgs[i], ':'))
            abort(); /* every message names its file */
    conf_free(root);
    conf_errors_free(&errs);
    free(text);
    return 0;
}
