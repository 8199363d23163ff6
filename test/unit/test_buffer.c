/*
 * test/unit/test_buffer.c: the pure logic of buffer/ that otherwise only
 * real servers reach: the chunk file format (buffer/chunk.h: header and
 * block bytes as docs/buffer.md specifies them, encode/decode round trip,
 * CRC checks, torn tails, empty chunks), recovery of a buffer path on disk
 * (buffer/recover.c), the append path's files and memory chunks, per-record
 * selection, and the retry scheduler (buffer/flush.c). No flush thread is
 * started: buffers are created from real <buffer> sections, then driven
 * through buffer/buffer_int.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/crc32c.h"
#include "lib/membudget.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "buffer/buffer.h"
#include "buffer/buffer_int.h"
#include "buffer/chunk.h"

/* ---- helpers ------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* n entries in weir's internal format: [time, {"i": first..first+n-1}], time = sec0 + i */
static void put_entries(wbuf *w, uint32_t sec0, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        assert_int_equal(batch_put_entry_head(w, sec0 + (uint32_t)i, 500, NULL, 0), 0);
        assert_int_equal(mpw_map(w, 1), 0);
        assert_int_equal(mpw_str(w, "i", 1), 0);
        assert_int_equal(mpw_int(w, i), 0);
    }
}

/* Append one block (header + tag + payload) to a chunk being built. Returns its offset. */
static size_t add_block(wbuf *cw, const char *tag, uint32_t sec0, int first, int n)
{
    wbuf payload = {0};
    put_entries(&payload, sec0, first, n);
    uint8_t h[CHUNK_BLK_HDR];
    chunk_encode_block_header(h, tag, strlen(tag), payload.data, payload.len, (uint32_t)n);
    size_t off = cw->len;
    assert_int_equal(wbuf_add(cw, h, sizeof h), 0);
    assert_int_equal(wbuf_add(cw, tag, strlen(tag)), 0);
    assert_int_equal(wbuf_add(cw, payload.data, payload.len), 0);
    wbuf_free(&payload);
    return off;
}

static void add_header(wbuf *cw, const char *tag, int64_t timekey, const char *output)
{
    uint8_t h[1024];
    size_t n = chunk_encode_header(h, sizeof h, tag, tag ? strlen(tag) : 0, timekey, output, 1700000000123456789ull);
    assert_true(n > CHUNK_HDR);
    assert_int_equal(wbuf_add(cw, h, n), 0);
}

/* The test chunk: blocks app.a (2 records), app.a (1), app.b (3); offsets of the blocks in *blk. */
static void sample_chunk(wbuf *c, size_t blk[3])
{
    add_header(c, NULL, -1, "out_test");
    blk[0] = add_block(c, "app.a", 100, 0, 2);
    blk[1] = add_block(c, "app.a", 100, 2, 1);
    blk[2] = add_block(c, "app.b", 100, 3, 3);
}

/* The value of "i" in each record of a batch, in order, with the tag of each. */
static int batch_ids(const batch *bt, int64_t *ids, const char **tags, int max)
{
    batch_iter it;
    entry e;
    int n = 0;
    batch_iter_init(&it, bt);
    while (batch_iter_next(&it, &e) == 1 && n < max) {
        /* {"i": int}: fixmap(1), fixstr(1) "i", a positive fixint (the tests stay below 128) */
        assert_int_equal(e.record_len, 4);
        assert_int_equal(e.record[0], 0x81);
        assert_int_equal(e.record[1], 0xa1);
        assert_int_equal(e.record[2], 'i');
        ids[n] = e.record[3];
        if (tags)
            tags[n] = e.tag;
        n++;
    }
    return n;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    wbuf w = {0};
    uint8_t tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        assert_int_equal(wbuf_add(&w, tmp, n), 0);
    fclose(f);
    return wbuf_steal(&w, len);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (unlink(p) != 0)
            rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

static int sink_write(void *arg, const batch *b, out_result *res) { return OUT_OK; }

static const buf_sink test_sink = {.id = "out_test", .kind = "test", .write = sink_write};

/* A buffer from a real <buffer> section (no flush thread started). */
static buffer *make_buffer(const char *section)
{
    conf_errors errs = {0};
    conf_node *root = conf_parse_string(section, "t.conf", &errs);
    assert_non_null(root);
    assert_int_equal(root->nchildren, 1);
    buffer *b = buffer_create(&test_sink, root->children[0], &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("config error: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_non_null(b);
    conf_errors_free(&errs);
    conf_free(root);
    return b;
}

static buffer *make_file_buffer(const char *dir, const char *keys)
{
    char text[4400];
    snprintf(text, sizeof text, "<buffer %s>\n  @type file\n  path %s\n</buffer>\n", keys, dir);
    return make_buffer(text);
}

/* ---- the format: exact bytes ------------------------------------------------ */

static void test_crc32c_is_castagnoli(void **st)
{
    /* the CRC-32C check value (RFC 3720 B.4): the format needs this polynomial, not zlib's */
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    /* continuing a checksum equals one pass over the concatenation */
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

/* A bit at a time: the reference for the striped hardware path. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static void test_crc32c_long_inputs(void **st)
{
    /* long inputs take the three-stripe path (rounds of 12 KiB): every
     * length around the round boundaries, and continued at odd offsets */
    size_t cap = 5 * 12288 + 100;
    uint8_t *buf = malloc(cap);
    uint32_t x = 12345;
    for (size_t i = 0; i < cap; i++)
        buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    static const size_t lens[] = {12287, 12288, 12289, 24575, 24576, 24583, 36864, 5 * 12288, 5 * 12288 + 99};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t want = crc_bitwise(0, buf, lens[i]);
        assert_int_equal(crc32c(0, buf, lens[i]), want);
        for (size_t cut = 1; cut < lens[i]; cut += 7777)
            assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, lens[i] - cut), want);
    }
    free(buf);
}

