/* cache: the public operations — lookups, the store family, delete, incr/decr,
 * touch — plus set-up and the maintenance thread. Every operation on a key
 * runs under that key's stripe lock, which makes it atomic against every
 * other operation on the same key; the table holds one reference to each
 * linked item, and each successful lookup hands the caller one more. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cache cache;

static struct {
    pthread_t thread;
    bool running;
    bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned crawl_class;       /* reclaimer cursor: class, then chunk */
    uint64_t crawl_chunk;
} maint = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static const char *const result_names[] = {
#define CACHE_RESULT_NAME(name) #name,
    CACHE_RESULTS(CACHE_RESULT_NAME)
#undef CACHE_RESULT_NAME
};

const char *
cache_result_name(enum cache_result r)
{
    return (unsigned)r < CACHE_RESULT_COUNT ? result_names[r] : "CACHE_UNKNOWN";
}

#define CACHE_OPTION_ROW(...) OPTION_ROW(struct cache_options, __VA_ARGS__)
const struct option_row cache_option_rows[] = { CACHE_OPTIONS(CACHE_OPTION_ROW, CACHE_OPTION_ROW) };
#undef CACHE_OPTION_ROW
const size_t cache_option_nrows = sizeof(cache_option_rows) / sizeof(cache_option_rows[0]);

/* The default hash table: 2^16 buckets, grown in the background. */
#define CACHE_HASHPOWER_DEFAULT 16

void
cache_options_default(struct cache_options *o)
{
    char err[256];
    memset(o, 0, sizeof(*o));
    /* Every default is a row's; a test checks that each one parses. */
    (void)option_defaults(cache_option_rows, cache_option_nrows, o, err, sizeof(err));
    o->page_size = 1u << 20;
}

static void
wake_maintainer(void)
{
    pthread_mutex_lock(&maint.lock);
    pthread_cond_signal(&maint.cond);
    pthread_mutex_unlock(&maint.lock);
}

/* --- link / unlink ------------------------------------------------------ */

static void
free_item(struct item *it)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    CHECK(atomic_load(&it->refcount) == 0 && !item_has(it, ITEM_LINKED));
    pthread_mutex_lock(&cls->lock);
    slab_put_locked(it);
    pthread_mutex_unlock(&cls->lock);
}

void
item_link(struct item *it, uint64_t hv)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    CHECK(!item_has(it, ITEM_LINKED));
    item_new_cas(it);
    it->atime = clock_now();
    uint16_t refs = atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed); /* the table's; dropped in item_unlink */
    CHECK(refs >= 1 && refs < REFCOUNT_CEILING); /* the caller holds one */
    pthread_mutex_lock(&cls->lock);
    item_set_bits(it, ITEM_LINKED);
    ht_insert(it, hv);
    lru_insert_locked(it);
    lru_balance_locked(item_clsid(it));
    pthread_mutex_unlock(&cls->lock);
    STAT_INC(item_clsid(it), total_items);
    if (ht_count(1))
        wake_maintainer();
}

void
item_unlink(struct item *it, uint64_t hv)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    CHECK(item_has(it, ITEM_LINKED));
    pthread_mutex_lock(&cls->lock);
    ht_remove(it, hv);
    lru_remove_locked(it);
    item_clear_bits(it, ITEM_LINKED);
    pthread_mutex_unlock(&cls->lock);
    ht_count(-1);
    uint16_t refs = atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel);
    CHECK(refs >= 1);
    if (refs == 1)
        free_item(it);
}

void
item_reclaim_locked(struct item *it, uint64_t hv)
{
    CHECK(check_mutex_mine(&cache.classes[item_clsid(it)].lock));
    CHECK(item_has(it, ITEM_LINKED) && atomic_load(&it->refcount) == 1);
    ht_remove(it, hv);
    lru_remove_locked(it);
    item_clear_bits(it, ITEM_LINKED);
    ht_count(-1);
    atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
    slab_put_locked(it);
}

