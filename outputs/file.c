/*
 * outputs/file.c: Fluentd's out_file.
 *
 * `path` is a prefix. The file name is built like Fluentd's
 * (generate_path_template in out_file.rb). With the time chunk key (the
 * default: Fluentd's out_file buffers by `time` when <buffer> names no keys,
 * and without <buffer> at all), the time slice's format follows `timekey`
 * (%Y%m%d for 1d and more, %Y%m%d%H from 1h, %Y%m%d%H%M from 1m, else
 * %Y%m%d%H%M%S):
 *   path /var/log/app          -> /var/log/app.20261121.log      (append true)
 *                              -> /var/log/app.20261121_0.log    (append false: a new
 *                                 index for every file this process opens)
 *   path /var/log/app.*.log    -> '*' replaced by the time slice (+ "_N" if !append)
 *   path /var/log/${tag}       -> /var/log/app.web.20261121.log (placeholders expanded)
 *   path /var/log/${$.ns}/${tag} with <buffer tag,$.ns> -> a directory per value of the record key
 *                                 ('/' in a value made '_': never outside the path)
 *   path /var/log/${tag}/%Y%m%d -> the path has the slice's directives: expanded, then
 *                                 path_suffix (some but not all of them: a config error)
 * Without the time chunk key (<buffer tag>) there is no slice: path, then path_suffix.
 * The slice is the record's time (local time unless timekey_use_utc).
 * `compress gzip` writes one gzip member per write (a valid multi-member
 * .gz that zcat reads whole).
 *
 * Records are formatted into one buffer and written with write(2) whenever
 * it holds FILE_WRITE_AT bytes (so a chunk of any size costs that much
 * memory, not its formatted size: 17 MB for an 8 MB chunk of JSON lines),
 * when the file changes, and at the end of the batch, which is reported OK
 * only after its last write, so an ack from the forward input means
 * the bytes are in the kernel (they survive a crash of weir, not of the
 * machine). Runs on the output's own thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/compress.h"
#include "lib/fdio.h"
#include "lib/log.h"
#include "lib/timefmt.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "outputs/format.h"

#define FILE_MAX_OPEN 32

typedef struct open_file {
    char *key;  /* path before the "_N" index: identifies the logical file */
    char *path; /* the file actually written */
    int fd;
    uint64_t last_used;
} open_file;

typedef struct out_file {
    /* bound from config */
    char *path;
    int append;
    int add_path_suffix;
    char *path_suffix;
    int compress; /* 0 text, 1 gzip */
    char *symlink_path;
    /* from <buffer>: the time slice's format ("" without the time chunk key),
     * whether the path holds its directives itself, UTC slices */
    const char *slice_fmt;
    int path_has_slice, slice_utc;
    /* state */
    fmt f;
    wbuf buf, gz;
    open_file files[FILE_MAX_OPEN];
    int nfiles;
    uint64_t tick;
    int last_errno;
    /* the record-key chunk keys the path names (${KEY}, ${$.a.b}) */
    rec_path keys[8];
    size_t nkeys;
    wbuf kv; /* scratch: a key's value as text */
    /* one-entry cache: same tag and second -> same file (not used with keys) */
    uint32_t cache_sec;
    char *cache_tag;
    int cache_idx;
} out_file;

