/* cache_internal: what the files of cache/ share and nobody else sees — the
 * item header, slab classes, the hash table's striped locks, per-thread stats.
 *
 * Locks, always taken in this order (never the reverse):
 *   stripe lock (hash.c, one per 1/ HT_STRIPES of the key space)
 *     -> mover lock (mover.c: one page move at a time)
 *       -> class lock (one per slab class: its free list, pages, LRU lists)
 *         -> spare lock (slab.c: arena pages whose memory went back)
 * Code that holds a class lock and needs a stripe lock (eviction, the
 * reclaimer, the mover) only ever *tries* it. No code holds two class locks
 * but cache_verify, which takes them all in index order. ITEM_LINKED changes
 * only with both locks held, so either one is enough to read it.
 *
 * References: the hash table holds one; every lookup adds one under the
 * stripe lock. An item whose count reaches zero goes back to its class.
 */
#ifndef FLEETCACHE_CACHE_INTERNAL_H
#define FLEETCACHE_CACHE_INTERNAL_H

#include "cache/cache.h"
#include "src/check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define CLASS_MAX 64            /* slab classes including the large class */
#define HT_STRIPES 1024         /* stripe locks; initial table has >= this many buckets */
#define HT_POWER_MIN 10
#define HT_POWER_MAX 32
/* Chunks are multiples of this (memcached's CHUNK_ALIGN_BYTES), the unit of
 * refs; a -m too large for 32-bit refs in it takes a larger one (see refs). */
#define CACHE_ALIGN_SHIFT 3
/* memcached's sizeof(item) without its CAS: slab classes grow from this plus
 * -n, so they are memcached's own sizes (96 120 152 ...) whatever ours is. */
#define SLAB_GEOMETRY_HEADER 48

/* The top byte of item.meta holds state bits; the low 56 bits hold the CAS.
 * Readers set FETCHED/ACTIVE while LRU moves clear them under another lock,
 * so the word is only ever changed with atomic read-modify-write operations. */
#define META_CAS_MASK ((UINT64_C(1) << 56) - 1)
#define META_BIT(n) (UINT64_C(1) << (56 + (n)))
#define ITEM_LINKED META_BIT(0)   /* in the hash table and an LRU list */
#define ITEM_FETCHED META_BIT(1)  /* read at least once since stored */
#define ITEM_ACTIVE META_BIT(2)   /* read again: promoted when it reaches a tail */
#define ITEM_SEG_SHIFT 59         /* two bits: enum lru_seg */
#define ITEM_SEG_MASK (UINT64_C(3) << ITEM_SEG_SHIFT)
/* Leases (lease.c), changed under the stripe lock only: */
#define ITEM_WIN_SENT META_BIT(5)   /* a client was told to recache it (W) */
#define ITEM_STALE META_BIT(6)      /* its value is known to be outdated (X) */
#define ITEM_KEY_BINARY META_BIT(7) /* the key came base64-encoded (meta b) */

/* item.cls: the slab class index in the low bits, and a mark of what the
 * item holds. Set when the chunk is taken (class lock), then by the thread
 * that fills the item before linking it, so it never changes while anyone
 * else can see the item. */
#define ITEM_CLS_MASK 0x3f        /* class index; CLASS_MAX fits */
#define ITEM_CLS_FLAGS 0x40       /* 4 bytes of client flags follow the value */
_Static_assert(CLASS_MAX <= ITEM_CLS_MASK + 1, "class index must fit item.cls");

enum lru_seg { LRU_HOT = 0, LRU_WARM = 1, LRU_COLD = 2, LRU_TEMP = 3, LRU_SEGS = 4 };

/* A slab chunk that holds no item says why in nbytes (an item's is >= 2):
 *   CHUNK_FREE     on its class's free list, or never carved;
 *   CHUNK_CLAIMED  held by a page move: its page is leaving the class.
 * Both have refcount 0 and no state bits. A chunk with refcount >= 1 holds
 * an item (linked, or being filled, or unlinked but still referenced); one
 * with refcount 0 and nbytes >= 2 is on its way back to the free list. */
#define CHUNK_FREE 0
#define CHUNK_CLAIMED 1

/* Large items are charged to the limit in these steps (not whole pages). */
#define LARGE_ALIGN 4096

/* Pages being emptied per class: one for the background mover, one for a
 * store that takes a page at once. */
enum { MOVE_SLOT_BG = 0, MOVE_SLOT_NOW = 1, MOVE_SLOTS = 2 };

