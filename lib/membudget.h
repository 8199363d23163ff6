/*
 * lib/membudget.h: the process-wide memory budget (<system> memory_budget;
 * docs/architecture.md, "Memory budget").
 *
 * One atomic account of the bytes that components hold on behalf of their
 * senders. A component reserves before it holds (mb_try: refused at the
 * budget, the caller stops reading and waits; mb_force: memory it cannot
 * refuse, e.g. records already decoded and handed on) and releases when it
 * lets go. Who may allocate against it is listed in the doc.
 */
#ifndef WEIR_LIB_MEMBUDGET_H
#define WEIR_LIB_MEMBUDGET_H

#include <stddef.h>
#include <stdint.h>

/* The budget in bytes (0: not set yet, nothing is refused). */
void mb_set_limit(uint64_t limit);
uint64_t mb_limit(void);
uint64_t mb_in_use(void);
/* Reserve n bytes if the account stays within the budget: 0, or -1. */
int mb_try(size_t n);
/* Reserve n bytes whatever the budget says. */
void mb_force(size_t n);
void mb_release(size_t n);
/* The account is at or over the budget: reading stops. */
int mb_over(void);

/* Waits for memory, by reason (counted by whoever waited):
 *   forward_read  a forward connection stopped reading (forward-protocol/)
 *   buffer_full   a writer into a memory buffer waited (overflow_action block)
 *   source        another source (HTTP, syslog, Kafka, monitor) held its batch back */
enum { MB_WAIT_FORWARD_READ = 0, MB_WAIT_BUFFER_FULL, MB_WAIT_SOURCE, MB_WAIT_REASONS };
extern const char *const mb_wait_reason[MB_WAIT_REASONS];
void mb_wait_add(int reason, double seconds);   /* one finished wait */
void mb_wait_start(int reason);                 /* one wait began (count) */
uint64_t mb_waits(int reason);
double mb_wait_seconds(int reason);
uint64_t mb_peak(void);

/* The default: half of the cgroup's memory limit (v2 memory.max, v1
 * memory.limit_in_bytes) when one is set, else 256 MiB. *from says which. */
uint64_t mb_default(const char **from);

#endif
