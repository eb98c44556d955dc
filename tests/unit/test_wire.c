/* Tests for bus/wire.c: exact encoding, strict decoding of hostile bytes, and
 * 100k random and mutated datagrams through the whole parse path. */
#include "bus/wire.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

static size_t
make_data(uint8_t *out, uint64_t seq, const char *const *keys, size_t nkeys)
{
    uint8_t payload[WIRE_PAYLOAD_MAX];
    size_t plen = 0;
    for (size_t i = 0; i < nkeys; i++)
        cr_assert(wire_put_invalidate(payload, sizeof(payload), &plen, keys[i], strlen(keys[i]),
                                      i % 2 == 0, 1000 + i));
    struct wire_header h = {.type = WIRE_DATA, .plen = (uint16_t)plen, .node_id = 7,
                            .epoch = 99, .seq = seq};
    wire_header_encode(&h, out);
    memcpy(out + WIRE_HEADER_SIZE, payload, plen);
    return WIRE_HEADER_SIZE + plen;
}

Test(wire, header_round_trips_every_field)
{
    struct wire_header h = {.type = WIRE_NACK, .flags = WIRE_FLAG_SEALED, .plen = 25,
                            .node_id = 0xdeadbeef, .epoch = 0x0102030405060708ull,
                            .seq = 0xfffffffffffffff0ull}, g;
    uint8_t buf[WIRE_HEADER_SIZE + 25 + WIRE_TAG_SIZE] = {0};
    wire_header_encode(&h, buf);
    cr_assert_eq(memcmp(buf, "FCB1\x01\x03\x01\x00\xde\xad\xbe\xef\x00\x19\x00\x00", 16), 0);
    cr_assert_eq(wire_header_decode(buf, sizeof(buf), &g), WIRE_OK);
    cr_assert_eq(g.type, h.type);
    cr_assert_eq(g.flags, h.flags);
    cr_assert_eq(g.plen, h.plen);
    cr_assert_eq(g.node_id, h.node_id);
    cr_assert_eq(g.epoch, h.epoch);
    cr_assert_eq(g.seq, h.seq);
}

struct hostile {
    int off;            /* byte to overwrite, -1 for none */
    uint8_t val;
    int len_delta;      /* added to the real length */
    enum wire_result want;
};

ParameterizedTestParameters(wire, header_rejects_hostile_bytes)
{
    static struct hostile cases[] = {
        {-1, 0, 0, WIRE_OK},
        {0, 'X', 0, WIRE_BAD_MAGIC},
        {3, '2', 0, WIRE_BAD_MAGIC},
        {4, 2, 0, WIRE_OK},                  /* a v2+ reader reads v1 DATA in a newer frame */
        {4, 3, 0, WIRE_OK},
        {4, 4, 0, WIRE_NEWER},               /* above what we read: header only */
        {4, 0xff, 0, WIRE_NEWER},
        {4, 0, 0, WIRE_BAD_VERSION},
        {5, 0, 0, WIRE_BAD_TYPE},
        {5, 5, 0, WIRE_BAD_TYPE},            /* STATUS does not exist in version 1 */
        {5, 6, 0, WIRE_BAD_TYPE},
        {5, 0xff, 0, WIRE_BAD_TYPE},
        {6, 0x02, 0, WIRE_BAD_FLAGS},
        {7, 1, 0, WIRE_BAD_FLAGS},
        {15, 1, 0, WIRE_BAD_FLAGS},
        {11, 0, 0, WIRE_BAD_NODE},           /* node id 7 -> 0 */
        {31, 0, 0, WIRE_BAD_SEQ},            /* seq 1 -> 0 */
        {6, WIRE_FLAG_SEALED, 0, WIRE_BAD_LENGTH}, /* sealed, but no tag */
        {13, 0xff, 0, WIRE_BAD_LENGTH},      /* plen says more */
        {12, 0xff, 0, WIRE_BAD_LENGTH},      /* plen above the maximum */
        {-1, 0, -1, WIRE_BAD_LENGTH},        /* truncated */
        {-1, 0, 1, WIRE_BAD_LENGTH},         /* trailing byte */
        {-1, 0, -60, WIRE_SHORT},
    };
    return cr_make_param_array(struct hostile, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct hostile *c, wire, header_rejects_hostile_bytes)
{
    static const char *const keys[] = {"alpha", "beta", "gamma"};
    uint8_t buf[WIRE_DATAGRAM_MAX + 8] = {0};
    size_t len = make_data(buf, 1, keys, 3);
    if (c->off >= 0)
        buf[c->off] = c->val;
    size_t l = (size_t)((long)len + c->len_delta);
    struct wire_header h;
    cr_assert_eq(wire_header_decode(buf, l, &h), c->want, "got %s",
                 wire_result_name(wire_header_decode(buf, l, &h)));
}

Test(wire, records_round_trip_in_order)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    size_t len = 0;
    char big[WIRE_KEY_MAX];
    memset(big, 'k', sizeof(big));
    cr_assert(wire_put_invalidate(p, sizeof(p), &len, "a", 1, true, 42));
    cr_assert(wire_put_flush(p, sizeof(p), &len, -5));
    cr_assert(wire_put_invalidate(p, sizeof(p), &len, big, sizeof(big), false, 0));
    unsigned n = 0;
    cr_assert_eq(wire_check_data(p, len, &n), WIRE_OK);
    cr_assert_eq(n, 3);
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_assert(r.op == WIRE_OP_INVALIDATE && r.has_hash && r.hash == 42 && r.nkey == 1 &&
              r.key[0] == 'a');
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_assert(r.op == WIRE_OP_FLUSH && r.delay == -5);
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_assert(r.op == WIRE_OP_INVALIDATE && !r.has_hash && r.nkey == WIRE_KEY_MAX);
    cr_assert_eq(off, len);
}

