/*
 * outputs/forward/sd.h: <service_discovery> @type file of the forward
 * output (sd.c).
 */
#ifndef WEIR_OUT_FORWARD_SD_H
#define WEIR_OUT_FORWARD_SD_H

#include <stddef.h>

#include "lib/wbuf.h"

/* Read Fluentd's sd_file at path (YAML, or JSON when the name ends .json) into out as <server>
 * sections in Fluentd syntax (the caller parses and binds them; out is the caller's). -1 with err
 * (naming the file and line). */
int fwd_sd_file_servers(const char *path, wbuf *out, char *err, size_t errlen);

#endif
