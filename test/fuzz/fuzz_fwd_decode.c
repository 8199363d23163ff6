/*
 * libFuzzer target: a byte stream as a forward-protocol connection would
 * deliver it. Frames it with the resumable framer (fed in uneven pieces),
 * decodes each request, walks the produced batch and formats every record
 * as JSON, so the framer, decoder, decompressors, batch reader and JSON
 * writer all see hostile input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/json.h"
#include "lib/mp.h"
#include "lib/wbuf.h"
#include "forward-protocol/fwd_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* both invalid-event policies: skip, or keep with the time of receipt /
     * refuse the request (fixed time, so a run is reproducible) */
    fwd_decode_opts o = {.skip_invalid_event = !(size & 2), .max_decompressed = 4 << 20, .max_depth = 32,
                         .source_address_key = (size & 1) ? "ip" : NULL, .now_sec = 1800000000};
    fwd_peer peer = {"127.0.0.1", "localhost"};
    fwd_scratch s = {0};
    size_t off = 0;
    while (off < size) {
        mp_framer f;
        mp_framer_reset(&f);
        int rc = MP_SHORT;
        /* feed in pieces of varying size, as reads would */
        size_t fed = 0, step = 1 + (data[off] & 31);
        while (rc == MP_SHORT && fed < size - off) {
            fed = fed + step > size - off ? size - off : fed + step;
            rc = mp_frame(&f, data + off, fed);
        }
        if (rc != MP_OK)
            break;
        fwd_result r;
        wbuf out = {.max = 8 << 20};
        if (fwd_decode(&o, &peer, &s, data + off, f.pos, &r, &out) == FWD_OK && r.records) {
            const uint8_t *p = out.data, *end = out.data + out.len;
            entry e;
            uint32_t n = 0;
            wbuf js = {0};
            while (batch_next(&p, end, &e) == 1) {
                const uint8_t *q = e.record;
                js.len = 0;
                if (jw_value(&js, &q, e.record + e.record_len) != 0)
                    abort(); /* the decoder only keeps well-formed records */
                n++;
            }
            if (n != r.records || p != end)
                abort(); /* every stored record must be readable back */
            wbuf_free(&js);
        }
        wbuf_free(&out);
        off += f.pos;
    }
    fwd_scratch_free(&s);
    return 0;
}
