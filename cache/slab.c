/* slab: size classes and the memory under them. Pages of page_size bytes are
 * taken lazily, one at a time, while the page budget (-m) lasts, and carved
 * into chunks on demand, so RSS tracks what is really used. A page never
 * leaves its class. Items above slab_chunk_max live in the large class: one
 * mapping each, charged to the budget in whole pages.
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
    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return; /* a page at a time, then */
    uintptr_t start = ((uintptr_t)p + SLAB_HUGE_PAGE - 1) & ~(uintptr_t)(SLAB_HUGE_PAGE - 1);
    /* Advice only: without THP the arena works on small pages. */
    (void)madvise((void *)start, len, MADV_HUGEPAGE);
    cache.arena = (char *)start;
    cache.arena_map = p;
    cache.arena_map_len = map_len;
    atomic_store(&cache.arena_next, 0);
}

/* A fresh, zeroed page; the caller has reserved it in the budget. */
static char *
new_page(void)
{
    if (cache.arena == NULL)
        return map_bytes(cache.opts.page_size);
    /* Slab pages never return, and every one was reserved against
     * pages_max, so the index stays inside the arena. */
    uint64_t i = atomic_fetch_add(&cache.arena_next, 1);
    return cache.arena + (size_t)i * cache.opts.page_size;
}

static bool
reserve_pages(uint64_t n)
{
    uint64_t used = atomic_load(&cache.pages_used);
    do {
        if (used + n > cache.pages_max)
            return false;
    } while (!atomic_compare_exchange_weak(&cache.pages_used, &used, used + n));
    return true;
}

static uint64_t
pages_for(size_t bytes)
{
    return (bytes + cache.opts.page_size - 1) / cache.opts.page_size;
}

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
    arena_setup();

    /* memcached's geometry: grow by factor from header + chunk_min, aligned,
     * until the next class would pass slab_chunk_max; the last class is
     * exactly slab_chunk_max. */
    uint32_t size = (uint32_t)sizeof(struct item) + o->chunk_min;
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
        if (cache.arena == NULL)
            for (uint64_t p = 0; p < cls->npages; p++)
                munmap(cls->pages[p], cache.opts.page_size);
        free(cls->pages);
        pthread_mutex_destroy(&cls->lock);
    }
    if (cache.arena != NULL)
        munmap(cache.arena_map, cache.arena_map_len);
    cache.arena = NULL;
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

static struct item *
take_large(size_t total)
{
    uint64_t n = pages_for(total);
    if (!reserve_pages(n))
        return NULL;
    struct item *it = map_bytes(total);
    if (it == NULL) {
        atomic_fetch_sub(&cache.pages_used, n);
        return NULL;
    }
    cache.classes[cache.large_id].large_pages += n;
    return it;
}

static struct item *
take_chunk(struct slab_class *cls)
{
    if (cls->free_list != NULL) {
        struct item *it = cls->free_list;
        cls->free_list = it->h_next;
        cls->free_count--;
        return it;
    }
    if (cls->npages == 0 || cls->cur_carved == cls->perslab) {
        if (!reserve_pages(1))
            return NULL;
        /* Room in the list first: a page taken from the arena cannot be
         * given back. */
        if (cls->npages == cls->pages_cap) {
            uint64_t cap = cls->pages_cap ? cls->pages_cap * 2 : 16;
            char **pages = realloc(cls->pages, cap * sizeof(*pages));
            if (pages == NULL) {
                atomic_fetch_sub(&cache.pages_used, 1);
                atomic_fetch_add(&cache.malloc_fails, 1);
                return NULL;
            }
            cls->pages = pages;
            cls->pages_cap = cap;
        }
        char *page = new_page();
        if (page == NULL) {
            atomic_fetch_sub(&cache.pages_used, 1);
            return NULL;
        }
        cls->pages[cls->npages++] = page;
        cls->cur_carved = 0;
    }
    /* Fresh mappings read as zero: an uncarved chunk has no state bits. */
    return (struct item *)(cls->pages[cls->npages - 1] + (size_t)cls->cur_carved++ * cls->size);
}

struct item *
slab_take_locked(unsigned id, size_t total)
{
    struct slab_class *cls = &cache.classes[id];
    struct item *it = cls->large ? take_large(total) : take_chunk(cls);
    if (it != NULL) {
        atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
        atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
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
        size_t total = item_size(it);
        uint64_t n = pages_for(total);
        munmap(it, total);
        cls->large_pages -= n;
        atomic_fetch_sub(&cache.pages_used, n);
        return;
    }
    it->h_next = cls->free_list;
    cls->free_list = it;
    cls->free_count++;
}
