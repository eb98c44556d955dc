/* lease: the cache's side of memcached's meta commands — leases (a win
 * handed out to one client to recache a key), stale items, empty
 * placeholders made on a miss, CAS-gated deletes, and the rule that a
 * peer's invalidation voids a lease. Every change to an item here happens
 * under its stripe lock; the win and stale bits change nowhere else, so a
 * reader holding the stripe sees them and the CAS move together. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <stdio.h>
#include <string.h>

/* --- item marks and figures ----------------------------------------------- */

bool
item_win_sent(const struct item *it)
{
    return item_has(it, ITEM_WIN_SENT);
}

bool
item_stale(const struct item *it)
{
    return item_has(it, ITEM_STALE);
}

bool
item_key_binary(const struct item *it)
{
    return item_has(it, ITEM_KEY_BINARY);
}

void
item_set_key_binary(struct item *it)
{
    item_set_bits(it, ITEM_KEY_BINARY);
}

bool
item_fetched(const struct item *it)
{
    return item_has(it, ITEM_FETCHED);
}

uint32_t
item_idle(const struct item *it)
{
    uint32_t now = clock_now();
    return now > it->atime ? now - it->atime : 0;
}

static int64_t
ttl_left(uint32_t exptime)
{
    if (exptime == 0)
        return -1;
    uint32_t now = clock_now();
    return exptime > now ? (int64_t)(exptime - now) : 0;
}

int64_t
item_ttl(const struct item *it)
{
    return ttl_left(it->exptime);
}

unsigned
item_class_id(const struct item *it)
{
    return item_clsid(it) + 1;
}

size_t
item_total_size(const struct item *it)
{
    return item_size(it);
}

struct item *
cache_peek(const char *key, size_t nkey, struct cache_item_info *info)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return NULL;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live_ref(key, nkey, hv);
    if (it != NULL) {
        if (info != NULL)
            *info = (struct cache_item_info){
                .ttl = item_ttl(it), .idle = item_idle(it), .fetched = item_fetched(it) };
    }
    ht_unlock(hv);
    return it;
}

/* --- steps --------------------------------------------------------------- */

/* Runs steps on it (stripe lock held); true if a step won. */
static bool
run_steps(struct item *it, struct cache_mstep *steps, unsigned n, bool created,
          bool *touched)
{
    bool won = false;
    for (unsigned i = 0; i < n; i++) {
        struct cache_mstep *s = &steps[i];
        switch (s->op) {
        case CACHE_MSTEP_TTL:
            it->exptime = item_exptime_for(s->arg);
            *touched = true;
            break;
        case CACHE_MSTEP_TTL_IF_NEW:
            if (created) {
                it->exptime = item_exptime_for(s->arg);
                won = true;
            }
            break;
        case CACHE_MSTEP_RECACHE:
            /* memcached compares rel times: an expiring item whose end
             * comes before now + arg. */
            if (!created && !item_has(it, ITEM_WIN_SENT) && it->exptime != 0 &&
                it->exptime < item_realtime(s->arg))
                won = true;
            break;
        case CACHE_MSTEP_READ_TTL:
            s->out = ttl_left(it->exptime);
            break;
        }
    }
    return won;
}

/* An empty item for key (value "\r\n" only), unlinked, one reference;
 * hold: what the caller holds (struct alloc_hold). */
static struct item *
alloc_empty(const char *key, size_t nkey, uint32_t rel_exptime, const struct alloc_hold *hold)
{
    struct item *it = NULL;
    if (alloc_item(&it, key, nkey, 0, rel_exptime, 2, hold) != CACHE_OK)
        return NULL;
    item_value(it)[0] = '\r';
    item_value(it)[1] = '\n';
    return it;
}

/* --- meta get -------------------------------------------------------------- */

