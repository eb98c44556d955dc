/* inflight: the node's table of L2 fetches in flight, shared by every
 * worker, so that concurrent misses of one key make one L2 request
 * (request coalescing): the first miss owns the fetch and sends it on its
 * worker's own L2 connection; later misses of the key, on any worker, join
 * it as waiters and are handed the value when it arrives. Striped locks;
 * only misses take them, never an L1 hit.
 *
 * Invariant: a fetch leaves the table only after its value was offered to
 * L1 (l2cmd.c), and a miss that finds no fetch looks at L1 once more under
 * the stripe lock before starting one, so a miss racing with the end of a
 * fetch finds either the fetch or its copy, not neither (at most one L2 get
 * per key per node while the copy lives). */
#ifndef FLEETCACHE_NET_INFLIGHT_H
#define FLEETCACHE_NET_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

struct worker;
struct l2op;

/* One client slot waiting for a fetch. Once the value is in, the waiter
 * itself carries it (it) to op's worker: delivering never allocates. */
struct waiter {
    struct waiter *next;
    struct worker *w;           /* whose thread op lives on */
    struct l2op *op;
    size_t slot;
    struct item *it;            /* the delivered value (a reference), or NULL */
    uint8_t marks;              /* INFLIGHT_WIN ...: the lease marks this waiter gets */
    bool meta;                  /* an mg: it may be handed L2's win */
};

/* A fetch's reply may carry memcached's lease marks. One request went to L2
 * for all the waiters, so they are shared out as memcached would have
 * answered each of them: the win to one (the first mg to join), "won
 * already" to the others, stale to all. */
enum {
    INFLIGHT_WIN = 1,           /* W */
    INFLIGHT_WON = 2,           /* Z */
    INFLIGHT_STALE = 4,         /* X */
};

struct fetch {
    struct fetch *next;         /* table chain */
    struct fetch *batch_next;   /* the owning get's fetches still to send */
    uint64_t hv;
    bool in_table;              /* false: a private fetch (gat), not joinable */
    struct worker *owner;
    unsigned server;
    uint64_t ticket;            /* cache_ticket before the request left */
    struct item *it;            /* the value being read (sink), one reference */
    struct waiter *waiters;     /* first = the owner's own slot */
    struct waiter **last;
    unsigned nwaiters;
    int32_t exptime;            /* gat: the TTL to set */
    bool lease;                 /* an mg N fetch: "mg <key> v f c t N<ttl>" */
    int32_t lease_ttl;
    uint8_t nkey;
    char key[CACHE_KEY_MAX];
};

enum inflight_result {
    INFLIGHT_JOINED,    /* another fetch of key was in flight: w/op/slot waits on it */
    INFLIGHT_OWNER,     /* *fetch is new: the caller sends it */
    INFLIGHT_HIT,       /* L1 got the key meanwhile: *hit holds a reference */
    INFLIGHT_NOMEM,
};

void
inflight_setup(void);
void
inflight_teardown(void);

/* Joins or starts the fetch of key (a lease fetch when lease: leases and
 * plain reads never share one). meta: the waiter is an mg. */
enum inflight_result
inflight_join(const char *key, size_t nkey, bool lease, bool meta, struct worker *w,
              struct l2op *op, size_t slot, struct fetch **fetch, struct item **hit);

/* Takes f out of the table (if it is in it) and returns its waiters, in the
 * order they joined; no one can join f after this. */
struct waiter *
inflight_remove(struct fetch *f);

/* A private fetch with one waiter (not in the table). NULL on OOM. */
struct fetch *
inflight_private(const char *key, size_t nkey, struct worker *w, struct l2op *op, size_t slot);

#endif
