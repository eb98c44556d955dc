/* wire: the bus datagram format — encoding and strict decoding of the header,
 * the DATA records and the control payloads. No sockets, no crypto, no state.
 * Invariant: a decoder never reads outside [buf, buf+len) and accepts a
 * datagram only when every length field agrees with the bytes received.
 *
 * Every datagram (all integers big-endian), at most WIRE_DATAGRAM_MAX bytes:
 *
 *    0         4       5       6       7       8           12      14     16
 *   +---------+-------+-------+-------+-------+-----------+-------+------+
 *   | magic   |version| type  | flags |   0   | node id   | plen  |  0   |
 *   | "FCB1"  | 1,2,3 |       |       |       | u32, != 0 | u16   |      |
 *   +---------+-------+-------+-------+-------+-----------+-------+------+
 *   16  boot epoch (u64, sender's start time in microseconds)           24
 *   24  seq (u64): DATA: data sequence number, 1, 2, 3 ... per epoch     32
 *                  HEARTBEAT/NACK/GONE: the sender's control counter
 *   +----------------------------------------------------------------------+
 *   32  payload, plen bytes (ciphertext when flags & WIRE_FLAG_SEALED)
 *       [16-byte Poly1305 tag when sealed]
 *
 * Sealed: XChaCha20-Poly1305-IETF over the payload, the 32 header bytes as
 * associated data, nonce = node id(4) | type(1) | 0(3) | epoch(8) | seq(8),
 * unique because DATA and control counters never repeat within an epoch and
 * a repaired DATA datagram is resent byte for byte (same nonce, same bytes).
 *
 * DATA payload: records back to back, applied in order.
 *   INVALIDATE  | op=1 | flags (bit0: has hash) | nkey 1..250 | hash u64 | key |
 *   FLUSH       | op=2 | delay i64 (flush_all's argument) |
 *   STALE       | op=3 | flags (bit0: has exptime) | nkey 1..250 | exptime i64 | key |
 *               (version 2: meta `md key I [T<exptime>]`, mark the copy stale)
 *
 * HEARTBEAT: | last data seq u64 | flags u8 (bit0: leaving) |
 * NACK:      | target node u32 | target epoch u64 | n u8 1..16 | n x (first u64, count u32) |
 * GONE:      | target node u32 | asked epoch u64 | oldest seq still held u64 (0: none) |
 * STATUS (version 3, --bus-sync): a read-lease request, grants and acks:
 *            | flags u8 (0) | lease us u32 | now us u64 | last data seq u64 | n u8 0..36 |
 *            n x | node u32 | its epoch u64 | its DATA seq applied through u64 |
 *                | our DATA seq it said it applied through u64 (so it can tell a lost ack) |
 *                | its last "now" heard u64 (0: none): a grant of lease us from then |
 *
 * Versions, for a fleet in a rolling upgrade. A datagram carries the lowest
 * version a receiver must know to read it: 1 for DATA of INVALIDATE and
 * FLUSH records and for HEARTBEAT, NACK and GONE; 2 for DATA holding a STALE
 * record; 3 for STATUS. A receiver takes every version from
 * WIRE_VERSION_MIN to WIRE_VERSION, and refuses a record or a type newer
 * than its datagram's version. The header layout (this picture) is the same
 * in every version. What an older node does with a newer datagram: nodes of
 * versions 1 and 2 refuse it whole as malformed; a STATUS costs them
 * nothing, a DATA leaves a hole in that sender's sequence that no repair
 * fills (the repair is the same datagram), so they flush at the repair
 * deadline: a miss, never a stale copy. From version 3 on, a higher
 * version's header decodes as WIRE_NEWER: its control datagrams are
 * ignored, and its DATA is followed and applied as a flush at once
 * (bus/receive.c). A new kind of record or datagram takes a new version.
 */
