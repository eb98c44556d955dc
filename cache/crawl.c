/* crawl: memcached's LRU crawler on demand (`lru_crawler crawl <classes>`).
 * A request names classes; the maintenance thread then walks their pages a
 * bounded batch at a time (as the background reclaimer does) and frees the
 * expired and flushed items it meets, counted as crawler_reclaimed and
 * crawler_items_checked. Invariant: one crawl at a time (another request is
 * refused as busy), and the walk holds a class lock for one batch only. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <string.h>
#include <time.h>

#define CRAWL_BATCH 4096
/* memcached sleeps lru_crawler_sleep microseconds after every this many. */
#define CRAWL_PER_SLEEP 1000

static struct {
    pthread_mutex_t lock;       /* guards all but the counters' atomics */
    bool enabled;
    bool running;
    uint64_t classes;           /* the running crawl's classes, bit n: id n + 1 */
    unsigned cls;               /* cursor: class index, then chunk */
    uint64_t chunk;
    uint64_t checked_in_class;  /* toward tocrawl */
    uint32_t sleep_us, tocrawl;
    uint64_t starts;
} crawler = { .lock = PTHREAD_MUTEX_INITIALIZER };

void
crawl_setup(void)
{
    pthread_mutex_lock(&crawler.lock);
    crawler.enabled = cache.opts.lru_crawler;
    crawler.running = false;
    crawler.classes = 0;
    crawler.starts = 0;
    crawler.sleep_us = (uint32_t)cache.opts.lru_crawler_sleep;
    crawler.tocrawl = cache.opts.lru_crawler_tocrawl;
    pthread_mutex_unlock(&crawler.lock);
}

enum cache_crawl_result
cache_crawl(uint64_t classes)
{
    enum cache_crawl_result r = CACHE_CRAWL_OK;
    pthread_mutex_lock(&crawler.lock);
    if (!crawler.enabled) {
        r = CACHE_CRAWL_DISABLED;
    } else if (crawler.running) {
        r = CACHE_CRAWL_RUNNING;
    } else if (classes == 0) {
        r = CACHE_CRAWL_NONE;
    } else {
        crawler.running = true;
        crawler.classes = classes;
        crawler.cls = 0;
        crawler.chunk = 0;
        crawler.checked_in_class = 0;
        crawler.starts++;
    }
    pthread_mutex_unlock(&crawler.lock);
    return r;
}

bool
cache_crawler_set(bool enabled)
{
    bool ok = true;
    pthread_mutex_lock(&crawler.lock);
    if (enabled && crawler.enabled)
        ok = false;
    crawler.enabled = enabled;
    if (!enabled)
        crawler.running = false; /* a crawl in progress stops where it is */
    pthread_mutex_unlock(&crawler.lock);
    /* Its steps run on the maintenance thread, which may not be running. */
    if (ok && enabled && !cache.opts.manual && !maint_start()) {
        pthread_mutex_lock(&crawler.lock);
        crawler.enabled = false;
        pthread_mutex_unlock(&crawler.lock);
        ok = false;
    }
    return ok;
}

void
cache_crawler_tune(uint32_t sleep_us, uint32_t tocrawl)
{
    pthread_mutex_lock(&crawler.lock);
    crawler.sleep_us = sleep_us;
    crawler.tocrawl = tocrawl;
    pthread_mutex_unlock(&crawler.lock);
}

void
cache_crawler_status(struct cache_crawler_status *out)
{
    pthread_mutex_lock(&crawler.lock);
    out->enabled = crawler.enabled;
    out->running = crawler.running;
    out->starts = crawler.starts;
    out->sleep_us = crawler.sleep_us;
    out->tocrawl = crawler.tocrawl;
    pthread_mutex_unlock(&crawler.lock);
}

/* Class and key locks held: frees it if dead (memcached's
 * crawler_expired_eval: expired_unfetched counts expired items only). */
