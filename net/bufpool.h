/* bufpool: a worker's stack of spare buffers of one size, so that idle
 * connections hold none (memcached's per-thread read buffers) and a busy
 * one takes and gives back a buffer for the price of a push and a pop.
 * Owned by one worker thread: no locks. Bounded: a full pool frees what it
 * is given, an empty one mallocs. */
#ifndef FLEETCACHE_NET_BUFPOOL_H
#define FLEETCACHE_NET_BUFPOOL_H

#include <stddef.h>

/* Spare buffers kept at most per pool (the read buffers: 512 KiB). */
#define BUFPOOL_MAX 32

struct bufpool {
    unsigned n;
    void *spare[BUFPOOL_MAX];
};

/* A buffer of size bytes (every call on one pool passes the same size), or
 * NULL when out of memory. */
void *
bufpool_get(struct bufpool *p, size_t size);

/* Gives b (from bufpool_get with the same pool, or malloc of that size)
 * back; NULL is ignored. */
void
bufpool_put(struct bufpool *p, void *b);

/* Frees every spare buffer. */
void
bufpool_drain(struct bufpool *p);

#endif
