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
 * The pages come from one address-space reservation, marked for transparent
 * huge pages. A get touches one item at random: on 4 KiB pages nearly every
 * one was a TLB miss, and a page walk under virtualization is nested. Memory
 * is still committed only where a page is carved (in 2 MiB steps where the
 * kernel grants huge pages). The reservation is also what makes items'
 * 32-bit refs work (cache_internal.h): a chunk is named by its offset in it.
 * It spans all that refs can name (30 GiB in 8-byte units), so a raised
 * cache_memlimit still finds pages; where the system will not reserve that
 * much, it spans the budget, and a raise past it cannot grow the cache.
 * Large items live outside it and are named by a slot in a table here, the
 * slot kept in a word ahead of the item. */
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

/* Reserves address space for pages, aligned to a huge page. Inaccessible
 * until arena_open makes it usable, so a reservation far beyond the budget
 * costs nothing: no commit charge, and with -k (mlockall's MCL_FUTURE) only
 * what is opened gets locked. */
static bool
arena_map(uint64_t pages)
{
    size_t len = (size_t)pages * cache.opts.page_size;
    size_t map_len = len + SLAB_HUGE_PAGE;
    void *p = mmap(NULL, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    uintptr_t start = ((uintptr_t)p + SLAB_HUGE_PAGE - 1) & ~(uintptr_t)(SLAB_HUGE_PAGE - 1);
    /* Advice only: without THP the arena works on small pages. */
    (void)madvise((void *)start, len, MADV_HUGEPAGE);
    cache.arena = (char *)start;
    cache.arena_pages = pages;
    cache.arena_open = 0;
    cache.arena_map = p;
    cache.arena_map_len = map_len;
    return true;
}

/* Picks the ref unit (the smallest from 8 bytes at which refs name the whole
 * budget) and reserves the arena: all that refs name, else the budget. */
static bool
arena_setup(uint64_t budget_pages, char *err, size_t errlen)
{
    uint64_t page = cache.opts.page_size;
    unsigned shift = CACHE_ALIGN_SHIFT;
    /* Slab refs run from 1 to REF_LARGE_BASE - 1. */
    while ((((uint64_t)REF_LARGE_BASE - 2) << shift) / page < budget_pages)
        shift++;
    uint64_t named = (((uint64_t)REF_LARGE_BASE - 2) << shift) / page;
    if (!arena_map(named) && !arena_map(budget_pages)) {
        snprintf(err, errlen, "cannot reserve %llu MB of address space for the cache",
                 (unsigned long long)(budget_pages * page >> 20));
        return false;
    }
    cache.spare = calloc(cache.arena_pages, sizeof(*cache.spare));
    cache.spare_bits = calloc(cache.arena_pages, 1);
    if (cache.spare == NULL || cache.spare_bits == NULL) {
        free(cache.spare);
        free(cache.spare_bits);
        cache.spare = NULL;
        cache.spare_bits = NULL;
        munmap(cache.arena_map, cache.arena_map_len);
        cache.arena = NULL;
        snprintf(err, errlen, "out of memory for the slab arena's page lists");
        return false;
    }
    cache.arena_next = 0;
    cache.nspare = 0;
    cache.ref_shift = shift;
    cache.chunk_align = UINT32_C(1) << shift;
    cache.ref_base = (uintptr_t)cache.arena - cache.chunk_align;
    cache.ref_span = cache.arena_pages * page + cache.chunk_align;
    return true;
}

/* Makes the next huge page's worth of arena pages usable (spare lock held). */
static bool
arena_open(void)
{
    uint64_t step = SLAB_HUGE_PAGE / cache.opts.page_size;
    if (step == 0)
        step = 1;
    if (step > cache.arena_pages - cache.arena_open)
        step = cache.arena_pages - cache.arena_open;
    size_t page = cache.opts.page_size;
    if (mprotect(cache.arena + (size_t)cache.arena_open * page, (size_t)step * page,
                 PROT_READ | PROT_WRITE) != 0)
        return false;
    cache.arena_open += step;
    return true;
}

/* --- large items' slots ------------------------------------------------------- */

/* Slot -> item, in blocks allocated as slots are first used and kept until
 * teardown, so a reader (holding any lock that ordered it after the item was
 * linked) never sees the table move. A free slot holds the next free one,
 * tagged odd (items are 8-byte aligned). Changed under the large class lock. */
#define LARGE_BLOCK_BITS 16
#define LARGE_BLOCK (UINT32_C(1) << LARGE_BLOCK_BITS)
#define LARGE_BLOCKS (REF_LARGE_SLOTS >> LARGE_BLOCK_BITS)

static struct {
    struct item **dir[LARGE_BLOCKS];
    uint32_t used;              /* slots ever handed out */
    uint32_t free_head;         /* a free slot + 1, or 0 */
} large;

static struct item **
large_entry(uint32_t slot)
{
    return &large.dir[slot >> LARGE_BLOCK_BITS][slot & (LARGE_BLOCK - 1)];
}

struct item *
slab_large_at(uint32_t ref)
{
    return *large_entry(ref - REF_LARGE_BASE);
}

static bool
large_slot_take(uint32_t *out)
{
    if (large.free_head != 0) {
        uint32_t slot = large.free_head - 1;
        large.free_head = (uint32_t)((uintptr_t)*large_entry(slot) >> 1);
        *out = slot;
        return true;
    }
    if (large.used == REF_LARGE_SLOTS)
        return false;
    uint32_t b = large.used >> LARGE_BLOCK_BITS;
    if (large.dir[b] == NULL && (large.dir[b] = calloc(LARGE_BLOCK, sizeof(struct item *))) == NULL)
        return false;
    *out = large.used++;
    return true;
}

static void
large_slot_put(uint32_t slot)
{
    *large_entry(slot) = (struct item *)(((uintptr_t)large.free_head << 1) | 1);
    large.free_head = slot + 1;
}

/* Unmaps every large item still held (linked or not) and the table. */
static void
large_teardown(void)
{
    for (uint32_t slot = 0; slot < large.used; slot++) {
        struct item *it = *large_entry(slot);
        if (it != NULL && ((uintptr_t)it & 1) == 0)
            munmap((char *)it - LARGE_PREFIX, slab_large_charge(item_size(it)));
    }
    for (uint32_t b = 0; b < LARGE_BLOCKS; b++) {
        free(large.dir[b]);
        large.dir[b] = NULL;
    }
    large.used = 0;
    large.free_head = 0;
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
    return ((uint64_t)total + LARGE_PREFIX + LARGE_ALIGN - 1) / LARGE_ALIGN * LARGE_ALIGN;
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
        if (b != i && b < cache.arena_pages && !cache.spare_bits[b])
            return false;
    return true;
}

char *
slab_page_get(void)
{
    pthread_mutex_lock(&cache.spare_lock);
    char *page = NULL;
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
    } else if (cache.arena_next < cache.arena_pages &&
               (cache.arena_next < cache.arena_open || arena_open())) {
        page = cache.arena + (size_t)cache.arena_next++ * cache.opts.page_size;
    } else {
        /* A cache_memlimit raised past all the arena holds, or no memory. */
        atomic_fetch_add(&cache.malloc_fails, 1);
    }
    pthread_mutex_unlock(&cache.spare_lock);
    return page; /* fresh or madvised away: reads as zero */
}

