/* cmd_admin: the operator's commands beyond the data path, each answering
 * as memcached 1.6.18 does — `lru_crawler` (crawl, metadump, sleep,
 * tocrawl, enable, disable), `watch`, `lru` (mode, temp_ttl, tune),
 * `cache_memlimit`, `extstore`, and the `stats` sub-commands `cachedump`,
 * `detail` and `extstore`. Invariant: none of them holds a cache lock
 * across a socket write; a key dump runs in bounded steps between which the
 * worker serves its other connections (cmd_dump_step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/cmd.h"
#include "net/cmd_internal.h"
#include "net/prefix.h"
#include "net/watch.h"
#include "src/log.h"

/* Slots of the slab pages one dump step looks at. */
#define DUMP_STEP_SLOTS 2048
/* memcached's cap on a `stats cachedump` reply. */
#define CACHEDUMP_MAX (2 * 1024 * 1024)

/* memcached's safe_strtod on a token view. */
static bool
admin_parse_double(const struct proto_token *t, double *out)
{
    char buf[64];
    if (t->p == NULL || t->len == 0 || t->len >= sizeof(buf))
        return false;
    memcpy(buf, t->p, t->len);
    buf[t->len] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (end == buf || *end != '\0')
        return false;
    *out = d;
    return true;
}

/* A class list as lru_crawler reads it: "all", "hash", or ids 1..63
 * separated by commas (empty pieces skipped). Bit n of *mask is id n + 1.
 * False for anything else (BADCLASS). */
static bool
admin_parse_classes(const struct proto_token *t, uint64_t *mask)
{
    *mask = 0;
    if (proto_token_is(t, "all") || proto_token_is(t, "hash")) {
        for (unsigned id = 1; id <= CACHE_CLASS_ID_MAX; id++)
            *mask |= UINT64_C(1) << (id - 1);
        return true;
    }
    const char *p = t->p, *end = t->p + t->len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        if (stop > p) {
            struct proto_token piece = { p, (size_t)(stop - p) };
            uint32_t id;
            if (!proto_parse_u32(&piece, &id) || id < 1 || id > CACHE_CLASS_ID_MAX)
                return false;
            *mask |= UINT64_C(1) << (id - 1);
        }
        p = stop + (comma != NULL);
    }
    return true;
}

/* --- lru_crawler ----------------------------------------------------------- */

static bool
admin_dump_line(const struct cache_item_view *v, void *arg)
{
    struct conn *c = arg;
    char key[CACHE_KEY_MAX * 3 + 1];
    watch_uriencode(v->key, v->nkey, key);
    reply_printf(&c->out, "key=%s exp=%lld la=%lld cas=%llu fetch=%s cls=%u size=%u\n", key,
                 v->exptime == 0 ? -1LL : (long long)v->exptime, (long long)v->atime,
                 (unsigned long long)v->cas, v->fetched ? "yes" : "no", v->class_id, v->size);
    return true;
}

bool
cmd_dump_step(struct conn *c)
{
    if (cache_walk_step(&c->dump_walk, DUMP_STEP_SLOTS, admin_dump_line, c))
        return false;
    reply_add(&c->out, "END\r\n", 5);
    c->state = CONN_PARSE;
    return true;
}

static void
admin_metadump(struct conn *c, struct proto_request *req)
{
    struct cache_crawler_status cs;
    cache_crawler_status(&cs);
    if (!cs.enabled) {
        cmd_out(c, "CLIENT_ERROR lru crawler disabled");
        return;
    }
    if (!c->w->shared->opts.dump_enabled) {
        cmd_out(c, "ERROR metadump not allowed");
        return;
    }
    if (!reply_empty(&c->out)) {
        cmd_out(c, "ERROR cannot pipeline other commands before metadump");
        return;
    }
    uint64_t mask;
    if (!admin_parse_classes(&req->tokens[2], &mask)) {
        cmd_out(c, "BADCLASS invalid class id");
        return;
    }
    if (mask == 0) {
        cmd_out(c, "NOTSTARTED no items to crawl");
        return;
    }
    cache_walk_begin(&c->dump_walk, mask);
    c->state = CONN_DUMP; /* conn_process runs cmd_dump_step until END */
}

static void
admin_crawl(struct conn *c, struct proto_request *req)
{
    uint64_t mask;
    struct cache_crawler_status cs;
    cache_crawler_status(&cs);
    if (!cs.enabled) {
        cmd_out(c, "CLIENT_ERROR lru crawler disabled");
        return;
    }
    if (!admin_parse_classes(&req->tokens[2], &mask)) {
        cmd_out(c, "BADCLASS invalid class id");
        return;
    }
    switch (cache_crawl(mask)) {
    case CACHE_CRAWL_OK:
        cmd_out(c, "OK");
        break;
    case CACHE_CRAWL_RUNNING:
        cmd_out(c, "BUSY currently processing crawler request");
        break;
    case CACHE_CRAWL_DISABLED:
        cmd_out(c, "CLIENT_ERROR lru crawler disabled");
        break;
    case CACHE_CRAWL_NONE:
        cmd_out(c, "NOTSTARTED no items to crawl");
        break;
    }
}

