/* Tests for cache/cache.c: every operation's result codes and memcached's
 * semantics for the store family, incr/decr, touch, flush and references. */
#include "cache_fixture.h"

#include <inttypes.h>
#include <signal.h>

#include "src/check.h"

TestSuite(cache, .init = fx_start_default, .fini = fx_stop, .timeout = 10);

/* Spelled out by hand, not from CACHE_RESULTS: a renamed, reordered or
 * unnamed result, or a lookup past the table, shows up here. */
Test(cache, every_result_has_a_name)
{
    static const char *const want[] = {
        "CACHE_OK", "CACHE_MISS", "CACHE_EXISTS", "CACHE_NOT_STORED", "CACHE_TOO_LARGE",
        "CACHE_NO_MEMORY", "CACHE_NOT_NUMBER", "CACHE_BAD_KEY",
    };
    cr_assert_eq(CACHE_RESULT_COUNT, sizeof(want) / sizeof(want[0]),
                 "a result was added: name it here");
    for (int r = 0; r < CACHE_RESULT_COUNT; r++)
        cr_expect_str_eq(cache_result_name((enum cache_result)r), want[r], "result %d", r);
    cr_expect_str_eq(cache_result_name(CACHE_RESULT_COUNT), "CACHE_UNKNOWN");
    cr_expect_str_eq(cache_result_name((enum cache_result)-1), "CACHE_UNKNOWN");
}

Test(cache, set_then_get_returns_value_and_flags)
{
    cr_assert_eq(fx_store("k", "hello", 5, 0xdeadbeef, 0, CACHE_SET, 0, NULL), CACHE_OK);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_flags(it), 0xdeadbeef);
    cr_expect_eq(memcmp(item_value(it), "hello\r\n", 7), 0);
    cache_release(&it);
    fx_verify();
}

Test(cache, set_overwrites)
{
    fx_set("k", "one");
    fx_set("k", "two");
    fx_expect("k", "two");
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.curr_items, 1);
    cr_expect_eq(st.ops.total_items, 2);
}

Test(cache, zero_length_value_is_stored)
{
    cr_assert_eq(fx_set("k", ""), CACHE_OK);
    fx_expect("k", "");
}

Test(cache, keys_of_one_and_250_bytes_work_and_251_is_refused)
{
    char key[252];
    memset(key, 'k', sizeof(key));
    key[250] = '\0';
    cr_expect_eq(fx_set(key, "v"), CACHE_OK);
    fx_expect(key, "v");
    cr_expect_eq(fx_set("a", "v"), CACHE_OK);
    key[250] = 'k';
    key[251] = '\0';
    struct item *it = NULL;
    cr_expect_eq(cache_alloc(&it, key, 251, 0, 0, 1), CACHE_BAD_KEY);
    cr_expect_null(it);
    cr_expect_null(cache_get(key, 251));
}

Test(cache, add_only_stores_absent_keys)
{
    cr_expect_eq(fx_store("k", "a", 1, 0, 0, CACHE_ADD, 0, NULL), CACHE_OK);
    cr_expect_eq(fx_store("k", "b", 1, 0, 0, CACHE_ADD, 0, NULL), CACHE_NOT_STORED);
    fx_expect("k", "a");
}

Test(cache, add_succeeds_over_an_expired_item)
{
    fx_set_ttl("k", "old", 1);
    fx_advance(2);
    cr_expect_eq(fx_store("k", "new", 3, 0, 0, CACHE_ADD, 0, NULL), CACHE_OK);
    fx_expect("k", "new");
}

Test(cache, replace_only_stores_present_keys)
{
    cr_expect_eq(fx_store("k", "a", 1, 0, 0, CACHE_REPLACE, 0, NULL), CACHE_NOT_STORED);
    fx_expect("k", NULL);
    fx_set("k", "a");
    cr_expect_eq(fx_store("k", "b", 1, 0, 0, CACHE_REPLACE, 0, NULL), CACHE_OK);
    fx_expect("k", "b");
}