struct item *
cache_meta_get(const char *key, size_t nkey, struct cache_mget *g)
{
    g->created = g->won = g->win_was_sent = g->stale = false;
    g->fetched = g->touched = g->overflow = false;
    g->idle = 0;
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return NULL;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it != NULL && atomic_load(&it->refcount) >= REFCOUNT_CEILING) {
        ht_unlock(hv);
        g->overflow = true;
        return NULL;
    }
    if (it == NULL && g->vivify) {
        struct alloc_hold hold = { hv, NULL };
        struct item *fresh = alloc_empty(key, nkey, 0, &hold);
        if (fresh != NULL) {
            item_link(fresh, hv);
            it = fresh; /* our reference from alloc_empty becomes the caller's */
            g->created = true;
        }
    } else if (it != NULL) {
        atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed); /* the caller's: cache_release */
    }
    if (it == NULL) {
        ht_unlock(hv);
        STAT_INC(STAT_NOCLASS, get_misses); /* memcached counts it, error or not */
        return NULL;
    }
    /* h and l answer for the time before this read. */
    g->fetched = item_has(it, ITEM_FETCHED);
    g->idle = item_idle(it);
    bool won = run_steps(it, g->steps, g->nsteps, g->created, &g->touched);
    if (!g->discard) {
        uint64_t m = item_meta(it);
        g->win_was_sent = (m & ITEM_WIN_SENT) != 0;
        g->stale = (m & ITEM_STALE) != 0;
        /* A stale item wins its first reader: someone must recache it. */
        if (g->stale && !g->win_was_sent)
            won = true;
        if (won)
            item_set_bits(it, ITEM_WIN_SENT);
        g->won = won;
    }
    if (!g->no_bump)
        note_read(it);
    g->cas = item_cas(it);
    if (g->created || g->touched)
        upstream_bump(hv);
    ht_unlock(hv);
    if (!g->discard) {
        if (g->touched)
            STAT_INC(item_clsid(it), touch_hits);
        else
            STAT_INC(item_clsid(it), get_hits);
    }
    return it;
}

/* --- meta arithmetic --------------------------------------------------------- */

/* Stripe lock held, key absent: links an item holding a->initial. */
static struct item *
arith_vivify(const char *key, size_t nkey, uint64_t hv, const struct cache_marith *a)
{
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)a->initial);
    struct item *it = NULL;
    struct alloc_hold hold = { hv, NULL };
    if (alloc_item(&it, key, nkey, 0, 0, (uint64_t)len + 2, &hold) != CACHE_OK)
        return NULL;
    memcpy(item_value(it), buf, (size_t)len);
    memcpy(item_value(it) + len, "\r\n", 2);
    item_link(it, hv);
    return it; /* the caller releases our reference; the table keeps its own */
}

/* Stripe lock held: applies the delta to a live item; *result is the item
 * now holding the value (it, or its replacement, referenced in *fresh). */
static enum cache_result
arith_apply(struct item *it, uint64_t hv, struct cache_marith *a, struct item **fresh,
            struct item **result)
{
    uint64_t value;
    if (it->nbytes <= 2)
        return CACHE_NOT_NUMBER;
    if (a->cas != 0 && item_cas(it) != a->cas)
        return CACHE_EXISTS;
    if (!parse_counter(item_value(it), it->nbytes - 2, &value))
        return CACHE_NOT_NUMBER;
    if (a->incr) {
        value += a->delta; /* wraps at 2^64, as memcached does */
        STAT_INC(item_clsid(it), incr_hits);
    } else {
        value = a->delta > value ? 0 : value - a->delta;
        STAT_INC(item_clsid(it), decr_hits);
    }
    a->value = value;
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)value);
    /* As cache_arith: in place, space-padded, when only the table holds it. */
    if ((uint32_t)len + 2 <= it->nbytes && atomic_load(&it->refcount) == 1) {
        char *v = item_value(it);
        memcpy(v, buf, (size_t)len);
        memset(v + len, ' ', it->nbytes - 2 - (size_t)len);
        item_new_cas(it);
        *result = it;
        return CACHE_OK;
    }
    struct alloc_hold hold = { hv, it }; /* it is still read: the key */
    if (alloc_item(fresh, it->data, it->nkey, item_flags(it), it->exptime, (uint64_t)len + 2, &hold) !=
        CACHE_OK)
        return CACHE_NO_MEMORY;
    memcpy(item_value(*fresh), buf, (size_t)len);
    memcpy(item_value(*fresh) + len, "\r\n", 2);
    replace_linked(it, *fresh, hv);
    *result = *fresh;
    return CACHE_OK;
}