bool
item_reclaim_if_dead_locked(struct item *it, uint64_t hv, uint32_t now)
{
    if (atomic_load(&it->refcount) != 1)
        return false;
    enum item_death death = item_death(it, now);
    if (death == ITEM_ALIVE)
        return false;
    STAT_INC(item_clsid(it), reclaimed);
    /* Flushed ones count too, as memcached's lru_pull_tail counts them. */
    if (!item_has(it, ITEM_FETCHED))
        STAT_INC(item_clsid(it), expired_unfetched);
    item_reclaim_locked(it, hv);
    return true;
}

void
cache_release(struct item **itp)
{
    struct item *it = *itp;
    if (it == NULL)
        return;
    *itp = NULL;
    uint16_t refs = atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel);
    CHECK(refs >= 1); /* released more often than taken */
    if (refs == 1)
        free_item(it);
}

/* --- allocation ----------------------------------------------------------- */

/* Rounds of "take, else evict here, else take a page from elsewhere": a
 * round fails only if another thread took the room made for this one. */
#define ALLOC_ROUNDS 4

static struct item *
alloc_chunk(unsigned id, size_t total, const struct alloc_hold *hold)
{
    struct slab_class *cls = &cache.classes[id];
    /* Large items may need several evictions to free enough budget; each
     * frees more than slab_chunk_max bytes. */
    unsigned attempts = cls->large ? (unsigned)(total / cache.opts.slab_chunk_max) + 32 : 32;
    for (unsigned round = 0; round < ALLOC_ROUNDS; round++) {
        struct item *it = NULL;
        pthread_mutex_lock(&cls->lock);
        unsigned reclaimed = 0;
        for (unsigned attempt = 0; attempt < attempts; attempt++) {
            it = slab_take_locked(id, total);
            if (it != NULL || !lru_reclaim_locked(id))
                break;
            reclaimed++;
        }
        pthread_mutex_unlock(&cls->lock);
        /* The store itself had to free memory: memcached's direct_reclaims. */
        if (reclaimed > 0)
            stats_add(id, offsetof(struct cache_op_stats, direct_reclaims), reclaimed);
        if (it != NULL)
            return it;
        /* No free chunk and nothing to evict in this class (it may own no
         * page at all): take room from another class now, so the store
         * succeeds at the first try rather than after a background move. */
        if (!mover_make_room(id, total, hold))
            break;
    }
    return NULL;
}

/* hold: what the caller holds while it allocates (see struct alloc_hold);
 * NULL from a caller holding no stripe lock. */
enum cache_result
alloc_item(struct item **out, const char *key, size_t nkey, uint32_t flags,
           uint32_t rel_exptime, uint64_t nbytes, const struct alloc_hold *hold)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_BAD_KEY;
    if (nbytes > UINT32_MAX)
        return CACHE_TOO_LARGE;
    size_t flags_len = flags != 0 ? sizeof(flags) : 0; /* as memcached: only when not 0 */
    size_t total = item_total(nkey, flags_len, (size_t)nbytes);
    int id = slab_class_for(total);
    if (id < 0)
        return CACHE_TOO_LARGE;
    struct item *it = alloc_chunk((unsigned)id, total, hold);
    if (it == NULL) {
        STAT_INC((unsigned)id, outofmemory);
        return CACHE_NO_MEMORY;
    }
    it->h_next = it->prev = it->next = 0;
    it->exptime = rel_exptime;
    it->nbytes = (uint32_t)nbytes;
    it->nkey = (uint8_t)nkey;
    memcpy(it->data, key, nkey);
    if (cache.value_off != 0)
        memset(it->data + nkey, 0, cache.value_off); /* no upstream CAS yet */
    if (flags != 0) {
        /* After the value, which the caller writes: nbytes bytes, no more. */
        it->cls |= ITEM_CLS_FLAGS;
        memcpy(item_value(it) + nbytes, &flags, sizeof(flags));
    }
    atomic_store_explicit(&it->refcount, 1, memory_order_relaxed); /* the caller's */
    *out = it;
    return CACHE_OK;
}

