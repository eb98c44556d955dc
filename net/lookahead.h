/* lookahead: a batch of pipelined or multi-key gets waits on one cache miss
 * after another (the bucket, then the item), each lookup only starting once
 * the one before it is done. Before such a batch is parsed, lookahead names
 * its keys, hashes them and prefetches first every bucket, then every
 * bucket's first item, so the misses overlap. It reads the buffer only up to
 * the last complete line, changes nothing, and a key it misreads costs a
 * useless prefetch, never a wrong answer. */
#ifndef FLEETCACHE_NET_LOOKAHEAD_H
#define FLEETCACHE_NET_LOOKAHEAD_H

#include <stddef.h>

#include "net/proto.h"

/* Keys prefetched at most per batch: more would push the first ones out of
 * the L1 cache before their lookups run. */
#define LOOKAHEAD_KEYS 32

/* The keys of the complete get, gets and mg lines at the head of
 * buf[0, len): stops at the first line that is something else (a set's
 * data block cannot be told from lines without parsing it), at an
 * incomplete line, or at max keys. Returns the number of keys found;
 * *covered is how many bytes of buf the lines it read take. */
size_t
lookahead_keys(const char *buf, size_t len, struct proto_token *keys, size_t max, size_t *covered);

/* Prefetches the buckets and items of the keys lookahead_keys finds, when
 * there are two or more (a single lookup gains nothing). Returns the bytes
 * covered: the caller looks ahead again once parsing has passed them. */
size_t
lookahead(const char *buf, size_t len);

#endif
