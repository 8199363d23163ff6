/*
 * aggregator/rewrite_tag.h: rewrite_tag_filter (fluent-plugin-rewrite-tag-
 * filter). In Fluentd an output plugin that re-emits; in weir a kind of
 * <match> target the router makes for `@type rewrite_tag_filter` (like copy
 * and relabel, it is not in the plugin registry), and whose records it
 * routes again into the same label, or into `@label`.
 *
 *   <match app.**>
 *     @type rewrite_tag_filter
 *     remove_tag_prefix app            (and/or remove_tag_regexp /RE/)
 *     capitalize_regex_backreference false
 *     <rule>
 *       key     $.kubernetes.namespace_name   (a record accessor)
 *       pattern /^(kube-.*)$/
 *       tag     system.$1.${tag}               ($1-$9, ${tag}, __TAG__,
 *     </rule>                                   ${tag_parts[N]}, ${hostname})
 *   </match>
 *
 * Each record takes the tag of its first matching <rule> (`invert true`:
 * the first not matching); the value tested is record[key] as text, missing
 * or nil being "" (which never matches a normal rule). A record that no rule
 * takes is dropped, and so is one rewritten to its own tag (a loop
 * otherwise). hostname_command and emit_mode are accepted and ignored.
 */
#ifndef WEIR_REWRITE_TAG_H
#define WEIR_REWRITE_TAG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "config/conf.h"

typedef struct rewrite_tag rewrite_tag;

/* From the <match> section (its @type, @label are the router's). NULL on
 * error (errors added). */
rewrite_tag *rewrite_tag_create(conf_node *n, conf_errors *errs);
void rewrite_tag_free(rewrite_tag *rw);

/* The records of one new tag, as batch entries. */
typedef struct rewrite_tag_group {
    char tag[512];
    size_t tag_len;
    wbuf w;     /* entries: [time(, meta)] record */
    uint32_t n; /* records */
} rewrite_tag_group;

/*
 * Give each record of b (all of tag `tag`) its new tag: returns the groups
 * in the order their tags first appeared (*ngroups of them, NULL for none;
 * the caller frees each w and the array), with *ndropped the records no rule
 * took and *nsame those rewritten to their own tag. `text` is the caller's
 * scratch buffer.
 */
rewrite_tag_group *rewrite_tag_split(const rewrite_tag *rw, const batch *b, const char *tag, size_t tag_len,
                                     wbuf *text, size_t *ngroups, uint32_t *ndropped, uint32_t *nsame);

#endif