enum cache_result
cache_alloc(struct item **out, const char *key, size_t nkey, uint32_t flags,
            int64_t exptime, uint32_t vlen)
{
    return alloc_item(out, key, nkey, flags, item_exptime_for(exptime), (uint64_t)vlen + 2, NULL);
}

/* --- lookups ---------------------------------------------------------------- */

struct item *
find_live(const char *key, size_t nkey, uint64_t hv)
{
    struct item *it = ht_find(key, nkey, hv);
    if (it == NULL)
        return NULL;
    enum item_death death = item_death(it, clock_now());
    if (death == ITEM_ALIVE)
        return it;
    if (death == ITEM_EXPIRED)
        STAT_INC(item_clsid(it), get_expired);
    else
        STAT_INC(item_clsid(it), get_flushed);
    item_unlink(it, hv);
    return NULL;
}

/* Marks a read: first FETCHED, then ACTIVE, which LRU moves act on. */
void
note_read(struct item *it)
{
    uint32_t now = clock_now();
    if (it->atime != now)
        it->atime = now;
    uint64_t m = item_meta(it);
    if (!(m & ITEM_FETCHED))
        item_set_bits(it, ITEM_FETCHED);
    else if (!(m & ITEM_ACTIVE))
        item_set_bits(it, ITEM_ACTIVE);
}

struct item *
find_live_ref(const char *key, size_t nkey, uint64_t hv)
{
    struct item *it = find_live(key, nkey, hv);
    /* At the ceiling a new reference would wrap: such a key reads as a miss. */
    if (it == NULL || atomic_load(&it->refcount) >= REFCOUNT_CEILING)
        return NULL;
    uint16_t refs = atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed); /* the caller's: cache_release */
    CHECK(refs >= 1 && refs < REFCOUNT_CEILING); /* the table holds one */
    return it;
}

static struct item *
lookup(const char *key, size_t nkey, bool touch, int64_t exptime)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return NULL;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live_ref(key, nkey, hv);
    if (it != NULL) {
        if (touch)
            it->exptime = item_exptime_for(exptime);
        note_read(it);
    }
    unsigned seg = it != NULL ? item_seg(it) : 0;
    ht_unlock(hv);
    if (touch) {
        if (it)
            STAT_INC(item_clsid(it), touch_hits);
        else
            STAT_INC(STAT_NOCLASS, touch_misses);
    } else {
        if (it) {
            static const size_t hits_to[LRU_SEGS] = {
                [LRU_HOT] = offsetof(struct cache_op_stats, hits_to_hot),
                [LRU_WARM] = offsetof(struct cache_op_stats, hits_to_warm),
                [LRU_COLD] = offsetof(struct cache_op_stats, hits_to_cold),
                [LRU_TEMP] = offsetof(struct cache_op_stats, hits_to_temp),
            };
            STAT_INC(item_clsid(it), get_hits);
            stats_add(item_clsid(it), hits_to[seg], 1);
        } else {
            STAT_INC(STAT_NOCLASS, get_misses);
        }
    }
    return it;
}

struct item *
cache_get(const char *key, size_t nkey)
{
    return lookup(key, nkey, false, 0);
}

struct item *
cache_get_touch(const char *key, size_t nkey, int64_t exptime)
{
    return lookup(key, nkey, true, exptime);
}

uint64_t
cache_key_hash(const char *key, size_t nkey)
{
    return item_hash_key(key, nkey);
}

void
cache_prefetch(uint64_t hv, unsigned step)
{
    ht_prefetch(hv, step);
}

/* --- stores ------------------------------------------------------------------ */

/* Builds old+add (append) or add+old (prepend) in a new item; old's
 * stripe (hv) is held. */
