/* Unit tests: the streaming decoder (forward-protocol/fwd_stream.c) against
 * fwd_decode on the whole request, fed in pieces of every size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "lib/compress.h"
#include "lib/mp.h"
#include "lib/wbuf.h"
#include "forward-protocol/fwd_decode.h"
#include "forward-protocol/fwd_stream.h"

static const fwd_peer peer = {"10.0.0.5", "node-a"};

static fwd_decode_opts opts(void)
{
    fwd_decode_opts o = {.skip_invalid_event = 1, .max_decompressed = 64 << 20, .max_depth = 32, .now_sec = 1700000000};
    return o;
}

/* n entries [EventTime, {"msg": "...", "n": i}], with an integer-time one every 7th */
static void put_entries(wbuf *b, int n)
{
    for (int i = 0; i < n; i++) {
        mpw_array(b, 2);
        if (i % 7 == 3)
            mpw_uint(b, 1700000000u + (unsigned)i);
        else
            mpw_eventtime(b, 1700000000u + (unsigned)i, 5);
        mpw_map(b, 2);
        mpw_str(b, "msg", 3);
        char s[64];
        int l = snprintf(s, sizeof s, "record number %d with some text", i);
        mpw_str(b, s, (size_t)l);
        mpw_str(b, "n", 1);
        mpw_int(b, i);
    }
}

static void put_bin(wbuf *b, const uint8_t *p, size_t n)
{
    uint8_t h[5] = {0xc6, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    wbuf_add(b, h, 5);
    wbuf_add(b, p, n);
}

static void put_opts(wbuf *b, const char *compressed)
{
    mpw_map(b, compressed ? 2 : 1);
    mpw_str(b, "chunk", 5);
    mpw_str(b, "abc", 3);
    if (compressed) {
        mpw_str(b, "compressed", 10);
        mpw_str(b, compressed, strlen(compressed));
    }
}

/* Stream `req` in pieces of `step` bytes (batch `batch`); returns the verdict,
 * the joined batches in *joined, the records handed on in *taken. */
static int stream(const fwd_decode_opts *o, const uint8_t *req, size_t len, size_t step, size_t batch_bytes, wbuf *joined,
                  uint32_t *taken, fwd_result *res)
{
    fwd_stream *s = fwd_stream_new(o, &peer, batch_bytes);
    assert_non_null(s);
    wbuf in = {0}, out = {0};
    size_t fed = 0;
    int rc = FWD_STREAM_MORE;
    *taken = 0;
    while (rc == FWD_STREAM_MORE || rc == FWD_STREAM_FULL) {
        if (rc == FWD_STREAM_MORE) {
            if (fed == len)
                break;
            size_t k = step < len - fed ? step : len - fed;
            wbuf_add(&in, req + fed, k);
            fed += k;
        }
        size_t used = 0;
        rc = fwd_stream_feed(s, in.data, in.len, &used, &out);
        assert_true(used <= in.len);
        memmove(in.data, in.data + used, in.len - used);
        in.len -= used;
        if (rc == FWD_STREAM_FULL || rc == FWD_OK) {
            if (rc == FWD_STREAM_FULL)
                assert_true(out.len >= batch_bytes);
            *taken += fwd_stream_take(s);
            wbuf_add(joined, out.data, out.len);
            out.len = 0;
        }
    }
    if (rc == FWD_OK)
        assert_int_equal(in.len, 0);
    *res = *fwd_stream_result(s);
    res->tag = res->chunk = NULL; /* owned by the stream */
    fwd_stream_free(s);
    wbuf_free(&in);
    wbuf_free(&out);
    return rc;
}

/* The request decoded whole and streamed at several piece sizes agree. */
static void same_as_whole(const fwd_decode_opts *o, const uint8_t *req, size_t len, const char *mode)
{
    fwd_scratch sc = {0};
    fwd_result r;
    wbuf whole = {0};
    assert_int_equal(fwd_decode(o, &peer, &sc, req, len, &r, &whole), FWD_OK);
    assert_string_equal(r.mode, mode);
    static const size_t steps[] = {1, 2, 3, 7, 64, 1000, 65536, 1 << 22};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        wbuf joined = {0};
        uint32_t taken;
        fwd_result sr;
        assert_int_equal(stream(o, req, len, steps[i], 512, &joined, &taken, &sr), FWD_OK);
        assert_int_equal(joined.len, whole.len);
        assert_memory_equal(joined.data, whole.data, whole.len);
        assert_int_equal(sr.records, r.records);
        assert_int_equal(taken, r.records);
        assert_int_equal(sr.chunk_len, r.chunk_len);
        assert_string_equal(sr.mode, mode);
        wbuf_free(&joined);
    }
    wbuf_free(&whole);
    fwd_scratch_free(&sc);
}

