/* slab: size classes and the memory under them, charged to one byte budget
 * (-m). Pages of page_size bytes are taken lazily, one at a time, and carved
 * into chunks on demand, so RSS tracks what is really used. A page can leave
 * its class (mover.c empties it first): to another class, or back to the
 * budget, its memory returned to the system (madvise) so RSS follows.
 *
 * Budget invariant: mem_used = page_size * (pages held by classes or in
 * flight in a move) + the charge of every large item, and never exceeds
 * mem_max. Arena invariant: every arena page handed out is held by a class,
 * in flight, or in the spare list, so the arena never runs out before the
 * budget does.
 *
 * Large items (above slab_chunk_max) are one mapping each, sized to the item
 * rounded up to 4 KiB and charged exactly that. memcached instead chains
 * chunks of its largest class; both keep about the same number of large
 * items in -m (a 530,000-byte value costs 532,480 bytes here, 2 chunks of
 * 512 KiB + a small tail there), but only a contiguous item keeps the value
 * in one buffer: the socket reads straight into it and a reply writes it
 * with one iovec (net/conn.c, net/reply.c), append/prepend, incr and the
 * bus's value hash all read item_value() as one run of bytes. Chaining would
 * put a scatter list in every one of those paths for no gain in capacity.
 * What a large item costs a page-sized allocator is only address space,
 * which a mapping of its own does not take from the arena.
 *
 * The pages come from one address-space reservation of the whole budget,
 * marked for transparent huge pages. A get touches one item at random: on
 * 4 KiB pages nearly every one was a TLB miss, and a page walk under
 * virtualization is nested. Memory is still committed only where a page is
 * carved (in 2 MiB steps where the kernel grants huge pages). */
#include "cache/cache_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *
map_bytes(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        atomic_fetch_add(&cache.malloc_fails, 1);
        return NULL;
    }
    return p;
}

#define SLAB_HUGE_PAGE ((size_t)2 << 20)

static void
arena_setup(void)
{
    size_t len = (size_t)cache.pages_max * cache.opts.page_size;
    size_t map_len = len + SLAB_HUGE_PAGE;
    cache.spare = calloc(cache.pages_max, sizeof(*cache.spare));
    cache.spare_bits = calloc(cache.pages_max, 1);
    void *p = MAP_FAILED;
    if (cache.spare != NULL && cache.spare_bits != NULL)
        p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(cache.spare);
        free(cache.spare_bits);
        cache.spare = NULL;
        cache.spare_bits = NULL;
        return; /* a page at a time, then */
    }
    uintptr_t start = ((uintptr_t)p + SLAB_HUGE_PAGE - 1) & ~(uintptr_t)(SLAB_HUGE_PAGE - 1);
    /* Advice only: without THP the arena works on small pages. */
    (void)madvise((void *)start, len, MADV_HUGEPAGE);
    cache.arena = (char *)start;
    cache.arena_map = p;
    cache.arena_map_len = map_len;
    cache.arena_next = 0;
    cache.nspare = 0;
}

/* Pages past the arena: a budget raised by cache_memlimit beyond the one
 * reserved at start-up maps each further page on its own. */
static bool
in_arena(const char *page)
{
    return cache.arena != NULL && page >= cache.arena &&
           page < cache.arena + (size_t)cache.pages_max * cache.opts.page_size;
}

void
slab_set_mem_max(uint64_t bytes)
{
    uint64_t pages = bytes / cache.opts.page_size;
    atomic_store(&cache.mem_max, (pages > 0 ? pages : 1) * cache.opts.page_size);
}

/* --- the budget ------------------------------------------------------------ */

bool
slab_reserve(uint64_t bytes)
{
    uint64_t used = atomic_load(&cache.mem_used);
    do {
        if (bytes > cache.mem_max || used > cache.mem_max - bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&cache.mem_used, &used, used + bytes));
    return true;
}

