/* wire_harness: the bus's receive-side decoding, as bus.c's handle_datagram
 * runs it (header, authentication, then the payload of its type, all of it
 * parsed before anything is applied), with an oracle: whatever the decoder
 * accepts must encode back to exactly the bytes received (the format has one
 * spelling per message), and wire_check_data must count the records that
 * wire_next_record walks. Any disagreement aborts. */
#ifndef FLEETCACHE_FUZZ_WIRE_HARNESS_H
#define FLEETCACHE_FUZZ_WIRE_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/crypto.h"
#include "bus/wire.h"

static void
fw_die(const char *why)
{
    fprintf(stderr, "fuzz harness: %s\n", why);
    abort();
}

static void
fw_init(void)
{
    if (!bus_crypto_setup())
        fw_die("bus_crypto_setup");
}

/* Re-encodes an accepted DATA payload record by record; it must match. */
static void
fw_check_data(const uint8_t *p, size_t len)
{
    unsigned nrec = 0;
    enum wire_result wr = wire_check_data(p, len, &nrec);
    size_t off = 0;
    unsigned walked = 0;
    struct wire_record r;
    uint8_t again[WIRE_PAYLOAD_MAX];
    size_t alen = 0;
    bool all_ok = len > 0;
    while (off < len) {
        size_t before = off;
        if (wire_next_record(p, len, &off, &r) != WIRE_OK) {
            all_ok = false;
            if (off != before)
                fw_die("a refused record moved the offset");
            break;
        }
        if (off <= before || off > len)
            fw_die("a record did not advance within the payload");
        walked++;
        bool put;
        if (r.op == WIRE_OP_FLUSH) {
            put = wire_put_flush(again, sizeof(again), &alen, r.delay);
        } else {
            if (r.nkey == 0 || r.nkey > WIRE_KEY_MAX)
                fw_die("accepted a key of impossible length");
            if ((const uint8_t *)r.key < p || (const uint8_t *)r.key + r.nkey > p + len)
                fw_die("a key view points outside the payload");
            if (r.op == WIRE_OP_STALE)
                put = wire_put_stale(again, sizeof(again), &alen, r.key, r.nkey, r.has_exptime,
                                     r.exptime);
            else
                put = wire_put_invalidate(again, sizeof(again), &alen, r.key, r.nkey, r.has_hash,
                                          r.hash);
        }
        if (!put)
            fw_die("an accepted record does not encode again");
    }
    if ((wr == WIRE_OK) != all_ok)
        fw_die("wire_check_data and wire_next_record disagree on a payload");
    if (wr != WIRE_OK)
        return;
    if (nrec != walked)
        fw_die("wire_check_data miscounted the records");
    /* A record with has_hash (has_exptime) clear may carry any bytes in that
     * field: they are ignored, so compare with the field masked there. */
    if (alen != len)
        fw_die("re-encoded payload length differs");
    for (size_t o = 0; o < len;) {
        size_t start = o;
        wire_next_record(p, len, &o, &r);
        bool hashless = (r.op == WIRE_OP_INVALIDATE && !r.has_hash) ||
                        (r.op == WIRE_OP_STALE && !r.has_exptime);
        for (size_t i = start; i < o; i++) {
            bool hash_byte = hashless && i >= start + 3 && i < start + 11;
            if (!hash_byte && again[i] != p[i])
                fw_die("re-encoded payload differs");
        }
    }
}

/* Decodes one datagram as a node holding key (NULL: no key) would
 * (receive.c). Returns true when it is taken: read whole, or authenticated
 * DATA it cannot read, which a node applies as a flush. */
static bool
fw_decode(const uint8_t *key, const uint8_t *buf, size_t len)
{
    struct wire_header h;
    enum wire_result hr = wire_header_decode(buf, len, &h);
    if (hr != WIRE_OK && hr != WIRE_NEWER)
        return false;
    if (hr == WIRE_OK) {
        uint8_t head[WIRE_HEADER_SIZE];
        wire_header_encode(&h, head);
        if (memcmp(head, buf, WIRE_HEADER_SIZE) != 0)
            fw_die("re-encoded header differs");
        if (h.version > WIRE_VERSION || wire_type_version(h.type) > h.version)
            fw_die("the header decoder accepted a type its version does not have");
    } else if (h.version <= WIRE_VERSION) {
        fw_die("WIRE_NEWER for a version this node speaks");
    }
    uint8_t plain[WIRE_PAYLOAD_MAX];
    const uint8_t *payload = NULL;
    if (!bus_crypto_open(key, &h, buf, len, plain, &payload))
        return false;
    if (!key && (h.flags & WIRE_FLAG_SEALED))
        fw_die("opened a sealed datagram without a key");
    if (key && !(h.flags & WIRE_FLAG_SEALED))
        fw_die("accepted clear text with a key");
    /* A newer format: only its DATA counts (as a flush). */
    if (hr == WIRE_NEWER)
        return h.type == WIRE_DATA;
    uint8_t again[WIRE_PAYLOAD_MAX];
    size_t alen = 0;
    switch (h.type) {
    case WIRE_DATA: {
        fw_check_data(payload, h.plen);
        if (wire_check_data(payload, h.plen, &(unsigned){0}) != WIRE_OK)
            return true; /* unreadable: applied as a flush */
        uint8_t v = wire_data_version(payload, h.plen);
        if (v < WIRE_VERSION_MIN || v > WIRE_VERSION)
            fw_die("a payload needs a version nobody speaks");
        return true; /* read whole, or (v > h.version) applied as a flush */
    }
    case WIRE_HEARTBEAT: {
        struct wire_heartbeat hb;
        if (wire_get_heartbeat(payload, h.plen, &hb) != WIRE_OK)
            return false;
        alen = wire_put_heartbeat(again, &hb);
        break;
    }
    case WIRE_NACK: {
        struct wire_nack n;
        if (wire_get_nack(payload, h.plen, &n) != WIRE_OK)
            return false;
        if (n.n == 0 || n.n > WIRE_NACK_RANGES_MAX)
            fw_die("accepted a NACK with an impossible range count");
        for (unsigned i = 0; i < n.n; i++)
            if (n.r[i].count == 0 || n.r[i].first == 0 ||
                n.r[i].first + n.r[i].count - 1 < n.r[i].first)
                fw_die("accepted an empty or wrapping NACK range");
        alen = wire_put_nack(again, &n);
        break;
    }
    case WIRE_GONE: {
        struct wire_gone g;
        if (wire_get_gone(payload, h.plen, &g) != WIRE_OK)
            return false;
        alen = wire_put_gone(again, &g);
        break;
    }
    case WIRE_STATUS: {
        struct wire_status st;
        if (wire_get_status(payload, h.plen, &st) != WIRE_OK)
            return false;
        if (st.n > WIRE_STATUS_ENTRIES_MAX)
            fw_die("accepted a STATUS with too many entries");
        alen = wire_put_status(again, &st);
        break;
    }
    default:
        fw_die("the header decoder accepted an unknown type");
    }
    if (alen != h.plen || memcmp(again, payload, alen) != 0)
        fw_die("re-encoded control payload differs");
    return true;
}

#endif