static void test_header_bytes(void **st)
{
    uint8_t h[256];
    size_t n = chunk_encode_header(h, sizeof h, "app.a", 5, 3600, "out_es", 0x0102030405060708ull);
    static const uint8_t meta[] = {
        0x83,                                                   /* map of 3 */
        0xa3, 't', 'a', 'g', 0xa5, 'a', 'p', 'p', '.', 'a',      /* "tag": "app.a" */
        0xa7, 't', 'i', 'm', 'e', 'k', 'e', 'y', 0xcd, 0x0e, 0x10, /* "timekey": 3600 */
        0xa6, 'o', 'u', 't', 'p', 'u', 't', 0xa6, 'o', 'u', 't', '_', 'e', 's', /* "output": "out_es" */
    };
    assert_int_equal(n, CHUNK_HDR + sizeof meta);
    assert_memory_equal(h, "WEIRCHNK", 8);                /* 0: magic */
    assert_int_equal(h[8], 1);                            /* 8: version 1, u16 LE */
    assert_int_equal(h[9], 0);
    assert_int_equal(h[10] | h[11], 0);                   /* 10: flags */
    assert_int_equal(le32(h + 12), sizeof meta);          /* 12: meta_len */
    assert_int_equal(le64(h + 16), 0x0102030405060708ull); /* 16: created_ns */
    assert_int_equal(h[16], 0x08);                        /* little-endian */
    assert_int_equal(le64(h + 24), 3600);                 /* 24: timekey */
    assert_int_equal(le32(h + 32), 0);                    /* 32: records, 0 while staged */
    assert_int_equal(le32(h + 36), 0);                    /* 36: blocks */
    for (int i = 40; i < 60; i++)                         /* 40: reserved */
        assert_int_equal(h[i], 0);
    /* 60: CRC32C of bytes 0..31, 40..59, then the metadata */
    uint32_t crc = crc32c(0, h, 32);
    crc = crc32c(crc, h + 40, 20);
    crc = crc32c(crc, meta, sizeof meta);
    assert_int_equal(le32(h + 60), crc);
    assert_memory_equal(h + CHUNK_HDR, meta, sizeof meta);

    /* no tag key: nil; no time key: -1 in the metadata, 0 in the header */
    n = chunk_encode_header(h, sizeof h, NULL, 0, -1, "o", 1);
    static const uint8_t meta2[] = {0x83, 0xa3, 't', 'a', 'g', 0xc0, 0xa7, 't', 'i', 'm', 'e', 'k', 'e', 'y', 0xff,
                                    0xa6, 'o', 'u', 't', 'p', 'u', 't', 0xa1, 'o'};
    assert_int_equal(n, CHUNK_HDR + sizeof meta2);
    assert_memory_equal(h + CHUNK_HDR, meta2, sizeof meta2);
    assert_int_equal(le64(h + 24), 0);

    /* does not fit: nothing */
    assert_int_equal(chunk_encode_header(h, CHUNK_HDR + sizeof meta2 - 1, NULL, 0, -1, "o", 1), 0);
}

static void test_block_header_bytes(void **st)
{
    const uint8_t payload[] = {1, 2, 3, 4, 5, 6, 7};
    uint8_t h[CHUNK_BLK_HDR];
    memset(h, 0xee, sizeof h);
    chunk_encode_block_header(h, "app.a", 5, payload, sizeof payload, 3);
    assert_int_equal(le32(h), sizeof payload); /* 0: len */
    assert_int_equal(le32(h + 4), 3);          /* 4: records */
    uint32_t crc = crc32c(crc32c(0, "app.a", 5), payload, sizeof payload);
    assert_int_equal(le32(h + 8), crc); /* 8: CRC32C of the tag, then the payload */
    assert_int_equal(h[12], 5);         /* 12: tag_len, u16 LE */
    assert_int_equal(h[13], 0);
    assert_int_equal(h[14], 0); /* 14: reserved */
    assert_int_equal(h[15], 0);
    /* a long tag: both bytes of tag_len */
    char tag[300];
    memset(tag, 't', sizeof tag);
    chunk_encode_block_header(h, tag, sizeof tag, payload, 0, 1);
    assert_int_equal(h[12] | h[13] << 8, 300);
}