void
slab_unreserve(uint64_t bytes)
{
    atomic_fetch_sub(&cache.mem_used, bytes);
}

uint64_t
slab_large_charge(size_t total)
{
    return ((uint64_t)total + LARGE_ALIGN - 1) / LARGE_ALIGN * LARGE_ALIGN;
}

/* --- pages ----------------------------------------------------------------- */

/* Index of an arena page, and of the other page in its 2 MiB huge page. */
static uint64_t
arena_index(const char *page)
{
    return (uint64_t)(page - cache.arena) / cache.opts.page_size;
}

static bool
buddy_spare(uint64_t i)
{
    uint64_t per_huge = SLAB_HUGE_PAGE / cache.opts.page_size;
    if (per_huge < 2)
        return true; /* pages as large as a huge page: no buddy to consider */
    uint64_t first = i / per_huge * per_huge;
    for (uint64_t b = first; b < first + per_huge; b++)
        if (b != i && b < cache.pages_max && !cache.spare_bits[b])
            return false;
    return true;
}

char *
slab_page_get(void)
{
    if (cache.arena == NULL)
        return map_bytes(cache.opts.page_size);
    pthread_mutex_lock(&cache.spare_lock);
    char *page;
    if (cache.nspare > 0) {
        /* Prefer a spare page in a huge page that is partly in use: khugepaged
         * may fill such a hole again anyway, while a huge page wholly spare
         * stays out of RSS. */
        uint64_t pick = cache.nspare - 1;
        for (uint64_t k = cache.nspare; k-- > 0;) {
            if (!buddy_spare(arena_index(cache.spare[k]))) {
                pick = k;
                break;
            }
        }
        page = cache.spare[pick];
        cache.spare[pick] = cache.spare[--cache.nspare];
        cache.spare_bits[arena_index(page)] = 0;
    } else if (cache.arena_next < cache.pages_max) {
        /* The caller reserved a page and every spare one is taken, so fewer
         * than pages_max arena pages are out, unless cache_memlimit raised
         * the budget past the arena. */
        page = cache.arena + (size_t)cache.arena_next++ * cache.opts.page_size;
    } else {
        pthread_mutex_unlock(&cache.spare_lock);
        return map_bytes(cache.opts.page_size);
    }
    pthread_mutex_unlock(&cache.spare_lock);
    return page; /* fresh or madvised away: reads as zero */
}

void
slab_page_put(char *page)
{
    if (!in_arena(page)) {
        munmap(page, cache.opts.page_size);
    } else {
        /* The memory goes back now; the address waits for the next page. */
        (void)madvise(page, cache.opts.page_size, MADV_DONTNEED);
        pthread_mutex_lock(&cache.spare_lock);
        cache.spare[cache.nspare++] = page;
        cache.spare_bits[arena_index(page)] = 1;
        pthread_mutex_unlock(&cache.spare_lock);
    }
    slab_unreserve(cache.opts.page_size);
}

uint64_t
slab_pool_pages(void)
{
    uint64_t used = atomic_load(&cache.mem_used);
    uint64_t room = used < cache.mem_max ? (cache.mem_max - used) / cache.opts.page_size : 0;
    pthread_mutex_lock(&cache.spare_lock);
    uint64_t n = cache.nspare;
    pthread_mutex_unlock(&cache.spare_lock);
    return n < room ? n : room;
}

/* --- free lists and claims ------------------------------------------------------ */

void
slab_free_push_locked(struct slab_class *cls, struct item *it)
{
    atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
    atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
    it->nbytes = CHUNK_FREE;
    it->prev = NULL;
    it->h_next = cls->free_list;
    if (cls->free_list != NULL)
        cls->free_list->prev = it;
    cls->free_list = it;
    cls->free_count++;
}

void
slab_free_cut_locked(struct slab_class *cls, struct item *it)
{
    if (it->prev != NULL)
        it->prev->h_next = it->h_next;
    else
        cls->free_list = it->h_next;
    if (it->h_next != NULL)
        it->h_next->prev = it->prev;
    it->prev = it->h_next = NULL;
    cls->free_count--;
}

