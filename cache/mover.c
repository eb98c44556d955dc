/* mover: moves slab pages between classes (memcached's slab rebalancer), so
 * a cache whose mix of item sizes shifts never calcifies. A page leaves its
 * class only once every chunk on it is claimed: free chunks are cut from the
 * free list, idle items are reclaimed if dead, else rescued (copied into a
 * free chunk elsewhere in the class) or evicted, and items someone still
 * references are waited for — never freed under a reader. Then the page
 * goes to another class (zeroed) or back to the budget, its memory returned.
 *
 * Two users. A store that finds no room in its class and nothing to evict
 * there takes a page at once (mover_make_room): from the budget, else from
 * the class whose tail is oldest; it tries a few pages for a few passes and
 * skips any it cannot empty in that time (an item pinned by a slow reply).
 * The maintenance thread carries out `slabs reassign` and automove requests
 * a pass per step, waiting for referenced items as memcached does, and after
 * a while unlinking them so they are freed when their last reader lets go.
 *
 * The mover lock serialises every page move: a page out of a class and not
 * yet in another (or back in the budget) exists only under it. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* A store waits this many passes over a page for busy chunks to settle
 * (releasers finish, stripe holders move on) before it tries another page;
 * it tries this many pages per class and this many classes per round. */
#define NOW_PASSES 16
#define NOW_PAGES 3
#define NOW_SCAN 8          /* pages looked at for one nobody is using */
#define NOW_VICTIMS 4
#define NOW_ROUNDS 4
/* A background move unlinks items still referenced after this many passes
 * (about a second at the maintenance thread's pace) and gives up after this
 * many (about five minutes), putting the claimed chunks back. */
#define BG_BUSY_DELETE_PASSES 10
#define BG_ABANDON_PASSES 3000
/* Chunks a pass handles per hold of the class lock. */
#define PASS_SLICE 256
/* Evictions the large class may make to free one request's bytes. */
#define LARGE_EVICT_MAX 256
/* Passes a `slabs reassign` runs inline when no maintenance thread runs. */
#define INLINE_PASSES 64

struct vacate {
    unsigned id;                    /* source class index */
    unsigned slot;                  /* MOVE_SLOT_* */
    char *page;
    bool evict;                     /* may evict live items to empty the page */
    bool busy_delete;               /* unlink referenced items */
    const struct alloc_hold *hold;
    uint32_t now;
    /* Met a live idle item it may neither rescue (no free chunk in the
     * class) nor evict (-M): passes that wait for readers cannot empty the
     * page, so a store gives it up at once instead of spinning on it. */
    bool stuck;
};

enum mover_counter {
#define MOVER_COUNTER_ENUM(name) MC_##name,
    CACHE_MOVER_STATS(MOVER_COUNTER_ENUM)
#undef MOVER_COUNTER_ENUM
    MC_COUNT
};

static struct {
    pthread_mutex_t lock;
    /* The requested move (lock). */
    _Atomic bool active;
    int src, dst;                   /* class indexes; dst MOVER_POOL */
    bool started;
    unsigned passes;
    struct vacate v;
    _Atomic unsigned pick_cursor;   /* `slabs reassign -1`: round robin */
    _Atomic uint64_t counters[MC_COUNT];
    uint64_t baseline[MC_COUNT];
} mv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
count(enum mover_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&mv.counters[c], n, memory_order_relaxed);
}

void
mover_setup(void)
{
    atomic_store(&mv.active, false);
    mv.started = false;
    atomic_store(&mv.pick_cursor, 0);
    for (unsigned c = 0; c < MC_COUNT; c++) {
        atomic_store(&mv.counters[c], 0);
        mv.baseline[c] = 0;
    }
}

void
mover_teardown(void)
{
    atomic_store(&mv.active, false);
    mv.started = false;
}

void
mover_lock(void)
{
    pthread_mutex_lock(&mv.lock);
}

