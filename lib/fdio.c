/* lib/fdio.c: see fdio.h. */
#include "lib/fdio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int fd_pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return 0;
}

int fd_write_all(int fd, const uint8_t *p, size_t n) { return fd_pwrite_all(fd, p, n, -1); }

int file_read_all(const char *path, size_t max, wbuf *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t start = out->len, got;
    char buf[8192];
    int rc = 0;
    while (!rc && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (out->len - start + got > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            rc = -1;
        } else if (wbuf_add(out, buf, got)) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        }
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    if (!rc && wbuf_addc(out, 0)) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
    }
    if (rc) {
        out->len = start;
        return -1;
    }
    out->len--; /* the NUL stays after the bytes */
    return 0;
}