static enum cache_result
join_values(struct item **out, struct item *old, struct item *add, bool append, uint64_t hv)
{
    uint64_t nbytes = (uint64_t)old->nbytes + add->nbytes - 2;
    struct alloc_hold hold = { hv, old };
    enum cache_result r = alloc_item(out, old->data, old->nkey, item_flags(old), old->exptime, nbytes, &hold);
    if (r != CACHE_OK)
        return r;
    char *dst = item_value(*out);
    const struct item *first = append ? old : add;
    const struct item *second = append ? add : old;
    memcpy(dst, item_value_const(first), first->nbytes - 2);
    memcpy(dst + first->nbytes - 2, item_value_const(second), second->nbytes);
    return CACHE_OK;
}

void
replace_linked(struct item *old, struct item *it, uint64_t hv)
{
    if (old != NULL)
        item_unlink(old, hv);
    item_link(it, hv);
}

enum cache_result
cache_store(struct item *it, enum cache_store_op op, uint64_t cas_in, uint64_t *cas_out)
{
    uint64_t hv = item_hash_key(it->data, it->nkey);
    struct item *joined = NULL;
    struct item *stored = it;
    enum cache_result r = CACHE_OK;

    /* A stored item is fresh: the caller's reference only, never linked. */
    CHECK(!item_has(it, ITEM_LINKED) && atomic_load(&it->refcount) >= 1);
    STAT_INC(item_clsid(it), cmd_set);
    ht_lock(hv);
    struct item *old = find_live(it->data, it->nkey, hv);
    switch (op) {
    case CACHE_SET:
        replace_linked(old, it, hv);
        break;
    case CACHE_ADD:
        if (old != NULL) {
            /* memcached refreshes an item that an add ran into (its access
             * time), without counting a read: meta's h still says 0. */
            old->atime = clock_now();
            r = CACHE_NOT_STORED;
        } else {
            item_link(it, hv);
        }
        break;
    case CACHE_REPLACE:
        if (old == NULL)
            r = CACHE_NOT_STORED;
        else
            replace_linked(old, it, hv);
        break;
    case CACHE_APPEND:
    case CACHE_PREPEND:
        if (old == NULL) {
            r = CACHE_NOT_STORED;
            break;
        }
        if (cas_in != 0 && item_cas(old) != cas_in) {
            r = CACHE_EXISTS;
            break;
        }
        /* memcached answers NOT_STORED when the joined item cannot be made,
         * too large or out of memory alike. */
        if (join_values(&joined, old, it, op == CACHE_APPEND, hv) != CACHE_OK) {
            r = CACHE_NOT_STORED;
        } else {
            replace_linked(old, joined, hv);
            stored = joined;
        }
        break;
    case CACHE_CAS:
    case CACHE_CAS_STALE:
        if (old == NULL) {
            STAT_INC(STAT_NOCLASS, cas_misses);
            r = CACHE_MISS;
        } else if (!cache.opts.use_cas || (item_meta(old) & META_CAS_MASK) != cas_in) {
            if (op == CACHE_CAS_STALE && cache.opts.use_cas &&
                cas_in < (item_meta(old) & META_CAS_MASK)) {
                STAT_INC(item_clsid(old), cas_hits);
                lease_stale_store(old, it);
                replace_linked(old, it, hv);
                break;
            }
            /* With CAS off (-C) no unique can match, as in memcached. */
            STAT_INC(item_clsid(old), cas_badval);
            r = CACHE_EXISTS;
        } else {
            STAT_INC(item_clsid(old), cas_hits);
            replace_linked(old, it, hv);
        }
        break;
    }
    if (r == CACHE_OK && cas_out != NULL)
        *cas_out = item_cas(stored);
    if (r == CACHE_OK)
        upstream_bump(hv);
    ht_unlock(hv);
    cache_release(&joined);
    return r;
}

void
cache_count_set(const struct item *it)
{
    STAT_INC(item_clsid(it), cmd_set);
}

enum cache_result
cache_delete(const char *key, size_t nkey)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it != NULL) {
        STAT_INC(item_clsid(it), delete_hits);
        item_unlink(it, hv);
    } else {
        STAT_INC(STAT_NOCLASS, delete_misses);
    }
    upstream_bump(hv);
    ht_unlock(hv);
    return it != NULL ? CACHE_OK : CACHE_MISS;
}