/* ---- the format: round trip, checks, repair ------------------------------ */

static void test_roundtrip(void **st)
{
    wbuf c = {0};
    size_t blk[3];
    sample_chunk(&c, blk);

    size_t start = 0;
    assert_null(chunk_header_check(c.data, c.len, &start));
    assert_int_equal(start, blk[0]);
    char *tag = (char *)1;
    size_t tag_len = 9;
    int64_t timekey = 0;
    uint64_t created = 0;
    chunk_read_meta(c.data, start, &tag, &tag_len, &timekey, &created);
    assert_null(tag);
    assert_int_equal(tag_len, 0);
    assert_int_equal(timekey, -1);
    assert_int_equal(created, 1700000000123456789ull);

    size_t good;
    uint32_t recs;
    chunk_block *bi = NULL;
    assert_int_equal(chunk_scan_blocks(c.data, start, c.len, &good, &recs, &bi, 1), 3);
    assert_int_equal(good, c.len);
    assert_int_equal(recs, 6);
    assert_int_equal(bi[0].records, 2);
    assert_int_equal(bi[2].records, 3);
    assert_int_equal(bi[2].tag_len, 5);
    assert_memory_equal(bi[2].tag, "app.b", 5);
    assert_int_equal(bi[1].off, blk[1] + CHUNK_BLK_HDR + 5);
    assert_int_equal(bi[1].len, blk[2] - bi[1].off);
    free(bi);

    char err[128] = "";
    batch *bt = buffer_chunk_decode(c.data, c.len, err, sizeof err);
    assert_non_null(bt);
    assert_int_equal(bt->nrecords, 6);
    assert_int_equal(bt->nsegs, 2); /* consecutive blocks of one tag: one segment */
    assert_string_equal(bt->segs[0].tag, "app.a");
    assert_int_equal(bt->segs[0].nrecords, 3);
    assert_string_equal(bt->segs[1].tag, "app.b");
    assert_int_equal(bt->segs[1].nrecords, 3);
    int64_t ids[8];
    const char *tags[8];
    assert_int_equal(batch_ids(bt, ids, tags, 8), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ids[i], i);
        assert_string_equal(tags[i], i < 3 ? "app.a" : "app.b");
    }
    batch_iter it;
    entry e;
    batch_iter_init(&it, bt);
    assert_int_equal(batch_iter_next(&it, &e), 1);
    assert_int_equal(e.sec, 100);
    assert_int_equal(e.nsec, 500);
    batch_unref(bt);

    /* a chunk with tag and time keys keeps them in its metadata */
    wbuf k = {0};
    add_header(&k, "app.b", 7200, "out_test");
    add_block(&k, "app.b", 7200, 0, 1);
    assert_null(chunk_header_check(k.data, k.len, &start));
    chunk_read_meta(k.data, start, &tag, &tag_len, &timekey, &created);
    assert_string_equal(tag, "app.b");
    assert_int_equal(tag_len, 5);
    assert_int_equal(timekey, 7200);
    assert_int_equal(le64(k.data + 24), 7200);
    free(tag);
    wbuf_free(&k);
    wbuf_free(&c);
}

static void test_header_checks(void **st)
{
    wbuf c = {0};
    size_t blk[3];
    sample_chunk(&c, blk);
    size_t start;
    char err[128];

    c.data[45] ^= 1; /* reserved byte: covered by the CRC */
    assert_string_equal(chunk_header_check(c.data, c.len, &start), "header checksum mismatch");
    assert_null(buffer_chunk_decode(c.data, c.len, err, sizeof err));
    assert_string_equal(err, "header checksum mismatch");
    c.data[45] ^= 1;
    c.data[CHUNK_HDR + 3] ^= 1; /* metadata */
    assert_string_equal(chunk_header_check(c.data, c.len, &start), "header checksum mismatch");
    c.data[CHUNK_HDR + 3] ^= 1;
    c.data[60] ^= 0x80; /* the CRC itself */
    assert_string_equal(chunk_header_check(c.data, c.len, &start), "header checksum mismatch");
    c.data[60] ^= 0x80;
    /* the counters at 32..39 are rewritten at enqueue: not covered */
    c.data[32] = 6;
    c.data[36] = 3;
    assert_null(chunk_header_check(c.data, c.len, &start));

    c.data[0] = 'X';
    assert_string_equal(chunk_header_check(c.data, c.len, &start), "bad magic");
    c.data[0] = 'W';
    c.data[8] = 2;
    assert_string_equal(chunk_header_check(c.data, c.len, &start), "unknown version");
    c.data[8] = 1;
    assert_string_equal(chunk_header_check(c.data, CHUNK_HDR - 1, &start), "bad magic"); /* short */
    assert_string_equal(chunk_header_check(c.data, blk[0] - 1, &start), "metadata runs past the end");
    assert_null(chunk_header_check(c.data, c.len, &start));
    wbuf_free(&c);
}

