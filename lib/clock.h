/*
 * lib/clock.h: the process clocks, in seconds as doubles.
 *   clock_mono(): CLOCK_MONOTONIC, for timeouts, intervals and ages (never
 *                 jumps with the wall clock);
 *   clock_wall(): CLOCK_REALTIME, for what is shown to people or compared
 *                 with times from other processes (chunk creation times).
 *   clock_every(): a rate limit for repeated log lines.
 * Both clocks are vDSO calls: cheap enough for per-request use.
 */
#ifndef WEIR_LIB_CLOCK_H
#define WEIR_LIB_CLOCK_H

#include <time.h>

static inline double clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 at most once every `secs` seconds per *last (a rate limit for repeated
 * log lines: `static __thread double last; if (clock_every(&last, 10)) ...`) */
static inline int clock_every(double *last, double secs)
{
    double now = clock_mono();
    if (now - *last <= secs)
        return 0;
    *last = now;
    return 1;
}

#endif
