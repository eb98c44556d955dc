/* verify: a full consistency check of the cache's structures, for tests and
 * debugging. It stops the world — the mover, then every class, then the
 * spare pages — so never call it on a serving path. It accounts for every
 * chunk of every page (linked, free, claimed by a page move, or never
 * carved), for every page (in one class, or spare, never two), and for the
 * budget (pages held plus large items' charges). */
#include "cache/cache_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static bool
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

static bool
check_lists(unsigned c, char *err, size_t errlen)
{
    struct slab_class *cls = &cache.classes[c];
    uint64_t n = 0, bytes = 0, charge = 0;
    for (unsigned seg = 0; seg < LRU_SEGS; seg++) {
        uint64_t in_seg = 0;
        struct item *prev = NULL;
        for (struct item *it = cls->lru[seg].head; it != NULL; prev = it, it = item_at(it->next)) {
            in_seg++;
            bytes += item_size(it);
            charge += slab_large_charge(item_size(it));
            unsigned refs = atomic_load(&it->refcount);
            if (it->prev != item_ref(prev) || item_seg(it) != seg || !item_has(it, ITEM_LINKED)
                || item_clsid(it) != c || refs != 1 || item_at(item_ref(it)) != it)
                return fail(err, errlen, "class %u seg %u: item %.*s links/state/refcount(%u) wrong",
                            c, seg, it->nkey, it->data, refs);
        }
        if (in_seg != cls->lru[seg].count || cls->lru[seg].tail != prev)
            return fail(err, errlen, "class %u seg %u: count %" PRIu64 " but %" PRIu64 " listed",
                        c, seg, cls->lru[seg].count, in_seg);
        n += in_seg;
    }
    if (n != cls->linked || bytes != cls->bytes)
        return fail(err, errlen, "class %u: linked %" PRIu64 "/%" PRIu64 " bytes %" PRIu64 "/%" PRIu64,
                    c, cls->linked, n, cls->bytes, bytes);
    if (cls->large && charge != cls->large_bytes)
        return fail(err, errlen, "large class: charged %" PRIu64 " for items of %" PRIu64,
                    cls->large_bytes, charge);
    return true;
}

/* Which page of the class holds p at a chunk boundary, or -1. */
static int64_t
page_of(const struct slab_class *cls, const void *p)
{
    for (uint64_t i = 0; i < cls->npages; i++) {
        const char *pg = cls->pages[i];
        if ((const char *)p >= pg && (const char *)p < pg + (size_t)cls->perslab * cls->size)
            return ((const char *)p - pg) % cls->size == 0 ? (int64_t)i : -1;
    }
    return -1;
}

static bool
check_chunks(unsigned c, char *err, size_t errlen)
{
    struct slab_class *cls = &cache.classes[c];
    uint64_t linked = 0, free_seen = 0, claimed = 0;
    for (uint64_t p = 0; p < cls->npages; p++) {
        bool last = p + 1 == cls->npages;
        uint32_t carved = last ? cls->cur_carved : cls->perslab;
        for (uint32_t k = 0; k < cls->perslab; k++) {
            const struct item *it = (const struct item *)(cls->pages[p] + (size_t)k * cls->size);
            unsigned refs = atomic_load(&it->refcount);
            if (k >= carved) {
                if (refs != 0 || item_meta(it) != 0)
                    return fail(err, errlen, "class %u page %" PRIu64 ": uncarved chunk %u in use", c, p, k);
                continue;
            }
            if (refs == 0 && it->nbytes == CHUNK_FREE) {
                free_seen++;
            } else if (refs == 0 && it->nbytes == CHUNK_CLAIMED) {
                claimed++;
            } else if (refs >= 1 && item_has(it, ITEM_LINKED)) {
                linked++;
            } else {
                return fail(err, errlen, "class %u page %" PRIu64 " chunk %u: refcount %u, not linked, nbytes %u",
                            c, p, k, refs, it->nbytes);
            }
        }
    }
    uint64_t listed = 0;
    const struct item *prev = NULL;
    for (const struct item *it = cls->free_list; it != NULL; prev = it, it = item_at(it->h_next)) {
        if (++listed > free_seen)
            return fail(err, errlen, "class %u: free list longer than the free chunks (%" PRIu64 ")", c, free_seen);
        if (it->prev != item_ref(prev) || it->nbytes != CHUNK_FREE || atomic_load(&it->refcount) != 0)
            return fail(err, errlen, "class %u: free list entry %" PRIu64 " inconsistent", c, listed);
        if (page_of(cls, it) < 0)
            return fail(err, errlen, "class %u: free chunk outside the class's pages", c);
        for (unsigned s = 0; s < MOVE_SLOTS; s++)
            if (cls->vacating[s] != NULL && (const char *)it >= cls->vacating[s] &&
                (const char *)it < cls->vacating[s] + cache.opts.page_size)
                return fail(err, errlen, "class %u: free chunk on a page being emptied", c);
    }
    if (listed != cls->free_count || listed != free_seen)
        return fail(err, errlen, "class %u: free_count %" PRIu64 ", listed %" PRIu64 ", free chunks %" PRIu64,
                    c, cls->free_count, listed, free_seen);
    if (claimed != cls->claimed)
        return fail(err, errlen, "class %u: claimed %" PRIu64 " but %" PRIu64 " seen", c, cls->claimed, claimed);
    if (linked != cls->linked)
        return fail(err, errlen, "class %u: %" PRIu64 " linked chunks, %" PRIu64 " linked items", c, linked, cls->linked);
    for (unsigned s = 0; s < MOVE_SLOTS; s++)
        if (cls->vacating[s] != NULL && slab_page_index_locked(c, cls->vacating[s]) < 0)
            return fail(err, errlen, "class %u: page being emptied is not the class's", c);
    return true;
}

