/* Tests for l2/ketama.c: the continuum agrees with twemproxy's (expected
 * points and servers computed by an independent rewrite of nc_ketama.c's
 * arithmetic; the end-to-end proof against nutcracker itself is the
 * integration test l2/ketama_agrees_with_nutcracker). */
#include "l2/ketama.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct ketama_server
srv(const char *name, uint32_t weight)
{
    return (struct ketama_server){name, strlen(name), weight};
}

static unsigned
points_of(const struct ketama_ring *r, uint32_t index)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < r->npoints; i++)
        n += r->points[i].index == index;
    return n;
}

Test(ketama, gives_160_points_per_share_of_weight)
{
    struct ketama_server s[] = {srv("10.0.0.1:11212", 1), srv("10.0.0.2:11212", 1),
                                srv("10.0.0.3", 2)};
    struct ketama_ring r;
    cr_assert(ketama_build(&r, s, 3));
    cr_expect_eq(r.npoints, 480);
    cr_expect_eq(points_of(&r, 0), 120);
    cr_expect_eq(points_of(&r, 1), 120);
    cr_expect_eq(points_of(&r, 2), 240);
    for (uint32_t i = 1; i < r.npoints; i++)
        cr_assert(r.points[i - 1].value <= r.points[i].value, "sorted");
    ketama_free(&r);
}

Test(ketama, rounds_uneven_weights_down_to_groups_of_four_as_twemproxy)
{
    /* 40 * 7 * 1/13 = 21.5 -> 84 points; 40 * 7 * 7/13 = 150.8 -> 600. */
    struct ketama_server s[] = {srv("a:1", 1), srv("b:1", 1), srv("c:1", 1), srv("d:1", 1),
                                srv("e:1", 1), srv("f:1", 1), srv("g:1", 7)};
    struct ketama_ring r;
    cr_assert(ketama_build(&r, s, 7));
    for (uint32_t i = 0; i < 6; i++)
        cr_expect_eq(points_of(&r, i), 84, "server %u", i);
    cr_expect_eq(points_of(&r, 6), 600);
    ketama_free(&r);

    struct ketama_server t[] = {srv("a:1", 1), srv("b:1", 2), srv("c:1", 3)};
    cr_assert(ketama_build(&r, t, 3));
    cr_expect_eq(points_of(&r, 0), 80);
    cr_expect_eq(points_of(&r, 1), 160);
    cr_expect_eq(points_of(&r, 2), 240);
    ketama_free(&r);
}

Test(ketama, hashes_keys_with_the_first_little_endian_word_of_md5)
{
    cr_expect_eq(ketama_hash("a", 1), 3111502092u);
    cr_expect_eq(ketama_hash("foo", 3), 3675831724u);
    cr_expect_eq(ketama_hash("12345", 5), 248216706u);
}

Test(ketama, places_keys_on_the_servers_twemproxy_picks)
{
    struct ketama_server s[] = {srv("10.0.0.1:11212", 1), srv("10.0.0.2:11212", 1),
                                srv("10.0.0.3", 2)};
    struct ketama_ring r;
    cr_assert(ketama_build(&r, s, 3));
    static const struct {
        const char *key;
        uint32_t server;
    } want[] = {
        {"a", 1}, {"foo", 2}, {"user:1234", 0}, {"session:abcdef", 2},
        {"12345", 1}, {"fc0:kkkkkkkkkkk", 2}, {"x", 2},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect_eq(ketama_server_for(&r, 3, want[i].key, strlen(want[i].key)), want[i].server,
                     "key %s", want[i].key);
    char big[250];
    memset(big, 'k', sizeof(big));
    cr_expect_eq(ketama_server_for(&r, 3, big, sizeof(big)), 0);
    ketama_free(&r);
}

Test(ketama, wraps_a_hash_past_the_last_point_to_the_first)
{
    struct ketama_server s[] = {srv("a:1", 1), srv("b:1", 1)};
    struct ketama_ring r;
    cr_assert(ketama_build(&r, s, 2));
    uint32_t last = r.points[r.npoints - 1].value;
    if (last < UINT32_MAX)
        cr_expect_eq(ketama_lookup(&r, last + 1), r.points[0].index);
    cr_expect_eq(ketama_lookup(&r, 0), r.points[0].index);
    cr_expect_eq(ketama_lookup(&r, r.points[5].value), r.points[5].index);
    ketama_free(&r);
}

Test(ketama, sends_every_key_to_a_lone_server_without_hashing)
{
    struct ketama_server s[] = {srv("only:1", 3)};
    struct ketama_ring r;
    cr_assert(ketama_build(&r, s, 1));
    cr_expect_eq(ketama_server_for(&r, 1, "anything", 8), 0);
    ketama_free(&r);
}

Test(ketama, moves_only_the_keys_of_a_removed_server)
{
    struct ketama_server three[] = {srv("a:1", 1), srv("b:1", 1), srv("c:1", 1)};
    struct ketama_server two[] = {srv("a:1", 1), srv("b:1", 1)};
    struct ketama_ring r3, r2;
    cr_assert(ketama_build(&r3, three, 3));
    cr_assert(ketama_build(&r2, two, 2));
    unsigned moved = 0, on_c = 0;
    for (unsigned i = 0; i < 3000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "key:%u", i);
        uint32_t a = ketama_server_for(&r3, 3, key, (size_t)n);
        uint32_t b = ketama_server_for(&r2, 2, key, (size_t)n);
        if (a == 2)
            on_c++;
        else if (a != b)
            moved++;
    }
    cr_expect_eq(moved, 0, "keys of a and b stay where they were");
    cr_expect(on_c > 700 && on_c < 1300, "c held about a third: %u", on_c);
    ketama_free(&r3);
    ketama_free(&r2);
}

Test(ketama, refuses_a_zero_weight)
{
    struct ketama_server s[] = {srv("a:1", 1), srv("b:1", 0)};
    struct ketama_ring r;
    cr_expect_not(ketama_build(&r, s, 2));
}
