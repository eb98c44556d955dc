/* cache: the local memcached-semantics store — slab allocator, items, hash
 * table, segmented LRU — and the only header of cache/ that other modules see.
 * Thread-safe: any number of threads call it at once; a lookup takes one
 * striped lock and no global one. Items are refcounted: every function that
 * returns a struct item * hands the caller one reference, which the caller
 * gives back exactly once with cache_release(). While referenced, an item's
 * memory (key and value bytes) stays valid and unchanged even if the key is
 * deleted, replaced or evicted meanwhile.
 *
 * Item memory (one slab chunk, or one large allocation above slab_chunk_max):
 *
 *   +----------------------------+  struct item: 48 bytes on LP64
 *   | h_next | lru prev | lru next|  hash chain, LRU links       (24)
 *   | state bits:8 | cas:56       |  one atomic word             (8)
 *   | exptime | nbytes | flags    |  rel-time s, value+2, client (12)
 *   | refcount:16 | nkey | class  |                              (4)
 *   +----------------------------+
 *   | key (nkey bytes, no NUL)   |
 *   | value ... "\r\n"           |  written to a socket straight from here
 *   +----------------------------+
 */
#ifndef FLEETCACHE_CACHE_H
#define FLEETCACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_MAX 250
/* Expiry times above this many seconds are absolute unix times (memcached). */
#define CACHE_REALTIME_MAXDELTA (60 * 60 * 24 * 30)

/* Results, 0 = OK, named by meaning; net/ maps each to one protocol line. */
#define CACHE_RESULTS(X)   \
    X(CACHE_OK)            \
    X(CACHE_MISS)          \
    X(CACHE_EXISTS)        \
    X(CACHE_NOT_STORED)    \
    X(CACHE_TOO_LARGE)     \
    X(CACHE_NO_MEMORY)     \
    X(CACHE_NOT_NUMBER)    \
    X(CACHE_BAD_KEY)

enum cache_result {
#define CACHE_RESULT_ENUM(name) name,
    CACHE_RESULTS(CACHE_RESULT_ENUM)
#undef CACHE_RESULT_ENUM
    CACHE_RESULT_COUNT
};

/* Name of a result ("CACHE_MISS"), for logs and tests. */
const char *
cache_result_name(enum cache_result r);

enum cache_store_op {
    CACHE_SET,
    CACHE_ADD,      /* only if absent: else CACHE_NOT_STORED */
    CACHE_REPLACE,  /* only if present: else CACHE_NOT_STORED */
    CACHE_APPEND,   /* value joins the end of the stored one; keeps its flags.
                     * NOT_STORED if absent or the joined item can't be made */
    CACHE_PREPEND,
    CACHE_CAS,      /* only if the stored CAS matches: else EXISTS / MISS
                     * (always EXISTS with use_cas off, as memcached -C) */
};

struct cache_options {
    uint64_t mem_limit;        /* -m, bytes; counted in pages */
    uint32_t page_size;        /* slab page, 1 MiB */
    uint32_t chunk_min;        /* -n, bytes of key+value in the smallest class */
    double factor;             /* -f, growth between classes (> 1.0) */
    uint32_t item_max;         /* -I, largest item (header+key+value) */
    uint32_t slab_chunk_max;   /* largest slab chunk; bigger items are "large" */
    bool evict;                /* false with -M: a full cache refuses stores */
    bool use_cas;              /* false with -C: CAS values read as 0 */
    unsigned hashpower;        /* initial table size, log2 buckets (>= 10) */
    bool background;           /* run the maintenance thread (expansion, reclaim) */
    uint32_t max_ttl;          /* --max-ttl: caps every item's TTL in seconds; 0 = no cap */
};

/* Fills opts with memcached's defaults (-m 64, -n 48, -f 1.25, -I 1m). */
void
cache_options_default(struct cache_options *opts);

/* Sets the cache up; call once, after clock_setup(). Returns false and writes
 * a reason into err (size errlen) when opts are unusable. */
bool
cache_setup(const struct cache_options *opts, char *err, size_t errlen);

/* Stops the maintenance thread and frees everything. No thread may hold or
 * use an item reference any more. */
void
cache_teardown(void);

/* --- items ----------------------------------------------------------- */

struct item;

const char *
item_key(const struct item *it);
uint8_t
item_nkey(const struct item *it);
/* Value bytes followed by "\r\n": item_nbytes() counts both. */
char *
item_value(struct item *it);
const char *
item_value_const(const struct item *it);
uint32_t
item_nbytes(const struct item *it);
uint32_t
item_flags(const struct item *it);
/* 0 when the cache runs with use_cas off. CAS values are unique and
 * increasing, 56 bits wide (2^56 stores: centuries at ten million a second). */
uint64_t
item_cas(const struct item *it);
/* Expiry as the unix time it happens, 0 for never, -1 if already expired. */
int64_t
item_exptime_unix(const struct item *it);

/* --- operations ------------------------------------------------------ */

/* Looks key up. Returns a referenced live item, or NULL on a miss (absent,
 * expired or flushed). Release with cache_release(). */
struct item *
cache_get(const char *key, size_t nkey);

/* As cache_get, and on a hit also sets the item's expiry (gat/gats). */
struct item *
cache_get_touch(const char *key, size_t nkey, int64_t exptime);

/* Allocates an unlinked item for key with room for vlen value bytes plus the
 * "\r\n" terminator, which the caller writes (the value is read straight into
 * item_value()). On success *out holds one reference. Fails with
 * CACHE_TOO_LARGE (beyond item_max) or CACHE_NO_MEMORY. */
enum cache_result
cache_alloc(struct item **out, const char *key, size_t nkey, uint32_t flags,
            int64_t exptime, uint32_t vlen);