void
cmd_lru_crawler(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    (void)row;
    const struct proto_token *sub = &req->tokens[1];
    struct cache_crawler_status cs;
    uint32_t v;
    if (req->ntokens == 4 && proto_token_is(sub, "crawl")) {
        admin_crawl(c, req);
    } else if (req->ntokens == 4 && proto_token_is(sub, "metadump")) {
        admin_metadump(c, req);
    } else if (req->ntokens == 4 && proto_token_is(sub, "tocrawl")) {
        if (!proto_parse_u32(&req->tokens[2], &v)) {
            cmd_out(c, "CLIENT_ERROR bad command line format");
            return;
        }
        cache_crawler_status(&cs);
        cache_crawler_tune(cs.sleep_us, v);
        cmd_out(c, "OK");
    } else if (req->ntokens == 4 && proto_token_is(sub, "sleep")) {
        if (!proto_parse_u32(&req->tokens[2], &v)) {
            cmd_out(c, "CLIENT_ERROR bad command line format");
            return;
        }
        if (v > 1000000) {
            cmd_out(c, "CLIENT_ERROR sleep must be one second or less");
            return;
        }
        cache_crawler_status(&cs);
        cache_crawler_tune(v, cs.tocrawl);
        cmd_out(c, "OK");
    } else if (req->ntokens == 3 && proto_token_is(sub, "enable")) {
        cmd_out(c, cache_crawler_set(true) ? "OK" : "ERROR failed to start lru crawler thread");
    } else if (req->ntokens == 3 && proto_token_is(sub, "disable")) {
        cache_crawler_set(false);
        cmd_out(c, "OK");
    } else {
        cmd_out(c, "ERROR");
    }
}

/* --- watch ------------------------------------------------------------------ */

void
cmd_watch(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    (void)row;
    if (!c->w->shared->opts.watch_enabled) {
        cmd_out(c, "CLIENT_ERROR watch commands not allowed");
        return;
    }
    if (!reply_empty(&c->out)) {
        cmd_out(c, "ERROR cannot pipeline other commands before watch");
        return;
    }
    unsigned kinds = 0;
    if (req->ntokens > 2) {
        for (size_t i = 1; i < req->ntokens - 1; i++) {
            const struct proto_token *t = &req->tokens[i];
            unsigned k = watch_kind_named(t->p, t->len);
            if (k == 0) {
                cmd_out(c, "ERROR");
                return;
            }
            kinds |= k;
        }
    } else {
        kinds = WATCH_KIND(FETCHERS);
    }
    switch (watch_add(c, kinds, &c->watch)) {
    case WATCH_ADDED:
        reply_line(&c->out, "OK");
        c->state = CONN_WATCH;
        break;
    case WATCH_TOO_MANY:
        cmd_out(c, "WATCHER_TOO_MANY log watcher limit reached");
        break;
    case WATCH_FAILED:
        cmd_out(c, "WATCHER_FAILED failed to add log watcher");
        break;
    }
}

/* --- lru, cache_memlimit, extstore ------------------------------------------- */

void
cmd_lru(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    (void)row;
    const struct proto_token *sub = &req->tokens[1];
    struct cache_lru_tuning lru;
    cache_lru_get(&lru);
    bool maintainer = cache_maintainer();
    if (proto_token_is(sub, "tune") && req->ntokens >= 7) {
        uint32_t hot, warm;
        double hot_factor, warm_factor;
        if (!proto_parse_u32(&req->tokens[2], &hot) || !proto_parse_u32(&req->tokens[3], &warm) ||
            !admin_parse_double(&req->tokens[4], &hot_factor) ||
            !admin_parse_double(&req->tokens[5], &warm_factor)) {
            cmd_out(c, "ERROR");
        } else if (hot + warm > 80) {
            cmd_out(c, "ERROR hot and warm pcts must not exceed 80");
        } else if (warm_factor <= 0 || hot_factor <= 0) {
            cmd_out(c, "ERROR hot/warm age factors must be greater than 0");
        } else {
            lru.hot_pct = hot;
            lru.warm_pct = warm;
            lru.hot_max_factor = hot_factor;
            lru.warm_max_factor = warm_factor;
            cache_lru_set(&lru);
            cmd_out(c, "OK");
        }
    } else if (proto_token_is(sub, "mode") && req->ntokens >= 4 && maintainer) {
        if (proto_token_is(&req->tokens[2], "flat")) {
            lru.segmented = false;
        } else if (proto_token_is(&req->tokens[2], "segmented")) {
            lru.segmented = true;
        } else {
            cmd_out(c, "ERROR");
            return;
        }
        cache_lru_set(&lru);
        cmd_out(c, "OK");
    } else if (proto_token_is(sub, "temp_ttl") && req->ntokens >= 4 && maintainer) {
        int32_t ttl;
        if (!proto_parse_i32(&req->tokens[2], &ttl)) {
            cmd_out(c, "ERROR");
            return;
        }
        lru.temp_lru = ttl >= 0;
        if (ttl >= 0)
            lru.temp_ttl = (uint32_t)ttl;
        cache_lru_set(&lru);
        cmd_out(c, "OK");
    } else {
        cmd_out(c, "ERROR");
    }
}

