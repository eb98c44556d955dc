/* cache: the local memcached-semantics store — slab allocator, items, hash
 * table, segmented LRU — and the only header of cache/ that other modules see.
 * Thread-safe: any number of threads call it at once; a lookup takes one
 * striped lock and no global one. Items are refcounted: every function that
 * returns a struct item * hands the caller one reference, which the caller
 * gives back exactly once with cache_release(). While referenced, an item's
 * memory (key and value bytes) stays valid and unchanged even if the key is
 * deleted, replaced or evicted meanwhile.
 *
 * Item memory (one slab chunk, or one large mapping above slab_chunk_max,
 * sized to the item rounded up to 4 KiB; see slab.c for why):
 *
 *   +-------------------------------+  struct item: 36 bytes
 *   | h_next | lru prev | lru next  |  32-bit refs, not pointers   (12)
 *   | exptime                       |  rel-time s, 0 = never        (4)
 *   | state bits:8 | cas:56         |  one atomic word              (8)
 *   | nbytes                        |  value bytes + 2              (4)
 *   | refcount:16 | nkey | class    |  class index:6 | has-flags    (4)
 *   | atime                         |  rel-time s of the last read  (4)
 *   +-------------------------------+
 *   | key (nkey bytes, no NUL)      |
 *   | upstream CAS (8, --l2 only)   |
 *   | value ... "\r\n"              |  written to a socket straight from here
 *   | client flags (4, only if != 0)|  as memcached, none when 0
 *   +-------------------------------+
 *
 * A ref is the chunk's offset in the slab arena in 8-byte units (a shift and
 * an add to follow), or a large item's slot; cache_internal.h has the rules.
 */
#ifndef FLEETCACHE_CACHE_H
#define FLEETCACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/option.h"

#define CACHE_KEY_MAX 250
/* Bytes of an item ahead of its key (the picture above). */
#define CACHE_ITEM_HEADER 36
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
                     * NOT_STORED if absent or the joined item can't be made;
                     * with a cas_in other than 0, EXISTS unless it matches */
    CACHE_PREPEND,
    CACHE_CAS,      /* only if the stored CAS matches: else EXISTS / MISS
                     * (always EXISTS with use_cas off, as memcached -C) */
    CACHE_CAS_STALE,/* as CACHE_CAS, but a cas_in older than the stored CAS
                     * stores the value marked stale, keeping the stored
                     * item's expiry and win (a late fill: meta ms C<cas> I) */
};

/* The cache's options: one row each (src/option.h), and the struct they
 * generate. cache_options_default() loads the rows' defaults. */