static void test_bad_block_crc(void **st)
{
    wbuf c = {0};
    size_t blk[3], good;
    uint32_t recs;
    sample_chunk(&c, blk);
    char err[128];

    /* a flipped bit in the second block's payload: the scan stops after block 1 */
    c.data[blk[2] - 1] ^= 0x01;
    assert_int_equal(chunk_scan_blocks(c.data, blk[0], c.len, &good, &recs, NULL, 1), 1);
    assert_int_equal(good, blk[1]);
    assert_int_equal(recs, 2);
    batch *bt = buffer_chunk_decode(c.data, c.len, err, sizeof err);
    assert_non_null(bt);
    assert_int_equal(bt->nrecords, 2);
    batch_unref(bt);
    c.data[blk[2] - 1] ^= 0x01;

    /* in the tag (covered by the CRC too) */
    c.data[blk[1] + CHUNK_BLK_HDR] ^= 0x20;
    assert_int_equal(chunk_scan_blocks(c.data, blk[0], c.len, &good, &recs, NULL, 1), 1);
    c.data[blk[1] + CHUNK_BLK_HDR] ^= 0x20;

    /* in the stored CRC of the first block: nothing readable */
    c.data[blk[0] + 8] ^= 0x01;
    assert_int_equal(chunk_scan_blocks(c.data, blk[0], c.len, &good, &recs, NULL, 1), 0);
    assert_int_equal(good, blk[0]);
    assert_int_equal(recs, 0);
    assert_null(buffer_chunk_decode(c.data, c.len, err, sizeof err));
    assert_string_equal(err, "no readable block");
    c.data[blk[0] + 8] ^= 0x01;

    /* a block claiming 0 records is not valid either */
    uint8_t saved[4];
    memcpy(saved, c.data + blk[2] + 4, 4);
    memset(c.data + blk[2] + 4, 0, 4);
    assert_int_equal(chunk_scan_blocks(c.data, blk[0], c.len, &good, &recs, NULL, 1), 2);
    memcpy(c.data + blk[2] + 4, saved, 4);

    assert_int_equal(chunk_scan_blocks(c.data, blk[0], c.len, &good, &recs, NULL, 1), 3);
    wbuf_free(&c);
}

static void test_torn_tail(void **st)
{
    wbuf c = {0};
    size_t blk[3];
    sample_chunk(&c, blk);
    size_t last = c.len - blk[2];
    /* the last block cut anywhere: in its header, its tag, its payload, one byte short */
    const size_t cuts[] = {1, 4, 8, 15, CHUNK_BLK_HDR, CHUNK_BLK_HDR + 2, CHUNK_BLK_HDR + 5, CHUNK_BLK_HDR + 6,
                           last / 2 + 3, last - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t len = blk[2] + cuts[i], good = 0;
        uint32_t recs = 0;
        assert_true(len < c.len);
        assert_int_equal(chunk_scan_blocks(c.data, blk[0], len, &good, &recs, NULL, 1), 2);
        assert_int_equal(good, blk[2]); /* repaired to the end of the last good block */
        assert_int_equal(recs, 3);
        char err[128];
        batch *bt = buffer_chunk_decode(c.data, len, err, sizeof err);
        assert_non_null(bt);
        assert_int_equal(bt->nrecords, 3);
        assert_int_equal(bt->nsegs, 1);
        batch_unref(bt);
    }
    /* cut exactly at a block boundary: nothing torn */
    size_t good;
    uint32_t recs;
    assert_int_equal(chunk_scan_blocks(c.data, blk[0], blk[2], &good, &recs, NULL, 1), 2);
    assert_int_equal(good, blk[2]);
    wbuf_free(&c);
}

static void test_empty_chunk(void **st)
{
    wbuf c = {0};
    add_header(&c, "app.a", -1, "out_test");
    char err[128];
    assert_true(chunk_is_empty(c.data, 0));          /* no bytes */
    assert_true(chunk_is_empty(c.data, 5));          /* a prefix of the magic */
    assert_true(chunk_is_empty(c.data, CHUNK_HDR - 1)); /* a prefix of the header */
    assert_true(chunk_is_empty(c.data, c.len));      /* a whole header, no block */
    assert_false(chunk_is_empty(c.data, c.len - 1)); /* metadata cut: not an empty chunk's size */
    assert_null(buffer_chunk_decode(c.data, c.len, err, sizeof err));
    assert_string_equal(err, "no readable block");
    c.data[50] ^= 1; /* bad header CRC: corrupt, not empty */
    assert_false(chunk_is_empty(c.data, c.len));
    c.data[50] ^= 1;
    c.data[2] = 'x'; /* not a chunk at all */
    assert_false(chunk_is_empty(c.data, 5));
    c.data[2] = 'I';
    add_block(&c, "app.a", 1, 0, 1);
    assert_false(chunk_is_empty(c.data, c.len));
    wbuf_free(&c);
}

/* ---- recovery and the append path (files) -------------------------------- */

