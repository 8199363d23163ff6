/* aggregator/source.c: what every source shares; see source.h (the plugins are listed in registry.c). */
#include "aggregator/source.h"

#include "lib/clock.h"
#include "lib/membudget.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int source_init(source *s, const source_plugin *p, conf_node *n, int index)
{
    s->plugin = p;
    s->id = conf_plugin_id(n, p->name, index);
    s->conf_fp = conf_fingerprint(n);
    return s->id ? 0 : -1;
}

void source_fini(source *s)
{
    free(s->id);
    free(s->conf_fp);
    s->id = s->conf_fp = NULL;
}

int source_worker_init(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_init && p[i]->worker_init(w) != 0)
            return -1;
    return 0;
}

void source_worker_stop(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_stop)
            p[i]->worker_stop(w);
}

void source_worker_free(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_free)
            p[i]->worker_free(w);
}

void source_mem_reserve(size_t n, double max_wait, const int *stop)
{
    double from = 0;
    while (mb_try(n) != 0) {
        double now = clock_mono();
        if (!from) {
            from = now;
            mb_wait_start(MB_WAIT_SOURCE);
        }
        if (now - from >= max_wait || (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))) {
            /* the batch is decoded already: progress over strictness, over the budget by this batch */
            mb_force(n);
            break;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (from)
        mb_wait_add(MB_WAIT_SOURCE, clock_mono() - from);
}

int source_emit_wait(router_ctx *rc, router *rt, rt_label *l, const char *tag, size_t tag_len, wbuf *entries,
                     uint32_t nrec, double max_wait, const int *stop, char *why, size_t whylen)
{
    if (!nrec) {
        entries->len = 0;
        return 0;
    }
    /* the memory budget first: the decoded entries are held already, so they count while this source waits
     * for the outputs too; then the batch counts until its ticket completes (then the outputs' own limits, or
     * a memory buffer's reservation, hold it). At the budget this source stops reading. */
    size_t len = entries->len;
    source_mem_reserve(len, max_wait, stop);
    /* back-pressure: as the workers stop reading, wait while the outputs are full */
    for (double waited = 0; router_congested(rt); waited += 0.005) {
        if (waited >= max_wait || (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))) {
            snprintf(why, whylen, "the outputs' queues are full");
            entries->len = 0;
            mb_release(len);
            return -1;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    uint8_t *data = wbuf_steal(entries, &len);
    batch *b = batch_new(tag, tag_len, data, len, nrec);
    if (!b) {
        free(data);
        mb_release(len);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    ticket_sync kt;
    ticket_sync_init(&kt, 1); /* guard until every batch is submitted */
    router_route(rc, l, b);
    size_t n = 0;
    rt_delivery *dl = router_ctx_deliveries(rc, &n);
    atomic_fetch_add(&kt.t.outstanding, (int)n);
    for (size_t d = 0; d < n; d++)
        output_submit(dl[d].out, dl[d].b, &kt.t, dl[d].flags);
    router_ctx_reset(rc);
    batch_unref(b);
    ticket_done(&kt.t, 1);
    int done = ticket_sync_wait(&kt);
    mb_release(len);
    if (done != 0) {
        snprintf(why, whylen, "an output refused the records");
        return -1;
    }
    return 0;
}