Test(wire, put_refuses_bad_keys_and_overflow)
{
    uint8_t p[20];
    size_t len = 0;
    char big[WIRE_KEY_MAX + 1];
    memset(big, 'k', sizeof(big));
    cr_assert_not(wire_put_invalidate(p, sizeof(p), &len, "x", 0, false, 0));
    cr_assert_not(wire_put_invalidate(p, sizeof(p), &len, big, sizeof(big), false, 0));
    cr_assert(wire_put_invalidate(p, sizeof(p), &len, "123456789", 9, false, 0)); /* 20 bytes */
    cr_assert_eq(len, 20);
    cr_assert_not(wire_put_flush(p, sizeof(p), &len, 0));
    cr_assert_eq(len, 20);
}

struct bad_payload {
    uint8_t bytes[16];
    size_t len;
};

ParameterizedTestParameters(wire, check_data_rejects_malformed_records)
{
    static struct bad_payload cases[] = {
        {{0}, 0},                                           /* empty */
        {{3}, 1},                                           /* unknown op */
        {{0}, 1},                                           /* op 0 */
        {{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 11},            /* key byte missing */
        {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'a'}, 12},       /* nkey 0 */
        {{1, 0, 251, 0, 0, 0, 0, 0, 0, 0, 0, 'a'}, 12},     /* nkey 251 */
        {{1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'a'}, 12},       /* unknown record flag */
        {{1, 0, 1, 0, 0, 0, 0}, 7},                         /* truncated hash */
        {{2, 0, 0, 0, 0, 0, 0, 0}, 8},                      /* truncated flush */
        {{2, 0, 0, 0, 0, 0, 0, 0, 0, 7}, 10},               /* trailing garbage */
    };
    return cr_make_param_array(struct bad_payload, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_payload *c, wire, check_data_rejects_malformed_records)
{
    /* Exactly len bytes on the heap, so ASan sees any read beyond them. */
    uint8_t *p = malloc(c->len ? c->len : 1);
    memcpy(p, c->bytes, c->len);
    unsigned n;
    cr_assert_neq(wire_check_data(p, c->len, &n), WIRE_OK);
    free(p);
}

Test(wire, control_payloads_round_trip)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    struct wire_heartbeat hb = {.last_seq = 12345, .leaving = true}, hb2;
    size_t n = wire_put_heartbeat(p, &hb);
    cr_assert_eq(wire_get_heartbeat(p, n, &hb2), WIRE_OK);
    cr_assert(hb2.last_seq == 12345 && hb2.leaving);

    struct wire_nack k = {.target = 9, .epoch = 77, .n = WIRE_NACK_RANGES_MAX}, k2;
    for (unsigned i = 0; i < k.n; i++)
        k.r[i] = (struct wire_range){.first = 10 * i + 1, .count = i + 1};
    n = wire_put_nack(p, &k);
    cr_assert_eq(n, 13 + 12 * WIRE_NACK_RANGES_MAX);
    cr_assert_eq(wire_get_nack(p, n, &k2), WIRE_OK);
    cr_assert(k2.target == 9 && k2.epoch == 77 && k2.n == k.n);
    for (unsigned i = 0; i < k.n; i++)
        cr_assert(k2.r[i].first == k.r[i].first && k2.r[i].count == k.r[i].count);

    struct wire_gone g = {.target = 3, .epoch = 4, .oldest = 5}, g2;
    n = wire_put_gone(p, &g);
    cr_assert_eq(wire_get_gone(p, n, &g2), WIRE_OK);
    cr_assert(g2.target == 3 && g2.epoch == 4 && g2.oldest == 5);

    struct wire_status st = {.lease_us = 100000, .now_us = 0x1122334455667788ull,
                             .last_seq = 42, .n = WIRE_STATUS_ENTRIES_MAX}, st2;
    for (unsigned i = 0; i < st.n; i++)
        st.e[i] = (struct wire_status_entry){.node = i + 1, .epoch = 1000 + i, .acked = 7 * i,
                                             .acked_by = 5 * i, .echo = i % 3 ? 0 : 99 + i};
    n = wire_put_status(p, &st);
    cr_assert_eq(n, WIRE_STATUS_FIXED + WIRE_STATUS_ENTRY * WIRE_STATUS_ENTRIES_MAX);
    cr_assert_leq(n, WIRE_PAYLOAD_MAX, "a full STATUS fits one datagram");
    cr_assert_eq(wire_get_status(p, n, &st2), WIRE_OK);
    cr_assert(st2.lease_us == st.lease_us && st2.now_us == st.now_us && st2.last_seq == 42 &&
              st2.n == st.n);
    for (unsigned i = 0; i < st.n; i++)
        cr_assert(st2.e[i].node == st.e[i].node && st2.e[i].epoch == st.e[i].epoch &&
                  st2.e[i].acked == st.e[i].acked && st2.e[i].acked_by == st.e[i].acked_by &&
                  st2.e[i].echo == st.e[i].echo, "entry %u", i);
}