#define CACHE_OPTIONS(X, ALSO)                                                                        \
    X(uint64_t, mem_limit, .flag = 'm', .name = "memory-limit", .type = OPTION_INT,   \
      .arg = "<num>", .def = "64", .unit = 1 << 20, .help = "item memory in megabytes",        \
      .stat = "maxbytes")                                                                       \
    X(bool, evict, .flag = 'M', .name = "disable-evictions", .type = OPTION_CLEAR, .def = "yes", \
      .help = "return error on memory exhausted instead of evicting", .stat = "evictions",     \
      .show = OPTION_SHOW_ONOFF)                                                                \
    X(bool, use_cas, .flag = 'C', .name = "disable-cas", .type = OPTION_CLEAR, .def = "yes",    \
      .help = "disable use of CAS", .stat = "cas_enabled")                                     \
    X(uint32_t, item_max, .flag = 'I', .name = "max-item-size", .type = OPTION_SIZE,            \
      .arg = "<num>", .def = "1m", .min = 1024, .max = 1 << 30,                                 \
      .help = "adjusts max item size (min: 1k, max: 1024m)", .stat = "item_size_max",          \
      .bad = "Item max size cannot be less than 1024 bytes.",                                   \
      .bad_high = "Cannot set item size limit higher than a gigabyte.")                        \
    X(double, factor, .flag = 'f', .name = "slab-growth-factor", .type = OPTION_FLOAT,          \
      .arg = "<num>", .def = "1.25", .min = 1, .min_open = true,                                \
      .help = "chunk size growth factor", .stat = "growth_factor",                              \
      .bad = "Factor must be greater than 1", .exit = 1)                                        \
    X(uint32_t, chunk_min, .flag = 'n', .name = "slab-min-size", .type = OPTION_INT,            \
      .arg = "<bytes>", .def = "48", .min = 1, .max = INT32_MAX,                                \
      .help = "min space used for key+value+flags", .stat = "chunk_size",                      \
      .bad = "Chunk size must be greater than 0", .exit = 1)                                    \
    X(uint32_t, slab_chunk_max, .name = "slab_chunk_max", .sub = true, .type = OPTION_INT,      \
      .arg = "<bytes>", .def = "524288", .min = 1, .max = 1 << 30,                              \
      .help = "largest slab chunk in bytes; bigger items are stored whole",                    \
      .stat = "slab_chunk_max", .bad = "could not parse argument to slab_chunk_max", .exit = 1) \
    ALSO(uint32_t, slab_chunk_max, .name = "no_chunked_items", .sub = true, .type = OPTION_INT,    \
      .implied = "1048576", .help = "slab_chunk_max becomes the page size (1 MiB)")           \
    X(unsigned, hashpower, .name = "hashpower", .sub = true, .type = OPTION_INT,                \
      .arg = "<num>", .min = 12, .max = 32,                                                     \
      .help = "initial hash table size as a power of two (default: 0, grows at run time)",     \
      .stat = "hashpower_init", .bad = "Initial hashtable multiplier of %s is too low",         \
      .bad_high = "Initial hashtable multiplier of %s is too high\n"                            \
                  "Choose a value based on \"STAT hash_power_level\" from a running instance",  \
      .missing = "Missing numeric argument for %s", .exit = 1)                                  \
    X(bool, lru_crawler, .name = "lru_crawler", .sub = true, .type = OPTION_SWITCH,             \
      .def = "yes", .help = "background reclaim of expired items (default: on)",               \
      .stat = "lru_crawler")                                                                    \
    ALSO(bool, lru_crawler, .name = "no_lru_crawler", .sub = true, .type = OPTION_CLEAR,           \
      .help = "disable the background reclaim of expired items")                               \
    X(bool, lru_maintainer, .name = "lru_maintainer", .sub = true, .type = OPTION_SWITCH,       \
      .def = "yes", .help = "background maintenance thread (default: on)",                     \
      .stat = "lru_maintainer_thread")                                                          \
    ALSO(bool, lru_maintainer, .name = "no_lru_maintainer", .sub = true, .type = OPTION_CLEAR,     \
      .help = "disable the background maintenance thread")                                     \
    X(uint32_t, max_ttl, .name = "max-ttl", .type = OPTION_INT, .arg = "<secs>", .def = "0",    \
      .min = 0, .max = UINT32_MAX, .help = "cap every item's TTL at <secs> seconds (0: no cap)", \
      .stat = "max_ttl")                                                                        \
    X(bool, slab_reassign, .name = "slab_reassign", .sub = true, .type = OPTION_SWITCH,         \
      .def = "yes", .help = "allow 'slabs reassign' and automove to move pages (default: on)", \
      .stat = "slab_reassign")                                                                  \
    ALSO(bool, slab_reassign, .name = "no_slab_reassign", .sub = true, .type = OPTION_CLEAR,       \
      .help = "refuse 'slabs reassign', no automove (a store with no room still takes a page)") \
    X(int, slab_automove, .name = "slab_automove", .sub = true, .type = OPTION_INT,             \
      .arg = "<0-2>", .def = "1", .implied = "1", .min = 0, .max = 2,                           \
      .help = "how pages move in the background: 0 never, 1 slowly, 2 eagerly",               \
      .stat = "slab_automove", .bad = "slab_automove must be between 0 and 2", .exit = 1)       \
    ALSO(int, slab_automove, .name = "no_slab_automove", .sub = true, .type = OPTION_INT,          \
      .implied = "0", .help = "slab_automove=0")                                                \
    X(double, slab_automove_ratio, .name = "slab_automove_ratio", .sub = true,                  \
      .type = OPTION_FLOAT, .arg = "<ratio>", .def = "0.8", .min = 0, .min_open = true,         \
      .max = 1, .help = "a class younger than this times the oldest's age takes its page",     \
      .stat = "slab_automove_ratio", .bad = "slab_automove_ratio must be > 0 and < 1",          \
      .exit = 1)                                                                                \
    X(int, slab_automove_window, .name = "slab_automove_window", .sub = true,                   \
      .type = OPTION_INT, .arg = "<secs>", .def = "30", .min = 3, .max = INT32_MAX,            \
      .help = "seconds of history the automove decision weighs", .stat = "slab_automove_window", \
      .bad = "slab_automove_window must be > 2", .exit = 1)                                                                        \
    X(int, lru_crawler_sleep, .name = "lru_crawler_sleep", .sub = true, .type = OPTION_INT,     \
      .arg = "<us>", .def = "100", .min = 0, .max = 1000000,                                    \
      .help = "microseconds the crawler sleeps per thousand items", .stat = "lru_crawler_sleep", \
      .bad = "LRU crawler sleep must be between 0 and 1 second",                                \
      .missing = "Missing lru_crawler_sleep value", .exit = 1)                                  \
    X(uint32_t, lru_crawler_tocrawl, .name = "lru_crawler_tocrawl", .sub = true,                \
      .type = OPTION_INT, .arg = "<num>", .def = "0", .min = 0, .max = UINT32_MAX,             \
      .help = "max items to crawl per class per run (0: all)", .stat = "lru_crawler_tocrawl",  \
      .bad = "lru_crawler_tocrawl takes a numeric 32bit value",                                 \
      .missing = "Missing lru_crawler_tocrawl value", .exit = 1)                                \
    X(int, hot_lru_pct, .name = "hot_lru_pct", .sub = true, .type = OPTION_INT, .arg = "<pct>", \
      .def = "20", .min = 1, .max = 79, .help = "pct of a class's items the hot LRU holds",     \
      .stat = "hot_lru_pct", .bad = "hot_lru_pct must be > 1 and < 80", .exit = 1)              \
    X(int, warm_lru_pct, .name = "warm_lru_pct", .sub = true, .type = OPTION_INT,               \
      .arg = "<pct>", .def = "40", .min = 1, .max = 79,                                         \
      .help = "pct of a class's items the warm LRU holds", .stat = "warm_lru_pct",             \
      .bad = "warm_lru_pct must be > 1 and < 80", .exit = 1)                                    \
    X(double, hot_max_factor, .name = "hot_max_factor", .sub = true, .type = OPTION_FLOAT,      \
      .arg = "<num>", .def = "0.2", .min = 0, .min_open = true,                                 \
      .help = "memcached's hot age limit (accepted and reported; shares bound the hot LRU)",   \
      .stat = "hot_max_factor", .bad = "hot_max_factor must be > 0", .exit = 1)                 \
    X(double, warm_max_factor, .name = "warm_max_factor", .sub = true, .type = OPTION_FLOAT,    \
      .arg = "<num>", .def = "2.0", .min = 0, .min_open = true,                                 \
      .help = "memcached's warm age limit (accepted and reported; shares bound the warm LRU)", \
      .stat = "warm_max_factor", .bad = "warm_max_factor must be > 0", .exit = 1)               \
    X(int, temporary_ttl, .name = "temporary_ttl", .sub = true, .type = OPTION_INT,             \
      .arg = "<secs>", .def = "61", .help = "items with a TTL up to this go to a temporary LRU", \
      .stat = "temporary_ttl", .exit = 1)

