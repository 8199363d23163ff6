/*
 * outputs/kafka/zk.c: the brokers of a Kafka cluster as registered in
 * ZooKeeper (fluent-plugin-kafka's `zookeeper` / `zookeeper_path`): a
 * minimal ZooKeeper client (zk.h) speaking the jute wire protocol over one
 * blocking TCP connection: a session, getChildren(path), getData of each
 * child, close. No watches, no reconnection: the list is read once at start.
 *
 * Wire format (big-endian; every frame is a 4-byte length and a body):
 *   ConnectRequest  int protocolVersion, long lastZxidSeen, int timeOut,
 *                   long sessionId, buffer passwd, bool readOnly
 *   ConnectResponse int protocolVersion, int timeOut, long sessionId,
 *                   buffer passwd [, bool readOnly]
 *   request         int xid, int type, body (getChildren 8 and getData 4:
 *                   ustring path, bool watch; closeSession -11: none)
 *   reply           int xid, long zxid, int err, body when err is 0
 *                   (getChildren: vector<ustring>; getData: buffer, Stat)
 * A string or buffer is an int length (-1: null) and its bytes.
 */
#include "outputs/kafka/zk.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/clock.h"
#include "lib/mp.h"
#include "lib/net.h"

#define ZK_MAX_FRAME (4u << 20)
#define ZK_GET_DATA 4
#define ZK_GET_CHILDREN 8
#define ZK_CLOSE (-11)

typedef struct zk {
    int fd;
    double deadline; /* monotonic s */
    int xid;
    uint8_t *frame; /* the last reply */
    size_t len;
    char *err;
    size_t errlen;
} zk;

/* 0, or -1 when out of memory (the frame is then not sent) */
static int put_be(wbuf *b, uint64_t v, int bytes)
{
    int rc = 0;
    for (int i = bytes - 1; i >= 0; i--)
        rc |= wbuf_addc(b, (uint8_t)(v >> (8 * i)));
    return rc;
}

static int put_str(wbuf *b, const char *s, size_t n) { return put_be(b, (uint32_t)n, 4) | wbuf_add(b, s, n); }

/* a reader over a reply body */
typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

/* a big-endian int of 4 or 8 bytes (0 and r->bad past the end) */
static uint64_t get_be(rd *r, int bytes)
{
    if (r->end - r->p < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = bytes == 8 ? mp_be64(r->p) : mp_be32(r->p);
    r->p += bytes;
    return v;
}

/* a string or buffer: NULL for null (len -1) or a malformed reply */
static const uint8_t *get_bytes(rd *r, int32_t *len)
{
    *len = (int32_t)get_be(r, 4);
    if (r->bad || *len < 0)
        return NULL;
    if (r->end - r->p < *len) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += *len;
    return s;
}

static int io_wait(zk *z, short ev)
{
    int ms = (int)((z->deadline - clock_mono()) * 1000);
    struct pollfd pfd = {.fd = z->fd, .events = ev};
    if (ms <= 0 || poll(&pfd, 1, ms) <= 0) {
        snprintf(z->err, z->errlen, "timed out");
        return -1;
    }
    return 0;
}

static int send_frame(zk *z, const wbuf *body)
{
    uint8_t hdr[4] = {(uint8_t)(body->len >> 24), (uint8_t)(body->len >> 16), (uint8_t)(body->len >> 8),
                      (uint8_t)body->len};
    const uint8_t *parts[2] = {hdr, body->data};
    size_t lens[2] = {4, body->len};
    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < lens[i]) {
            if (io_wait(z, POLLOUT))
                return -1;
            ssize_t w = send(z->fd, parts[i] + done, lens[i] - done, MSG_NOSIGNAL);
            if (w < 0 && errno != EINTR && errno != EAGAIN) {
                snprintf(z->err, z->errlen, "send: %s", strerror(errno));
                return -1;
            }
            done += w > 0 ? (size_t)w : 0;
        }
    }
    return 0;
}