#ifndef FLEETCACHE_BUS_WIRE_H
#define FLEETCACHE_BUS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x46434231u /* "FCB1" */
#define WIRE_VERSION_MIN 1      /* INVALIDATE, FLUSH and HEARTBEAT, NACK, GONE */
#define WIRE_VERSION_STALE 2    /* + the STALE record */
#define WIRE_VERSION_STATUS 3   /* + the STATUS datagram (--bus-sync) */
#define WIRE_VERSION 3          /* the newest this node speaks and reads */
#define WIRE_HEADER_SIZE 32
#define WIRE_TAG_SIZE 16
#define WIRE_NONCE_SIZE 24
/* Below every common path MTU (1500 Ethernet minus IP/UDP and tunnel headroom). */
#define WIRE_DATAGRAM_MAX 1400
/* The same with and without a key, so a batch never depends on the mode. */
#define WIRE_PAYLOAD_MAX (WIRE_DATAGRAM_MAX - WIRE_HEADER_SIZE - WIRE_TAG_SIZE)
#define WIRE_KEY_MAX 250
#define WIRE_INVALIDATE_FIXED 11 /* op, flags, nkey, hash */
#define WIRE_STALE_FIXED 11     /* op, flags, nkey, exptime */
#define WIRE_FLUSH_SIZE 9
#define WIRE_HEARTBEAT_SIZE 9
#define WIRE_NACK_RANGES_MAX 16
#define WIRE_GONE_SIZE 20
#define WIRE_STATUS_FIXED 22
#define WIRE_STATUS_ENTRY 36
#define WIRE_STATUS_ENTRIES_MAX 36

enum wire_type {
    WIRE_DATA = 1,
    WIRE_HEARTBEAT = 2,
    WIRE_NACK = 3,
    WIRE_GONE = 4,
    WIRE_STATUS = 5,
};

#define WIRE_FLAG_SEALED 0x01
#define WIRE_HB_LEAVING 0x01
#define WIRE_REC_HAS_HASH 0x01
#define WIRE_REC_HAS_EXPTIME 0x01

enum wire_op {
    WIRE_OP_INVALIDATE = 1,
    WIRE_OP_FLUSH = 2,
    WIRE_OP_STALE = 3,      /* version 2 */
};

#define WIRE_RESULTS(X)     \
    X(WIRE_OK)              \
    X(WIRE_SHORT)           \
    X(WIRE_BAD_MAGIC)       \
    X(WIRE_BAD_VERSION)     \
    X(WIRE_BAD_TYPE)        \
    X(WIRE_BAD_FLAGS)       \
    X(WIRE_BAD_NODE)        \
    X(WIRE_BAD_SEQ)         \
    X(WIRE_BAD_LENGTH)      \
    X(WIRE_BAD_RECORD)      \
    X(WIRE_BAD_PAYLOAD)     \
    X(WIRE_NEWER)           /* a version above WIRE_VERSION: header only */

enum wire_result {
#define WIRE_RESULT_ENUM(name) name,
    WIRE_RESULTS(WIRE_RESULT_ENUM)
#undef WIRE_RESULT_ENUM
    WIRE_RESULT_COUNT
};

const char *
wire_result_name(enum wire_result r);

struct wire_header {
    uint8_t version;    /* decoded; encoding writes it, 0 meaning the type's own */
    uint8_t type;
    uint8_t flags;
    uint16_t plen;      /* plaintext payload length */
    uint32_t node_id;   /* never 0 */
    uint64_t epoch;
    uint64_t seq;       /* never 0 */
};

/* The lowest version with datagrams of type (see Versions above); DATA
 * takes its records' (wire_data_version). */
uint8_t
wire_type_version(uint8_t type);

/* Writes the 32 header bytes: h->version, or when 0 the type's own. */
void
wire_header_encode(const struct wire_header *h, uint8_t out[WIRE_HEADER_SIZE]);

/* Decodes and checks the header of a datagram of len bytes, including that
 * len is exactly header + plen (+ tag when sealed), and that its type
 * exists in its version. WIRE_NEWER: a version above WIRE_VERSION whose
 * fixed fields (type nonzero, node, seq, lengths, the sealed flag) are
 * sound; h is filled so the datagram can be authenticated and followed. */
