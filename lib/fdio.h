/* lib/fdio.h: small file-descriptor helpers. */
#ifndef WEIR_LIB_FDIO_H
#define WEIR_LIB_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* write(2) all of it, retrying on EINTR and short writes. 0, or -1 (errno). */
int fd_write_all(int fd, const uint8_t *p, size_t n);

#endif