static int read_full(zk *z, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (io_wait(z, POLLIN))
            return -1;
        ssize_t r = recv(z->fd, p + got, n - got, 0);
        if (r == 0) {
            snprintf(z->err, z->errlen, "connection closed by the server");
            return -1;
        }
        if (r < 0 && errno != EINTR && errno != EAGAIN) {
            snprintf(z->err, z->errlen, "recv: %s", strerror(errno));
            return -1;
        }
        got += r > 0 ? (size_t)r : 0;
    }
    return 0;
}

static int recv_frame(zk *z)
{
    uint8_t h[4];
    if (read_full(z, h, 4))
        return -1;
    uint32_t n = mp_be32(h);
    if (n > ZK_MAX_FRAME) {
        snprintf(z->err, z->errlen, "a reply of %u bytes (not a ZooKeeper server?)", n);
        return -1;
    }
    free(z->frame);
    z->len = n;
    z->frame = malloc(n ? n : 1);
    return z->frame ? read_full(z, z->frame, n) : -1;
}

/* One request with a path; the reply body in *r. 0, or -1 with the error
 * (ZooKeeper's code for a refused request). */
static int request(zk *z, int type, const char *path, rd *r)
{
    wbuf b = {0};
    int rc = put_be(&b, (uint32_t)++z->xid, 4) | put_be(&b, (uint32_t)type, 4);
    if (path)
        rc |= put_str(&b, path, strlen(path)) | wbuf_addc(&b, 0); /* watch: false */
    rc = rc ? -1 : send_frame(z, &b);
    wbuf_free(&b);
    if (rc || recv_frame(z))
        return -1;
    *r = (rd){z->frame, z->frame + z->len, 0};
    int32_t xid = (int32_t)get_be(r, 4);
    (void)get_be(r, 8); /* zxid */
    int32_t err = (int32_t)get_be(r, 4);
    if (r->bad || xid != z->xid) {
        snprintf(z->err, z->errlen, "unexpected reply (xid %d, want %d)", xid, z->xid);
        return -1;
    }
    if (err) {
        snprintf(z->err, z->errlen, "%s: %s", path ? path : "close",
                 err == -101 ? "no such node" : err == -102 ? "not authorized" : "error");
        if (err != -101 && err != -102)
            snprintf(z->err + strlen(z->err), z->errlen - strlen(z->err), " %d", err);
        return -1;
    }
    return 0;
}

