/* verify: a full consistency check of the cache's structures, for tests and
 * debugging. It stops the world class by class, so never call it on a
 * serving path. */
#include "cache/cache_internal.h"

#include <inttypes.h>
#include <stdio.h>

bool
cache_verify(char *err, size_t errlen)
{
    uint64_t linked_total = 0;
    for (unsigned c = 0; c < cache.nclasses; c++) {
        struct slab_class *cls = &cache.classes[c];
        pthread_mutex_lock(&cls->lock);
        uint64_t n = 0, bytes = 0;
        bool ok = true;
        for (unsigned seg = 0; seg < LRU_SEGS && ok; seg++) {
            uint64_t in_seg = 0;
            struct item *prev = NULL;
            for (struct item *it = cls->lru[seg].head; it != NULL; prev = it, it = it->next) {
                in_seg++;
                bytes += item_size(it);
                unsigned refs = atomic_load(&it->refcount);
                if (it->prev != prev || item_seg(it) != seg || !item_has(it, ITEM_LINKED)
                    || it->clsid != c || refs != 1) {
                    snprintf(err, errlen, "class %u seg %u: item %.*s links/state/refcount(%u) wrong",
                             c, seg, it->nkey, it->data, refs);
                    ok = false;
                    break;
                }
            }
            if (ok && (in_seg != cls->lru[seg].count || cls->lru[seg].tail != prev)) {
                snprintf(err, errlen, "class %u seg %u: count %" PRIu64 " but %" PRIu64 " listed",
                         c, seg, cls->lru[seg].count, in_seg);
                ok = false;
            }
            n += in_seg;
        }
        if (ok && (n != cls->linked || bytes != cls->bytes)) {
            snprintf(err, errlen, "class %u: linked %" PRIu64 "/%" PRIu64 " bytes %" PRIu64 "/%" PRIu64,
                     c, cls->linked, n, cls->bytes, bytes);
            ok = false;
        }
        linked_total += n;
        pthread_mutex_unlock(&cls->lock);
        if (!ok)
            return false;
    }
    (void)linked_total;
    return true;
}