static void test_recover_dir(void **st)
{
    char dir[] = "/tmp/weir-buffer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p1[4200], p2[4200], p3[4200], p4[4200], p5[4200], moved[4200];
    snprintf(p1, sizeof p1, "%s/0000000000000010.chunk", dir);
    snprintf(p2, sizeof p2, "%s/0000000000000020.chunk", dir);
    snprintf(p3, sizeof p3, "%s/0000000000000030.chunk", dir);
    snprintf(p4, sizeof p4, "%s/0000000000000040.chunk", dir);
    snprintf(p5, sizeof p5, "%s/0000000000000050.chunk", dir);
    snprintf(moved, sizeof moved, "%s/corrupt/0000000000000020.chunk", dir);

    /* 10: two whole blocks and a torn third one */
    wbuf c = {0};
    size_t blk[3];
    sample_chunk(&c, blk);
    assert_int_equal(write_file(p1, c.data, c.len - 7), 0);
    /* 20: its header CRC is wrong */
    c.data[50] ^= 1;
    assert_int_equal(write_file(p2, c.data, c.len), 0);
    /* 30: created, never appended to */
    wbuf e = {0};
    add_header(&e, NULL, -1, "out_test");
    assert_int_equal(write_file(p3, e.data, e.len), 0);
    /* 40: intact, with tag and time keys */
    wbuf k = {0};
    add_header(&k, "app.k", 7200, "out_test");
    add_block(&k, "app.k", 7200, 10, 4);
    assert_int_equal(write_file(p4, k.data, k.len), 0);
    /* 50: a valid header, then only a torn block: nothing to deliver */
    assert_int_equal(write_file(p5, k.data, k.len - 1), 0);

    buffer *b = make_file_buffer(dir, "");
    assert_int_equal(buf_recover(b), 0);

    assert_int_equal(b->nqueued, 2);
    assert_int_equal(b->nstaged, 0);
    chunk *ch = b->qhead;
    assert_non_null(ch);
    assert_int_equal(ch->id, 0x10);
    assert_int_equal(ch->state, C_QUEUED);
    assert_int_equal(ch->blocks, 2);
    assert_int_equal(ch->records, 3);
    assert_int_equal(ch->file_size, blk[2]);
    assert_int_equal(file_size(p1), (off_t)blk[2]); /* the torn tail was cut on disk */
    assert_null(ch->tag);
    assert_int_equal(ch->timekey, -1);
    assert_int_equal(ch->bytes, blk[2] - blk[0]);

    char err[256] = "";
    batch *bt = chunk_load(b, ch, err, sizeof err);
    assert_non_null(bt);
    assert_int_equal(bt->nrecords, 3);
    int64_t ids[8];
    assert_int_equal(batch_ids(bt, ids, NULL, 8), 3);
    assert_int_equal(ids[2], 2);
    batch_unref(bt);

    chunk *ch2 = ch->next;
    assert_non_null(ch2);
    assert_ptr_equal(b->qtail, ch2);
    assert_int_equal(ch2->id, 0x40);
    assert_string_equal(ch2->tag, "app.k");
    assert_int_equal(ch2->timekey, 7200);
    assert_int_equal(ch2->records, 4);
    assert_int_equal(file_size(p4), (off_t)k.len);

    assert_int_equal(file_size(p2), -1); /* moved aside */
    assert_true(file_size(moved) > 0);
    assert_int_equal(file_size(p3), -1); /* empty: removed */
    assert_int_equal(file_size(p5), -1); /* no whole block: removed */
    assert_true(b->next_id >= 0x40);
    assert_int_equal(b->total_bytes, ch->bytes + ch2->bytes);
    assert_int_equal(atomic_load(&b->recovered_chunks), 2);
    assert_int_equal(atomic_load(&b->recovered_records), 7);
    assert_int_equal(atomic_load(&b->torn_tails), 2);
    assert_int_equal(atomic_load(&b->corrupt_chunks), 1);

    buffer_destroy(b, 0); /* file buffer: the chunks stay for the next start */
    assert_int_equal(file_size(p1), (off_t)blk[2]);
    wbuf_free(&c);
    wbuf_free(&e);
    wbuf_free(&k);
    rm_tree(dir);
}

static batch *sample_batch(const char *tag, uint32_t sec0, int first, int n)
{
    wbuf w = {0};
    put_entries(&w, sec0, first, n);
    size_t len;
    uint8_t *d = wbuf_steal(&w, &len);
    batch *bt = batch_new(tag, strlen(tag), d, len, (uint32_t)n);
    assert_non_null(bt);
    return bt;
}

