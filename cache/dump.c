/* dump: looking at the cache from outside without stopping it — item views
 * for `stats cachedump` and key dumps, a resumable walk over the slab pages,
 * and the run-time knobs an operator turns (LRU tuning, memory limit, the
 * eviction hook). Invariant: a view is filled with the class lock held, and
 * under that lock a linked item's header and key cannot change or be freed
 * (unlinking and freeing both take it), so no stripe lock is needed to read
 * them; callbacks only copy. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <string.h>

/* memcached's header without its CAS (its struct _stritem). */
#define MC_ITEM_HEADER 48
#define MC_ITEM_CAS 8

uint32_t
cache_item_size(size_t nkey, uint32_t flags, size_t nbytes)
{
    size_t n = MC_ITEM_HEADER + nkey + 1 + (flags != 0 ? sizeof(flags) : 0) + nbytes;
    if (cache.opts.use_cas)
        n += MC_ITEM_CAS;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

void
item_view(const struct item *it, uint32_t now, struct cache_item_view *v)
{
    v->key = it->data;
    v->nkey = it->nkey;
    v->vlen = it->nbytes - 2;
    v->flags = item_flags(it);
    v->exptime = it->exptime == 0 ? 0 : (int64_t)clock_process_started() + it->exptime;
    v->cas = item_cas(it);
    v->fetched = item_has(it, ITEM_FETCHED);
    v->idle = now > it->atime ? now - it->atime : 0;
    v->atime = (int64_t)clock_process_started() + it->atime;
    v->dead = item_death(it, now) != ITEM_ALIVE;
    v->class_id = item_clsid(it) + 1u;
    v->size = item_mc_size(it);
}

unsigned
cache_class_dump(unsigned class_id, unsigned limit, cache_view_fn fn, void *arg)
{
    if (class_id == 0 || class_id > cache.nclasses)
        return 0;
    struct slab_class *cls = &cache.classes[class_id - 1];
    static const enum lru_seg order[] = { LRU_HOT, LRU_WARM, LRU_COLD, LRU_TEMP };
    uint32_t now = clock_now();
    unsigned shown = 0;
    pthread_mutex_lock(&cls->lock);
    for (unsigned i = 0; i < LRU_SEGS; i++) {
        for (const struct item *it = cls->lru[order[i]].head; it != NULL; it = item_at(it->next)) {
            if (limit != 0 && shown >= limit)
                goto out;
            struct cache_item_view v;
            item_view(it, now, &v);
            if (!fn(&v, arg))
                goto out;
            shown++;
        }
    }
out:
    pthread_mutex_unlock(&cls->lock);
    return shown;
}

void
cache_walk_begin(struct cache_walk *w, uint64_t classes)
{
    memset(w, 0, sizeof(*w));
    w->classes = classes;
}

/* Large items are separate mappings on the class's lists, not in pages, so
 * no cursor survives dropping the lock: they are visited in one hold. Each
 * holds at least one page of the budget, which bounds their number. */
static void
walk_large(struct slab_class *cls, uint32_t now, cache_view_fn fn, void *arg)
{
    for (unsigned seg = 0; seg < LRU_SEGS; seg++)
        for (const struct item *it = cls->lru[seg].head; it != NULL; it = item_at(it->next)) {
            struct cache_item_view v;
            item_view(it, now, &v);
            if (!v.dead)
                (void)fn(&v, arg);
        }
}

bool
cache_walk_step(struct cache_walk *w, unsigned budget, cache_view_fn fn, void *arg)
{
    uint32_t now = clock_now();
    while (!w->done && budget > 0) {
        if (w->cls >= cache.nclasses) {
            w->done = true;
            break;
        }
        if (!(w->classes & (UINT64_C(1) << w->cls))) {
            w->cls++;
            w->chunk = 0;
            continue;
        }
        struct slab_class *cls = &cache.classes[w->cls];
        pthread_mutex_lock(&cls->lock);
        if (cls->large) {
            walk_large(cls, now, fn, arg);
            budget = budget > 64 ? budget - 64 : 0;
            pthread_mutex_unlock(&cls->lock);
            w->cls++;
            w->chunk = 0;
            continue;
        }
        uint64_t carved = cls->npages ? (cls->npages - 1) * cls->perslab + cls->cur_carved : 0;
        while (w->chunk < carved && budget > 0) {
            uint64_t c = w->chunk++;
            budget--;
            const struct item *it = (const struct item *)(cls->pages[c / cls->perslab] +
                                                          (c % cls->perslab) * cls->size);
            if (!item_has(it, ITEM_LINKED))
                continue;
            struct cache_item_view v;
            item_view(it, now, &v);
            if (!v.dead)
                (void)fn(&v, arg);
        }
        bool class_done = w->chunk >= carved;
        pthread_mutex_unlock(&cls->lock);
        if (class_done) {
            w->cls++;
            w->chunk = 0;
        }
    }
    return !w->done;
}

/* --- run-time knobs ------------------------------------------------------ */

void
cache_lru_get(struct cache_lru_tuning *out)
{
    pthread_mutex_lock(&cache.lru_lock);
    *out = cache.lru;
    pthread_mutex_unlock(&cache.lru_lock);
}

void
cache_lru_set(const struct cache_lru_tuning *in)
{
    pthread_mutex_lock(&cache.lru_lock);
    cache.lru = *in;
    atomic_store(&cache.lru_segmented, in->segmented);
    atomic_store(&cache.lru_temp, in->temp_lru);
    atomic_store(&cache.lru_temp_ttl, in->temp_ttl);
    atomic_store(&cache.lru_hot_pct, in->hot_pct);
    atomic_store(&cache.lru_warm_pct, in->warm_pct);
    pthread_mutex_unlock(&cache.lru_lock);
}

bool
cache_maintainer(void)
{
    return cache.opts.lru_maintainer;
}

bool
cache_set_mem_limit(uint64_t bytes)
{
    if (bytes / cache.opts.page_size == 0)
        return false;
    slab_set_mem_max(bytes);
    atomic_store(&cache.mem_lowered, atomic_load(&cache.mem_used) > atomic_load(&cache.mem_max));
    atomic_store(&cache.mem_limit, bytes);
    return true;
}

void
memlimit_step(void)
{
    if (!atomic_load_explicit(&cache.mem_lowered, memory_order_relaxed))
        return;
    if (atomic_load(&cache.mem_used) <= atomic_load(&cache.mem_max)) {
        atomic_store(&cache.mem_lowered, false);
        return;
    }
    /* memcached gives memory back after a lowered limit only with page
     * moves and automove on; a move already running answers RUNNING, and
     * the next step asks again. */
    if (!cache_slab_reassign_enabled() || cache_slab_automove() == 0)
        return;
    if (cache_slabs_reassign(-1, 0) == CACHE_REASSIGN_NOSPARE)
        (void)cache_slabs_reassign((int)cache.large_id + 1, 0); /* large items give bytes */
}

void
cache_set_evict_hook(cache_evict_fn fn)
{
    atomic_store_explicit(&cache.evict_hook, fn, memory_order_release);
}
