/* Tests for cache/dump.c: item views, class dumps, resumable walks, the
 * run-time knobs (LRU tuning, memory limit) and the eviction hook. */
#include "cache_fixture.h"

TestSuite(dump, .init = fx_start_default, .fini = fx_stop, .timeout = 20);

struct seen {
    char keys[64][32];
    unsigned n;
    unsigned stop_after;    /* 0: never stop */
};

static bool
collect(const struct cache_item_view *v, void *arg)
{
    struct seen *s = arg;
    if (s->n < 64)
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%.*s", v->nkey, v->key);
    s->n++;
    return s->stop_after == 0 || s->n < s->stop_after;
}

Test(dump, item_size_counts_memcacheds_header_cas_and_key_nul)
{
    /* a 1-byte key, a 10-byte value: memcached's stats sizes puts it at 70,
     * bucket 96, whatever this cache's own header is */
    cr_expect_eq(cache_item_size(1, 0, 12), 48 + 8 + 1 + 1 + 12);
}

Test(dump, item_size_counts_client_flags_only_when_not_zero)
{
    /* memcached 1.6.18 stores the flags word only for flags other than 0:
     * `me` and metadump say size=65 for "set a 0 0 5" and 69 for flags 7 */
    cr_expect_eq(cache_item_size(1, 0, 7), 65);
    cr_expect_eq(cache_item_size(1, 7, 7), 69);
}

Test(dump, class_dump_lists_a_class_newest_first_up_to_the_limit)
{
    fx_set("a", "1");
    fx_set("b", "2");
    fx_set("c", "3");
    struct seen s = {0};
    cr_expect_eq(cache_class_dump(1, 0, collect, &s), 3);
    struct seen two = {0};
    cr_expect_eq(cache_class_dump(1, 2, collect, &two), 2);
    struct seen none = {0};
    cr_expect_eq(cache_class_dump(2, 0, collect, &none), 0, "class 2 holds nothing");
    cr_expect_eq(cache_class_dump(0, 0, collect, &none), 0);
    cr_expect_eq(cache_class_dump(200, 0, collect, &none), 0);
}

Test(dump, class_dump_stops_when_the_callback_says_so)
{
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        fx_set(k, "v");
    }
    struct seen s = { .stop_after = 4 };
    cr_expect_eq(cache_class_dump(1, 0, collect, &s), 3, "the item that said stop is not counted");
}

Test(dump, a_walk_in_small_steps_sees_every_live_item_once)
{
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "key%d", i);
        fx_set(k, "value");
    }
    static uint8_t hits[N];
    memset(hits, 0, sizeof(hits));
    struct cache_walk w;
    cache_walk_begin(&w, ~UINT64_C(0));
    unsigned steps = 0;
    struct seen s = {0};
    bool more = true;
    while (more && steps < 100000) {
        more = cache_walk_step(&w, 7, collect, &s);
        steps++;
    }
    cr_assert_not(more, "the walk ends");
    cr_expect_eq(s.n, N, "each item once: saw %u", s.n);
    cr_expect_gt(steps, N / 7, "small budgets mean many steps");
}

Test(dump, a_walk_leaves_out_dead_items_and_other_classes)
{
    fx_set("live", "v");
    fx_set_ttl("dying", "v", 5);
    char big[500];
    memset(big, 'x', sizeof(big));
    fx_store("big", big, sizeof(big), 0, 0, CACHE_SET, 0, NULL);
    fx_advance(6);
    struct cache_walk w;
    cache_walk_begin(&w, UINT64_C(1)); /* class 1 only */
    struct seen s = {0};
    while (cache_walk_step(&w, 1000, collect, &s))
        ;
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.keys[0], "live");
}

Test(dump, lru_tuning_reads_back_what_was_set)
{
    struct cache_lru_tuning t;
    cache_lru_get(&t);
    cr_expect(t.segmented, "segmented with the maintainer, as memcached");
    cr_expect_eq(t.hot_pct, 20);
    cr_expect_eq(t.warm_pct, 40);
    t.segmented = false;
    t.temp_lru = true;
    t.temp_ttl = 30;
    cache_lru_set(&t);
    struct cache_lru_tuning u;
    cache_lru_get(&u);
    cr_expect_not(u.segmented);
    cr_expect(u.temp_lru);
    cr_expect_eq(u.temp_ttl, 30);
}

Test(dump, a_raised_memory_limit_lets_a_full_cache_grow)
{
    fx_stop();
    struct cache_options o = fx_options(2);
    o.evict = false;
    fx_start(&o);
    char v[1000];
    memset(v, 'v', sizeof(v));
    unsigned stored = 0;
    for (unsigned i = 0; i < 5000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%u", i);
        if (fx_store(k, v, sizeof(v), 0, 0, CACHE_SET, 0, NULL) == CACHE_OK)
            stored++;
    }
    cr_assert_lt(stored, 5000, "-m 2 without eviction fills up");
    cr_assert(cache_set_mem_limit(16u << 20));
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.limit_maxbytes, 16u << 20);
    cr_expect_eq(fx_store("more", v, sizeof(v), 0, 0, CACHE_SET, 0, NULL), CACHE_OK,
                 "pages past the old budget (and past its arena) can be had");
    cr_expect_not(cache_set_mem_limit(1000), "below one page");
    fx_verify();
}