void
mover_unlock(void)
{
    pthread_mutex_unlock(&mv.lock);
}

bool
mover_running(void)
{
    return atomic_load(&mv.active);
}

void
mover_stats(struct cache_mover_stats *out)
{
    uint64_t *o = (uint64_t *)out;
    pthread_mutex_lock(&mv.lock);
    for (unsigned c = 0; c < MC_COUNT; c++)
        o[c] = atomic_load(&mv.counters[c]) - mv.baseline[c];
    pthread_mutex_unlock(&mv.lock);
}

void
mover_stats_reset(void)
{
    pthread_mutex_lock(&mv.lock);
    for (unsigned c = 0; c < MC_COUNT; c++)
        mv.baseline[c] = atomic_load(&mv.counters[c]);
    pthread_mutex_unlock(&mv.lock);
}

/* --- emptying one page ------------------------------------------------------ */

static bool
in_page(const char *page, const void *p)
{
    return (const char *)p >= page && (const char *)p < page + cache.opts.page_size;
}

static bool
in_any_vacating(const struct slab_class *cls, const void *p)
{
    for (unsigned s = 0; s < MOVE_SLOTS; s++)
        if (cls->vacating[s] != NULL && in_page(cls->vacating[s], p))
            return true;
    return false;
}

static struct item *
chunk_at(const struct slab_class *cls, char *page, uint32_t c)
{
    return (struct item *)(page + (size_t)c * cls->size);
}

/* Marks the page as being emptied and claims at once every chunk on it
 * that holds nothing, so no store can take one while the page is worked on
 * (chunks freed later are claimed by slab_put_locked). Cheap: no hashing. */
static void
vacate_begin_locked(struct vacate *v)
{
    struct slab_class *cls = &cache.classes[v->id];
    cls->vacating[v->slot] = v->page;
    /* Chunks never carved from the carving page are free by definition. */
    if (cls->npages > 0 && cls->pages[cls->npages - 1] == v->page) {
        while (cls->cur_carved < cls->perslab) {
            struct item *it = chunk_at(cls, v->page, cls->cur_carved++);
            it->cls = (uint8_t)v->id;
            slab_claim_locked(cls, it);
        }
    }
    for (uint32_t c = 0; c < cls->perslab; c++) {
        struct item *it = chunk_at(cls, v->page, c);
        if (atomic_load(&it->refcount) == 0 && it->nbytes == CHUNK_FREE) {
            slab_free_cut_locked(cls, it);
            slab_claim_locked(cls, it);
        }
    }
}

/* A free chunk of the class outside every page being emptied, or NULL.
 * Free chunks inside one are claimed on the way (memcached's inline
 * reclaim). */
static struct item *
spare_chunk_locked(struct slab_class *cls)
{
    while (cls->free_list != NULL) {
        struct item *f = cls->free_list;
        slab_free_cut_locked(cls, f);
        if (!in_any_vacating(cls, f))
            return f;
        slab_claim_locked(cls, f);
        count(MC_slab_reassign_inline_reclaim, 1);
    }
    if (cls->npages > 0 && cls->cur_carved < cls->perslab &&
        !in_any_vacating(cls, cls->pages[cls->npages - 1])) {
        struct item *it = chunk_at(cls, cls->pages[cls->npages - 1], cls->cur_carved++);
        it->cls = (uint8_t)(cls - cache.classes);
        return it;
    }
    return NULL;
}

/* Copies an idle linked item into a spare chunk of its class and puts the
 * copy in its place in the table and its list; both locks held, the table's
 * reference the only one, so nobody can be reading it. */
static bool
rescue_locked(struct slab_class *cls, struct item *old, uint64_t hv)
{
    struct item *fresh = spare_chunk_locked(cls);
    if (fresh == NULL)
        return false;
    memcpy(fresh, old, item_size(old));
    atomic_store_explicit(&fresh->meta, item_meta(old), memory_order_relaxed);
    atomic_store_explicit(&fresh->refcount, 1, memory_order_relaxed); /* the table's */
    ht_replace(old, fresh, hv);
    lru_replace_locked(old, fresh);
    slab_claim_locked(cls, old);
    return true;
}

