/* lru: per-class segmented LRU. New items enter HOT; at HOT's tail an item
 * read twice (ACTIVE) goes to WARM, the rest to COLD; WARM keeps what keeps
 * being read; eviction takes COLD's tail. A scan that reads each key once
 * therefore passes through HOT and COLD without touching WARM's working set.
 * With the temporary LRU on, items whose TTL is that short go to TEMP and
 * never move (they die soon anyway); in flat mode (`lru mode flat`) every
 * item lives in COLD alone. Readers never take the class lock: they only
 * set bits, which the moves here act on later. Every function runs with the
 * class lock held. */
#include "cache/cache_internal.h"
#include "src/clock.h"
/* Bounds on work per call, so one store never walks a whole list. */
#define BALANCE_MOVES 8
#define RECLAIM_TRIES 64

static void
list_unlink(struct slab_class *cls, struct item *it)
{
    struct lru_list *l = &cls->lru[item_seg(it)];
    struct item *prev = item_at(it->prev), *next = item_at(it->next);
    if (prev)
        prev->next = it->next;
    else
        l->head = next;
    if (next)
        next->prev = it->prev;
    else
        l->tail = prev;
    it->prev = it->next = 0;
    l->count--;
}

static void
list_push(struct slab_class *cls, struct item *it, enum lru_seg seg)
{
    struct lru_list *l = &cls->lru[seg];
    item_set_seg(it, seg);
    it->prev = 0;
    it->next = item_ref(l->head);
    if (l->head)
        l->head->prev = item_ref(it);
    l->head = it;
    if (l->tail == NULL)
        l->tail = it;
    l->count++;
}

static void
move_to(struct slab_class *cls, struct item *it, enum lru_seg seg)
{
    list_unlink(cls, it);
    list_push(cls, it, seg);
}

enum lru_seg
lru_seg_for(const struct item *it, uint32_t now)
{
    /* memcached compares in unsigned rel time: no expiry, or one already
     * past, wraps high and is never temporary. */
    if (atomic_load_explicit(&cache.lru_temp, memory_order_relaxed) &&
        it->exptime - now <= atomic_load_explicit(&cache.lru_temp_ttl, memory_order_relaxed))
        return LRU_TEMP;
    return atomic_load_explicit(&cache.lru_segmented, memory_order_relaxed) ? LRU_HOT : LRU_COLD;
}

void
lru_insert_locked(struct item *it)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    list_push(cls, it, lru_seg_for(it, clock_now()));
    cls->linked++;
    cls->bytes += item_size(it);
}

void
lru_remove_locked(struct item *it)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    list_unlink(cls, it);
    cls->linked--;
    cls->bytes -= item_size(it);
}

void
lru_balance_locked(unsigned id)
{
    struct slab_class *cls = &cache.classes[id];
    if (!atomic_load_explicit(&cache.lru_segmented, memory_order_relaxed))
        return; /* flat: everything stays in COLD (or TEMP) */
    uint64_t hot_max = cls->linked * atomic_load_explicit(&cache.lru_hot_pct, memory_order_relaxed) / 100;
    uint64_t warm_max = cls->linked * atomic_load_explicit(&cache.lru_warm_pct, memory_order_relaxed) / 100;
    for (unsigned n = 0; n < BALANCE_MOVES && cls->lru[LRU_HOT].count > hot_max; n++) {
        struct item *it = cls->lru[LRU_HOT].tail;
        if (item_has(it, ITEM_ACTIVE)) {
            item_clear_bits(it, ITEM_ACTIVE);
            move_to(cls, it, LRU_WARM);
            STAT_INC(id, moves_to_warm);
        } else {
            move_to(cls, it, LRU_COLD);
            STAT_INC(id, moves_to_cold);
        }
    }
    for (unsigned n = 0; n < BALANCE_MOVES && cls->lru[LRU_WARM].count > warm_max; n++) {
        struct item *it = cls->lru[LRU_WARM].tail;
        if (item_has(it, ITEM_ACTIVE)) {
            item_clear_bits(it, ITEM_ACTIVE);
            move_to(cls, it, LRU_WARM);
            STAT_INC(id, moves_within_lru);
        } else {
            move_to(cls, it, LRU_COLD);
            STAT_INC(id, moves_to_cold);
        }
    }
}