static const conf_spec file_spec[] = {
    {"path", CONF_STR, NULL, 1, offsetof(out_file, path), NULL,
     "prefix: `path.YYYYMMDD.log` with `append true`, `path.YYYYMMDD_N.log` (new N per file opened) otherwise; `*` "
     "in the path is replaced by the time slice; `${tag}`, `${tag[N]}`, the record keys among the chunk keys "
     "(`${$.a.b}`, `${key}`) and strftime directives are expanded. The slice is the "
     "record's time in local time, one file per day (Fluentd's default `timekey 1d`)"},
    {"append", CONF_BOOL, "false", 0, offsetof(out_file, append), NULL,
     "append to one file per slice (`false`: a new file each time one is opened)"},
    {"add_path_suffix", CONF_BOOL, "true", 0, offsetof(out_file, add_path_suffix), NULL,
     "end file names with `path_suffix`"},
    {"path_suffix", CONF_STR, ".log", 0, offsetof(out_file, path_suffix), NULL, "the file name suffix"},
    {"compress", CONF_ENUM, "text", 0, offsetof(out_file, compress), "text|gzip",
     "`gzip`: one gzip member per 1 MiB of text written, file name `.gz`"},
    {"symlink_path", CONF_STR, NULL, 0, offsetof(out_file, symlink_path), NULL,
     "a symbolic link kept pointing at the output file written last (to tail it); Fluentd's points at the file "
     "buffer's current chunk, whose lines are the same"},
    {"format", CONF_SECTION, NULL, 0, 0, NULL, "how records are written: `<format>`; default `out_file`"},
    {"inject", CONF_SECTION, NULL, 0, 0, NULL, "keys added to each record: `<inject>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Fluentd's timekey_to_timeformat. */
static const char *timekey_format(double timekey)
{
    return timekey < 60 ? "%Y%m%d%H%M%S" : timekey < 3600 ? "%Y%m%d%H%M" : timekey < 86400 ? "%Y%m%d%H" : "%Y%m%d";
}

/* "${tag[N]}" (N may be negative: from the end) at s: its length, and N in
 * *idx; 0 when s holds no such placeholder. */
static size_t tag_part_placeholder(const char *s, long *idx)
{
    if (strncmp(s, "${tag[", 6) != 0)
        return 0;
    char *e;
    long n = strtol(s + 6, &e, 10);
    if (e == s + 6 || e[0] != ']' || e[1] != '}')
        return 0;
    *idx = n;
    return (size_t)(e + 2 - s);
}

/* The time slice from the <buffer> section's chunk keys and timekey, and
 * Fluentd's checks of the path against it. */
static int path_template(out_file *c, conf_node *n, conf_errors *errs)
{
    conf_node *b = NULL;
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, "buffer"))
            b = n->children[i];
    int time_key = 1; /* no <buffer>, or <buffer> without keys: Fluentd's default key is time */
    double timekey = 86400;
    if (b && b->arg && *b->arg) {
        time_key = 0;
        char keys[512];
        snprintf(keys, sizeof keys, "%s", b->arg);
        for (char *save = NULL, *k = strtok_r(keys, ", ", &save); k; k = strtok_r(NULL, ", ", &save))
            if (!strcmp(k, "time"))
                time_key = 1;
    }
    /* ${tag}, ${tag[N]}, and ${KEY} of a record-key chunk key (<buffer tag, KEY>), as Fluentd's
     * extract_placeholders */
    for (const char *ph = strstr(c->path, "${"); ph; ph = strstr(ph + 2, "${")) {
        const char *close = strchr(ph, '}');
        long idx;
        if (close && (((size_t)(close - ph) == 5 && !strncmp(ph, "${tag}", 6)) || tag_part_placeholder(ph, &idx)))
            continue;
        int chunk_key = 0;
        if (close && b && b->arg) {
            char keys[512];
            snprintf(keys, sizeof keys, "%s", b->arg);
            for (char *save = NULL, *k = strtok_r(keys, ", ", &save); k && !chunk_key; k = strtok_r(NULL, ", ", &save))
                chunk_key = strlen(k) == (size_t)(close - ph - 2) && !strncmp(k, ph + 2, strlen(k));
        }
        char err[200] = "";
        if (!close || !chunk_key || c->nkeys == sizeof c->keys / sizeof c->keys[0]) {
            conf_error_at(errs, n, "path",
                          "placeholder '%.*s' in path is not a chunk key: the path expands ${tag}, ${tag[N]}, the "
                          "time slice and the record keys of <buffer> (<buffer tag, KEY>, at most 8)",
                          close ? (int)(close - ph + 1) : (int)strlen(ph), ph);
            return -1;
        }
        char *name = strndup(ph + 2, (size_t)(close - ph - 2));
        int rc = name ? rec_path_compile(&c->keys[c->nkeys], name, err, sizeof err) : -1;
        free(name);
        if (rc) {
            conf_error_at(errs, n, "path", "placeholder '%.*s' in path: %s", (int)(close - ph + 1), ph, err);
            return -1;
        }
        c->nkeys++;
    }
    const char *tk = b ? conf_get_value(b, "timekey") : NULL;
    if (tk && conf_parse_time(tk, &timekey) != 0)
        timekey = 86400; /* the buffer reports the bad value */
    const char *utc = b ? conf_get_value(b, "timekey_use_utc") : NULL;
    c->slice_utc = utc && !strcmp(utc, "true");
    c->slice_fmt = time_key ? timekey_format(timekey) : "";
    if (strchr(c->path, '*')) {
        if (!time_key) {
            conf_error_at(errs, n, "path", "path including '*' must be used with buffer chunk key 'time'");
            return -1;
        }
        return 0;
    }
    /* the slice's directives (%Y %m %d %H %M %S), each 2 characters */
    int has = 0, all = 1;
    for (const char *d = c->slice_fmt; d[0] && d[1]; d += 2) {
        char ph[3] = {d[0], d[1], 0};
        if (strstr(c->path, ph))
            has = 1;
        else
            all = 0;
    }
    if (has && !all) {
        conf_error_at(errs, n, "path", "insufficient timestamp placeholders in path: a timekey of %.0fs needs %s",
                      timekey, c->slice_fmt);
        return -1;
    }
    c->path_has_slice = has;
    return 0;
}

