/* automove: decides, about once a second, which slab page should move
 * (mover.c moves it). slab_automove=1 is memcached's window logic
 * (slab_automove.c): over the last slab_automove_window samples, a class
 * with more than 2.5 pages of free chunks and no activity gives a page back
 * to the pool; otherwise, when the youngest class that keeps evicting is
 * younger than slab_automove_ratio times the oldest class (with more than
 * two pages), the oldest gives the youngest a page. slab_automove=2 is our
 * simpler aggressive rule (memcached moves a page at every eviction): every
 * second, the class that evicted most takes a page from the class whose tail
 * is oldest, without waiting for the window or the ratio.
 *
 * Age counts stores, not seconds: items carry a CAS, not a timestamp, and a
 * class's age is how many stores happened since the item at its tail was
 * stored. The rules only compare ages, so the unit does not change them.
 * The large class takes part: its pages are its charged bytes; a page given
 * to it goes back to the budget, which its stores then take; a page taken
 * from it is budget freed by evicting its oldest items. */
#include "cache/cache_internal.h"

#include <stdlib.h>
#include <string.h>

#define MIN_PAGES_FOR_SOURCE 2
#define MIN_PAGES_FOR_RECLAIM 2.5

struct am_window {
    uint64_t age;
    bool dirty;
    bool evicted_seen;
    float evicted_ratio;
};

struct am_sample {
    uint64_t evicted, outofmemory, total_pages, free_chunks, chunks_per_page, age;
};

static struct {
    unsigned size;              /* window length in samples */
    uint64_t cur;               /* samples taken */
    struct am_window *w;        /* CLASS_MAX rows of size samples */
    struct am_sample before[CLASS_MAX], after[CLASS_MAX];
    uint32_t last_run;
    bool again;                 /* a page went to the pool: look again next step */
} am;

static void
fill(struct am_sample *out)
{
    uint64_t stamp_now = atomic_load(&cache.next_cas);
    for (unsigned c = 0; c < cache.nclasses; c++) {
        struct cache_op_stats ops;
        stats_sum_class(c, &ops);
        struct am_sample *s = &out[c];
        s->evicted = ops.evictions;
        s->outofmemory = ops.outofmemory;
        struct slab_class *cls = &cache.classes[c];
        pthread_mutex_lock(&cls->lock);
        if (cls->large) {
            s->total_pages = cls->large_bytes / cache.opts.page_size;
            s->free_chunks = 0;
            s->chunks_per_page = 1;
        } else {
            s->total_pages = cls->npages;
            s->free_chunks = cls->free_count + (cls->npages ? cls->perslab - cls->cur_carved : 0);
            s->chunks_per_page = cls->perslab;
        }
        uint64_t tail = cls->linked ? lru_tail_stamp_locked(c) : UINT64_MAX;
        pthread_mutex_unlock(&cls->lock);
        s->age = tail == UINT64_MAX || tail > stamp_now ? 0 : stamp_now - tail;
    }
}

/* Counters only grow, but `stats reset` moves their baseline. */
static uint64_t
delta(uint64_t after, uint64_t before)
{
    return after > before ? after - before : 0;
}

void
automove_setup(void)
{
    memset(&am, 0, sizeof(am));
    am.size = cache.opts.slab_automove_window;
    am.w = calloc((size_t)CLASS_MAX * am.size, sizeof(*am.w));
    fill(am.before);
}

void
automove_teardown(void)
{
    free(am.w);
    am.w = NULL;
}