struct cache_options {
    CACHE_OPTIONS(OPTION_FIELD, OPTION_SKIP)
    uint32_t page_size;        /* slab page, 1 MiB */
    bool temp_lru;             /* -o temporary_ttl given: short TTLs get their own LRU */
    bool manual;               /* tests: no maintenance thread; they call cache_maintain */
    bool upstream_cas;         /* items are copies of a shared store's (two-level
                                * mode): each carries that store's CAS, 8 bytes
                                * more per item (see "near copies" below) */
};

/* The rows of CACHE_OPTIONS, for the option parser (src/option.h). */
extern const struct option_row cache_option_rows[];
extern const size_t cache_option_nrows;

/* Fills opts with the rows' defaults (memcached's: -m 64, -n 48, -f 1.25,
 * -I 1m), the background threads on. */
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

/* Lookahead for a batch of lookups (pipelined or multi-key gets), which
 * would otherwise wait on one cache miss after another: step 0 of every key
 * of the batch starts loading its bucket, then step 1 of every key the
 * first item of the bucket's chain, then the lookups find them in cache.
 * Hints only: no lock, no change, nothing that can fault. */
uint64_t
cache_key_hash(const char *key, size_t nkey);
void
cache_prefetch(uint64_t hv, unsigned step);

/* Allocates an unlinked item for key with room for vlen value bytes plus the
 * "\r\n" terminator, which the caller writes (the value is read straight into
 * item_value()), and nothing past them: the client flags may follow. On
 * success *out holds one reference. Fails with CACHE_TOO_LARGE (beyond
 * item_max) or CACHE_NO_MEMORY. */