static int file_init(output *o, conf_node *n, conf_errors *errs)
{
    out_file *c = o->ctx;
    c->cache_idx = -1;
    for (int i = 0; i < FILE_MAX_OPEN; i++)
        c->files[i].fd = -1;
    if (path_template(c, n, errs))
        return -1;
    return fmt_configure(&c->f, n, FMT_OUT_FILE, errs);
}

static int mkdir_p(char *path)
{
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        int rc = mkdir(path, 0755);
        *s = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* A record key's value in a path: its text (nil: nothing), '/' and NUL
 * made '_' and a whole "." or ".." made "_": a record never picks a
 * directory outside the path (Fluentd writes the value as it is). */
static size_t key_text(out_file *c, const rec_path *k, const entry *e, char *out, size_t cap)
{
    size_t vl;
    const uint8_t *v = e ? rec_lookup(e->record, e->record_len, k, &vl) : NULL;
    c->kv.len = 0;
    if (!v || rec_value_to_s(&c->kv, v, vl) || !c->kv.len)
        return 0;
    size_t n = c->kv.len < cap ? c->kv.len : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = c->kv.data[i] == '/' || !c->kv.data[i] ? '_' : (char)c->kv.data[i];
    if ((n == 1 && out[0] == '.') || (n == 2 && out[0] == '.' && out[1] == '.'))
        out[0] = '_', n = 1;
    return n;
}

/* Expand ${tag}, ${tag[N]}, the record keys' ${KEY} and strftime directives of the path into out. */
static void expand(out_file *c, char *out, size_t cap, const char *tag, uint32_t sec, const entry *e)
{
    char tmp[4096];
    size_t j = 0, key = 0;
    for (const char *s = c->path; *s && j + 1 < sizeof tmp; s++) {
        long idx;
        size_t pl;
        if (s[0] == '$' && s[1] == '{' && strncmp(s, "${tag}", 6) && !tag_part_placeholder(s, &idx) && key < c->nkeys) {
            j += key_text(c, &c->keys[key++], e, tmp + j, sizeof tmp - 1 - j);
            s = strchr(s, '}');
        } else if (strncmp(s, "${tag}", 6) == 0) {
            j += (size_t)snprintf(tmp + j, sizeof tmp - j, "%s", tag);
            s += 5;
        } else if ((pl = tag_part_placeholder(s, &idx)) != 0) {
            /* the idx-th dot-separated part of the tag (negative: from the end); none: empty */
            size_t nparts = 1;
            for (const char *t = tag; *t; t++)
                nparts += *t == '.';
            if (idx < 0)
                idx += (long)nparts;
            const char *part = tag;
            for (long k = 0; idx >= 0 && k < idx && part; k++)
                part = (part = strchr(part, '.')) ? part + 1 : NULL;
            if (idx >= 0 && idx < (long)nparts && part) {
                size_t plen = strcspn(part, ".");
                j += (size_t)snprintf(tmp + j, sizeof tmp - j, "%.*s", (int)plen, part);
            }
            s += pl - 1;
        } else {
            tmp[j++] = *s;
        }
    }
    tmp[j < sizeof tmp ? j : sizeof tmp - 1] = 0;
    if (!time_fmt(out, cap, tmp, sec, 0, c->slice_utc))
        snprintf(out, cap, "%s", tmp);
}

/* The logical file (before the append-false index) and where the index goes. */
static void file_key(out_file *c, char *key, size_t cap, size_t *index_at, const char *tag, uint32_t sec,
                     const entry *e)
{
    char slice[32] = "";
    if (*c->slice_fmt)
        time_fmt(slice, sizeof slice, c->slice_fmt, sec, 0, c->slice_utc);
    const char *sfx = c->add_path_suffix ? c->path_suffix : "";
    const char *gz = c->compress ? ".gz" : "";
    const char *star = strchr(c->path, '*');
    if (star) {
        int n = snprintf(key, cap, "%.*s%s", (int)(star - c->path), c->path, slice);
        *index_at = (size_t)n;
        snprintf(key + n, cap - (size_t)n, "%s%s", star + 1, gz);
        return;
    }
    expand(c, key, cap, tag, sec, e);
    size_t n = strlen(key);
    if (*slice && !c->path_has_slice)
        n += (size_t)snprintf(key + n, cap - n, ".%s", slice);
    *index_at = n < cap ? n : cap - 1;
    snprintf(key + *index_at, cap - *index_at, "%s%s", sfx, gz);
}

static void close_file(open_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->key);
    free(f->path);
    f->key = f->path = NULL;
    f->fd = -1;
}