Test(dump, a_lowered_memory_limit_holds_the_cache_under_it)
{
    cr_assert(cache_set_mem_limit(2u << 20));
    char v[1000];
    memset(v, 'v', sizeof(v));
    for (unsigned i = 0; i < 5000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%05u", i);
        cr_assert_eq(fx_store(k, v, sizeof(v), 0, 0, CACHE_SET, 0, NULL), CACHE_OK,
                     "eviction makes room under the new limit");
    }
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.limit_maxbytes, 2u << 20);
    cr_expect_leq(st.total_malloced, 2u << 20);
    cr_expect_gt(st.ops.evictions, 0);
}

static char evicted_key[64];
static unsigned evictions_seen;

static void
on_evict(const struct cache_item_view *v)
{
    snprintf(evicted_key, sizeof(evicted_key), "%.*s", v->nkey, v->key);
    evictions_seen++;
}

Test(dump, the_eviction_hook_sees_each_evicted_item)
{
    fx_stop();
    struct cache_options o = fx_options(1);
    fx_start(&o);
    evictions_seen = 0;
    cache_set_evict_hook(on_evict);
    char v[100];
    memset(v, 'v', sizeof(v));
    for (unsigned i = 0; i < 8000; i++) { /* more than a page of them */
        char k[16];
        snprintf(k, sizeof(k), "k%05u", i); /* one width: one class */
        enum cache_result r = fx_store(k, v, sizeof(v), 0, 0, CACHE_SET, 0, NULL);
        cr_assert_eq(r, CACHE_OK, "store %u: %s", i, cache_result_name(r));
    }
    cache_set_evict_hook(NULL);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_gt(evictions_seen, 0);
    cr_expect_eq(evictions_seen, st.ops.evictions);
    cr_expect_eq(evicted_key[0], 'k', "a key we stored: %s", evicted_key);
    cr_expect_not(fx_has(evicted_key), "the last one evicted is gone");
}

static bool
copy_view(const struct cache_item_view *v, void *arg)
{
    struct {
        struct cache_item_view *v;
        bool *found;
    } *box = arg;
    *box->v = *v;
    *box->found = true;
    return true;
}

Test(dump, a_view_carries_the_last_access)
{
    fx_set("k", "v");
    fx_advance(5);
    struct cache_walk w;
    cache_walk_begin(&w, UINT64_C(1));
    struct cache_item_view got;
    memset(&got, 0, sizeof(got));
    bool found = false;
    /* one view is enough: copy it out of the callback */
    struct {
        struct cache_item_view *v;
        bool *found;
    } box = { &got, &found };
    while (cache_walk_step(&w, 1000, copy_view, &box))
        ;
    cr_assert(found);
    cr_expect_eq(got.idle, 5);
    cr_expect_eq(got.atime, (int64_t)clock_process_started() + clock_now() - 5);
}

static bool
size_by_key(const struct cache_item_view *v, void *arg)
{
    uint32_t (*got)[2] = arg; /* per key "a", "b": size, flags */
    if (v->nkey == 1 && (v->key[0] == 'a' || v->key[0] == 'b')) {
        got[v->key[0] - 'a'][0] = v->size;
        got[v->key[0] - 'a'][1] = v->flags;
    }
    return true;
}

Test(dump, a_view_sizes_an_item_as_memcached_flags_included)
{
    cr_assert_eq(fx_store("a", "hello", 5, 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    cr_assert_eq(fx_store("b", "hello", 5, 7, 0, CACHE_SET, 0, NULL), CACHE_OK);
    uint32_t got[2][2] = { { 0, 0 }, { 0, 0 } };
    cr_assert_eq(cache_class_dump(1, 0, size_by_key, got), 2);
    /* memcached 1.6.18's metadump: size=65, and size=69 with flags 7 */
    cr_expect_eq(got[0][0], 65);
    cr_expect_eq(got[0][1], 0);
    cr_expect_eq(got[1][0], 69);
    cr_expect_eq(got[1][1], 7);
}

Test(dump, a_lowered_limit_gives_pages_back_until_under_it)
{
    fx_stop();
    struct cache_options o = fx_options(16);
    fx_start(&o);
    char v[1000];
    memset(v, 'v', sizeof(v));
    for (unsigned i = 0; i < 8000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%05u", i);
        cr_assert_eq(fx_store(k, v, sizeof(v), 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    }
    struct cache_stats st;
    cache_stats_get(&st);
    cr_assert_gt(st.total_malloced, 4u << 20);
    cr_assert(cache_set_mem_limit(4u << 20));
    for (unsigned i = 0; i < 10000 && st.total_malloced > (4u << 20); i++) {
        cache_maintain();
        cache_stats_get(&st);
    }
    cr_expect_leq(st.total_malloced, 4u << 20, "still %llu bytes", (unsigned long long)st.total_malloced);
    cr_expect_eq(fx_store("after", v, sizeof(v), 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    fx_verify();
}
