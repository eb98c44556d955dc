/* Tests for cache/upstream.c: copies of a shared store's values carry its
 * CAS, and a copy fetched before a change of its key is never kept. */
#include "cache_fixture.h"

static void
start_upstream(void)
{
    struct cache_options o = fx_options(64);
    o.upstream_cas = true;
    fx_start(&o);
}

/* An unlinked copy of key=value carrying the store's cas. */
static struct item *
copy_of(const char *key, const char *value, uint64_t cas)
{
    struct item *it = NULL;
    size_t vlen = strlen(value);
    cr_assert_eq(cache_alloc(&it, key, strlen(key), 7, 0, (uint32_t)vlen), CACHE_OK);
    memcpy(item_value(it), value, vlen);
    memcpy(item_value(it) + vlen, "\r\n", 2);
    item_set_upstream_cas(it, cas);
    return it;
}

static enum cache_result
keep(const char *key, const char *value, uint64_t cas, uint64_t ticket, bool is_write)
{
    struct item *it = copy_of(key, value, cas);
    enum cache_result r = cache_store_upstream(it, ticket, is_write);
    cache_release(&it);
    return r;
}

Test(upstream, a_kept_copy_reports_the_stores_cas_and_its_value_intact)
{
    start_upstream();
    cr_assert_eq(keep("k", "hello", 987654321012ull, cache_ticket("k", 1), false), CACHE_OK);
    struct item *it = cache_get("k", 1);
    cr_assert_not_null(it);
    cr_expect_eq(item_cas(it), 987654321012ull);
    cr_expect_eq(item_nbytes(it), 7);
    cr_expect_eq(memcmp(item_value(it), "hello\r\n", 7), 0);
    cr_expect_eq(item_flags(it), 7);
    cache_release(&it);
    char err[200];
    cr_expect(cache_verify(err, sizeof(err)), "%s", err);
    fx_stop();
}

Test(upstream, the_stores_cas_flags_and_value_do_not_overlap)
{
    start_upstream();
    /* Key, the store's CAS, the value, then the flags (copy_of sets 7). */
    const uint64_t cas = UINT64_C(0x0102030405060708);
    cr_assert_eq(keep("key", "", cas, cache_ticket("key", 3), false), CACHE_OK);
    cr_assert_eq(keep("k2", "0123456789", cas + 1, cache_ticket("k2", 2), false), CACHE_OK);
    struct item *it = cache_get("key", 3);
    cr_assert_not_null(it);
    cr_expect_eq(item_cas(it), cas);
    cr_expect_eq(item_flags(it), 7);
    cr_expect_eq(memcmp(item_value(it), "\r\n", 2), 0);
    cr_expect_eq(item_total_size(it), CACHE_ITEM_HEADER + 3 + 8 + 2 + 4);
    cache_release(&it);
    it = cache_get("k2", 2);
    cr_assert_not_null(it);
    cr_expect_eq(item_cas(it), cas + 1);
    cr_expect_eq(item_flags(it), 7);
    cr_expect_eq(memcmp(item_value(it), "0123456789\r\n", 12), 0);
    cache_release(&it);
    fx_stop();
}

Test(upstream, a_fill_overtaken_by_a_peers_drop_of_an_absent_key_is_not_kept)
{
    start_upstream();
    uint64_t t = cache_ticket("k", 1);
    /* The bus drops a key this node does not hold while the fetch travels. */
    cr_expect_eq(cache_drop("k", 1, false, 0), CACHE_MISS);
    cr_expect_eq(keep("k", "old", 5, t, false), CACHE_EXISTS);
    cr_expect_null(cache_peek("k", 1, NULL));
    fx_stop();
}

Test(upstream, a_fill_overtaken_by_a_local_write_is_not_kept_and_the_write_stays)
{
    start_upstream();
    uint64_t fill = cache_ticket("k", 1);
    uint64_t write = cache_ticket("k", 1);
    cr_assert_eq(keep("k", "new", 9, write, true), CACHE_OK);
    cr_expect_eq(keep("k", "old", 8, fill, false), CACHE_EXISTS);
    struct item *it = cache_peek("k", 1, NULL);
    cr_assert_not_null(it);
    cr_expect_eq(item_cas(it), 9);
    cache_release(&it);
    fx_stop();
}

