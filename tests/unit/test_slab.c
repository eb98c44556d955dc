/* Tests for cache/slab.c: class geometry, the memory limit with eviction on
 * and off, large items, and stores that need a page another class holds. */
#include "cache_fixture.h"

static void
geometry(double factor, uint32_t chunk_min, uint32_t *sizes, unsigned *n)
{
    struct cache_options o = fx_options(64);
    o.factor = factor;
    o.chunk_min = chunk_min;
    fx_start(&o);
    *n = cache_class_count();
    for (unsigned i = 0; i < *n; i++) {
        struct cache_class_stats cs;
        cache_class_stats_get(i, &cs);
        sizes[i] = cs.chunk_size;
        cr_expect_eq(cs.id, i + 1);
    }
    fx_stop();
}

Test(slab, default_geometry_matches_memcached, .timeout = 10)
{
    uint32_t s[64];
    unsigned n;
    geometry(1.25, 48, s, &n);
    /* memcached 1.6 -f 1.25 -n 48: 96 120 152 192 240 304 384 480 600 752 944 1184 ... */
    const uint32_t want[] = { 96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184 };
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect_eq(s[i], want[i], "class %u: %u", i + 1, s[i]);
    /* Last slab class is slab_chunk_max (half a page), then the large class. */
    cr_expect_eq(s[n - 2], 512 * 1024);
    cr_expect_eq(n, 40, "memcached 1.6.18 has 39 classes; ours adds the large class");
}

Test(slab, classes_grow_by_factor_and_stay_aligned, .timeout = 10)
{
    const double factors[] = { 1.05, 1.25, 2.0, 3.5 };
    const uint32_t mins[] = { 8, 48, 100, 500 };
    for (size_t f = 0; f < 4; f++)
        for (size_t m = 0; m < 4; m++) {
            uint32_t s[64];
            unsigned n;
            geometry(factors[f], mins[m], s, &n);
            cr_expect_leq(n, 64);
            cr_expect_geq(s[0], 48 + mins[m]);
            for (unsigned i = 0; i + 2 < n; i++) {
                cr_expect_eq(s[i] % 8, 0, "-f %g -n %u class %u size %u", factors[f], mins[m], i, s[i]);
                cr_expect_gt(s[i + 1], s[i]);
                if (i + 3 < n) /* the last slab class is clamped to slab_chunk_max */
                    cr_expect_leq(s[i + 1], (uint32_t)(s[i] * factors[f]) + 8);
            }
        }
}