Test(wire, status_goes_as_version_3_and_the_controls_as_version_1)
{
    uint8_t buf[WIRE_HEADER_SIZE + WIRE_STATUS_FIXED];
    struct wire_header h = {.type = WIRE_STATUS, .plen = WIRE_STATUS_FIXED, .node_id = 1,
                            .epoch = 2, .seq = 3}, g;
    wire_header_encode(&h, buf);
    cr_assert_eq(buf[4], 3);
    cr_assert_eq(wire_header_decode(buf, sizeof(buf), &g), WIRE_OK);
    cr_assert(g.version == 3 && g.type == WIRE_STATUS);
    for (uint8_t t = WIRE_DATA; t <= WIRE_GONE; t++)
        cr_assert_eq(wire_type_version(t), 1, "type %u", t);
    buf[4] = 2;
    cr_assert_eq(wire_header_decode(buf, sizeof(buf), &g), WIRE_BAD_TYPE,
                 "a version-2 frame cannot say STATUS");
    buf[4] = 9;
    buf[5] = 77;        /* a type of a version we do not know */
    buf[7] = 1;         /* reserved bytes a newer version may use */
    cr_assert_eq(wire_header_decode(buf, sizeof(buf), &g), WIRE_NEWER);
    cr_assert(g.version == 9 && g.type == 77 && g.node_id == 1 && g.epoch == 2 && g.seq == 3);
}