Test(cache, append_and_prepend_need_the_key_and_keep_its_flags)
{
    cr_expect_eq(fx_store("k", "x", 1, 0, 0, CACHE_APPEND, 0, NULL), CACHE_NOT_STORED);
    cr_expect_eq(fx_store("k", "x", 1, 0, 0, CACHE_PREPEND, 0, NULL), CACHE_NOT_STORED);
    fx_expect("k", NULL);
    fx_store("k", "mid", 3, 7, 0, CACHE_SET, 0, NULL);
    cr_expect_eq(fx_store("k", "END", 3, 99, 0, CACHE_APPEND, 0, NULL), CACHE_OK);
    cr_expect_eq(fx_store("k", "BEG", 3, 99, 0, CACHE_PREPEND, 0, NULL), CACHE_OK);
    fx_expect("k", "BEGmidEND");
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_flags(it), 7);
    cache_release(&it);
}

Test(cache, append_grows_across_slab_classes)
{
    char big[3000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fx_set("k", "small");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(fx_store("k", big, strlen(big), 0, 0, CACHE_APPEND, 0, NULL), CACHE_OK);
    char *v = fx_get("k");
    cr_assert_not_null(v);
    cr_expect_eq(strlen(v), 5 + 5 * strlen(big));
    cr_expect_eq(strncmp(v, "small", 5), 0);
    cr_expect_eq(v[strlen(v) - 1], 'b');
    free(v);
    fx_verify();
}

Test(cache, cas_values_are_unique_and_increasing)
{
    uint64_t prev = 0;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i % 10);
        uint64_t cas = 0;
        cr_assert_eq(fx_store(key, "v", 1, 0, 0, CACHE_SET, 0, &cas), CACHE_OK);
        cr_assert_gt(cas, prev, "cas %" PRIu64 " after %" PRIu64, cas, prev);
        prev = cas;
    }
}

Test(cache, cas_checks_the_unique)
{
    uint64_t cas = 0, cas2 = 0;
    cr_expect_eq(fx_store("k", "a", 1, 0, 0, CACHE_CAS, 1, NULL), CACHE_MISS);
    fx_store("k", "a", 1, 0, 0, CACHE_SET, 0, &cas);
    cr_expect_eq(fx_store("k", "b", 1, 0, 0, CACHE_CAS, cas + 1, NULL), CACHE_EXISTS);
    fx_expect("k", "a");
    cr_expect_eq(fx_store("k", "c", 1, 0, 0, CACHE_CAS, cas, &cas2), CACHE_OK);
    cr_expect_neq(cas, cas2);
    fx_expect("k", "c");
    cr_expect_eq(fx_store("k", "d", 1, 0, 0, CACHE_CAS, cas, NULL), CACHE_EXISTS);
}

Test(cache, append_past_the_item_limit_is_not_stored)
{
    size_t vlen = (1u << 20) - 1000;
    char *v = malloc(vlen);
    memset(v, 'v', vlen);
    cr_assert_eq(fx_store("k", v, vlen, 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    cr_expect_eq(fx_store("k", v, 1000, 0, 0, CACHE_APPEND, 0, NULL), CACHE_NOT_STORED);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_nbytes(it), vlen + 2, "the old value stays");
    cache_release(&it);
    free(v);
}

Test(cache, flush_spends_one_cas_id_like_memcached)
{
    uint64_t a = 0, b = 0;
    fx_store("k", "v", 1, 0, 0, CACHE_SET, 0, &a);
    cache_flush(0);
    fx_store("k", "v", 1, 0, 0, CACHE_SET, 0, &b);
    cr_expect_eq(b, a + 2);
}

static void
start_without_cas(void)
{
    struct cache_options o = fx_options(8);
    o.use_cas = false;
    fx_start(&o);
}

Test(cache_no_cas, cas_never_matches_and_uniques_read_zero, .init = start_without_cas, .fini = fx_stop, .timeout = 10)
{
    uint64_t cas = 99;
    cr_assert_eq(fx_store("k", "a", 1, 0, 0, CACHE_SET, 0, &cas), CACHE_OK);
    cr_expect_eq(cas, 0);
    cr_expect_eq(fx_store("k", "b", 1, 0, 0, CACHE_CAS, 0, NULL), CACHE_EXISTS);
    cr_expect_eq(fx_store("nope", "b", 1, 0, 0, CACHE_CAS, 0, NULL), CACHE_MISS);
    fx_expect("k", "a");
}

Test(cache, gets_reports_the_stored_cas)
{
    uint64_t cas = 0;
    fx_store("k", "a", 1, 0, 0, CACHE_SET, 0, &cas);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_cas(it), cas);
    cache_release(&it);
}

Test(cache, delete_hits_once)
{
    fx_set("k", "v");
    cr_expect_eq(cache_delete("k", 1), CACHE_OK);
    cr_expect_eq(cache_delete("k", 1), CACHE_MISS);
    fx_expect("k", NULL);
    fx_verify();
}

