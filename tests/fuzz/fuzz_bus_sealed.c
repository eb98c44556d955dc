/* fuzz_bus_sealed: datagrams as a node with a key receives them. Nobody can
 * forge a tag, so the harness seals what the fuzzer writes with the fleet's
 * key and lets it damage the result:
 *   byte 0      mode: 0 raw (the rest is a datagram, as from an attacker),
 *               else sealed by the harness; bits 1-2 the header version
 *               (0: the type's own, 2, 3, or one newer than this node's)
 *   byte 1      type;  bytes 2-5 node id;  6-13 epoch;  14-21 seq (big-endian)
 *   bytes 22-23 position of one damaged byte, byte 24 its xor (0: intact)
 *   the rest    the plaintext payload
 * A sealed datagram must open to exactly its payload while intact, and be
 * refused after any one-byte damage; then the payload goes through the same
 * decoding and oracle as fuzz_bus_wire. */
#include "wire_harness.h"

#define FS_FIELDS 25

static const uint8_t fs_key[BUS_KEY_SIZE] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fw_init();
    return 0;
}

static uint64_t
fs_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == 0) {
        fw_decode(fs_key, data + 1, size - 1);
        return 0;
    }
    if (size < FS_FIELDS)
        return 0;
    struct wire_header h = {
        .version = (uint8_t[]){ 0, 2, 3, WIRE_VERSION + 1 }[(data[0] >> 1) & 3],
        .type = data[1],
        .node_id = (uint32_t)fs_be(data + 2, 4),
        .epoch = fs_be(data + 6, 8),
        .seq = fs_be(data + 14, 8),
    };
    size_t pos = (size_t)fs_be(data + 22, 2);
    uint8_t flip = data[24];
    const uint8_t *payload = data + FS_FIELDS;
    size_t plen = size - FS_FIELDS;
    uint8_t d[WIRE_DATAGRAM_MAX];
    size_t len = bus_crypto_frame(fs_key, &h, payload, plen, d, sizeof(d));
    if (len == 0)
        return 0; /* too long to send */
    bool damaged = flip != 0 && pos < len;
    if (damaged)
        d[pos] ^= flip;

    struct wire_header got;
    enum wire_result hr = wire_header_decode(d, len, &got);
    if (hr != WIRE_OK && hr != WIRE_NEWER) {
        bool sound = h.type >= WIRE_DATA && h.type <= WIRE_STATUS && h.node_id != 0 && h.seq != 0 &&
                     (h.version == 0 || h.version >= wire_type_version(h.type));
        if (!damaged && sound)
            fw_die("a well-formed sealed datagram failed its header check");
        return 0;
    }
    uint8_t plain[WIRE_PAYLOAD_MAX];
    const uint8_t *opened;
    bool ok = bus_crypto_open(fs_key, &got, d, len, plain, &opened);
    if (damaged && ok)
        fw_die("a damaged sealed datagram opened");
    if (!damaged) {
        if (!ok)
            fw_die("an intact sealed datagram did not open");
        if (got.plen != plen || (plen && memcmp(opened, payload, plen) != 0))
            fw_die("a sealed datagram opened to other bytes");
    }
    fw_decode(fs_key, d, len);
    return 0;
}
