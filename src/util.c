/* util: number parsing that never reads past the token and never accepts what
 * strtoull would silently wrap ("-1" as 2^64-1) or stop short on ("12ab"). */
#include "src/util.h"

#include <string.h>

bool
util_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool
util_parse_i64(const char *s, size_t len, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    uint64_t mag;
    if (!util_parse_u64(s + neg, len - neg, &mag))
        return false;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)mag;
    }
    return true;
}

bool
util_parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;
    if (!util_parse_u64(s, len, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool
util_parse_size(const char *s, uint64_t *out)
{
    size_t len = strlen(s);
    unsigned shift = 0;
    if (len > 0) {
        switch (s[len - 1]) {
        case 'k': case 'K': shift = 10; len--; break;
        case 'm': case 'M': shift = 20; len--; break;
        case 'g': case 'G': shift = 30; len--; break;
        default: break;
        }
    }
    uint64_t v;
    if (!util_parse_u64(s, len, &v))
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}
