/* test_proto: line framing, tokenizing and number parsing against the
 * behaviour memcached 1.6.18 shows on the wire, hostile lines included.
 * Table rows hold arrays, not pointers: Criterion re-runs the binary for each
 * parameter, so pointers into static data would not survive ASLR. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto.h"

struct line_case {
    char in[128];
    size_t len;             /* 0: strlen(in) */
    enum proto_status status;
    size_t consumed;
    size_t ntokens;         /* memcached's count, terminal included */
    char tok0[16];          /* first token, or "" for none */
    char last[16];          /* last real token */
    bool has_rest;
};

static struct line_case line_cases[] = {
    { "get a\r\n", 0, PROTO_OK, 7, 3, "get", "a", false },
    { "get a\n", 0, PROTO_OK, 6, 3, "get", "a", false },
    { "set  a  0  0  1\r\n", 0, PROTO_OK, 17, 6, "set", "1", false },
    { "  get   a  \r\n", 0, PROTO_OK, 13, 3, "get", "a", false },
    { "\r\n", 0, PROTO_OK, 2, 2, "\r", "\r", false },
    { "\n", 0, PROTO_OK, 1, 1, "", "", false },
    { " \r\n", 0, PROTO_OK, 3, 1, "", "", false },
    { "get a", 0, PROTO_NEED_MORE, 0, 0, "", "", false },
    { "get a\r", 0, PROTO_NEED_MORE, 0, 0, "", "", false },
    { "", 0, PROTO_NEED_MORE, 0, 0, "", "", false },
    { "get a\0b\r\n", 9, PROTO_OK, 9, 3, "get", "a", false },
    { "\0get a\r\n", 8, PROTO_OK, 8, 1, "", "", false },
    { "get\ta\r\n", 0, PROTO_OK, 7, 2, "get\ta", "get\ta", false },
    { "a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n", 0, PROTO_OK, 53, 24, "a", "w", true },
    { "a b c d e f g h i j k l m n o p q r s t u v w\r\n", 0, PROTO_OK, 47, 24, "a", "w", false },
    { "a b c d e f g h i j k l m n o p q r s t u v w \r\n", 0, PROTO_OK, 48, 24, "a", "w", false },
    { "set a 0 0 1\r\nx\r\n", 0, PROTO_OK, 13, 6, "set", "1", false },
};

ParameterizedTestParameters(proto, line_table)
{
    return cr_make_param_array(struct line_case, line_cases,
                               sizeof(line_cases) / sizeof(line_cases[0]));
}

ParameterizedTest(struct line_case *lc, proto, line_table)
{
    size_t len = lc->len ? lc->len : strlen(lc->in);
    /* A private copy with no slack after it: ASan catches any over-read. */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, lc->in, len);
    struct proto_request req;
    enum proto_status st = proto_parse_line(buf, len, &req);
    cr_assert_eq(st, lc->status, "status for %s", lc->in);
    if (st == PROTO_OK) {
        cr_assert_eq(req.consumed, lc->consumed);
        cr_assert_eq(req.ntokens, lc->ntokens, "ntokens %zu", req.ntokens);
        cr_assert_eq(req.tokens[req.ntokens - 1].len, 0);
        if (lc->tok0[0]) {
            cr_assert(req.tokens[0].len == strlen(lc->tok0) &&
                      memcmp(req.tokens[0].p, lc->tok0, req.tokens[0].len) == 0);
            const struct proto_token *l = &req.tokens[req.ntokens - 2];
            cr_assert(l->len == strlen(lc->last) && memcmp(l->p, lc->last, l->len) == 0);
        }
        cr_assert_eq(req.rest != NULL, lc->has_rest);
    }
    free(buf);
}

Test(proto, long_line_without_newline_is_junk_unless_a_multiget)
{
    char buf[5000];
    struct proto_request req;
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(proto_parse_line(buf, 2048, &req), PROTO_NEED_MORE);
    cr_assert_eq(proto_parse_line(buf, 2049, &req), PROTO_JUNK);
    memcpy(buf, "get ", 4);
    cr_assert_eq(proto_parse_line(buf, sizeof(buf), &req), PROTO_NEED_MORE);
    memcpy(buf, "gets ", 5);
    cr_assert_eq(proto_parse_line(buf, sizeof(buf), &req), PROTO_NEED_MORE);
    memset(buf, ' ', 101);
    memcpy(buf + 101, "get ", 4);
    cr_assert_eq(proto_parse_line(buf, sizeof(buf), &req), PROTO_JUNK);
    memset(buf, ' ', 100);
    memcpy(buf + 100, "get ", 4);
    cr_assert_eq(proto_parse_line(buf, sizeof(buf), &req), PROTO_NEED_MORE);
}

