/* Unit tests: lib/compress (gzip and zstd, one place). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <zstd.h>

#include "lib/compress.h"

static void test_gzip_roundtrip_members(void **st)
{
    /* two members back to back, as Fluentd's gzip'd buffer chunks are */
    const char *a = "first member: {\"log\":\"hello\"}\n", *b = "second member, a little longer than the first\n";
    wbuf z = {0}, out = {0};
    assert_int_equal(gz_compress(&z, (const uint8_t *)a, strlen(a), -1), 0);
    size_t one = z.len;
    assert_int_equal(gz_compress(&z, (const uint8_t *)b, strlen(b), 9), 0);
    assert_true(z.len > one);
    assert_int_equal(z.data[0], 0x1f); /* gzip magic */
    assert_int_equal(z.data[1], 0x8b);
    char err[200];
    assert_int_equal(gz_decompress(z.data, z.len, &out, err, sizeof err), 0);
    assert_int_equal(out.len, strlen(a) + strlen(b));
    assert_memory_equal(out.data, a, strlen(a));
    assert_memory_equal(out.data + strlen(a), b, strlen(b));
    /* the bomb guard */
    wbuf small = {.max = 10};
    assert_int_equal(gz_decompress(z.data, z.len, &small, err, sizeof err), -1);
    assert_non_null(strstr(err, "exceeds the limit"));
    /* truncated */
    out.len = 0;
    assert_int_equal(gz_decompress(z.data, one - 3, &out, err, sizeof err), -1);
    wbuf_free(&small);
    wbuf_free(&z);
    wbuf_free(&out);
}

static void test_gzip_empty_and_capped_output(void **st)
{
    wbuf z = {0}, out = {0};
    char err[200];
    assert_int_equal(gz_compress(&z, (const uint8_t *)"", 0, -1), 0);
    assert_int_equal(gz_decompress(z.data, z.len, &out, err, sizeof err), 0);
    assert_int_equal(out.len, 0);
    wbuf capped = {.max = 4};
    assert_int_equal(gz_compress(&capped, (const uint8_t *)"abc", 3, -1), -1); /* over max: refused */
    assert_int_equal(capped.len, 0);
    wbuf_free(&z);
    wbuf_free(&out);
    wbuf_free(&capped);
}

static void test_zstd_decompress(void **st)
{
    const char *a = "zstd frame payload, zstd frame payload, zstd frame payload";
    uint8_t frame[256];
    size_t fl = ZSTD_compress(frame, sizeof frame, a, strlen(a), 3);
    assert_false(ZSTD_isError(fl));
    wbuf out = {0};
    char err[200];
    assert_int_equal(zstd_decompress(frame, fl, &out, err, sizeof err), 0);
    assert_int_equal(out.len, strlen(a));
    assert_memory_equal(out.data, a, strlen(a));
    out.len = 0;
    assert_int_equal(zstd_decompress(frame, fl - 2, &out, err, sizeof err), -1);
    wbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_roundtrip_members),
        cmocka_unit_test(test_gzip_empty_and_capped_output),
        cmocka_unit_test(test_zstd_decompress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