/* Takes a referenced item out of the table and its list, as a delete would;
 * its memory is claimed when the last reader releases it. */
static void
unlink_referenced_locked(struct item *it, uint64_t hv)
{
    ht_remove(it, hv);
    lru_remove_locked(it);
    item_clear_bits(it, ITEM_LINKED);
    ht_count(-1);
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) == 1)
        slab_put_locked(it); /* the readers left meanwhile */
}

/* Frees a linked chunk of the page: true when it is claimed now. */
static bool
move_linked_locked(struct vacate *v, struct slab_class *cls, struct item *it)
{
    uint64_t hv = item_hash_key(it->data, it->nkey);
    /* The allocating thread already holds this stripe: work under its lock,
     * but leave alone the item it is reading. */
    bool held = v->hold != NULL && ht_same_stripe(v->hold->hv, hv);
    if (held && it == v->hold->keep)
        return false;
    if (!held && !ht_trylock(hv))
        return false;
    bool done = true;
    /* With the stripe held nobody takes a new reference; LINKED cannot
     * change while the class lock is held. */
    if (atomic_load(&it->refcount) == 1) {
        if (item_reclaim_if_dead_locked(it, hv, v->now)) {
            /* dead anyway: counted as reclaimed */
        } else if (rescue_locked(cls, it, hv)) {
            count(MC_slab_reassign_rescues, 1);
        } else if (v->evict) {
            count(MC_slab_reassign_evictions_nomem, 1);
            item_reclaim_locked(it, hv);
        } else {
            v->stuck = true;
            done = false;
        }
    } else {
        if (v->busy_delete) {
            count(MC_slab_reassign_busy_deletes, 1);
            unlink_referenced_locked(it, hv);
        }
        done = false;
    }
    if (!held)
        ht_unlock(hv);
    return done;
}

/* One pass over the page: claims what it can. Returns the chunks still
 * busy (0: every chunk is claimed and the page can leave). The class lock
 * is let go now and then, so stores into the class wait for a slice of
 * the page, not all of it: every chunk's state is whole between two. */
static unsigned
vacate_pass_locked(struct vacate *v)
{
    struct slab_class *cls = &cache.classes[v->id];
    unsigned busy = 0;
    for (uint32_t c = 0; c < cls->perslab; c++) {
        if (c > 0 && c % PASS_SLICE == 0) {
            pthread_mutex_unlock(&cls->lock);
            pthread_mutex_lock(&cls->lock);
        }
        struct item *it = chunk_at(cls, v->page, c);
        if (atomic_load(&it->refcount) == 0) {
            if (it->nbytes == CHUNK_CLAIMED)
                continue;
            if (it->nbytes == CHUNK_FREE) {
                slab_free_cut_locked(cls, it);
                slab_claim_locked(cls, it);
                continue;
            }
            busy++; /* released, on its way to slab_put_locked, which claims it */
            continue;
        }
        /* Being filled by a store, or unlinked and still being sent: it
         * comes back through slab_put_locked when released. */
        if (!item_has(it, ITEM_LINKED) || !move_linked_locked(v, cls, it))
            busy++;
        /* A store stops at the first item nothing will move (the background
         * mover goes on: what it claims now is less to do later). */
        if (v->stuck && v->slot == MOVE_SLOT_NOW)
            return busy;
    }
    return busy;
}

