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

/* --- stats sizes ---------------------------------------------------------- */

struct size_lines {
    uint32_t size[64];
    uint64_t count[64];
    unsigned n;
    uint64_t vm_peak_kb;    /* VmPeak while the histogram is being reported */
};

static uint64_t
vm_peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmPeak: %lu kB", &kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(kb, 0);
    return kb;
}

static void
record_size(uint32_t size, uint64_t count, void *arg)
{
    struct size_lines *l = arg;
    cr_assert_lt(l->n, 64);
    l->size[l->n] = size;
    l->count[l->n] = count;
    l->n++;
    l->vm_peak_kb = vm_peak_kb();
}

static void
start_huge_items(void)
{
    /* -I 1g: one 32-byte bucket per possible size would be 268 MB. */
    struct cache_options o = fx_options(64);
    o.item_max = 1u << 30;
    fx_start(&o);
}

static void
store_sized(const char *key, size_t vlen)
{
    char *v = malloc(vlen + 1);
    memset(v, 'v', vlen);
    v[vlen] = '\0';
    cr_assert_eq(fx_set(key, v), CACHE_OK, "%s: %zu bytes", key, vlen);
    free(v);
}

Test(stats_sizes, memory_does_not_grow_with_the_item_limit, .init = start_huge_items,
     .fini = fx_stop, .timeout = 20)
{
    store_sized("a", 1);
    uint64_t before = vm_peak_kb();
    struct size_lines l = { .n = 0 };
    cache_sizes_foreach(record_size, &l);
    cr_assert_eq(l.n, 1);
    cr_expect_lt(l.vm_peak_kb - before, 16 * 1024,
                 "stats sizes mapped %lu kB more at -I 1g", (unsigned long)(l.vm_peak_kb - before));
}

/* The bucket an item of vlen value bytes under a 2-byte key falls in:
 * memcached's size for it, rounded up to 32 bytes. */
static uint32_t
bucket(size_t vlen)
{
    return (cache_item_size(2, 0, vlen + 2) + 31) / 32 * 32;
}

Test(stats_sizes, lists_slab_and_large_items_in_size_order, .init = start_huge_items,
     .fini = fx_stop, .timeout = 20)
{
    store_sized("l2", 3000000);       /* large */
    store_sized("s1", 1);
    store_sized("l1", 600000);        /* large */
    store_sized("s2", 2);             /* s1's bucket */
    store_sized("s3", 100);
    store_sized("l3", 600001);        /* l1's bucket */
    cr_assert_eq(bucket(1), bucket(2));
    cr_assert_eq(bucket(600000), bucket(600001));
    struct size_lines l = { .n = 0 };
    cache_sizes_foreach(record_size, &l);
    cr_assert_eq(l.n, 4);
    uint32_t want_size[] = { bucket(1), bucket(100), bucket(600000), bucket(3000000) };
    uint64_t want_count[] = { 2, 1, 2, 1 };
    for (unsigned i = 0; i < 4; i++) {
        cr_expect_eq(l.size[i], want_size[i], "line %u: size %u", i, l.size[i]);
        cr_expect_eq(l.count[i], want_count[i], "line %u: count %lu", i, (unsigned long)l.count[i]);
    }
}

Test(stats_sizes, counts_every_item_of_a_class_bigger_than_one_walk_step, .init = fx_start_default,
     .fini = fx_stop, .timeout = 30)
{
    /* Many pages of one class: the walk takes the class lock batch by batch. */
    char key[32];
    for (unsigned i = 0; i < 50000; i++) {
        snprintf(key, sizeof(key), "k%06u", i);
        cr_assert_eq(fx_set(key, "v"), CACHE_OK);
    }
    for (unsigned i = 0; i < 50000; i += 3) {
        snprintf(key, sizeof(key), "k%06u", i);
        cache_delete(key, strlen(key));
    }
    struct size_lines l = { .n = 0 };
    cache_sizes_foreach(record_size, &l);
    cr_assert_eq(l.n, 1);
    cr_expect_eq(l.size[0], (cache_item_size(7, 0, 1 + 2) + 31) / 32 * 32); /* k000000 = v */
    cr_expect_eq(l.count[0], 50000 - 16667);
}

static void
start_huge_items_without_cas(void)
{
    struct cache_options o = fx_options(64);
    o.item_max = 1u << 30;
    o.use_cas = false;
    o.slab_chunk_max = 4096;
    fx_start(&o);
}

/* Without CAS memcached's size for an item is 7 bytes under ours, so the
 * largest slab items and the smallest large ones can share a bucket: it is
 * still one line, and the lines stay in size order. */
Test(stats_sizes, slab_and_large_items_of_one_bucket_make_one_line, .init = start_huge_items_without_cas,
     .fini = fx_stop, .timeout = 20)
{
    char key[8];
    uint32_t seen_bucket = 0;
    unsigned stored = 0;
    /* Sizes on both sides of slab_chunk_max, one byte apart. */
    for (size_t vlen = 3950; vlen < 4100; vlen++) {
        snprintf(key, sizeof(key), "%04zu", vlen);
        char *v = malloc(vlen + 1);
        memset(v, 'v', vlen);
        v[vlen] = '\0';
        cr_assert_eq(fx_set(key, v), CACHE_OK);
        free(v);
        stored++;
    }
    struct size_lines l = { .n = 0 };
    cache_sizes_foreach(record_size, &l);
    uint64_t total = 0;
    for (unsigned i = 0; i < l.n; i++) {
        cr_expect_gt(l.size[i], seen_bucket, "line %u (%u) out of order or repeated", i, l.size[i]);
        seen_bucket = l.size[i];
        total += l.count[i];
    }
    cr_expect_eq(total, stored);
}