static void test_append_writes_the_format(void **st)
{
    char dir[] = "/tmp/weir-buffer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    buffer *b = make_file_buffer(dir, "tag"); /* not started: no flush thread takes the chunks */

    batch *x = sample_batch("app.x", 50, 0, 2), *y = sample_batch("app.y", 50, 5, 1);
    assert_int_equal(buffer_append(b, x), 0);
    assert_int_equal(buffer_append(b, y), 0);
    assert_int_equal(buffer_append(b, x), 0);
    assert_int_equal(b->nstaged, 2); /* tag is a chunk key: one chunk per tag */
    chunk *cx = b->staged->next, *cy = b->staged;
    assert_string_equal(cx->tag, "app.x");
    assert_string_equal(cy->tag, "app.y");
    assert_int_equal(cx->records, 4);
    assert_int_equal(cx->blocks, 2);

    size_t len;
    uint8_t *data = read_file(cx->path, &len);
    assert_int_equal(len, cx->file_size);
    size_t start;
    assert_null(chunk_header_check(data, len, &start));
    assert_int_equal(le32(data + 32), 0); /* staged: counters not written yet */
    char *tag;
    size_t tag_len;
    int64_t timekey;
    uint64_t created;
    chunk_read_meta(data, start, &tag, &tag_len, &timekey, &created);
    assert_string_equal(tag, "app.x");
    assert_int_equal(timekey, -1);
    assert_true(created > 1500000000ull * 1000000000ull);
    assert_non_null(memmem(data + CHUNK_HDR, start - CHUNK_HDR, "\xa6output\xa8out_test", 16));
    free(tag);
    assert_int_equal(len - start, cx->bytes);
    char err[128];
    batch *bt = buffer_chunk_decode(data, len, err, sizeof err);
    assert_non_null(bt);
    assert_int_equal(bt->nrecords, 4);
    assert_int_equal(bt->nsegs, 1);
    batch_unref(bt);
    free(data);

    /* enqueue seals the chunk: the header counters are written, the fd closed */
    pthread_mutex_lock(&b->mu);
    buf_enqueue(b, cx);
    pthread_mutex_unlock(&b->mu);
    assert_int_equal(cx->fd, -1);
    assert_int_equal(b->nqueued, 1);
    data = read_file(cx->path, &len);
    assert_int_equal(le32(data + 32), 4);
    assert_int_equal(le32(data + 36), 2);
    assert_null(chunk_header_check(data, len, &start));
    free(data);

    batch_unref(x);
    batch_unref(y);
    buffer_destroy(b, 0);
    rm_tree(dir);
}

/* chunk_load's read buffers (chunk.c "Read buffers"): the second load of a
 * chunk reads into the buffer the first batch gave back; a batch that
 * outlives its buffer (buffer_destroy) still reads its records, and its
 * unref frees the pool (ASan: no use after free, no leak). */
static void test_read_buffers_are_reused(void **st)
{
    char dir[] = "/tmp/weir-buffer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    buffer *b = make_file_buffer(dir, ""); /* not started: the pool is set here as buffer_start would */
    b->rpool = rbuf_pool_new(1, 1 << 20);
    assert_non_null(b->rpool);
    batch *x = sample_batch("app.x", 50, 0, 3);
    assert_int_equal(buffer_append(b, x), 0);
    chunk *ch = b->staged;
    pthread_mutex_lock(&b->mu);
    buf_enqueue(b, ch);
    pthread_mutex_unlock(&b->mu);

    char err[128] = "";
    batch *b1 = chunk_load(b, ch, err, sizeof err);
    assert_non_null(b1);
    assert_non_null(b1->release);
    assert_true(b1->data_cap >= ch->file_size + 1);
    const uint8_t *first = b1->data;
    batch_unref(b1); /* back to the pool */
    batch *b2 = chunk_load(b, ch, err, sizeof err);
    assert_non_null(b2);
    assert_ptr_equal(b2->data, first);
    /* while b2 holds the kept buffer, a third load gets a buffer of its own */
    batch *b3 = chunk_load(b, ch, err, sizeof err);
    assert_non_null(b3);
    assert_ptr_not_equal(b3->data, first);
    batch_unref(b3);

    buffer_destroy(b, 0); /* b2 still holds a buffer of the pool */
    int64_t ids[8];
    assert_int_equal(batch_ids(b2, ids, NULL, 8), 3);
    assert_int_equal(ids[2], 2);
    batch_unref(b2);
    batch_unref(x);
    rm_tree(dir);
}

static void test_memory_chunk(void **st)
{
    buffer *b = make_buffer("<buffer>\n  @type memory\n</buffer>\n");
    batch *x = sample_batch("app.x", 50, 0, 2), *y = sample_batch("app.y", 50, 2, 3);
    assert_int_equal(buffer_append(b, x), 0);
    assert_int_equal(buffer_append(b, y), 0);
    assert_int_equal(b->nstaged, 1); /* no chunk key: one chunk, many tags */
    chunk *ch = b->staged;
    assert_int_equal(ch->records, 5);
    assert_int_equal(ch->mem.len, ch->bytes); /* the same blocks as a file, without the header */
    char err[128];
    batch *bt = chunk_load(b, ch, err, sizeof err);
    assert_non_null(bt);
    assert_int_equal(bt->nsegs, 2);
    int64_t ids[8];
    const char *tags[8];
    assert_int_equal(batch_ids(bt, ids, tags, 8), 5);
    assert_int_equal(ids[4], 4);
    assert_string_equal(tags[4], "app.y");
    batch_unref(bt);
    batch_unref(x);
    batch_unref(y);
    buffer_destroy(b, 0);
}