/* Puts every claimed chunk of an abandoned page back on the free list. */
static void
vacate_abandon_locked(struct vacate *v)
{
    struct slab_class *cls = &cache.classes[v->id];
    cls->vacating[v->slot] = NULL;
    for (uint32_t c = 0; c < cls->perslab; c++) {
        struct item *it = chunk_at(cls, v->page, c);
        if (atomic_load(&it->refcount) == 0 && it->nbytes == CHUNK_CLAIMED) {
            cls->claimed--;
            it->cls = (uint8_t)v->id;
            slab_free_push_locked(cls, it);
        }
    }
}

static void
vacate_finish_locked(struct vacate *v)
{
    cache.classes[v->id].vacating[v->slot] = NULL;
    slab_page_remove_locked(v->id, v->page);
}

/* A page of class id to empty, not already being emptied; the cursor
 * rotates so successive moves take different pages. Class lock held. */
static char *
pick_page_locked(unsigned id)
{
    struct slab_class *cls = &cache.classes[id];
    for (uint64_t n = 0; n < cls->npages; n++) {
        char *page = cls->pages[cls->victim_cursor++ % cls->npages];
        if (cls->vacating[MOVE_SLOT_BG] != page && cls->vacating[MOVE_SLOT_NOW] != page)
            return page;
    }
    return NULL;
}

/* Hands an empty page to class dst, or back to the budget (MOVER_POOL).
 * Mover lock held, no class lock. */
static void
deliver(int dst, char *page)
{
    if (dst == MOVER_POOL) {
        slab_page_put(page);
        return;
    }
    /* Another class carves it with other chunk sizes: stale headers must
     * not look like items to the reclaimer. */
    memset(page, 0, cache.opts.page_size);
    struct slab_class *cls = &cache.classes[dst];
    pthread_mutex_lock(&cls->lock);
    bool added = slab_page_add_locked((unsigned)dst, page);
    pthread_mutex_unlock(&cls->lock);
    if (!added)
        slab_page_put(page);
}

/* Chunks of the page someone is using right now: being filled, being sent,
 * or read by a reply. A store waiting for a page skips such a page rather
 * than evict its other items and then find it cannot finish. */
static unsigned
busy_chunks_locked(const struct slab_class *cls, char *page, const struct alloc_hold *hold)
{
    unsigned busy = 0;
    for (uint32_t c = 0; c < cls->perslab; c++) {
        struct item *it = chunk_at(cls, page, c);
        unsigned refs = atomic_load(&it->refcount);
        if (refs >= 2 || (refs == 1 && !item_has(it, ITEM_LINKED)) ||
            (hold != NULL && it == hold->keep))
            busy++;
    }
    return busy;
}

/* Empties one page of class id for a store that is waiting, and takes it
 * out of the class. Mover lock held. NULL when no page could be emptied
 * within the bounds. */
static char *
vacate_now(unsigned id, const struct alloc_hold *hold)
{
    struct slab_class *cls = &cache.classes[id];
    for (unsigned tries = 0; tries < NOW_PAGES; tries++) {
        pthread_mutex_lock(&cls->lock);
        /* The first page nobody is using among a few, else the first seen. */
        char *page = NULL;
        for (unsigned scan = 0; scan < NOW_SCAN; scan++) {
            char *p = pick_page_locked(id);
            if (p == NULL || p == page)
                break;
            if (page == NULL)
                page = p;
            if (busy_chunks_locked(cls, p, hold) == 0) {
                page = p;
                break;
            }
        }
        if (page == NULL) {
            pthread_mutex_unlock(&cls->lock);
            return NULL;
        }
        struct vacate v = {
            .id = id, .slot = MOVE_SLOT_NOW, .page = page,
            .evict = cache.opts.evict, .busy_delete = false, .hold = hold, .now = clock_now(),
        };
        vacate_begin_locked(&v);
        unsigned busy = 0;
        for (unsigned pass = 0; pass < NOW_PASSES; pass++) {
            if (pass > 0) {
                /* Let releasers and stripe holders waiting on this lock through. */
                pthread_mutex_unlock(&cls->lock);
                sched_yield();
                pthread_mutex_lock(&cls->lock);
            }
            busy = vacate_pass_locked(&v);
            if (busy == 0) {
                vacate_finish_locked(&v);
                pthread_mutex_unlock(&cls->lock);
                return page;
            }
            if (v.stuck)
                break; /* waiting for readers would not help: another page */
        }
        count(MC_slab_reassign_busy_items, busy);
        vacate_abandon_locked(&v);
        pthread_mutex_unlock(&cls->lock);
    }
    return NULL;
}