/* Item refs: the hash chains, LRU lists and free lists link items by 32-bit
 * refs, not pointers. A ref below REF_LARGE_BASE is a slab chunk: its offset
 * in the arena (one reservation, see slab.c) in units of 1 << ref_shift
 * bytes, plus one so that 0 means none; decoding it is a shift and an add.
 * Refs from REF_LARGE_BASE up name large items (separate mappings) by their
 * slot in a table (slab.c): 2^28 of them. With 8-byte units the arena can be
 * 30 GiB; a larger -m takes a larger unit (chunks then align to it). */
#define REF_LARGE_BASE UINT32_C(0xF0000000)
#define REF_LARGE_SLOTS (UINT32_MAX - REF_LARGE_BASE + 1)

struct item {
    uint32_t h_next;            /* hash chain (a ref); free-list next when free */
    uint32_t prev;              /* LRU links (class lock); free-list prev when free */
    uint32_t next;
    uint32_t exptime;           /* rel time, 0 = never (stripe lock) */
    _Atomic uint64_t meta;      /* state bits | CAS */
    uint32_t nbytes;            /* value bytes + 2 for "\r\n" */
    _Atomic uint16_t refcount;
    uint8_t nkey;
    uint8_t cls;                /* class index | ITEM_CLS_FLAGS; fixed while linked */
    uint32_t atime;             /* rel time of the last read or store (stripe lock) */
    char data[];                /* key, [upstream CAS], value "\r\n", client flags if not 0 */
};

/* 36 bytes, data right after atime (the struct's own size rounds up to 40,
 * which nothing uses). See cache.h for the picture and docs/memory.md for
 * why each field stays. */
#define ITEM_HEADER offsetof(struct item, data)
_Static_assert(offsetof(struct item, data) == CACHE_ITEM_HEADER, "item header is CACHE_ITEM_HEADER bytes");
_Static_assert(offsetof(struct item, meta) % 8 == 0, "meta must be 8-byte aligned in an aligned chunk");

struct lru_list {
    struct item *head;          /* most recently inserted */
    struct item *tail;
    uint64_t count;
};

struct slab_class {
    pthread_mutex_t lock;
    uint32_t size;              /* chunk size; 0 for the large class */
    uint32_t perslab;           /* chunks per page */
    bool large;                 /* items here are separate mappings */
    struct item *free_list;     /* doubly linked, so a page move cuts any chunk out */
    uint64_t free_count;
    char **pages;               /* every page this class owns; the last is being carved */
    uint64_t npages;
    uint64_t pages_cap;
    uint32_t cur_carved;        /* chunks handed out of the last page */
    char *vacating[MOVE_SLOTS]; /* pages being emptied: chunks freed there are claimed */
    uint64_t claimed;           /* chunks in state CHUNK_CLAIMED */
    uint64_t victim_cursor;     /* where the next page move looks first */
    struct lru_list lru[LRU_SEGS];
    uint64_t linked;            /* items linked */
    uint64_t bytes;             /* sum of linked item sizes */
    uint64_t large_bytes;       /* large class: bytes charged to the limit */
    uint32_t evicted_time;      /* idle seconds of the last item evicted (stats items) */
};