Test(wire, control_payloads_reject_bad_lengths_and_ranges)
{
    uint8_t p[WIRE_PAYLOAD_MAX] = {0};
    struct wire_heartbeat hb;
    struct wire_nack k;
    struct wire_gone g;
    cr_assert_neq(wire_get_heartbeat(p, 8, &hb), WIRE_OK);
    cr_assert_neq(wire_get_heartbeat(p, 10, &hb), WIRE_OK);
    p[8] = 0x80;
    cr_assert_neq(wire_get_heartbeat(p, 9, &hb), WIRE_OK);
    cr_assert_neq(wire_get_gone(p, 19, &g), WIRE_OK);
    cr_assert_neq(wire_get_gone(p, 21, &g), WIRE_OK);

    struct wire_status st = {.lease_us = 1, .now_us = 5, .n = 1,
                             .e = {{.node = 4, .epoch = 1, .acked = 1, .echo = 1}}}, st2;
    size_t sn = wire_put_status(p, &st);
    cr_assert_eq(wire_get_status(p, sn, &st2), WIRE_OK);
    cr_assert_neq(wire_get_status(p, sn - 1, &st2), WIRE_OK);
    cr_assert_neq(wire_get_status(p, sn + 1, &st2), WIRE_OK);
    cr_assert_neq(wire_get_status(p, WIRE_STATUS_FIXED - 1, &st2), WIRE_OK);
    p[0] = 1;                                              /* unknown flags */
    cr_assert_neq(wire_get_status(p, sn, &st2), WIRE_OK);
    p[0] = 0;
    p[WIRE_STATUS_FIXED + 3] = 0;                          /* node 0 */
    cr_assert_neq(wire_get_status(p, sn, &st2), WIRE_OK);
    p[21] = WIRE_STATUS_ENTRIES_MAX + 1;
    cr_assert_neq(wire_get_status(p, WIRE_STATUS_FIXED + WIRE_STATUS_ENTRY *
                                  (WIRE_STATUS_ENTRIES_MAX + 1), &st2), WIRE_OK);
    memset(p, 0, WIRE_STATUS_FIXED);                       /* now 0 */
    cr_assert_neq(wire_get_status(p, WIRE_STATUS_FIXED, &st2), WIRE_OK);
    memset(p, 0, WIRE_STATUS_ENTRY + WIRE_STATUS_FIXED);

    struct wire_nack ok = {.target = 1, .epoch = 1, .n = 1, .r = {{.first = 5, .count = 2}}};
    size_t n = wire_put_nack(p, &ok);
    cr_assert_eq(wire_get_nack(p, n, &k), WIRE_OK);
    cr_assert_neq(wire_get_nack(p, n - 1, &k), WIRE_OK);
    cr_assert_neq(wire_get_nack(p, 12, &k), WIRE_OK);
    p[12] = 0;                                             /* no ranges */
    cr_assert_neq(wire_get_nack(p, 13, &k), WIRE_OK);
    p[12] = WIRE_NACK_RANGES_MAX + 1;
    cr_assert_neq(wire_get_nack(p, 13 + 12 * (WIRE_NACK_RANGES_MAX + 1), &k), WIRE_OK);
    ok.r[0].count = 0;
    n = wire_put_nack(p, &ok);
    cr_assert_neq(wire_get_nack(p, n, &k), WIRE_OK);
    ok.r[0] = (struct wire_range){.first = UINT64_MAX - 1, .count = 5}; /* wraps */
    n = wire_put_nack(p, &ok);
    cr_assert_neq(wire_get_nack(p, n, &k), WIRE_OK);
    ok.r[0] = (struct wire_range){.first = 0, .count = 1};
    n = wire_put_nack(p, &ok);
    cr_assert_neq(wire_get_nack(p, n, &k), WIRE_OK);
}

/* The receiver's whole parse path, without state. */
static enum wire_result
parse_all(const uint8_t *buf, size_t len)
{
    struct wire_header h;
    enum wire_result rc = wire_header_decode(buf, len, &h);
    if (rc != WIRE_OK || (h.flags & WIRE_FLAG_SEALED))
        return rc;
    const uint8_t *p = buf + WIRE_HEADER_SIZE;
    unsigned n;
    struct wire_heartbeat hb;
    struct wire_nack k;
    struct wire_gone g;
    struct wire_status st;
    switch (h.type) {
    case WIRE_STATUS:
        return wire_get_status(p, h.plen, &st);
    case WIRE_DATA:
        rc = wire_check_data(p, h.plen, &n);
        if (rc == WIRE_OK) {
            /* Walk the records as the applier does, touching every key byte. */
            size_t off = 0;
            struct wire_record r;
            unsigned sum = 0;
            while (off < h.plen && wire_next_record(p, h.plen, &off, &r) == WIRE_OK)
                for (unsigned i = 0; i < r.nkey; i++)
                    sum += (uint8_t)r.key[i];
            (void)sum;
        }
        return rc;
    case WIRE_HEARTBEAT:
        return wire_get_heartbeat(p, h.plen, &hb);
    case WIRE_NACK:
        return wire_get_nack(p, h.plen, &k);
    default:
        return wire_get_gone(p, h.plen, &g);
    }
}