static void
crawl_eval(struct item *it, uint64_t hv, uint32_t now)
{
    if (atomic_load(&it->refcount) != 1)
        return;
    enum item_death death = item_death(it, now);
    if (death == ITEM_ALIVE)
        return;
    STAT_INC(item_clsid(it), crawler_reclaimed);
    if (death == ITEM_EXPIRED && !item_has(it, ITEM_FETCHED))
        STAT_INC(item_clsid(it), expired_unfetched);
    item_reclaim_locked(it, hv);
}

/* One batch of the current class; the crawler lock is not held. Returns
 * the number of items it looked at, and whether the class is done. */
static uint64_t
crawl_batch(unsigned id, uint64_t from, uint64_t limit, uint64_t *next, bool *class_done)
{
    struct slab_class *cls = &cache.classes[id];
    uint32_t now = clock_now();
    uint64_t checked = 0;
    pthread_mutex_lock(&cls->lock);
    if (cls->large) {
        for (unsigned seg = 0; seg < LRU_SEGS; seg++) {
            struct item *it = cls->lru[seg].tail;
            while (it != NULL && checked < limit) {
                struct item *prev = item_at(it->prev);
                uint64_t hv = item_hash_key(it->data, it->nkey);
                checked++;
                if (ht_trylock(hv)) {
                    crawl_eval(it, hv, now);
                    ht_unlock(hv);
                }
                it = prev;
            }
        }
        *class_done = true;
    } else {
        uint64_t carved = cls->npages ? (cls->npages - 1) * cls->perslab + cls->cur_carved : 0;
        uint64_t c = from;
        for (; c < carved && checked < limit; c++) {
            struct item *it = (struct item *)(cls->pages[c / cls->perslab] + (c % cls->perslab) * cls->size);
            if (!item_has(it, ITEM_LINKED))
                continue;
            checked++;
            uint64_t hv = item_hash_key(it->data, it->nkey);
            /* Class lock held: the stripe may only be tried (lock order). */
            if (!ht_trylock(hv))
                continue;
            crawl_eval(it, hv, now);
            ht_unlock(hv);
        }
        *next = c;
        *class_done = c >= carved;
    }
    pthread_mutex_unlock(&cls->lock);
    if (checked > 0)
        stats_add(id, offsetof(struct cache_op_stats, crawler_items_checked), checked);
    return checked;
}

bool
crawl_step_requested(void)
{
    pthread_mutex_lock(&crawler.lock);
    while (crawler.running && crawler.cls < cache.nclasses &&
           !(crawler.classes & (UINT64_C(1) << crawler.cls)))
        crawler.cls++;
    if (crawler.running && crawler.cls >= cache.nclasses)
        crawler.running = false;
    if (!crawler.running) {
        pthread_mutex_unlock(&crawler.lock);
        return false;
    }
    unsigned id = crawler.cls;
    uint64_t from = crawler.chunk;
    uint64_t limit = CRAWL_BATCH;
    if (crawler.tocrawl != 0 && crawler.tocrawl - crawler.checked_in_class < limit)
        limit = crawler.tocrawl - crawler.checked_in_class;
    uint32_t sleep_us = crawler.sleep_us;
    pthread_mutex_unlock(&crawler.lock);

    uint64_t next = from;
    bool class_done = false;
    uint64_t checked = crawl_batch(id, from, limit, &next, &class_done);

    pthread_mutex_lock(&crawler.lock);
    if (crawler.running && crawler.cls == id && crawler.chunk == from) {
        crawler.checked_in_class += checked;
        if (class_done || (crawler.tocrawl != 0 && crawler.checked_in_class >= crawler.tocrawl)) {
            crawler.cls++;
            crawler.chunk = 0;
            crawler.checked_in_class = 0;
        } else {
            crawler.chunk = next;
        }
    }
    bool running = crawler.running;
    pthread_mutex_unlock(&crawler.lock);
    if (sleep_us > 0 && checked >= CRAWL_PER_SLEEP) {
        uint64_t ns = (uint64_t)sleep_us * 1000 * (checked / CRAWL_PER_SLEEP);
        struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000) };
        nanosleep(&ts, NULL);
    }
    return running;
}
