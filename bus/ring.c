/* ring: fixed slots allocated once at start-up, so serving repairs never
 * allocates; memory is nslots * slot_size (1024 * 1400 by default). */
#include "bus/ring.h"

#include <stdlib.h>
#include <string.h>

struct ring_slot {
    uint64_t seq;       /* 0: empty */
    size_t len;
    int64_t repair_since_us;    /* the repair interval that started then ... */
    uint64_t repaired_to;       /* ... has sent this datagram to these dests */
};

struct bus_ring {
    uint32_t nslots;
    size_t slot_size;
    uint64_t newest;
    uint64_t count;     /* datagrams stored so far, capped at nslots */
    struct ring_slot *slots;
    uint8_t *bytes;
};

struct bus_ring *
bus_ring_create(uint32_t nslots, size_t slot_size)
{
    if (nslots == 0 || slot_size == 0)
        return NULL;
    struct bus_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->nslots = nslots;
    r->slot_size = slot_size;
    r->slots = calloc(nslots, sizeof(*r->slots));
    r->bytes = malloc((size_t)nslots * slot_size);
    if (!r->slots || !r->bytes) {
        bus_ring_destroy(r);
        return NULL;
    }
    return r;
}

void
bus_ring_destroy(struct bus_ring *r)
{
    if (!r)
        return;
    free(r->slots);
    free(r->bytes);
    free(r);
}

bool
bus_ring_put(struct bus_ring *r, uint64_t seq, const uint8_t *data, size_t len)
{
    if (len > r->slot_size || seq == 0 || (r->newest != 0 && seq != r->newest + 1))
        return false;
    size_t i = (size_t)(seq % r->nslots);
    r->slots[i].seq = seq;
    r->slots[i].len = len;
    r->slots[i].repaired_to = 0;
    memcpy(r->bytes + i * r->slot_size, data, len);
    r->newest = seq;
    if (r->count < r->nslots)
        r->count++;
    return true;
}

bool
bus_ring_get(const struct bus_ring *r, uint64_t seq, const uint8_t **data, size_t *len)
{
    if (seq == 0)
        return false;
    size_t i = (size_t)(seq % r->nslots);
    if (r->slots[i].seq != seq)
        return false;
    *data = r->bytes + i * r->slot_size;
    *len = r->slots[i].len;
    return true;
}

bool
bus_ring_may_repair(struct bus_ring *r, uint64_t seq, unsigned dest, int64_t now_us,
                    int64_t interval_us)
{
    if (seq == 0 || dest >= 64)
        return false;
    struct ring_slot *s = &r->slots[seq % r->nslots];
    if (s->seq != seq)
        return false;
    if (s->repaired_to == 0 || now_us - s->repair_since_us >= interval_us) {
        s->repaired_to = 0;
        s->repair_since_us = now_us;
    }
    uint64_t bit = (uint64_t)1 << dest;
    if (s->repaired_to & bit)
        return false;
    s->repaired_to |= bit;
    return true;
}

uint64_t
bus_ring_oldest(const struct bus_ring *r)
{
    return r->count ? r->newest - r->count + 1 : 0;
}

uint64_t
bus_ring_newest(const struct bus_ring *r)
{
    return r->newest;
}

uint32_t
bus_ring_capacity(const struct bus_ring *r)
{
    return r->nslots;
}
