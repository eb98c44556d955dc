/* Tests for cache/stats.c: counters as memcached names them, summed over
 * threads, and reset. */
#include "cache_fixture.h"

#include <pthread.h>

TestSuite(stats, .init = fx_start_default, .fini = fx_stop, .timeout = 10);

Test(stats, counters_follow_the_operations)
{
    fx_set("a", "1");
    fx_set("b", "22");
    fx_expect("a", "1");
    fx_expect("zz", NULL);
    cache_delete("a", 1);
    cache_delete("a", 1);
    uint64_t v;
    cache_arith("b", 1, true, 1, &v);
    cache_arith("b", 1, false, 1, &v);
    cache_arith("q", 1, true, 1, &v);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.cmd_set, 2);
    cr_expect_eq(st.ops.get_hits, 1);
    cr_expect_eq(st.ops.get_misses, 1);
    cr_expect_eq(st.ops.delete_hits, 1);
    cr_expect_eq(st.ops.delete_misses, 1);
    cr_expect_eq(st.ops.incr_hits, 1);
    cr_expect_eq(st.ops.decr_hits, 1);
    cr_expect_eq(st.ops.incr_misses, 1);
    cr_expect_eq(st.curr_items, 1);
    cr_expect_eq(st.ops.total_items, 2);
    cr_expect_eq(st.bytes, CACHE_ITEM_HEADER + 1 + 4, "one item: header, key 'b', '22\\r\\n'");
    cr_expect_eq(st.limit_maxbytes, 64u << 20);
    cr_expect_eq(st.total_malloced, 1u << 20);
}

static void *
getter(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        fx_has("a");
    return NULL;
}

Test(stats, counts_from_every_thread_are_summed)
{
    fx_set("a", "1");
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, getter, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.get_hits, 3000);
}

Test(stats, reset_zeroes_operation_counters_but_not_items)
{
    fx_set("a", "1");
    fx_expect("a", "1");
    cache_stats_reset();
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.get_hits, 0);
    cr_expect_eq(st.ops.cmd_set, 0);
    cr_expect_eq(st.curr_items, 1);
    fx_expect("a", "1");
    cache_stats_get(&st);
    cr_expect_eq(st.ops.get_hits, 1);
}

Test(stats, class_stats_describe_pages_and_chunks)
{
    fx_set("a", "1");
    struct cache_class_stats cs;
    cache_class_stats_get(0, &cs);
    cr_expect_eq(cs.chunk_size, 96);
    cr_expect_eq(cs.chunks_per_page, (1u << 20) / 96);
    cr_expect_eq(cs.total_pages, 1);
    cr_expect_eq(cs.used_chunks, 1);
    cr_expect_eq(cs.free_chunks_end, cs.chunks_per_page - 1);
    cr_expect_eq(cs.number, 1);
    cr_expect_eq(cs.ops.cmd_set, 1);
    cache_delete("a", 1);
    cache_class_stats_get(0, &cs);
    cr_expect_eq(cs.free_chunks, 1);
    cr_expect_eq(cs.used_chunks, 0);
}

static void
count_sizes(uint32_t size, uint64_t count, void *arg)
{
    uint64_t *seen = arg;
    cr_expect_eq(size % 32, 0);
    seen[0] += count;
    seen[1] = size;
}

Test(stats, sizes_histogram_counts_every_item)
{
    fx_set("a", "1");
    fx_set("b", "2");
    uint64_t seen[2] = { 0, 0 };
    cache_sizes_foreach(count_sizes, seen);
    cr_expect_eq(seen[0], 2);
    cr_expect_eq(seen[1], 64, "52-byte items fall in the 64-byte bucket");
}
