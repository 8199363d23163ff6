/* lib/net.h: a TCP connection with a time limit. */
#ifndef WEIR_LIB_NET_H
#define WEIR_LIB_NET_H

#include <stddef.h>

/* Connect to host:port (each address getaddrinfo gives, in turn), each
 * attempt within timeout seconds. Returns the socket (blocking, close-on-exec,
 * TCP_NODELAY), -1 when the name does not resolve, -2 when no address
 * accepted; `why` then holds the reason (gai_strerror or strerror). */
int net_connect(const char *host, const char *port, double timeout, char *why, size_t wl);

#endif
