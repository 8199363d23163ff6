/* lib/fdio.h: small file-descriptor helpers. */
#ifndef WEIR_LIB_FDIO_H
#define WEIR_LIB_FDIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/wbuf.h"

/* write(2) all of it, retrying on EINTR and short writes. 0, or -1 (errno). */
int fd_write_all(int fd, const uint8_t *p, size_t n);
/* The same at offset `off` (pwrite(2); the file position does not move); off < 0: write(2). */
int fd_pwrite_all(int fd, const uint8_t *p, size_t n, off_t off);

/* Read the whole file at path into out (appended; a NUL follows the bytes, not counted in len). 0, or -1
 * with err "PATH: reason" (cannot open, read error, larger than max bytes, out of memory). */
int file_read_all(const char *path, size_t max, wbuf *out, char *err, size_t errlen);

#endif
