/* cmd: the command table and every classic text command, with memcached
 * 1.6.18's token-count checks, error lines and noreply rules (any reply of a
 * command whose last token is "noreply" is suppressed, errors included, as
 * memcached's out_string does). Each row of CMD_TABLE declares how many
 * tokens its command takes, how it is silenced, whether tokens[1] is a key
 * and what a success publishes; cmd_dispatch checks all of that once, so the
 * handlers below only parse their arguments and call the cache. The meta
 * commands are rows of the same table; their handlers live in cmd_meta.c. */
#include "net/cmd.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/cmd_internal.h"
#include "net/prefix.h"
#include "net/l2cmd.h"
#include "net/stats_text.h"
#include "net/watch.h"
#include "src/clock.h"
#include "src/log.h"

static void cmd_get(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_store(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_delete(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_arith(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_touch(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_flush_all(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_version(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_verbosity(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_stats(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_quit(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static void cmd_shutdown(struct conn *c, struct proto_request *req, const struct cmd_row *row);
static const char *cmd_delete_shape(struct conn *c, const struct proto_request *req);
static void cmd_slabs(struct conn *c, struct proto_request *req, const struct cmd_row *row);

#define ERR "ERROR"
#define E_FORMAT "CLIENT_ERROR bad command line format"
#define QUIET CMD_QUIET
#define NOREPLY CMD_NOREPLY
#define PLAIN CMD_PLAIN
#define KEY CMD_KEY_ONE
#define NOKEY CMD_KEY_NONE

/* name, handler, variant, tokens min..max (memcached's count, the terminal
 * included; 0: no bound) and the reply outside them, how replies are
 * silenced, whether tokens[1] is a key, shape check, what it publishes, and
 * the handler that replaces it on a node with an L2 pool (NULL: the same
 * one serves; get's misses and the storage commands' data blocks turn to
 * l2cmd.c from inside it). Most frequent first: lookup is a scan. */
#define CMD_TABLE(X)                                                                                      \
    X("get", cmd_get, 0, 3, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                                   \
    X("set", cmd_store, CACHE_SET, 6, 7, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                          \
    X("mg", cmd_mg, 0, 3, 0, ERR, QUIET, KEY, NULL, PUB_NONE, NULL)                                       \
    X("ms", cmd_ms, 0, 3, 0, ERR, QUIET, KEY, NULL, PUB_KEY, NULL)                                        \
    X("gets", cmd_get, GET_CAS, 3, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                            \
    X("md", cmd_md, 0, 3, 0, ERR, QUIET, KEY, NULL, PUB_ALWAYS, l2cmd_md)                                 \
    X("ma", cmd_ma, 0, 3, 0, ERR, QUIET, KEY, NULL, PUB_KEY, l2cmd_ma)                                    \
    X("mn", cmd_mn, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                                     \
    X("me", cmd_me, 0, 3, 0, E_FORMAT, PLAIN, KEY, NULL, PUB_NONE, NULL)                                  \
    X("delete", cmd_delete, 0, 3, 5, ERR, PLAIN, KEY, cmd_delete_shape, PUB_ALWAYS, l2cmd_delete)         \
    X("add", cmd_store, CACHE_ADD, 6, 7, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                          \
    X("replace", cmd_store, CACHE_REPLACE, 6, 7, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                  \
    X("append", cmd_store, CACHE_APPEND, 6, 7, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                    \
    X("prepend", cmd_store, CACHE_PREPEND, 6, 7, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                  \
    X("cas", cmd_store, CACHE_CAS, 7, 8, ERR, NOREPLY, KEY, NULL, PUB_KEY, NULL)                          \
    X("incr", cmd_arith, 1, 4, 5, ERR, NOREPLY, KEY, NULL, PUB_KEY, l2cmd_arith)                          \
    X("decr", cmd_arith, 0, 4, 5, ERR, NOREPLY, KEY, NULL, PUB_KEY, l2cmd_arith)                          \
    X("touch", cmd_touch, 0, 4, 5, ERR, NOREPLY, KEY, NULL, PUB_NONE, l2cmd_touch)                        \
    X("gat", cmd_get, GET_TOUCH, 3, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, l2cmd_gat)                      \
    X("gats", cmd_get, GET_TOUCH | GET_CAS, 3, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, l2cmd_gat)           \
    X("bget", cmd_get, 0, 3, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                                  \
    X("flush_all", cmd_flush_all, 0, 2, 4, ERR, NOREPLY, NOKEY, NULL, PUB_FLUSH, NULL)                    \
    X("version", cmd_version, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                           \
    X("verbosity", cmd_verbosity, 0, 3, 4, ERR, NOREPLY, NOKEY, NULL, PUB_NONE, NULL)                     \
    X("stats", cmd_stats, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                               \
    X("quit", cmd_quit, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                                 \
    X("shutdown", cmd_shutdown, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                         \
    X("slabs", cmd_slabs, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                               \
    X("lru_crawler", cmd_lru_crawler, 0, 0, 0, ERR, PLAIN, NOKEY, NULL, PUB_NONE, NULL)                   \
    X("watch", cmd_watch, 0, 0, 0, ERR, NOREPLY, NOKEY, NULL, PUB_NONE, NULL)                             \
    X("lru", cmd_lru, 0, 3, 0, ERR, NOREPLY, NOKEY, NULL, PUB_NONE, NULL)                                 \
    X("cache_memlimit", cmd_cache_memlimit, 0, 3, 4, ERR, NOREPLY, NOKEY, NULL, PUB_NONE, NULL)           \
    X("extstore", cmd_extstore, 0, 3, 0, ERR, NOREPLY, NOKEY, NULL, PUB_NONE, NULL)

static const struct cmd_row cmd_table[] = {
#define CMD_ROW(name, handler, arg, min, max, arity_err, reply, key, shape, publish, l2) \
    { name, sizeof(name) - 1, handler, arg, min, max, arity_err, reply, key, shape, publish, l2 },
    CMD_TABLE(CMD_ROW)
#undef CMD_ROW
};

#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))

void
cmd_out(struct conn *c, const char *line)
{
    if (c->noreply) {
        c->noreply = false;
        return;
    }
    reply_line(&c->out, line);
}

/* memcached's set_noreply_maybe: "noreply" must be the last token. */
static bool
cmd_noreply_maybe(struct conn *c, const struct proto_request *req)
{
    const struct proto_token *t = &req->tokens[req->ntokens - 2];
    if (proto_token_is(t, "noreply"))
        c->noreply = true;
    return c->noreply;
}

void
cmd_sync_wait(struct conn *c)
{
    net_ticket_fn ticket = c->w->shared->opts.sync_ticket;
    if (ticket != NULL)
        c->sync_ticket = ticket();
}

void
cmd_publish(struct conn *c, const struct cmd_row *row, enum cache_result r,
            const char *key, size_t nkey, bool has_hash, uint64_t hash)
{
    net_invalidate_fn fn = c->w->shared->opts.on_invalidate;
    if (fn == NULL)
        return;
    bool go = (row->publish == PUB_KEY && r == CACHE_OK) ||
              (row->publish == PUB_ALWAYS && (r == CACHE_OK || r == CACHE_MISS));
    if (go) {
        fn(key, nkey, has_hash, hash);
        cmd_sync_wait(c);
    }
}

static const struct cmd_row *
cmd_find(const struct proto_token *name)
{
    for (size_t i = 0; i < CMD_COUNT; i++) {
        const struct cmd_row *row = &cmd_table[i];
        if (row->len == name->len && memcmp(row->name, name->p, name->len) == 0)
            return row;
    }
    return NULL;
}
static void cmd_dispatch_one(struct conn *c, struct proto_request *req);
static void cmd_complete_nread_one(struct conn *c);

const struct cmd_row *
cmd_row_named(const char *name)
{
    struct proto_token t = { name, strlen(name) };
    return cmd_find(&t);
}

/* memcached's last resort for a command it does not know: a request line
 * whose last token starts "HTTP/" closes the connection. Its dispatch goes
 * by first letter, so a name starting g s a c i d t, or any two-letter m
 * name, answers ERROR before that test: those stay ERROR here too. */
static bool
cmd_is_http(const struct proto_request *req)
{
    const struct proto_token *name = &req->tokens[0];
    if (strchr("gsacidt", name->p[0]) != NULL || (name->p[0] == 'm' && name->len == 2))
        return false;
    const struct proto_token *last = &req->tokens[req->ntokens - 2];
    return last->len >= 5 && memcmp(last->p, "HTTP/", 5) == 0;
}

void
cmd_dispatch(struct conn *c, struct proto_request *req)
{
    if (log_verbosity() < LOG_DEBUG) {
        cmd_dispatch_one(c, req);
        return;
    }
    /* -vv, as memcached: the command, then each line of its reply. */
    log_debug("<%d %.*s", c->fd, (int)req->line_len, req->line);
    struct reply_mark m;
    reply_mark(&c->out, &m);
    cmd_dispatch_one(c, req);
    reply_log_since(&c->out, &m, c->fd);
}

static void
cmd_dispatch_one(struct conn *c, struct proto_request *req)
{
    c->noreply = false;
    /* No command is shorter than two bytes (memcached). */
    if (req->ntokens < 2 || req->tokens[0].len < 2) {
        reply_line(&c->out, "ERROR");
        return;
    }
    const struct cmd_row *row = cmd_find(&req->tokens[0]);
    if (row == NULL) {
        if (cmd_is_http(req)) {
            /* A web page on localhost can make a browser send this: hang
             * up before its body is read as commands, as memcached does.
             * Replies queued earlier in this read go unsent with it. */
            c->dead = true;
            return;
        }
        reply_line(&c->out, "ERROR");
        return;
    }
    if (req->ntokens < row->min_tokens || (row->max_tokens && req->ntokens > row->max_tokens)) {
        reply_line(&c->out, row->arity_error);
        return;
    }
    if (row->reply == CMD_NOREPLY)
        cmd_noreply_maybe(c, req);
    if (row->shape != NULL) {
        const char *err = row->shape(c, req);
        if (err != NULL) {
            cmd_out(c, err);
            return;
        }
    }
    if (row->key == CMD_KEY_ONE && req->tokens[1].len > CACHE_KEY_MAX) {
        cmd_out(c, E_FORMAT);
        return;
    }
    cmd_handler_fn handler = row->l2 != NULL && c->w->l2 != NULL ? row->l2 : row->handler;
    handler(c, req, row);
}

/* --- retrieval ---------------------------------------------------------- */

static void
cmd_get(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    bool with_cas = row->arg & GET_CAS;
    bool touch = row->arg & GET_TOUCH;
    int32_t exptime = 0;
    struct worker *w = c->w;

    size_t k = 1;
    if (touch) {
        if (!proto_parse_i32(&req->tokens[1], &exptime)) {
            cmd_out(c, "CLIENT_ERROR invalid exptime argument");
            return;
        }
        k = 2;
    }
    uint64_t lookups = 0;
    /* --bus-sync: one look at the lease for the whole command, taken after
     * its request was read. */
    bool leased = cmd_read_ok(c);
    /* What this command queues, and nothing before it, is what a key over
     * 250 bytes takes back: earlier pipelined replies belong to requests
     * the client is already matching them to. */
    struct reply_mark mine;
    reply_mark(&c->out, &mine);
    /* Two-level mode: from the first key L1 misses on, the values wait in
     * op, in order, for what L2 sends (hits before it are already queued). */
    struct l2op *op = NULL;
    for (;;) {
        for (; req->tokens[k].len != 0; k++) {
            const struct proto_token *key = &req->tokens[k];
            if (key->len > CACHE_KEY_MAX) {
                if (op != NULL)
                    l2cmd_get_abort(op);
                reply_rollback(&c->out, &mine);
                reply_line(&c->out, "CLIENT_ERROR bad command line format");
                goto count;
            }
            lookups++;
            /* Without a lease, a miss: this node may hold a copy a peer changed. */
            struct item *it = !leased ? NULL
                              : touch ? cache_get_touch(key->p, key->len, exptime)
                                      : cache_get(key->p, key->len);
            if (prefix_enabled())
                prefix_record_get(key->p, key->len, it != NULL);
            if (watch_wants(WATCH_KIND(FETCHERS)))
                watch_fetch(key->p, key->len, it ? WATCH_FOUND : WATCH_NOT_FOUND,
                            it ? item_class_id(it) : 0, it ? item_nbytes(it) - 2 : 0, c->fd);
            if (op != NULL) {
                if (it != NULL)
                    l2cmd_get_hit(op, it);
                else
                    l2cmd_get_miss(op, key->p, key->len);
            } else if (it != NULL) {
                reply_value(&c->out, it, with_cas); /* the reference moves to out */
            } else if (w->l2 != NULL && (op = l2cmd_get_begin(c, with_cas)) != NULL) {
                l2cmd_get_miss(op, key->p, key->len);
            }
        }
        if (req->rest == NULL)
            break;
        /* More than 23 tokens: continue where the tokenizer stopped. */
        proto_tokenize(req, req->rest, req->rest_len);
        k = 0;
    }
    if (op != NULL)
        l2cmd_get_end(op); /* queues the rest and END, now or once L2 answered */
    else
        reply_add(&c->out, "END\r\n", 5);
count:
    if (touch)
        NET_STAT_ADD(w, cmd_touch, lookups);
    else
        NET_STAT_ADD(w, cmd_get, lookups);
}

/* --- storage ------------------------------------------------------------ */

static void
cmd_store(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    enum cache_store_op op = (enum cache_store_op)row->arg;
    bool is_cas = op == CACHE_CAS;
    uint32_t flags;
    int32_t exptime, vlen;
    uint64_t cas_in = 0;

    const struct proto_token *key = &req->tokens[1];
    if (!(proto_parse_u32(&req->tokens[2], &flags) &&
          proto_parse_i32(&req->tokens[3], &exptime) &&
          proto_parse_i32(&req->tokens[4], &vlen))) {
        cmd_out(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (is_cas && !proto_parse_u64(&req->tokens[5], &cas_in)) {
        cmd_out(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (vlen < 0 || vlen > INT_MAX - 2) {
        cmd_out(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (prefix_enabled())
        prefix_record_set(key->p, key->len);

    struct item *it = NULL;
    enum cache_result r = cache_alloc(&it, key->p, key->len, flags, exptime, (uint32_t)vlen);
    if (r != CACHE_OK) {
        if (watch_wants(WATCH_KIND(MUTATIONS)))
            watch_store(key->p, key->len, op, r, 0, 0, 0, c->fd);
        if (r == CACHE_TOO_LARGE) {
            NET_STAT_ADD(c->w, store_too_large, 1);
            cmd_out(c, reply_result_line(CACHE_TOO_LARGE));
        } else {
            NET_STAT_ADD(c->w, store_no_memory, 1);
            cmd_out(c, reply_result_line(CACHE_NO_MEMORY));
        }
        /* The data block still arrives: discard it. */
        c->state = CONN_SWALLOW;
        c->swallow_left = (size_t)vlen + 2;
        /* memcached will not leave the old value visible after a failed set. */
        if (op == CACHE_SET) {
            cache_drop(key->p, key->len, false, 0); /* uncounted, as memcached */
            cmd_publish(c, row, CACHE_OK, key->p, key->len, false, 0);
        }
        return;
    }
    c->nread_it = it; /* released in cmd_complete_nread or conn_destroy */
    c->nread_dst = item_value(it);
    c->nread_left = (size_t)vlen + 2;
    c->nread_op = op;
    c->nread_row = row;
    c->nread_meta.active = false;
    c->nread_cas = cas_in;
    c->nread_exptime = exptime;
    c->nread_noreply = c->noreply;
    c->noreply = false;
    c->state = CONN_NREAD;
}

void
cmd_watch_store(const struct conn *c, const struct item *it, enum cache_store_op op,
                enum cache_result r)
{
    /* memcached prints the TTL as its unsigned rel time minus now: an item
     * stored already expired shows as a huge number, as there. */
    int64_t exp = item_exptime_unix(it);
    uint32_t now = clock_now();
    uint32_t ttl = exp == 0 ? 0 : exp < 0 ? 1u - now
                                          : (uint32_t)(exp - (int64_t)clock_process_started() - now);
    watch_store(item_key(it), item_nkey(it), op, r, ttl, item_class_id(it), item_nbytes(it) - 2,
                c->fd);
}

void
cmd_complete_nread(struct conn *c)
{
    if (log_verbosity() < LOG_DEBUG) {
        cmd_complete_nread_one(c);
        return;
    }
    struct reply_mark m;
    reply_mark(&c->out, &m);
    cmd_complete_nread_one(c);
    reply_log_since(&c->out, &m, c->fd); /* -vv: the storage command's reply */
}

static void
cmd_complete_nread_one(struct conn *c)
{
    struct item *it = c->nread_it;
    c->nread_it = NULL;
    c->state = CONN_PARSE;
    c->noreply = c->nread_noreply;
    const char *value = item_value(it);
    uint32_t nbytes = item_nbytes(it);
    bool chunk_ok = value[nbytes - 2] == '\r' && value[nbytes - 1] == '\n';
    if (c->nread_meta.active) {
        cmd_ms_complete(c, it, chunk_ok);
        cache_release(&it);
        return;
    }
    if (!chunk_ok) {
        cache_count_set(it);
        cmd_out(c, "CLIENT_ERROR bad data chunk");
        cache_release(&it);
        return;
    }
    enum cache_store_op op = c->nread_op;
    if (c->w->l2 != NULL) {
        /* Through L2 first, from item memory; the reference moves. */
        bool noreply = c->noreply;
        c->noreply = false;
        l2cmd_store(c, it, op, c->nread_cas, c->nread_exptime, c->nread_row, noreply);
        return;
    }
    /* --bus-sync without a lease: whatever depends on the copy (add,
     * replace, append, prepend, cas) meets none: it may be one a peer changed. */
    if (op != CACHE_SET && !cmd_read_ok(c))
        cache_drop(item_key(it), item_nkey(it), false, 0);
    enum cache_result r = cache_store(it, op, c->nread_cas, NULL);
    if (watch_wants(WATCH_KIND(MUTATIONS)))
        cmd_watch_store(c, it, op, r);
    cmd_out(c, reply_result_line(r));
    /* Without a listener the value hash is never read, and hashing a 64 KiB
     * value costs a tenth of the set. */
    if (r == CACHE_OK && c->w->shared->opts.on_invalidate != NULL) {
        /* append/prepend store a combined value: it only holds the part. */
        bool whole = op != CACHE_APPEND && op != CACHE_PREPEND;
        cmd_publish(c, c->nread_row, CACHE_OK, item_key(it), item_nkey(it), whole,
                    whole ? item_value_hash(it) : 0);
    }
    cache_release(&it);
}

/* --- other mutations ---------------------------------------------------- */

/* memcached accepts "delete <key> 0" and "delete <key> [0] noreply" (a hold
 * time of zero is all that is left of the old delayed delete). */
static const char *
cmd_delete_shape(struct conn *c, const struct proto_request *req)
{
    if (req->ntokens == 3)
        return NULL;
    bool hold_is_zero = proto_token_is(&req->tokens[2], "0");
    bool sets_noreply = cmd_noreply_maybe(c, req);
    bool valid = (req->ntokens == 4 && (hold_is_zero || sets_noreply)) ||
                 (req->ntokens == 5 && hold_is_zero && sets_noreply);
    return valid ? NULL
                 : "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
}

static void
cmd_delete(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    const struct proto_token *key = &req->tokens[1];
    if (prefix_enabled())
        prefix_record_delete(key->p, key->len);
    enum cache_result r = cache_delete(key->p, key->len);
    cmd_out(c, r == CACHE_OK ? "DELETED" : reply_result_line(r));
    cmd_publish(c, row, r, key->p, key->len, false, 0);
}

static void
cmd_arith(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    uint64_t delta, result;
    const struct proto_token *key = &req->tokens[1];
    if (!proto_parse_u64(&req->tokens[2], &delta)) {
        cmd_out(c, "CLIENT_ERROR invalid numeric delta argument");
        return;
    }
    if (!cmd_read_ok(c))
        cache_drop(key->p, key->len, false, 0); /* --bus-sync without a lease */
    enum cache_result r = cache_arith(key->p, key->len, row->arg != 0, delta, &result);
    switch (r) {
    case CACHE_OK: {
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)result);
        cmd_out(c, num);
        /* The stored bytes may be space-padded in place: no value hash. */
        cmd_publish(c, row, CACHE_OK, key->p, key->len, false, 0);
        break;
    }
    case CACHE_NO_MEMORY:
        cmd_out(c, "SERVER_ERROR out of memory");
        break;
    default:
        cmd_out(c, reply_result_line(r));
        break;
    }
}

static void
cmd_touch(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    int32_t exptime;
    const struct proto_token *key = &req->tokens[1];
    if (!proto_parse_i32(&req->tokens[2], &exptime)) {
        cmd_out(c, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    NET_STAT_ADD(c->w, cmd_touch, 1);
    enum cache_result r = cache_touch(key->p, key->len, exptime);
    cmd_out(c, r == CACHE_OK ? "TOUCHED" : reply_result_line(r));
}

static void
cmd_flush_all(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    int32_t exptime = 0;
    NET_STAT_ADD(c->w, cmd_flush, 1);
    if (!c->w->shared->opts.flush_enabled) {
        cmd_out(c, "CLIENT_ERROR flush_all not allowed");
        return;
    }
    if (req->ntokens != (c->noreply ? 3u : 2u)) {
        if (!proto_parse_i32(&req->tokens[1], &exptime)) {
            cmd_out(c, "CLIENT_ERROR invalid exptime argument");
            return;
        }
    }
    /* memcached treats zero and negative delays alike: now. */
    int64_t delay = exptime > 0 ? exptime : 0;
    cache_flush(delay);
    if (c->w->shared->opts.on_flush != NULL && row->publish == PUB_FLUSH) {
        c->w->shared->opts.on_flush(delay);
        cmd_sync_wait(c);
    }
    cmd_out(c, "OK");
}

/* --- administration ----------------------------------------------------- */

static void
cmd_version(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    reply_printf(&c->out, "VERSION %s\r\n", c->w->shared->opts.version);
}

static void
cmd_verbosity(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    uint32_t level;
    if (!proto_parse_u32(&req->tokens[1], &level)) {
        cmd_out(c, "CLIENT_ERROR bad command line format");
        return;
    }
    log_setup(level > LOG_DEBUG ? LOG_DEBUG : (int)level);
    cmd_out(c, "OK");
}

static void
cmd_quit(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    c->close_after_write = true;
}

static void
cmd_shutdown(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    if (!c->w->shared->opts.shutdown_enabled) {
        reply_line(&c->out, "ERROR: shutdown not enabled");
        return;
    }
    if (req->ntokens == 2 ||
        (req->ntokens == 3 && proto_token_is(&req->tokens[1], "graceful"))) {
        /* The main thread owns shutdown; workers block these signals. */
        c->dead = true;
        kill(getpid(), req->ntokens == 2 ? SIGINT : SIGTERM);
        return;
    }
    reply_line(&c->out, "CLIENT_ERROR invalid shutdown mode");
}

static void
cmd_stats(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct net_shared *sh = c->w->shared;
    if (req->ntokens == 2) {
        stats_text_general(sh, &c->out);
        return;
    }
    const struct proto_token *sub = &req->tokens[1];
    if (proto_token_is(sub, "reset")) {
        stats_text_reset(sh);
        prefix_clear();
        reply_line(&c->out, "RESET");
    } else if (proto_token_is(sub, "detail")) {
        cmd_stats_detail(c, req);
    } else if (proto_token_is(sub, "cachedump")) {
        cmd_stats_cachedump(c, req);
    } else if (proto_token_is(sub, "extstore")) {
        reply_add(&c->out, "END\r\n", 5); /* memcached with extstore unused */
    } else if (proto_token_is(sub, "settings")) {
        stats_text_settings(sh, &c->out);
    } else if (proto_token_is(sub, "items")) {
        stats_text_items(&c->out);
    } else if (proto_token_is(sub, "slabs")) {
        stats_text_slabs(&c->out);
    } else if (proto_token_is(sub, "sizes")) {
        stats_text_sizes(sh, &c->out);
    } else if (proto_token_is(sub, "conns")) {
        stats_text_conns(sh, &c->out);
    } else if (!stats_text_sub(sh, sub->p, sub->len, &c->out)) {
        reply_line(&c->out, "ERROR");
    }
}

/* memcached's safe_strtod on a token: the whole token is the number. */
static bool
cmd_parse_double(const struct proto_token *t, double *out)
{
    char buf[128];
    if (t->len == 0 || t->len >= sizeof(buf))
        return false;
    memcpy(buf, t->p, t->len);
    buf[t->len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (errno == ERANGE || end != buf + t->len)
        return false;
    *out = d;
    return true;
}

/* slabs reassign <src> <dst> | slabs automove <0|1|2> | slabs automove
 * ratio <r>, with memcached 1.6.18's token counts and replies: reassign
 * takes no noreply and always answers; automove honours it. */
static void
cmd_slabs(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    if (req->ntokens == 5 && proto_token_is(&req->tokens[1], "reassign")) {
        int32_t src, dst;
        if (!cache_slab_reassign_enabled()) {
            reply_line(&c->out, reply_reassign_line(CACHE_REASSIGN_DISABLED));
        } else if (!proto_parse_i32(&req->tokens[2], &src) || !proto_parse_i32(&req->tokens[3], &dst)) {
            reply_line(&c->out, "CLIENT_ERROR bad command line format");
        } else {
            reply_line(&c->out, reply_reassign_line(cache_slabs_reassign(src, dst)));
        }
        return;
    }
    if (req->ntokens < 4 || !proto_token_is(&req->tokens[1], "automove")) {
        reply_line(&c->out, "ERROR");
        return;
    }
    cmd_noreply_maybe(c, req);
    if (proto_token_is(&req->tokens[2], "ratio")) {
        double ratio;
        if (req->ntokens < 5 || !cmd_parse_double(&req->tokens[3], &ratio)) {
            cmd_out(c, "ERROR");
            return;
        }
        cache_slab_automove_ratio_set(ratio);
    } else {
        uint32_t level;
        if (!proto_parse_u32(&req->tokens[2], &level)) {
            cmd_out(c, "CLIENT_ERROR bad command line format");
            return;
        }
        if (level > 2) {
            cmd_out(c, "ERROR");
            return;
        }
        cache_slab_automove_set(level);
    }
    cmd_out(c, "OK");
}
