/* batch: one DATA payload being filled with records. A key appears at most
 * once per batch: a later change of the same key overwrites its record in
 * place (the latest hash wins: a receiver must keep only the newest value).
 * Not thread-safe: bus/send.c holds pub_lock around every call. */
#ifndef FLEETCACHE_BUS_BATCH_H
#define FLEETCACHE_BUS_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/wire.h"

/* Enough slots for the most records a payload can hold (1 + 1-byte keys). */
#define BUS_BATCH_SLOTS 256

enum bus_batch_result {
    BUS_BATCH_ADDED,
    BUS_BATCH_MERGED,   /* the key was already in this batch */
    BUS_BATCH_FULL,     /* does not fit: send this batch, start another */
};

struct bus_batch {
    size_t len;
    unsigned nkeys;
    unsigned nflush;
    uint32_t gen;                       /* slots whose gen differs are empty */
    struct {
        uint32_t gen;
        uint32_t tag;                   /* low bits of the key hash */
        uint16_t off;                   /* record offset in payload */
    } slot[BUS_BATCH_SLOTS];
    uint8_t payload[WIRE_PAYLOAD_MAX];
};

void
bus_batch_init(struct bus_batch *b);

/* Empties the batch in O(1). */
void
bus_batch_reset(struct bus_batch *b);

bool
bus_batch_empty(const struct bus_batch *b);

enum bus_batch_result
bus_batch_add_invalidate(struct bus_batch *b, const char *key, size_t nkey, bool has_hash,
                         uint64_t hash);

/* A stale mark (version 2): never merged, and no later key merges into a
 * record before it, so a receiver applies drops and marks in their order. */
enum bus_batch_result
bus_batch_add_stale(struct bus_batch *b, const char *key, size_t nkey, bool has_exptime,
                    int64_t exptime);

/* flush_all: never merged (order against later keys matters for a delay). */
enum bus_batch_result
bus_batch_add_flush(struct bus_batch *b, int64_t delay);

#endif