/* --- taking room at once ------------------------------------------------------ */

static bool
budget_fits(uint64_t bytes)
{
    uint64_t used = atomic_load(&cache.mem_used);
    return bytes <= cache.mem_max && used <= cache.mem_max - bytes;
}

/* Evicts idle items from the large class's cold end until bytes fit in the
 * budget; mover lock held. True once they fit (nothing reserved). */
static bool
mover_evict_large_for(uint64_t bytes)
{
    struct slab_class *cls = &cache.classes[cache.large_id];
    pthread_mutex_lock(&cls->lock);
    bool fits = budget_fits(bytes);
    for (unsigned n = 0; !fits && n < LARGE_EVICT_MAX; n++) {
        if (!lru_reclaim_locked(cache.large_id))
            break;
        fits = budget_fits(bytes);
    }
    pthread_mutex_unlock(&cls->lock);
    return fits;
}

struct victim {
    unsigned id;
    bool spare;                 /* has a page beyond its last one */
    uint64_t stamp;             /* its tail's store stamp: smaller is older */
};

/* Classes that could give room to class dst, best first: those with a
 * spare page before those with only one, then the oldest tail first (a
 * class holding pages but no item at all comes first of all). */
static unsigned
rank_victims(unsigned dst, struct victim *out, unsigned max)
{
    struct victim all[CLASS_MAX];
    unsigned n = 0;
    for (unsigned c = 0; c < cache.nclasses; c++) {
        if (c == dst)
            continue;
        struct slab_class *cls = &cache.classes[c];
        pthread_mutex_lock(&cls->lock);
        uint64_t pages;
        if (cls->large) {
            pages = cls->linked > 0 ? (cls->large_bytes + cache.opts.page_size - 1) / cache.opts.page_size : 0;
        } else {
            pages = cls->npages - (cls->vacating[MOVE_SLOT_BG] != NULL ? 1 : 0);
        }
        if (pages > 0) {
            uint64_t stamp = cls->linked == 0 ? 0 : lru_tail_stamp_locked(c);
            all[n++] = (struct victim){ c, pages >= 2, stamp };
        }
        pthread_mutex_unlock(&cls->lock);
    }
    /* Insertion sort: at most CLASS_MAX entries. */
    for (unsigned i = 1; i < n; i++) {
        struct victim x = all[i];
        unsigned j = i;
        while (j > 0 && ((x.spare && !all[j - 1].spare) ||
                         (x.spare == all[j - 1].spare && x.stamp < all[j - 1].stamp))) {
            all[j] = all[j - 1];
            j--;
        }
        all[j] = x;
    }
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof(*out));
    return n;
}

/* A new page from the budget for class dst; mover lock held. */
static bool
grow_from_budget(unsigned dst)
{
    if (!slab_reserve(cache.opts.page_size))
        return false;
    char *page = slab_page_get();
    if (page == NULL) {
        slab_unreserve(cache.opts.page_size);
        return false;
    }
    struct slab_class *cls = &cache.classes[dst];
    pthread_mutex_lock(&cls->lock);
    bool added = slab_page_add_locked(dst, page);
    pthread_mutex_unlock(&cls->lock);
    if (!added)
        slab_page_put(page);
    return added;
}

