/* Unit tests for cache/lease.c: vivified placeholders, wins, stale marks,
 * CAS-gated deletes and stores, meta arithmetic, and the rule that a peer's
 * invalidation voids a lease instead of leaving a miss. */
#include "cache_fixture.h"

TestSuite(lease, .init = fx_start_default, .fini = fx_stop, .timeout = 10);

static struct item *
mget(const char *key, struct cache_mget *g)
{
    return cache_meta_get(key, strlen(key), g);
}

static uint64_t
cas_of(const char *key)
{
    struct item *it = cache_peek(key, strlen(key), NULL);
    cr_assert_not_null(it, "%s should be present", key);
    uint64_t cas = item_cas(it);
    cache_release(&it);
    return cas;
}

static enum cache_result
fill(const char *key, const char *value, enum cache_store_op op, uint64_t cas)
{
    return fx_store(key, value, strlen(value), 0, 0, op, cas, NULL);
}

Test(lease, a_miss_with_vivify_makes_one_empty_item_and_one_winner)
{
    struct cache_mget g = { .vivify = true };
    struct item *it = mget("k", &g);
    cr_assert_not_null(it);
    cr_expect(g.created);
    cr_expect_not(g.won, "vivify alone does not win: the N step does");
    cr_expect_eq(item_nbytes(it), 2, "a placeholder holds no value");
    cache_release(&it);

    struct cache_mget g2 = { .vivify = true, .nsteps = 1,
                             .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 } } };
    it = mget("k", &g2);
    cr_assert_not_null(it);
    cr_expect_not(g2.created);
    cr_expect_not(g2.won);
    cache_release(&it);
    fx_verify();
}

Test(lease, the_vivify_step_wins_once_and_later_readers_see_the_win_sent)
{
    struct cache_mget g = { .vivify = true, .nsteps = 2,
                            .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 },
                                       { .op = CACHE_MSTEP_READ_TTL } } };
    struct item *it = mget("k", &g);
    cr_assert_not_null(it);
    cr_expect(g.created && g.won);
    cr_expect_not(g.win_was_sent);
    cr_expect_eq(g.steps[1].out, 30);
    cache_release(&it);

    struct cache_mget g2 = { .vivify = true, .nsteps = 1,
                             .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 } } };
    it = mget("k", &g2);
    cr_expect_not(g2.won);
    cr_expect(g2.win_was_sent);
    cache_release(&it);
}

Test(lease, steps_run_in_order_so_a_ttl_read_before_a_change_sees_the_old_one)
{
    fx_set_ttl("k", "v", 100);
    struct cache_mget g = { .nsteps = 3,
                            .steps = { { .op = CACHE_MSTEP_READ_TTL },
                                       { .op = CACHE_MSTEP_TTL, .arg = 10 },
                                       { .op = CACHE_MSTEP_READ_TTL } } };
    struct item *it = mget("k", &g);
    cr_assert_not_null(it);
    cr_expect_eq(g.steps[0].out, 100);
    cr_expect_eq(g.steps[2].out, 10);
    cr_expect(g.touched);
    cr_expect_eq(item_ttl(it), 10);
    cache_release(&it);
}

Test(lease, recache_wins_only_below_the_threshold_and_only_once)
{
    fx_set_ttl("k", "v", 100);
    struct cache_mget g = { .nsteps = 1, .steps = { { .op = CACHE_MSTEP_RECACHE, .arg = 30 } } };
    struct item *it = mget("k", &g);
    cr_expect_not(g.won, "100 s left is not below 30");
    cache_release(&it);

    g.steps[0].arg = 200;
    it = mget("k", &g);
    cr_expect(g.won);
    cache_release(&it);
    it = mget("k", &g);
    cr_expect_not(g.won);
    cr_expect(g.win_was_sent);
    cache_release(&it);
}

Test(lease, recache_never_wins_an_item_that_does_not_expire)
{
    fx_set("k", "v");
    struct cache_mget g = { .nsteps = 1, .steps = { { .op = CACHE_MSTEP_RECACHE, .arg = 1000 } } };
    struct item *it = mget("k", &g);
    cr_expect_not(g.won);
    cache_release(&it);
}

Test(lease, h_and_l_answer_for_the_time_before_the_read_and_u_does_not_count)
{
    fx_set("k", "v");
    struct cache_mget g = { .no_bump = true };
    struct item *it = mget("k", &g);
    cr_expect_not(g.fetched);
    cache_release(&it);
    fx_advance(5);
    it = mget("k", &g);
    cr_expect_not(g.fetched, "u leaves the item unread");
    cr_expect_eq(g.idle, 5);
    cache_release(&it);

    struct cache_mget r = { 0 };
    it = mget("k", &r);
    cr_expect_not(r.fetched);
    cr_expect_eq(r.idle, 5);
    cache_release(&it);
    it = mget("k", &r);
    cr_expect(r.fetched);
    cr_expect_eq(r.idle, 0);
    cache_release(&it);
}

