/* md5: RFC 1321's message digest, only for placing keys on the L2 ring the
 * way twemproxy and libmemcached do (ketama.c). Not for security. */
#ifndef FLEETCACHE_L2_MD5_H
#define FLEETCACHE_L2_MD5_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 16-byte digest of data[0, len) into out. */
void
md5_digest(const void *data, size_t len, uint8_t out[16]);

#endif