enum cache_result
cache_alloc(struct item **out, const char *key, size_t nkey, uint32_t flags,
            int64_t exptime, uint32_t vlen);

/* Stores an item from cache_alloc according to op. For CACHE_CAS, cas_in is
 * the client's unique. On CACHE_OK, *cas_out (if not NULL) receives the new
 * item's CAS. The caller keeps (and must still release) its reference to it. */
enum cache_result
cache_store(struct item *it, enum cache_store_op op, uint64_t cas_in, uint64_t *cas_out);

/* Counts a store that never reached cache_store because its data block was
 * malformed, as memcached counts it (cmd_set). */
void
cache_count_set(const struct item *it);

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
 * reclaimed by later allocation and the maintenance thread. An absolute
 * time before start-up flushes nothing and cancels a pending delayed flush,
 * as in memcached. */
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
 * if there was no live copy. Not counted as a client delete.
 * A copy with a lease out (a win was handed out, see cache_meta_get) is
 * neither kept for an equal hash nor simply dropped: an empty stale
 * placeholder with a fresh CAS takes its place, keeping its expiry, so the
 * lease holder's late fill (a store gated on the CAS it was given) is
 * refused as EXISTS and can never land after the peer's write, and the next
 * reader wins a new lease. */
enum cache_result
cache_drop(const char *key, size_t nkey, bool has_hash, uint64_t value_hash);

/* --- leases and stale items ----------------------------------------------
 * Besides its value an item carries two marks: a win was handed out (one
 * client was told to recache the key: the lease; the others are told someone
 * else does), and stale (the value is known to be outdated, served while the
 * winner recaches). These functions are the cache's side of memcached's meta
 * commands; they know nothing of the protocol's syntax. Expiry arguments are
 * as clients send them (cache_alloc's rules). */

bool
item_win_sent(const struct item *it);
bool
item_stale(const struct item *it);
/* The key came base64-encoded from a client (it is binary). */
bool
item_key_binary(const struct item *it);
/* Marks an unlinked item from cache_alloc, before cache_store. */
void
item_set_key_binary(struct item *it);
/* Whether it was read since it was stored, seconds since it was last read
 * (or stored), seconds left to live (-1: never). They read without the
 * item's lock, so a concurrent read or touch of it may or may not show; see
 * cache_peek's info for a consistent reading. */
bool
item_fetched(const struct item *it);
uint32_t
item_idle(const struct item *it);
int64_t
item_ttl(const struct item *it);
/* Its slab class (memcached's numbering, from 1) and its size in memory. */
unsigned
item_class_id(const struct item *it);
size_t
item_total_size(const struct item *it);

