/* recent: a slot always holds the latest key published into it, so an entry
 * older than the window proves no key of that slot was published within it. */
#include "bus/recent.h"

#include <string.h>
#include <xxhash.h>

void
bus_recent_init(struct bus_recent *r)
{
    memset(r, 0, sizeof(*r));
}

void
bus_recent_note(struct bus_recent *r, const char *key, size_t nkey, int64_t now_ms)
{
    uint64_t h = XXH3_64bits(key, nkey);
    size_t i = (size_t)(h % BUS_RECENT_SLOTS);
    r->slot[i].key_hash = h;
    r->slot[i].at_ms = now_ms;
}

bool
bus_recent_maybe(const struct bus_recent *r, const char *key, size_t nkey, int64_t now_ms,
                 int64_t window_ms)
{
    uint64_t h = XXH3_64bits(key, nkey);
    size_t i = (size_t)(h % BUS_RECENT_SLOTS);
    if (r->slot[i].at_ms == 0 || now_ms - r->slot[i].at_ms > window_ms)
        return false;
    /* A different key within the window may have overwritten ours: maybe. */
    return true;
}
