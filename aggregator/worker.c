/* aggregator/worker.c: worker threads and their wake-up channel; see worker.h. */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/list.h"
#include "lib/log.h"

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;

    pthread_mutex_lock(&w->mu);
    wk_task *t = w->tasks;
    w->tasks = w->tasks_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (t) {
        wk_task *next = t->next;
        t->fn(w, t->arg);
        free(t);
        t = next;
    }

    wk_done *d = atomic_exchange_explicit(&w->done, NULL, memory_order_acquire);
    /* the stack is LIFO: reverse to handle completions in the order they came */
    wk_done *rev = NULL;
    while (d) {
        wk_done *next = d->next;
        d->next = rev;
        rev = d;
        d = next;
    }
    while (rev) {
        wk_done *next = rev->next;
        rev->cb(w, rev);
        rev = next;
    }
}

static void kick(worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r; /* EAGAIN means the counter is already non-zero: the worker will wake */
}

int worker_init(worker *w, int id, struct router *rt)
{
    w->id = id;
    w->rt = rt;
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return -1;
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd < 0)
        return -1;
    w->wake_ev = event_new(w->base, w->evfd, EV_READ | EV_PERSIST, wake_cb, w);
    event_add(w->wake_ev, NULL);
    pthread_mutex_init(&w->mu, NULL);
    atomic_init(&w->done, NULL);
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(worker *w) { return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1; }

void worker_post(worker *w, void (*fn)(worker *, void *), void *arg)
{
    wk_task *t = malloc(sizeof *t);
    if (!t) {
        wlog_error("worker", "out of memory posting a task to worker %d", w->id);
        return;
    }
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&w->mu);
    QUEUE_PUSH(w->tasks, w->tasks_tail, t);
    pthread_mutex_unlock(&w->mu);
    kick(w);
}

void worker_done(worker *w, wk_done *d)
{
    wk_done *old = atomic_load_explicit(&w->done, memory_order_relaxed);
    do {
        d->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&w->done, &old, d, memory_order_release, memory_order_relaxed));
    if (!old)
        kick(w); /* first item on an empty stack: the worker may be asleep */
}

void worker_join(worker *w) { pthread_join(w->thread, NULL); }

void worker_free(worker *w)
{
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->evfd >= 0)
        close(w->evfd);
    if (w->base)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->mu);
}
