/* Tests for cache/automove.c: pages follow evictions from the class with
 * the oldest tail, and free pages go back to the pool. */
#include "cache_fixture.h"

static void
put(const char *prefix, unsigned i, size_t vlen)
{
    char key[32];
    snprintf(key, sizeof(key), "%s%u", prefix, i);
    char *v = malloc(vlen);
    memset(v, 'v', vlen);
    cr_assert_eq(fx_store(key, v, vlen, 0, 0, CACHE_SET, 0, NULL), CACHE_OK, "%s", key);
    free(v);
}

/* An item's size: header, key, value and "\r\n" (no flags). */
#define TOTAL(klen, vlen) (CACHE_ITEM_HEADER + (klen) + (vlen) + 2)

static uint64_t
pages_of(size_t total)
{
    for (unsigned c = 0; c + 1 < cache_class_count(); c++) {
        struct cache_class_stats cs;
        cache_class_stats_get(c, &cs);
        if (cs.chunk_size >= total)
            return cs.total_pages;
    }
    return 0;
}

static struct cache_stats
stats(void)
{
    struct cache_stats st;
    cache_stats_get(&st);
    return st;
}

/* One second passes: the automover decides, the mover moves. */
static void
tick(void)
{
    fx_advance(1);
    for (unsigned i = 0; i < 4; i++)
        cache_maintain();
}

static void
start(unsigned level)
{
    struct cache_options o = fx_options(8);
    o.slab_automove = level;
    o.slab_automove_window = 3;
    fx_start(&o);
}

/* 8 pages of old 1000-byte items, then a class that keeps evicting. */
static void
old_class_then_a_hungry_one(unsigned seconds)
{
    for (unsigned i = 0; i < 8 * 885; i++)
        put("old", i, 1000);
    cr_assert_eq(pages_of(TOTAL(7, 1000)), 8);
    unsigned k = 0;
    for (unsigned s = 0; s < seconds; s++) {
        for (unsigned i = 0; i < 4000; i++) /* more than half a page a second */
            put("new", k++, 100);
        tick();
    }
}

Test(automove, the_evicting_class_gets_pages_from_the_oldest, .timeout = 60)
{
    start(1);
    old_class_then_a_hungry_one(10);
    struct cache_stats st = stats();
    cr_expect_gt(st.mover.slabs_moved, st.mover.slabs_moved_at_once, "automove moved no page");
    cr_expect_gt(pages_of(TOTAL(8, 100)), 1);
    cr_expect_lt(pages_of(TOTAL(7, 1000)), 8);
    fx_verify();
    fx_stop();
}

Test(automove, level_0_moves_nothing_in_the_background, .timeout = 60)
{
    start(0);
    old_class_then_a_hungry_one(10);
    struct cache_stats st = stats();
    cr_expect_eq(st.mover.slabs_moved, st.mover.slabs_moved_at_once);
    cr_expect_eq(pages_of(TOTAL(8, 100)), 1, "only the page the first store took");
    fx_stop();
}

Test(automove, level_2_moves_without_waiting_for_the_window, .timeout = 60)
{
    start(2);
    old_class_then_a_hungry_one(2);
    struct cache_stats st = stats();
    cr_expect_gt(st.mover.slabs_moved, st.mover.slabs_moved_at_once);
    fx_verify();
    fx_stop();
}

Test(automove, automove_can_be_switched_at_run_time, .timeout = 60)
{
    start(0);
    cache_slab_automove_set(2);
    cr_expect_eq(cache_slab_automove(), 2);
    cache_slab_automove_ratio_set(0.5);
    cr_expect_float_eq(cache_slab_automove_ratio(), 0.5, 1e-9);
    old_class_then_a_hungry_one(2);
    cr_expect_gt(stats().mover.slabs_moved, stats().mover.slabs_moved_at_once);
    fx_stop();
}

Test(automove, free_pages_go_back_to_the_pool, .timeout = 60)
{
    start(1);
    for (unsigned i = 0; i < 8 * 885; i++)
        put("old", i, 1000);
    uint64_t before = stats().total_malloced;
    for (unsigned i = 0; i < 8 * 885; i++) {
        char key[16];
        snprintf(key, sizeof(key), "old%u", i);
        cache_delete(key, strlen(key));
    }
    for (unsigned s = 0; s < 10; s++)
        tick();
    struct cache_stats st = stats();
    cr_expect_lt(pages_of(TOTAL(7, 1000)), 8);
    cr_expect_lt(st.total_malloced, before, "pages in the pool are not charged");
    cr_expect_geq(st.slab_global_page_pool, 1);
    cr_expect_eq(st.mover.slab_reassign_evictions_nomem, 0);
    fx_verify();
    fx_stop();
}
