/*
 * buffer/chunk.h: the chunk file format (version 1, docs/buffer.md "Chunk
 * file format"): a 64-byte header, msgpack metadata, then blocks of one tag
 * each, every one with its CRC32C. Pure functions on bytes: no buffer, no
 * file, no lock; what recovery, flushes, the tests and the fuzzer share.
 * Memory chunks hold the same blocks (without the header).
 */
#ifndef WEIR_BUFFER_CHUNK_H
#define WEIR_BUFFER_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"

#define CHUNK_MAGIC "WEIRCHNK"
#define CHUNK_VERSION 1
#define CHUNK_HDR 64     /* header bytes before the metadata */
#define CHUNK_BLK_HDR 16 /* block header bytes before the tag */

/* One whole, checksum-valid block found by chunk_scan_blocks. */
typedef struct chunk_block {
    const uint8_t *tag;
    uint32_t tag_len, records;
    size_t off, len; /* payload at buf[off .. off+len) */
} chunk_block;

/* CRC32C of header bytes 0..31 and 40..59, then of the metadata (the
 * counters at 32..39 are rewritten at enqueue and not covered). */
uint32_t chunk_header_crc(const uint8_t *h, const uint8_t *meta, size_t meta_len);
/* Write the header and metadata {"tag", "timekey", "output"} to out; tag NULL
 * stores nil, timekey -1 stores 0 in the header. Returns the bytes written,
 * 0 when they do not fit in cap. */
size_t chunk_encode_header(uint8_t *out, size_t cap, const char *tag, size_t tag_len, int64_t timekey,
                           const char *output, uint64_t created_ns);
/* Fill the 16-byte header of a block holding `records` entries of `tag`. */
void chunk_encode_block_header(uint8_t *h, const char *tag, size_t tag_len, const uint8_t *data, size_t len,
                               uint32_t records);
/* NULL with *start set to the offset of the first block when the header is
 * valid (magic, version, metadata length, CRC), else what is wrong. */
const char *chunk_header_check(const uint8_t *buf, size_t got, size_t *start);
/* 1 for a file holding no block yet: no bytes, a prefix of a header, or a
 * whole header with a valid CRC and nothing after it (recovery removes it). */
int chunk_is_empty(const uint8_t *buf, size_t got);
/* The metadata of a header chunk_header_check() accepted: *tag malloc'd (NULL
 * when the chunk has no tag key), *timekey -1 when none, creation time in ns. */
void chunk_read_meta(const uint8_t *buf, size_t start, char **tag, size_t *tag_len, int64_t *timekey,
                     uint64_t *created_ns);
/* Walk the blocks in buf[start..len): returns how many are whole and valid
 * from the start, *good the end of the last of them (where a torn tail is
 * cut), *records their records; fills *infos (realloc'd) when given. */
/* verify: check each block's CRC32C (0: only its framing; for blocks that
 * never left this process's memory or page cache). */
uint32_t chunk_scan_blocks(const uint8_t *buf, size_t start, size_t len, size_t *good, uint32_t *records,
                           chunk_block **infos, int verify);
/* 1 when buf[at..len) starts with an end mark: the zero block header that
 * follows the last block of a chunk written over a recycled file until it
 * is sealed (docs/buffer.md "Recycled files"); what comes after it is an
 * old chunk's. */
int chunk_is_end_mark(const uint8_t *buf, size_t at, size_t len);
/* The valid blocks of buf[start..len) as a batch (payloads compacted in
 * place; consecutive blocks of one tag form one segment). Takes ownership of
 * buf (freed on failure); NULL when no block is readable. */
batch *chunk_blocks_to_batch(uint8_t *buf, size_t start, size_t len, int verify);

#endif
