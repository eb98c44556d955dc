/* Tests for cache/hash.c: lookups, and growth that readers never notice. */
#include "cache_fixture.h"
#include "cache/cache_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

TestSuite(hash, .init = fx_start_default, .fini = fx_stop, .timeout = 30);

#define NKEYS 20000

static atomic_bool done;
static atomic_uint misses;
static atomic_uint reads;

static void *
reader(void *arg)
{
    unsigned inserted = *(unsigned *)arg;
    unsigned i = 0;
    while (!atomic_load(&done) && i < 5000000) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i % inserted);
        struct item *it = cache_get(key, strlen(key));
        if (it == NULL)
            atomic_fetch_add(&misses, 1);
        cache_release(&it);
        atomic_fetch_add(&reads, 1);
        i++;
    }
    return NULL;
}

Test(hash, table_grows_while_readers_keep_hitting)
{
    struct cache_stats st;
    cache_stats_get(&st);
    cr_assert_eq(st.hash_power_level, 10);
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        cr_assert_eq(fx_set(key, "v"), CACHE_OK);
    }
    unsigned inserted = NKEYS;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, reader, &inserted);
    bool saw_expanding = false;
    for (unsigned steps = 0; steps < 10000; steps++) {
        bool more = cache_maintain();
        cache_stats_get(&st);
        saw_expanding |= st.hash_is_expanding;
        if (!more)
            break;
    }
    atomic_store(&done, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cache_stats_get(&st);
    cr_expect(saw_expanding, "growth should have been observable");
    cr_expect_geq(st.hash_power_level, 14, "20000 items need 2^14 buckets at load 1.5");
    cr_expect_not(st.hash_is_expanding);
    cr_expect_eq(atomic_load(&misses), 0, "%u misses in %u reads", atomic_load(&misses), atomic_load(&reads));
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        cr_assert(fx_has(key), "%s lost in growth", key);
    }
    fx_verify();
}

Test(hash, buckets_hold_32_bit_refs)
{
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.hash_bytes, (UINT64_C(1) << st.hash_power_level) * 4);
}

Test(hash, keys_that_share_a_prefix_are_distinct)
{
    fx_set("a", "1");
    fx_set("ab", "2");
    fx_set("abc", "3");
    fx_expect("a", "1");
    fx_expect("ab", "2");
    fx_expect("abc", "3");
    cache_delete("ab", 2);
    fx_expect("a", "1");
    fx_expect("ab", NULL);
    fx_expect("abc", "3");
}

Test(hash, writes_during_growth_land_in_the_right_table)
{
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        fx_set(key, "v");
    }
    /* Interleave growth steps with overwrites and deletes. */
    for (unsigned round = 0; round < 200; round++) {
        cache_maintain();
        for (unsigned j = 0; j < 100; j++) {
            unsigned i = (round * 100 + j) % NKEYS;
            char key[32];
            snprintf(key, sizeof(key), "key:%u", i);
            if (i % 2)
                cr_assert_eq(fx_set(key, "w"), CACHE_OK);
            else
                cache_delete(key, strlen(key));
        }
    }
    while (cache_maintain())
        ;
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        fx_expect(key, i % 2 ? "w" : NULL);
    }
    fx_verify();
}

static void *
prefetcher(void *arg)
{
    unsigned *calls = arg;
    unsigned i = 0;
    while (!atomic_load(&done) && i < 50000000) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i % NKEYS);
        uint64_t hv = cache_key_hash(key, strlen(key));
        cache_prefetch(hv, 0);
        cache_prefetch(hv, 1);
        i++;
    }
    *calls = i;
    return NULL;
}

Test(hash, lookahead_without_a_lock_is_safe_while_the_table_grows_and_retires_tables)
{
    /* cache_prefetch reads buckets with no lock, so a replaced table must stay
     * readable: a freed one would fault here (or under ASan) sooner or later. */
    atomic_store(&done, false);
    unsigned calls = 0;
    pthread_t t;
    pthread_create(&t, NULL, prefetcher, &calls);
    for (unsigned i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        cr_assert_eq(fx_set(key, "v"), CACHE_OK);
        if (i % 64 == 0)
            while (cache_maintain())
                ;
    }
    while (cache_maintain())
        ;
    atomic_store(&done, true);
    pthread_join(t, NULL);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_geq(st.hash_power_level, 14, "four doublings at least should have happened");
    cr_expect_gt(calls, 0u);
    for (unsigned i = 0; i < NKEYS; i += 97) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", i);
        struct item *it = cache_get(key, strlen(key));
        cr_expect_not_null(it, "%s lost", key);
        cache_release(&it);
    }
}
#if CHECKS_ENABLED

/* Lock order is stripe, then class: a thread holding a class lock may only
 * try a stripe. Checked builds abort on the reverse. */
Test(hash, a_stripe_lock_taken_under_a_class_lock_aborts_in_checked_builds, .signal = SIGABRT)
{
    pthread_mutex_lock(&cache.classes[0].lock);
    ht_lock(item_hash_key("k", 1));
}

Test(hash, a_bucket_read_without_its_stripe_aborts_in_checked_builds, .signal = SIGABRT)
{
    ht_find("k", 1, item_hash_key("k", 1));
}
#endif