enum cache_result
cache_drop(const char *key, size_t nkey, bool has_hash, uint64_t value_hash)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    enum cache_result r = CACHE_MISS;
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it != NULL) {
        /* A lease out must not end in a miss its late fill could land in,
         * nor survive because a placeholder's empty value happens to equal
         * the peer's: see lease_void_locked. */
        bool leased = item_has(it, ITEM_WIN_SENT);
        if (has_hash && !leased && item_value_hash(it) == value_hash) {
            r = CACHE_EXISTS;
        } else {
            if (!leased || !lease_void_locked(it, hv))
                item_unlink(it, hv);
            r = CACHE_OK;
        }
    }
    /* Even with no copy here: a fetch of key may be on its way (upstream.c). */
    upstream_bump(hv);
    ht_unlock(hv);
    return r;
}

enum cache_result
cache_touch(const char *key, size_t nkey, int64_t exptime)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it != NULL) {
        it->exptime = item_exptime_for(exptime);
        note_read(it);
        STAT_INC(item_clsid(it), touch_hits);
        upstream_bump(hv);
    } else {
        STAT_INC(STAT_NOCLASS, touch_misses);
    }
    ht_unlock(hv);
    return it != NULL ? CACHE_OK : CACHE_MISS;
}

/* memcached reads a counter with strtoull and accepts what it accepts:
 * leading white space, a sign, then digits ending at white space, NUL or
 * the end of the value. A minus sign is refused unless the value wraps to a
 * small number. Only the value's n bytes are read: memcached's strtoull runs
 * on past a value of only white space (its "\r\n" is white space too) into
 * whatever an earlier item left in the chunk (README: known differences). */
bool
parse_counter(const char *p, size_t n, uint64_t *out)
{
    const char *end = p + n;
    while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r')))
        p++;
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    const char *digits = p;
    uint64_t v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (p == digits)
        return false;
    if (p < end && !(*p == ' ' || (*p >= '\t' && *p <= '\r') || *p == '\0'))
        return false;
    if (neg) {
        v = (uint64_t)0 - v;
        if ((int64_t)v < 0)
            return false;
    }
    *out = v;
    return true;
}

enum cache_result
cache_arith(const char *key, size_t nkey, bool incr, uint64_t delta, uint64_t *result)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    enum cache_result r = CACHE_OK;
    struct item *fresh = NULL;
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    uint64_t value;
    if (it == NULL) {
        if (incr)
            STAT_INC(STAT_NOCLASS, incr_misses);
        else
            STAT_INC(STAT_NOCLASS, decr_misses);
        r = CACHE_MISS;
    } else if (!parse_counter(item_value(it), it->nbytes - 2, &value)) {
        r = CACHE_NOT_NUMBER;
    } else {
        if (incr) {
            value += delta; /* wraps at 2^64, as memcached does */
            STAT_INC(item_clsid(it), incr_hits);
        } else {
            value = delta > value ? 0 : value - delta;
            STAT_INC(item_clsid(it), decr_hits);
        }
        char buf[24];
        int len = snprintf(buf, sizeof(buf), "%" PRIu64, value);
        /* Only the table and this thread hold it (the stripe stops new
         * readers), so no reply can be sending these bytes: rewrite in place,
         * space-padded like memcached, when the digits fit. */
        if ((uint32_t)len + 2 <= it->nbytes && atomic_load(&it->refcount) == 1) {
            char *v = item_value(it);
            memcpy(v, buf, (size_t)len);
            memset(v + len, ' ', it->nbytes - 2 - (size_t)len);
            item_new_cas(it);
        } else {
            struct alloc_hold hold = { hv, it };
            r = alloc_item(&fresh, it->data, it->nkey, item_flags(it), it->exptime, (uint64_t)len + 2, &hold);
            if (r == CACHE_OK) {
                memcpy(item_value(fresh), buf, (size_t)len);
                memcpy(item_value(fresh) + len, "\r\n", 2);
                replace_linked(it, fresh, hv);
            }
        }
        if (r == CACHE_OK) {
            *result = value;
            upstream_bump(hv);
        }
    }
    ht_unlock(hv);
    cache_release(&fresh);
    return r;
}