void
cmd_cache_memlimit(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    (void)row;
    uint32_t mb;
    if (!proto_parse_u32(&req->tokens[1], &mb)) {
        cmd_out(c, "ERROR");
    } else if (mb < 8) {
        cmd_out(c, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m");
    } else if (mb > 1000000000) {
        cmd_out(c, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes");
    } else if (cache_set_mem_limit((uint64_t)mb << 20)) {
        log_info("maxbytes adjusted to %um", mb);
        cmd_out(c, "OK");
    } else {
        cmd_out(c, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust");
    }
}

/* memcached's settings for its external storage are accepted and checked as
 * it checks them (Debian builds it with extstore); there is no extstore
 * here, so they change nothing. */
void
cmd_extstore(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    (void)row;
    static const char *const u32_settings[] = {
        "item_size", "item_age", "low_ttl", "recache_rate", "compact_under",
        "drop_under", "max_sleep", "drop_unread",
    };
    const struct proto_token *sub = &req->tokens[1];
    uint32_t v;
    double d;
    bool ok = false;
    if (req->ntokens < 4) {
        ok = false;
    } else if (proto_token_is(sub, "free_memchunks") && req->ntokens > 4) {
        uint32_t limit;
        ok = proto_parse_u32(&req->tokens[2], &v) && proto_parse_u32(&req->tokens[3], &limit) &&
             v < 64;
    } else if (proto_token_is(sub, "max_frag")) {
        ok = admin_parse_double(&req->tokens[2], &d);
    } else {
        for (size_t i = 0; i < sizeof(u32_settings) / sizeof(u32_settings[0]); i++)
            if (proto_token_is(sub, u32_settings[i]))
                ok = proto_parse_u32(&req->tokens[2], &v);
    }
    cmd_out(c, ok ? "OK" : "ERROR");
}

/* --- stats sub-commands ---------------------------------------------------------- */

struct admin_cachedump {
    struct reply_buf *out;
    size_t bytes;
};

static bool
admin_cachedump_line(const struct cache_item_view *v, void *arg)
{
    struct admin_cachedump *d = arg;
    char line[CACHE_KEY_MAX + 64];
    int n = snprintf(line, sizeof(line), "ITEM %.*s [%u b; %llu s]\r\n", (int)v->nkey, v->key,
                     v->vlen, (unsigned long long)v->exptime);
    /* memcached stops before a line that would pass its 2 MB buffer. */
    if (n <= 0 || d->bytes + (size_t)n + 6 > CACHEDUMP_MAX)
        return false;
    reply_add(d->out, line, (size_t)n);
    d->bytes += (size_t)n;
    return true;
}

void
cmd_stats_cachedump(struct conn *c, struct proto_request *req)
{
    uint32_t id, limit;
    if (!c->w->shared->opts.dump_enabled) {
        reply_line(&c->out, "CLIENT_ERROR stats cachedump not allowed");
        return;
    }
    if (req->ntokens < 5) {
        reply_line(&c->out, "CLIENT_ERROR bad command line");
        return;
    }
    if (!proto_parse_u32(&req->tokens[2], &id) || !proto_parse_u32(&req->tokens[3], &limit)) {
        reply_line(&c->out, "CLIENT_ERROR bad command line format");
        return;
    }
    if (id > CACHE_CLASS_ID_MAX) {
        reply_line(&c->out, "CLIENT_ERROR Illegal slab id");
        return;
    }
    struct admin_cachedump d = { &c->out, 0 };
    cache_class_dump(id, limit, admin_cachedump_line, &d);
    reply_add(&c->out, "END\r\n", 5);
}

void
cmd_stats_detail(struct conn *c, const struct proto_request *req)
{
    if (req->ntokens < 4) {
        reply_line(&c->out, "CLIENT_ERROR usage: stats detail on|off|dump");
    } else if (proto_token_is(&req->tokens[2], "on")) {
        prefix_set_enabled(true);
        reply_line(&c->out, "OK");
    } else if (proto_token_is(&req->tokens[2], "off")) {
        prefix_set_enabled(false);
        reply_line(&c->out, "OK");
    } else if (proto_token_is(&req->tokens[2], "dump")) {
        prefix_dump(&c->out);
    } else {
        reply_line(&c->out, "CLIENT_ERROR usage: stats detail on|off|dump");
    }
}
