/* lookahead: key scanning and the two prefetch passes of a get batch.
 * Invariant: nothing at or past buf + len is read, and nothing is written
 * but the caller's keys array. */
#include "net/lookahead.h"

#include <string.h>

#include "cache/cache.h"

/* The command word of a line lookahead understands, with its space: the
 * keys follow it (get and gets name several, mg one). */
static size_t
lookahead_command(const char *p, size_t n, bool *multi)
{
    if (n > 4 && memcmp(p, "get ", 4) == 0) {
        *multi = true;
        return 4;
    }
    if (n > 5 && memcmp(p, "gets ", 5) == 0) {
        *multi = true;
        return 5;
    }
    if (n > 3 && memcmp(p, "mg ", 3) == 0) {
        *multi = false;
        return 3;
    }
    return 0;
}

size_t
lookahead_keys(const char *buf, size_t len, struct proto_token *keys, size_t max, size_t *covered)
{
    size_t n = 0, pos = 0;
    *covered = 0;
    while (pos < len && n < max) {
        const char *p = buf + pos;
        /* the first byte rules out most other commands without a scan */
        if (*p != 'g' && *p != 'm')
            break;
        const char *nl = memchr(p, '\n', len - pos);
        if (nl == NULL)
            break;
        const char *end = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        bool multi;
        size_t skip = lookahead_command(p, (size_t)(end - p), &multi);
        if (skip == 0)
            break;
        for (const char *k = p + skip; k < end && n < max;) {
            while (k < end && *k == ' ')
                k++;
            const char *e = k;
            while (e < end && *e != ' ')
                e++;
            if (e > k && (size_t)(e - k) <= CACHE_KEY_MAX)
                keys[n++] = (struct proto_token){.p = k, .len = (size_t)(e - k)};
            if (!multi)
                break;
            k = e;
        }
        pos = (size_t)(nl + 1 - buf);
        *covered = pos;
    }
    return n;
}

size_t
lookahead(const char *buf, size_t len)
{
    struct proto_token keys[LOOKAHEAD_KEYS];
    uint64_t hv[LOOKAHEAD_KEYS];
    size_t covered;
    size_t n = lookahead_keys(buf, len, keys, LOOKAHEAD_KEYS, &covered);
    if (n < 2)
        return covered;
    for (size_t i = 0; i < n; i++) {
        hv[i] = cache_key_hash(keys[i].p, keys[i].len);
        cache_prefetch(hv[i], 0);
    }
    for (size_t i = 0; i < n; i++)
        cache_prefetch(hv[i], 1);
    return covered;
}
