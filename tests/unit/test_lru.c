/* Tests for cache/lru.c: eviction order, scan resistance, referenced items. */
#include "cache_fixture.h"

static void
start_small(void)
{
    struct cache_options o = fx_options(1);
    fx_start(&o);
}

TestSuite(lru, .init = start_small, .fini = fx_stop, .timeout = 20);

/* header + key (up to 10) + 142: all in the 192-byte class */
static char value[140];

static void
put(const char *prefix, unsigned i)
{
    char key[32];
    snprintf(key, sizeof(key), "%s:%u", prefix, i);
    memset(value, 'v', sizeof(value));
    enum cache_result r = fx_store(key, value, sizeof(value), 0, 0, CACHE_SET, 0, NULL);
    cr_assert_eq(r, CACHE_OK, "%s: %s", key, cache_result_name(r));
}

static bool
has(const char *prefix, unsigned i)
{
    char key[32];
    snprintf(key, sizeof(key), "%s:%u", prefix, i);
    return fx_has(key);
}

/* One 1 MiB page of 192-byte chunks holds 5461 items. */
#define CAPACITY 5461

Test(lru, unread_items_are_evicted_oldest_first)
{
    for (unsigned i = 0; i < CAPACITY * 2; i++)
        put("k", i);
    unsigned first_present = CAPACITY * 2;
    for (unsigned i = 0; i < CAPACITY * 2; i++)
        if (has("k", i)) {
            first_present = i;
            break;
        }
    for (unsigned i = first_present; i < CAPACITY * 2; i++)
        cr_assert(has("k", i), "k:%u evicted while older k:%u survives", i, first_present);
    cr_expect_geq(first_present, CAPACITY - 100);
    fx_verify();
}

Test(lru, a_scan_does_not_flush_the_working_set)
{
    const unsigned working = CAPACITY / 4;
    for (unsigned i = 0; i < working; i++)
        put("hot", i);
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < working; i++)
            cr_assert(has("hot", i));
    /* A scan three times the cache's size, each key written once, while the
     * application keeps reading its working set. */
    for (unsigned i = 0; i < CAPACITY * 3; i++) {
        put("scan", i);
        if (i % 4 == 0)
            (void)has("hot", (i / 4) % working);
    }
    unsigned kept = 0;
    for (unsigned i = 0; i < working; i++)
        kept += has("hot", i);
    cr_expect_geq(kept, working * 9 / 10, "only %u of %u working-set keys survived", kept, working);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_gt(st.ops.moves_to_warm, 0);
    cr_expect_gt(st.ops.evictions, 0);
    fx_verify();
}

Test(lru, without_reads_a_scan_does_evict_everything_old)
{
    for (unsigned i = 0; i < CAPACITY / 4; i++)
        put("cold", i);
    for (unsigned i = 0; i < CAPACITY * 3; i++)
        put("scan", i);
    unsigned kept = 0;
    for (unsigned i = 0; i < CAPACITY / 4; i++)
        kept += has("cold", i);
    cr_expect_eq(kept, 0);
}

Test(lru, referenced_items_are_not_evicted_under_a_reader)
{
    put("pinned", 0);
    struct item *it = cache_get("pinned:0", 8);
    cr_assert_not_null(it);
    for (unsigned i = 0; i < CAPACITY * 2; i++)
        put("k", i);
    /* Still referenced: the bytes are intact and the item still linked. */
    cr_expect_eq(item_nbytes(it), sizeof(value) + 2);
    cr_expect_eq(memcmp(item_value(it), value, sizeof(value)), 0);
    cache_release(&it);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_gt(st.ops.evictions, 0);
    fx_verify();
}

Test(lru, segment_counts_add_up)
{
    for (unsigned i = 0; i < CAPACITY; i++) {
        put("k", i);
        if (i % 3 == 0) {
            (void)has("k", i);
            (void)has("k", i);
        }
    }
    struct cache_class_stats cs;
    cache_class_stats_get(3, &cs);
    cr_expect_eq(cs.number, cs.number_hot + cs.number_warm + cs.number_cold);
    cr_expect_gt(cs.number_cold, 0);
    cr_expect_leq(cs.number_hot, cs.number * 20 / 100 + 1);
    fx_verify();
}

Test(lru, short_ttls_go_to_the_temporary_lru_when_it_is_on)
{
    struct cache_lru_tuning t;
    cache_lru_get(&t);
    t.temp_lru = true;
    t.temp_ttl = 60;
    cache_lru_set(&t);
    cr_assert_eq(fx_set_ttl("short", "v", 30), CACHE_OK);
    cr_assert_eq(fx_set_ttl("long", "v", 3600), CACHE_OK);
    cr_assert_eq(fx_set("never", "v"), CACHE_OK);
    struct cache_class_stats cs;
    cache_class_stats_get(0, &cs);
    cr_expect_eq(cs.number_temp, 1);
    cr_expect_eq(cs.number, 3);
    fx_verify();
}

Test(lru, flat_mode_keeps_every_item_in_cold)
{
    struct cache_lru_tuning t;
    cache_lru_get(&t);
    t.segmented = false;
    cache_lru_set(&t);
    for (unsigned i = 0; i < 100; i++)
        put("flat", i);
    struct cache_class_stats cs;
    cache_class_stats_get(3, &cs); /* 140-byte values: the 192-byte class */
    cr_expect_eq(cs.number, 100);
    cr_expect_eq(cs.number_cold, 100);
    cr_expect_eq(cs.number_hot + cs.number_warm, 0);
}

Test(lru, a_hit_is_counted_by_the_segment_it_was_in)
{
    put("h", 1);
    cr_assert(has("h", 1));
    struct cache_class_stats cs;
    cache_class_stats_get(3, &cs);
    cr_expect_eq(cs.ops.hits_to_hot + cs.ops.hits_to_warm + cs.ops.hits_to_cold, 1);
    cr_expect_eq(cs.ops.hits_to_temp, 0);
}

Test(lru, ages_are_seconds_since_each_tail_was_last_touched)
{
    put("old", 1);
    fx_advance(7);
    for (unsigned i = 0; i < 20; i++)
        put("new", i); /* pushes "old" from HOT to COLD's tail */
    struct cache_class_stats cs;
    cache_class_stats_get(3, &cs);
    cr_expect_eq(cs.age, 7, "COLD's tail was stored 7 s ago: %u", cs.age);
    cr_expect_eq(cs.age_hot, 0);
}

Test(lru, evicted_time_is_the_idle_time_of_the_last_eviction)
{
    for (unsigned i = 0; i < CAPACITY; i++)
        put("fill", i);
    fx_advance(30);
    put("one_more", 1);
    struct cache_class_stats cs;
    cache_class_stats_get(3, &cs);
    cr_assert_gt(cs.ops.evictions, 0);
    cr_expect_eq(cs.evicted_time, 30);
}