/* What can change under a reference, read under the item's lock. */
struct cache_item_info {
    int64_t ttl;            /* item_ttl */
    uint32_t idle;          /* item_idle */
    bool fetched;           /* item_fetched */
};

/* Looks key up without counting a read (no LRU bump, no statistics); fills
 * info (if not NULL) under the item's lock. */
struct item *
cache_peek(const char *key, size_t nkey, struct cache_item_info *info);

/* Steps run in order on the item, under its lock, so that a TTL read before
 * a TTL change sees the old one (the meta protocol's flags act in order). */
enum cache_mstep_op {
    CACHE_MSTEP_TTL,        /* set the expiry to arg */
    CACHE_MSTEP_TTL_IF_NEW, /* the same, only on an item this call created;
                             * in cache_meta_get it also wins */
    CACHE_MSTEP_RECACHE,    /* win if less than arg seconds are left (an
                             * expiring item) and no win was handed out */
    CACHE_MSTEP_READ_TTL,   /* out = seconds left at this point, -1: never */
};

struct cache_mstep {
    enum cache_mstep_op op;
    int64_t arg;
    int64_t out;
};

#define CACHE_MSTEPS_MAX 24

struct cache_mget {
    /* in */
    bool vivify;            /* on a miss, create an empty item (expiry 0 until
                             * a step sets it) */
    bool no_bump;           /* not a read: no LRU bump, fetched, last access */
    bool discard;           /* the caller will answer an error: run the steps,
                             * hand out no win, count no hit (a miss counts) */
    unsigned nsteps;
    struct cache_mstep steps[CACHE_MSTEPS_MAX];
    /* out */
    bool created;           /* vivified by this call */
    bool won;               /* this caller is to recache the key (a lease) */
    bool win_was_sent;      /* someone else was told so before */
    bool stale;
    bool fetched;           /* read before this call */
    uint32_t idle;          /* seconds since the last read before this call */
    bool touched;           /* a CACHE_MSTEP_TTL ran (counted as a touch) */
    bool overflow;          /* too many references: refused, not a miss */
    uint64_t cas;           /* the item's CAS as this call left it (a stale
                             * mark may change it right after) */
};

/* The meta get: looks key up (creating an empty item on a miss when
 * g->vivify), runs g->steps, then hands out a win when a step won or the
 * item is stale and no win was handed out before. Returns a referenced item
 * or NULL on a miss; counts a hit, miss or touch. */
struct item *
cache_meta_get(const char *key, size_t nkey, struct cache_mget *g);

struct cache_marith {
    /* in */
    bool incr;              /* else decrement, flooring at 0 */
    uint64_t delta;
    uint64_t cas;           /* 0: no check; else EXISTS unless it matches */
    bool vivify;            /* on a miss, create the item holding initial */
    uint64_t initial;
    unsigned nsteps;        /* run on the resulting item (TTL, TTL_IF_NEW, READ_TTL) */
    struct cache_mstep steps[CACHE_MSTEPS_MAX];
    /* out */
    uint64_t value;
    uint64_t cas_out;
    bool created;
};

/* incr/decr with a CAS check and create-on-miss. CACHE_OK (changed or
 * created), CACHE_MISS, CACHE_EXISTS (CAS mismatch), CACHE_NOT_NUMBER,
 * CACHE_NO_MEMORY (the new value's item: see created) or CACHE_NOT_STORED
 * (vivify could not allocate). */
enum cache_result
cache_meta_arith(const char *key, size_t nkey, struct cache_marith *a);

struct cache_mdelete {
    bool has_cas;           /* only if the item's CAS equals cas */
    uint64_t cas;
    bool stale;             /* mark stale instead of removing: new CAS, win
                             * cleared so the next reader wins */
    bool has_exptime;       /* with stale: also set the expiry */
    int64_t exptime;
};

/* The meta delete. CACHE_OK (removed or marked), CACHE_MISS, or
 * CACHE_EXISTS (CAS mismatch). Counts delete hits and misses as memcached
 * (a CAS mismatch is a miss, a stale mark neither). */
