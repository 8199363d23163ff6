/* Unit tests: lib/http.c against a small HTTP/1.1 server on a thread of
 * this test (127.0.0.1, ephemeral port): concurrent requests, keep-alive
 * reuse across calls, gzip bodies, response bodies, a refused connection
 * and a timeout. The server answers "<method> <path> <body bytes> <gzip?>";
 * for /big/N, N bytes of 'b' (the response bound and its memory budget). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/http.h"
#include "lib/membudget.h"

static int g_lfd, g_port;
static atomic_int g_accepts;
static pthread_t g_thr;

static ssize_t read_until(int fd, char *buf, size_t cap, size_t *have, const char *needle)
{
    while (!memmem(buf, *have, needle, strlen(needle))) {
        if (*have >= cap)
            return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static __thread char buf[1 << 20];
    size_t have = 0;
    for (;;) {
        if (read_until(fd, buf, sizeof buf, &have, "\r\n\r\n") != 0)
            break;
        char *end = (char *)memmem(buf, have, "\r\n\r\n", 4) + 4;
        size_t hlen = (size_t)(end - buf);
        size_t clen = 0;
        char *cl = strcasestr(buf, "content-length:");
        if (cl && cl < end)
            clen = strtoul(cl + 15, NULL, 10);
        int gz = strcasestr(buf, "content-encoding: gzip") && strcasestr(buf, "content-encoding: gzip") < end;
        while (have < hlen + clen) {
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        char method[16] = "", path[256] = "";
        sscanf(buf, "%15s %255s", method, path);
        int magic = clen >= 2 && (uint8_t)buf[hlen] == 0x1f && (uint8_t)buf[hlen + 1] == 0x8b;
        if (strstr(path, "/stall"))
            sleep(3);
        if (!strncmp(path, "/big/", 5)) {
            size_t n = strtoul(path + 5, NULL, 10);
            char hdr[128];
            int hl = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 X\r\nContent-Length: %zu\r\n\r\n", n);
            if (write(fd, hdr, (size_t)hl) != hl)
                break;
            static __thread char bs[65536];
            memset(bs, 'b', sizeof bs);
            for (size_t done = 0; done < n;) {
                size_t k = n - done < sizeof bs ? n - done : sizeof bs;
                ssize_t w = write(fd, bs, k);
                if (w <= 0)
                    goto out;
                done += (size_t)w;
            }
            memmove(buf, buf + hlen + clen, have - hlen - clen);
            have -= hlen + clen;
            continue;
        }
        char body[512], resp[1024];
        int bl = snprintf(body, sizeof body, "%s %s %zu %d%d", method, path, clen, gz, magic);
        int status = strstr(path, "/429") ? 429 : 200;
        int rl = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", status, bl, body);
        if (write(fd, resp, (size_t)rl) != rl)
            break;
        memmove(buf, buf + hlen + clen, have - hlen - clen);
        have -= hlen + clen;
    }
out:
    close(fd);
    return NULL;
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(g_lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&g_accepts, 1);
        pthread_t t;
        pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static int setup_server(void **state)
{
    (void)state;
    g_lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(g_lfd, (struct sockaddr *)&a, sizeof a) || listen(g_lfd, 64))
        return -1;
    socklen_t l = sizeof a;
    getsockname(g_lfd, (struct sockaddr *)&a, &l);
    g_port = ntohs(a.sin_port);
    return pthread_create(&g_thr, NULL, server_main, NULL);
}

static int teardown_server(void **state)
{
    (void)state;
    shutdown(g_lfd, SHUT_RDWR);
    close(g_lfd);
    pthread_join(g_thr, NULL);
    return 0;
}

static void url(char *out, size_t n, const char *path) { snprintf(out, n, "http://127.0.0.1:%d%s", g_port, path); }

static void test_concurrent_and_keepalive(void **state)
{
    (void)state;
    char err[128];
    http_opts o = {.max_in_flight = 3, .timeout = 5};
    http_client *c = http_client_new(&o, err, sizeof err);
    assert_non_null(c);
    enum { N = 10 };
    http_req r[N];
    char urls[N][64];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof p, "/doc/%d", i);
        url(urls[i], sizeof urls[i], p);
        r[i].method = "POST";
        r[i].url = urls[i];
        r[i].body = (const uint8_t *)"hello world";
        r[i].body_len = 11;
    }
    int before = atomic_load(&g_accepts);
    assert_int_equal(http_perform(c, r, N), 0);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "POST /doc/%d 11 00", i);
        assert_int_equal(r[i].status, 200);
        assert_string_equal((char *)r[i].resp.data, want);
    }
    int used = atomic_load(&g_accepts) - before;
    assert_true(used >= 1 && used <= 3); /* at most max_in_flight connections */
    /* a second call reuses the open connections */
    assert_int_equal(http_perform(c, r, N), 0);
    assert_int_equal(atomic_load(&g_accepts) - before, used);
    for (int i = 0; i < N; i++)
        http_req_clear(&r[i]);
    http_client_free(c);
}