static void test_forward_mode(void **st)
{
    fwd_decode_opts o = opts();
    wbuf req = {0};
    mpw_array(&req, 3);
    mpw_str(&req, "app.f", 5);
    mpw_array(&req, 300);
    put_entries(&req, 300);
    put_opts(&req, NULL);
    same_as_whole(&o, req.data, req.len, "Forward");
    o.source_address_key = "ip"; /* every entry re-encoded */
    same_as_whole(&o, req.data, req.len, "Forward");
    wbuf_free(&req);
}

static void test_packed(void **st)
{
    fwd_decode_opts o = opts();
    wbuf ents = {0}, req = {0};
    put_entries(&ents, 500);
    mpw_array(&req, 3);
    mpw_str(&req, "app.p", 5);
    put_bin(&req, ents.data, ents.len);
    put_opts(&req, NULL);
    same_as_whole(&o, req.data, req.len, "PackedForward");
    wbuf_free(&ents);
    wbuf_free(&req);
}

static void test_gzip_and_zstd(void **st)
{
    fwd_decode_opts o = opts();
    wbuf ents = {0}, gz = {0}, req = {0};
    put_entries(&ents, 2000);
    /* two gzip members, as Fluentd writes them */
    assert_int_equal(gz_compress(&gz, ents.data, ents.len / 2, 6), 0);
    assert_int_equal(gz_compress(&gz, ents.data + ents.len / 2, ents.len - ents.len / 2, 6), 0);
    mpw_array(&req, 3);
    mpw_str(&req, "app.z", 5);
    put_bin(&req, gz.data, gz.len);
    put_opts(&req, "gzip");
    same_as_whole(&o, req.data, req.len, "CompressedPackedForward");

    size_t zcap = ZSTD_compressBound(ents.len);
    uint8_t *z = malloc(zcap);
    size_t zn = ZSTD_compress(z, zcap, ents.data, ents.len, 3);
    assert_false(ZSTD_isError(zn));
    req.len = 0;
    mpw_array(&req, 3);
    mpw_str(&req, "app.z", 5);
    put_bin(&req, z, zn);
    put_opts(&req, "zstd");
    same_as_whole(&o, req.data, req.len, "CompressedPackedForward");

    /* gzip bytes whose options do not say so: refused */
    req.len = 0;
    mpw_array(&req, 3);
    mpw_str(&req, "app.z", 5);
    put_bin(&req, gz.data, gz.len);
    put_opts(&req, NULL);
    wbuf joined = {0};
    uint32_t taken;
    fwd_result sr;
    assert_int_equal(stream(&o, req.data, req.len, 4096, 512, &joined, &taken, &sr), FWD_CORRUPT);

    /* the bomb guard counts inflated bytes */
    o.max_decompressed = ents.len / 3;
    req.len = 0;
    mpw_array(&req, 3);
    mpw_str(&req, "app.z", 5);
    put_bin(&req, z, zn);
    put_opts(&req, "zstd");
    joined.len = 0;
    assert_int_equal(stream(&o, req.data, req.len, 4096, 512, &joined, &taken, &sr), FWD_CORRUPT);
    assert_true(sr.over_decompressed);
    free(z);
    wbuf_free(&joined);
    wbuf_free(&ents);
    wbuf_free(&gz);
    wbuf_free(&req);
}

static void test_truncated_and_message_mode(void **st)
{
    fwd_decode_opts o = opts();
    wbuf ents = {0}, req = {0};
    put_entries(&ents, 50);
    mpw_array(&req, 3);
    mpw_str(&req, "app.t", 5);
    put_bin(&req, ents.data, ents.len);
    put_opts(&req, NULL);
    /* cut before its end: the stream asks for more, never says OK */
    wbuf joined = {0};
    uint32_t taken;
    fwd_result sr;
    assert_int_equal(stream(&o, req.data, req.len - 3, 100, 512, &joined, &taken, &sr), FWD_STREAM_MORE);
    /* Message mode is not streamed */
    wbuf msg = {0};
    mpw_array(&msg, 3);
    mpw_str(&msg, "m", 1);
    mpw_uint(&msg, 1700000000);
    mpw_map(&msg, 0);
    assert_int_equal(fwd_stream_probe(msg.data, msg.len), FWD_STREAM_NO);
    assert_int_equal(fwd_stream_probe(req.data, 3), FWD_STREAM_MORE);
    assert_int_equal(fwd_stream_probe(req.data, req.len), FWD_OK);
    wbuf_free(&msg);
    wbuf_free(&joined);
    wbuf_free(&ents);
    wbuf_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_mode),
        cmocka_unit_test(test_packed),
        cmocka_unit_test(test_gzip_and_zstd),
        cmocka_unit_test(test_truncated_and_message_mode),
    };
    return cmocka_run_group_tests_name("fwd_stream", tests, NULL, NULL);
}
