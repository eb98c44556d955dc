/* Tests for l2/mparse.c: every reply memcached 1.6.18 sends the L2 client,
 * and hostile lines that must be refused rather than believed. */
#include "l2/mparse.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

static enum mparse_status
parse(const char *line, struct mparse_reply *r)
{
    return mparse_line(line, strlen(line), r);
}

Test(mparse, reads_a_value_header_with_its_flags_cas_and_ttl)
{
    struct mparse_reply r;
    cr_assert_eq(parse("VA 3 f5 c12 t100 O9", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_VA);
    cr_expect_eq(r.vlen, 3);
    cr_expect(r.has_flags && r.flags == 5);
    cr_expect(r.has_cas && r.cas == 12);
    cr_expect(r.has_ttl && r.ttl == 100);
    cr_expect_eq(r.nopaque, 1);
    cr_expect_eq(r.opaque[0], '9');
    cr_expect_not(r.win || r.won || r.stale);
}

Test(mparse, reads_an_infinite_ttl_as_minus_one)
{
    struct mparse_reply r;
    cr_assert_eq(parse("VA 0 t-1", &r), MPARSE_OK);
    cr_expect_eq(r.ttl, -1);
    cr_expect_eq(r.vlen, 0);
}

Test(mparse, reads_the_lease_flags)
{
    struct mparse_reply r;
    cr_assert_eq(parse("VA 0 c6 t30 W", &r), MPARSE_OK);
    cr_expect(r.win && !r.won && !r.stale);
    cr_assert_eq(parse("VA 0 c6 t30 Z", &r), MPARSE_OK);
    cr_expect(r.won && !r.win);
    cr_assert_eq(parse("VA 4 c7 W X Z", &r), MPARSE_OK);
    cr_expect(r.win && r.won && r.stale);
}

Test(mparse, reads_the_codes_without_a_value)
{
    struct mparse_reply r;
    cr_assert_eq(parse("HD c7", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_HD);
    cr_expect_eq(r.cas, 7);
    cr_assert_eq(parse("EN", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_EN);
    cr_assert_eq(parse("EN O123 knokey", &r), MPARSE_OK);
    cr_expect_eq(r.nkey, 5);
    cr_expect_eq(memcmp(r.key, "nokey", 5), 0);
    cr_assert_eq(parse("NF O1", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_NF);
    cr_assert_eq(parse("NS c0", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_NS);
    cr_assert_eq(parse("EX c0", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_EX);
    cr_assert_eq(parse("MN", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_MN);
}

Test(mparse, keeps_the_text_of_error_lines)
{
    struct mparse_reply r;
    cr_assert_eq(parse("SERVER_ERROR out of memory storing object", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_SERVER_ERROR);
    cr_expect_eq(r.nmsg, strlen("out of memory storing object"));
    cr_assert_eq(parse("CLIENT_ERROR bad data chunk", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_CLIENT_ERROR);
    cr_assert_eq(parse("ERROR", &r), MPARSE_OK);
    cr_expect_eq(r.code, MP_ERROR);
    cr_expect_eq(r.nmsg, 0);
}

Test(mparse, skips_return_flags_it_does_not_know)
{
    struct mparse_reply r;
    cr_assert_eq(parse("HD c3 Q7 yabc", &r), MPARSE_OK);
    cr_expect_eq(r.cas, 3);
    cr_assert_eq(parse("VA 2 s2 h1 l30", &r), MPARSE_OK);
    cr_expect(r.has_size && r.size == 2);
    cr_expect(r.has_hit && r.hit_before);
    cr_expect(r.has_last && r.last_access == 30);
}

struct hostile {
    char line[80];
};

ParameterizedTestParameters(mparse, refuses_hostile_lines)
{
    static struct hostile cases[] = {
        {""},                       /* empty */
        {"VALUE foo 0 3"},          /* the classic protocol */
        {"STORED"},
        {"END"},
        {"VA"},                     /* no length */
        {"VA x"},                   /* length not a number */
        {"VA -1"},
        {"VA 99999999999999999999"},    /* overflow */
        {"VA 4294967295"},          /* no room for the CRLF */
        {"VA 3 f-1"},               /* negative flags */
        {"VA 3 f4294967296"},       /* flags over 32 bits */
        {"VA 3 c"},                 /* empty number */
        {"VA 3 c12x"},
        {"VA 3 t-2"},               /* only -1 is negative */
        {"VA 3 t99999999999"},
        {"HD W1"},                  /* W takes no value */
        {"HD h2"},
        {"HD k"},                   /* an empty key */
        {"HD O"},                   /* an empty opaque */
        {"HD O012345678901234567890123456789012"},  /* 33-byte opaque */
        {"HD 1abc"},                /* a flag that is no letter */
        {"MN junk"},
        {"hd"},                     /* codes are upper case */
        {"HDX"},
        {" HD"},                    /* leading space */
        {"HD\tc1"},                 /* tabs are not separators */
        {"EN k\x01"},               /* control bytes in a token */
    };
    return cr_make_param_array(struct hostile, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct hostile *h, mparse, refuses_hostile_lines)
{
    struct mparse_reply r;
    cr_expect_eq(mparse_line(h->line, strlen(h->line), &r), MPARSE_BAD, "line \"%s\"", h->line);
}

Test(mparse, refuses_embedded_line_ends_and_nuls)
{
    struct mparse_reply r;
    cr_expect_eq(mparse_line("HD\r", 3, &r), MPARSE_BAD);
    cr_expect_eq(mparse_line("HD c1\nEN", 8, &r), MPARSE_BAD);
    cr_expect_eq(mparse_line("HD c1\0", 6, &r), MPARSE_BAD);
}

Test(mparse, refuses_overlong_lines)
{
    char line[MPARSE_LINE_MAX + 2];
    memset(line, 'c', sizeof(line));
    memcpy(line, "HD ", 3);
    struct mparse_reply r;
    cr_expect_eq(mparse_line(line, sizeof(line), &r), MPARSE_BAD);
}
