/* test_lookahead: which keys a batch of requests names for prefetching, and
 * that scanning stays inside complete lines of the buffer it is given. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "net/lookahead.h"

static size_t
keys_of(const char *buf, struct proto_token *keys, size_t max, size_t *covered)
{
    return lookahead_keys(buf, strlen(buf), keys, max, covered);
}

static void
expect_key(const struct proto_token *t, const char *want)
{
    cr_expect_eq(t->len, strlen(want), "key length %zu, want %s", t->len, want);
    cr_expect(t->len == strlen(want) && memcmp(t->p, want, t->len) == 0, "want key %s", want);
}

Test(lookahead, names_every_key_of_pipelined_get_gets_and_mg_lines)
{
    struct proto_token k[8];
    size_t covered;
    const char *buf = "get a\r\nmg bb v f k\r\ngets  c   dd\r\nget e\n";
    size_t n = keys_of(buf, k, 8, &covered);
    cr_assert_eq(n, 5);
    expect_key(&k[0], "a");
    expect_key(&k[1], "bb");  /* mg: the first token only, not its flags */
    expect_key(&k[2], "c");
    expect_key(&k[3], "dd");
    expect_key(&k[4], "e");
    cr_expect_eq(covered, strlen(buf));
}

Test(lookahead, stops_at_the_first_line_that_is_no_get)
{
    struct proto_token k[8];
    size_t covered;
    /* a set's data block could look like anything: nothing after the set */
    const char *buf = "get a\r\nset b 0 0 7\r\nget zz\r\n\r\nget c\r\n";
    cr_assert_eq(keys_of(buf, k, 8, &covered), 1);
    expect_key(&k[0], "a");
    cr_expect_eq(covered, 7);
    cr_expect_eq(keys_of("version\r\nget a\r\n", k, 8, &covered), 0);
    cr_expect_eq(covered, 0);
    cr_expect_eq(keys_of("getx a\r\n", k, 8, &covered), 0);
}

Test(lookahead, reads_only_complete_lines)
{
    struct proto_token k[8];
    size_t covered;
    const char *buf = "get a b\r\nget cc dd";
    cr_assert_eq(keys_of(buf, k, 8, &covered), 2);
    cr_expect_eq(covered, 9);
    /* the buffer ends in the middle of a line: a copy with nothing after
     * it, so ASan sees a read past the end */
    char *tight = malloc(12);
    memcpy(tight, "get a\r\nget b", 12);
    cr_expect_eq(lookahead_keys(tight, 12, k, 8, &covered), 1);
    cr_expect_eq(covered, 7);
    free(tight);
}

Test(lookahead, stops_at_max_keys_and_skips_keys_no_lookup_could_find)
{
    struct proto_token k[3];
    size_t covered;
    char line[600];
    cr_assert_eq(keys_of("get a b c d e\r\nget f\r\n", k, 3, &covered), 3);
    expect_key(&k[2], "c");
    memset(line, 'x', sizeof(line));
    memcpy(line, "get ", 4);
    line[4 + 251] = ' ';
    memcpy(line + 4 + 252, "ok\r\n", 5);
    cr_assert_eq(keys_of(line, k, 3, &covered), 1);  /* a 251-byte key is no key */
    expect_key(&k[0], "ok");
}
