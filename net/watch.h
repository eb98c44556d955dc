/* watch: memcached's `watch` log streams (fetchers, mutations, evictions).
 * A watcher is a connection that only receives lines; the worker threads
 * that serve commands, and the cache when it evicts, format one line per
 * event and append it to every interested watcher's bounded buffer. A
 * watcher that reads too slowly loses lines (counted, and announced to it
 * as "skipped=N"); nothing ever waits for a watcher. With no watcher the
 * cost of an event is one relaxed load. */
#ifndef FLEETCACHE_NET_WATCH_H
#define FLEETCACHE_NET_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

struct conn;
struct reply_buf;
struct watch;

/* Event kinds, memcached's names for `watch <kind> ...`. */
#define WATCH_KINDS(X)          \
    X(FETCHERS, "fetchers")     \
    X(MUTATIONS, "mutations")   \
    X(EVICTIONS, "evictions")   \
    X(RAWCMDS, "rawcmds")       \
    X(SYSEVENTS, "sysevents")   \
    X(CONNEVENTS, "connevents") \
    X(PROXYREQS, "proxyreqs")   \
    X(PROXYEVENTS, "proxyevents") \
    X(PROXYUSER, "proxyuser")

enum watch_kind_bit {
#define WATCH_BIT_ENUM(name, word) WATCH_BIT_##name,
    WATCH_KINDS(WATCH_BIT_ENUM)
#undef WATCH_BIT_ENUM
};

#define WATCH_KIND(name) (1u << WATCH_BIT_##name)

/* The kinds some watcher asked for. */
extern _Atomic unsigned watch_kinds;

static inline bool
watch_wants(unsigned kind)
{
    return (atomic_load_explicit(&watch_kinds, memory_order_relaxed) & kind) != 0;
}

/* The kind for a word of the `watch` command, or 0 if it names none. */
unsigned
watch_kind_named(const char *word, size_t len);

enum watch_add_result { WATCH_ADDED, WATCH_TOO_MANY, WATCH_FAILED };

/* Makes c a watcher of kinds; on WATCH_ADDED *out is its watch, removed by
 * watch_remove from c's own thread (conn_destroy). */
enum watch_add_result
watch_add(struct conn *c, unsigned kinds, struct watch **out);

void
watch_remove(struct watch *w);

/* Moves up to max bytes of w's pending lines into out. Returns the count. */
size_t
watch_drain(struct watch *w, struct reply_buf *out, size_t max);

/* memcached's was_found for item_get lines. */
enum watch_found { WATCH_NOT_FOUND, WATCH_FOUND, WATCH_FLUSHED, WATCH_EXPIRED };

/* One fetch: key looked up on the connection with fd cfd. */
void
watch_fetch(const char *key, size_t nkey, enum watch_found found, unsigned class_id,
            uint32_t vlen, int cfd);

/* One store: op's result r for key; ttl as memcached prints it. */
void
watch_store(const char *key, size_t nkey, enum cache_store_op op, enum cache_result r,
            uint32_t ttl, unsigned class_id, uint32_t vlen, int cfd);

/* memcached's uriencode of a key for a log or dump line: everything but
 * [A-Za-z0-9-._~] as %XX. out needs 3 * nkey + 1 bytes; returns its length. */
size_t
watch_uriencode(const char *key, size_t nkey, char *out);

/* The cache's eviction hook (cache_set_evict_hook). */
void
watch_evicted(const struct cache_item_view *v);

/* Counters for `stats`: log_worker_written, log_watcher_skipped,
 * log_watcher_sent, log_watchers. */
struct watch_stats {
    uint64_t written, skipped, sent;
    unsigned watchers;
};

void
watch_stats_get(struct watch_stats *out);

#endif
