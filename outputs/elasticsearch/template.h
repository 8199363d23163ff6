/*
 * outputs/elasticsearch/template.h: the index template (template.c).
 */
#ifndef WEIR_ES_TEMPLATE_H
#define WEIR_ES_TEMPLATE_H

#include <stddef.h>

#include "config/conf.h"
#include "aggregator/output.h"
#include "outputs/elasticsearch/es.h"

/* template_name + template_file: read and check the file, then each `templates` entry: add to c->tmpl_body/tmpl_url. -1 when bad (error added) or OOM. */
int es_template_load(out_es *c, conf_node *n, conf_errors *errs);
/* A data stream without a template of its own gets a minimal one (c->tmpl_body/tmpl_url). -1 on OOM. */
int es_template_data_stream(out_es *c);
/* Free the templates. */
void es_template_free(out_es *c);
/* Install the template once, before the first bulk: 0 when done or not needed, -1 with why. Any thread. */
int es_template_ensure(output *o, out_es *c, char *why, size_t whylen);

#endif
