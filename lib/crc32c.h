/* lib/crc32c.h: CRC32C (Castagnoli), hardware (SSE4.2) when available. */
#ifndef WEIR_CRC32C_H
#define WEIR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, p, n) for a fresh checksum; pass the previous value to continue. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
