/* Tests for cache/mover.c: a store that finds no room takes a page from
 * another class at once; pages with items someone still reads are skipped
 * or waited for, never freed under the reader; requested moves rescue what
 * free chunks can hold; `slabs reassign` answers as memcached does. */
#include "cache_fixture.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* This program interposes sched_yield(2) to count how often a store waited
 * for readers to let go (the mover yields between passes over a page). */
static atomic_uint yields;

int
sched_yield(void)
{
    atomic_fetch_add(&yields, 1);
    return (int)syscall(SYS_sched_yield);
}

static struct cache_options
options(uint64_t mem_mb)
{
    struct cache_options o = fx_options(mem_mb);
    o.slab_automove = 0; /* moves here happen because a test asks */
    return o;
}

/* Stores key%u with a value of vlen bytes that names its key. */
static enum cache_result
put(const char *prefix, unsigned i, size_t vlen)
{
    char key[32];
    snprintf(key, sizeof(key), "%s%u", prefix, i);
    char *v = malloc(vlen);
    size_t n = (size_t)snprintf(v, vlen, "%s|", key);
    memset(v + n, 'a' + (char)(i % 26), vlen - n);
    enum cache_result r = fx_store(key, v, vlen, 0, 0, CACHE_SET, 0, NULL);
    free(v);
    return r;
}

/* Whether key%u holds the value put() stored (or is absent: then false). */
static bool
intact(struct item *it, const char *prefix, unsigned i)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "%s%u|", prefix, i);
    const char *v = item_value(it);
    uint32_t len = item_nbytes(it) - 2;
    if (len < (uint32_t)n || memcmp(v, key, (size_t)n) != 0 || memcmp(v + len, "\r\n", 2) != 0)
        return false;
    for (uint32_t k = (uint32_t)n; k < len; k++)
        if (v[k] != 'a' + (char)(i % 26))
            return false;
    return true;
}

static struct item *
get(const char *prefix, unsigned i)
{
    char key[32];
    snprintf(key, sizeof(key), "%s%u", prefix, i);
    return cache_get(key, strlen(key));
}

static struct cache_stats
stats(void)
{
    struct cache_stats st;
    cache_stats_get(&st);
    return st;
}

/* Pages of the slab class that holds items of vlen bytes under 5-byte-ish keys. */
static uint64_t
pages_of_class_for(size_t total)
{
    for (unsigned c = 0; c + 1 < cache_class_count(); c++) {
        struct cache_class_stats cs;
        cache_class_stats_get(c, &cs);
        if (cs.chunk_size >= total)
            return cs.total_pages;
    }
    return 0;
}

static unsigned
class_id_for(size_t total)
{
    for (unsigned c = 0; c + 1 < cache_class_count(); c++) {
        struct cache_class_stats cs;
        cache_class_stats_get(c, &cs);
        if (cs.chunk_size >= total)
            return cs.id;
    }
    return 0;
}

/* Fills the cache with vlen-byte values until it evicts. Returns the count. */
static unsigned
fill_until_full(const char *prefix, size_t vlen)
{
    unsigned i = 0;
    for (; i < 200000; i++) {
        cr_assert_eq(put(prefix, i, vlen), CACHE_OK, "%s%u", prefix, i);
        if (stats().ops.evictions > 0)
            break;
    }
    cr_assert_gt(stats().ops.evictions, 0, "the cache never filled");
    return i + 1;
}