bool
mover_make_room(unsigned id, size_t total, const struct alloc_hold *hold)
{
    bool large = cache.classes[id].large;
    uint64_t need = large ? slab_large_charge(total) : cache.opts.page_size;
    bool ok = false;
    /* A large item may need the budget of several pages. */
    unsigned rounds = NOW_ROUNDS + (unsigned)(need / cache.opts.page_size);
    pthread_mutex_lock(&mv.lock);
    for (unsigned round = 0; round < rounds && !ok; round++) {
        /* Someone may have freed budget (or moved a page to the pool) meanwhile. */
        if (large ? budget_fits(need) : grow_from_budget(id)) {
            ok = true;
            break;
        }
        struct victim vs[NOW_VICTIMS];
        unsigned n = rank_victims(id, vs, NOW_VICTIMS);
        bool progressed = false;
        for (unsigned i = 0; i < n && !progressed; i++) {
            if (vs[i].id == cache.large_id) {
                /* Large items free budget, not pages. */
                progressed = mover_evict_large_for(cache.opts.page_size) && grow_from_budget(id);
                if (progressed) {
                    count(MC_slabs_moved, 1);
                    count(MC_slabs_moved_at_once, 1);
                }
                ok = progressed;
                continue;
            }
            char *page = vacate_now(vs[i].id, hold);
            if (page == NULL)
                continue;
            progressed = true;
            count(MC_slabs_moved, 1);
            count(MC_slabs_moved_at_once, 1);
            deliver(large ? MOVER_POOL : (int)id, page);
            /* A large item may need more than one page's worth: go round. */
            ok = large ? budget_fits(need) : true;
        }
        if (!progressed)
            break;
    }
    pthread_mutex_unlock(&mv.lock);
    return ok;
}

/* --- requested and automatic moves ------------------------------------------- */

static uint64_t
class_pages(unsigned id)
{
    struct slab_class *cls = &cache.classes[id];
    pthread_mutex_lock(&cls->lock);
    uint64_t n = cls->npages;
    pthread_mutex_unlock(&cls->lock);
    return n;
}

/* Moves done on the spot: from the pool, or out of the large class (whose
 * items give budget, not pages). Mover lock held. */
static enum cache_reassign
move_at_once(int src, int dst)
{
    if (src == (int)cache.large_id && !mover_evict_large_for(cache.opts.page_size))
        return CACHE_REASSIGN_NOSPARE;
    if (dst == MOVER_POOL)
        return CACHE_REASSIGN_OK; /* the budget freed is the pool */
    if (!grow_from_budget((unsigned)dst))
        return CACHE_REASSIGN_NOSPARE;
    count(MC_slabs_moved, 1);
    return CACHE_REASSIGN_OK;
}

enum cache_reassign
mover_request(int src, int dst)
{
    if (dst == (int)cache.large_id)
        dst = MOVER_POOL; /* pages go to large items through the budget */
    if (src == dst)
        return CACHE_REASSIGN_SAME;
    pthread_mutex_lock(&mv.lock);
    enum cache_reassign r;
    if (atomic_load(&mv.active)) {
        r = CACHE_REASSIGN_RUNNING;
    } else if (src == MOVER_POOL || src == (int)cache.large_id) {
        r = move_at_once(src, dst);
    } else if (class_pages((unsigned)src) < 2) {
        r = CACHE_REASSIGN_NOSPARE;
    } else {
        mv.src = src;
        mv.dst = dst;
        mv.started = false;
        mv.passes = 0;
        atomic_store(&mv.active, true);
        r = CACHE_REASSIGN_OK;
    }
    pthread_mutex_unlock(&mv.lock);
    return r;
}

/* memcached's slabs_reassign_pick_any: the next class after the last pick
 * with a page to spare, other than dst. */
static int
pick_any(int dst)
{
    unsigned n = cache.large_id; /* slab classes only */
    for (unsigned tries = 0; tries < n; tries++) {
        unsigned c = atomic_fetch_add(&mv.pick_cursor, 1) % n;
        if ((int)c != dst && class_pages(c) >= 2)
            return (int)c;
    }
    return -2;
}

