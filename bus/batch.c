/* batch: open addressing over at most BUS_BATCH_SLOTS records; a payload of
 * WIRE_PAYLOAD_MAX bytes holds at most WIRE_PAYLOAD_MAX / 12 < 256 records,
 * so the probe always finds a free slot. */
#include "bus/batch.h"

#include <string.h>
#include <xxhash.h>

_Static_assert(WIRE_PAYLOAD_MAX / (WIRE_INVALIDATE_FIXED + 1) < BUS_BATCH_SLOTS,
               "dedupe table must outnumber the records a payload can hold");

void
bus_batch_init(struct bus_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->gen = 1;
}

void
bus_batch_reset(struct bus_batch *b)
{
    b->len = 0;
    b->nkeys = 0;
    b->nflush = 0;
    if (++b->gen == 0) {
        for (unsigned i = 0; i < BUS_BATCH_SLOTS; i++)
            b->slot[i].gen = 0;
        b->gen = 1;
    }
}

bool
bus_batch_empty(const struct bus_batch *b)
{
    return b->len == 0;
}

enum bus_batch_result
bus_batch_add_invalidate(struct bus_batch *b, const char *key, size_t nkey, bool has_hash,
                         uint64_t hash)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX)
        return BUS_BATCH_FULL; /* never fits; the caller counts it */
    uint64_t h = XXH3_64bits(key, nkey);
    uint32_t tag = (uint32_t)(h >> 32);
    unsigned i = (unsigned)h % BUS_BATCH_SLOTS;
    for (;; i = (i + 1) % BUS_BATCH_SLOTS) {
        if (b->slot[i].gen != b->gen)
            break;
        uint8_t *rec = b->payload + b->slot[i].off;
        if (b->slot[i].tag == tag && rec[2] == nkey &&
            memcmp(rec + WIRE_INVALIDATE_FIXED, key, nkey) == 0) {
            size_t off = b->slot[i].off;
            size_t end = off;
            /* Rewrite in place: same length, so nothing moves. */
            if (!wire_put_invalidate(b->payload, off + WIRE_INVALIDATE_FIXED + nkey, &end, key,
                                     nkey, has_hash, hash))
                return BUS_BATCH_FULL;
            return BUS_BATCH_MERGED;
        }
    }
    size_t off = b->len;
    if (!wire_put_invalidate(b->payload, sizeof(b->payload), &b->len, key, nkey, has_hash, hash))
        return BUS_BATCH_FULL;
    b->slot[i].gen = b->gen;
    b->slot[i].tag = tag;
    b->slot[i].off = (uint16_t)off;
    b->nkeys++;
    return BUS_BATCH_ADDED;
}

/* Keys after this point must not merge into records before it. */
static void
batch_fence(struct bus_batch *b)
{
    if (++b->gen == 0) {
        for (unsigned i = 0; i < BUS_BATCH_SLOTS; i++)
            b->slot[i].gen = 0;
        b->gen = 1;
    }
}

enum bus_batch_result
bus_batch_add_stale(struct bus_batch *b, const char *key, size_t nkey, bool has_exptime,
                    int64_t exptime)
{
    if (!wire_put_stale(b->payload, sizeof(b->payload), &b->len, key, nkey, has_exptime, exptime))
        return BUS_BATCH_FULL;
    b->nkeys++;
    batch_fence(b);
    return BUS_BATCH_ADDED;
}

enum bus_batch_result
bus_batch_add_flush(struct bus_batch *b, int64_t delay)
{
    if (!wire_put_flush(b->payload, sizeof(b->payload), &b->len, delay))
        return BUS_BATCH_FULL;
    b->nflush++;
    batch_fence(b);
    return BUS_BATCH_ADDED;
}