enum cache_result
cache_meta_delete(const char *key, size_t nkey, const struct cache_mdelete *d);

/* A peer marked key stale (its client's md I): marks the local copy stale
 * as cache_meta_delete does (new CAS, win cleared, the expiry set when
 * has_exptime). CACHE_OK, or CACHE_MISS with no live copy. Not counted. */
enum cache_result
cache_mark_stale(const char *key, size_t nkey, bool has_exptime, int64_t exptime);

/* --- near copies of a shared store (two-level mode) ----------------------
 * With opts.upstream_cas the cache holds copies of values a shared store
 * (L2) owns. item_cas() then reports the CAS the store gave each value
 * (set with item_set_upstream_cas before storing), so a client's `cas` can
 * be checked by the store; the cache's own CAS checks (CACHE_CAS) are not
 * used in this mode. A copy fetched from the store must not land after a
 * change of its key this node has already seen, hence tickets: take one
 * before sending the fetch (or the write), store the copy with it. Every
 * store, delete, touch, incr/decr and cache_drop of a key (present or not)
 * and every flush voids the tickets taken before it. */

/* The key's ticket now. Cheap: two atomic loads. */
uint64_t
cache_ticket(const char *key, size_t nkey);

/* Records the store's CAS in an unlinked item from cache_alloc. */
void
item_set_upstream_cas(struct item *it, uint64_t cas);

/* Links it (replacing any copy) if ticket still holds: CACHE_OK. Else
 * CACHE_EXISTS and nothing is stored; for a write (is_write) the copy that
 * is there is dropped too, since which of the two changes is newer cannot
 * be known here. A write voids other tickets of the key; a fill does not.
 * The caller keeps (and must release) its reference to it. */
enum cache_result
cache_store_upstream(struct item *it, uint64_t ticket, bool is_write);

/* Adds a reference to an item the caller holds (one fetched value goes to
 * several waiting clients). False when the count is at its ceiling. */
bool
item_hold(struct item *it);

/* Drops one reference and sets *it to NULL. NULL-safe. */
void
cache_release(struct item **it);

/* Runs a bounded amount of maintenance (hash expansion steps, reclaiming
 * expired items); the background thread calls this, tests call it directly.
 * Returns true if work remains. */
bool
cache_maintain(void);

/* --- slab page moves ------------------------------------------------------ */

/* memcached's `slabs reassign` outcomes, in its order. */
#define CACHE_REASSIGN_RESULTS(X) \
    X(CACHE_REASSIGN_OK)          \
    X(CACHE_REASSIGN_RUNNING)     \
    X(CACHE_REASSIGN_BADCLASS)    \
    X(CACHE_REASSIGN_NOSPARE)     \
    X(CACHE_REASSIGN_SAME)        \
    X(CACHE_REASSIGN_DISABLED)

enum cache_reassign {
#define CACHE_REASSIGN_ENUM(name) name,
    CACHE_REASSIGN_RESULTS(CACHE_REASSIGN_ENUM)
#undef CACHE_REASSIGN_ENUM
    CACHE_REASSIGN_COUNT
};

/* Starts moving one page from slab class src to dst (memcached's ids: 1 is
 * the smallest class; 0 is the global page pool, whose pages give their
 * memory back; src -1 picks any class with a spare page). The move runs in
 * the background (at once when no maintenance thread runs). Fails with
 * RUNNING while another requested move is in progress, BADCLASS, NOSPARE
 * (src has fewer than two pages), SAME, or DISABLED (slab_reassign off). */
enum cache_reassign
cache_slabs_reassign(int src, int dst);

/* Whether `slabs reassign` may run (-o no_slab_reassign turns it off). */
bool
cache_slab_reassign_enabled(void);

/* `slabs automove <0|1|2>` and `slabs automove ratio <r>`: live changes,
 * and the live values (0 before cache_setup). */