Test(slab, a_budget_past_what_8_byte_refs_name_aligns_chunks_to_16, .timeout = 10)
{
    /* 32-bit refs name 30 GiB of chunks in 8-byte units; a larger -m takes
     * 16-byte units, so chunks are multiples of 16 (memcached's classes
     * everywhere below). Only address space is reserved. */
    struct cache_options o = fx_options(40u << 10);
    fx_start(&o);
    struct cache_class_stats cs;
    cache_class_stats_get(0, &cs);
    cr_expect_eq(cs.chunk_size, 96);
    cache_class_stats_get(1, &cs);
    cr_expect_eq(cs.chunk_size, 128, "120 rounds up to 128");
    for (unsigned i = 0; i + 1 < cache_class_count(); i++) {
        cache_class_stats_get(i, &cs);
        cr_expect_eq(cs.chunk_size % 16, 0, "class %u: %u", i + 1, cs.chunk_size);
    }
    for (unsigned i = 0; i < 200; i++) {
        char key[16], val[300];
        snprintf(key, sizeof(key), "k%u", i);
        memset(val, 'a' + i % 26, sizeof(val));
        cr_assert_eq(fx_store(key, val, i + 1, 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    }
    for (unsigned i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%u", i);
        struct item *it = cache_get(key, strlen(key));
        cr_assert_not_null(it, "%s", key);
        cr_expect_eq(item_nbytes(it), i + 3);
        cr_expect_eq(item_value(it)[i], 'a' + i % 26);
        cache_release(&it);
    }
    fx_verify();
    fx_stop();
}

Test(slab, tiny_factor_is_capped_at_the_class_limit, .timeout = 10)
{
    uint32_t s[64];
    unsigned n;
    geometry(1.01, 48, s, &n);
    cr_expect_eq(n, 64);
    cr_expect_eq(s[n - 2], 512 * 1024);
}

static unsigned
class_of_stored(size_t vlen)
{
    char *v = malloc(vlen);
    memset(v, 'x', vlen);
    cr_assert_eq(fx_store("probe", v, vlen, 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    free(v);
    for (unsigned i = 0; i < cache_class_count(); i++) {
        struct cache_class_stats cs;
        cache_class_stats_get(i, &cs);
        if (cs.number == 1)
            return i;
    }
    cr_assert_fail("stored item not found in any class");
    return 0;
}

Test(slab, items_use_the_smallest_fitting_class, .init = fx_start_default, .fini = fx_stop, .timeout = 10)
{
    /* header + key 5 + value + 2 */
    const size_t h = CACHE_ITEM_HEADER;
    cr_expect_eq(class_of_stored(96 - h - 5 - 2), 0);
    cr_expect_eq(class_of_stored(96 - h - 5 - 1), 1);
    cr_expect_eq(class_of_stored(120 - h - 5 - 2), 1);
    cr_expect_eq(class_of_stored(152 - h - 5 - 2), 2);
    cr_expect_eq(class_of_stored(152 - h - 5 - 1), 3);
    cr_expect_eq(class_of_stored(600 * 1024), cache_class_count() - 1);
}

static void
fill(unsigned count, size_t vlen, unsigned *stored, unsigned *refused)
{
    char *v = malloc(vlen);
    memset(v, 'v', vlen);
    *stored = *refused = 0;
    for (unsigned i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        enum cache_result r = fx_store(key, v, vlen, 0, 0, CACHE_SET, 0, NULL);
        if (r == CACHE_OK)
            (*stored)++;
        else if (r == CACHE_NO_MEMORY)
            (*refused)++;
        else
            cr_assert_fail("unexpected %s", cache_result_name(r));
    }
    free(v);
}

Test(slab, eviction_keeps_the_cache_within_its_limit, .timeout = 20)
{
    struct cache_options o = fx_options(2);
    fx_start(&o);
    unsigned stored, refused;
    fill(50000, 100, &stored, &refused);
    cr_expect_eq(stored, 50000);
    cr_expect_eq(refused, 0);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_leq(st.total_malloced, 2u << 20);
    cr_expect_gt(st.ops.evictions, 0);
    cr_expect_eq(st.curr_items + st.ops.evictions, 50000);
    cr_expect(fx_has("key:49999"), "the newest item must be present");
    cr_expect_not(fx_has("key:0"), "the oldest item must be gone");
    fx_verify();
    fx_stop();
}

Test(slab, without_eviction_a_full_cache_refuses_stores, .timeout = 20)
{
    struct cache_options o = fx_options(2);
    o.evict = false;
    fx_start(&o);
    unsigned stored, refused;
    fill(50000, 100, &stored, &refused);
    cr_expect_gt(refused, 0);
    cr_expect_eq(stored + refused, 50000);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.evictions, 0);
    cr_expect_eq(st.curr_items, stored);
    cr_expect_eq(st.ops.outofmemory, refused);
    cr_expect(fx_has("key:0"), "nothing stored may be lost");
    fx_verify();
    fx_stop();
}

Test(slab, full_cache_without_eviction_still_reclaims_expired_items, .timeout = 20)
{
    struct cache_options o = fx_options(2);
    o.evict = false;
    fx_start(&o);
    char v[100];
    memset(v, 'v', sizeof(v));
    unsigned n = 0;
    for (; n < 50000; n++) {
        char key[32];
        snprintf(key, sizeof(key), "old:%u", n);
        if (fx_store(key, v, sizeof(v), 0, 10, CACHE_SET, 0, NULL) != CACHE_OK)
            break;
    }
    cr_assert_lt(n, 50000, "the cache should have filled");
    fx_advance(11);
    cr_expect_eq(fx_store("new", v, sizeof(v), 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    fx_stop();
}

Test(slab, large_items_share_hash_chains_and_reuse_their_slots, .timeout = 20)
{
    /* 1024 buckets, a few thousand keys: chains mix slab chunks and large
     * items (named by slot), and slots freed by deletes are taken again. */
    struct cache_options o = fx_options(64);
    o.slab_chunk_max = 16 * 1024;
    o.hashpower = 10;
    fx_start(&o);
    size_t big = 20 * 1024;
    char *v = malloc(big);
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 3000; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%u", i);
            size_t vlen = i % 10 == 0 ? big : 10 + i % 50;
            memset(v, 'a' + (i + round) % 26, vlen);
            cr_assert_eq(fx_store(key, v, vlen, i, 0, CACHE_SET, 0, NULL), CACHE_OK, "%s", key);
        }
        for (unsigned i = round % 2; i < 3000; i += 2) {
            char key[16];
            snprintf(key, sizeof(key), "k%u", i);
            cr_assert_eq(cache_delete(key, strlen(key)), CACHE_OK, "%s", key);
        }
        fx_verify();
        for (unsigned i = 0; i < 3000; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%u", i);
            struct item *it = cache_get(key, strlen(key));
            if (i % 2 == round % 2) {
                cr_expect_null(it, "%s was deleted", key);
                cache_release(&it);
                continue;
            }
            cr_assert_not_null(it, "%s", key);
            size_t vlen = i % 10 == 0 ? big : 10 + i % 50;
            cr_expect_eq(item_nbytes(it), vlen + 2, "%s", key);
            cr_expect_eq(item_flags(it), i);
            cr_expect_eq(item_value(it)[vlen - 1], 'a' + (i + round) % 26, "%s", key);
            cache_release(&it);
        }
    }
    free(v);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.evictions, 0, "all of it fits: nothing but deletes freed slots");
    fx_stop();
}

Test(slab, large_items_are_charged_in_4k_steps_and_evict_each_other, .timeout = 20)
{
    struct cache_options o = fx_options(8);
    o.item_max = 4u << 20;
    fx_start(&o);
    size_t vlen = (2u << 20) + 100; /* 2 MiB + 4 KiB each: three fit in 8 MiB */
    char *v = malloc(vlen);
    for (size_t i = 0; i < vlen; i++)
        v[i] = (char)('a' + i % 26);
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof(key), "big%d", i);
        cr_assert_eq(fx_store(key, v, vlen, 0, 0, CACHE_SET, 0, NULL), CACHE_OK, "big%d", i);
    }
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.total_malloced, 3 * ((2u << 20) + 4096), "%llu", (unsigned long long)st.total_malloced);
    cr_expect_eq(st.curr_items, 3);
    cr_expect_eq(st.ops.evictions, 3);
    struct item *it = cache_get("big5", 4);
    cr_assert_not_null(it);
    cr_expect_eq(item_nbytes(it), vlen + 2);
    cr_expect_eq(memcmp(item_value(it), v, vlen), 0);
    cache_release(&it);
    free(v);
    fx_verify();
    fx_stop();
}
