/*
 * outputs/elasticsearch/index.h: the index name of a record, from a
 * template compiled once at init (index.c).
 * Ownership: an es_index owns its parts; es_index_free releases them.
 */
#ifndef WEIR_ES_INDEX_H
#define WEIR_ES_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "aggregator/record.h"

enum { PT_LIT, PT_TAG, PT_TAG_PART, PT_REC };

typedef struct es_index_part {
    int kind;
    char *lit;    /* PT_LIT */
    int has_pct;  /* PT_LIT holds strftime directives */
    int tag_idx;  /* PT_TAG_PART (negative: from the end) */
    rec_path path; /* PT_REC */
} es_index_part;

typedef struct es_index {
    es_index_part *p;
    size_t n;
    int per_record; /* has record placeholders: no caching */
    int day_only;   /* its strftime directives name the day at most (%Y %m %d %y %j %F %e %C %%): in UTC the
                       name is the same all day */
} es_index;

struct out_es;

/* Compile the configured index name into c->index: data_stream_name, else
 * logstash_prefix + logstash_prefix_separator + logstash_dateformat
 * (logstash_format), else index_name. -1 with err on a bad placeholder. */
int es_index_init(struct out_es *c, char *err, size_t errlen);
/* Compile "logs-${tag}-%Y.%m.%d" into parts. -1 with err on a bad placeholder. */
int es_index_compile(es_index *t, const char *s, char *err, size_t errlen);
/* Append the index name of e at time sec (UTC, or local time unless utc)
 * to out, lowercased. -1 with err when a placeholder has no value in e. */
int es_index_expand(const es_index *t, wbuf *out, const entry *e, uint32_t sec, int utc, char *err, size_t errlen);
/* Release the parts; t is left empty. */
void es_index_free(es_index *t);

#endif
