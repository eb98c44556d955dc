/* Unit tests for net/meta.c: flag parsing in memcached 1.6.18's order and
 * words, base64 keys, and hostile lines (parsed on a plain byte buffer: no
 * socket, no cache). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "net/meta.h"

static bool
parse(const char *line, enum meta_cmd cmd, struct proto_request *req, struct meta_request *m)
{
    cr_assert_eq(proto_parse_line(line, strlen(line), req), PROTO_OK, "%s", line);
    return meta_parse(cmd, req, m);
}

Test(meta, flags_and_their_arguments_are_read)
{
    struct proto_request req;
    struct meta_request m;
    cr_assert(parse("mg key v c T30 N-1 R5 Oabc k q\r\n", META_MG, &req, &m));
    cr_expect_eq(m.nkey, 3);
    cr_expect_eq(memcmp(m.key, "key", 3), 0);
    cr_expect(meta_has(&m, 'v') && meta_has(&m, 'c') && meta_has(&m, 'q') && meta_has(&m, 'k'));
    cr_expect_not(meta_has(&m, 's'));
    cr_expect_eq(m.ttl_t, 30);
    cr_expect_eq(m.ttl_n, -1);
    cr_expect_eq(m.ttl_r, 5);
    cr_expect_eq(m.nflags, 8);
    cr_expect_eq(m.first, 2);
    cr_expect_eq(m.opaque_bad, -1);
    cr_expect_eq(m.delta, 1, "D defaults to 1");
}

Test(meta, ms_reads_its_length_and_flags_after_it)
{
    struct proto_request req;
    struct meta_request m;
    cr_assert(parse("ms k 5 F7 C99 MA I\r\n", META_MS, &req, &m));
    cr_expect_eq(m.vlen, 5);
    cr_expect_eq(m.first, 3);
    cr_expect_eq(m.client_flags, 7);
    cr_expect_eq(m.cas, 99);
    cr_expect_eq(m.mode, 'A');
    cr_expect(meta_has(&m, 'I'));
}

/* Arrays, not pointers: Criterion hands each parameter by value to a test
 * process of its own. */
struct refusal {
    char line[64];
    enum meta_cmd cmd;
    char error[64];
    bool swallow;
};

static struct refusal refusals[] = {
    { "mg a v v\r\n", META_MG, "CLIENT_ERROR duplicate flag", false },
    { "mg a \x80\r\n", META_MG, "CLIENT_ERROR duplicate flag", false },
    { "mg a x\r\n", META_MG, "CLIENT_ERROR invalid flag", false },
    { "mg a E5\r\n", META_MG, "CLIENT_ERROR invalid flag", false },
    { "mg a N\r\n", META_MG, "CLIENT_ERROR bad token in command line format", false },
    { "mg a Fx\r\n", META_MG, "CLIENT_ERROR bad command line format", false },
    { "mg a Jx Nx\r\n", META_MG, "CLIENT_ERROR bad token in command line format", false },
    { "mg a Nx Jx\r\n", META_MG, "CLIENT_ERROR invalid numeric initial value", false },
    { "mg a Nx zz\r\n", META_MG, "CLIENT_ERROR invalid flag", false },
    { "mg a MAB\r\n", META_MG, "CLIENT_ERROR incorrect length for M token", false },
    { "mg a b\r\n", META_MG, "CLIENT_ERROR error decoding key", false },
    { "mg a a b c d e f g h i j k l m n o p q r\r\n", META_MG,
      "CLIENT_ERROR options flags are too long", false },
    { "ms a\r\n", META_MS, "CLIENT_ERROR bad command line format", false },
    { "ms a -1\r\n", META_MS, "CLIENT_ERROR bad command line format", false },
    { "ms a 2147483646\r\n", META_MS, "CLIENT_ERROR bad command line format", false },
    { "ms a 3 x\r\n", META_MS, "CLIENT_ERROR invalid flag", true },
    { "ms a 3 MZ\r\n", META_MS, "CLIENT_ERROR invalid mode for ms M token", true },
    { "ms a 3 Me\r\n", META_MS, "CLIENT_ERROR invalid mode for ms M token", true },
    { "ms a 3 Nx MZ\r\n", META_MS, "CLIENT_ERROR bad token in command line format", true },
    { "ms a 3 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx MZ\r\n", META_MS,
      "CLIENT_ERROR invalid mode for ms M token", true },
    { "ms a 3 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", META_MS,
      "CLIENT_ERROR opaque token too long", true },
    { "ms a 3 a b c d e f g h i j k l m n o p q\r\n", META_MS,
      "CLIENT_ERROR options flags too long", false },
    { "md a x\r\n", META_MD, "CLIENT_ERROR invalid or duplicate flag", false },
    { "md a Tx\r\n", META_MD, "CLIENT_ERROR invalid or duplicate flag", false },
    { "md a Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", META_MD,
      "CLIENT_ERROR opaque token too long", false },
    { "ma a Dx\r\n", META_MA, "CLIENT_ERROR invalid or duplicate flag", false },
    { "ma a Mz\r\n", META_MA, "CLIENT_ERROR invalid mode for ma M token", false },
    { "me a b\r\n", META_ME, "CLIENT_ERROR bad command line format", false },
};

ParameterizedTestParameters(meta, refusals_carry_memcacheds_words)
{
    return cr_make_param_array(struct refusal, refusals, sizeof(refusals) / sizeof(refusals[0]));
}

ParameterizedTest(struct refusal *r, meta, refusals_carry_memcacheds_words)
{
    struct proto_request req;
    struct meta_request m;
    cr_assert_not(parse(r->line, r->cmd, &req, &m), "%s", r->line);
    cr_expect_str_eq(m.error, r->error, "%s", r->line);
    cr_expect_eq(m.swallow, r->swallow, "%s", r->line);
}

