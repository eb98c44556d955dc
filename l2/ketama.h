/* ketama: consistent hashing of keys onto L2 servers, point for point the
 * continuum of twemproxy (nutcracker) with `hash: md5` and `distribution:
 * ketama`, so the application, a twemproxy in front of the pool and every
 * node place a key on the same server.
 *
 * Each server gets 160 points per share of the total weight (in groups of
 * four: the four little-endian words of md5("<name>-<i>")); a key's hash is
 * the first little-endian word of md5(key) and it belongs to the first point
 * at or after it, wrapping around. A server's name is "host:port", or just
 * "host" when the port is 11211 (twemproxy keeps libmemcached's rule). */
#ifndef FLEETCACHE_L2_KETAMA_H
#define FLEETCACHE_L2_KETAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ketama_server {
    const char *name;           /* hashed to place the server's points */
    size_t nname;
    uint32_t weight;            /* > 0 */
};

struct ketama_point {
    uint32_t value;
    uint32_t index;             /* into the server array */
};

struct ketama_ring {
    struct ketama_point *points;   /* sorted by value */
    uint32_t npoints;
};

/* Builds the continuum of n servers (n >= 1). False on OOM or a weight of 0.
 * Free with ketama_free. */
bool
ketama_build(struct ketama_ring *ring, const struct ketama_server *servers, unsigned n);

void
ketama_free(struct ketama_ring *ring);

/* twemproxy's hash_md5: the first four bytes of md5(key), little-endian. */
uint32_t
ketama_hash(const char *key, size_t nkey);

/* The server index owning hash. */
uint32_t
ketama_lookup(const struct ketama_ring *ring, uint32_t hash);

/* The server for key: like twemproxy, a pool of one server takes every key
 * without hashing. */
uint32_t
ketama_server_for(const struct ketama_ring *ring, unsigned nservers, const char *key,
                  size_t nkey);

#endif