struct cache {
    struct cache_options opts;
    struct slab_class classes[CLASS_MAX];
    unsigned nclasses;          /* slab classes, then one large class */
    unsigned large_id;
    /* The -m budget in bytes: slab pages held by classes plus large items
     * (rounded to LARGE_ALIGN). Never above mem_max, unless cache_memlimit
     * lowered mem_max under it (mem_lowered): then page moves bring it down. */
    _Atomic uint64_t mem_used;
    _Atomic uint64_t mem_max;   /* whole pages; cache_memlimit moves it */
    _Atomic bool mem_lowered;   /* cache_memlimit lowered it below what was in use */
    /* Slab pages are carved from one reservation (see slab.c): as much as
     * refs address, so a raised cache_memlimit still finds pages in it, or
     * just the budget when the system will not reserve that much. */
    char *arena;
    uint64_t arena_pages;       /* pages the reservation holds */
    uint64_t arena_open;        /* pages of it made usable so far (spare lock) */
    void *arena_map;            /* what to munmap: arena before alignment */
    size_t arena_map_len;
    uint64_t arena_next;        /* pages handed out of the arena (spare lock) */
    /* Refs (see struct item): chunk = ref_base + (ref << ref_shift), with
     * ref_base one unit below the arena so that ref 0 is none. */
    uintptr_t ref_base;
    unsigned ref_shift;
    uint64_t ref_span;          /* bytes from ref_base that slab refs cover */
    uint32_t chunk_align;       /* 1 << ref_shift: chunk sizes are multiples */
    pthread_mutex_t spare_lock;
    char **spare;               /* arena pages given back (memory returned), arena_pages slots */
    uint8_t *spare_bits;        /* by arena page index: 1 if spare */
    uint64_t nspare;
    _Atomic unsigned automove;  /* live copies of the options `slabs automove` changes */
    _Atomic uint64_t automove_ratio_bits;
    _Atomic uint64_t next_cas;
    /* Items with a CAS below oldest_cas are flushed. A delayed flush waits in
     * flush_at (rel time) until the clock reaches it, then becomes a CAS mark. */
    _Atomic uint64_t oldest_cas;
    _Atomic uint32_t flush_at;
    _Atomic uint64_t malloc_fails;
    _Atomic unsigned generation; /* bumps at every setup: stale thread stats re-register */
    /* The LRU's run-time tunables (cache_lru_set): written under lru_lock,
     * read without it (a store racing a tune sees the old or the new). */
    pthread_mutex_t lru_lock;
    struct cache_lru_tuning lru;
    _Atomic bool lru_segmented, lru_temp;
    _Atomic uint32_t lru_temp_ttl;
    _Atomic unsigned lru_hot_pct, lru_warm_pct;
    _Atomic uint64_t mem_limit;     /* -m, or the last cache_memlimit */
    _Atomic(cache_evict_fn) evict_hook;
    /* Bytes between an item's key and its value: 8 when items carry an
     * upstream CAS there (opts.upstream_cas, see upstream.c), else 0. */
    size_t value_off;
};

extern struct cache cache;

/* --- refs (slab.c keeps the large-item slots) ---------------------------- */
/* The large item in slot (ref - REF_LARGE_BASE). */
struct item *
slab_large_at(uint32_t ref);
/* A large item's slot, kept in the word ahead of its header. */
#define LARGE_PREFIX 8
static inline uint32_t
slab_large_slot(const struct item *it)
{
    uint32_t slot;
    memcpy(&slot, (const char *)it - LARGE_PREFIX, sizeof(slot));
    return slot;
}

/* The item a ref names; NULL for 0. */
static inline struct item *
item_at(uint32_t ref)
{
    if (ref == 0)
        return NULL;
    if (__builtin_expect(ref < REF_LARGE_BASE, 1))
        return (struct item *)(cache.ref_base + ((uintptr_t)ref << cache.ref_shift));
    return slab_large_at(ref);
}

/* An item's ref; 0 for NULL. */
static inline uint32_t
item_ref(const struct item *it)
{
    if (it == NULL)
        return 0;
    uintptr_t off = (uintptr_t)it - cache.ref_base;
    if (__builtin_expect(off < cache.ref_span, 1))
        return (uint32_t)(off >> cache.ref_shift);
    return REF_LARGE_BASE + slab_large_slot(it);
}

/* --- item.c ------------------------------------------------------------ */
static inline unsigned
item_clsid(const struct item *it)
{
    return it->cls & ITEM_CLS_MASK;
}

/* Bytes of client flags after the value: 4, or 0 when they are 0. After
 * the value, not before it, so that finding the value (every reply) costs
 * nothing more; only reading flags that are there does. */
static inline size_t
item_flags_len(const struct item *it)
{
    _Static_assert(ITEM_CLS_FLAGS >> 4 == 4, "flags length from the cls bit");
    return (size_t)((it->cls >> 4) & 4);
}

static inline size_t
item_total(size_t nkey, size_t flags_len, size_t nbytes)
{
    return ITEM_HEADER + nkey + flags_len + cache.value_off + nbytes;
}

static inline size_t
item_size(const struct item *it)
{
    return item_total(it->nkey, item_flags_len(it), it->nbytes);
}

static inline uint64_t
item_meta(const struct item *it)
{
    return atomic_load_explicit(&it->meta, memory_order_relaxed);
}

static inline unsigned
item_seg(const struct item *it)
{
    return (unsigned)((item_meta(it) & ITEM_SEG_MASK) >> ITEM_SEG_SHIFT);
}

