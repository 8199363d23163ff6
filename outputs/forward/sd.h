/*
 * outputs/forward/sd.h: <service_discovery> of the forward output (sd.c).
 */
#ifndef WEIR_OUT_FORWARD_SD_H
#define WEIR_OUT_FORWARD_SD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"
#include "config/conf.h"

/* <service_discovery> @type srv (Fluentd's sd_srv): its parameters, bound at init; the records are
 * queried by the output at start and every `interval` s (fwd_srv_query), never at init (--dry-run). */
typedef struct fwd_sd_srv {
    char *service, *proto, *hostname, *dns_server_host;
    int64_t interval;
    int dns_lookup;
    char *shared_key, *username, *password;
    /* computed */
    char target[1040]; /* _service._proto.hostname */
    uint32_t ns_addr;  /* dns_server_host's IPv4 address (network order), 0: the system's resolver */
    uint16_t ns_port;  /* network order */
} fwd_sd_srv;

/* One server an SRV answer lists: name is the record's target, host its address (dns_lookup) or the target. */
typedef struct fwd_srv_rec {
    char name[1025], host[1025];
    int port, weight, priority;
} fwd_srv_rec;

/* <service_discovery> (Fluentd's sd_static, sd_file, sd_srv): its parameters (docs), and the servers it
 * lists, each handed to add as a <server> node (@type static: its <service> sections; @type file: the
 * file's entries). @type srv: its parameters into a malloc'd *srv (one per output; NULL before). 0, or -1
 * with errors added. */
extern const conf_spec out_forward_sd_spec[], out_forward_sd_srv_spec[];
int fwd_sd_add(conf_node *ch, int (*add)(void *c, conf_node *server, conf_errors *errs), void *c,
               fwd_sd_srv **srv, conf_errors *errs);
void fwd_sd_srv_free(fwd_sd_srv *srv);

/* Query the SRV records of srv->target (and, with dns_lookup, each target's address) through
 * dns_server_host or the system's resolver, with a short timeout (2 s per try, 2 tries). The records
 * sorted by priority into a malloc'd *recs (*n may be 0: no records). 0, or -1 with err. Any thread;
 * blocks for the query. */
int fwd_srv_query(const fwd_sd_srv *srv, fwd_srv_rec **recs, size_t *n, char *err, size_t errlen);

/* Read Fluentd's sd_file at path (YAML, or JSON when the name ends .json) into out as <server>
 * sections in Fluentd syntax (the caller parses and binds them; out is the caller's). -1 with err
 * (naming the file and line). */
int fwd_sd_file_servers(const char *path, wbuf *out, char *err, size_t errlen);

#endif
