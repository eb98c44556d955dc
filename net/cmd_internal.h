/* cmd_internal: the command table's row type and the helpers its handlers
 * share (cmd.c holds the classic commands and the table, cmd_meta.c the
 * meta commands). Invariant: by the time a handler runs, the dispatcher has
 * checked the row's token count, set c->noreply for a classic "noreply",
 * run the row's shape check and refused a key over CACHE_KEY_MAX, so a
 * handler only parses its own arguments and calls the cache. */
#ifndef FLEETCACHE_NET_CMD_INTERNAL_H
#define FLEETCACHE_NET_CMD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "net/conn.h"
#include "net/proto.h"

/* What a command tells the bus. */
enum cmd_publish {
    PUB_NONE,       /* reads, touch, admin */
    PUB_KEY,        /* the key changed: after success only */
    PUB_ALWAYS,     /* delete: on a hit or a miss (peers may hold the key),
                     * never when a CAS check refused it */
    PUB_FLUSH,      /* flush_all */
};

/* How a command's replies are silenced. */
enum cmd_reply {
    CMD_PLAIN,      /* never */
    CMD_NOREPLY,    /* classic: a last token "noreply" silences every reply,
                     * errors included (memcached's set_noreply_maybe) */
    CMD_QUIET,      /* meta: the q flag; the handler drops the nominal codes */
};

enum cmd_key {
    CMD_KEY_NONE,   /* no key, or several (checked one by one) */
    CMD_KEY_ONE,    /* tokens[1] is a key: over 250 bytes is refused */
};

/* cmd_row.arg of the get family. */
enum {
    GET_CAS = 1,
    GET_TOUCH = 2,
};

struct cmd_row;
typedef void (*cmd_handler_fn)(struct conn *c, struct proto_request *req,
                               const struct cmd_row *row);
/* A row's own check of the tokens' shape, after the token count and noreply:
 * returns the error line, or NULL when the request may go on. */
typedef const char *(*cmd_shape_fn)(struct conn *c, const struct proto_request *req);

struct cmd_row {
    const char *name;
    size_t len;
    cmd_handler_fn handler;
    int arg;                    /* variant: get flags, store op, incr/decr */
    uint8_t min_tokens;         /* memcached's ntokens, the terminal included */
    uint8_t max_tokens;         /* 0: no upper bound */
    const char *arity_error;    /* the reply outside those bounds */
    enum cmd_reply reply;
    enum cmd_key key;
    cmd_shape_fn shape;         /* NULL: none */
    enum cmd_publish publish;
    cmd_handler_fn l2;          /* two-level mode's handler; NULL: handler */
};

/* memcached's out_string: queues line and "\r\n", or nothing while the
 * current command is silenced (c->noreply, which it then clears). */
void
cmd_out(struct conn *c, const char *line);

/* Tells the bus hook about key according to row->publish and the outcome r
 * (CACHE_OK, CACHE_MISS, or anything else for a refusal). Under --bus-sync
 * the connection's replies then wait for the fleet (conn.c). */
void
cmd_publish(struct conn *c, const struct cmd_row *row, enum cache_result r,
            const char *key, size_t nkey, bool has_hash, uint64_t hash);

/* --bus-sync: the connection's replies wait for this thread's last
 * publication (cmd_publish does it; a command that publishes through
 * another hook calls it after). No-op without --bus-sync. */
void
cmd_sync_wait(struct conn *c);

/* --bus-sync: may this node answer from its copy of a key now? False while
 * it lacks a read lease from some peer: a retrieval then answers as a miss
 * (get; mg first drops the copy, as its vivify and win need a real miss),
 * and a command whose outcome depends on the copy (add, replace, append,
 * prepend, cas, incr, decr, their meta forms) first drops it. Always true
 * without --bus-sync. */
static inline bool
cmd_read_ok(const struct conn *c)
{
    net_read_ok_fn ok = c->w->shared->opts.read_ok;
    return ok == NULL || ok();
}

/* The meta commands (cmd_meta.c). */
void cmd_mg(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_ms(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_md(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_ma(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_me(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_mn(struct conn *c, struct proto_request *req, const struct cmd_row *row);
/* An ms's data block arrived in it (chunk_ok: it ends in "\r\n"): stores,
 * replies and publishes. The caller still releases it. */
void
cmd_ms_complete(struct conn *c, struct item *it, bool chunk_ok);

/* The table's row for a command name, or NULL: the binary protocol
 * publishes by its text twin's row. */
const struct cmd_row *
cmd_row_named(const char *name);

/* Tells `watch mutations` about a store of it (cmd.c). */
void
cmd_watch_store(const struct conn *c, const struct item *it, enum cache_store_op op,
                enum cache_result r);

/* The operator's commands (cmd_admin.c). */
void cmd_lru_crawler(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_watch(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_lru(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_cache_memlimit(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_extstore(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void cmd_stats_cachedump(struct conn *c, struct proto_request *req);
void cmd_stats_detail(struct conn *c, const struct proto_request *req);

#endif