static uint64_t
arith_ok(const char *key, bool incr, uint64_t delta)
{
    uint64_t v = 0;
    cr_assert_eq(cache_arith(key, strlen(key), incr, delta, &v), CACHE_OK, "%s", key);
    return v;
}

Test(cache, incr_wraps_at_two_to_the_64)
{
    fx_set("n", "18446744073709551615");
    cr_expect_eq(arith_ok("n", true, 1), 0);
    fx_expect("n", "0                   ");
}

Test(cache, decr_floors_at_zero)
{
    fx_set("n", "5");
    cr_expect_eq(arith_ok("n", false, 10), 0);
    fx_expect("n", "0");
}

Test(cache, incr_lengthens_and_decr_pads_with_spaces)
{
    fx_set("n", "9");
    cr_expect_eq(arith_ok("n", true, 1), 10);
    fx_expect("n", "10");
    cr_expect_eq(arith_ok("n", false, 1), 9);
    fx_expect("n", "9 ");
    cr_expect_eq(arith_ok("n", true, 91), 100);
    fx_expect("n", "100");
}

Test(cache, incr_refuses_what_is_not_a_number)
{
    uint64_t v;
    const char *bad[] = { "abc", "12abc", "-5", "", "18446744073709551616", " ", "  ", "\t",
                          " \r\n ", "+", " -" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fx_set("n", bad[i]);
        cr_expect_eq(cache_arith("n", 1, true, 1, &v), CACHE_NOT_NUMBER, "'%s'", bad[i]);
    }
    cr_expect_eq(cache_arith("missing", 7, true, 1, &v), CACHE_MISS);
}

/* memcached 1.6.18 reads a counter with strtoull from the value's first byte:
 * past a value of only white space (its "\r\n" included) into whatever an
 * earlier item left in the chunk. We read the value's bytes only. */
Test(cache, incr_on_a_value_of_spaces_never_reads_what_an_earlier_item_left)
{
    uint64_t v = 0;
    fx_set("aa", "    12345");
    cache_delete("aa", 2);
    fx_set("bb", "  "); /* the same class: it takes aa's chunk from the free list */
    cr_expect_eq(cache_arith("bb", 2, true, 1, &v), CACHE_NOT_NUMBER, "answered %llu",
                 (unsigned long long)v);
    fx_expect("bb", "  ");
}

Test(cache, incr_accepts_what_memcached_accepts)
{
    fx_set("n", " 12");
    cr_expect_eq(arith_ok("n", true, 1), 13);
    fx_set("n", "12 ");
    cr_expect_eq(arith_ok("n", true, 1), 13);
}

Test(cache, incr_on_a_referenced_item_leaves_the_reader_alone)
{
    fx_set("n", "20");
    struct item *held = cache_get("n", 1);
    cr_assert_not_null(held);
    cr_expect_eq(arith_ok("n", false, 15), 5);
    cr_expect_eq(memcmp(item_value(held), "20\r\n", 4), 0, "the reader's bytes must not change");
    fx_expect("n", "5");
    cache_release(&held);
    fx_verify();
}

Test(cache, touch_sets_a_new_expiry)
{
    cr_expect_eq(cache_touch("k", 1, 10), CACHE_MISS);
    fx_set_ttl("k", "v", 5);
    cr_expect_eq(cache_touch("k", 1, 100), CACHE_OK);
    fx_advance(50);
    fx_expect("k", "v");
    cr_expect_eq(cache_touch("k", 1, -1), CACHE_OK);
    fx_expect("k", NULL);
}

Test(cache, get_touch_returns_the_value_and_sets_expiry)
{
    fx_set("k", "v");
    struct item *it = cache_get_touch("k", 1, 10);
    cr_assert_not_null(it);
    cache_release(&it);
    cr_expect_null(cache_get_touch("nope", 4, 10));
    fx_advance(11);
    fx_expect("k", NULL);
}

Test(cache, flush_all_now_hides_old_items_but_not_new_ones)
{
    fx_set("a", "1");
    fx_set("b", "2");
    cache_flush(0);
    fx_expect("a", NULL);
    fx_expect("b", NULL);
    fx_set("c", "3");
    fx_expect("c", "3");
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.ops.get_flushed, 2);
}

