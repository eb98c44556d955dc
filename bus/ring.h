/* ring: the last N DATA datagrams this node sent, exactly as sent, so a NACK
 * is answered by resending the same bytes. Seqs are consecutive from 1; slot
 * = seq % N, and a slot remembers its seq so a stale slot is never served.
 * No locking of its own: every caller holds the bus's send_lock (DATA is put
 * by whichever thread sends it, repairs are read by the bus thread). */
#ifndef FLEETCACHE_BUS_RING_H
#define FLEETCACHE_BUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_ring;

/* A ring of nslots datagrams of up to slot_size bytes; NULL on no memory. */
struct bus_ring *
bus_ring_create(uint32_t nslots, size_t slot_size);

void
bus_ring_destroy(struct bus_ring *r);

/* Stores datagram seq (which must be the previous seq + 1, the first any
 * value). False, storing nothing, when it is out of order or too large. */
bool
bus_ring_put(struct bus_ring *r, uint64_t seq, const uint8_t *data, size_t len);

/* Finds seq: true with *data and *len pointing into the ring (valid until the
 * next put), false when never stored or overwritten. */
bool
bus_ring_get(const struct bus_ring *r, uint64_t seq, const uint8_t **data, size_t *len);

/* Repairs are rationed: a datagram goes to one destination (dest 0..63: the
 * group, or a configured peer) at most once per interval, however many
 * NACKs ask for it, so no stream of NACKs, forged or real, makes us send
 * more than the ring holds per interval. True (and noted) when seq may go
 * to dest at now_us; false when it went there within interval_us, or is not
 * held. */
bool
bus_ring_may_repair(struct bus_ring *r, uint64_t seq, unsigned dest, int64_t now_us,
                    int64_t interval_us);

/* Oldest seq still held, 0 when empty. */
uint64_t
bus_ring_oldest(const struct bus_ring *r);

/* How many datagrams it holds when full. */
uint32_t
bus_ring_capacity(const struct bus_ring *r);

/* Newest seq stored, 0 when empty. */
uint64_t
bus_ring_newest(const struct bus_ring *r);

#endif