/* ---- the memory budget ------------------------------------------------------- */

struct appender {
    buffer *b;
    batch *bt;
    atomic_int rc, done;
};

static void *append_main(void *arg)
{
    struct appender *a = arg;
    atomic_store(&a->rc, buffer_append(a->b, a->bt));
    atomic_store(&a->done, 1);
    return NULL;
}

/* A memory buffer's chunks count against the memory budget until freed. At
 * the budget an empty buffer still takes a batch; else overflow_action:
 * throw_exception refuses, drop_oldest_chunk drops a queued chunk, block
 * waits (reason buffer_full) until memory frees. */
static void test_memory_budget(void **st)
{
    uint64_t base = mb_in_use();
    mb_set_limit(1); /* everything is over it */
    buffer *b = make_buffer("<buffer>\n  @type memory\n</buffer>\n");
    batch *x = sample_batch("app.x", 50, 0, 2), *y = sample_batch("app.y", 50, 2, 3);
    assert_int_equal(buffer_append(b, x), 0); /* empty: forced */
    chunk *ch = b->staged;
    assert_true(ch->mb >= ch->bytes && ch->mb > 0);
    assert_int_equal(mb_in_use(), base + ch->mb);
    assert_int_equal(buffer_append(b, y), -1); /* throw_exception */
    assert_int_equal(atomic_load(&b->rejected_batches), 1);
    assert_int_equal(ch->records, 2);
    buffer_destroy(b, 0);
    assert_int_equal(mb_in_use(), base);

    b = make_buffer("<buffer>\n  @type memory\n  flush_mode immediate\n  overflow_action drop_oldest_chunk\n"
                    "</buffer>\n");
    assert_int_equal(buffer_append(b, x), 0);
    assert_int_equal(b->nqueued, 1);
    assert_int_equal(buffer_append(b, y), 0); /* the queued chunk of x dropped, then empty */
    assert_int_equal(atomic_load(&b->dropped_chunks), 1);
    assert_int_equal(atomic_load(&b->dropped_records), 2);
    assert_int_equal(b->nqueued, 1);
    assert_int_equal(b->qhead->records, 3);
    assert_int_equal(mb_in_use(), base + b->qhead->mb);
    buffer_destroy(b, 0);
    assert_int_equal(mb_in_use(), base);

    b = make_buffer("<buffer>\n  @type memory\n  overflow_action block\n</buffer>\n");
    assert_int_equal(buffer_append(b, x), 0);
    uint64_t waits = mb_waits(MB_WAIT_BUFFER_FULL);
    struct appender a = {.b = b, .bt = y};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, append_main, &a), 0);
    for (int i = 0; i < 200 && mb_waits(MB_WAIT_BUFFER_FULL) == waits; i++)
        usleep(5000);
    assert_int_equal(mb_waits(MB_WAIT_BUFFER_FULL), waits + 1);
    usleep(50000);
    assert_int_equal(atomic_load(&a.done), 0); /* still waiting */
    mb_set_limit(0);                           /* memory frees */
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&a.rc), 0);
    assert_true(mb_wait_seconds(MB_WAIT_BUFFER_FULL) > 0.04);
    assert_int_equal(b->nqueued, 1); /* x's chunk was enqueued while waiting: only flushing frees it */
    assert_int_equal(b->staged->records, 3);
    buffer_destroy(b, 0);
    assert_int_equal(mb_in_use(), base);
    batch_unref(x);
    batch_unref(y);
    (void)st;
}

/* ---- per-record outcomes ---------------------------------------------------- */

static void test_select_records(void **st)
{
    batch *x = sample_batch("app.x", 0, 0, 6);
    out_result res = {.n = x->nrecords};
    assert_int_equal(out_result_mark(&res, 1, OUT_RETRY, NULL), 0);
    assert_int_equal(out_result_mark(&res, 2, OUT_RETRY, NULL), 0);
    assert_int_equal(out_result_mark(&res, 3, OUT_ERROR, "mapping"), 0);
    assert_int_equal(out_result_mark(&res, 5, OUT_RETRY, NULL), 0);
    batch *r = buf_select_records(x, &res, OUT_RETRY);
    assert_non_null(r);
    assert_int_equal(r->nrecords, 3);
    assert_int_equal(r->nsegs, 2); /* runs 1-2 and 5 */
    int64_t ids[8];
    assert_int_equal(batch_ids(r, ids, NULL, 8), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 5);
    batch *e = buf_select_records(x, &res, OUT_ERROR);
    assert_int_equal(e->nrecords, 1);
    assert_int_equal(batch_ids(e, ids, NULL, 8), 1);
    assert_int_equal(ids[0], 3);
    batch_unref(r);
    batch_unref(e);
    out_result_free(&res);
    out_result none = {.n = x->nrecords};
    assert_int_equal(out_result_mark(&none, 0, OUT_OK, NULL), 0);
    assert_null(buf_select_records(x, &none, OUT_RETRY));
    out_result_free(&none);
    batch_unref(x);
}

