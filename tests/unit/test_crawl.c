/* Tests for cache/crawl.c: the on-demand LRU crawler. */
#include "cache_fixture.h"

/* Without the maintainer, whose background reclaim would free the expired
 * items before the crawler meets them. */
static void
start_crawl(void)
{
    struct cache_options o = fx_options(64);
    o.lru_maintainer = false;
    fx_start(&o);
}

TestSuite(crawl, .init = start_crawl, .fini = fx_stop, .timeout = 20);

static void
run_crawl(void)
{
    for (unsigned i = 0; i < 1000 && cache_maintain(); i++)
        ;
    struct cache_crawler_status cs;
    cache_crawler_status(&cs);
    cr_assert_not(cs.running, "the crawl finished");
}

Test(crawl, a_crawl_frees_expired_items_and_counts_them)
{
    cache_crawler_tune(0, 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "e%d", i);
        fx_set_ttl(k, "v", 5);
    }
    fx_set("stays", "v");
    fx_advance(6);
    cr_assert_eq(cache_crawl(~UINT64_C(0)), CACHE_CRAWL_OK);
    run_crawl();
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.crawler_reclaimed, 50);
    cr_expect_eq(st.ops.crawler_items_checked, 51);
    cr_expect_eq(st.ops.expired_unfetched, 50);
    cr_expect_eq(st.ops.reclaimed, 0, "reclaimed counts the maintainer's frees, not the crawler's");
    cr_expect_eq(st.curr_items, 1);
    struct cache_crawler_status cs;
    cache_crawler_status(&cs);
    cr_expect_eq(cs.starts, 1);
    fx_verify();
}

Test(crawl, a_crawl_of_other_classes_leaves_this_one_alone)
{
    fx_set_ttl("e", "v", 5);
    fx_advance(6);
    cr_assert_eq(cache_crawl(UINT64_C(1) << 4), CACHE_CRAWL_OK); /* class 5 */
    run_crawl();
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.crawler_reclaimed, 0);
    cr_expect_eq(st.curr_items, 1);
}

Test(crawl, one_crawl_at_a_time_and_none_for_no_class)
{
    for (int i = 0; i < 10000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        fx_set(k, "v");
    }
    cr_assert_eq(cache_crawl(~UINT64_C(0)), CACHE_CRAWL_OK);
    cr_expect_eq(cache_crawl(~UINT64_C(0)), CACHE_CRAWL_RUNNING);
    run_crawl();
    cr_expect_eq(cache_crawl(0), CACHE_CRAWL_NONE);
}

Test(crawl, tocrawl_bounds_the_items_looked_at_per_class)
{
    cache_crawler_tune(0, 10);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        fx_set(k, "v");
    }
    cr_assert_eq(cache_crawl(UINT64_C(1)), CACHE_CRAWL_OK);
    run_crawl();
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.crawler_items_checked, 10);
}

Test(crawl, a_disabled_crawler_refuses_and_enabling_twice_fails)
{
    cr_assert(cache_crawler_set(false));
    cr_expect_eq(cache_crawl(~UINT64_C(0)), CACHE_CRAWL_DISABLED);
    cr_expect(cache_crawler_set(true));
    cr_expect_not(cache_crawler_set(true), "memcached cannot start a second crawler");
    cr_expect_eq(cache_crawl(~UINT64_C(0)), CACHE_CRAWL_OK);
}