enum cache_result
cache_meta_arith(const char *key, size_t nkey, struct cache_marith *a)
{
    a->created = false;
    a->value = a->cas_out = 0;
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    enum cache_result r = CACHE_OK;
    struct item *fresh = NULL;
    struct item *result = NULL;
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it != NULL) {
        r = arith_apply(it, hv, a, &fresh, &result);
    } else if (a->vivify) {
        fresh = arith_vivify(key, nkey, hv, a);
        result = fresh;
        r = fresh != NULL ? CACHE_OK : CACHE_NOT_STORED;
        a->created = fresh != NULL;
        a->value = a->initial;
    } else {
        if (a->incr)
            STAT_INC(STAT_NOCLASS, incr_misses);
        else
            STAT_INC(STAT_NOCLASS, decr_misses);
        r = CACHE_MISS;
    }
    if (r == CACHE_OK) {
        bool touched = false;
        (void)run_steps(result, a->steps, a->nsteps, a->created, &touched);
        a->cas_out = item_cas(result);
        upstream_bump(hv);
    }
    ht_unlock(hv);
    cache_release(&fresh);
    return r;
}

/* --- meta delete ------------------------------------------------------------------ */

/* Stripe lock held: marks a linked item stale with a fresh CAS, and clears
 * its win so that the next reader is told to recache it. */
static void
mark_stale_locked(struct item *it)
{
    item_clear_bits(it, ITEM_WIN_SENT);
    item_set_bits(it, ITEM_STALE);
    item_new_cas(it);
}

enum cache_result
cache_meta_delete(const char *key, size_t nkey, const struct cache_mdelete *d)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    enum cache_result r = CACHE_OK;
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    if (it == NULL) {
        STAT_INC(STAT_NOCLASS, delete_misses);
        r = CACHE_MISS;
    } else if (d->has_cas && item_cas(it) != d->cas) {
        STAT_INC(item_clsid(it), delete_misses);
        r = CACHE_EXISTS;
    } else if (d->stale && cache.value_off == 0) {
        if (d->has_exptime)
            it->exptime = item_exptime_for(d->exptime);
        mark_stale_locked(it);
    } else {
        /* A near copy of a shared store is never kept stale: the store
         * keeps the stale value and its lease (upstream.c). */
        STAT_INC(item_clsid(it), delete_hits);
        item_unlink(it, hv);
    }
    if (r == CACHE_OK)
        upstream_bump(hv);
    ht_unlock(hv);
    return r;
}

enum cache_result
cache_mark_stale(const char *key, size_t nkey, bool has_exptime, int64_t exptime)
{
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        return CACHE_MISS;
    uint64_t hv = item_hash_key(key, nkey);
    ht_lock(hv);
    struct item *it = find_live(key, nkey, hv);
    bool found = it != NULL;
    if (it != NULL && cache.value_off != 0) {
        item_unlink(it, hv); /* a near copy is dropped, not kept stale (upstream.c) */
    } else if (it != NULL) {
        if (has_exptime)
            it->exptime = item_exptime_for(exptime);
        mark_stale_locked(it);
    }
    upstream_bump(hv); /* even with no copy here: a fetch may be on its way */
    ht_unlock(hv);
    return found ? CACHE_OK : CACHE_MISS;
}

/* --- stale stores and voided leases ----------------------------------------- */

void
lease_stale_store(const struct item *old, struct item *it)
{
    it->exptime = old->exptime;
    item_set_bits(it, ITEM_STALE | (item_meta(old) & ITEM_WIN_SENT));
}

/* A lease holder read its value from the source of truth before a peer's
 * write reached us; its fill carries the CAS of the item it was given. Were
 * the item simply dropped, the fill would find nothing (NOT_FOUND) and a
 * client might store it anyway, and another client's new placeholder would
 * start a lease the old fill cannot tell apart from its own by state. So an
 * empty placeholder takes the item's place: a fresh CAS (the old fill gets
 * EXISTS), stale (readers are told the empty value is no value, and the
 * first of them wins a new lease), the item's expiry (it does not outlive
 * the lease it replaces). */
bool
lease_void_locked(struct item *it, uint64_t hv)
{
    struct alloc_hold hold = { hv, it }; /* it is still read: the key */
    struct item *ph = alloc_empty(it->data, it->nkey, it->exptime, &hold);
    if (ph == NULL)
        return false;
    if (item_has(it, ITEM_KEY_BINARY))
        item_set_bits(ph, ITEM_KEY_BINARY);
    item_set_bits(ph, ITEM_STALE);
    replace_linked(it, ph, hv);
    cache_release(&ph); /* the table holds it now */
    return true;
}