/*
 * A file weir appends to may end in a line cut short by a crash in the
 * middle of a write(2). The chunk that line came from was not confirmed, so
 * the buffer delivers it again; appending after the fragment would leave a
 * broken line in the output. Cut the file back to its last newline when it
 * is first opened (weir is the only writer of its output files).
 */
static void cut_partial_line(output *o, int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return;
    char buf[65536];
    off_t end = st.st_size;
    while (end > 0) {
        size_t n = end > (off_t)sizeof buf ? sizeof buf : (size_t)end;
        ssize_t r = pread(fd, buf, n, end - (off_t)n);
        if (r != (ssize_t)n)
            return;
        for (size_t i = n; i > 0; i--) {
            if (buf[i - 1] == '\n') {
                off_t keep = end - (off_t)n + (off_t)i;
                if (keep < st.st_size) {
                    wlog_warn("out_file", "%s: %s ended in a partial line (%lld bytes, left by an interrupted write); "
                              "cut, its records are delivered again",
                              o->id, path, (long long)(st.st_size - keep));
                    if (ftruncate(fd, keep) != 0)
                        wlog_error("out_file", "%s: cannot cut %s: %s", o->id, path, strerror(errno));
                }
                return;
            }
        }
        end -= (off_t)n;
        if (st.st_size - end > (1 << 24))
            return; /* no newline in the last 16 MiB: not a line-oriented file; leave it */
    }
    /* no newline at all: the whole file is one partial line */
    wlog_warn("out_file", "%s: %s holds only a partial line (%lld bytes); cut", o->id, path, (long long)st.st_size);
    if (ftruncate(fd, 0) != 0)
        wlog_error("out_file", "%s: cannot cut %s: %s", o->id, path, strerror(errno));
}

/* symlink_path -> path, replaced atomically (a link made aside, renamed over) */
static void update_symlink(output *o, const char *path)
{
    out_file *c = o->ctx;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", c->symlink_path, (int)getpid());
    unlink(tmp);
    if (symlink(path, tmp) != 0 || rename(tmp, c->symlink_path) != 0) {
        static __thread double last_log;
        if (clock_every(&last_log, 60))
            wlog_warn("out_file", "%s: cannot point symlink_path %s at %s: %s", o->id, c->symlink_path, path,
                      strerror(errno));
        unlink(tmp);
    }
}