Test(wire, survives_100k_random_and_mutated_datagrams, .timeout = 60)
{
    static const char *const keys[] = {"user:1", "user:2", "session:abcdef", "x"};
    uint8_t seed[WIRE_DATAGRAM_MAX];
    size_t seedlen = make_data(seed, 3, keys, 4);
    srand(12345);
    unsigned accepted = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len;
        uint8_t tmp[WIRE_DATAGRAM_MAX + 64];
        if (i % 4 == 0) {
            len = (size_t)rand() % (WIRE_DATAGRAM_MAX + 64);
            for (size_t j = 0; j < len; j++)
                tmp[j] = (uint8_t)rand();
            if (len >= 8 && i % 8 == 0)
                memcpy(tmp, "FCB1\x01\x01\x00\x00", 8); /* get past the magic */
        } else {
            memcpy(tmp, seed, seedlen);
            len = seedlen;
            int muts = 1 + rand() % 4;
            for (int m = 0; m < muts; m++) {
                switch (rand() % 4) {
                case 0: /* flip a byte */
                    tmp[(size_t)rand() % len] ^= (uint8_t)(1 + rand() % 255);
                    break;
                case 1: /* truncate */
                    len = (size_t)rand() % (len + 1);
                    break;
                case 2: /* extend with garbage */
                    while (len < seedlen + 32 && rand() % 2)
                        tmp[len++] = (uint8_t)rand();
                    break;
                default: /* lengths are the juicy part: hit the plen and nkey bytes */
                    if (len > 14)
                        tmp[12 + rand() % 2] = (uint8_t)rand();
                    if (len > WIRE_HEADER_SIZE + 3)
                        tmp[WIRE_HEADER_SIZE + 2] = (uint8_t)rand();
                    break;
                }
                if (len == 0)
                    break;
            }
        }
        uint8_t *heap = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
        memcpy(heap, tmp, len);
        if (parse_all(heap, len) == WIRE_OK)
            accepted++;
        free(heap);
    }
    /* Some mutations (e.g. of key bytes or the epoch) stay valid; most do not. */
    cr_assert_gt(accepted, 0);
    cr_assert_lt(accepted, 100000);
}

Test(wire, a_stale_record_round_trips_and_needs_version_2)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    size_t len = 0;
    cr_assert(wire_put_invalidate(p, sizeof(p), &len, "a", 1, false, 0));
    cr_expect_eq(wire_data_version(p, len), 1);
    cr_assert(wire_put_stale(p, sizeof(p), &len, "bb", 2, true, -5));
    cr_assert(wire_put_stale(p, sizeof(p), &len, "c", 1, false, 0));
    cr_expect_eq(wire_data_version(p, len), 2);
    unsigned n;
    cr_assert_eq(wire_check_data(p, len, &n), WIRE_OK);
    cr_expect_eq(n, 3);
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_expect_eq(r.op, WIRE_OP_STALE);
    cr_expect(r.has_exptime);
    cr_expect_eq(r.exptime, -5);
    cr_expect_eq(r.nkey, 2);
    cr_expect_eq(memcmp(r.key, "bb", 2), 0);
    cr_assert_eq(wire_next_record(p, len, &off, &r), WIRE_OK);
    cr_expect_not(r.has_exptime);
    cr_expect_eq(off, len);
    /* Unknown record flags and truncation are refused. */
    p[len - 1 - WIRE_STALE_FIXED + 1] = 0x02;
    cr_expect_eq(wire_check_data(p, len, &n), WIRE_BAD_RECORD);
    cr_expect_eq(wire_check_data(p, WIRE_INVALIDATE_FIXED + 1 + 5, &n), WIRE_BAD_RECORD);
}

Test(wire, headers_carry_their_version)
{
    struct wire_header h = {.type = WIRE_DATA, .node_id = 1, .epoch = 2, .seq = 3};
    uint8_t buf[WIRE_HEADER_SIZE];
    wire_header_encode(&h, buf);
    cr_expect_eq(buf[4], WIRE_VERSION_MIN, "an unset version is the oldest");
    h.version = 2;
    wire_header_encode(&h, buf);
    struct wire_header d;
    cr_assert_eq(wire_header_decode(buf, sizeof(buf), &d), WIRE_OK);
    cr_expect_eq(d.version, 2);
}

Test(wire, every_result_has_a_name)
{
    for (int r = 0; r < WIRE_RESULT_COUNT; r++)
        cr_assert_str_neq(wire_result_name((enum wire_result)r), "WIRE_UNKNOWN");
    cr_assert_str_eq(wire_result_name(WIRE_RESULT_COUNT), "WIRE_UNKNOWN");
}
