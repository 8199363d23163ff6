/*
 * test/fuzz/fuzz_chunk.c: libFuzzer target for the chunk-file reader
 * (buffer_chunk_decode: header checks, block scan with CRCs, compaction into
 * a multi-segment batch), then every entry is iterated and formatted as JSON
 * as a dead-letter write would.
 *
 * Input: one mode byte, then the chunk file's bytes. When the mode byte's low
 * bit is set, the harness first repairs the header CRC and every block CRC
 * it can walk to, so the fuzzer explores what lies behind the checksums
 * (a CRC-valid block with hostile contents: a weir bug or a bit flip that
 * CRC32C missed) instead of only the checks in front of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/crc32c.h"
#include "lib/json.h"
#include "buffer/buffer.h"

static uint32_t g32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void p32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void repair(uint8_t *b, size_t n)
{
    if (n < 64)
        return;
    size_t meta = g32(b + 12);
    if (64 + meta > n)
        return;
    uint32_t c = crc32c(0, b, 32);
    c = crc32c(c, b + 40, 20);
    p32(b + 60, crc32c(c, b + 64, meta));
    size_t p = 64 + meta;
    while (n - p >= 16) {
        uint32_t bl = g32(b + p), tl = (uint32_t)b[p + 12] | (uint32_t)b[p + 13] << 8;
        if ((uint64_t)bl + tl > n - p - 16)
            break;
        uint32_t k = crc32c(0, b + p + 16, tl);
        p32(b + p + 8, crc32c(k, b + p + 16 + tl, bl));
        p += 16 + tl + bl;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    if (data[0] & 1)
        repair(b, n);
    char err[256];
    batch *bt = buffer_chunk_decode(b, n, err, sizeof err);
    free(b);
    if (!bt)
        return 0;
    uint32_t segrecs = 0;
    for (uint32_t s = 0; s < bt->nsegs; s++) {
        if (bt->segs[s].off + bt->segs[s].len > bt->len || strnlen(bt->segs[s].tag, bt->segs[s].tag_len + 1) > bt->segs[s].tag_len)
            abort();
        segrecs += bt->segs[s].nrecords;
    }
    if (segrecs != bt->nrecords)
        abort();
    batch_iter it;
    entry e;
    wbuf out = {.max = 64u << 20};
    batch_iter_init(&it, bt);
    while (batch_iter_next(&it, &e) == 1) {
        const uint8_t *p = e.record;
        out.len = 0;
        if (jw_value(&out, &p, e.record + e.record_len) == 0 && p != e.record + e.record_len)
            abort();
    }
    wbuf_free(&out);
    batch_unref(bt);
    return 0;
}