static inline bool
item_has(const struct item *it, uint64_t bit)
{
    return (item_meta(it) & bit) != 0;
}

static inline void
item_set_bits(struct item *it, uint64_t bits)
{
    atomic_fetch_or_explicit(&it->meta, bits, memory_order_relaxed);
}

static inline void
item_clear_bits(struct item *it, uint64_t bits)
{
    atomic_fetch_and_explicit(&it->meta, ~bits, memory_order_relaxed);
}

static inline void
item_set_seg(struct item *it, enum lru_seg seg)
{
    uint64_t old = item_meta(it), want;
    do {
        want = (old & ~ITEM_SEG_MASK) | ((uint64_t)seg << ITEM_SEG_SHIFT);
    } while (!atomic_compare_exchange_weak_explicit(&it->meta, &old, want,
                                                    memory_order_relaxed, memory_order_relaxed));
}

/* Gives it a fresh CAS (stripe lock held), keeping its state bits. */
void
item_new_cas(struct item *it);

/* memcached's realtime(): protocol exptime -> rel time (0 never, 1 expired). */
uint32_t
item_realtime(int64_t exptime);

/* realtime() plus the --max-ttl cap. */
uint32_t
item_exptime_for(int64_t exptime);

enum item_death { ITEM_ALIVE = 0, ITEM_EXPIRED, ITEM_FLUSHED };

/* Whether a linked item is still visible at rel time now. */
enum item_death
item_death(const struct item *it, uint32_t now);

/* Arms a delayed flush whose time has come (the maintenance thread calls it
 * every step so that the mark lands on time even with no reads). */
void
item_flush_tick(uint32_t now);

uint64_t
item_hash_key(const char *key, size_t nkey);

/* memcached's ITEM_ntotal for this item (cache_item_size). */
static inline uint32_t
item_mc_size(const struct item *it)
{
    return cache_item_size(it->nkey, item_flags(it), it->nbytes);
}

/* Fills v from a linked item; class lock held. */
void
item_view(const struct item *it, uint32_t now, struct cache_item_view *v);

/* Starts the maintenance thread unless it runs (cache.c); false if it
 * cannot (`lru_crawler enable` after -o no_lru_crawler,no_lru_maintainer). */
bool
maint_start(void);

/* While a lowered cache_memlimit leaves more in use than the budget, asks
 * for one page at a time to go back to the pool (dump.c; maintenance). */
void
memlimit_step(void);

/* --- crawl.c ----------------------------------------------------------- */
void
crawl_setup(void);
/* One bounded step of a requested crawl; true while one is running. */
bool
crawl_step_requested(void);

/* --- slab.c ------------------------------------------------------------ */
bool
slab_setup(char *err, size_t errlen);
void
slab_teardown(void);
/* cache_memlimit: the budget becomes bytes, in whole pages (at least one).
 * Pages past the arena cannot be had: the budget above it stays unused. */
void
slab_set_mem_max(uint64_t bytes);
/* Class index for an item of total size, or -1 when it exceeds item_max. */
int
slab_class_for(size_t total);
/* Takes a free chunk of class id without evicting, growing the class by a
 * page while the budget lasts; class lock held. The chunk comes back with
 * refcount 1 (the caller's). NULL when the class has none and no page can
 * be had. */
struct item *
slab_take_locked(unsigned id, size_t total);
/* Returns an item's memory; class lock held, item unreferenced and unlinked.
 * A chunk of a page being emptied is claimed instead of listed as free. */
void
slab_put_locked(struct item *it);
/* Bytes a large item of total size charges to the budget. */
uint64_t
slab_large_charge(size_t total);
/* Charges bytes to the budget: false (and nothing charged) when they do not fit. */
bool
slab_reserve(uint64_t bytes);
void
slab_unreserve(uint64_t bytes);
/* A zeroed page for a page_size already reserved: a spare arena page, a
 * fresh one, or (without an arena) a new mapping. NULL only if mapping fails. */
char *
slab_page_get(void);
/* Gives a page's memory back to the system and its page_size to the budget. */
void
slab_page_put(char *page);
/* Adds a zeroed page to class id as its newest (carving) page; class lock
 * held. False if the page list cannot grow: the page stays the caller's. */
