/* stats: the cache's operation counters. Each thread counts into a block of
 * its own (one writer, relaxed atomics: a plain add on x86, no shared cache
 * line on the GET path); readers sum every block on demand. A reset records
 * a baseline to subtract, so it never races with the writers. */
#include "cache/cache_internal.h"
#include "src/clock.h"

#include <stdlib.h>
#include <string.h>

#define NFIELDS (sizeof(struct cache_op_stats) / sizeof(uint64_t))
#define NROWS (CLASS_MAX + 1) /* every class, then STAT_NOCLASS */

struct stats_block {
    struct stats_block *next;
    _Atomic uint64_t c[NROWS][NFIELDS];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats_block *blocks;
static uint64_t baseline[NROWS][NFIELDS];
static _Thread_local struct stats_block *mine;
static _Thread_local unsigned mine_gen;

void
stats_setup(void)
{
    pthread_mutex_lock(&reg_lock);
    memset(baseline, 0, sizeof(baseline));
    pthread_mutex_unlock(&reg_lock);
}

void
stats_teardown(void)
{
    pthread_mutex_lock(&reg_lock);
    while (blocks != NULL) {
        struct stats_block *next = blocks->next;
        free(blocks);
        blocks = next;
    }
    pthread_mutex_unlock(&reg_lock);
}

struct stats_block *
stats_mine(void)
{
    unsigned gen = atomic_load_explicit(&cache.generation, memory_order_relaxed);
    if (mine != NULL && mine_gen == gen)
        return mine;
    struct stats_block *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pthread_mutex_lock(&reg_lock);
    b->next = blocks;
    blocks = b;
    pthread_mutex_unlock(&reg_lock);
    mine = b;
    mine_gen = gen;
    return b;
}

void
stats_add(unsigned clsid, size_t field_offset, uint64_t n)
{
    struct stats_block *b = stats_mine();
    if (b == NULL)
        return; /* out of memory for a counter block: lose the count, not the operation */
    _Atomic uint64_t *c = &b->c[clsid][field_offset / sizeof(uint64_t)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static void
sum_row(unsigned row, uint64_t *out)
{
    memset(out, 0, NFIELDS * sizeof(uint64_t));
    for (struct stats_block *b = blocks; b != NULL; b = b->next)
        for (size_t f = 0; f < NFIELDS; f++)
            out[f] += atomic_load_explicit(&b->c[row][f], memory_order_relaxed);
}

void
stats_sum_class(unsigned clsid, struct cache_op_stats *out)
{
    uint64_t v[NFIELDS];
    pthread_mutex_lock(&reg_lock);
    sum_row(clsid, v);
    for (size_t f = 0; f < NFIELDS; f++)
        v[f] -= baseline[clsid][f];
    pthread_mutex_unlock(&reg_lock);
    memcpy(out, v, sizeof(*out));
}

void
cache_stats_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    for (unsigned r = 0; r < NROWS; r++)
        sum_row(r, baseline[r]);
    pthread_mutex_unlock(&reg_lock);
    mover_stats_reset(); /* memcached's stats reset zeroes slabs_moved and the rest */
}

static void
add_ops(struct cache_op_stats *acc, const struct cache_op_stats *s)
{
    uint64_t *a = (uint64_t *)acc;
    const uint64_t *b = (const uint64_t *)s;
    for (size_t f = 0; f < NFIELDS; f++)
        a[f] += b[f];
}

void
cache_stats_get(struct cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct cache_op_stats s;
    for (unsigned c = 0; c < cache.nclasses; c++) {
        stats_sum_class(c, &s);
        add_ops(&out->ops, &s);
        struct slab_class *cls = &cache.classes[c];
        pthread_mutex_lock(&cls->lock);
        out->curr_items += cls->linked;
        out->bytes += cls->bytes;
        if (cls->npages > 0 || cls->large_bytes > 0)
            out->total_classes++;
        pthread_mutex_unlock(&cls->lock);
    }
    stats_sum_class(STAT_NOCLASS, &s);
    add_ops(&out->ops, &s);
    out->limit_maxbytes = atomic_load(&cache.mem_limit);
    out->total_malloced = atomic_load(&cache.mem_used);
    out->hash_bytes = ht_bytes();
    out->hash_power_level = ht_power();
    out->hash_is_expanding = ht_expanding();
    out->malloc_fails = atomic_load(&cache.malloc_fails);
    out->slab_global_page_pool = slab_pool_pages();
    mover_stats(&out->mover);
    out->slab_reassign = cache.opts.slab_reassign;
    out->slab_reassign_running = mover_running();
}

unsigned
cache_class_count(void)
{
    return cache.nclasses;
}

void
cache_class_stats_get(unsigned index, struct cache_class_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (index >= cache.nclasses)
        return;
    struct slab_class *cls = &cache.classes[index];
    out->id = index + 1;
    pthread_mutex_lock(&cls->lock);
    out->chunk_size = cls->large ? cache.opts.slab_chunk_max : cls->size;
    out->chunks_per_page = cls->large ? 1 : cls->perslab;
    if (cls->large) {
        /* Charged in 4 KiB steps; shown in pages, rounded up. */
        out->total_pages = (cls->large_bytes + cache.opts.page_size - 1) / cache.opts.page_size;
        out->total_chunks = cls->linked;
        out->used_chunks = cls->linked;
    } else {
        out->total_pages = cls->npages;
        out->total_chunks = cls->npages * cls->perslab;
        out->free_chunks = cls->free_count;
        out->free_chunks_end = cls->npages ? cls->perslab - cls->cur_carved : 0;
        /* Claimed chunks belong to a page on its way out: not in use. */
        out->used_chunks = out->total_chunks - out->free_chunks - out->free_chunks_end - cls->claimed;
    }
    out->mem_requested = cls->bytes;
    out->number = cls->linked;
    out->number_hot = cls->lru[LRU_HOT].count;
    out->number_warm = cls->lru[LRU_WARM].count;
    out->number_cold = cls->lru[LRU_COLD].count;
    out->number_temp = cls->lru[LRU_TEMP].count;
    uint32_t now = clock_now();
    const struct item *tail;
#define TAIL_AGE(seg) ((tail = cls->lru[seg].tail) != NULL && now > tail->atime ? now - tail->atime : 0)
    out->age_hot = TAIL_AGE(LRU_HOT);
    out->age_warm = TAIL_AGE(LRU_WARM);
    out->age = TAIL_AGE(LRU_COLD);
#undef TAIL_AGE
    out->evicted_time = cls->evicted_time;
    pthread_mutex_unlock(&cls->lock);
    stats_sum_class(index, &out->ops);
}

/* Chunks looked at per hold of a class lock by `stats sizes`. */
#define SIZES_BATCH 4096

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* `stats sizes` in memory bounded by the slab geometry, not by -I, and with
 * short lock holds. Buckets are of memcached's size for an item (see
 * cache_item_size; at most one byte over ours), so a slab item, no larger
 * than slab_chunk_max, falls in the first slab_chunk_max / 32 + 2 of them:
 * one histogram that long covers every slab class. The classes are walked
 * page by page, SIZES_BATCH chunks per hold of the class lock (LINKED
 * changes only under that lock, as for the reclaimer; a page that moves to
 * another class between two holds may be missed: the numbers are a
 * snapshot, as memcached's are). Each large item is over slab_chunk_max
 * bytes of the budget, so they are few: their buckets are collected in one
 * hold, sorted, and merged into the histogram's lines in size order. */
void
cache_sizes_foreach(cache_size_fn fn, void *arg)
{
    size_t nb = cache.opts.slab_chunk_max / 32 + 2;
    uint64_t *hist = calloc(nb, sizeof(*hist));
    uint32_t *big = NULL;
    size_t nbig = 0, bigcap = 0;
    if (hist == NULL)
        return;
    for (unsigned c = 0; c < cache.nclasses; c++) {
        struct slab_class *cls = &cache.classes[c];
        if (cls->large) {
            pthread_mutex_lock(&cls->lock);
            while (cls->linked > bigcap) {
                size_t want = cls->linked + 64;
                pthread_mutex_unlock(&cls->lock);
                uint32_t *p = realloc(big, want * sizeof(*big));
                if (p == NULL)
                    goto out;
                big = p;
                bigcap = want;
                pthread_mutex_lock(&cls->lock);
            }
            for (unsigned seg = 0; seg < LRU_SEGS; seg++)
                for (struct item *it = cls->lru[seg].head; it != NULL && nbig < bigcap; it = item_at(it->next))
                    big[nbig++] = (uint32_t)((item_mc_size(it) + 31) / 32);
            pthread_mutex_unlock(&cls->lock);
            continue;
        }
        for (uint64_t chunk = 0;; ) {
            pthread_mutex_lock(&cls->lock);
            uint64_t carved = cls->npages ? (cls->npages - 1) * cls->perslab + cls->cur_carved : 0;
            uint64_t end = chunk + SIZES_BATCH < carved ? chunk + SIZES_BATCH : carved;
            for (; chunk < end; chunk++) {
                const struct item *it = (const struct item *)(cls->pages[chunk / cls->perslab] +
                                                              (chunk % cls->perslab) * cls->size);
                if (!item_has(it, ITEM_LINKED))
                    continue;
                size_t b = (item_mc_size(it) + 31) / 32;
                hist[b < nb ? b : nb - 1]++;
            }
            pthread_mutex_unlock(&cls->lock);
            if (chunk >= carved)
                break;
        }
    }
    if (nbig > 0)
        qsort(big, nbig, sizeof(*big), cmp_u32);
    /* One line per bucket in size order: the large items' buckets join the
     * histogram's where they meet it (with -C a large item's memcached size
     * is a little under ours) and follow it. */
    size_t i = 0;
    for (size_t b = 0; b < nb; b++) {
        uint64_t n = hist[b];
        for (; i < nbig && big[i] == b; i++)
            n++;
        if (n)
            fn((uint32_t)(b * 32), n, arg);
    }
    while (i < nbig) {
        size_t j = i;
        while (j < nbig && big[j] == big[i])
            j++;
        fn(big[i] * 32, j - i, arg);
        i = j;
    }
out:
    free(hist);
    free(big);
}
