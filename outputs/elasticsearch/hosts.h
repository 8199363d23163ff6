/*
 * outputs/elasticsearch/hosts.h: the nodes a request can go to, and the
 * failover of a request from one to the next (hosts.c).
 */
#ifndef WEIR_ES_HOSTS_H
#define WEIR_ES_HOSTS_H

#include <stddef.h>

#include "lib/http.h"
#include "config/conf.h"
#include "aggregator/output.h"
#include "outputs/elasticsearch/es.h"

/* Fill c->bases from `hosts`, or host/port (scheme, path). -1 on a bad entry (error added) or OOM. */
int es_hosts_parse(out_es *c, conf_node *n, conf_errors *errs);
/* Run the n requests reqs (their url set here from suffix; urls[] holds the malloc'd URLs, freed by the
 * caller) with failover: a transport error or es_status_next_host goes to the next host, one try per host. */
void es_perform_failover(output *o, out_es *c, http_req *reqs, char **urls, size_t n, const char *suffix);

#endif