void
slab_claim_locked(struct slab_class *cls, struct item *it)
{
    atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
    atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
    it->nbytes = CHUNK_CLAIMED;
    it->prev = it->h_next = NULL;
    cls->claimed++;
}

static bool
in_vacating(const struct slab_class *cls, const void *p)
{
    for (unsigned s = 0; s < MOVE_SLOTS; s++) {
        const char *v = cls->vacating[s];
        if (v != NULL && (const char *)p >= v && (const char *)p < v + cache.opts.page_size)
            return true;
    }
    return false;
}

/* --- class pages -------------------------------------------------------------- */

bool
slab_page_add_locked(unsigned id, char *page)
{
    struct slab_class *cls = &cache.classes[id];
    if (cls->npages == cls->pages_cap) {
        uint64_t cap = cls->pages_cap ? cls->pages_cap * 2 : 16;
        char **pages = realloc(cls->pages, cap * sizeof(*pages));
        if (pages == NULL) {
            atomic_fetch_add(&cache.malloc_fails, 1);
            return false;
        }
        cls->pages = pages;
        cls->pages_cap = cap;
    }
    /* Only the last page is carved lazily: what the current one has left
     * becomes free chunks first. Rare (a page given by a move). */
    if (cls->npages > 0) {
        char *cur = cls->pages[cls->npages - 1];
        while (cls->cur_carved < cls->perslab) {
            struct item *it = (struct item *)(cur + (size_t)cls->cur_carved++ * cls->size);
            it->clsid = (uint8_t)id;
            slab_free_push_locked(cls, it);
        }
    }
    cls->pages[cls->npages++] = page;
    cls->cur_carved = 0;
    return true;
}

int64_t
slab_page_index_locked(unsigned id, const char *page)
{
    const struct slab_class *cls = &cache.classes[id];
    for (uint64_t i = 0; i < cls->npages; i++)
        if (cls->pages[i] == page)
            return (int64_t)i;
    return -1;
}

void
slab_page_remove_locked(unsigned id, const char *page)
{
    struct slab_class *cls = &cache.classes[id];
    int64_t i = slab_page_index_locked(id, page);
    if (i < 0)
        return;
    uint64_t last = cls->npages - 1;
    if ((uint64_t)i == last) {
        /* The carving page went: the one before it is fully carved. */
        cls->cur_carved = cls->perslab;
    } else {
        /* Keep the carving page last. */
        cls->pages[i] = cls->pages[last - 1];
        cls->pages[last - 1] = cls->pages[last];
    }
    cls->npages--;
    cls->claimed -= cls->perslab;
}

/* --- set-up -------------------------------------------------------------------- */

bool
slab_setup(char *err, size_t errlen)
{
    const struct cache_options *o = &cache.opts;
    if (o->factor <= 1.0) {
        snprintf(err, errlen, "factor must be greater than 1");
        return false;
    }
    if (o->slab_chunk_max > o->page_size || o->slab_chunk_max < sizeof(struct item) + o->chunk_min) {
        snprintf(err, errlen, "slab_chunk_max must be between the smallest chunk and the page size");
        return false;
    }
    cache.pages_max = o->mem_limit / o->page_size;
    if (cache.pages_max == 0)
        cache.pages_max = 1;
    cache.mem_max = cache.pages_max * o->page_size;
    atomic_store(&cache.mem_used, 0);
    pthread_mutex_init(&cache.spare_lock, NULL);
    arena_setup();

    /* memcached's geometry: grow by factor from header + chunk_min, aligned,
     * until the next class would pass slab_chunk_max; the last class is
     * exactly slab_chunk_max. */
    uint32_t size = SLAB_GEOMETRY_HEADER + o->chunk_min;
    unsigned i = 0;
    while (i < CLASS_MAX - 2) {
        if (size >= o->slab_chunk_max / o->factor)
            break;
        if (size % CACHE_ALIGN)
            size += CACHE_ALIGN - size % CACHE_ALIGN;
        cache.classes[i].size = size;
        cache.classes[i].perslab = o->page_size / size;
        size = (uint32_t)(size * o->factor);
        i++;
    }
    cache.classes[i].size = o->slab_chunk_max;
    cache.classes[i].perslab = o->page_size / o->slab_chunk_max;
    i++;
    cache.large_id = i;
    cache.classes[i].large = true;
    cache.nclasses = i + 1;
    for (unsigned c = 0; c < cache.nclasses; c++)
        pthread_mutex_init(&cache.classes[c].lock, NULL);
    return true;
}