Test(proto, a_multiget_continues_where_the_tokenizer_stopped, .timeout = 5)
{
    char line[4096] = "get";
    for (int i = 0; i < 100; i++)
        sprintf(line + strlen(line), " k%d", i);
    strcat(line, "\r\n");
    struct proto_request req;
    cr_assert_eq(proto_parse_line(line, strlen(line), &req), PROTO_OK);
    int keys = 0;
    size_t k = 1;
    for (;;) {
        for (; req.tokens[k].len != 0; k++)
            keys++;
        if (req.rest == NULL)
            break;
        proto_tokenize(&req, req.rest, req.rest_len);
        k = 0;
    }
    cr_assert_eq(keys, 100);
}

struct num_case {
    char in[32];
    int kind;           /* 0 u32, 1 i32, 2 u64 */
    bool ok;
    long long value;    /* for u64 compared as unsigned */
};

static struct num_case num_cases[] = {
    { "0", 0, true, 0 },
    { "4294967295", 0, true, 4294967295LL },
    { "4294967296", 0, true, 0 },               /* memcached truncates */
    { "99999999999", 0, true, 99999999999LL & 0xffffffffLL },
    { "-1", 0, false, 0 },
    { "-0", 0, true, 0 },
    { "+5", 0, true, 5 },
    { "abc", 0, false, 0 },
    { "5x", 0, false, 0 },
    { "", 0, false, 0 },
    { "5\r", 0, true, 5 },                      /* a blank ends the number */
    { "\t7", 0, true, 7 },
    { "18446744073709551616", 0, false, 0 },
    { "-1", 1, true, -1 },
    { "2147483647", 1, true, 2147483647 },
    { "2147483648", 1, true, -2147483647LL - 1 },   /* memcached's cast */
    { "4294967297", 1, true, 1 },
    { "9223372036854775808", 1, false, 0 },
    { "-", 1, false, 0 },
    { "18446744073709551615", 2, true, -1 },
    { "18446744073709551616", 2, false, 0 },
    { "-1", 2, false, 0 },
    { "01", 2, true, 1 },
};

ParameterizedTestParameters(proto, number_table)
{
    return cr_make_param_array(struct num_case, num_cases,
                               sizeof(num_cases) / sizeof(num_cases[0]));
}

ParameterizedTest(struct num_case *nc, proto, number_table)
{
    struct proto_token t = { nc->in, strlen(nc->in) };
    bool ok;
    long long got = 0;
    if (nc->kind == 0) {
        uint32_t v;
        ok = proto_parse_u32(&t, &v);
        got = v;
    } else if (nc->kind == 1) {
        int32_t v;
        ok = proto_parse_i32(&t, &v);
        got = v;
    } else {
        uint64_t v;
        ok = proto_parse_u64(&t, &v);
        got = (long long)v;
    }
    cr_assert_eq(ok, nc->ok, "%s kind %d", nc->in, nc->kind);
    if (ok)
        cr_assert_eq(got, nc->value, "%s -> %lld", nc->in, got);
}

Test(proto, never_reads_past_the_buffer_on_random_input, .timeout = 10)
{
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t len = (seed = seed * 1103515245 + 12345) % 64;
        char *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            const char alphabet[] = "get s \r\n0-9\0a";
            buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        struct proto_request req;
        enum proto_status st = proto_parse_line(buf, len, &req);
        if (st == PROTO_OK) {
            cr_assert(req.consumed <= len);
            for (size_t i = 0; i + 1 < req.ntokens; i++) {
                cr_assert(req.tokens[i].p >= buf && req.tokens[i].p + req.tokens[i].len <= buf + len);
                uint64_t v;
                proto_parse_u64(&req.tokens[i], &v);
            }
        }
        free(buf);
    }
}