Test(lease, a_stale_mark_bumps_the_cas_and_the_next_reader_wins)
{
    fx_set_ttl("k", "v", 100);
    uint64_t before = cas_of("k");
    struct cache_mdelete d = { .stale = true, .has_exptime = true, .exptime = 30 };
    cr_expect_eq(cache_meta_delete("k", 1, &d), CACHE_OK);
    uint64_t after = cas_of("k");
    cr_expect_gt(after, before);

    struct cache_mget g = { 0 };
    struct item *it = mget("k", &g);
    cr_assert_not_null(it);
    cr_expect(g.stale && g.won && !g.win_was_sent);
    cr_expect_eq(item_ttl(it), 30);
    cr_expect_eq(memcmp(item_value(it), "v", 1), 0, "a stale item keeps its value");
    cache_release(&it);
    it = mget("k", &g);
    cr_expect(g.stale && !g.won && g.win_was_sent);
    cache_release(&it);

    /* Marking again hands the win out anew. */
    cr_expect_eq(cache_meta_delete("k", 1, &d), CACHE_OK);
    it = mget("k", &g);
    cr_expect(g.won);
    cache_release(&it);
}

Test(lease, a_meta_delete_checks_the_cas)
{
    fx_set("k", "v");
    uint64_t cas = cas_of("k");
    struct cache_mdelete d = { .has_cas = true, .cas = cas + 1 };
    cr_expect_eq(cache_meta_delete("k", 1, &d), CACHE_EXISTS);
    fx_expect("k", "v");
    d.cas = cas;
    cr_expect_eq(cache_meta_delete("k", 1, &d), CACHE_OK);
    fx_expect("k", NULL);
    cr_expect_eq(cache_meta_delete("k", 1, &d), CACHE_MISS);
}

Test(lease, a_fill_with_the_placeholders_cas_lands_and_clears_the_lease)
{
    struct cache_mget g = { .vivify = true, .nsteps = 1,
                            .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 } } };
    struct item *it = mget("k", &g);
    uint64_t cas = item_cas(it);
    cache_release(&it);
    cr_expect_eq(fill("k", "fresh", CACHE_CAS, cas), CACHE_OK);
    fx_expect("k", "fresh");
    struct cache_mget r = { 0 };
    it = mget("k", &r);
    cr_expect_not(r.win_was_sent || r.stale);
    cache_release(&it);
}

Test(lease, an_older_cas_with_invalidate_stores_stale_keeping_expiry_and_win)
{
    fx_set_ttl("k", "v1", 100);
    uint64_t old = cas_of("k");
    struct cache_mdelete d = { .stale = true };
    cache_meta_delete("k", 1, &d);
    struct cache_mget g = { 0 };
    struct item *it = mget("k", &g); /* wins: the win is now out */
    cr_expect(g.won);
    cache_release(&it);

    cr_expect_eq(fill("k", "v2", CACHE_CAS, old), CACHE_EXISTS, "plain cas refuses an old unique");
    cr_expect_eq(fill("k", "v2", CACHE_CAS_STALE, cas_of("k") + 1), CACHE_EXISTS,
                 "a newer unique than the item's is refused");
    cr_expect_eq(fill("k", "v2", CACHE_CAS_STALE, old), CACHE_OK);
    it = mget("k", &g);
    cr_expect(g.stale && g.win_was_sent && !g.won);
    cr_expect_eq(item_ttl(it), 100);
    cache_release(&it);
    fx_expect("k", "v2");

    cr_expect_eq(fill("k", "v3", CACHE_CAS_STALE, cas_of("k")), CACHE_OK);
    it = mget("k", &g);
    cr_expect_not(g.stale, "a matching unique stores a fresh item");
    cache_release(&it);
}

Test(lease, append_with_a_cas_checks_it)
{
    fx_set("k", "a");
    uint64_t cas = cas_of("k");
    cr_expect_eq(fill("k", "b", CACHE_APPEND, cas + 7), CACHE_EXISTS);
    cr_expect_eq(fill("k", "b", CACHE_APPEND, cas), CACHE_OK);
    cr_expect_eq(fill("k", "c", CACHE_PREPEND, 0), CACHE_OK, "0 means no check");
    fx_expect("k", "cab");
}

Test(lease, a_peers_invalidation_of_a_leased_key_leaves_a_stale_placeholder)
{
    struct cache_mget g = { .vivify = true, .nsteps = 1,
                            .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 } } };
    struct item *it = mget("k", &g);
    uint64_t lease = item_cas(it);
    cache_release(&it);
    cr_assert(g.won);

    cr_expect_eq(cache_drop("k", 1, true, cache_value_hash("new", 3, 0)), CACHE_OK);
    cr_expect_eq(fill("k", "old", CACHE_CAS, lease), CACHE_EXISTS,
                 "the late fill must not land after the peer's write");
    struct cache_mget r = { 0 };
    it = mget("k", &r);
    cr_assert_not_null(it);
    cr_expect(r.stale && r.won, "the next reader is told to recache");
    cr_expect_eq(item_nbytes(it), 2, "no value survives the invalidation");
    cr_expect_leq(item_ttl(it), 30);
    cr_expect_gt(item_ttl(it), 0);
    uint64_t again = item_cas(it);
    cache_release(&it);
    cr_expect_eq(fill("k", "new", CACHE_CAS, again), CACHE_OK, "the new winner's fill lands");
    fx_expect("k", "new");
    fx_verify();
}

