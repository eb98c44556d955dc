/* item: reading an item's fields, and memcached's rules for when one dies —
 * expiry times in relative or absolute form and the two flush markers. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <string.h>
#include <xxhash.h>

const char *
item_key(const struct item *it)
{
    return it->data;
}

uint8_t
item_nkey(const struct item *it)
{
    return it->nkey;
}

char *
item_value(struct item *it)
{
    return it->data + it->nkey + cache.value_off;
}

const char *
item_value_const(const struct item *it)
{
    return it->data + it->nkey + cache.value_off;
}

uint32_t
item_nbytes(const struct item *it)
{
    return it->nbytes;
}

uint32_t
item_flags(const struct item *it)
{
    uint32_t flags = 0;
    if (it->cls & ITEM_CLS_FLAGS) /* stored only when not 0 */
        memcpy(&flags, item_value_const(it) + it->nbytes, sizeof(flags));
    return flags;
}

uint64_t
item_cas(const struct item *it)
{
    if (!cache.opts.use_cas)
        return 0;
    if (cache.value_off != 0) {
        uint64_t cas;
        memcpy(&cas, it->data + it->nkey, sizeof(cas)); /* upstream.c */
        return cas;
    }
    return item_meta(it) & META_CAS_MASK;
}

void
item_new_cas(struct item *it)
{
    uint64_t cas = atomic_fetch_add_explicit(&cache.next_cas, 1, memory_order_relaxed) & META_CAS_MASK;
    uint64_t old = item_meta(it);
    while (!atomic_compare_exchange_weak_explicit(&it->meta, &old, (old & ~META_CAS_MASK) | cas,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Turns a delayed flush whose time has come into a CAS mark: everything
 * stored before this moment is dead, everything after lives. */
void
item_flush_tick(uint32_t now)
{
    uint32_t due = atomic_load(&cache.flush_at);
    if (due == 0 || due > now)
        return;
    uint64_t mark = atomic_load(&cache.next_cas);
    uint64_t cur = atomic_load(&cache.oldest_cas);
    while (cur < mark && !atomic_compare_exchange_weak(&cache.oldest_cas, &cur, mark))
        ;
    upstream_bump_all();
    /* Cleared after the mark is set, so whoever sees 0 here sees the mark. */
    atomic_compare_exchange_strong(&cache.flush_at, &due, 0);
}

int64_t
item_exptime_unix(const struct item *it)
{
    if (it->exptime == 0)
        return 0;
    if (it->exptime <= clock_now())
        return -1;
    return (int64_t)clock_process_started() + it->exptime;
}

uint64_t
cache_value_hash(const char *value, size_t vlen, uint32_t flags)
{
    return XXH3_64bits_withSeed(value, vlen, flags);
}

uint64_t
item_value_hash(const struct item *it)
{
    return cache_value_hash(item_value_const(it), it->nbytes - 2, item_flags(it));
}

uint64_t
item_hash_key(const char *key, size_t nkey)
{
    return XXH3_64bits(key, nkey);
}

uint32_t
item_realtime(int64_t exptime)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return 1; /* negative: stored, but already expired */
    if (exptime > CACHE_REALTIME_MAXDELTA) {
        /* Absolute unix time; one before start-up is already in the past. */
        int64_t started = (int64_t)clock_process_started();
        if (exptime <= started)
            return 1;
        int64_t rel = exptime - started;
        return rel > UINT32_MAX ? UINT32_MAX : (uint32_t)rel;
    }
    return (uint32_t)exptime + clock_now();
}

uint32_t
item_exptime_for(int64_t exptime)
{
    uint32_t rel = item_realtime(exptime);
    uint32_t cap = cache.opts.max_ttl;
    if (cap == 0 || rel == 1)
        return rel;
    uint32_t limit = clock_now() + cap;
    return (rel == 0 || rel > limit) ? limit : rel;
}

void
cache_flush(int64_t delay)
{
    uint32_t now = clock_now();
    uint32_t rel = delay > 0 ? item_realtime(delay) : now;
    if (rel <= 1) {
        /* An absolute time before start-up: memcached's realtime() gives 1,
         * its oldest_live becomes 0, which means "no flush" — nothing is
         * flushed and a delayed flush still pending is forgotten. Kept as
         * memcached has it, so a fleet of both agrees (README). */
        atomic_store(&cache.flush_at, 0);
        return;
    }
    /* memcached marks "oldest live" one second before the deadline. */
    uint32_t at = delay > 0 ? rel - 1 : now;
    if (at <= now) {
        atomic_store(&cache.flush_at, 0);
        /* memcached spends one CAS id on the mark; clients see the gap. */
        uint64_t mark = atomic_fetch_add(&cache.next_cas, 1);
        atomic_store(&cache.oldest_cas, mark);
        upstream_bump_all();
    } else {
        atomic_store(&cache.flush_at, at);
    }
}

enum item_death
item_death(const struct item *it, uint32_t now)
{
    if (it->exptime != 0 && it->exptime <= now)
        return ITEM_EXPIRED;
    if (atomic_load_explicit(&cache.flush_at, memory_order_relaxed) != 0)
        item_flush_tick(now);
    if ((item_meta(it) & META_CAS_MASK) < atomic_load_explicit(&cache.oldest_cas, memory_order_acquire))
        return ITEM_FLUSHED;
    return ITEM_ALIVE;
}