Test(mover, a_store_into_a_class_without_pages_takes_one_at_once, .timeout = 30)
{
    struct cache_options o = options(4);
    fx_start(&o);
    fill_until_full("f", 4000);
    /* Every page belongs to the 4000-byte class; each of these needs one. */
    cr_expect_eq(put("n", 200, 200), CACHE_OK);
    cr_expect_eq(put("n", 10000, 10000), CACHE_OK);
    cr_expect_eq(put("n", 600000, 600000), CACHE_OK, "a large item takes budget a page gave back");
    const unsigned sizes[] = { 200, 10000, 600000 };
    for (unsigned s = 0; s < 3; s++) {
        struct item *it = get("n", sizes[s]);
        cr_assert_not_null(it, "n%u stored but absent", sizes[s]);
        cr_expect(intact(it, "n", sizes[s]));
        cache_release(&it);
    }
    struct cache_stats st = stats();
    cr_expect_geq(st.mover.slabs_moved_at_once, 3);
    cr_expect_eq(st.mover.slabs_moved, st.mover.slabs_moved_at_once);
    cr_expect_gt(st.mover.slab_reassign_evictions_nomem, 0, "the pages held live 4000-byte items");
    cr_expect_leq(st.total_malloced, 4u << 20);
    fx_verify();
    fx_stop();
}

Test(mover, flushed_items_give_up_their_page_as_reclaimed_not_evicted, .timeout = 30)
{
    struct cache_options o = options(2);
    fx_start(&o);
    fill_until_full("s", 100);
    cache_flush(0);
    uint64_t evicted = stats().ops.evictions;
    cr_expect_eq(put("big", 0, 10000), CACHE_OK);
    cr_expect_eq(put("mid", 0, 1000), CACHE_OK);
    struct cache_stats st = stats();
    cr_expect_eq(st.mover.slab_reassign_evictions_nomem, 0, "flushed items are dead, not evicted");
    cr_expect_eq(st.ops.evictions, evicted);
    cr_expect_gt(st.ops.reclaimed, 0);
    fx_verify();
    fx_stop();
}

/* 1000-byte values: 1184-byte chunks, 885 to a 1 MiB page, carved in order,
 * so the first 885 stored fill the first page. */
#define PER_PAGE 885

