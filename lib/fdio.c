/* lib/fdio.c: see fdio.h. */
#include "lib/fdio.h"

#include <errno.h>
#include <unistd.h>

int fd_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
