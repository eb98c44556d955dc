/* Tests for src/util.c: strict number parsing. */
#include "src/util.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

struct u64_case {
    char in[32];
    bool ok;
    uint64_t want;
};

ParameterizedTestParameters(util, parse_u64)
{
    static struct u64_case cases[] = {
        { "0", true, 0 },
        { "18446744073709551615", true, UINT64_MAX },
        { "18446744073709551616", false, 0 },
        { "99999999999999999999", false, 0 },
        { "", false, 0 },
        { "-1", false, 0 },
        { "+1", false, 0 },
        { "12a", false, 0 },
        { " 1", false, 0 },
        { "007", true, 7 },
    };
    return cr_make_param_array(struct u64_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct u64_case *c, util, parse_u64)
{
    uint64_t v = 12345;
    bool ok = util_parse_u64(c->in, strlen(c->in), &v);
    cr_expect_eq(ok, c->ok, "'%s'", c->in);
    cr_expect_eq(v, c->ok ? c->want : 12345, "'%s'", c->in);
}

Test(util, parse_i64_takes_the_full_range)
{
    int64_t v;
    cr_expect(util_parse_i64("-9223372036854775808", 20, &v) && v == INT64_MIN);
    cr_expect(util_parse_i64("9223372036854775807", 19, &v) && v == INT64_MAX);
    cr_expect_not(util_parse_i64("9223372036854775808", 19, &v));
    cr_expect_not(util_parse_i64("-", 1, &v));
    cr_expect(util_parse_i64("-5", 2, &v) && v == -5);
}

Test(util, parse_u32_refuses_overflow)
{
    uint32_t v;
    cr_expect(util_parse_u32("4294967295", 10, &v) && v == UINT32_MAX);
    cr_expect_not(util_parse_u32("4294967296", 10, &v));
}

Test(util, parse_size_understands_suffixes)
{
    uint64_t v;
    cr_expect(util_parse_size("64m", &v) && v == (UINT64_C(64) << 20));
    cr_expect(util_parse_size("1k", &v) && v == 1024);
    cr_expect(util_parse_size("2G", &v) && v == (UINT64_C(2) << 30));
    cr_expect(util_parse_size("1000", &v) && v == 1000);
    cr_expect_not(util_parse_size("m", &v));
    cr_expect_not(util_parse_size("12x", &v));
}