Test(upstream, of_two_racing_writes_the_later_committer_drops_both)
{
    start_upstream();
    uint64_t a = cache_ticket("k", 1);
    uint64_t b = cache_ticket("k", 1);
    cr_assert_eq(keep("k", "va", 10, a, true), CACHE_OK);
    /* b's store may be the newer one in L2, or not: keep neither. */
    cr_expect_eq(keep("k", "vb", 11, b, true), CACHE_EXISTS);
    cr_expect_null(cache_peek("k", 1, NULL));
    fx_stop();
}

Test(upstream, a_fill_does_not_void_another_fills_ticket)
{
    start_upstream();
    uint64_t t = cache_ticket("k", 1);
    cr_assert_eq(keep("k", "v", 3, t, false), CACHE_OK);
    cr_expect_eq(cache_ticket("k", 1), t);
    fx_stop();
}

Test(upstream, a_flush_voids_every_ticket)
{
    start_upstream();
    uint64_t t = cache_ticket("k", 1);
    cache_flush(0);
    cr_expect_neq(cache_ticket("k", 1), t);
    cr_expect_eq(keep("k", "v", 3, t, false), CACHE_EXISTS);
    fx_stop();
}

Test(upstream, flush_all_still_works_on_copies_with_upstream_cas)
{
    start_upstream();
    /* Store CAS values far above the local counter must not outlive a flush. */
    cr_assert_eq(keep("a", "1", UINT64_C(1) << 50, cache_ticket("a", 1), false), CACHE_OK);
    cache_flush(0);
    cr_expect_null(cache_peek("a", 1, NULL));
    cr_assert_eq(keep("b", "2", 1, cache_ticket("b", 1), false), CACHE_OK);
    struct item *it = cache_peek("b", 1, NULL);
    cr_expect_not_null(it, "a copy kept after the flush lives");
    cache_release(&it);
    fx_stop();
}

Test(upstream, store_delete_touch_arith_and_drop_each_void_a_ticket)
{
    start_upstream();
    cr_assert_eq(keep("n", "5", 1, cache_ticket("n", 1), false), CACHE_OK);
    uint64_t t = cache_ticket("n", 1);
    uint64_t v;
    cr_expect_eq(cache_arith("n", 1, true, 1, &v), CACHE_OK);
    cr_expect_neq(cache_ticket("n", 1), t);
    t = cache_ticket("n", 1);
    cr_expect_eq(cache_touch("n", 1, 100), CACHE_OK);
    cr_expect_neq(cache_ticket("n", 1), t);
    t = cache_ticket("n", 1);
    cr_expect_eq(fx_set("n", "x"), CACHE_OK);
    cr_expect_neq(cache_ticket("n", 1), t);
    t = cache_ticket("n", 1);
    cr_expect_eq(cache_delete("n", 1), CACHE_OK);
    cr_expect_neq(cache_ticket("n", 1), t);
    fx_stop();
}

Test(upstream, without_the_option_items_keep_their_own_cas_and_size)
{
    fx_start_default();
    uint64_t cas = 0;
    cr_assert_eq(fx_store("k", "v", 1, 0, 0, CACHE_SET, 0, &cas), CACHE_OK);
    struct item *it = cache_get("k", 1);
    cr_expect_eq(item_cas(it), cas);
    cr_expect_eq(memcmp(item_value(it), "v\r\n", 3), 0);
    cache_release(&it);
    fx_stop();
}

Test(upstream, item_hold_adds_a_reference)
{
    start_upstream();
    cr_assert_eq(keep("k", "v", 3, cache_ticket("k", 1), false), CACHE_OK);
    struct item *it = cache_peek("k", 1, NULL);
    cr_assert(item_hold(it));
    struct item *second = it;
    cache_release(&it);
    cr_expect_eq(memcmp(item_value(second), "v\r\n", 3), 0);
    cache_release(&second);
    char err[200];
    cr_expect(cache_verify(err, sizeof(err)), "%s", err);
    fx_stop();
}