Test(meta, a_long_opaque_is_noted_where_it_stands_for_mg_and_ma)
{
    struct proto_request req;
    struct meta_request m;
    cr_assert(parse("mg a T5 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx t\r\n", META_MG, &req, &m));
    cr_expect_eq(m.opaque_bad, 1);
    cr_assert(parse("ma a Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", META_MA, &req, &m));
    cr_expect_eq(m.opaque_bad, -1, "32 bytes with the O are allowed");
}

Test(meta, b_decodes_the_key_into_its_own_buffer)
{
    struct proto_request req;
    struct meta_request m;
    cr_assert(parse("mg Zm9v v b\r\n", META_MG, &req, &m));
    cr_expect(m.binary);
    cr_expect_eq(m.nkey, 3);
    cr_expect_eq(memcmp(m.key, "foo", 3), 0);
    cr_expect_eq(m.key, m.keybuf);
    cr_assert(parse("me Zm9v b\r\n", META_ME, &req, &m));
    cr_expect_eq(memcmp(m.key, "foo", 3), 0);
    cr_assert(parse("me Zm9v x b\r\n", META_ME, &req, &m));
    cr_expect_not(m.binary, "me decodes only when b is its third token");
}

struct b64 {
    char in[16];
    char out[8];
    size_t outlen;      /* 0: does not decode */
};

static struct b64 b64s[] = {
    { "Zm9v", "foo", 3 },
    { "Zm9vYg==", "foob", 4 },
    { "Zm9vYmE=", "fooba", 5 },
    { "Zm9.v", "foo", 3 },              /* outside the alphabet: skipped */
    { "AAEC/w==", "\x00\x01\x02\xff", 4 },
    { "Zm9vYg==Zm9v", "foob", 4 },      /* the first padded group ends it */
    { "Zm9", "", 0 },
    { "Zm9v=", "", 0 },
    { "A===", "", 0 },
    { "....", "", 0 },
    { "", "", 0 },
};

ParameterizedTestParameters(meta, base64_decodes_as_memcached_does)
{
    return cr_make_param_array(struct b64, b64s, sizeof(b64s) / sizeof(b64s[0]));
}

ParameterizedTest(struct b64 *t, meta, base64_decodes_as_memcached_does)
{
    char out[64];
    size_t n = meta_base64_decode(t->in, strlen(t->in), out, sizeof(out));
    if (t->outlen == 0) {
        cr_expect_eq(n, 0, "%s", t->in);
    } else {
        cr_expect_eq(n, t->outlen, "%s", t->in);
        cr_expect_eq(memcmp(out, t->out, t->outlen), 0, "%s", t->in);
    }
}

Test(meta, base64_round_trips_every_length)
{
    char src[64], enc[96], dec[64];
    for (size_t len = 1; len < sizeof(src); len++) {
        for (size_t i = 0; i < len; i++)
            src[i] = (char)(i * 37 + len);
        size_t e = meta_base64_encode(src, len, enc);
        cr_assert_eq(e, 4 * ((len + 2) / 3));
        size_t d = meta_base64_decode(enc, e, dec, sizeof(dec));
        cr_assert_eq(d, len, "length %zu", len);
        cr_assert_eq(memcmp(src, dec, len), 0, "length %zu", len);
    }
}

Test(meta, decoding_never_writes_past_its_buffer)
{
    char out[3];
    cr_expect_eq(meta_base64_decode("Zm9vYmFy", 8, out, sizeof(out)), 0,
                 "six bytes do not fit in three");
    cr_expect_eq(meta_base64_decode("Zm9v", 4, out, sizeof(out)), 3);
}

Test(meta, reply_pieces)
{
    char buf[512];
    char *p = meta_put_key(buf, "\x00\x01", 2, true);
    cr_expect_eq((size_t)(p - buf), strlen(" kAAE= b"));
    cr_expect_eq(memcmp(buf, " kAAE= b", 8), 0);
    p = meta_put_i64(buf, -1);
    cr_expect_eq(memcmp(buf, "-1", 2), 0);
    cr_expect_eq(p - buf, 2);
    p = meta_put_u64(buf, UINT64_MAX);
    cr_expect_eq(memcmp(buf, "18446744073709551615", 20), 0);
    cr_expect_eq(p - buf, 20);
}

/* Every prefix of a set of hostile lines parses or is refused, never
 * reading past the line (run under ASan in the sanitizer build). */
Test(meta, hostile_lines_are_refused_cleanly)
{
    static const char *lines[] = {
        "mg \xff\xfe\xfd b\r\n", "ms k 99999999999999999999 v\r\n", "ma k D-1 J-1 C-1\r\n",
        "md k C18446744073709551616\r\n", "mg k O\r\n", "mg k M\r\n", "mg ==== b\r\n",
        "ms k 0 T2147483648 F4294967296\r\n", "mg k \t\r\n",
    };
    char copy[128];
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t len = strlen(lines[i]);
        for (size_t cut = 4; cut <= len; cut++) {
            memcpy(copy, lines[i], cut);
            struct proto_request req;
            if (proto_parse_line(copy, cut, &req) != PROTO_OK || req.ntokens < 3)
                continue;
            struct meta_request m;
            enum meta_cmd cmd = copy[1] == 's' ? META_MS : copy[1] == 'a' ? META_MA
                              : copy[1] == 'd' ? META_MD : META_MG;
            if (!meta_parse(cmd, &req, &m))
                cr_expect_not_null(m.error);
            else
                cr_expect_leq(m.nkey, CACHE_KEY_MAX);
        }
    }
}