bool
slab_page_add_locked(unsigned id, char *page);
/* Index of page in class id's list, or -1; class lock held. */
int64_t
slab_page_index_locked(unsigned id, const char *page);
/* Removes a page whose every chunk is claimed from class id; class lock held. */
void
slab_page_remove_locked(unsigned id, const char *page);
/* Free-list and claim primitives for the mover; class lock held. */
void
slab_free_cut_locked(struct slab_class *cls, struct item *it);
void
slab_free_push_locked(struct slab_class *cls, struct item *it);
void
slab_claim_locked(struct slab_class *cls, struct item *it);
/* Pages moved out of classes that can be taken again now. */
uint64_t
slab_pool_pages(void);

/* --- lru.c ------------------------------------------------------------- */
void
lru_insert_locked(struct item *it);
void
lru_remove_locked(struct item *it);
/* Makes room in class id by reclaiming a dead item or, when eviction is on,
 * evicting from the cold end; the memory goes back to the class. Class lock
 * held. False when nothing could be freed. */
bool
lru_reclaim_locked(unsigned id);
/* The segment a new item goes to: TEMP for a short TTL when the temporary
 * LRU is on, HOT when segmented, else COLD (memcached's do_item_alloc). */
enum lru_seg
lru_seg_for(const struct item *it, uint32_t now);
/* Keeps the hot and warm segments within their shares. Class lock held. */
void
lru_balance_locked(unsigned id);
/* Puts fresh where old is in its list (a page move copied old to fresh). */
void
lru_replace_locked(struct item *old, struct item *fresh);
/* Store stamp of the item eviction would take next (its CAS, which grows
 * with every store), UINT64_MAX when the class holds no item. Class lock
 * held. Smaller is older: this is how page moves compare classes' ages. */
uint64_t
lru_tail_stamp_locked(unsigned id);

/* --- hash.c ------------------------------------------------------------ */
bool
ht_setup(unsigned power, char *err, size_t errlen);
void
ht_teardown(void);
void
ht_lock(uint64_t hv);
void
ht_unlock(uint64_t hv);
bool
ht_trylock(uint64_t hv);
/* Stripe lock held for all of the following. */
struct item *
ht_find(const char *key, size_t nkey, uint64_t hv);
void
ht_insert(struct item *it, uint64_t hv);
void
ht_remove(struct item *it, uint64_t hv);
/* Puts fresh in old's place in its chain (a page move relocated old). */
void
ht_replace(struct item *old, struct item *fresh, uint64_t hv);
/* Whether two hashes share a stripe lock. */
bool
ht_same_stripe(uint64_t a, uint64_t b);
/* Counts linked items; true when the load just passed 1.5 and the table
 * should grow (the caller wakes the maintenance thread). */
bool
ht_count(int delta);
/* One bounded step of background expansion; true if more remains. */
bool
ht_expand_step(void);
unsigned
ht_power(void);
bool
ht_expanding(void);
uint64_t
ht_bytes(void);
/* Lookahead without a lock (cache_prefetch): step 0 the bucket of hv,
 * step 1 the first item of its chain. */
void
ht_prefetch(uint64_t hv, unsigned step);

/* --- mover.c ----------------------------------------------------------- */
/* What an allocating thread already holds: the stripe of hv (locked by this
 * thread) and, in it, an item it is still reading (an append's old value).
 * The mover works on that stripe's items without trying the lock, and
 * leaves keep alone. NULL when the allocation holds no stripe. */
struct alloc_hold {
    uint64_t hv;
    const struct item *keep;
};
void
mover_setup(void);
void
mover_teardown(void);
/* A store found no room in class id: makes some at once, by taking a page
 * from the pool or the budget or the class with the oldest tail (slab
 * classes), or by freeing budget the same way (the large class, which needs
 * bytes). Bounded; no class lock held. False when nothing could be had. */
bool
mover_make_room(unsigned id, size_t total, const struct alloc_hold *hold);
/* One bounded step of a requested or automatic move; true if it progressed
 * and more remains. The maintenance thread calls it. */
bool
mover_step(void);
/* The pool as a move's destination (or the source of `slabs reassign 0 n`). */
#define MOVER_POOL (-1)
/* Starts a move between class indexes (dst MOVER_POOL); automove's entry.
 * A move from the large class (which gives budget, not pages) or to the
 * pool that needs no page emptied happens at once. */
enum cache_reassign
mover_request(int src, int dst);
/* cache_slabs_reassign's checks and start, on memcached's class ids. */
enum cache_reassign
mover_reassign(int src, int dst);
/* Runs a requested move to its end (or gives it up) on this thread, for a
 * cache without a maintenance thread. */
