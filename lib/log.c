/* lib/log.c: JSON-lines logger on stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int wlog_level = WLOG_INFO;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "fatal"};

int wlog_level_from_name(const char *name)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* Append s to out as JSON string content (no quotes); returns new length. */
static size_t json_escape(char *out, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

void wlog(int level, const char *module, const char *fmt, ...)
{
    if (level < wlog_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[4096];
    size_t n = strftime(line, sizeof line, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ\",\"level\":\"%s\",\"module\":\"", (int)(tv.tv_usec / 1000),
                          level_names[level < 0 ? 0 : level > WLOG_FATAL ? WLOG_FATAL : level]);
    n = json_escape(line, n, sizeof line - 16, module);
    n += (size_t)snprintf(line + n, sizeof line - n, "\",\"msg\":\"");
    n = json_escape(line, n, sizeof line - 4, msg);
    line[n++] = '"';
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
