/*
 * forward-protocol/fwd_decode.h: turns one complete forward-protocol request
 * (a msgpack array, already framed) into a batch in weir's entry format.
 *
 * Pure function of (options, peer info, request bytes): no I/O, no globals,
 * so it is unit-tested and fuzzed directly. Runs on a worker thread.
 */
#ifndef WEIR_FWD_DECODE_H
#define WEIR_FWD_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"

typedef struct fwd_decode_opts {
    /* Invalid events (docs/configuration.md, "Event times and invalid events"): 1 skips and
     * counts them; 0 (Fluentd's default) keeps an event whose time is
     * invalid with the time of receipt, and refuses the whole request (no
     * ack) when an entry is not a [time, map]. */
    int skip_invalid_event;
    uint32_t now_sec, now_nsec;    /* the time of receipt; 0: read the clock (tests fix it) */
    const char *tag;               /* override tag, or NULL */
    const char *add_tag_prefix;    /* or NULL */
    const char *source_address_key;  /* or NULL */
    const char *source_hostname_key; /* or NULL */
    size_t max_decompressed;       /* bomb guard for gzip/zstd entries */
    int max_depth;                 /* nesting limit inside records */
    uint64_t max_string_length;    /* longest str/bin inside a record; 0: no limit */
} fwd_decode_opts;

typedef struct fwd_peer {
    const char *address;  /* "10.0.0.5" */
    const char *hostname; /* resolved, or the address */
} fwd_peer;

enum {
    FWD_OK = 0,         /* batch may still be NULL when nothing was left to store */
    FWD_HEARTBEAT = 1,  /* bare nil: nothing to do, no ack */
    FWD_CORRUPT = -1,   /* request unusable: close the connection (err says why) */
};

typedef struct fwd_result {
    const uint8_t *tag;       /* raw tag inside the request (before tag/add_tag_prefix) */
    size_t tag_len;
    const uint8_t *chunk;     /* raw msgpack bytes of options.chunk inside the request, or NULL */
    size_t chunk_len;
    uint32_t records;         /* records appended to `out` */
    uint32_t invalid;         /* invalid events skipped */
    uint32_t retimed;         /* events kept with the time of receipt: their time was invalid */
    const char *retimed_why;  /* the first such time's problem (static text) */
    uint32_t markers;         /* Fluent Bit group markers skipped */
    uint32_t too_deep;        /* of `invalid`: records over max_nesting_depth */
    uint32_t too_long;        /* of `invalid`: records with a string over max_string_length */
    int over_decompressed;    /* FWD_CORRUPT because of the decompressed-size limit */
    int signal;               /* fluent_signal: 0 logs, 1 metrics, 2 traces (payload skipped) */
    const char *mode;         /* "Message", "Forward", "PackedForward", "CompressedPackedForward" */
    char err[256];            /* set for FWD_CORRUPT and for the first invalid event */
} fwd_result;

/* Scratch space reused across calls by one thread (decompression output,
 * entry rebuild). Free with fwd_scratch_free. */
typedef struct fwd_scratch {
    wbuf inflated;
} fwd_scratch;
void fwd_scratch_free(fwd_scratch *s);

/* Decode `req` and APPEND its entries to `out` (so consecutive requests of
 * one tag can share a batch). On FWD_CORRUPT, and when nothing is kept
 * (signal payloads), out->len is restored. out->max bounds the growth. */
int fwd_decode(const fwd_decode_opts *o, const fwd_peer *peer, fwd_scratch *s,
               const uint8_t *req, size_t len, fwd_result *r, wbuf *out);

/* The tag a request will be stored under: `tag` overrides, `add_tag_prefix`
 * prepends "prefix.". Returns the length, or -1 if it does not fit. */
int fwd_final_tag(const fwd_decode_opts *o, const uint8_t *raw, size_t raw_len, char *buf, size_t cap);
/* Read the raw tag of a request without decoding it. 0 or -1. */
int fwd_peek_tag(const uint8_t *req, size_t len, const uint8_t **tag, size_t *tag_len);

/* Encode the ack reply {"ack": <chunk bytes>} into out (appends). */
int fwd_ack_encode(wbuf *out, const uint8_t *chunk, size_t chunk_len);


#endif
