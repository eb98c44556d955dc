/* floor: open addressing on the node id (Fibonacci hashing: operators number
 * nodes 1, 2, 3 ...), grown by doubling up to BUS_FLOORS_MAX ids, load at
 * most one half. When full, the id noted least recently goes (a scan: only
 * when a new id arrives at a full table) by backward-shift deletion, so no
 * tombstones. */
#include "bus/floor.h"

#include <stdlib.h>
#include <string.h>

#define FLOORS_MIN_CAP 64

static size_t
home(const struct bus_floors *f, uint32_t node_id)
{
    return (size_t)(((uint64_t)node_id * 0x9E3779B97F4A7C15ull) >> 32) & (f->cap - 1);
}

bool
bus_floors_init(struct bus_floors *f)
{
    memset(f, 0, sizeof(*f));
    f->slot = calloc(FLOORS_MIN_CAP, sizeof(*f->slot));
    if (!f->slot)
        return false;
    f->cap = FLOORS_MIN_CAP;
    return true;
}

void
bus_floors_deinit(struct bus_floors *f)
{
    free(f->slot);
    memset(f, 0, sizeof(*f));
}

static struct bus_floor *
lookup(const struct bus_floors *f, uint32_t node_id)
{
    if (!f->slot || node_id == 0)
        return NULL;
    for (size_t i = home(f, node_id);; i = (i + 1) & (f->cap - 1)) {
        if (f->slot[i].node_id == node_id)
            return &f->slot[i];
        if (f->slot[i].node_id == 0)
            return NULL;
    }
}

/* Linear probing keeps an empty slot ahead of every chain (load <= 1/2). */
static struct bus_floor *
insert_slot(struct bus_floors *f, uint32_t node_id)
{
    size_t i = home(f, node_id);
    while (f->slot[i].node_id != 0)
        i = (i + 1) & (f->cap - 1);
    memset(&f->slot[i], 0, sizeof(f->slot[i]));
    f->slot[i].node_id = node_id;
    f->n++;
    return &f->slot[i];
}

static bool
grow(struct bus_floors *f)
{
    struct bus_floors g = {.cap = f->cap * 2, .clock = f->clock};
    g.slot = calloc(g.cap, sizeof(*g.slot));
    if (!g.slot)
        return false;
    for (size_t i = 0; i < f->cap; i++)
        if (f->slot[i].node_id != 0)
            *insert_slot(&g, f->slot[i].node_id) = f->slot[i];
    free(f->slot);
    *f = g;
    return true;
}

/* Backward-shift deletion: later entries of the chain move into the hole. */
static void
remove_at(struct bus_floors *f, size_t hole)
{
    size_t mask = f->cap - 1;
    for (size_t j = (hole + 1) & mask; f->slot[j].node_id != 0; j = (j + 1) & mask) {
        size_t h = home(f, f->slot[j].node_id);
        /* j's entry may fill the hole if its home is not in (hole, j]. */
        bool between = hole < j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!between) {
            f->slot[hole] = f->slot[j];
            hole = j;
        }
    }
    memset(&f->slot[hole], 0, sizeof(f->slot[hole]));
    f->n--;
}

static void
evict_oldest(struct bus_floors *f)
{
    size_t oldest = f->cap;
    for (size_t i = 0; i < f->cap; i++)
        if (f->slot[i].node_id != 0 && (oldest == f->cap || f->slot[i].noted < f->slot[oldest].noted))
            oldest = i;
    if (oldest < f->cap)
        remove_at(f, oldest);
}

bool
bus_floors_note(struct bus_floors *f, uint32_t node_id, const struct bus_life *life,
                bool followed)
{
    if (!f->slot || node_id == 0)
        return true;
    bool dropped = false;
    struct bus_floor *e = lookup(f, node_id);
    if (!e) {
        if (f->n + 1 > f->cap / 2 && (f->n >= BUS_FLOORS_MAX || !grow(f))) {
            evict_oldest(f);
            dropped = true;
        }
        e = insert_slot(f, node_id);
    }
    e->noted = ++f->clock;
    struct bus_life merged = *life;
    for (uint32_t i = 0; i < e->nlives; i++) {
        if (e->life[i].epoch != life->epoch)
            continue;
        const struct bus_life *old = &e->life[i];
        merged.data_high = old->data_high > life->data_high ? old->data_high : life->data_high;
        merged.ctl_high = old->ctl_high > life->ctl_high ? old->ctl_high : life->ctl_high;
        merged.clean = old->clean && life->clean;
        followed = followed || e->followed[i];
        /* Take it out; it goes back in below, at its new place. */
        memmove(&e->life[i], &e->life[i + 1], (e->nlives - i - 1) * sizeof(e->life[0]));
        memmove(&e->followed[i], &e->followed[i + 1], (e->nlives - i - 1) * sizeof(e->followed[0]));
        e->nlives--;
        break;
    }
    /* Followed lives go first, refused ones after the last followed one;
     * when full, the last life goes. */
    uint32_t at = 0;
    if (!followed)
        while (at < e->nlives && e->followed[at])
            at++;
    if (at == BUS_FLOOR_LIVES)
        return dropped; /* full of followed lives: a refused one is not kept */
    if (e->nlives == BUS_FLOOR_LIVES)
        e->nlives--;
    memmove(&e->life[at + 1], &e->life[at], (e->nlives - at) * sizeof(e->life[0]));
    memmove(&e->followed[at + 1], &e->followed[at], (e->nlives - at) * sizeof(e->followed[0]));
    e->life[at] = merged;
    e->followed[at] = followed;
    e->nlives++;
    return dropped;
}

const struct bus_life *
bus_floors_find(const struct bus_floors *f, uint32_t node_id, uint64_t epoch)
{
    const struct bus_floor *e = lookup(f, node_id);
    for (uint32_t i = 0; e && i < e->nlives; i++)
        if (e->life[i].epoch == epoch)
            return &e->life[i];
    return NULL;
}

const struct bus_life *
bus_floors_latest(const struct bus_floors *f, uint32_t node_id)
{
    const struct bus_floor *e = lookup(f, node_id);
    return e && e->nlives && e->followed[0] ? &e->life[0] : NULL;
}