void
mover_run_inline(void);
bool
mover_running(void);
void
mover_stats(struct cache_mover_stats *out);
void
mover_stats_reset(void);
/* Held by cache_verify while it checks the pages: no page is in flight. */
void
mover_lock(void);
void
mover_unlock(void);

/* --- automove.c --------------------------------------------------------- */
void
automove_setup(void);
void
automove_teardown(void);
/* Once a second: memcached's automove decision, which may start a move. */
void
automove_tick(uint32_t now);

/* --- shared by cache.c and lease.c -------------------------------------- */
/* A reference count this close to the 16-bit limit means a pathological
 * number of pending replies hold the item; the lookup then reports a miss
 * rather than wrap the count. */
#define REFCOUNT_CEILING (UINT16_MAX - 64)
/* Stripe lock held: the live item for key, or NULL (a dead one found on the
 * way is unlinked and counted). */
struct item *
find_live(const char *key, size_t nkey, uint64_t hv);
/* Stripe lock held: as find_live, with a reference taken for the caller
 * (cache_release); NULL too when the item's count is at its ceiling. */
struct item *
find_live_ref(const char *key, size_t nkey, uint64_t hv);
/* Stripe lock held: counts a read (FETCHED, then ACTIVE; last access). */
void
note_read(struct item *it);
/* An unlinked item with one reference for the caller, its value unwritten;
 * hold: what the caller holds (see struct alloc_hold), NULL for no stripe. */
enum cache_result
alloc_item(struct item **out, const char *key, size_t nkey, uint32_t flags,
           uint32_t rel_exptime, uint64_t nbytes, const struct alloc_hold *hold);
/* Stripe lock held: it takes old's place (old may be NULL). */
void
replace_linked(struct item *old, struct item *it, uint64_t hv);
/* memcached's strtoull on a stored counter of n value bytes (never read
 * past them); false if it is not one. */
bool
parse_counter(const char *p, size_t n, uint64_t *out);

/* --- lease.c ------------------------------------------------------------- */
/* Stripe lock held, it linked with a win handed out: replaces it with an
 * empty stale placeholder (see cache_drop). False when no memory. */
bool
lease_void_locked(struct item *it, uint64_t hv);
/* Stripe lock held: it, about to replace old by a CAS older than old's,
 * becomes stale with old's expiry and win. */
void
lease_stale_store(const struct item *old, struct item *it);

/* --- upstream.c ---------------------------------------------------------- */
/* Stripe lock held: key hv changed here (a store, a delete, a peer's drop,
 * present or not): copies fetched before it will not be kept. No-op unless
 * the cache keeps upstream copies. */
void
upstream_bump(uint64_t hv);
/* Every key changed (a flush took effect). */
void
upstream_bump_all(void);

/* For CHECKs of the lock order: true when this thread holds any class lock. */
static inline bool
class_lock_held_any(void)
{
    for (unsigned c = 0; c < cache.nclasses; c++)
        if (check_mutex_mine(&cache.classes[c].lock))
            return true;
    return false;
}

/* --- link/unlink (cache.c) ---------------------------------------------- */
/* Stripe lock held: puts it into the table and its LRU (takes the class lock). */
void
item_link(struct item *it, uint64_t hv);
/* Stripe lock held: removes a linked item from table and LRU and drops the
 * table's reference (may free it). */
void
item_unlink(struct item *it, uint64_t hv);
/* Stripe and class locks held, item linked and referenced by the table
 * only: unlinks it and returns its memory to the class. */
void
item_reclaim_locked(struct item *it, uint64_t hv);
/* Both locks held: reclaims it (counting reclaimed and expired_unfetched)
 * when it is dead at now and referenced by the table only. True if it was. */
bool
item_reclaim_if_dead_locked(struct item *it, uint64_t hv, uint32_t now);

/* --- stats.c ----------------------------------------------------------- */
struct stats_block;
/* This thread's counter block (registered on first use). */
struct stats_block *
stats_mine(void);
void
stats_add(unsigned clsid, size_t field_offset, uint64_t n);
#define STAT_INC(clsid, field) \
    stats_add((clsid), offsetof(struct cache_op_stats, field), 1)
/* Index used for counters that belong to no class (misses). */
#define STAT_NOCLASS CLASS_MAX
void
stats_sum_class(unsigned clsid, struct cache_op_stats *out);
void
stats_setup(void);
void
stats_teardown(void);

#endif