void
slab_page_put(char *page)
{
    /* The memory goes back now; the address waits for the next page. */
    (void)madvise(page, cache.opts.page_size, MADV_DONTNEED);
    pthread_mutex_lock(&cache.spare_lock);
    cache.spare[cache.nspare++] = page;
    cache.spare_bits[arena_index(page)] = 1;
    pthread_mutex_unlock(&cache.spare_lock);
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
    it->prev = 0;
    it->h_next = item_ref(cls->free_list);
    if (cls->free_list != NULL)
        cls->free_list->prev = item_ref(it);
    cls->free_list = it;
    cls->free_count++;
}

void
slab_free_cut_locked(struct slab_class *cls, struct item *it)
{
    struct item *prev = item_at(it->prev), *next = item_at(it->h_next);
    if (prev != NULL)
        prev->h_next = it->h_next;
    else
        cls->free_list = next;
    if (next != NULL)
        next->prev = it->prev;
    it->prev = it->h_next = 0;
    cls->free_count--;
}

void
slab_claim_locked(struct slab_class *cls, struct item *it)
{
    atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
    atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
    it->nbytes = CHUNK_CLAIMED;
    it->prev = it->h_next = 0;
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
            it->cls = (uint8_t)id;
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
    if (o->slab_chunk_max > o->page_size || o->slab_chunk_max < ITEM_HEADER + o->chunk_min) {
        snprintf(err, errlen, "slab_chunk_max must be between the smallest chunk and the page size");
        return false;
    }
    uint64_t budget_pages = o->mem_limit / o->page_size;
    if (budget_pages == 0)
        budget_pages = 1;
    if (!arena_setup(budget_pages, err, errlen))
        return false;
    cache.mem_max = budget_pages * o->page_size;
    atomic_store(&cache.mem_used, 0);
    pthread_mutex_init(&cache.spare_lock, NULL);

    /* memcached's geometry: grow by factor from header + chunk_min, aligned,
     * until the next class would pass slab_chunk_max; the last class is
     * exactly slab_chunk_max (a power of two: config checks that it divides
     * the page). Aligned to 8 as memcached's unless the budget needed a
     * larger ref unit (see arena_setup): refs name aligned chunks only. */
    uint32_t align = cache.chunk_align;
    uint32_t size = SLAB_GEOMETRY_HEADER + o->chunk_min;
    unsigned i = 0;
    while (i < CLASS_MAX - 2) {
        if (size >= o->slab_chunk_max / o->factor)
            break;
        if (size % align)
            size += align - size % align;
        cache.classes[i].size = size;
        cache.classes[i].perslab = o->page_size / size;
        size = (uint32_t)(size * o->factor);
        i++;
    }
    size = o->slab_chunk_max;
    if (size % align)
        size += align - size % align;
    cache.classes[i].size = size;
    cache.classes[i].perslab = o->page_size / size;
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
    large_teardown();
    for (unsigned c = 0; c < cache.nclasses; c++) {
        struct slab_class *cls = &cache.classes[c];
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
    uint32_t slot;
    char *map = NULL;
    if (!large_slot_take(&slot)) {
        atomic_fetch_add(&cache.malloc_fails, 1);
    } else if ((map = map_bytes(charge)) == NULL) {
        large_slot_put(slot);
    }
    if (map == NULL) {
        slab_unreserve(charge);
        return NULL;
    }
    memcpy(map, &slot, sizeof(slot)); /* slab_large_slot reads it */
    struct item *it = (struct item *)(map + LARGE_PREFIX);
    *large_entry(slot) = it;
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
        it->cls = (uint8_t)id;
    }
    return it;
}

void
slab_put_locked(struct item *it)
{
    struct slab_class *cls = &cache.classes[item_clsid(it)];
    atomic_store_explicit(&it->meta, 0, memory_order_relaxed);
    if (cls->large) {
        uint64_t charge = slab_large_charge(item_size(it));
        large_slot_put(slab_large_slot(it));
        munmap((char *)it - LARGE_PREFIX, charge);
        cls->large_bytes -= charge;
        slab_unreserve(charge);
        return;
    }
    if (in_vacating(cls, it))
        slab_claim_locked(cls, it);
    else
        slab_free_push_locked(cls, it);
}