void
cache_slab_automove_set(unsigned level);
unsigned
cache_slab_automove(void);
void
cache_slab_automove_ratio_set(double ratio);
double
cache_slab_automove_ratio(void);

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
    X(total_items)         \
    X(crawler_reclaimed)   \
    X(crawler_items_checked) \
    X(lrutail_reflocked)   \
    X(direct_reclaims)     \
    X(evicted_nonzero)     \
    X(hits_to_hot)         \
    X(hits_to_warm)        \
    X(hits_to_cold)        \
    X(hits_to_temp)

struct cache_op_stats {
#define CACHE_STAT_FIELD(name) uint64_t name;
    CACHE_OP_STATS(CACHE_STAT_FIELD)
#undef CACHE_STAT_FIELD
};

/* Page mover counters, memcached's names (`stats`). */
#define CACHE_MOVER_STATS(X)            \
    X(slabs_moved)                      \
    X(slab_reassign_rescues)            \
    X(slab_reassign_chunk_rescues)      \
    X(slab_reassign_evictions_nomem)    \
    X(slab_reassign_inline_reclaim)     \
    X(slab_reassign_busy_items)         \
    X(slab_reassign_busy_deletes)       \
    X(slabs_moved_at_once) /* ours: pages a store took without waiting */

struct cache_mover_stats {
#define CACHE_MOVER_FIELD(name) uint64_t name;
    CACHE_MOVER_STATS(CACHE_MOVER_FIELD)
#undef CACHE_MOVER_FIELD
};

