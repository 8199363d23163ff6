/* aggregator/tap.c: live tap (server side and the `weir tap` client); see tap.h. */
#include "aggregator/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/timefmt.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "aggregator/tagmatch.h"

#define TAP_MAX_PENDING (4u << 20) /* bytes of lines waiting for the monitor thread */
#define TAP_MAX_TAPS 16

atomic_int tap_open_count;

struct tap {
    char *patterns;
    char *output_id; /* NULL: any output */
    double rate;     /* records per second */
    void (*wake)(void *);
    void *wake_arg;
    pthread_mutex_t mu; /* below */
    double tokens, last;
    wbuf pending;
    uint64_t dropped;
    int woken;
};

static pthread_mutex_t taps_mu = PTHREAD_MUTEX_INITIALIZER;
static tap *taps[TAP_MAX_TAPS];

tap *tap_open(const char *patterns, const char *output_id, double rate, void (*wake)(void *), void *arg)
{
    tap *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->patterns = strdup(patterns);
    t->output_id = output_id && *output_id ? strdup(output_id) : NULL;
    t->rate = rate > 0 ? rate : 100;
    t->tokens = t->rate;
    t->last = clock_mono();
    t->wake = wake;
    t->wake_arg = arg;
    t->pending.max = TAP_MAX_PENDING;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_lock(&taps_mu);
    int slot = -1;
    for (int i = 0; i < TAP_MAX_TAPS && slot < 0; i++)
        if (!taps[i])
            slot = i;
    if (slot >= 0) {
        taps[slot] = t;
        atomic_fetch_add(&tap_open_count, 1);
    }
    pthread_mutex_unlock(&taps_mu);
    if (slot < 0 || !t->patterns) {
        free(t->patterns);
        free(t->output_id);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void tap_close(tap *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&taps_mu); /* no tap_offer_slow holds t after this */
    for (int i = 0; i < TAP_MAX_TAPS; i++)
        if (taps[i] == t) {
            taps[i] = NULL;
            atomic_fetch_sub(&tap_open_count, 1);
        }
    pthread_mutex_unlock(&taps_mu);
    wbuf_free(&t->pending);
    free(t->patterns);
    free(t->output_id);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void tap_take(tap *t, wbuf *out, uint64_t *dropped)
{
    pthread_mutex_lock(&t->mu);
    if (t->pending.len)
        wbuf_add(out, t->pending.data, t->pending.len);
    t->pending.len = 0;
    *dropped = t->dropped;
    t->dropped = 0;
    t->woken = 0;
    pthread_mutex_unlock(&t->mu);
}

/* One JSON line: {"tag":..,"time":"RFC3339 ns","output":..,"record":{..}} */
static int put_line(wbuf *w, const char *tag, const char *output_id, const entry *e)
{
    char ts[64];
    size_t tl = time_fmt(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.%NZ", e->sec, e->nsec, 1);
    const uint8_t *p = e->record;
    size_t mark = w->len;
    if (wbuf_add(w, "{\"tag\":", 7) || jw_string(w, (const uint8_t *)tag, strlen(tag)) ||
        wbuf_add(w, ",\"time\":\"", 9) || wbuf_add(w, ts, tl) || wbuf_add(w, "\",\"output\":", 11) ||
        jw_string(w, (const uint8_t *)output_id, strlen(output_id)) || wbuf_add(w, ",\"record\":", 10) ||
        jw_value(w, &p, e->record + e->record_len) || wbuf_add(w, "}\n", 2)) {
        w->len = mark;
        return -1;
    }
    return 0;
}

static void offer_one(tap *t, const char *output_id, const batch *b)
{
    if (t->output_id && strcmp(t->output_id, output_id) != 0)
        return;
    batch_iter it;
    entry e;
    batch_iter_init(&it, b);
    int added = 0;
    pthread_mutex_lock(&t->mu);
    double now = clock_mono();
    t->tokens += (now - t->last) * t->rate;
    if (t->tokens > t->rate)
        t->tokens = t->rate;
    t->last = now;
    while (batch_iter_next(&it, &e) == 1) {
        if (!route_patterns_match(t->patterns, e.tag))
            continue;
        if (t->tokens < 1 || put_line(&t->pending, e.tag, output_id, &e) != 0) {
            t->dropped++;
            continue;
        }
        t->tokens -= 1;
        added = 1;
    }
    int wake = added && !t->woken;
    if (wake)
        t->woken = 1;
    pthread_mutex_unlock(&t->mu);
    if (wake)
        t->wake(t->wake_arg);
}

void tap_offer_slow(const char *output_id, const batch *b)
{
    pthread_mutex_lock(&taps_mu);
    for (int i = 0; i < TAP_MAX_TAPS; i++)
        if (taps[i])
            offer_one(taps[i], output_id, b);
    pthread_mutex_unlock(&taps_mu);
}

/* ---- the client ----------------------------------------------------------- */

static void tap_usage(FILE *f)
{
    fprintf(f, "usage: weir tap [--endpoint HOST:PORT] [--rate N] [--output ID] [--token T] PATTERN\n"
               "\n"
               "Prints the records the running weir routes to outputs whose tag matches\n"
               "PATTERN (Fluentd match syntax: app.**, {a,b}.*, several separated by spaces)\n"
               "as JSON lines: {\"tag\",\"time\",\"output\",\"record\"}. Needs a\n"
               "<source @type monitor_agent> (or prometheus) in the server's configuration.\n"
               "\n"
               "  --endpoint HOST:PORT  the server's monitor endpoint (default 127.0.0.1:24220)\n"
               "  --rate N              at most N records per second (default 100); the\n"
               "                        server counts what it skips and says so\n"
               "  --output ID           only records going to the output with this @id\n"
               "  --token TOKEN         the monitor's tap_token, for an endpoint that is not on loopback\n"
               "                        (default: $WEIR_TAP_TOKEN)\n");
}

int tap_client_main(int argc, char **argv)
{
    const char *endpoint = "127.0.0.1:24220", *output_id = "", *token = getenv("WEIR_TAP_TOKEN");
    double rate = 100;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"rate", required_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},   {"help", no_argument, NULL, 'h'},
        {"token", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "e:r:o:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'e': endpoint = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'o': output_id = optarg; break;
        case 't': token = optarg; break;
        case 'h': tap_usage(stdout); return 0;
        default: tap_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || rate <= 0) {
        tap_usage(stderr);
        return 2;
    }
    const char *pattern = argv[optind];
    char host[256];
    const char *colon = strrchr(endpoint, ':');
    if (!colon || colon == endpoint || (size_t)(colon - endpoint) >= sizeof host) {
        fprintf(stderr, "weir tap: --endpoint must be HOST:PORT\n");
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - endpoint), endpoint);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai) {
        fprintf(stderr, "weir tap: %s: %s\n", endpoint, gai_strerror(gai));
        return 1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "weir tap: cannot connect to %s: %s (is a monitor_agent source configured?)\n", endpoint,
                strerror(errno));
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);
    wbuf q = {0};
    char head[128];
    int hl = snprintf(head, sizeof head, "GET /api/tap?rate=%g&pattern=", rate);
    wbuf_add(&q, head, (size_t)hl);
    http_urlencode(&q, pattern, strlen(pattern));
    if (*output_id) {
        wbuf_add(&q, "&output=", 8);
        http_urlencode(&q, output_id, strlen(output_id));
    }
    const char *tail = " HTTP/1.0\r\nHost: weir\r\n";
    wbuf_add(&q, tail, strlen(tail));
    if (token && *token) {
        wbuf_add(&q, "Authorization: Bearer ", 22);
        wbuf_add(&q, token, strlen(token));
        wbuf_add(&q, "\r\n", 2);
    }
    wbuf_add(&q, "\r\n", 2);
    if (write(fd, q.data, q.len) != (ssize_t)q.len) {
        fprintf(stderr, "weir tap: write failed: %s\n", strerror(errno));
        return 1;
    }
    wbuf_free(&q);
    /* status line and headers, then the body to stdout as it comes */
    char buf[65536];
    size_t have = 0;
    int in_body = 0, status = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (!in_body) {
            char *end = memmem(buf, have, "\r\n\r\n", 4);
            if (!end) {
                if (have == sizeof buf)
                    break;
                continue;
            }
            sscanf(buf, "HTTP/%*s %d", &status);
            size_t hlen = (size_t)(end + 4 - buf);
            if (status != 200) {
                fprintf(stderr, "weir tap: the server answered %d: %.*s", status, (int)(have - hlen), buf + hlen);
                close(fd);
                return 1;
            }
            in_body = 1;
            fwrite(buf + hlen, 1, have - hlen, stdout);
        } else {
            fwrite(buf, 1, have, stdout);
        }
        fflush(stdout);
        have = 0;
    }
    close(fd);
    if (!in_body) {
        fprintf(stderr, "weir tap: no answer from %s\n", endpoint);
        return 1;
    }
    return 0;
}