/* Connect to the first server of "h1:p1,h2:p2" that answers and open a session. */
static int session(zk *z, const char *hosts)
{
    char *list = strdup(hosts), *save = NULL, last[300] = "no server";
    for (char *h = strtok_r(list, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        while (*h == ' ')
            h++;
        char host[256], port[16] = "2181";
        const char *colon = strrchr(h, ':');
        size_t hl = colon ? (size_t)(colon - h) : strlen(h);
        if (hl >= sizeof host)
            continue;
        memcpy(host, h, hl);
        host[hl] = 0;
        if (colon)
            snprintf(port, sizeof port, "%s", colon + 1);
        double left = z->deadline - clock_mono();
        char why[256];
        int fd = left > 0 ? net_connect(host, port, left, why, sizeof why) : -2;
        if (fd >= 0) {
            z->fd = fd;
            break;
        }
        snprintf(last, sizeof last, "%s: %s", h, left > 0 ? why : "timed out");
    }
    free(list);
    if (z->fd < 0) {
        snprintf(z->err, z->errlen, "cannot connect: %s", last);
        return -1;
    }
    static const char passwd[16];
    wbuf b = {0};
    int rc = put_be(&b, 0, 4) |     /* protocolVersion */
             put_be(&b, 0, 8) |     /* lastZxidSeen */
             put_be(&b, 10000, 4) | /* timeOut, ms */
             put_be(&b, 0, 8) |     /* sessionId: a new one */
             put_str(&b, passwd, sizeof passwd) | wbuf_addc(&b, 0); /* readOnly: false */
    rc = rc ? -1 : send_frame(z, &b);
    wbuf_free(&b);
    if (rc || recv_frame(z))
        return -1;
    rd r = {z->frame, z->frame + z->len, 0};
    (void)get_be(&r, 4);
    int32_t timeout = (int32_t)get_be(&r, 4);
    if (r.bad || timeout <= 0) {
        snprintf(z->err, z->errlen, "the server refused the session");
        return -1;
    }
    return 0;
}

int zk_broker_address(const uint8_t *data, size_t len, const char *protocol, wbuf *out)
{
    json_t *j = json_loadb((const char *)data, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    json_t *map = json_object_get(j, "listener_security_protocol_map");
    const char *pick = NULL;
    size_t i;
    json_t *ep;
    json_array_foreach(json_object_get(j, "endpoints"), i, ep)
    {
        const char *s = json_string_value(ep), *sep = s ? strstr(s, "://") : NULL;
        if (!sep)
            continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(sep - s), s);
        const char *proto = json_string_value(json_object_get(map, name));
        if (!strcasecmp(proto ? proto : name, protocol)) {
            pick = sep + 3;
            break;
        }
    }
    int rc = -1;
    if (pick) {
        rc = wbuf_add(out, pick, strlen(pick));
    } else if (!strcasecmp(protocol, "PLAINTEXT") && json_string_value(json_object_get(j, "host")) &&
               json_integer_value(json_object_get(j, "port")) > 0) {
        char hp[320];
        snprintf(hp, sizeof hp, "%s:%lld", json_string_value(json_object_get(j, "host")),
                 (long long)json_integer_value(json_object_get(j, "port")));
        rc = wbuf_add(out, hp, strlen(hp));
    }
    json_decref(j);
    return rc;
}

int zk_kafka_brokers(const char *connect, const char *path, const char *protocol, double timeout, wbuf *out,
                     char *err, size_t errlen)
{
    zk z = {.fd = -1, .deadline = clock_mono() + timeout, .err = err, .errlen = errlen};
    err[0] = 0;
    /* "h1:p1,h2:p2/chroot": the chroot prefixes the path */
    char *hosts = strdup(connect), *chroot = hosts ? strchr(hosts, '/') : NULL;
    if (!hosts) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char full[1024];
    snprintf(full, sizeof full, "%s%s", chroot ? chroot : "", path);
    if (chroot)
        *chroot = 0;
    size_t fl = strlen(full);
    while (fl > 1 && full[fl - 1] == '/')
        full[--fl] = 0;
    int rc = -1, n = 0;
    rd r;
    if (session(&z, hosts) == 0 && request(&z, ZK_GET_CHILDREN, full, &r) == 0) {
        int32_t count = (int32_t)get_be(&r, 4);
        /* the children's names, copied: each getData reuses the frame */
        char **ids = count > 0 && count < 100000 ? calloc((size_t)count, sizeof *ids) : NULL;
        for (int32_t i = 0; ids && i < count; i++) {
            int32_t l;
            const uint8_t *s = get_bytes(&r, &l);
            ids[i] = s ? strndup((const char *)s, (size_t)l) : NULL;
        }
        rc = r.bad ? -1 : 0;
        if (r.bad)
            snprintf(err, errlen, "%s: malformed children list", full);
        for (int32_t i = 0; ids && i < count && rc == 0; i++) {
            char child[1300];
            snprintf(child, sizeof child, "%s/%s", full, ids[i] ? ids[i] : "");
            rd d;
            int32_t l;
            const uint8_t *data;
            if (request(&z, ZK_GET_DATA, child, &d) != 0) {
                rc = -1;
            } else if ((data = get_bytes(&d, &l)) == NULL) {
                continue; /* a node without data: not a broker */
            } else {
                size_t at = out->len;
                if (n && wbuf_addc(out, ','))
                    rc = -1;
                else if (zk_broker_address(data, (size_t)l, protocol, out) == 0)
                    n++;
                else
                    out->len = at; /* no address for this protocol */
            }
        }
        for (int32_t i = 0; ids && i < count; i++)
            free(ids[i]);
        free(ids);
        if (rc == 0 && !n) {
            snprintf(err, errlen, "%s lists no broker with a %s address", full, protocol);
            rc = -1;
        }
        /* close the session (its answer's errors are not the caller's) */
        rd c;
        char cerr[128];
        z.err = cerr;
        z.errlen = sizeof cerr;
        (void)request(&z, ZK_CLOSE, NULL, &c);
    }
    if (z.fd >= 0)
        close(z.fd);
    free(z.frame);
    free(hosts);
    return rc;
}