/* --- maintenance ------------------------------------------------------------------ */

/* Chunks the reclaimer looks at per step. */
#define CRAWL_BATCH 4096

/* Visits the next CRAWL_BATCH chunks of the slab classes and frees the dead
 * ones. Walking pages rather than LRU lists needs no cursor inside a list:
 * pages never move, and a chunk's LINKED bit says whether it holds an item. */
static void
crawl_step(void)
{
    uint32_t now = clock_now();
    unsigned budget = CRAWL_BATCH;
    while (budget > 0) {
        unsigned id = maint.crawl_class;
        struct slab_class *cls = &cache.classes[id];
        pthread_mutex_lock(&cls->lock);
        if (cls->large) {
            /* Large items are few (each is over half a page): walk the lists. */
            for (unsigned seg = 0; seg < LRU_SEGS; seg++) {
                struct item *it = cls->lru[seg].tail;
                while (it != NULL && budget > 0) {
                    struct item *prev = item_at(it->prev);
                    budget--;
                    uint64_t hv = item_hash_key(it->data, it->nkey);
                    if (ht_trylock(hv)) {
                        (void)item_reclaim_if_dead_locked(it, hv, now);
                        ht_unlock(hv);
                    }
                    it = prev;
                }
            }
            budget = 0;
            maint.crawl_chunk = 0;
            maint.crawl_class = 0;
        } else {
            uint64_t total = cls->npages * cls->perslab;
            while (maint.crawl_chunk < total && budget > 0) {
                uint64_t c = maint.crawl_chunk++;
                budget--;
                struct item *it = (struct item *)(cls->pages[c / cls->perslab] + (c % cls->perslab) * cls->size);
                if (!item_has(it, ITEM_LINKED))
                    continue;
                uint64_t hv = item_hash_key(it->data, it->nkey);
                if (!ht_trylock(hv))
                    continue;
                (void)item_reclaim_if_dead_locked(it, hv, now);
                ht_unlock(hv);
            }
            if (maint.crawl_chunk >= total) {
                maint.crawl_chunk = 0;
                maint.crawl_class++;
            }
        }
        pthread_mutex_unlock(&cls->lock);
        if (budget == 0 || maint.crawl_class == 0)
            break;
    }
}

bool
cache_maintain(void)
{
    uint32_t now = clock_now();
    item_flush_tick(now);
    bool more = ht_expand_step();
    /* memcached reclaims in the background only with its LRU maintainer. */
    if (cache.opts.lru_maintainer)
        crawl_step();
    automove_tick(now);
    more |= mover_step();
    memlimit_step();
    if (crawl_step_requested())
        more = true;
    return more;
}

/* --- slab page moves ----------------------------------------------------------- */

enum cache_reassign
cache_slabs_reassign(int src, int dst)
{
    enum cache_reassign r = mover_reassign(src, dst);
    if (r == CACHE_REASSIGN_OK && mover_running()) {
        if (maint.running)
            wake_maintainer();
        else
            mover_run_inline();
    }
    return r;
}

bool
cache_slab_reassign_enabled(void)
{
    return cache.opts.slab_reassign;
}

void
cache_slab_automove_set(unsigned level)
{
    atomic_store(&cache.automove, level > 2 ? 2 : level);
}

unsigned
cache_slab_automove(void)
{
    return atomic_load(&cache.automove);
}

void
cache_slab_automove_ratio_set(double ratio)
{
    uint64_t bits;
    memcpy(&bits, &ratio, sizeof(bits));
    atomic_store(&cache.automove_ratio_bits, bits);
}

double
cache_slab_automove_ratio(void)
{
    uint64_t bits = atomic_load(&cache.automove_ratio_bits);
    double ratio;
    memcpy(&ratio, &bits, sizeof(ratio));
    return ratio;
}