static void test_gzip_and_status(void **state)
{
    (void)state;
    char err[128], u1[64], u2[64];
    http_opts o = {.timeout = 5};
    http_client *c = http_client_new(&o, err, sizeof err);
    assert_non_null(c);
    url(u1, sizeof u1, "/gz");
    url(u2, sizeof u2, "/429");
    static const char *hdrs[] = {"Content-Type: application/x-ndjson", NULL};
    char big[4096];
    memset(big, 'a', sizeof big);
    http_req r[2] = {{.method = "PUT", .url = u1, .headers = hdrs, .body = (uint8_t *)big, .body_len = sizeof big,
                      .gzip_level = 6},
                     {.method = "GET", .url = u2}};
    assert_int_equal(http_perform(c, r, 2), 0);
    assert_int_equal(r[0].status, 200);
    /* PUT, compressed (far fewer bytes than 4096), Content-Encoding set, gzip magic */
    char m[8];
    size_t len;
    int gz, magic;
    assert_int_equal(sscanf((char *)r[0].resp.data, "%7s /gz %zu %1d%1d", m, &len, &gz, &magic), 4);
    assert_string_equal(m, "PUT");
    assert_true(len < 200);
    assert_int_equal(gz, 1);
    assert_int_equal(magic, 1);
    assert_int_equal(r[1].status, 429);
    assert_string_equal((char *)r[1].resp.data, "GET /429 0 00");
    http_req_clear(&r[0]);
    http_req_clear(&r[1]);
    http_client_free(c);
}

/* Response bodies: reserved against the memory budget while held, cut at
 * max_response or an eighth of the budget (1 MiB at least), counted. */
static void test_response_bound_and_budget(void **state)
{
    (void)state;
    char err[128], u1[64], u2[64];
    http_opts o = {.timeout = 10, .max_response = 64 << 10};
    http_client *c = http_client_new(&o, err, sizeof err);
    assert_non_null(c);
    uint64_t cut0 = http_responses_truncated(), used0 = mb_in_use();
    url(u1, sizeof u1, "/big/100000");
    url(u2, sizeof u2, "/big/1000");
    http_req r[2] = {{.method = "GET", .url = u1}, {.method = "GET", .url = u2}};
    assert_int_equal(http_perform(c, r, 2), 0);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[0].resp.len, (64 << 10) - 1); /* the head, NUL-terminated */
    assert_int_equal(r[0].resp_truncated, 1);
    assert_int_equal(r[1].resp.len, 1000);
    assert_int_equal(r[1].resp_truncated, 0);
    assert_int_equal(http_responses_truncated(), cut0 + 1);
    assert_true(mb_in_use() >= used0 + r[0].resp.len + r[1].resp.len);
    http_req_clear(&r[0]);
    http_req_clear(&r[1]);
    assert_int_equal(mb_in_use(), used0);
    http_client_free(c);

    /* a budget of 8 MiB: a 16 MiB max_response keeps 1 MiB */
    mb_set_limit(8u << 20);
    http_opts o2 = {.timeout = 10};
    c = http_client_new(&o2, err, sizeof err);
    assert_non_null(c);
    url(u1, sizeof u1, "/big/3000000");
    http_req big = {.method = "GET", .url = u1};
    assert_int_equal(http_perform(c, &big, 1), 0);
    assert_int_equal(big.resp.len, (1u << 20) - 1);
    assert_int_equal(big.resp_truncated, 1);
    assert_int_equal(http_responses_truncated(), cut0 + 2);
    assert_true(mb_in_use() >= used0 + big.resp.len);
    http_req_clear(&big);
    assert_int_equal(mb_in_use(), used0);
    mb_set_limit(0);
    http_client_free(c);
}

static void test_refused_and_timeout(void **state)
{
    (void)state;
    char err[128], u1[64], u2[64];
    http_opts o = {.timeout = 0.5, .connect_timeout = 1};
    http_client *c = http_client_new(&o, err, sizeof err);
    assert_non_null(c);
    /* a port nobody listens on: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    url(u2, sizeof u2, "/stall");
    http_req r[2] = {{.method = "POST", .url = u1, .body = (uint8_t *)"x", .body_len = 1},
                     {.method = "POST", .url = u2, .body = (uint8_t *)"x", .body_len = 1}};
    assert_int_equal(http_perform(c, r, 2), -1);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].transport_error, 1);
    assert_true(strlen(r[0].error) > 0);
    assert_int_equal(r[0].timed_out, 0);
    assert_int_equal(r[1].status, 0);
    assert_int_equal(r[1].timed_out, 1);
    assert_true(r[1].seconds < 2.5);
    http_req_clear(&r[0]);
    http_req_clear(&r[1]);
    http_client_free(c);
}

static void test_urlencode(void **state)
{
    (void)state;
    wbuf b = {0};
    assert_int_equal(http_urlencode(&b, "{app=\"a b\"}/é", strlen("{app=\"a b\"}/é")), 0);
    assert_int_equal(wbuf_addc(&b, 0), 0);
    assert_string_equal((char *)b.data, "%7Bapp%3D%22a%20b%22%7D%2F%C3%A9");
    wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_and_keepalive),
        cmocka_unit_test(test_gzip_and_status),
        cmocka_unit_test(test_response_bound_and_budget),
        cmocka_unit_test(test_refused_and_timeout),
        cmocka_unit_test(test_urlencode),
    };
    return cmocka_run_group_tests(tests, setup_server, teardown_server);
}
