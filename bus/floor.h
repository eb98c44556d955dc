/* floor: the lives of senders that this node no longer follows, kept after
 * their peer entry is gone (forgotten, evicted) or they restarted. A life is
 * one boot epoch of one node id, with the highest DATA and control seqs we
 * saw of it. A datagram of such a life at or below those seqs is a replay
 * (or a straggler) and is dropped; above them, the life still speaks. Kept
 * for the process's lifetime, which is the key's: replay protection does not
 * end when a peer entry does. Bounded: past BUS_FLOORS_MAX ids, the id noted
 * least recently loses its lives (the caller counts it). Pure logic, no
 * locking: receive.c holds peers_lock around every call. */
#ifndef FLEETCACHE_BUS_FLOOR_H
#define FLEETCACHE_BUS_FLOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/peer.h"

#define BUS_FLOOR_LIVES 3       /* per id, the most recently ended */
#define BUS_FLOORS_MAX 32768    /* ids: about 3 MiB at most */

struct bus_floor {
    uint32_t node_id;           /* 0: an empty slot */
    uint32_t nlives;
    uint64_t noted;             /* the table's clock when last noted */
    struct bus_life life[BUS_FLOOR_LIVES]; /* followed lives first, most recent first */
    bool followed[BUS_FLOOR_LIVES];       /* ... then refused ones */
};

struct bus_floors {
    struct bus_floor *slot;     /* open addressing, linear probing */
    size_t cap;                 /* a power of two, at most 2 * BUS_FLOORS_MAX */
    size_t n;                   /* ids held, at most cap / 2 */
    uint64_t clock;
};

/* An empty table of a few slots; false on no memory. */
bool
bus_floors_init(struct bus_floors *f);

void
bus_floors_deinit(struct bus_floors *f);

/* Remembers a life of node_id: merged into the same epoch's entry (the
 * higher seqs win, clean only if both say so), else added, dropping the
 * id's last life beyond BUS_FLOOR_LIVES. followed: a life we followed (it
 * ended, or its peer entry went): it becomes the id's latest. Otherwise a
 * life we refused to follow: kept last, so it never counts as the latest.
 * Returns true when another id had to be dropped to make room (or, with no
 * memory to grow, this life could not be kept). */
bool
bus_floors_note(struct bus_floors *f, uint32_t node_id, const struct bus_life *life,
                bool followed);

/* node_id's life of epoch, or NULL if not remembered. Valid until the next
 * note. */
const struct bus_life *
bus_floors_find(const struct bus_floors *f, uint32_t node_id, uint64_t epoch);

/* node_id's latest followed life, or NULL. Valid until the next note. */
const struct bus_life *
bus_floors_latest(const struct bus_floors *f, uint32_t node_id);

#endif