void
slab_teardown(void)
{
    for (unsigned c = 0; c < cache.nclasses; c++) {
        struct slab_class *cls = &cache.classes[c];
        for (uint64_t p = 0; p < cls->npages; p++)
            if (!in_arena(cls->pages[p]))
                munmap(cls->pages[p], cache.opts.page_size);
        free(cls->pages);
        pthread_mutex_destroy(&cls->lock);
    }
    if (cache.arena != NULL)
        munmap(cache.arena_map, cache.arena_map_len);
    cache.arena = NULL;
    free(cache.spare);
    free(cache.spare_bits);
    cache.spare = NULL;
    cache.spare_bits = NULL;
    cache.nspare = 0;
    pthread_mutex_destroy(&cache.spare_lock);
}

int
slab_class_for(size_t total)
{
    if (total > cache.opts.item_max)
        return -1;
    if (total > cache.opts.slab_chunk_max)
        return (int)cache.large_id;
    unsigned lo = 0, hi = cache.large_id - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cache.classes[mid].size >= total)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (int)lo;
}

/* --- taking and returning chunks --------------------------------------------- */

static struct item *
take_large(size_t total)
{
    uint64_t charge = slab_large_charge(total);
    if (!slab_reserve(charge))
        return NULL;
    struct item *it = map_bytes(charge);
    if (it == NULL) {
        slab_unreserve(charge);
        return NULL;
    }
    cache.classes[cache.large_id].large_bytes += charge;
    return it;
}

static struct item *
take_chunk(unsigned id)
{
    struct slab_class *cls = &cache.classes[id];
    if (cls->free_list != NULL) {
        struct item *it = cls->free_list;
        slab_free_cut_locked(cls, it);
        return it;
    }
    if (cls->npages == 0 || cls->cur_carved == cls->perslab) {
        if (!slab_reserve(cache.opts.page_size))
            return NULL;
        char *page = slab_page_get();
        if (page == NULL) {
            slab_unreserve(cache.opts.page_size);
            return NULL;
        }
        if (!slab_page_add_locked(id, page)) {
            slab_page_put(page);
            return NULL;
        }
    }
    /* Fresh pages read as zero: an uncarved chunk has no state bits. */
    return (struct item *)(cls->pages[cls->npages - 1] + (size_t)cls->cur_carved++ * cls->size);
}

struct item *
slab_take_locked(unsigned id, size_t total)
{
    struct slab_class *cls = &cache.classes[id];
    struct item *it = cls->large ? take_large(total) : take_chunk(id);
    if (it != NULL) {
        atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
        /* Under the class lock, so a page move never mistakes a chunk just
         * handed out for a free one. */
        atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
        it->nbytes = 2;
        it->clsid = (uint8_t)id;
    }
    return it;
}

void
slab_put_locked(struct item *it)
{
    struct slab_class *cls = &cache.classes[it->clsid];
    atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
    if (cls->large) {
        uint64_t charge = slab_large_charge(item_size(it));
        munmap(it, charge);
        cls->large_bytes -= charge;
        slab_unreserve(charge);
        return;
    }
    if (in_vacating(cls, it))
        slab_claim_locked(cls, it);
    else
        slab_free_push_locked(cls, it);
}
