/* upstream: the cache as a near copy (L1) of a shared store (L2) that owns
 * the truth. Two things make the copy safe to keep:
 *
 * Upstream CAS. Every item carries the CAS the shared store gave its value,
 * 8 bytes ahead of the value (cache.value_off), and item_cas() reports it, so
 * `gets` on any node answers the store's CAS and `cas` works fleet-wide. The
 * item's own CAS in its header stays local and ordered, and flush_all keeps
 * working on it unchanged.
 *
 * Tickets. A value fetched from the store may be overtaken while it travels:
 * a write on this node, or a peer's invalidation, can reach the cache after
 * the fetch left and before its copy arrives. Every key maps to one of
 * UPSTREAM_SLOTS change counters (plus a flush generation); anything that
 * changes or drops a key here bumps its counter under the key's stripe lock,
 * an absent key included. A fetch takes the ticket (the counter) before it
 * is sent, and its copy is kept only if the ticket still holds when it
 * arrives, checked under the same lock: a copy older than a change this node
 * has seen is never stored after it. Keys sharing a slot can void each
 * other's copies, which only costs a refetch. */
#include "cache/cache_internal.h"

#include <string.h>

/* 16384 slots x 4 bytes: a spurious conflict needs two keys of the same
 * slot to change within one fetch's round trip. */
#define UPSTREAM_SLOTS 16384

static _Atomic uint32_t upstream_slots[UPSTREAM_SLOTS];
static _Atomic uint32_t upstream_flushes;

/* Slots use the hash's high bits; stripes use its low ones. */
static inline _Atomic uint32_t *
upstream_slot(uint64_t hv)
{
    return &upstream_slots[(hv >> 40) & (UPSTREAM_SLOTS - 1)];
}

void
upstream_bump(uint64_t hv)
{
    if (cache.value_off == 0)
        return;
    atomic_fetch_add_explicit(upstream_slot(hv), 1, memory_order_release);
}

void
upstream_bump_all(void)
{
    if (cache.value_off == 0)
        return;
    atomic_fetch_add_explicit(&upstream_flushes, 1, memory_order_release);
}

static uint64_t
upstream_ticket_of(uint64_t hv)
{
    uint64_t flushes = atomic_load_explicit(&upstream_flushes, memory_order_acquire);
    return flushes << 32 | atomic_load_explicit(upstream_slot(hv), memory_order_acquire);
}

uint64_t
cache_ticket(const char *key, size_t nkey)
{
    return upstream_ticket_of(item_hash_key(key, nkey));
}

void
item_set_upstream_cas(struct item *it, uint64_t cas)
{
    if (cache.value_off != 0)
        memcpy(it->data + it->nkey, &cas, sizeof(cas));
}

enum cache_result
cache_store_upstream(struct item *it, uint64_t ticket, bool is_write)
{
    uint64_t hv = item_hash_key(it->data, it->nkey);
    enum cache_result r = CACHE_OK;
    ht_lock(hv);
    struct item *old = find_live(it->data, it->nkey, hv);
    if (upstream_ticket_of(hv) != ticket) {
        /* Overtaken. A fill just goes; a write cannot know whether its
         * value or the other change is the newer, so nobody keeps one. */
        if (is_write && old != NULL)
            item_unlink(old, hv);
        r = CACHE_EXISTS;
    } else {
        if (old != NULL)
            item_unlink(old, hv);
        item_link(it, hv);
    }
    if (is_write) {
        upstream_bump(hv);
        STAT_INC(item_clsid(it), cmd_set);
    }
    ht_unlock(hv);
    return r;
}

bool
item_hold(struct item *it)
{
    uint16_t n = atomic_load_explicit(&it->refcount, memory_order_relaxed);
    do {
        if (n >= REFCOUNT_CEILING)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&it->refcount, &n, (uint16_t)(n + 1),
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}
