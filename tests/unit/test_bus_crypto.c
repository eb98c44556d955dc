/* Tests for bus/crypto.c: key files, sealing, and that any tampering,
 * truncation or mode mismatch fails authentication. */
#include "bus/crypto.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char hexkey[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void
init(void)
{
    cr_assert(bus_crypto_setup());
}

TestSuite(bus_crypto, .init = init);

Test(bus_crypto, parses_hex_keys_with_whitespace_and_either_case)
{
    uint8_t k[BUS_KEY_SIZE];
    char text[80];
    snprintf(text, sizeof(text), "  %s\n", hexkey);
    cr_assert(bus_crypto_parse_key((const uint8_t *)text, strlen(text), k));
    for (int i = 0; i < BUS_KEY_SIZE; i++)
        cr_assert_eq(k[i], i);
    snprintf(text, sizeof(text), "%s", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    cr_assert(bus_crypto_parse_key((const uint8_t *)text, strlen(text), k));
    cr_assert_eq(k[31], 0xff);
}

Test(bus_crypto, takes_exactly_32_raw_bytes_as_a_raw_key)
{
    uint8_t raw[BUS_KEY_SIZE], k[BUS_KEY_SIZE];
    for (int i = 0; i < BUS_KEY_SIZE; i++)
        raw[i] = (uint8_t)(i * 7 + 1);
    raw[0] = '\n'; /* raw keys are not trimmed */
    cr_assert(bus_crypto_parse_key(raw, sizeof(raw), k));
    cr_assert_eq(memcmp(raw, k, sizeof(k)), 0);
}

struct bad_key {
    char text[80];
};

ParameterizedTestParameters(bus_crypto, rejects_what_is_not_a_key)
{
    static struct bad_key cases[] = {
        {""},
        {"\n"},
        {"00"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1"},   /* 63 */
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0"}, /* 65 */
        {"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}, /* 64, not hex */
        {"0001020304050607 8090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
    };
    return cr_make_param_array(struct bad_key, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_key *c, bus_crypto, rejects_what_is_not_a_key)
{
    uint8_t k[BUS_KEY_SIZE];
    size_t len = strlen(c->text);
    cr_assert_not(bus_crypto_parse_key((const uint8_t *)c->text, len, k), "accepted \"%s\"", c->text);
}

Test(bus_crypto, loads_a_key_file_and_explains_failures)
{
    char path[] = "/tmp/fc-test-key-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, hexkey, strlen(hexkey)), (ssize_t)strlen(hexkey));
    close(fd);
    chmod(path, 0600);
    uint8_t k[BUS_KEY_SIZE];
    char err[256] = "";
    cr_assert(bus_crypto_load_key(path, k, err, sizeof(err)), "%s", err);
    cr_assert_eq(k[5], 5);

    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_eq(write(fd, "short\n", 6), 6);
    close(fd);
    cr_assert_not(bus_crypto_load_key(path, k, err, sizeof(err)));
    cr_assert(strstr(err, "64 hex digits") != NULL, "%s", err);
    unlink(path);
    cr_assert_not(bus_crypto_load_key(path, k, err, sizeof(err)));
    cr_assert(strstr(err, path) != NULL, "%s", err);
}

static size_t
frame(const uint8_t *key, uint64_t seq, uint8_t *out, const char *text)
{
    struct wire_header h = {.type = WIRE_DATA, .node_id = 5, .epoch = 1000, .seq = seq};
    return bus_crypto_frame(key, &h, (const uint8_t *)text, strlen(text), out, WIRE_DATAGRAM_MAX);
}

static bool
open_dgram(const uint8_t *key, const uint8_t *d, size_t len, char *text_out)
{
    struct wire_header h;
    if (wire_header_decode(d, len, &h) != WIRE_OK)
        return false;
    uint8_t plain[WIRE_PAYLOAD_MAX];
    const uint8_t *p;
    if (!bus_crypto_open(key, &h, d, len, plain, &p))
        return false;
    memcpy(text_out, p, h.plen);
    text_out[h.plen] = '\0';
    return true;
}

Test(bus_crypto, sealed_datagrams_round_trip_and_hide_the_payload)
{
    uint8_t key[BUS_KEY_SIZE] = {1, 2, 3};
    uint8_t d[WIRE_DATAGRAM_MAX];
    size_t n = frame(key, 1, d, "secret-key-name");
    cr_assert_eq(n, WIRE_HEADER_SIZE + 15 + WIRE_TAG_SIZE);
    cr_assert_null(memmem(d, n, "secret", 6));
    char out[WIRE_PAYLOAD_MAX + 1];
    cr_assert(open_dgram(key, d, n, out));
    cr_assert_str_eq(out, "secret-key-name");
}

Test(bus_crypto, resealing_is_deterministic_and_seqs_change_the_ciphertext)
{
    uint8_t key[BUS_KEY_SIZE] = {9};
    uint8_t a[WIRE_DATAGRAM_MAX], b[WIRE_DATAGRAM_MAX], c[WIRE_DATAGRAM_MAX];
    size_t na = frame(key, 1, a, "same"), nb = frame(key, 1, b, "same"), nc = frame(key, 2, c, "same");
    cr_assert(na == nb && na == nc);
    cr_assert_eq(memcmp(a, b, na), 0);
    cr_assert_neq(memcmp(a + WIRE_HEADER_SIZE, c + WIRE_HEADER_SIZE, na - WIRE_HEADER_SIZE), 0);
}

Test(bus_crypto, any_flipped_bit_or_truncation_fails)
{
    uint8_t key[BUS_KEY_SIZE] = {7};
    uint8_t d[WIRE_DATAGRAM_MAX];
    size_t n = frame(key, 3, d, "k1k2k3");
    char out[WIRE_PAYLOAD_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            d[i] ^= (uint8_t)(1 << bit);
            cr_assert_not(open_dgram(key, d, n, out), "byte %zu bit %d accepted", i, bit);
            d[i] ^= (uint8_t)(1 << bit);
        }
    }
    for (size_t len = 0; len < n; len++)
        cr_assert_not(open_dgram(key, d, len, out));
    cr_assert(open_dgram(key, d, n, out));
}

Test(bus_crypto, wrong_key_and_mode_mismatches_fail)
{
    uint8_t key[BUS_KEY_SIZE] = {1}, other[BUS_KEY_SIZE] = {2};
    uint8_t d[WIRE_DATAGRAM_MAX];
    char out[WIRE_PAYLOAD_MAX + 1];
    size_t n = frame(key, 1, d, "abc");
    cr_assert_not(open_dgram(other, d, n, out));
    cr_assert_not(open_dgram(NULL, d, n, out)); /* sealed, but we have no key */
    n = frame(NULL, 1, d, "abc");
    cr_assert(open_dgram(NULL, d, n, out));
    cr_assert_not(open_dgram(key, d, n, out)); /* clear, but we require a key */
}

Test(bus_crypto, frame_refuses_oversized_payloads)
{
    uint8_t key[BUS_KEY_SIZE] = {0};
    static uint8_t big[WIRE_PAYLOAD_MAX + 1];
    uint8_t d[WIRE_DATAGRAM_MAX];
    struct wire_header h = {.type = WIRE_DATA, .node_id = 1, .epoch = 1, .seq = 1};
    cr_assert_eq(bus_crypto_frame(key, &h, big, sizeof(big), d, sizeof(d)), 0);
    cr_assert_eq(bus_crypto_frame(key, &h, big, WIRE_PAYLOAD_MAX, d, sizeof(d)), WIRE_DATAGRAM_MAX);
    cr_assert_eq(bus_crypto_frame(NULL, &h, big, WIRE_PAYLOAD_MAX, d, sizeof(d)),
                 WIRE_DATAGRAM_MAX - WIRE_TAG_SIZE);
}