enum cache_reassign
mover_reassign(int src, int dst)
{
    if (!cache.opts.slab_reassign)
        return CACHE_REASSIGN_DISABLED;
    if (atomic_load(&mv.active))
        return CACHE_REASSIGN_RUNNING;
    if (src == dst)
        return CACHE_REASSIGN_SAME;
    /* memcached's ids: 0 the pool, 1 .. n the slab classes (not our large
     * class, which memcached does not have). Any int may come in. */
    int nslab = (int)cache.large_id;
    if (dst < 0 || dst > nslab || src < -1 || src > nslab)
        return CACHE_REASSIGN_BADCLASS;
    int d = dst - 1;
    int s = src == -1 ? pick_any(d) : src - 1;
    if (s < MOVER_POOL)
        return CACHE_REASSIGN_BADCLASS; /* nothing to pick */
    if (s == MOVER_POOL && slab_pool_pages() < 2)
        return CACHE_REASSIGN_NOSPARE;
    return mover_request(s, d);
}

bool
mover_step(void)
{
    pthread_mutex_lock(&mv.lock);
    if (!atomic_load(&mv.active)) {
        pthread_mutex_unlock(&mv.lock);
        return false;
    }
    struct slab_class *cls = &cache.classes[mv.src];
    pthread_mutex_lock(&cls->lock);
    if (!mv.started) {
        char *page = cls->npages >= 2 ? pick_page_locked((unsigned)mv.src) : NULL;
        if (page == NULL) {
            /* The class shrank since the request. */
            pthread_mutex_unlock(&cls->lock);
            atomic_store(&mv.active, false);
            pthread_mutex_unlock(&mv.lock);
            return false;
        }
        /* An operator or automove asked for this page: like memcached,
         * evict what cannot be rescued, even with -M. */
        mv.v = (struct vacate){ .id = (unsigned)mv.src, .slot = MOVE_SLOT_BG, .page = page,
                                .evict = true, .hold = NULL };
        vacate_begin_locked(&mv.v);
        mv.started = true;
        mv.passes = 0;
    }
    mv.v.now = clock_now();
    mv.v.busy_delete = mv.passes >= BG_BUSY_DELETE_PASSES;
    unsigned busy = vacate_pass_locked(&mv.v);
    mv.passes++;
    if (busy == 0) {
        vacate_finish_locked(&mv.v);
        pthread_mutex_unlock(&cls->lock);
        deliver(mv.dst, mv.v.page);
        count(MC_slabs_moved, 1);
        atomic_store(&mv.active, false);
    } else {
        count(MC_slab_reassign_busy_items, busy);
        if (mv.passes >= BG_ABANDON_PASSES) {
            vacate_abandon_locked(&mv.v);
            atomic_store(&mv.active, false);
        }
        pthread_mutex_unlock(&cls->lock);
        /* Busy items need time, not another pass right away. */
    }
    pthread_mutex_unlock(&mv.lock);
    /* Done, or busy items that need time rather than another pass now. */
    return false;
}

/* Runs a requested move to its end on the calling thread, for a cache
 * without a maintenance thread; gives up (putting the page back) if items
 * stay referenced, since this thread may be the one holding them. */
void
mover_run_inline(void)
{
    for (unsigned pass = 0; pass < INLINE_PASSES && atomic_load(&mv.active); pass++) {
        mover_step();
        if (atomic_load(&mv.active))
            sched_yield();
    }
    pthread_mutex_lock(&mv.lock);
    if (atomic_load(&mv.active)) {
        struct slab_class *cls = &cache.classes[mv.src];
        pthread_mutex_lock(&cls->lock);
        if (mv.started)
            vacate_abandon_locked(&mv.v);
        pthread_mutex_unlock(&cls->lock);
        atomic_store(&mv.active, false);
    }
    pthread_mutex_unlock(&mv.lock);
}