/* Looks at up to *budget items from seg's tail; frees the first dead one,
 * or with evict the first idle unreferenced one. ACTIVE items in COLD are
 * rescued to WARM instead, outside the budget: each rescue spends an ACTIVE
 * bit that a read set, so the work stays proportional to reads. */
static bool
reclaim_from(unsigned id, enum lru_seg seg, bool evict, unsigned *budget)
{
    struct slab_class *cls = &cache.classes[id];
    uint32_t now = clock_now();
    struct item *it = cls->lru[seg].tail;
    while (it != NULL && *budget > 0) {
        struct item *prev = item_at(it->prev);
        uint64_t hv = item_hash_key(it->data, it->nkey);
        /* Class lock held: the stripe may only be tried (lock order). */
        if (!ht_trylock(hv)) {
            (*budget)--;
            it = prev;
            continue;
        }
        if (item_reclaim_if_dead_locked(it, hv, now)) {
            ht_unlock(hv);
            return true;
        }
        bool idle = atomic_load(&it->refcount) == 1;
        if (!idle)
            STAT_INC(id, lrutail_reflocked); /* a reply still holds it */
        if (idle && evict) {
            if (seg == LRU_COLD && item_has(it, ITEM_ACTIVE)) {
                /* Read again while it sank: rescue it, to WARM, or in flat
                 * mode back to COLD's head (memcached's bump). */
                item_clear_bits(it, ITEM_ACTIVE);
                if (atomic_load_explicit(&cache.lru_segmented, memory_order_relaxed)) {
                    move_to(cls, it, LRU_WARM);
                    STAT_INC(id, moves_to_warm);
                } else {
                    move_to(cls, it, LRU_COLD);
                }
                ht_unlock(hv);
                it = prev;
                continue;
            } else {
                STAT_INC(id, evictions);
                if (!item_has(it, ITEM_FETCHED))
                    STAT_INC(id, evicted_unfetched);
                if (item_has(it, ITEM_ACTIVE))
                    STAT_INC(id, evicted_active);
                if (it->exptime != 0)
                    STAT_INC(id, evicted_nonzero);
                cls->evicted_time = now > it->atime ? now - it->atime : 0;
                cache_evict_fn hook = atomic_load_explicit(&cache.evict_hook, memory_order_acquire);
                if (hook != NULL) {
                    struct cache_item_view v;
                    item_view(it, now, &v);
                    hook(&v);
                }
                item_reclaim_locked(it, hv);
                ht_unlock(hv);
                return true;
            }
        }
        ht_unlock(hv);
        (*budget)--;
        it = prev;
    }
    return false;
}

bool
lru_reclaim_locked(unsigned id)
{
    bool evict = cache.opts.evict;
    unsigned budget = RECLAIM_TRIES;
    lru_balance_locked(id);
    /* COLD first; HOT and WARM only when COLD has nothing to give; TEMP's
     * short-lived items last (their expiry frees them soon anyway). */
    static const enum lru_seg order[] = { LRU_COLD, LRU_HOT, LRU_WARM, LRU_TEMP };
    for (unsigned i = 0; i < 4; i++)
        if (reclaim_from(id, order[i], evict, &budget))
            return true;
    return false;
}

void
lru_replace_locked(struct item *old, struct item *fresh)
{
    struct slab_class *cls = &cache.classes[item_clsid(old)];
    struct lru_list *l = &cls->lru[item_seg(old)];
    struct item *prev = item_at(old->prev), *next = item_at(old->next);
    fresh->prev = old->prev;
    fresh->next = old->next;
    if (prev)
        prev->next = item_ref(fresh);
    else
        l->head = fresh;
    if (next)
        next->prev = item_ref(fresh);
    else
        l->tail = fresh;
    old->prev = old->next = 0;
}

uint64_t
lru_tail_stamp_locked(unsigned id)
{
    const struct slab_class *cls = &cache.classes[id];
    /* Eviction takes COLD first, so COLD's tail is the next to go. */
    const struct item *t = cls->lru[LRU_COLD].tail;
    if (t != NULL)
        return item_meta(t) & META_CAS_MASK;
    uint64_t oldest = UINT64_MAX;
    for (unsigned seg = 0; seg < LRU_SEGS; seg++) {
        t = cls->lru[seg].tail;
        if (t != NULL && (item_meta(t) & META_CAS_MASK) < oldest)
            oldest = item_meta(t) & META_CAS_MASK;
    }
    return oldest;
}