/* Stores an item from cache_alloc according to op. For CACHE_CAS, cas_in is
 * the client's unique. On CACHE_OK, *cas_out (if not NULL) receives the new
 * item's CAS. The caller keeps (and must still release) its reference to it. */
enum cache_result
cache_store(struct item *it, enum cache_store_op op, uint64_t cas_in, uint64_t *cas_out);

/* CACHE_OK if a live item was removed, CACHE_MISS otherwise. */
enum cache_result
cache_delete(const char *key, size_t nkey);

/* incr/decr by delta: incr wraps at 2^64, decr floors at 0. On CACHE_OK,
 * *result holds the new value. Fails with CACHE_MISS, CACHE_NOT_NUMBER (the
 * stored value is not a decimal uint64) or CACHE_NO_MEMORY. Like memcached, a
 * result shorter than the stored value may be written in place, space-padded. */
enum cache_result
cache_arith(const char *key, size_t nkey, bool incr, uint64_t delta, uint64_t *result);

/* Sets a new expiry: CACHE_OK, or CACHE_MISS. */
enum cache_result
cache_touch(const char *key, size_t nkey, int64_t exptime);

/* Invalidates every item now (delay 0) or at now + delay seconds (or at the
 * absolute unix time, as memcached reads large delays). Lazy: memory is
 * reclaimed by later allocation and the maintenance thread. */
void
cache_flush(int64_t delay);

/* --- for the invalidation bus -------------------------------------------- */

/* Hash identifying a value: XXH3-64 of the value bytes (without "\r\n")
 * seeded with the client flags. Equal hashes mean "same value". */
uint64_t
cache_value_hash(const char *value, size_t vlen, uint32_t flags);

/* The same hash for a stored item. */
uint64_t
item_value_hash(const struct item *it);

/* A peer changed key: drops the local copy unless its value hash equals
 * value_hash (pass has_hash false to drop unconditionally). Returns CACHE_OK
 * if a copy was dropped, CACHE_EXISTS if the same value was kept, CACHE_MISS
 * if there was no live copy. Not counted as a client delete. */
enum cache_result
cache_drop(const char *key, size_t nkey, bool has_hash, uint64_t value_hash);

/* Drops one reference and sets *it to NULL. NULL-safe. */
void
cache_release(struct item **it);

/* Runs a bounded amount of maintenance (hash expansion steps, reclaiming
 * expired items); the background thread calls this, tests call it directly.
 * Returns true if work remains. */
bool
cache_maintain(void);

/* --- statistics -------------------------------------------------------- */

/* Operation counters, memcached's names. Summed over threads on request. */
#define CACHE_OP_STATS(X)  \
    X(get_hits)            \
    X(get_misses)          \
    X(get_expired)         \
    X(get_flushed)         \
    X(cmd_set)             \
    X(delete_hits)         \
    X(delete_misses)       \
    X(incr_hits)           \
    X(incr_misses)         \
    X(decr_hits)           \
    X(decr_misses)         \
    X(cas_hits)            \
    X(cas_misses)          \
    X(cas_badval)          \
    X(touch_hits)          \
    X(touch_misses)        \
    X(evictions)           \
    X(evicted_unfetched)   \
    X(evicted_active)      \
    X(reclaimed)           \
    X(expired_unfetched)   \
    X(outofmemory)         \
    X(moves_to_cold)       \
    X(moves_to_warm)       \
    X(moves_within_lru)    \
    X(total_items)

struct cache_op_stats {
#define CACHE_STAT_FIELD(name) uint64_t name;
    CACHE_OP_STATS(CACHE_STAT_FIELD)
#undef CACHE_STAT_FIELD
};

struct cache_stats {
    struct cache_op_stats ops;
    uint64_t curr_items;
    uint64_t bytes;             /* sum of item sizes (header+key+value) */
    uint64_t limit_maxbytes;
    uint64_t total_malloced;    /* page bytes taken from the limit */
    uint64_t hash_bytes;
    unsigned hash_power_level;
    bool hash_is_expanding;
    uint64_t malloc_fails;
    uint64_t slab_global_page_pool; /* pages free under the limit */
    uint32_t total_classes;     /* active classes (with at least one page) */
};

void
cache_stats_get(struct cache_stats *out);

/* Per slab class figures for `stats slabs` / `stats items`. */
struct cache_class_stats {
    unsigned id;                /* memcached's class numbering, from 1 */
    uint32_t chunk_size;
    uint32_t chunks_per_page;
    uint64_t total_pages;
    uint64_t total_chunks;
    uint64_t used_chunks;
    uint64_t free_chunks;
    uint64_t free_chunks_end;   /* never handed out in the current page */
    uint64_t mem_requested;
    uint64_t number;            /* linked items */
    uint64_t number_hot, number_warm, number_cold;
    struct cache_op_stats ops;
};

/* Number of classes (including the large-item class, last). */
unsigned
cache_class_count(void);

/* Fills out for class index 0 .. cache_class_count()-1. */
void
cache_class_stats_get(unsigned index, struct cache_class_stats *out);

/* `stats sizes`: calls fn for each 32-byte size bucket holding items. */
typedef void (*cache_size_fn)(uint32_t size, uint64_t count, void *arg);
void
cache_sizes_foreach(cache_size_fn fn, void *arg);

/* Zeroes the operation counters (stats reset). */
void
cache_stats_reset(void);

/* Checks every list, count and reference against the items themselves;
 * every item must be unreferenced but for the table. For tests: it locks
 * class by class. False with a reason in err on the first inconsistency. */
bool
cache_verify(char *err, size_t errlen);

#endif