struct cache_stats {
    struct cache_op_stats ops;
    struct cache_mover_stats mover;
    bool slab_reassign;         /* the mover's rows appear in `stats` */
    bool slab_reassign_running; /* a requested or automatic move is under way */
    uint64_t curr_items;
    uint64_t bytes;             /* sum of item sizes (header+key+value) */
    uint64_t limit_maxbytes;
    uint64_t total_malloced;    /* bytes charged to the limit: slab pages and large items */
    uint64_t hash_bytes;
    unsigned hash_power_level;
    bool hash_is_expanding;
    uint64_t malloc_fails;
    uint64_t slab_global_page_pool; /* pages moved out of classes, free to take */
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
    uint64_t number_hot, number_warm, number_cold, number_temp;
    /* Seconds since the last access of the item at each segment's tail
     * (memcached's age_hot, age_warm and age, COLD's), and that of the last
     * item evicted from the class. */
    uint32_t age_hot, age_warm, age;
    uint32_t evicted_time;
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

/* --- inspection and live tuning (cache/dump.c, cache/crawl.c) ------------ */

/* The LRU's run-time tunables (`lru mode|temp_ttl|tune`), set up from the
 * options (segmented with the maintainer, as memcached). */
struct cache_lru_tuning {
    bool segmented;        /* hot/warm/cold; false: one cold list (lru mode flat) */
    bool temp_lru;         /* items with a TTL up to temp_ttl go to TEMP */
    uint32_t temp_ttl;     /* seconds */
    unsigned hot_pct;      /* share of a class's items HOT may hold */
    unsigned warm_pct;
    double hot_max_factor; /* accepted and reported (memcached's age limits) */
    double warm_max_factor;
};

/* An item as a dump sees it. key points into the item and is valid only
 * during the callback that receives the view. */
struct cache_item_view {
    const char *key;
    uint8_t nkey;
    uint32_t vlen;              /* value bytes, without "\r\n" */
    uint32_t flags;
    int64_t exptime;            /* unix time it expires at; 0: never */
    uint64_t cas;
    bool fetched;               /* read since it was stored */
    uint32_t idle;              /* seconds since its last access */
    int64_t atime;              /* unix time of its last access */
    bool dead;                  /* expired or flushed, not yet reclaimed */
    unsigned class_id;          /* memcached's numbering, from 1 */
    uint32_t size;              /* memcached's size for it, see cache_item_size */
};

/* Return false to stop the walk. Runs under a class lock: copy, never block. */
typedef bool (*cache_view_fn)(const struct cache_item_view *v, void *arg);

/* The size memcached 1.6.18 gives an item of nkey key and nbytes value
 * bytes ("\r\n" included): its 48-byte header, 8 for the CAS when CAS is
 * on, the key and its NUL, 4 for client flags other than 0, the value.
 * `stats sizes` buckets and metadump's size= use it, so both read as
 * memcached's whatever our header is. */
uint32_t
cache_item_size(size_t nkey, uint32_t flags, size_t nbytes);

/* `stats cachedump`: the items of class class_id (memcached's numbering),
 * newest first within each segment (HOT, WARM, COLD, TEMP), dead ones
 * included as memcached lists them, until fn returns false or limit (0: no
 * limit) were shown. One hold of the class lock. Returns how many were
 * shown. */
unsigned
cache_class_dump(unsigned class_id, unsigned limit, cache_view_fn fn, void *arg);

/* A resumable walk over the live items of some classes, for key dumps that
 * must not stall a worker: each step visits a bounded number of slots with
 * the class lock held for that step only. Items stored or removed while the
 * walk runs may or may not be seen; an item present throughout is seen
 * exactly once. */
struct cache_walk {
    uint64_t classes;           /* bit n: class id n + 1 */
    unsigned cls;               /* current class index */
    uint64_t chunk;             /* next chunk within it */
    bool done;
};

void
cache_walk_begin(struct cache_walk *w, uint64_t classes);

/* Visits up to budget slots, calling fn for each live item (fn's return is
 * ignored: bound the work with budget). Returns true while more remains. */
bool
cache_walk_step(struct cache_walk *w, unsigned budget, cache_view_fn fn, void *arg);

/* How many class ids there are to name (memcached's 1 .. 63). */
#define CACHE_CLASS_ID_MAX 63

/* The LRU crawler: a background pass over the classes asked for that frees
 * expired and flushed items, counted as crawler_reclaimed and
 * crawler_items_checked. Runs on the maintenance thread (cache_maintain). */
enum cache_crawl_result {
    CACHE_CRAWL_OK,
    CACHE_CRAWL_RUNNING,        /* a crawl is still going */
    CACHE_CRAWL_DISABLED,       /* lru_crawler disable, or -o no_lru_crawler */
    CACHE_CRAWL_NONE,           /* no class asked for */
};

enum cache_crawl_result
cache_crawl(uint64_t classes);

/* lru_crawler enable/disable: false when enabling an enabled crawler
 * (memcached fails to start a second crawler thread). */
bool
cache_crawler_set(bool enabled);

/* lru_crawler sleep (microseconds per thousand items) and tocrawl (items per
 * class per crawl, 0: all). */
void
cache_crawler_tune(uint32_t sleep_us, uint32_t tocrawl);

struct cache_crawler_status {
    bool enabled, running;
    uint64_t starts;
    uint32_t sleep_us, tocrawl;
};

void
cache_crawler_status(struct cache_crawler_status *out);

/* The LRU's run-time tunables (lru mode, lru temp_ttl, lru tune). */
void
cache_lru_get(struct cache_lru_tuning *out);
void
cache_lru_set(const struct cache_lru_tuning *in);

/* Whether the maintainer runs (memcached's lru_maintainer_thread). */
bool
cache_maintainer(void);

/* cache_memlimit: a new -m in bytes. Raising lets classes take more pages;
 * lowering stops them from taking pages past the new budget, and eviction
 * and page moves bring the cache under it. False when bytes is below one
 * page. */
bool
cache_set_mem_limit(uint64_t bytes);

/* Called for every eviction (not for reclaims of dead items), with the
 * class and key locks held: it must copy what it needs and return. NULL
 * turns it off. */
typedef void (*cache_evict_fn)(const struct cache_item_view *v);
void
cache_set_evict_hook(cache_evict_fn fn);

/* Checks every list, count and reference against the items themselves;
 * every item must be unreferenced but for the table. For tests: it locks
 * class by class. False with a reason in err on the first inconsistency. */
bool
cache_verify(char *err, size_t errlen);

#endif