Test(mover, a_page_with_a_pinned_item_is_skipped_and_the_item_stays_intact, .timeout = 30)
{
    struct cache_options o = options(2);
    fx_start(&o);
    for (unsigned i = 0; i < 2 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    cr_assert_eq(pages_of_class_for(1000 + 48 + 6), 2);
    /* A reply still sending a0, on the first page. */
    struct item *pinned = get("a", 0);
    cr_assert_not_null(pinned);
    cr_expect_eq(put("b", 0, 10000), CACHE_OK, "the other page must have been taken");
    cr_expect(intact(pinned, "a", 0), "the pinned item's bytes changed under its reader");
    struct item *again = get("a", 0);
    cr_expect_not_null(again, "the pinned item's page was not the one moved");
    cache_release(&again);
    cr_expect(fx_has("a1") && fx_has("a884"), "the first page stayed");
    cr_expect_not(fx_has("a885") || fx_has("a1769"), "the second page went");
    cache_release(&pinned);
    fx_verify();
    fx_stop();
}

Test(mover, when_every_page_is_pinned_the_store_fails_and_no_reader_loses_its_item, .timeout = 30)
{
    struct cache_options o = options(2);
    fx_start(&o);
    for (unsigned i = 0; i < 2 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    struct item *pinned[2] = { get("a", 0), get("a", PER_PAGE) };
    cr_assert(pinned[0] && pinned[1]);
    cr_expect_eq(put("b", 0, 10000), CACHE_NO_MEMORY);
    for (unsigned p = 0; p < 2; p++)
        cr_expect(intact(pinned[p], "a", p * PER_PAGE));
    cr_expect_eq(stats().mover.slabs_moved, 0);
    cache_release(&pinned[0]);
    cache_release(&pinned[1]);
    cr_expect_eq(put("b", 0, 10000), CACHE_OK, "once released, a page can move");
    fx_verify();
    fx_stop();
}

Test(mover, without_eviction_a_store_takes_only_a_page_it_can_empty_by_rescuing, .timeout = 30)
{
    struct cache_options o = options(2);
    o.evict = false;
    fx_start(&o);
    for (unsigned i = 0; i < 2 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    cr_expect_eq(put("a", 2 * PER_PAGE, 1000), CACHE_NO_MEMORY, "-M: full");
    cr_expect_eq(put("b", 0, 10000), CACHE_NO_MEMORY, "-M: no page can be emptied without evicting");
    /* Half the items go: one page's worth of free chunks. */
    for (unsigned i = 0; i < 2 * PER_PAGE; i += 2) {
        char key[16];
        snprintf(key, sizeof(key), "a%u", i);
        cr_assert_eq(cache_delete(key, strlen(key)), CACHE_OK);
    }
    cr_expect_eq(put("b", 0, 10000), CACHE_OK, "the live items of a page fit in free chunks elsewhere");
    struct cache_stats st = stats();
    cr_expect_eq(st.mover.slab_reassign_evictions_nomem, 0);
    cr_expect_eq(st.ops.evictions, 0);
    cr_expect_gt(st.mover.slab_reassign_rescues, 0);
    for (unsigned i = 1; i < 2 * PER_PAGE; i += 2) {
        struct item *it = get("a", i);
        cr_assert_not_null(it, "a%u lost: -M must never drop a live item", i);
        cr_expect(intact(it, "a", i), "a%u corrupted by its rescue", i);
        cache_release(&it);
    }
    fx_verify();
    fx_stop();
}

/* With -M and every item live, no page can be emptied: a refused store must
 * find that out in one look per page, not wait through pass after pass for
 * readers that do not exist (found by the meta fuzz target: 7 ms of a
 * worker per refused set, 700 times a refusal in the item's own class). */
Test(mover, without_eviction_a_full_cache_refuses_a_store_without_waiting, .timeout = 30)
{
    struct cache_options o = options(2);
    o.evict = false;
    fx_start(&o);
    for (unsigned i = 0; i < 2 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    atomic_store(&yields, 0);
    cr_expect_eq(put("b", 0, 10000), CACHE_NO_MEMORY);
    cr_expect_eq(atomic_load(&yields), 0, "the store waited %u times for nothing",
                 atomic_load(&yields));
    cr_expect_eq(stats().mover.slabs_moved, 0);
    fx_verify();
    fx_stop();
}

Test(mover, reassign_answers_as_memcached_does, .timeout = 30)
{
    struct cache_options o = options(8);
    fx_start(&o);
    unsigned a = class_id_for(1000 + 48 + 6);
    unsigned b = class_id_for(100 + 48 + 6);
    unsigned last_slab = cache_class_count() - 1; /* memcached's power_largest */
    cr_expect_eq(cache_slabs_reassign(a, a), CACHE_REASSIGN_SAME);
    cr_expect_eq(cache_slabs_reassign(0, 0), CACHE_REASSIGN_SAME);
    cr_expect_eq(cache_slabs_reassign(a, b), CACHE_REASSIGN_NOSPARE, "no pages yet");
    cr_expect_eq(cache_slabs_reassign(0, b), CACHE_REASSIGN_NOSPARE, "an empty pool");
    cr_expect_eq(cache_slabs_reassign(-1, b), CACHE_REASSIGN_BADCLASS, "no class to pick");
    cr_expect_eq(cache_slabs_reassign(last_slab + 1, b), CACHE_REASSIGN_BADCLASS, "the large class is ours only");
    cr_expect_eq(cache_slabs_reassign(a, -1), CACHE_REASSIGN_BADCLASS);
    cr_expect_eq(cache_slabs_reassign(100, b), CACHE_REASSIGN_BADCLASS);
    cr_expect_eq(cache_slabs_reassign(INT_MIN, b), CACHE_REASSIGN_BADCLASS);
    cr_expect_eq(cache_slabs_reassign(a, INT_MIN), CACHE_REASSIGN_BADCLASS);
    cr_expect_eq(cache_slabs_reassign(INT_MAX, b), CACHE_REASSIGN_BADCLASS);
    for (unsigned i = 0; i < 3 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    cr_expect_eq(cache_slabs_reassign(a, b), CACHE_REASSIGN_OK);
    cr_expect_eq(pages_of_class_for(1000 + 48 + 6), 2);
    cr_expect_eq(pages_of_class_for(100 + 48 + 6), 1);
    cr_expect_eq(cache_slabs_reassign(a, 0), CACHE_REASSIGN_OK, "to the pool");
    cr_expect_eq(pages_of_class_for(1000 + 48 + 6), 1);
    cr_expect_eq(stats().slab_global_page_pool, 1);
    cr_expect_eq(cache_slabs_reassign(a, b), CACHE_REASSIGN_NOSPARE, "a class keeps its last page");
    struct cache_stats st = stats();
    cr_expect_eq(st.mover.slabs_moved, 2);
    cr_expect_eq(st.mover.slabs_moved_at_once, 0);
    cr_expect_eq(st.total_malloced, 2u << 20, "the pool's page went back to the budget");
    fx_verify();
    fx_stop();

    o.slab_reassign = false;
    fx_start(&o);
    cr_expect_not(cache_slab_reassign_enabled());
    cr_expect_eq(cache_slabs_reassign(1, 2), CACHE_REASSIGN_DISABLED);
    fx_stop();
}

Test(mover, a_requested_move_rescues_live_items_into_free_chunks, .timeout = 30)
{
    struct cache_options o = options(8);
    fx_start(&o);
    for (unsigned i = 0; i < 3 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    for (unsigned i = 0; i < 3 * PER_PAGE; i += 2) {
        char key[16];
        snprintf(key, sizeof(key), "a%u", i);
        cr_assert_eq(cache_delete(key, strlen(key)), CACHE_OK);
    }
    unsigned a = class_id_for(1000 + 48 + 6);
    cr_assert_eq(cache_slabs_reassign(a, class_id_for(10000)), CACHE_REASSIGN_OK);
    cr_expect_eq(pages_of_class_for(1000 + 48 + 6), 2);
    struct cache_stats st = stats();
    cr_expect_eq(st.mover.slabs_moved, 1);
    cr_expect_gt(st.mover.slab_reassign_rescues, 0);
    cr_expect_eq(st.mover.slab_reassign_evictions_nomem, 0, "every live item had a free chunk to go to");
    for (unsigned i = 1; i < 3 * PER_PAGE; i += 2) {
        struct item *it = get("a", i);
        cr_assert_not_null(it, "a%u lost in the move", i);
        cr_expect(intact(it, "a", i), "a%u corrupted by the move", i);
        cache_release(&it);
    }
    cr_expect_eq(put("b", 0, 10000), CACHE_OK);
    cr_expect_eq(stats().mover.slabs_moved_at_once, 0, "the moved page was waiting for it");
    fx_verify();
    fx_stop();
}

/* Polls cond every 10 ms for up to ten seconds. */
#define WAIT_FOR(cond)                                                  \
    do {                                                                \
        for (unsigned w_ = 0; w_ < 1000 && !(cond); w_++)               \
            usleep(10 * 1000);                                          \
    } while (0)

Test(mover, a_background_move_waits_for_a_reader_and_never_frees_under_it, .timeout = 60)
{
    struct cache_options o = options(8);
    o.manual = false; /* the maintenance thread runs the move */
    fx_start(&o);
    for (unsigned i = 0; i < 3 * PER_PAGE; i++)
        cr_assert_eq(put("a", i, 1000), CACHE_OK);
    unsigned a = class_id_for(1000 + 48 + 6);
    /* a0 is on the first page, which the move takes first. */
    struct item *pinned = get("a", 0);
    cr_assert_not_null(pinned);
    cr_assert_eq(cache_slabs_reassign(a, 0), CACHE_REASSIGN_OK);
    cr_expect_eq(cache_slabs_reassign(a, 0), CACHE_REASSIGN_RUNNING);
    /* After a while the mover unlinks the item it waits for... */
    WAIT_FOR(!fx_has("a0"));
    cr_expect_not(fx_has("a0"), "a busy item must be unlinked eventually");
    cr_expect(stats().slab_reassign_running, "and wait for its reader");
    cr_expect(intact(pinned, "a", 0), "the reader's bytes must stay intact");
    cr_expect_eq(stats().mover.slabs_moved, 0);
    /* ...and finishes once the reader is done. */
    cache_release(&pinned);
    WAIT_FOR(!stats().slab_reassign_running);
    struct cache_stats st = stats();
    cr_expect_not(st.slab_reassign_running);
    cr_expect_eq(st.mover.slabs_moved, 1);
    cr_expect_eq(st.mover.slab_reassign_busy_deletes, 1);
    cr_expect_gt(st.mover.slab_reassign_busy_items, 0);
    cr_expect_eq(pages_of_class_for(1000 + 48 + 6), 2);
    fx_verify();
    fx_stop();
}

/* Keys whose hash shares the stripe lock of key's: hash.c's stripe is the
 * hash's low bits, one of HT_STRIPES (1024). */
static unsigned
same_stripe_keys(const char *key, unsigned *out, unsigned want)
{
    uint64_t mine = XXH3_64bits(key, strlen(key)) & 1023;
    unsigned n = 0;
    for (unsigned i = 0; n < want && i < 50u * 1000 * 1000; i++) {
        char k[32];
        int len = snprintf(k, sizeof(k), "f%u", i);
        if ((XXH3_64bits(k, (size_t)len) & 1023) == mine)
            out[n++] = i;
    }
    return n;
}

Test(mover, an_append_under_its_stripe_lock_still_takes_a_page, .timeout = 60)
{
    struct cache_options o = options(3);
    fx_start(&o);
    /* The append's own value block finds its class with a page. */
    cr_assert_eq(put("pre", 0, 5000), CACHE_OK); /* 5680-byte chunks */
    /* Every item on every other page shares the stripe the append will
     * hold, so the page it takes can only be emptied under that lock. */
    static unsigned keys[2 * PER_PAGE];
    cr_assert_eq(same_stripe_keys("chain0", keys, 2 * PER_PAGE), 2 * PER_PAGE);
    for (unsigned i = 0; i < 2 * PER_PAGE; i++)
        cr_assert_eq(put("f", keys[i], 1000), CACHE_OK);
    cr_assert_eq(put("chain", 0, 1000), CACHE_OK); /* evicts f<keys[0]> */
    cr_assert_eq(stats().ops.evictions, 1);
    /* The joined value needs the 7104-byte class, which owns no page. */
    char *add = malloc(5000);
    memset(add, 'z', 5000);
    cr_expect_eq(fx_store("chain0", add, 5000, 0, 0, CACHE_APPEND, 0, NULL), CACHE_OK);
    free(add);
    struct item *it = get("chain", 0);
    cr_assert_not_null(it);
    cr_expect_eq(item_nbytes(it), 1000 + 5000 + 2);
    cr_expect_eq(memcmp(item_value(it), "chain0|", 7), 0);
    cr_expect_eq(item_value(it)[1000 + 4999], 'z');
    cache_release(&it);
    cr_expect_eq(stats().mover.slabs_moved_at_once, 1);
    fx_verify();
    fx_stop();
}

Test(mover, stats_reset_zeroes_the_mover_counters, .timeout = 30)
{
    struct cache_options o = options(2);
    fx_start(&o);
    fill_until_full("f", 4000);
    cr_assert_eq(put("n", 0, 200), CACHE_OK);
    cr_assert_gt(stats().mover.slabs_moved, 0);
    cache_stats_reset();
    cr_expect_eq(stats().mover.slabs_moved, 0);
    cr_expect_eq(stats().mover.slab_reassign_evictions_nomem, 0);
    fx_stop();
}
