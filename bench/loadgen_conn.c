/* bench/loadgen_conn.c: a weir-loadgen connection's thread (sending, acks, latencies); see loadgen.h. */
#include "bench/loadgen.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <msgpack.h>

static atomic_uint_fast64_t next_req_no; /* --records: requests handed out so far */

static void conn_error(lg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(lg_conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "weir-loadgen: connection %d: %s\n", c->idx, msg);
    c->conn_errors++;
    c->failed = 1;
}

static void make_chunk_id(lg_conn *c, uint8_t out[LG_CHUNK_LEN])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[16];
    uint64_t n = c->id_counter++;
    memcpy(raw, c->id_prefix, 8);
    for (int i = 0; i < 8; i++)
        raw[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    int o = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) | raw[i + 2];
        out[o++] = (uint8_t)b64[(v >> 18) & 63];
        out[o++] = (uint8_t)b64[(v >> 12) & 63];
        out[o++] = (uint8_t)b64[(v >> 6) & 63];
        out[o++] = (uint8_t)b64[v & 63];
    }
    out[o++] = (uint8_t)b64[raw[15] >> 2];
    out[o++] = (uint8_t)b64[(raw[15] & 3) << 4];
    out[o++] = '=';
    out[o++] = '=';
}

static int connect_to(lg_conn *c)
{
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        conn_error(c, "cannot resolve %s:%s: %s", opt.host, opt.port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        conn_error(c, "cannot connect to %s:%s: %s", opt.host, opt.port, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        conn_error(c, "cannot make socket non-blocking: %s", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* acks                                                                     */

/*
 * Parse one message from the receiver at p[0..n).
 * Returns 1 for an ack (*id, *idlen point into p or into `scratch`, *used is
 * its length in bytes), 0 when more bytes are needed, -1 when the bytes are
 * not an ack map. The common encoding {"ack": str} is matched directly; any
 * other valid encoding (str8/16, bin, extra keys) goes through msgpack-c.
 */
static int parse_ack(const uint8_t *p, size_t n, const uint8_t **id, size_t *idlen, size_t *used, uint8_t *scratch,
                     size_t scratch_cap)
{
    static const uint8_t pre[5] = {0x81, 0xa3, 'a', 'c', 'k'};
    size_t k = n < 5 ? n : 5;
    if (memcmp(p, pre, k) == 0) {
        if (n < 7)
            return 0;
        size_t hdr, len;
        uint8_t t = p[5];
        if ((t & 0xe0) == 0xa0) {
            hdr = 6;
            len = t & 0x1f;
        } else if (t == 0xd9 || t == 0xc4) {
            hdr = 7;
            len = p[6];
        } else {
            goto slow;
        }
        if (n < hdr + len)
            return 0;
        *id = p + hdr;
        *idlen = len;
        *used = hdr + len;
        return 1;
    }
slow:;
    msgpack_unpacked res;
    size_t off = 0;
    int ret = -1;
    msgpack_unpacked_init(&res);
    msgpack_unpack_return rc = msgpack_unpack_next(&res, (const char *)p, n, &off);
    if (rc == MSGPACK_UNPACK_CONTINUE) {
        ret = 0;
    } else if (rc == MSGPACK_UNPACK_SUCCESS && res.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &res.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *key = &m->ptr[i].key, *val = &m->ptr[i].val;
            if (key->type != MSGPACK_OBJECT_STR || key->via.str.size != 3 || memcmp(key->via.str.ptr, "ack", 3))
                continue;
            const char *vp;
            size_t vl;
            if (val->type == MSGPACK_OBJECT_STR) {
                vp = val->via.str.ptr;
                vl = val->via.str.size;
            } else if (val->type == MSGPACK_OBJECT_BIN) {
                vp = val->via.bin.ptr;
                vl = val->via.bin.size;
            } else {
                break;
            }
            if (vl > scratch_cap)
                vl = scratch_cap;
            memcpy(scratch, vp, vl);
            *id = scratch;
            *idlen = vl;
            *used = off;
            ret = 1;
            break;
        }
    }
    msgpack_unpacked_destroy(&res);
    return ret;
}

static void print_id(char *out, size_t cap, const uint8_t *id, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (id[i] >= 0x20 && id[i] < 0x7f && id[i] != '"' && id[i] != '\\')
            out[o++] = (char)id[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", id[i]);
    }
    out[o] = '\0';
}

static void process_ack(lg_conn *c, const uint8_t *id, size_t idlen, uint64_t now)
{
    char got[128], want[64];
    c->acks++;
    if (c->head == c->tail) {
        print_id(got, sizeof(got), id, idlen);
        if (c->mismatches++ < LG_MAX_ERR_PRINTS)
            fprintf(stderr, "weir-loadgen: connection %d: ack \"%s\" but no request is awaiting one\n", c->idx,
                    got);
        return;
    }
    lg_pending *e = &c->ring[c->head % c->ring_cap];
    if (idlen != LG_CHUNK_LEN || memcmp(id, e->id, LG_CHUNK_LEN) != 0) {
        if (c->mismatches++ < LG_MAX_ERR_PRINTS) {
            print_id(got, sizeof(got), id, idlen);
            print_id(want, sizeof(want), e->id, LG_CHUNK_LEN);
            fprintf(stderr, "weir-loadgen: connection %d: ack mismatch: got \"%s\", oldest outstanding is \"%s\"\n",
                    c->idx, got, want);
        }
    } else {
        c->records_acked += e->nrecords;
        uint64_t lat = (e->t_sent && now > e->t_sent) ? now - e->t_sent : 0;
        hist_add(c->hist, lat / 1000);
    }
    if (e->last_of_req)
        c->inflight--;
    c->head++;
    if (c->written < c->head)
        c->written = c->head;
}

/* Read what is available and handle every complete ack; 0 or -1. */
static int read_acks(lg_conn *c)
{
    if (c->rlen == LG_RBUF_SIZE) {
        conn_error(c, "%d bytes from the receiver do not form an ack", LG_RBUF_SIZE);
        return -1;
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, LG_RBUF_SIZE - c->rlen, 0);
    if (r == 0) {
        conn_error(c, "receiver closed the connection with %" PRIu64 " acks outstanding", c->tail - c->head);
        return -1;
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        conn_error(c, "read failed: %s", strerror(errno));
        return -1;
    }
    uint64_t now = now_ns();
    c->rlen += (size_t)r;
    size_t off = 0;
    uint8_t scratch[256];
    while (off < c->rlen) {
        const uint8_t *id = NULL;
        size_t idlen = 0, used = 0;
        int rc = parse_ack(c->rbuf + off, c->rlen - off, &id, &idlen, &used, scratch, sizeof(scratch));
        if (rc == 0)
            break;
        if (rc < 0) {
            char hex[3 * 16 + 1];
            size_t show = c->rlen - off < 16 ? c->rlen - off : 16;
            for (size_t i = 0; i < show; i++)
                snprintf(hex + 3 * i, 4, "%02x ", c->rbuf[off + i]);
            hex[show ? 3 * show - 1 : 0] = '\0';
            conn_error(c, "unexpected bytes from the receiver (not an ack): %s", hex);
            return -1;
        }
        process_ack(c, id, idlen, now);
        off += used;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

/* Entries of the request being written whose last byte is now in the kernel. */
static void mark_written(lg_conn *c, size_t off, uint64_t now)
{
    uint64_t s = c->written > c->head ? c->written : c->head;
    while (s < c->tail && c->ring[s % c->ring_cap].end_off <= off) {
        c->ring[s % c->ring_cap].t_sent = now;
        s++;
    }
    c->written = s;
}

static int stalled(lg_conn *c, uint64_t last_progress, const char *what)
{
    uint64_t now = now_ns();
    if ((double)(now - last_progress) / 1e9 < opt.stall_timeout)
        return 0;
    conn_error(c, "no progress for %g s while %s (%" PRIu64 " acks outstanding)", opt.stall_timeout, what,
               c->tail - c->head);
    return 1;
}

static int send_request(lg_conn *c, lg_req *q)
{
    for (uint32_t i = 0; i < q->nchunks; i++) {
        lg_pending *e = &c->ring[c->tail % c->ring_cap];
        make_chunk_id(c, q->buf + q->chunk_off[i]);
        memcpy(e->id, q->buf + q->chunk_off[i], LG_CHUNK_LEN);
        e->end_off = q->chunk_end[i];
        e->nrecords = q->nchunks == 1 ? q->nrecords : 1;
        e->t_sent = 0;
        e->last_of_req = i + 1 == q->nchunks;
        c->tail++;
    }
    size_t off = 0;
    uint64_t last_progress = now_ns();
    while (off < q->len) {
        ssize_t w = send(c->fd, q->buf + off, q->len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            c->wire_bytes += (uint64_t)w;
            last_progress = now_ns();
            if (q->nchunks)
                mark_written(c, off, last_progress);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | (opt.ack ? POLLIN : 0)};
            int pr = poll(&pfd, 1, 1000);
            if (pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
                uint64_t before = c->head;
                if (read_acks(c) < 0)
                    return -1;
                if (c->head != before)
                    last_progress = now_ns();
            }
            if (pr == 0 && stalled(c, last_progress, "writing a request"))
                return -1;
            continue;
        }
        conn_error(c, "write failed: %s", w < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
    c->records_sent += q->nrecords;
    c->payload_sent += q->payload_bytes;
    c->requests_sent++;
    if (q->nchunks)
        c->inflight++;
    return 0;
}

/* Block until at least one request is fully acked; 0 or -1. */
static int wait_acks(lg_conn *c)
{
    int target = c->inflight - 1;
    uint64_t last_progress = now_ns();
    while (c->inflight > target) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 1000);
        if (pr < 0 && errno != EINTR) {
            conn_error(c, "poll failed: %s", strerror(errno));
            return -1;
        }
        if (pr > 0) {
            uint64_t before = c->head;
            if (read_acks(c) < 0)
                return -1;
            if (c->head != before)
                last_progress = now_ns();
        } else if (stalled(c, last_progress, "waiting for acks")) {
            return -1;
        }
    }
    return 0;
}

static lg_req *next_request(lg_conn *c)
{
    if (stop_flag)
        return NULL;
    if (opt.records) {
        uint64_t k = atomic_fetch_add(&next_req_no, 1);
        if (k < full_reqs)
            return &c->pool[c->requests_sent % (uint64_t)c->npool];
        if (k == full_reqs && have_tail)
            return &tail_req;
        return NULL;
    }
    if (now_ns() >= t_deadline)
        return NULL;
    return &c->pool[c->requests_sent % (uint64_t)c->npool];
}

void *conn_main(void *arg)
{
    lg_conn *c = arg;
    c->fd = -1;
    c->hist = xcalloc(1, sizeof(lg_hist));
    c->rbuf = xmalloc(LG_RBUF_SIZE);
    c->pool = xcalloc((size_t)c->npool, sizeof(lg_req));
    for (int i = 0; i < 8; i++)
        c->id_prefix[i] = (uint8_t)rng_next(&c->rng);
    c->id_counter = rng_next(&c->rng);
    if (build_pool(&c->rng, c->pool, c->npool, opt.batch, &c->avg_rec) < 0)
        c->failed = 1;
    c->ring_cap = (uint64_t)opt.pipeline * (opt.mode == LG_MESSAGE ? (uint64_t)opt.batch : 1u);
    c->ring = xcalloc(c->ring_cap, sizeof(lg_pending));
    if (!c->failed)
        connect_to(c);
    pthread_barrier_wait(&start_barrier); /* ready */
    pthread_barrier_wait(&start_barrier); /* go: t_start is set */
    if (c->failed)
        goto out;
    for (;;) {
        while (!opt.ack || c->inflight < opt.pipeline) {
            lg_req *q = next_request(c);
            if (!q)
                break;
            if (send_request(c, q) < 0)
                goto out;
        }
        if (!opt.ack || c->inflight == 0)
            break;
        if (wait_acks(c) < 0)
            goto out;
    }
out:
    c->t_done = now_ns();
    for (uint64_t s = c->head; s < c->tail; s++)
        c->unacked += c->ring[s % c->ring_cap].nrecords;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    for (int i = 0; i < c->npool; i++)
        free_request(&c->pool[i]);
    free(c->pool);
    c->pool = NULL;
    free(c->ring);
    c->ring = NULL;
    free(c->rbuf);
    c->rbuf = NULL;
    return NULL;
}