/* Find or open the file for (tag, sec, the record's keys). Returns an index or -1 (errno set). */
static int file_for(output *o, const char *tag, uint32_t sec, const entry *e)
{
    out_file *c = o->ctx;
    if (!c->nkeys && c->cache_idx >= 0 && c->cache_sec == sec && c->cache_tag && strcmp(c->cache_tag, tag) == 0 &&
        c->files[c->cache_idx].fd >= 0)
        return c->cache_idx;
    char key[4096];
    size_t index_at;
    file_key(c, key, sizeof key, &index_at, tag, sec, e);
    int idx = -1;
    for (int i = 0; i < c->nfiles; i++)
        if (c->files[i].key && strcmp(c->files[i].key, key) == 0) {
            idx = i;
            break;
        }
    if (idx < 0) {
        char path[4200];
        int fd = -1;
        if (mkdir_p(key) != 0)
            return -1;
        if (c->append) {
            snprintf(path, sizeof path, "%s", key);
            fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            int lines = c->f.type != FMT_MSGPACK && (c->f.type != FMT_SINGLE_VALUE || c->f.add_newline);
            if (fd >= 0 && !c->compress && lines)
                cut_partial_line(o, fd, path);
        } else {
            for (int n = 0; n < 100000 && fd < 0; n++) {
                snprintf(path, sizeof path, "%.*s_%d%s", (int)index_at, key, n, key + index_at);
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
                if (fd < 0 && errno != EEXIST)
                    break;
            }
        }
        if (fd < 0)
            return -1;
        /* take a free slot or evict the least recently used file */
        if (c->nfiles < FILE_MAX_OPEN) {
            idx = c->nfiles++;
        } else {
            idx = 0;
            for (int i = 1; i < c->nfiles; i++)
                if (c->files[i].last_used < c->files[idx].last_used)
                    idx = i;
            close_file(&c->files[idx]);
        }
        c->files[idx].key = strdup(key);
        c->files[idx].path = strdup(path);
        if (c->symlink_path)
            update_symlink(o, path);
        c->files[idx].fd = fd;
    }
    c->files[idx].last_used = ++c->tick;
    c->cache_idx = idx;
    c->cache_sec = sec;
    free(c->cache_tag);
    c->cache_tag = strdup(tag);
    return idx;
}

static int flush_to(output *o, int idx)
{
    out_file *c = o->ctx;
    if (!c->buf.len)
        return 0;
    const uint8_t *p = c->buf.data;
    size_t n = c->buf.len;
    if (c->compress) {
        c->gz.len = 0;
        if (gz_compress(&c->gz, p, n, -1))
            return -1;
        p = c->gz.data;
        n = c->gz.len;
    }
    int rc = fd_write_all(c->files[idx].fd, p, n);
    c->buf.len = 0;
    return rc;
}

/* the formatted text written at once; gzip gets larger members */
#define FILE_WRITE_AT ((size_t)256 * 1024)
#define FILE_WRITE_AT_GZ ((size_t)1024 * 1024)

static int file_write(output *o, const batch *b, out_result *res)
{
    out_file *c = o->ctx;
    batch_iter it;
    entry e;
    int cur = -1;
    size_t write_at = c->compress ? FILE_WRITE_AT_GZ : FILE_WRITE_AT;
    c->buf.len = 0;
    batch_iter_init(&it, b);
    while (batch_iter_next(&it, &e) == 1) {
        int idx = file_for(o, e.tag, e.sec, &e);
        if (idx < 0)
            goto fail;
        if (idx != cur && cur >= 0 && flush_to(o, cur))
            goto fail;
        cur = idx;
        if (fmt_record(&c->f, &c->buf, e.tag, e.tag_len, &e)) {
            wlog_error("out_file", "%s: cannot format a record of tag %s", o->id, e.tag);
            return OUT_ERROR;
        }
        if (c->buf.len >= write_at && flush_to(o, cur))
            goto fail;
    }
    if (cur >= 0 && flush_to(o, cur))
        goto fail;
    if (c->last_errno) {
        wlog_info("out_file", "%s: writing again after error: %s", o->id, strerror(c->last_errno));
        c->last_errno = 0;
    }
    return OUT_OK;
fail:
    snprintf(res->reason, sizeof res->reason, "cannot write under %s: %s", c->path, strerror(errno));
    if (c->last_errno != errno) {
        c->last_errno = errno;
        wlog_error("out_file", "%s: cannot write records of tag %s under %s: %s%s", o->id, b->tag, c->path,
                   strerror(errno), o->buf ? "; the buffer will retry" : "; not acknowledging them");
    }
    /* a failed write may have left part of a batch: drop the file handle so
     * the next attempt starts a fresh file (append false) or appends whole lines */
    c->buf.len = 0;
    if (cur >= 0)
        close_file(&c->files[cur]);
    c->cache_idx = -1;
    return OUT_RETRY;
}

static void file_exit(output *o)
{
    out_file *c = o->ctx;
    for (int i = 0; i < c->nfiles; i++)
        close_file(&c->files[i]);
    free(c->cache_tag);
    for (size_t i = 0; i < c->nkeys; i++)
        rec_path_free(&c->keys[i]);
    wbuf_free(&c->kv);
    fmt_free(&c->f);
    wbuf_free(&c->buf);
    wbuf_free(&c->gz);
}

OUT_PLUGIN(file, file, out_file);