enum wire_result
wire_header_decode(const uint8_t *buf, size_t len, struct wire_header *h);

/* The AEAD nonce for a header (see the picture). */
void
wire_nonce(const struct wire_header *h, uint8_t out[WIRE_NONCE_SIZE]);

/* --- DATA records ------------------------------------------------------ */

struct wire_record {
    uint8_t op;
    bool has_hash;
    uint8_t nkey;
    const char *key;    /* view into the payload */
    uint64_t hash;
    int64_t delay;      /* WIRE_OP_FLUSH */
    bool has_exptime;   /* WIRE_OP_STALE */
    int64_t exptime;
};

/* Appends an INVALIDATE record at buf+*len (capacity cap). Returns false,
 * leaving *len alone, when it does not fit or nkey is not 1..250. */
bool
wire_put_invalidate(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t nkey,
                    bool has_hash, uint64_t hash);

bool
wire_put_flush(uint8_t *buf, size_t cap, size_t *len, int64_t delay);

/* Appends a STALE record (version 2); as wire_put_invalidate. */
bool
wire_put_stale(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t nkey,
               bool has_exptime, int64_t exptime);

/* Reads the record at *off and advances *off. WIRE_OK, or WIRE_BAD_RECORD
 * for anything malformed (unknown op, nkey 0 or > 250, truncation). */
enum wire_result
wire_next_record(const uint8_t *p, size_t len, size_t *off, struct wire_record *r);

/* Checks a whole DATA payload (at least one record, all well formed), so a
 * receiver applies all of a datagram or none of it. Counts records in *nrec. */
enum wire_result
wire_check_data(const uint8_t *p, size_t len, unsigned *nrec);

/* The lowest header version that may carry a well-formed DATA payload:
 * what a sender writes, and at most what a receiver's datagram says. */
uint8_t
wire_data_version(const uint8_t *p, size_t len);

/* --- control payloads ---------------------------------------------------- */

struct wire_heartbeat {
    uint64_t last_seq;
    bool leaving;
};

struct wire_range {
    uint64_t first;
    uint32_t count;     /* >= 1 */
};

struct wire_nack {
    uint32_t target;
    uint64_t epoch;
    uint8_t n;
    struct wire_range r[WIRE_NACK_RANGES_MAX];
};

struct wire_gone {
    uint32_t target;
    uint64_t epoch;
    uint64_t oldest;
};

struct wire_status_entry {
    uint32_t node;
    uint64_t epoch;     /* the life of node the sender follows */
    uint64_t acked;     /* node's DATA seqs the sender applied through */
    uint64_t acked_by;  /* the sender's DATA seqs node said it applied through */
    uint64_t echo;      /* node's last now_us the sender heard; 0: no grant */
};

struct wire_status {
    uint32_t lease_us;  /* the length of the grants in it */
    uint64_t now_us;    /* the sender's monotonic clock: echoed back as a grant */
    uint64_t last_seq;  /* the sender's last DATA seq sent (as a heartbeat's) */
    uint8_t n;
    struct wire_status_entry e[WIRE_STATUS_ENTRIES_MAX];
};

/* Encoders return the payload length written into buf (which holds at least
 * WIRE_PAYLOAD_MAX bytes). */
size_t
wire_put_heartbeat(uint8_t *buf, const struct wire_heartbeat *hb);
size_t
wire_put_nack(uint8_t *buf, const struct wire_nack *n);
size_t
wire_put_gone(uint8_t *buf, const struct wire_gone *g);
size_t
wire_put_status(uint8_t *buf, const struct wire_status *st);

/* Decoders accept exactly the encoded length, and ranges that are non-empty
 * and do not wrap. */
enum wire_result
wire_get_heartbeat(const uint8_t *p, size_t len, struct wire_heartbeat *hb);
enum wire_result
wire_get_nack(const uint8_t *p, size_t len, struct wire_nack *n);
enum wire_result
wire_get_gone(const uint8_t *p, size_t len, struct wire_gone *g);
enum wire_result
wire_get_status(const uint8_t *p, size_t len, struct wire_status *st);

#endif
