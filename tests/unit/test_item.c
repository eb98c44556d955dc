/* Tests for cache/item.c: expiry as memcached defines it, value hashes, the
 * item's layout as the front end sees it. */
#include "cache_fixture.h"

#include <time.h>

TestSuite(item, .init = fx_start_default, .fini = fx_stop, .timeout = 10);

Test(item, exptime_zero_never_expires)
{
    cr_assert_eq(fx_set_ttl("k", "v", 0), CACHE_OK);
    fx_advance(10u * 365 * 24 * 3600);
    fx_expect("k", "v");
}

Test(item, exptime_one_lives_until_the_next_second)
{
    cr_assert_eq(fx_set_ttl("k", "v", 1), CACHE_OK);
    fx_expect("k", "v");
    fx_advance(1);
    fx_expect("k", NULL);
}

Test(item, thirty_days_is_still_relative)
{
    cr_assert_eq(fx_set_ttl("k", "v", 2592000), CACHE_OK);
    fx_advance(2592000 - 1);
    fx_expect("k", "v");
    fx_advance(1);
    fx_expect("k", NULL);
}

Test(item, past_thirty_days_is_an_absolute_time_in_the_past)
{
    /* 2592001 read as a unix time is in January 1970. */
    cr_assert_eq(fx_set_ttl("k", "v", 2592001), CACHE_OK);
    fx_expect("k", NULL);
}

Test(item, negative_exptime_is_already_expired)
{
    cr_assert_eq(fx_set_ttl("k", "v", -1), CACHE_OK);
    fx_expect("k", NULL);
}

Test(item, absolute_time_in_the_past_is_expired)
{
    cr_assert_eq(fx_set_ttl("k", "v", (int64_t)time(NULL) - 100), CACHE_OK);
    fx_expect("k", NULL);
}

Test(item, absolute_time_in_the_future_counts_down)
{
    cr_assert_eq(fx_set_ttl("k", "v", (int64_t)time(NULL) + 100), CACHE_OK);
    fx_advance(90);
    fx_expect("k", "v");
    fx_advance(20);
    fx_expect("k", NULL);
}

Test(item, exptime_reads_back_as_unix_time)
{
    cr_assert_eq(fx_set_ttl("k", "v", 100), CACHE_OK);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    int64_t when = item_exptime_unix(it);
    int64_t want = (int64_t)time(NULL) + 100;
    cr_expect(when >= want - 2 && when <= want + 2, "exptime %lld, expected about %lld",
              (long long)when, (long long)want);
    cache_release(&it);
}

Test(item, layout_holds_key_then_value_with_crlf)
{
    cr_assert_eq(fx_store("key", "a\0b\r\nc", 6, 42, 0, CACHE_SET, 0, NULL), CACHE_OK);
    struct item *it = cache_get("key", 3);
    cr_assert_not_null(it);
    cr_expect_eq(item_nkey(it), 3);
    cr_expect_eq(memcmp(item_key(it), "key", 3), 0);
    cr_expect_eq(item_nbytes(it), 8);
    cr_expect_eq(memcmp(item_value(it), "a\0b\r\nc\r\n", 8), 0);
    cr_expect_eq(item_flags(it), 42);
    cache_release(&it);
}

Test(item, client_flags_take_room_only_when_not_zero)
{
    /* As memcached: the flags word is kept only for flags other than 0. */
    const uint32_t flags[] = { 0, 1, 0x80000000u, UINT32_MAX };
    for (unsigned i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "f%u", i);
        cr_assert_eq(fx_store(key, "v\r\n", 3, flags[i], 0, CACHE_SET, 0, NULL), CACHE_OK);
        struct item *it = cache_get(key, strlen(key));
        cr_assert_not_null(it);
        cr_expect_eq(item_flags(it), flags[i], "%s", key);
        cr_expect_eq(item_total_size(it), CACHE_ITEM_HEADER + 2 + 5 + (flags[i] != 0 ? 4 : 0), "%s", key);
        cr_expect_eq(memcmp(item_value(it), "v\r\n\r\n", 5), 0, "the flags sit past the value");
        cache_release(&it);
    }
    fx_verify();
}

Test(item, appends_and_counters_keep_the_flags)
{
    cr_assert_eq(fx_store("a", "1", 1, 77, 0, CACHE_SET, 0, NULL), CACHE_OK);
    cr_assert_eq(fx_store("a", "2", 1, 0, 0, CACHE_APPEND, 0, NULL), CACHE_OK);
    uint64_t n = 0;
    cr_assert_eq(cache_arith("a", 1, true, 1000, &n), CACHE_OK); /* "12" grows to "1012" */
    cr_expect_eq(n, 1012);
    struct item *it = cache_get("a", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_flags(it), 77);
    cr_expect_eq(item_nbytes(it), 6);
    cr_expect_eq(memcmp(item_value(it), "1012\r\n", 6), 0);
    cache_release(&it);
}

Test(item, value_hash_depends_on_bytes_and_flags)
{
    uint64_t a = cache_value_hash("abc", 3, 0);
    cr_expect_eq(a, cache_value_hash("abc", 3, 0));
    cr_expect_neq(a, cache_value_hash("abd", 3, 0));
    cr_expect_neq(a, cache_value_hash("abc", 3, 1));
    cr_assert_eq(fx_store("k", "abc", 3, 0, 0, CACHE_SET, 0, NULL), CACHE_OK);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_value_hash(it), a);
    cache_release(&it);
}

static void
start_with_max_ttl(void)
{
    struct cache_options o = fx_options(8);
    o.max_ttl = 60;
    fx_start(&o);
}

Test(item_max_ttl, caps_never_and_long_expiry, .init = start_with_max_ttl, .fini = fx_stop, .timeout = 10)
{
    cr_assert_eq(fx_set_ttl("never", "v", 0), CACHE_OK);
    cr_assert_eq(fx_set_ttl("long", "v", 3600), CACHE_OK);
    cr_assert_eq(fx_set_ttl("short", "v", 10), CACHE_OK);
    fx_advance(11);
    fx_expect("short", NULL);
    fx_expect("never", "v");
    fx_advance(50);
    fx_expect("never", NULL);
    fx_expect("long", NULL);
}
