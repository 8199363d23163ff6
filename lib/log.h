/*
 * lib/log.h: weir's own log, one JSON object per line on stderr:
 *   {"time":"2026-11-21T22:51:57.123Z","level":"info","module":"fwd","msg":"..."}
 * Thread-safe (one write(2) per line). Levels follow Fluentd's names.
 */
#ifndef WEIR_LOG_H
#define WEIR_LOG_H

enum { WLOG_TRACE, WLOG_DEBUG, WLOG_INFO, WLOG_WARN, WLOG_ERROR, WLOG_FATAL };

extern int wlog_level; /* messages below this level are dropped; default WLOG_INFO */

int wlog_level_from_name(const char *name); /* -1 if unknown */
void wlog(int level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define wlog_debug(m, ...) do { if (wlog_level <= WLOG_DEBUG) wlog(WLOG_DEBUG, m, __VA_ARGS__); } while (0)
#define wlog_info(m, ...)  wlog(WLOG_INFO, m, __VA_ARGS__)
#define wlog_warn(m, ...)  wlog(WLOG_WARN, m, __VA_ARGS__)
#define wlog_error(m, ...) wlog(WLOG_ERROR, m, __VA_ARGS__)

#endif