/* ---- the retry scheduler ---------------------------------------------------- */

static void test_retry_exponential(void **st)
{
    buf_conf c = {.retry_type = RETRY_EXPONENTIAL, .retry_wait = 1, .retry_exponential_backoff_base = 2};
    const double want[] = {1, 1, 2, 4, 8, 16, 32, 64};
    for (int r = 0; r < 8; r++)
        assert_true(buf_retry_interval(&c, r) == want[r]);
    c.retry_max_interval = 10;
    assert_true(buf_retry_interval(&c, 4) == 8);
    assert_true(buf_retry_interval(&c, 5) == 10);
    assert_true(buf_retry_interval(&c, 60) == 10);
    c.retry_type = RETRY_PERIODIC;
    c.retry_wait = 3;
    c.retry_max_interval = 0;
    for (int r = 1; r < 6; r++)
        assert_true(buf_retry_interval(&c, r) == 3);
    c.retry_max_interval = 2;
    assert_true(buf_retry_interval(&c, 1) == 2);
}

static void test_retry_randomize(void **st)
{
    buf_conf c = {.retry_type = RETRY_EXPONENTIAL, .retry_wait = 1, .retry_exponential_backoff_base = 2,
                  .retry_randomize = 1};
    srand(7);
    double lo = 1e9, hi = 0;
    for (int i = 0; i < 2000; i++) {
        double w = buf_retry_interval(&c, 4); /* 8 +- 12.5 % */
        assert_true(w >= 7.0 && w <= 9.0);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo < 7.2 && hi > 8.8); /* it does spread over the range */
}

static void test_retry_from_config(void **st)
{
    /* the <buffer> parameters as the engine binds them */
    buffer *b = make_buffer("<buffer>\n  retry_wait 500ms\n  retry_exponential_backoff_base 3\n"
                            "  retry_max_interval 10s\n  retry_randomize false\n</buffer>\n");
    assert_true(buf_retry_interval(&b->c, 1) == 0.5);
    assert_true(buf_retry_interval(&b->c, 2) == 1.5);
    assert_true(buf_retry_interval(&b->c, 3) == 4.5);
    assert_true(buf_retry_interval(&b->c, 4) == 10);
    /* defaults: retry_timeout 72h, no retry_max_times, retry_forever false */
    assert_true(b->c.retry_timeout == 72 * 3600);
    assert_int_equal(b->c.retry_max_times, -1);
    assert_false(buf_retries_exhausted(&b->c, 1000, 0, 72 * 3600 - 1));
    assert_true(buf_retries_exhausted(&b->c, 1, 0, 72 * 3600));
    buffer_destroy(b, 0);
    /* a base below 1 would shrink the waits: it is taken as 1 */
    b = make_buffer("<buffer>\n  retry_wait 2\n  retry_exponential_backoff_base 0.5\n"
                    "  retry_randomize false\n</buffer>\n");
    assert_true(buf_retry_interval(&b->c, 5) == 2);
    buffer_destroy(b, 0);
}

static void test_retry_exhaustion(void **st)
{
    buf_conf c = {.retry_timeout = 72 * 3600, .retry_max_times = 3};
    /* retry_max_times 3: three retries are made, the 4th failure gives up */
    assert_false(buf_retries_exhausted(&c, 1, 100, 100));
    assert_false(buf_retries_exhausted(&c, 3, 100, 100));
    assert_true(buf_retries_exhausted(&c, 4, 100, 100));
    c.retry_max_times = 0; /* no retry at all */
    assert_true(buf_retries_exhausted(&c, 1, 100, 100));
    /* retry_timeout counts from the first failure */
    c.retry_max_times = -1;
    c.retry_timeout = 10;
    assert_false(buf_retries_exhausted(&c, 50, 100, 109.9));
    assert_true(buf_retries_exhausted(&c, 2, 100, 110));
    assert_true(buf_retries_exhausted(&c, 2, 100, 500));
    /* retry_forever wins over both */
    c.retry_forever = 1;
    c.retry_max_times = 1;
    assert_false(buf_retries_exhausted(&c, 99, 100, 1e9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_is_castagnoli),
        cmocka_unit_test(test_crc32c_long_inputs),
        cmocka_unit_test(test_header_bytes),
        cmocka_unit_test(test_block_header_bytes),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_bad_block_crc),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_empty_chunk),
        cmocka_unit_test(test_recover_dir),
        cmocka_unit_test(test_append_writes_the_format),
        cmocka_unit_test(test_memory_chunk),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_select_records),
        cmocka_unit_test(test_retry_exponential),
        cmocka_unit_test(test_retry_randomize),
        cmocka_unit_test(test_retry_from_config),
        cmocka_unit_test(test_retry_exhaustion),
        cmocka_unit_test(test_read_buffers_are_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
