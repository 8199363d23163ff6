/*
 * libFuzzer target: the streaming decoder (forward-protocol/fwd_stream.c)
 * against fwd_decode. Each framed request of the input is decoded whole,
 * then fed to the stream in pieces split at points drawn from the input,
 * with a small batch size so batches are cut often; the batches joined must
 * equal fwd_decode's batch, with the same records, counts, chunk and verdict.
 * Allowed differences: a request the stream does not take (Message mode,
 * heartbeats), a decompressed-size limit hit (the whole path fails a little
 * earlier, its buffer grows in steps), a fluent_signal payload (the stream
 * has handed it on before the option map says so), and a gzip/zstd bin whose
 * options do not say `compressed` (the stream refuses it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define FAIL() do { fprintf(stderr, "fuzz_fwd_stream: check at line %d failed (src %d wrc %d: stream \"%s\" whole \"%s\")\n", __LINE__, src, wrc, fwd_stream_result(s)->err, r.err); fprintf(stderr, "len %zu mode %s recs %u\n", len, r.mode ? r.mode : "-", r.records); abort(); } while (0)

#include "lib/mp.h"
#include "lib/wbuf.h"
#include "forward-protocol/fwd_decode.h"
#include "forward-protocol/fwd_stream.h"

static void check(const fwd_decode_opts *o, const fwd_peer *peer, fwd_scratch *sc, const uint8_t *req, size_t len,
                  const uint8_t *rnd, size_t rnd_len)
{
    fwd_result r;
    wbuf whole = {.max = 64 << 20};
    int wrc = fwd_decode(o, peer, sc, req, len, &r, &whole);

    fwd_stream *s = fwd_stream_new(o, peer, 1 + (rnd_len ? rnd[0] % 200 : 64));
    if (!s)
        abort();
    wbuf joined = {0}, out = {0}, in = {0};
    size_t fed = 0, ri = 0;
    uint32_t taken = 0;
    int src = FWD_STREAM_MORE;
    while (src == FWD_STREAM_MORE || src == FWD_STREAM_FULL) {
        if (src == FWD_STREAM_MORE) {
            if (fed == len)
                break;
            size_t step = 1 + (rnd_len ? rnd[ri++ % rnd_len] % 37 : 7);
            if (step > len - fed)
                step = len - fed;
            wbuf_add(&in, req + fed, step);
            fed += step;
        }
        size_t used = 0;
        src = fwd_stream_feed(s, in.data, in.len, &used, &out);
        if (used > in.len)
            abort();
        if (in.len > used)
            memmove(in.data, in.data + used, in.len - used);
        in.len -= used;
        if (src == FWD_STREAM_FULL || src == FWD_OK) {
            taken += fwd_stream_take(s);
            wbuf_add(&joined, out.data, out.len);
            out.len = 0;
        }
    }
    const fwd_result *sr = fwd_stream_result(s);
    if (src == FWD_OK && (in.len != 0 || fed != len))
        FAIL(); /* a whole request ends exactly at its last byte */
    int comparable = src != FWD_STREAM_NO && !r.over_decompressed && !sr->over_decompressed && !(fwd_stream_inflating(s) && (!r.mode || strcmp(r.mode, "CompressedPackedForward") != 0)) &&
                     !(wrc == FWD_OK && r.signal) && wrc != FWD_HEARTBEAT;
    if (comparable) {
        if ((src == FWD_OK) != (wrc == FWD_OK))
            FAIL(); /* the same verdict */
        if (src == FWD_OK) {
            if (joined.len != whole.len || (joined.len && memcmp(joined.data, whole.data, joined.len) != 0))
                FAIL(); /* the same entries, byte for byte */
            if (sr->records != r.records || taken != r.records || sr->invalid != r.invalid ||
                sr->retimed != r.retimed || sr->markers != r.markers || sr->chunk_len != r.chunk_len ||
                (r.chunk_len && memcmp(sr->chunk, r.chunk, r.chunk_len) != 0) || sr->tag_len != r.tag_len ||
                strcmp(sr->mode, r.mode) != 0)
                FAIL();
        }
    }
    fwd_stream_free(s);
    wbuf_free(&joined);
    wbuf_free(&out);
    wbuf_free(&in);
    wbuf_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fwd_decode_opts o = {.skip_invalid_event = !(size & 2), .max_decompressed = 4 << 20, .max_depth = 32,
                         .source_address_key = (size & 1) ? "ip" : NULL, .now_sec = 1800000000};
    fwd_peer peer = {"127.0.0.1", "localhost"};
    fwd_scratch sc = {0};
    size_t off = 0;
    while (off < size) {
        mp_framer f;
        mp_framer_reset(&f);
        if (mp_frame(&f, data + off, size - off) != MP_OK)
            break;
        /* the bytes after the request pick the split points */
        check(&o, &peer, &sc, data + off, f.pos, data + off + f.pos, size - off - f.pos);
        off += f.pos;
    }
    fwd_scratch_free(&sc);
    return 0;
}