/* memcached's slab_automove_run. */
static void
decide_window(int *src, int *dst)
{
    uint64_t evicted_total = 0;
    for (unsigned n = 0; n < cache.nclasses; n++)
        evicted_total += delta(am.after[n].evicted, am.before[n].evicted);
    am.cur++;
    int oldest = -1, youngest = -1;
    uint64_t oldest_age = 0, youngest_age = UINT64_MAX;
    bool youngest_evicting = false;
    for (unsigned n = 0; n < cache.nclasses; n++) {
        struct am_window *row = &am.w[(size_t)n * am.size];
        struct am_window *wd = &row[am.cur % am.size];
        const struct am_sample *a = &am.after[n], *b = &am.before[n];
        memset(wd, 0, sizeof(*wd));
        uint64_t evicted = delta(a->evicted, b->evicted);
        if (evicted > 0) {
            wd->evicted_ratio = (float)evicted / (float)evicted_total;
            wd->evicted_seen = true;
            wd->dirty = true;
        }
        if (delta(a->outofmemory, b->outofmemory) > 0 || a->total_pages > b->total_pages)
            wd->dirty = true;
        wd->age = a->age;

        uint64_t age_sum = 0, dirty = 0, seen = 0;
        float ratio_sum = 0;
        for (unsigned x = 0; x < am.size; x++) {
            age_sum += row[x].age;
            dirty += row[x].dirty;
            seen += row[x].evicted_seen;
            ratio_sum += row[x].evicted_ratio;
        }
        uint64_t age = age_sum / am.size;

        if (a->free_chunks > a->chunks_per_page * MIN_PAGES_FOR_RECLAIM && dirty == 0) {
            *src = (int)n;
            *dst = MOVER_POOL;
            return;
        }
        if (age > oldest_age && a->total_pages > MIN_PAGES_FOR_SOURCE) {
            oldest = (int)n;
            oldest_age = age;
        }
        if (age < youngest_age && (seen > am.size / 2 || ratio_sum / (float)am.size > 0.25f)) {
            youngest = (int)n;
            youngest_age = age;
            youngest_evicting = wd->evicted_seen;
        }
    }
    if (youngest != -1 && oldest != -1 && am.cur > am.size && youngest_evicting &&
        (double)youngest_age < (double)oldest_age * cache_slab_automove_ratio()) {
        *src = oldest;
        *dst = youngest;
    }
}

/* slab_automove=2: no window, no ratio. */
static void
decide_aggressive(int *src, int *dst)
{
    int hungry = -1, oldest = -1;
    uint64_t most = 0, oldest_age = 0;
    for (unsigned n = 0; n < cache.nclasses; n++) {
        const struct am_sample *a = &am.after[n];
        if (a->free_chunks > a->chunks_per_page * MIN_PAGES_FOR_RECLAIM &&
            delta(a->evicted, am.before[n].evicted) == 0 && a->total_pages >= 2) {
            *src = (int)n;
            *dst = MOVER_POOL;
            return;
        }
        uint64_t evicted = delta(a->evicted, am.before[n].evicted);
        if (evicted > most) {
            most = evicted;
            hungry = (int)n;
        }
    }
    if (hungry < 0)
        return;
    for (unsigned n = 0; n < cache.nclasses; n++) {
        const struct am_sample *a = &am.after[n];
        if ((int)n != hungry && a->total_pages > MIN_PAGES_FOR_SOURCE && a->age > oldest_age) {
            oldest = (int)n;
            oldest_age = a->age;
        }
    }
    if (oldest >= 0 && oldest_age > am.after[hungry].age) {
        *src = oldest;
        *dst = hungry;
    }
}

void
automove_tick(uint32_t now)
{
    unsigned level = cache_slab_automove();
    if (level == 0 || !cache.opts.slab_reassign || am.w == NULL)
        return;
    if (now == am.last_run && !am.again)
        return;
    am.last_run = now;
    am.again = false;
    fill(am.after);
    int src = -1, dst = MOVER_POOL;
    if (level == 1)
        decide_window(&src, &dst);
    else
        decide_aggressive(&src, &dst);
    memcpy(am.before, am.after, sizeof(am.before));
    if (src < 0)
        return;
    /* A page for the pool costs nothing to move: keep looking, as memcached
     * does, so freed memory goes back quickly. */
    if (mover_request(src, dst) == CACHE_REASSIGN_OK && dst == MOVER_POOL)
        am.again = true;
}
