/*
 * outputs/elasticsearch/elasticsearch.c: fluent-plugin-elasticsearch's
 * out_elasticsearch (also registered as `opensearch`): records become _bulk
 * requests.
 *
 * One write turns a batch into NDJSON (action line + document line per
 * record: bulk.c, with the index name of index.c), cut into requests of at
 * most bulk_message_request_threshold bytes that run concurrently through
 * the shared HTTP client (keep-alive pool, http_max_in_flight at once),
 * each with failover to the next of `hosts` (hosts.c). Every request is
 * answered per item (the status table: response.c); records answered 429
 * or 503 are sent again alone within the write, up to bulk_retry_limit
 * times with a back-off from bulk_retry_wait, then left to the buffer's
 * retry (OUT_RETRY). When no request got through, the whole batch is
 * OUT_RETRY. The index template is installed before the first bulk
 * (template.c).
 *
 * Here: the parameters, init (checks, the index name, the HTTP client),
 * exit, and the write (encode, rounds of bulk requests, results and logs).
 *
 * Ownership and threads: the context (bound config, compiled templates,
 * hosts, the http_client) is built by init on the main thread and read-only
 * afterwards, except `rr` (atomic round-robin counter), `failing` (atomic,
 * for log de-duplication) and the template state under tmpl_mu. A write
 * owns all of its buffers, so several flush threads may write at once.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/array.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"
#include "outputs/elasticsearch/bulk.h"
#include "outputs/elasticsearch/es.h"
#include "outputs/elasticsearch/hosts.h"
#include "outputs/elasticsearch/index.h"
#include "outputs/elasticsearch/response.h"
#include "outputs/elasticsearch/template.h"

enum { ES_C0 = __COUNTER__ };
#define S(i) COMPAT_SLOT(out_es, i)

static const conf_spec es_spec[] = {
    {"host", CONF_STR, "localhost", 0, offsetof(out_es, host), NULL, "one node (without `hosts`)"},
    {"port", CONF_INT, "9200", 0, offsetof(out_es, port), NULL, "its port"},
    {"hosts", CONF_ARRAY, NULL, 0, offsetof(out_es, hosts), NULL,
     "several nodes, `h1:9200,h2:9201` or URLs `https://h:9200/prefix` (credentials in a URL are passed to "
     "libcurl). Each write starts at the next host (round robin); a request that fails on one host (connection "
     "refused, timeout, TLS error, 401/403/408/429/5xx for the whole request) is sent to the next one within the "
     "same write, up to one try per host"},
    {"scheme", CONF_ENUM, "http", 0, offsetof(out_es, scheme), "http|https",
     "for `host`/`port` and host:port entries of `hosts`"},
    {"path", CONF_STR, NULL, 0, offsetof(out_es, path), NULL, "URL prefix in front of `/_bulk` (a proxy path)"},
    {"user", CONF_STR, NULL, 0, offsetof(out_es, user), NULL, "HTTP basic auth user"},
    {"password", CONF_STR, NULL, 0, offsetof(out_es, password), NULL, "HTTP basic auth password"},
    {"api_key", CONF_STR, NULL, 0, offsetof(out_es, api_key), NULL,
     "sent as `Authorization: ApiKey <value>` (the base64 `id:api_key` ES gives you)"},
    {"ssl_verify", CONF_BOOL, "true", 0, offsetof(out_es, ssl_verify), NULL,
     "verify the server certificate and host name"},
    {"ca_file", CONF_STR, NULL, 0, offsetof(out_es, ca_file), NULL,
     "PEM bundle to verify the server with; default: the system CAs"},
    {"client_cert", CONF_STR, NULL, 0, offsetof(out_es, client_cert), NULL, "client certificate (mTLS), PEM"},
    {"client_key", CONF_STR, NULL, 0, offsetof(out_es, client_key), NULL, "its private key, PEM"},
    {"client_key_pass", CONF_STR, NULL, 0, offsetof(out_es, client_key_pass), NULL, "passphrase of `client_key`"},
    {"logstash_format", CONF_BOOL, "false", 0, offsetof(out_es, logstash_format), NULL,
     "index `<logstash_prefix><logstash_prefix_separator><logstash_dateformat>`; also adds `@timestamp`"},
    {"logstash_prefix", CONF_STR, "logstash", 0, offsetof(out_es, logstash_prefix), NULL,
     "may hold placeholders (see \"Placeholders\")"},
    {"logstash_prefix_separator", CONF_STR, "-", 0, offsetof(out_es, logstash_prefix_separator), NULL,
     "between the prefix and the date"},
    {"logstash_dateformat", CONF_STR, "%Y.%m.%d", 0, offsetof(out_es, logstash_dateformat), NULL,
     "strftime of the record's time"},
    {"index_name", CONF_STR, "fluentd", 0, offsetof(out_es, index_name), NULL,
     "index when `logstash_format` is false; placeholders and strftime directives allowed"},
    {"include_tag_key", CONF_BOOL, "false", 0, offsetof(out_es, include_tag_key), NULL,
     "add the tag to the document, under `tag_key`"},
    {"tag_key", CONF_STR, "tag", 0, offsetof(out_es, tag_key), NULL, "the key of `include_tag_key`"},
    {"time_key", CONF_STR, NULL, 0, offsetof(out_es, time_key), NULL,
     "take the record's time from this field (record accessor; ISO 8601 / RFC 3339 string or epoch seconds); it "
     "then names the index and `@timestamp`"},
    {"time_key_exclude_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, time_key_exclude_timestamp), NULL,
     "with `time_key`: do not add `@timestamp`"},
    {"include_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, include_timestamp), NULL,
     "add `@timestamp` without `logstash_format`"},
    {"time_precision", CONF_INT, "9", 0, offsetof(out_es, time_precision), NULL,
     "fraction digits of `@timestamp` (0..9); it is written in UTC, `2026-11-22T01:02:03.123456789Z`"},
    {"utc_index", CONF_BOOL, "true", 0, offsetof(out_es, utc_index), NULL,
     "the date in index names is UTC; `false`: weir's local time zone (`TZ`)"},
    {"id_key", CONF_STR, NULL, 0, offsetof(out_es, id_key), NULL,
     "`_id` from this field (record accessor); a record without it gets an ES-generated id. Excludes `generate_id`"},
    {"generate_id", CONF_BOOL, "false", 0, offsetof(out_es, generate_id), NULL,
     "weir extension: a deterministic `_id`, base64url(SHA-1(tag, event time with nanoseconds, record)), 27 "
     "characters (see \"Duplicates and `generate_id`\"). Excludes `id_key`"},
    {"write_operation", CONF_ENUM, "index", 0, offsetof(out_es, write_operation), "index|create|update|upsert",
     "the bulk action. `update`/`upsert` need `id_key` (or `generate_id`); a record without an id is not sent "
     "(dead letter). `update` sends `{\"doc\":record}`, `upsert` `{\"doc\":record,\"doc_as_upsert\":true}` (with "
     "keys left out of the update: `{\"doc\":...,\"upsert\":record}`)"},
    {"data_stream_name", CONF_STR, NULL, 0, offsetof(out_es, data_stream_name), NULL,
     "write to a data stream (implies `create` and `@timestamp`; excludes `logstash_format`). Without "
     "`template_name`, an index template `{\"index_patterns\":[NAME],\"data_stream\":{},\"priority\":500}` named "
     "after the stream is installed unless one of that name exists"},
    {"template_name", CONF_STR, NULL, 0, offsetof(out_es, template_name), NULL,
     "install the index template `template_file` under this name before the first bulk"},
    {"template_file", CONF_STR, NULL, 0, offsetof(out_es, template_file), NULL,
     "the template: a composable template (has a `template` object, `composed_of` or `data_stream`) goes to "
     "`_index_template/NAME`, anything else to the legacy `_template/NAME`"},
    {"template_overwrite", CONF_BOOL, "false", 0, offsetof(out_es, template_overwrite), NULL,
     "`false`: leave an existing template of that name alone"},
    {"compression_level", CONF_ENUM, "no_compression", 0, offsetof(out_es, compression_level),
     "no_compression|best_speed|best_compression|default_compression",
     "gzip request bodies (`Content-Encoding: gzip`) at level 1 (`best_speed`), 6 (`default_compression`) or 9 "
     "(`best_compression`)"},
    {"request_timeout", CONF_TIME, "5s", 0, offsetof(out_es, request_timeout), NULL,
     "whole-request timeout (the connect timeout is the smaller of this and 10 s)"},
    {"bulk_message_request_threshold", CONF_STR, "20m", 0, offsetof(out_es, bulk_threshold), NULL,
     "a size: a write is cut into `_bulk` requests of at most this many bytes (uncompressed); `-1`: one request per "
     "write"},
    {"http_max_in_flight", CONF_INT, "4", 0, offsetof(out_es, max_in_flight), NULL,
     "weir extension: how many of those requests run at once per flush thread, 1..64 (keep-alive connections are "
     "pooled per output)"},
    {"bulk_retry_limit", CONF_INT, "3", 0, offsetof(out_es, bulk_retry_limit), NULL,
     "weir extension: 429/503 items (and whole-request 429/503) are sent again within the same write this many "
     "times, after `bulk_retry_wait`, doubling; what is still rejected goes back to the buffer"},
    {"bulk_retry_wait", CONF_TIME, "0.1s", 0, offsetof(out_es, bulk_retry_wait), NULL,
     "first back-off of those in-write retries"},
    /* fluent-plugin-elasticsearch's other parameters: implemented */
    {"cloud_id", CONF_STR, NULL, 0, offsetof(out_es, cloud_id), NULL,
     "Elastic Cloud id `name:base64(host$es_uuid$kibana_uuid)`: the node is `https://es_uuid.host:443` (replaces "
     "`host`/`hosts`); needs `cloud_auth`"},
    {"cloud_auth", CONF_STR, NULL, 0, offsetof(out_es, cloud_auth), NULL, "`user:password` for `cloud_id`"},
    {"target_index_key", CONF_STR, NULL, 0, offsetof(out_es, target_index_key), NULL,
     "a record key (dots: nested keys, `a.b`) whose value, lowercased, is the record's index instead of "
     "`index_name`/`logstash_format`; the key is removed from the document. A record without it (or nil/false) goes "
     "to the configured index"},
    {"time_key_format", CONF_STR, NULL, 0, offsetof(out_es, time_key_format), NULL,
     "strptime format of the `time_key` / `@timestamp` value (e.g. `%Y-%m-%dT%H:%M:%S.%N%z`); without a zone in the "
     "value, local time. Default: ISO 8601 and the other common forms"},
    {"routing_key", CONF_STR, NULL, 0, offsetof(out_es, routing_key), NULL,
     "`routing` of the action from this record field (record accessor)"},
    {"parent_key", CONF_STR, NULL, 0, offsetof(out_es, parent_key), NULL,
     "the parent document's id from this record field (record accessor). Elasticsearch 6+ has no `_parent`: a "
     "child of a `join` field must be on its parent's shard, so weir sends the value as the action's `routing` "
     "(what the plugin's `_parent` did on Elasticsearch 5; one warning at start). `routing_key`, when the record "
     "has it, wins"},
    {"pipeline", CONF_STR, NULL, 0, offsetof(out_es, pipeline), NULL,
     "ingest pipeline for every document (`pipeline` in the action line)"},
    {"remove_keys", CONF_ARRAY, NULL, 0, offsetof(out_es, remove_keys), NULL,
     "top-level keys left out of the document (comma separated). They are removed last: `id_key`, `routing_key`, "
     "`time_key` and index placeholders still read them"},
    {"remove_keys_on_update", CONF_ARRAY, NULL, 0, offsetof(out_es, remove_keys_on_update), NULL,
     "`update`/`upsert`: keys left out of the partial `doc` (kept in `upsert`)"},
    {"remove_keys_on_update_key", CONF_STR, NULL, 0, offsetof(out_es, remove_keys_on_update_key), NULL,
     "`update`/`upsert`: a record key holding an array of such keys; itself removed from the document"},
    {"suppress_doc_wrap", CONF_BOOL, "false", 0, offsetof(out_es, suppress_doc_wrap), NULL,
     "`update`/`upsert`: send the record as the update body itself, without `{\"doc\":...}`"},
    {"flatten_hashes", CONF_BOOL, "false", 0, offsetof(out_es, flatten_hashes), NULL,
     "nested maps become top-level keys, `{\"a\":{\"b\":1}}` -> `{\"a_b\":1}` (arrays stay values)"},
    {"flatten_hashes_separator", CONF_STR, "_", 0, offsetof(out_es, flatten_hashes_separator), NULL,
     "the separator of `flatten_hashes`"},
    {"custom_headers", CONF_HASH, NULL, 0, offsetof(out_es, custom_headers), NULL,
     "extra HTTP headers on every request: `{\"X-Team\":\"a\"}` or `X-Team:a`"},
    {"customize_template", CONF_HASH, NULL, 0, offsetof(out_es, customize_template), NULL,
     "text replaced in the template file(s) before they are installed: `{\"<<shard>>\":\"3\"}` (values lowercased, "
     "as the plugin does)"},
    {"templates", CONF_HASH, NULL, 0, offsetof(out_es, templates), NULL,
     "more templates, `{\"name\":\"/path/file.json\", ...}`, installed like `template_name`/`template_file`"},
    {"use_legacy_template", CONF_BOOL, NULL, 0, offsetof(out_es, use_legacy_template), NULL,
     "when set: `true` installs templates with the legacy `_template` API, `false` with `_index_template`. Unset: "
     "chosen from each file's content (see `template_file`)"},
    {"log_es_400_reason", CONF_BOOL, "false", 0, offsetof(out_es, log_es_400_reason), NULL,
     "log the reason of every record Elasticsearch refuses with 400 (otherwise the first of each write)"},
    {"suppress_type_name", CONF_BOOL, "false", 0, offsetof(out_es, suppress_type_name), NULL,
     "accepted either way: weir never sends a document type (`_type`), which is what `true` asks for and what "
     "Elasticsearch 8 requires"},
    {"ssl_min_version", CONF_STR, NULL, 0, offsetof(out_es, ssl_min_version), NULL,
     "oldest TLS version: `TLSv1`, `TLSv1_1`, `TLSv1_2`, `TLSv1_3` (with `ssl_max_version`, as the plugin requires); default TLS 1.2"},
    {"ssl_max_version", CONF_STR, NULL, 0, offsetof(out_es, ssl_max_version), NULL,
     "newest TLS version (with `ssl_min_version`); default TLS 1.3"},
    {"inject", CONF_SECTION, NULL, 0, 0, NULL,
     "`<inject>` (`time_key`, `tag_key`, `hostname_key`...): keys added to each record first, as the plugin's "
     "inject helper does (index names, ids and the document see them)"},
    {"metadata", CONF_SECTION, NULL, 0, 0, NULL,
     "`include_chunk_id true` adds a key (`chunk_id_key`, default `chunk_id`) holding: a random hex id per write "
     "(weir's chunks are retried record by record, so a retry gets a new id)"},
    {"slow_flush_log_threshold", CONF_TIME, "20s", 0, offsetof(out_es, slow_flush), NULL,
     "Fluentd's output parameter: a write that takes longer is logged as a warning (`buffer flush took longer time "
     "than slow_flush_log_threshold`)"},
    /* accepted, no effect in weir: one warning each */
    {"ssl_version", CONF_ENUM, "TLSv1_2", 0, S(__COUNTER__ - ES_C0 - 1), "SSLv23|TLSv1|TLSv1_1|TLSv1_2|TLSv1_3",
     COMPAT_NOOP "the plugin itself ignores it with OpenSSL 1.1+; use `ssl_min_version`/`ssl_max_version`"},
    {"type_name", CONF_STR, "fluentd", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "document types were removed in Elasticsearch 8; weir never sends `_type`"},
    {"target_type_key", CONF_STR, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "document types were removed in Elasticsearch 8; the key stays in the document"},
    {"reload_connections", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir does not sniff the cluster for nodes; it sends to the configured hosts"},
    {"reload_on_failure", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "a request that fails on one host is always sent to the next configured host (see `hosts`); "
     "weir does not sniff the cluster for more"},
    {"reload_after", CONF_INT, "-1", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "weir does not sniff the cluster for nodes"},
    {"resurrect_after", CONF_TIME, "60s", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir marks no host dead: every write starts at the next host and fails over"},
    {"sniffer_class_name", CONF_STR, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "a Ruby class; weir does not sniff"},
    {"selector_class_name", CONF_STR, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "a Ruby class; weir picks hosts round robin with failover"},
    {"reconnect_on_error", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir's HTTP client drops a connection after any transport error and reconnects"},
    {"retry_tag", CONF_STR, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "records refused with a retryable error are retried by the buffer, not re-emitted under a tag"},
    {"time_parse_error_tag", CONF_STR, "Fluent::ElasticsearchOutput::TimeParser.error", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "a `time_key` value that cannot be parsed falls back to the event time (as in the plugin); no "
     "error event is emitted"},
    {"with_transporter_log", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "Ruby transport logging; see weir's `--log-level debug`"},
    {"emit_error_for_missing_id", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "with `update`/`upsert` a record without an id always goes to the dead letter / `<secondary>`"},
    {"content_type", CONF_ENUM, "application/json", 0, S(__COUNTER__ - ES_C0 - 1), "application/json|application/x-ndjson",
     COMPAT_NOOP "deprecated in the plugin; weir sends `application/x-ndjson`"},
    {"include_index_in_url", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir names the index in every action line and posts to `/_bulk`; documents land in the same "
     "index. A proxy that only allows `/<index>/_bulk` will refuse the requests"},
    {"http_backend", CONF_ENUM, "excon", 0, S(__COUNTER__ - ES_C0 - 1), "excon|typhoeus", COMPAT_NOOP "weir's HTTP client is libcurl"},
    {"http_backend_excon_nonblock", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "weir's HTTP client is libcurl"},
    {"validate_client_version", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "there is no Ruby client to check"},
    {"prefer_oj_serializer", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "weir has one JSON writer"},
    {"verify_es_version_at_startup", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir speaks the Elasticsearch 7.x/8.x (and OpenSearch) bulk API and asks for no version"},
    {"default_elasticsearch_version", CONF_INT, "5", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir speaks the Elasticsearch 7.x/8.x (and OpenSearch) bulk API"},
    {"max_retry_get_es_version", CONF_INT, "15", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "weir asks for no version"},
    {"fail_on_detecting_es_version_retry_exceed", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir asks for no version"},
    {"max_retry_putting_template", CONF_INT, "10", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "the template is installed before the first bulk and retried with the buffer until it is in; no "
     "record is sent before"},
    {"fail_on_putting_template_retry_exceed", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir starts and retries the template with the buffer (see `max_retry_putting_template`)"},
    {"unrecoverable_error_types", CONF_ARRAY, "out_of_memory_error,es_rejected_execution_exception", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir's status table decides per record: 429/503 are retried, other 4xx dead-lettered"},
    {"ignore_exceptions", CONF_ARRAY, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "Ruby exception classes; weir retries failed requests with the buffer"},
    {"exception_backup", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "goes with `ignore_exceptions`"},
    {"catch_transport_exception_on_retry", CONF_BOOL, "true", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "transport errors are always caught and retried"},
    {"truncate_caches_interval", CONF_TIME, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "weir keeps no alias/template caches that grow"},
    {"target_index_affinity", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "updates go to the index named for the record; weir does not search rollover indices for the id"},
    {"deflector_alias", CONF_STR, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with ILM / `rollover_index` (refused)"},
    {"application_name", CONF_STR, "default", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "only used with ILM / `rollover_index` (refused)"},
    {"index_date_pattern", CONF_STR, "now/d", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "only used with ILM / `rollover_index` (refused)"},
    {"index_separator", CONF_STR, "-", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with ILM / `rollover_index` (refused)"},
    {"index_prefix", CONF_STR, "logstash", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_NOOP "obsolete in the plugin (4.0+); use `logstash_prefix` or `index_name`"},
    {"ilm_policy_id", CONF_STR, "logstash-policy", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with `enable_ilm` (refused)"},
    {"ilm_policy", CONF_HASH, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with `enable_ilm` (refused)"},
    {"ilm_policies", CONF_HASH, NULL, 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with `enable_ilm` (refused)"},
    {"ilm_policy_overwrite", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL, COMPAT_NOOP "only used with `enable_ilm` (refused)"},
    /* refused when set to anything but the default */
    {"enable_ilm", CONF_BOOL, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_REFUSED "weir does not bootstrap ILM rollover aliases (`<index>-000001` plus a write alias per "
     "placeholder value) or create ILM policies. Use `data_stream_name`: a data stream rolls over by the ILM policy "
     "named in its index template (`index.lifecycle.name` in `template_file`; create the policy once with "
     "`PUT _ilm/policy/NAME`). Or `logstash_format true` for daily indices"},
    {"rollover_index", CONF_STR, "false", 0, S(__COUNTER__ - ES_C0 - 1), NULL,
     COMPAT_REFUSED "weir does not bootstrap rollover aliases; use `data_stream_name` (see `enable_ilm`)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

_Static_assert(__COUNTER__ - ES_C0 - 1 <= ES_NCOMPAT, "es.h: raise ES_NCOMPAT");
#undef S

/* ---- init ------------------------------------------------------------------------------ */

/* cloud_id "name:base64(domain$es_uuid$kibana_uuid)" -> "https://es_uuid.domain:443" (a port in the
 * domain, "domain:9243", is kept). NULL when it is not one. */
static char *cloud_url(const char *id)
{
    const char *b64 = strchr(id, ':');
    b64 = b64 ? b64 + 1 : id;
    size_t n = strlen(b64);
    unsigned char *raw = malloc(n + 4);
    if (!raw)
        return NULL;
    char *pad = malloc(n + 4);
    if (!pad) {
        free(raw);
        return NULL;
    }
    memcpy(pad, b64, n);
    while (n % 4)
        pad[n++] = '=';
    pad[n] = 0;
    int len = EVP_DecodeBlock(raw, (const unsigned char *)pad, (int)n);
    free(pad);
    char *url = NULL;
    if (len > 0) {
        while (len > 0 && raw[len - 1] == 0)
            len--; /* the padding decodes to NULs */
        raw[len] = 0;
        char *domain = (char *)raw, *d1 = strchr(domain, '$');
        if (d1) {
            *d1 = 0;
            char *uuid = d1 + 1, *d2 = strchr(uuid, '$');
            if (d2)
                *d2 = 0;
            char *port = strchr(domain, ':');
            if (port)
                *port++ = 0;
            if (*domain && *uuid && asprintf(&url, "https://%s.%s:%s", uuid, domain, port ? port : "443") < 0)
                url = NULL;
        }
    }
    free(raw);
    return url;
}

static int tls_version(const char *v)
{
    static const char *const names[] = {"TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"};
    for (int i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0)
            return 10 + i;
    return -1;
}

/* "a.b" -> "$['a']['b']" (target_index_key: nested keys split at dots, as the plugin does) */
static char *dotted_path(const char *k)
{
    wbuf b = {0};
    int bad = wbuf_add(&b, "$['", 3);
    for (const char *p = k; *p && !bad; p++)
        bad = *p == '.' ? wbuf_add(&b, "']['", 4) : wbuf_addc(&b, *p);
    if (bad || wbuf_add(&b, "']", 2) || wbuf_addc(&b, 0)) {
        wbuf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* A key list as drop rows for rec_rewrite_n. */
static rec_kv *drop_list(char **keys, size_t *n)
{
    *n = 0;
    if (!keys)
        return NULL;
    while (keys[*n])
        (*n)++;
    rec_kv *d = calloc(*n ? *n : 1, sizeof *d);
    for (size_t i = 0; d && i < *n; i++)
        d[i] = (rec_kv){.key = keys[i], .key_len = strlen(keys[i])};
    return d;
}

/* <metadata>: include_chunk_id, chunk_id_key */
typedef struct es_meta {
    int include_chunk_id;
    char *chunk_id_key;
} es_meta;

const conf_spec es_metadata_spec[] = {
    {"include_chunk_id", CONF_BOOL, "false", 0, offsetof(es_meta, include_chunk_id), NULL,
     "add each write's id to every document"},
    {"chunk_id_key", CONF_STR, "chunk_id", 0, offsetof(es_meta, chunk_id_key), NULL, "under this key"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* A record accessor from a key as fluent-plugin-elasticsearch reads it:
 * a dotted key without `$` names nested keys. */
static int accessor_key(rec_path *path, const char *key, const char *param, conf_node *n, conf_errors *errs)
{
    char err[256], *t = NULL;
    if (key[0] != '$' && strchr(key, '.') && asprintf(&t, "$.%s", key) < 0)
        return -1;
    int rc = rec_path_compile(path, t ? t : key, err, sizeof err);
    free(t);
    if (rc != 0)
        conf_error_at(errs, n, param, "bad record accessor '%s': %s", key, err);
    return rc != 0 ? -1 : 0;
}

/* The newer parameters of the plugin (cloud, target index, routing, TLS, headers, update ...). */
static int es_init_more(out_es *c, conf_node *n, conf_errors *errs)
{
    char err[300] = "";
    if (c->cloud_id) {
        if (!c->cloud_auth) {
            conf_error_at(errs, n, "cloud_id", "`cloud_auth` must be present if `cloud_id` is present");
            return -1;
        }
        char *u = cloud_url(c->cloud_id);
        if (!u) {
            conf_error_at(errs, n, "cloud_id", "cloud_id '%s' is not NAME:base64(host$es_uuid$kibana_uuid)",
                          c->cloud_id);
            return -1;
        }
        conf_strv_free(c->hosts);
        c->hosts = calloc(2, sizeof *c->hosts);
        if (!c->hosts) {
            free(u);
            return -1;
        }
        c->hosts[0] = u;
    }
    if (c->cloud_auth) {
        const char *colon = strchr(c->cloud_auth, ':');
        free(c->user);
        free(c->password);
        c->user = strndup(c->cloud_auth, colon ? (size_t)(colon - c->cloud_auth) : strlen(c->cloud_auth));
        c->password = strdup(colon ? colon + 1 : "");
        if (!c->user || !c->password)
            return -1;
    }
    if (!c->ssl_min_version != !c->ssl_max_version) {
        conf_error_at(errs, n, c->ssl_min_version ? "ssl_min_version" : "ssl_max_version",
                      "When you set '%s', must set '%s' together.",
                      c->ssl_min_version ? "ssl_min_version" : "ssl_max_version",
                      c->ssl_min_version ? "ssl_max_version" : "ssl_min_version");
        return -1;
    }
    if (c->ssl_min_version) {
        c->tls_min = tls_version(c->ssl_min_version);
        c->tls_max = tls_version(c->ssl_max_version);
        const char *bad = c->tls_min < 0 ? "ssl_min_version" : c->tls_max < 0 ? "ssl_max_version" : NULL;
        if (bad) {
            conf_error_at(errs, n, bad, "valid options are TLSv1, TLSv1_1, TLSv1_2, TLSv1_3");
            return -1;
        }
        if (c->tls_min > c->tls_max) {
            conf_error_at(errs, n, "ssl_min_version", "ssl_min_version is newer than ssl_max_version");
            return -1;
        }
    }
    if (c->target_index_key) {
        char *t = dotted_path(c->target_index_key);
        int rc = t ? rec_path_compile(&c->target_index_path, t, err, sizeof err) : -1;
        free(t);
        if (rc != 0) {
            conf_error_at(errs, n, "target_index_key", "bad key '%s': %s", c->target_index_key, err);
            return -1;
        }
        c->has_target_index = 1;
    }
    if (c->routing_key && accessor_key(&c->routing_path, c->routing_key, "routing_key", n, errs) != 0)
        return -1;
    c->has_routing = c->routing_key != NULL;
    if (c->parent_key) {
        if (accessor_key(&c->parent_path, c->parent_key, "parent_key", n, errs) != 0)
            return -1;
        c->has_parent = 1;
        const conf_param *pk = conf_get(n, "parent_key");
        conf_warn(n, pk->file, pk->line,
                  "parent_key '%s': Elasticsearch 6+ has no _parent; each document is routed to its parent's shard "
                  "instead (routing = the value of '%s'%s), as the children of a join field need",
                  c->parent_key, c->parent_key, c->routing_key ? " when the record has no routing_key value" : "");
    }
    if (c->pipeline && (strstr(c->pipeline, "${") || !c->pipeline[0])) {
        conf_error_at(errs, n, "pipeline", "pipeline '%s': placeholders are not supported by weir; name one pipeline",
                      c->pipeline);
        return -1;
    }
    c->remove = drop_list(c->remove_keys, &c->nremove);
    c->remove_upd = drop_list(c->remove_keys_on_update, &c->nremove_upd);
    if ((c->remove_keys && !c->remove) || (c->remove_keys_on_update && !c->remove_upd))
        return -1;
    if (c->nremove > 30 || c->nremove_upd > 16) {
        conf_error_at(errs, n, c->nremove > 30 ? "remove_keys" : "remove_keys_on_update", "at most %d keys",
                      c->nremove > 30 ? 30 : 16);
        return -1;
    }
    if (c->write_operation >= OP_UPDATE) {
        if (c->data_stream_name) {
            conf_error_at(errs, n, "write_operation", "a data stream only takes `create`");
            return -1;
        }
        if (!c->id_key && !c->generate_id) {
            conf_error_at(errs, n, "write_operation", "write_operation %s needs id_key",
                          c->write_operation == OP_UPDATE ? "update" : "upsert");
            return -1;
        }
    }
    const char *lt = conf_get_value(n, "use_legacy_template");
    c->legacy_forced = lt ? c->use_legacy_template : -1;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (strcmp(ch->name, "metadata") != 0)
            continue;
        es_meta m = {0};
        int rc = conf_bind(ch, es_metadata_spec, &m, errs);
        c->include_chunk_id = m.include_chunk_id;
        free(c->chunk_id_key);
        c->chunk_id_key = m.chunk_id_key; /* taken over */
        if (rc)
            return -1;
    }
    /* the headers: Content-Type, auth, custom_headers */
    size_t nh = c->custom_headers.n;
    c->custom_lines = calloc(nh + 1, sizeof *c->custom_lines);
    c->headers = calloc(nh + 3, sizeof *c->headers);
    c->json_headers = calloc(nh + 3, sizeof *c->json_headers);
    if (!c->custom_lines || !c->headers || !c->json_headers)
        return -1;
    size_t k = 0;
    c->headers[k] = "Content-Type: application/x-ndjson";
    c->json_headers[k++] = "Content-Type: application/json";
    if (c->auth_header) {
        c->headers[k] = c->json_headers[k] = c->auth_header;
        k++;
    }
    for (size_t i = 0; i < nh; i++) {
        const conf_kv *kv = &c->custom_headers.kv[i];
        if (!kv->k[0] || strpbrk(kv->k, ": \r\n") || strpbrk(kv->v, "\r\n")) {
            conf_error_at(errs, n, "custom_headers", "bad header '%s'", kv->k);
            return -1;
        }
        if (asprintf(&c->custom_lines[i], "%s: %s", kv->k, kv->v) < 0) {
            c->custom_lines[i] = NULL;
            return -1;
        }
        c->headers[k] = c->json_headers[k] = c->custom_lines[i];
        k++;
    }
    return 0;
}

static int es_init(output *o, conf_node *n, conf_errors *errs)
{
    out_es *c = o->ctx;
    char err[300] = "";
    o->slow_flush = c->slow_flush; /* the engine warns */
    if (fmt_inject_configure(&c->inj, n, errs))
        return -1;
    atomic_init(&c->rr, 0);
    atomic_init(&c->failing, 0);
    if (pthread_mutex_init(&c->tmpl_mu, NULL) != 0)
        return -1;
    c->tmpl_mu_init = 1;
    if (c->api_key) {
        size_t l = strlen(c->api_key) + 32;
        c->auth_header = malloc(l);
        if (!c->auth_header)
            return -1;
        snprintf(c->auth_header, l, "Authorization: ApiKey %s", c->api_key);
    }
    if (es_init_more(c, n, errs) != 0)
        return -1;
    if (es_hosts_parse(c, n, errs) != 0)
        return -1;

    if (c->time_precision < 0 || c->time_precision > 9) {
        conf_error_at(errs, n, "time_precision", "time_precision must be 0..9");
        return -1;
    }
    if (c->max_in_flight < 1 || c->max_in_flight > 64) {
        conf_error_at(errs, n, "http_max_in_flight", "http_max_in_flight must be 1..64");
        return -1;
    }
    if (strcmp(c->bulk_threshold, "-1") == 0) {
        c->threshold = 0;
    } else {
        uint64_t v;
        if (conf_parse_size(c->bulk_threshold, &v) != 0 || v == 0) {
            conf_error_at(errs, n, "bulk_message_request_threshold",
                          "invalid size '%s' for parameter 'bulk_message_request_threshold' (or -1: no limit)",
                          c->bulk_threshold);
            return -1;
        }
        c->threshold = (size_t)v;
    }
    static const int levels[] = {0, 1, 9, 6};
    c->gzip_level = levels[c->compression_level];

    /* index: data stream, logstash_format, or index_name (index.c) */
    if (c->data_stream_name) {
        c->write_operation = OP_CREATE; /* data streams only take create */
        if (c->logstash_format) {
            conf_error_at(errs, n, "data_stream_name", "data_stream_name and logstash_format exclude each other");
            return -1;
        }
    }
    if (es_index_init(c, err, sizeof err) != 0) {
        conf_error_at(errs, n, c->data_stream_name ? "data_stream_name" : c->logstash_format ? "logstash_prefix"
                                                                                              : "index_name",
                      "%s", err);
        return -1;
    }
    c->add_ts = c->logstash_format || c->include_timestamp || c->data_stream_name;

    if (c->id_key && c->generate_id) {
        conf_error_at(errs, n, "generate_id", "id_key and generate_id exclude each other");
        return -1;
    }
    if (c->id_key) {
        if (rec_path_compile(&c->id_path, c->id_key, err, sizeof err) != 0) {
            conf_error_at(errs, n, "id_key", "bad record accessor '%s': %s", c->id_key, err);
            return -1;
        }
        c->has_id_path = 1;
    }
    if (c->time_key) {
        if (rec_path_compile(&c->time_path, c->time_key, err, sizeof err) != 0) {
            conf_error_at(errs, n, "time_key", "bad record accessor '%s': %s", c->time_key, err);
            return -1;
        }
        c->has_time_path = 1;
    }
    /* time_key_format: strptime; without a zone in the value, local time (the plugin's Strptime) */
    if (tparse_init(&c->tp, TP_STRING, c->time_key_format, c->time_key_format != NULL, c->time_key_format == NULL,
                    NULL, err, sizeof err) != 0) {
        conf_error_at(errs, n, c->time_key_format ? "time_key_format" : "time_key", "%s", err);
        return -1;
    }

    if (es_template_load(c, n, errs) != 0 || es_template_data_stream(c) != 0)
        return -1;

    http_opts ho = {
        .timeout = c->request_timeout,
        .connect_timeout = c->request_timeout < 10 ? c->request_timeout : 10,
        .verify = c->ssl_verify,
        .ca_file = c->ca_file,
        .client_cert = c->client_cert,
        .client_key = c->client_key,
        .client_key_pass = c->client_key_pass,
        .user = c->user,
        .password = c->password,
        .max_in_flight = (int)c->max_in_flight,
        .tls_min = c->tls_min,
        .tls_max = c->tls_max,
    };
    c->http = http_client_new(&ho, err, sizeof err);
    if (!c->http) {
        conf_error_at(errs, n, "@type", "cannot set up the HTTP client: %s", err);
        return -1;
    }
    wlog_info(ES_MOD, "%s: %zu host(s), first %s; %s %s", o->id, c->nbases, c->bases[0],
              c->data_stream_name ? "data stream" : "index", c->data_stream_name ? c->data_stream_name
                                                             : c->logstash_format  ? "logstash_format"
                                                                                   : c->index_name);
    return 0;
}

static void es_exit(output *o)
{
    out_es *c = o->ctx;
    if (c->http)
        http_client_free(c->http);
    ARRAY_FREE_ALL(c->bases, c->nbases);
    free(c->auth_header);
    fmt_inject_free(&c->inj);
    es_index_free(&c->index);
    if (c->has_id_path)
        rec_path_free(&c->id_path);
    if (c->has_time_path)
        rec_path_free(&c->time_path);
    tparse_free(&c->tp);
    es_template_free(c);
    if (c->has_target_index)
        rec_path_free(&c->target_index_path);
    if (c->has_routing)
        rec_path_free(&c->routing_path);
    if (c->has_parent)
        rec_path_free(&c->parent_path);
    free(c->remove);
    free(c->remove_upd);
    free(c->headers);
    free(c->json_headers);
    if (c->custom_lines)
        for (size_t i = 0; i < c->custom_headers.n; i++)
            free(c->custom_lines[i]);
    free(c->custom_lines);
    free(c->chunk_id_key);
    if (c->tmpl_mu_init)
        pthread_mutex_destroy(&c->tmpl_mu);
}

/* ---- the write --------------------------------------------------------------------------- */

typedef struct part {
    uint32_t first, n; /* pend[first .. first+n) */
    const uint8_t *body;
    size_t len;
} part;

/*
 * Send the records pend[0..np) as bulk requests of at most `threshold`
 * bytes, concurrently, and set their st/why. `contiguous`: pend is 0..np-1
 * and the bodies are slices of w->body; otherwise the records are copied
 * into *rb first. Returns -1 on allocation failure.
 */
static int bulk_round(output *o, out_es *c, es_buf *w, const uint32_t *pend, uint32_t np, int contiguous, wbuf *rb,
                      round_stats *rs)
{
    part *parts = NULL;
    size_t nparts = 0, cap = 0;
    rb->len = 0;
    size_t cur = 0; /* bytes in the current part */
    for (uint32_t k = 0; k < np; k++) {
        uint32_t s = pend[k];
        size_t len = w->off[s + 1] - w->off[s];
        if (!nparts || (c->threshold && cur && cur + len > c->threshold)) {
            if (nparts == cap) {
                cap = cap ? cap * 2 : 8;
                part *nps = realloc(parts, cap * sizeof *nps);
                if (!nps) {
                    free(parts);
                    return -1;
                }
                parts = nps;
            }
            parts[nparts++] = (part){.first = k};
            cur = 0;
        }
        parts[nparts - 1].n++;
        cur += len;
        if (!contiguous && wbuf_add(rb, w->body.data + w->off[s], len)) {
            free(parts);
            return -1;
        }
    }
    /* bodies: slices of w->body, or of rb in the same order */
    size_t pos = 0;
    for (size_t i = 0; i < nparts; i++) {
        uint32_t a = pend[parts[i].first], z = pend[parts[i].first + parts[i].n - 1];
        if (contiguous) {
            parts[i].body = w->body.data + w->off[a];
            parts[i].len = w->off[z + 1] - w->off[a];
        } else {
            size_t len = 0;
            for (uint32_t k = parts[i].first; k < parts[i].first + parts[i].n; k++)
                len += w->off[pend[k] + 1] - w->off[pend[k]];
            parts[i].body = rb->data + pos;
            parts[i].len = len;
            pos += len;
        }
    }
    http_req *reqs = calloc(nparts, sizeof *reqs);
    char **urls = calloc(nparts, sizeof *urls);
    if (!reqs || !urls) {
        free(reqs);
        free(urls);
        free(parts);
        return -1;
    }
    for (size_t i = 0; i < nparts; i++)
        reqs[i] = (http_req){.method = "POST", .headers = c->headers, .body = parts[i].body,
                             .body_len = parts[i].len, .gzip_level = c->gzip_level};
    es_perform_failover(o, c, reqs, urls, nparts, "/_bulk?filter_path=errors,items.*.status,items.*.error");
    rs->nreq += (uint32_t)nparts;
    for (size_t i = 0; i < nparts; i++)
        es_apply_response(o->id, &reqs[i], w, pend + parts[i].first, parts[i].n, rs);
    for (size_t i = 0; i < nparts; i++) {
        http_req_clear(&reqs[i]);
        free(urls[i]);
    }
    free(reqs);
    free(urls);
    free(parts);
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int es_write(output *o, const batch *b, out_result *res)
{
    out_es *c = o->ctx;
    if (es_template_ensure(o, c, res->reason, sizeof res->reason) != 0) {
        if (!atomic_exchange(&c->failing, 1))
            wlog_error(ES_MOD, "%s: %s; %s", o->id, res->reason,
                       o->buf ? "the buffer will retry" : "not acknowledging the records");
        atomic_fetch_add(&o->write_errors, 1);
        return OUT_RETRY;
    }
    uint32_t nrec = b->nrecords ? b->nrecords : 1;
    es_buf w = {0};
    wbuf rb = {0};
    uint32_t *pend = NULL;
    int rc = OUT_RETRY;
    if (es_buf_init(&w, nrec) != 0 || !(pend = malloc(nrec * sizeof *pend))) {
        snprintf(res->reason, sizeof res->reason, "out of memory");
        goto done;
    }

    /* encode: action + document per record; unencodable records are ERROR now */
    char err[300];
    uint32_t nbad = es_bulk_encode(c, b, nrec, &w, res, err, sizeof err);
    if (nbad)
        wlog_warn(ES_MOD, "%s: %u records cannot be sent (first: %s)", o->id, nbad,
                  res->reasons && res->reasons[0] ? res->reasons[0] : err);

    /* rounds: the first sends everything; the next ones only 429/503 items, after a back-off */
    round_stats rs = {.log_400 = c->log_es_400_reason};
    uint32_t np = w.nsent, retried_soon = 0;
    for (uint32_t k = 0; k < np; k++)
        pend[k] = k;
    double wait = c->bulk_retry_wait;
    for (int round = 0; np; round++) {
        if (bulk_round(o, c, &w, pend, np, round == 0, &rb, &rs) != 0) {
            snprintf(res->reason, sizeof res->reason, "out of memory");
            goto done;
        }
        uint32_t nsoon = 0;
        for (uint32_t k = 0; k < np; k++)
            if (w.st[pend[k]] == RS_SOON)
                pend[nsoon++] = pend[k];
        np = nsoon;
        if (!np || round >= c->bulk_retry_limit)
            break;
        retried_soon += np;
        sleep_s(wait);
        wait *= 2;
    }

    /* results */
    uint32_t nok = 0, nretry = 0, nerr = nbad;
    es_mark_results(&w, res, &nok, &nretry, &nerr);
    if (rs.nfailed_req) {
        atomic_fetch_add(&o->write_errors, 1);
        if (!atomic_exchange(&c->failing, 1))
            wlog_error(ES_MOD, "%s: %u of %u bulk requests failed on every host (%zu): %s; %s", o->id,
                       rs.nfailed_req, rs.nreq, c->nbases, rs.req_reason,
                       o->buf ? "the buffer will retry their records" : "not acknowledging them");
    } else if (nok && atomic_exchange(&c->failing, 0)) {
        wlog_info(ES_MOD, "%s: bulk requests succeed again", o->id);
    }
    if (rs.n429)
        wlog_warn(ES_MOD, "%s: %u records rejected with 429 (node overloaded), %u retried within the write; "
                  "%u left to the buffer's retry; %s", o->id, rs.n429, retried_soon, nretry, rs.soon_reason);
    if (nerr - nbad)
        wlog_warn(ES_MOD, "%s: %u of %u records refused by Elasticsearch; first: %s", o->id, nerr - nbad,
                  b->nrecords, rs.item_reason[0] ? rs.item_reason : rs.req_reason);
    if (nretry || nerr)
        atomic_fetch_add(&o->records_failed, nretry + nerr);

    if (nok == 0 && nerr == 0 && nretry == b->nrecords) {
        /* nothing got through and nothing was refused: retry the batch whole */
        out_result_free(res);
        es_scopy(res->reason, sizeof res->reason, rs.req_reason[0] ? rs.req_reason : rs.soon_reason);
        rc = OUT_RETRY;
        goto done;
    }
    if (rs.req_reason[0])
        es_scopy(res->reason, sizeof res->reason, rs.req_reason);
    else if (rs.item_reason[0] || rs.soon_reason[0])
        es_scopy(res->reason, sizeof res->reason, rs.item_reason[0] ? rs.item_reason : rs.soon_reason);
    rc = OUT_OK; /* unmarked records are delivered; marked ones follow their status */
done:
    es_buf_free(&w);
    wbuf_free(&rb);
    free(pend);
    return rc;
}

OUT_PLUGIN(elasticsearch, es, out_es);
OUT_PLUGIN(opensearch, es, out_es);
