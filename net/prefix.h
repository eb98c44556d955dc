/* prefix: memcached's per-prefix statistics (`stats detail on|off|dump`,
 * -D). The prefix of a key is what comes before the first delimiter (':'
 * unless -D says otherwise); keys without one are not counted. Off by
 * default: then recording costs one relaxed load. The number of prefixes
 * kept is bounded (PREFIX_MAX): past it, new prefixes are not recorded. */
#ifndef FLEETCACHE_NET_PREFIX_H
#define FLEETCACHE_NET_PREFIX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct reply_buf;

#define PREFIX_MAX 16384

extern _Atomic bool prefix_enabled_flag;

static inline bool
prefix_enabled(void)
{
    return atomic_load_explicit(&prefix_enabled_flag, memory_order_relaxed);
}

/* Sets the delimiter (once, at start-up) and whether recording starts on. */
void
prefix_setup(char delimiter, bool enabled);

void
prefix_set_enabled(bool enabled);

char
prefix_delimiter(void);

void
prefix_record_get(const char *key, size_t nkey, bool hit);
void
prefix_record_set(const char *key, size_t nkey);
void
prefix_record_delete(const char *key, size_t nkey);

/* `stats detail dump`: "PREFIX <p> get <n> hit <n> set <n> del <n>\r\n"
 * lines in memcached's order, then "END\r\n". */
void
prefix_dump(struct reply_buf *out);

/* `stats reset` forgets every prefix. */
void
prefix_clear(void);

/* Frees everything (net teardown). */
void
prefix_teardown(void);

#endif
