/*
 * lib/membudget.c: the process-wide memory budget (lib/membudget.h).
 */
#include "lib/membudget.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t limit_, in_use_, peak_;
static _Atomic uint64_t waits_[MB_WAIT_REASONS];
static _Atomic uint64_t wait_us_[MB_WAIT_REASONS];

const char *const mb_wait_reason[MB_WAIT_REASONS] = {"forward_read", "buffer_full", "source"};

void mb_set_limit(uint64_t limit) { atomic_store(&limit_, limit); }
uint64_t mb_limit(void) { return atomic_load_explicit(&limit_, memory_order_relaxed); }
uint64_t mb_in_use(void) { return atomic_load_explicit(&in_use_, memory_order_relaxed); }
uint64_t mb_peak(void) { return atomic_load_explicit(&peak_, memory_order_relaxed); }

static void note_peak(uint64_t v)
{
    uint64_t p = atomic_load_explicit(&peak_, memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak_explicit(&peak_, &p, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

int mb_try(size_t n)
{
    uint64_t lim = mb_limit();
    uint64_t cur = atomic_load_explicit(&in_use_, memory_order_relaxed);
    do {
        if (lim && cur + n > lim)
            return -1;
    } while (!atomic_compare_exchange_weak_explicit(&in_use_, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    note_peak(cur + n);
    return 0;
}

void mb_force(size_t n) { note_peak(atomic_fetch_add_explicit(&in_use_, n, memory_order_relaxed) + n); }

void mb_release(size_t n) { atomic_fetch_sub_explicit(&in_use_, n, memory_order_relaxed); }

int mb_over(void)
{
    uint64_t lim = mb_limit();
    return lim && mb_in_use() >= lim;
}

void mb_wait_start(int reason) { atomic_fetch_add_explicit(&waits_[reason], 1, memory_order_relaxed); }
void mb_wait_add(int reason, double seconds)
{
    atomic_fetch_add_explicit(&wait_us_[reason], (uint64_t)(seconds * 1e6), memory_order_relaxed);
}
uint64_t mb_waits(int reason) { return atomic_load_explicit(&waits_[reason], memory_order_relaxed); }
double mb_wait_seconds(int reason) { return (double)atomic_load_explicit(&wait_us_[reason], memory_order_relaxed) / 1e6; }

static uint64_t read_limit(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[64] = "";
    uint64_t v = 0;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3) != 0)
        v = strtoull(buf, NULL, 10);
    fclose(f);
    /* cgroup v1 reports "no limit" as a huge number */
    return v >= (1ull << 60) ? 0 : v;
}

uint64_t mb_default(const char **from)
{
    uint64_t v = read_limit("/sys/fs/cgroup/memory.max");
    if (v) {
        *from = "half of the cgroup's memory.max";
        return v / 2;
    }
    v = read_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    if (v) {
        *from = "half of the cgroup's memory.limit_in_bytes";
        return v / 2;
    }
    *from = "the fixed default (no cgroup memory limit)";
    return 256ull << 20;
}
