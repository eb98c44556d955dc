/* recent: which keys this node published lately, to decide whether a copy
 * that a peer's differing value just dropped was a racing local write (then
 * we announce a delete so the peer drops its copy too) or merely an old value
 * (then silence: no amplification of ordinary writes). Direct-mapped by key
 * hash; an overwritten slot answers "maybe", which errs toward announcing.
 * Not thread-safe: bus/send.c holds pub_lock around every call. */
#ifndef FLEETCACHE_BUS_RECENT_H
#define FLEETCACHE_BUS_RECENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUS_RECENT_SLOTS 4096

struct bus_recent {
    struct {
        uint64_t key_hash;
        int64_t at_ms;          /* 0: empty */
    } slot[BUS_RECENT_SLOTS];
};

void
bus_recent_init(struct bus_recent *r);

/* This node published key at now_ms (> 0). */
void
bus_recent_note(struct bus_recent *r, const char *key, size_t nkey, int64_t now_ms);

/* True if key may have been published within window_ms before now_ms. */
bool
bus_recent_maybe(const struct bus_recent *r, const char *key, size_t nkey, int64_t now_ms,
                 int64_t window_ms);

#endif