Test(cache, flush_all_with_delay_waits)
{
    fx_set("a", "1");
    cache_flush(10);
    fx_advance(5);
    fx_expect("a", "1");
    fx_set("b", "2");
    fx_advance(5);
    fx_expect("a", NULL);
    fx_expect("b", NULL);
    fx_set("c", "3");
    fx_advance(1);
    fx_expect("c", "3");
}

Test(cache, a_later_flush_replaces_a_pending_delayed_one)
{
    fx_set("a", "1");
    cache_flush(100);
    cache_flush(0);
    fx_expect("a", NULL);
    fx_set("b", "2");
    fx_advance(200);
    fx_expect("b", "2");
}

Test(cache, referenced_item_survives_delete)
{
    fx_set("k", "precious");
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(cache_delete("k", 1), CACHE_OK);
    fx_set("k", "other");
    cr_expect_eq(memcmp(item_value(it), "precious\r\n", 10), 0);
    cache_release(&it);
    fx_expect("k", "other");
    fx_verify();
}

Test(cache, too_large_items_are_refused)
{
    struct item *it = NULL;
    cr_expect_eq(cache_alloc(&it, "k", 1, 0, 0, 1u << 20), CACHE_TOO_LARGE);
    cr_expect_null(it);
    cr_expect_eq(cache_alloc(&it, "k", 1, 0, 0, (1u << 20) - 100), CACHE_OK);
    cache_release(&it);
}

Test(cache, unstored_allocation_is_returned_on_release)
{
    struct item *it = NULL;
    cr_assert_eq(cache_alloc(&it, "k", 1, 0, 0, 10), CACHE_OK);
    cache_release(&it);
    fx_expect("k", NULL);
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.curr_items, 0);
    cr_expect_eq(st.bytes, 0);
}

Test(cache, drop_keeps_a_copy_with_the_same_value_hash)
{
    fx_store("k", "v1", 2, 3, 0, CACHE_SET, 0, NULL);
    cr_expect_eq(cache_drop("k", 1, true, cache_value_hash("v1", 2, 3)), CACHE_EXISTS);
    fx_expect("k", "v1");
    cr_expect_eq(cache_drop("k", 1, true, cache_value_hash("v2", 2, 3)), CACHE_OK);
    fx_expect("k", NULL);
    cr_expect_eq(cache_drop("k", 1, false, 0), CACHE_MISS);
    fx_set("k", "v");
    cr_expect_eq(cache_drop("k", 1, false, 0), CACHE_OK);
    fx_expect("k", NULL);
}

Test(cache, maintenance_reclaims_expired_items)
{
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        fx_set_ttl(key, "v", 5);
    }
    fx_advance(6);
    for (int i = 0; i < 10; i++)
        cache_maintain();
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_eq(st.curr_items, 0);
    cr_expect_eq(st.ops.reclaimed, 100);
    cr_expect_eq(st.ops.expired_unfetched, 100);
    fx_verify();
}

Test(cache, flush_all_at_an_absolute_time_before_start_up_flushes_nothing)
{
    fx_set("a", "1");
    cache_flush(100);             /* pending, then forgotten as memcached forgets it */
    cache_flush(1000000000);      /* 2001: long before this process started */
    fx_expect("a", "1");
    fx_advance(200);
    fx_expect("a", "1");
}

Test(cache, flush_all_at_an_absolute_time_after_start_up_flushes)
{
    fx_set("a", "1");
    fx_advance(10);
    cache_flush((int64_t)clock_process_started() + clock_now() - 1);
    fx_expect("a", NULL);
}

#if CHECKS_ENABLED
/* The invariants CHECK guards in checked builds (the sanitizer build). */

Test(cache, a_second_release_of_one_reference_aborts_in_checked_builds, .signal = SIGABRT)
{
    fx_set("k", "v");
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    struct item *copy = it;
    cache_release(&it);
    cache_delete("k", 1);          /* the table's reference goes: count 0, freed */
    cache_release(&copy);          /* below zero */
}

Test(cache, storing_an_item_twice_aborts_in_checked_builds, .signal = SIGABRT)
{
    struct item *it = NULL;
    cr_assert_eq(cache_alloc(&it, "k", 1, 0, 0, 1), CACHE_OK);
    memcpy(item_value(it), "v\r\n", 3);
    cr_assert_eq(cache_store(it, CACHE_SET, 0, NULL), CACHE_OK);
    cache_store(it, CACHE_SET, 0, NULL);   /* already linked */
}
#endif