/* Every page in one place only; every arena page handed out accounted for. */
static bool
check_pages(char *err, size_t errlen, uint64_t held)
{
    uint8_t *seen = calloc(cache.arena_pages, 1);
    if (seen == NULL)
        return true; /* cannot check without memory; not an inconsistency */
    bool ok = true;
    for (unsigned c = 0; c < cache.nclasses && ok; c++) {
        const struct slab_class *cls = &cache.classes[c];
        for (uint64_t p = 0; p < cls->npages && ok; p++) {
            uint64_t i = (uint64_t)(cls->pages[p] - cache.arena) / cache.opts.page_size;
            if (cls->pages[p] < cache.arena || i >= cache.arena_next || seen[i]++)
                ok = fail(err, errlen, "class %u: page %" PRIu64 " outside the arena or held twice", c, p);
        }
    }
    for (uint64_t s = 0; s < cache.nspare && ok; s++) {
        uint64_t i = (uint64_t)(cache.spare[s] - cache.arena) / cache.opts.page_size;
        if (cache.spare[s] < cache.arena || i >= cache.arena_next || seen[i]++)
            ok = fail(err, errlen, "spare page %" PRIu64 " outside the arena or also held", s);
        else if (!cache.spare_bits[i])
            ok = fail(err, errlen, "spare page %" PRIu64 " not marked spare", s);
    }
    uint64_t marked = 0;
    for (uint64_t i = 0; i < cache.arena_pages; i++)
        marked += cache.spare_bits[i] != 0;
    if (ok && marked != cache.nspare)
        ok = fail(err, errlen, "%" PRIu64 " pages marked spare, %" PRIu64 " listed", marked, cache.nspare);
    if (ok && held + cache.nspare != cache.arena_next)
        ok = fail(err, errlen, "%" PRIu64 " arena pages out, %" PRIu64 " held and %" PRIu64 " spare",
                  cache.arena_next, held, cache.nspare);
    free(seen);
    return ok;
}

bool
cache_verify(char *err, size_t errlen)
{
    mover_lock();
    for (unsigned c = 0; c < cache.nclasses; c++)
        pthread_mutex_lock(&cache.classes[c].lock);
    pthread_mutex_lock(&cache.spare_lock);
    bool ok = true;
    uint64_t held = 0, large = 0;
    for (unsigned c = 0; c < cache.nclasses && ok; c++) {
        ok = check_lists(c, err, errlen);
        if (ok && !cache.classes[c].large)
            ok = check_chunks(c, err, errlen);
        held += cache.classes[c].npages;
        large += cache.classes[c].large_bytes;
    }
    if (ok)
        ok = check_pages(err, errlen, held);
    uint64_t used = atomic_load(&cache.mem_used);
    if (ok && used != held * cache.opts.page_size + large)
        ok = fail(err, errlen, "budget: %" PRIu64 " charged, %" PRIu64 " pages held and %" PRIu64 " large bytes",
                  used, held, large);
    if (ok && used > cache.mem_max && !atomic_load(&cache.mem_lowered))
        ok = fail(err, errlen, "budget: %" PRIu64 " charged over the limit %" PRIu64, used, cache.mem_max);
    pthread_mutex_unlock(&cache.spare_lock);
    for (unsigned c = cache.nclasses; c-- > 0;)
        pthread_mutex_unlock(&cache.classes[c].lock);
    mover_unlock();
    return ok;
}
