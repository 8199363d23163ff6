/*
 * outputs/forward/sd.h: <service_discovery> of the forward output (sd.c).
 */
#ifndef WEIR_OUT_FORWARD_SD_H
#define WEIR_OUT_FORWARD_SD_H

#include <stddef.h>

#include "lib/wbuf.h"
#include "config/conf.h"

/* <service_discovery> (Fluentd's sd_static and sd_file): its parameters (docs), and the servers it lists,
 * each handed to add as a <server> node (@type static: its <service> sections; @type file: the file's
 * entries). 0, or -1 with errors added; @type srv is refused. */
extern const conf_spec out_forward_sd_spec[];
int fwd_sd_add(conf_node *ch, int (*add)(void *c, conf_node *server, conf_errors *errs), void *c, conf_errors *errs);

/* Read Fluentd's sd_file at path (YAML, or JSON when the name ends .json) into out as <server>
 * sections in Fluentd syntax (the caller parses and binds them; out is the caller's). -1 with err
 * (naming the file and line). */
int fwd_sd_file_servers(const char *path, wbuf *out, char *err, size_t errlen);

#endif
