/*
 * forward-protocol/fwd_listen.c: the TCP listener and the UDP heartbeat (main thread);
 * accepted sockets go to the workers round robin.
 * See fwd_conn.h for how the forward input is cut.
 */
#include "forward-protocol/fwd_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "aggregator/tls_server.h"

/* ---- listener and UDP heartbeat (main thread) --------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int socklen, void *arg)
{
    fwd_source *s = arg;
    if (s->max_connections > 0 &&
        atomic_load_explicit(&s->open_conns, memory_order_relaxed) >= s->max_connections) {
        atomic_fetch_add_explicit(&s->conns_refused, 1, memory_order_relaxed);
        static double last_log;
        if (clock_every(&last_log, 10)) {
            wlog_warn("in_forward", "%s: max_connections (%lld) reached: refusing new connections (%llu so far)",
                      s->base.id, (long long)s->max_connections,
                      (unsigned long long)atomic_load(&s->conns_refused));
        }
        close(fd);
        return;
    }
    atomic_fetch_add_explicit(&s->open_conns, 1, memory_order_relaxed);
    accept_msg *m = malloc(sizeof *m);
    if (!m) {
        atomic_fetch_sub_explicit(&s->open_conns, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    m->fd = fd;
    m->src = s;
    memset(&m->addr, 0, sizeof m->addr);
    memcpy(&m->addr, addr, (size_t)socklen < sizeof m->addr ? (size_t)socklen : sizeof m->addr);
    worker *w = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
    worker_post(w, fwd_conn_new, m);
}

static void reenable_accept(evutil_socket_t fd, short what, void *arg) { evconnlistener_enable(arg); }

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    fwd_source *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    wlog_error("in_forward", "%s: accept failed: %s; pausing accepts for 100 ms", s->base.id,
               evutil_socket_error_to_string(err));
    /* EMFILE and friends: back off rather than spin */
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, reenable_accept, l, &tv);
}

/* Fluentd's senders probe with UDP heartbeats: answer "\0" from the same port. */
static void udp_cb(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < 64; i++) {
        uint8_t buf[512];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        ssize_t r = sendto(fd, "\0", 1, 0, (struct sockaddr *)&from, fl);
        (void)r;
    }
}

int fwd_source_listen(fwd_source *s, struct event_base *base, worker *workers, int nworkers)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%lld", (long long)s->port);
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(s->bind, port, &hints, &ai);
    if (gai != 0 || !ai) {
        wlog_error("in_forward", "%s: cannot resolve bind address '%s': %s", s->base.id, s->bind, gai_strerror(gai));
        return -1;
    }
    s->lev = evconnlistener_new_bind(base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                     1024, ai->ai_addr, (int)ai->ai_addrlen);
    if (!s->lev) {
        wlog_error("in_forward", "%s: cannot listen on %s:%s: %s", s->base.id, s->bind, port, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    /* set once listening: fwd_source_free logs the handshake counters only then */
    s->workers = workers;
    s->nworkers = nworkers;
    evconnlistener_set_error_cb(s->lev, accept_error_cb);
    s->udp_fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->udp_fd >= 0)
        setsockopt(s->udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->udp_fd < 0 || bind(s->udp_fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        wlog_warn("in_forward", "%s: cannot bind the UDP heartbeat socket on %s:%s: %s; heartbeats unanswered",
                  s->base.id, s->bind, port, strerror(errno));
        if (s->udp_fd >= 0)
            close(s->udp_fd);
        s->udp_fd = -1;
    } else {
        s->udp_ev = event_new(base, s->udp_fd, EV_READ | EV_PERSIST, udp_cb, s);
        event_add(s->udp_ev, NULL);
    }
    freeaddrinfo(ai);
    char sec[256] = "";
    if (s->tls || s->auth)
        snprintf(sec, sizeof sec, "; %s%s%s%s, handshake_timeout %gs", s->tls ? tls_srv_summary(s->tls) : "",
                 s->tls && s->auth ? ", " : "", s->auth ? "shared-key handshake" : "",
                 s->auth && s->auth->user_auth ? " with user auth" : "", s->handshake_timeout);
    wlog_info("in_forward", "%s: listening on %s:%s (tcp%s), %d workers%s", s->base.id, s->bind, port,
              s->udp_fd >= 0 ? " and udp heartbeat" : "", nworkers, sec);
    return 0;
}

void fwd_source_close(fwd_source *s)
{
    if (s->lev)
        evconnlistener_free(s->lev);
    s->lev = NULL;
    if (s->udp_ev)
        event_free(s->udp_ev);
    s->udp_ev = NULL;
    if (s->udp_fd >= 0)
        close(s->udp_fd);
    s->udp_fd = -1;
}
