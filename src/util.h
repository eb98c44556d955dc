/* util: strict parsing of numbers from byte ranges that are not NUL-terminated
 * (protocol tokens are views into a connection's buffer). */
#ifndef FLEETCACHE_UTIL_H
#define FLEETCACHE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses exactly len decimal digits into *out. False on empty input, any
 * non-digit (signs included) or overflow; *out is untouched then. */
bool
util_parse_u64(const char *s, size_t len, uint64_t *out);

/* As util_parse_u64, but accepts one leading '-' and the int64 range. */
bool
util_parse_i64(const char *s, size_t len, int64_t *out);

/* As util_parse_u64, limited to 32 bits. */
bool
util_parse_u32(const char *s, size_t len, uint32_t *out);

/* Parses a size with an optional k/m/g suffix (binary units), e.g. "64m".
 * False on junk or overflow. */
bool
util_parse_size(const char *s, uint64_t *out);

#endif