static void *
maint_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "fc-maint");
    pthread_mutex_lock(&maint.lock);
    while (!maint.stop) {
        pthread_mutex_unlock(&maint.lock);
        bool more = cache_maintain();
        pthread_mutex_lock(&maint.lock);
        if (!more && !maint.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&maint.cond, &maint.lock, &ts);
        }
    }
    pthread_mutex_unlock(&maint.lock);
    return NULL;
}

/* --- set-up ------------------------------------------------------------------------ */

bool
maint_start(void)
{
    pthread_mutex_lock(&maint.lock);
    bool ok = maint.running;
    if (!ok && !maint.stop) {
        ok = pthread_create(&maint.thread, NULL, maint_main, NULL) == 0;
        maint.running = ok;
    }
    pthread_mutex_unlock(&maint.lock);
    return ok;
}

bool
cache_setup(const struct cache_options *opts, char *err, size_t errlen)
{
    unsigned gen = atomic_load(&cache.generation) + 1;
    memset(&cache, 0, sizeof(cache));
    atomic_store(&cache.generation, gen);
    cache.opts = *opts;
    cache.value_off = opts->upstream_cas ? sizeof(uint64_t) : 0;
    atomic_store(&cache.next_cas, 1);
    if (opts->page_size < 1024 || opts->item_max < ITEM_HEADER + opts->chunk_min) {
        snprintf(err, errlen, "page size or item size limit too small");
        return false;
    }
    if (opts->slab_automove < 0 || opts->slab_automove > 2) {
        snprintf(err, errlen, "slab_automove must be between 0 and 2");
        return false;
    }
    if (opts->slab_automove_window <= 2) {
        snprintf(err, errlen, "slab_automove_window must be > 2");
        return false;
    }
    cache_slab_automove_set(opts->slab_automove);
    cache_slab_automove_ratio_set(opts->slab_automove_ratio);
    if (!slab_setup(err, errlen))
        return false;
    if (!ht_setup(opts->hashpower != 0 ? opts->hashpower : CACHE_HASHPOWER_DEFAULT, err, errlen)) {
        slab_teardown();
        cache.nclasses = 0;
        return false;
    }
    stats_setup();
    mover_setup();
    automove_setup();
    pthread_mutex_init(&cache.lru_lock, NULL);
    atomic_store(&cache.mem_limit, opts->mem_limit);
    /* memcached segments its LRU only with its maintainer running. */
    struct cache_lru_tuning lru = {
        .segmented = opts->lru_maintainer,
        .temp_lru = opts->temp_lru,
        .temp_ttl = opts->temporary_ttl > 0 ? (uint32_t)opts->temporary_ttl : 0,
        .hot_pct = (unsigned)opts->hot_lru_pct,
        .warm_pct = (unsigned)opts->warm_lru_pct,
        .hot_max_factor = opts->hot_max_factor,
        .warm_max_factor = opts->warm_max_factor,
    };
    cache_lru_set(&lru);
    crawl_setup();
    maint.crawl_class = 0;
    maint.crawl_chunk = 0;
    maint.stop = false;
    maint.running = false;
    /* One thread does both jobs: -o no_lru_crawler,no_lru_maintainer stop it. */
    if ((opts->lru_crawler || opts->lru_maintainer) && !opts->manual && !maint_start()) {
        snprintf(err, errlen, "cannot start the cache maintenance thread");
        cache_teardown();
        return false;
    }
    return true;
}

void
cache_teardown(void)
{
    if (cache.nclasses == 0)
        return; /* never set up, or already torn down */
    if (maint.running) {
        pthread_mutex_lock(&maint.lock);
        maint.stop = true;
        pthread_cond_signal(&maint.cond);
        pthread_mutex_unlock(&maint.lock);
        pthread_join(maint.thread, NULL);
        maint.running = false;
    }
    automove_teardown();
    mover_teardown();
    ht_teardown();
    slab_teardown();
    stats_teardown();
    cache.nclasses = 0;
}