Test(lease, a_lease_is_voided_even_when_the_peers_value_hash_matches)
{
    /* The peer stored an empty value: its hash equals the placeholder's. */
    struct cache_mget g = { .vivify = true, .nsteps = 1,
                            .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 30 } } };
    struct item *it = mget("k", &g);
    uint64_t lease = item_cas(it);
    cache_release(&it);
    cr_assert(g.won);
    cr_expect_eq(cache_drop("k", 1, true, cache_value_hash("", 0, 0)), CACHE_OK);
    cr_expect_eq(fill("k", "old", CACHE_CAS, lease), CACHE_EXISTS);
}

Test(lease, a_won_recache_of_a_real_value_is_voided_too)
{
    fx_set_ttl("k", "old", 10);
    struct cache_mget g = { .nsteps = 1, .steps = { { .op = CACHE_MSTEP_RECACHE, .arg = 60 } } };
    struct item *it = mget("k", &g);
    uint64_t lease = item_cas(it);
    cache_release(&it);
    cr_assert(g.won);
    cr_expect_eq(cache_drop("k", 1, false, 0), CACHE_OK);
    cr_expect_eq(fill("k", "older", CACHE_CAS, lease), CACHE_EXISTS);
    char *v = fx_get("k");
    cr_expect_str_eq(v, "", "the old value is gone");
    free(v);
}

Test(lease, without_a_lease_an_invalidation_still_drops_the_key)
{
    fx_set("k", "v");
    uint64_t cas = cas_of("k");
    cr_expect_eq(cache_drop("k", 1, false, 0), CACHE_OK);
    fx_expect("k", NULL);
    cr_expect_eq(fill("k", "v", CACHE_CAS, cas), CACHE_MISS);
}

Test(lease, meta_arith_creates_checks_the_cas_and_runs_its_steps)
{
    struct cache_marith a = { .incr = true, .delta = 1, .vivify = true, .initial = 10,
                              .nsteps = 2,
                              .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = 50 },
                                         { .op = CACHE_MSTEP_READ_TTL } } };
    cr_expect_eq(cache_meta_arith("n", 1, &a), CACHE_OK);
    cr_expect(a.created);
    cr_expect_eq(a.value, 10, "a created counter holds the initial value");
    cr_expect_eq(a.steps[1].out, 50);
    uint64_t cas = a.cas_out;
    cr_expect_eq(cas, cas_of("n"));

    struct cache_marith b = { .incr = false, .delta = 3, .cas = cas + 1 };
    cr_expect_eq(cache_meta_arith("n", 1, &b), CACHE_EXISTS);
    b.cas = cas;
    cr_expect_eq(cache_meta_arith("n", 1, &b), CACHE_OK);
    cr_expect_eq(b.value, 7);
    cr_expect_not(b.created);
    cr_expect_gt(b.cas_out, cas);
    fx_expect("n", "7 ");

    struct cache_marith c = { .incr = true, .delta = 1 };
    cr_expect_eq(cache_meta_arith("absent", 6, &c), CACHE_MISS);
    fx_set("s", "abc");
    cr_expect_eq(cache_meta_arith("s", 1, &c), CACHE_NOT_NUMBER);
}

Test(lease, peek_counts_no_read)
{
    fx_set("k", "v");
    struct cache_item_info info;
    struct item *it = cache_peek("k", 1, &info);
    cr_assert_not_null(it);
    cr_expect_not(item_fetched(it));
    cr_expect_not(info.fetched);
    cr_expect_eq(info.ttl, -1);
    cr_expect_eq(info.idle, 0);
    cr_expect_eq(item_class_id(it), 1);
    cr_expect_eq(item_total_size(it), CACHE_ITEM_HEADER + 1 + 3);
    cache_release(&it);
    cr_expect_null(cache_peek("absent", 6, NULL));
}

Test(lease, binary_keys_are_marked_on_the_item)
{
    struct item *it = NULL;
    cr_assert_eq(cache_alloc(&it, "\x01\x02", 2, 0, 0, 1), CACHE_OK);
    memcpy(item_value(it), "x\r\n", 3);
    item_set_key_binary(it);
    cr_assert_eq(cache_store(it, CACHE_SET, 0, NULL), CACHE_OK);
    cache_release(&it);
    it = cache_peek("\x01\x02", 2, NULL);
    cr_assert_not_null(it);
    cr_expect(item_key_binary(it));
    cache_release(&it);
}
