/* prefix: the per-prefix counters behind `stats detail`. memcached keeps
 * them in a 256-bucket table hashed with its default murmur3 and dumps the
 * buckets in order, newest prefix first within one; the same hash and order
 * here make the dump read as memcached's line for line. One mutex guards the
 * table: recording is off by default, and when an operator turns it on it
 * is a diagnostic, so the lock is accepted on that path only. */
#include "net/prefix.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/reply.h"

#define PREFIX_BUCKETS 256

struct prefix_stat {
    struct prefix_stat *next;
    uint64_t gets, hits, sets, dels;
    size_t len;
    char name[];
};

_Atomic bool prefix_enabled_flag;

static pthread_mutex_t prefix_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prefix_stat *buckets[PREFIX_BUCKETS];
static size_t nprefixes;
static char delimiter = ':';

/* MurmurHash3 x86_32 with seed 0: memcached's default hash, used only to
 * order the dump as memcached orders it. */
static uint32_t
prefix_murmur3(const char *key, size_t len)
{
    const uint8_t *data = (const uint8_t *)key;
    const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t h = 0;
    size_t nblocks = len / 4;
    for (size_t i = 0; i < nblocks; i++) {
        uint32_t k;
        memcpy(&k, data + i * 4, 4);
        k *= c1;
        k = (k << 15) | (k >> 17);
        k *= c2;
        h ^= k;
        h = (h << 13) | (h >> 19);
        h = h * 5 + 0xe6546b64;
    }
    const uint8_t *tail = data + nblocks * 4;
    uint32_t k = 0;
    switch (len & 3) {
    case 3: k ^= (uint32_t)tail[2] << 16; /* fall through */
    case 2: k ^= (uint32_t)tail[1] << 8;  /* fall through */
    case 1:
        k ^= tail[0];
        k *= c1;
        k = (k << 15) | (k >> 17);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

void
prefix_setup(char delim, bool enabled)
{
    delimiter = delim != '\0' ? delim : ':';
    atomic_store(&prefix_enabled_flag, enabled);
}

void
prefix_set_enabled(bool enabled)
{
    atomic_store(&prefix_enabled_flag, enabled);
}

char
prefix_delimiter(void)
{
    return delimiter;
}

/* The entry for key's prefix, created if there is room; prefix_lock held.
 * NULL when the key has no delimiter or the table is full. */
static struct prefix_stat *
prefix_find(const char *key, size_t nkey)
{
    const char *d = memchr(key, delimiter, nkey);
    if (d == NULL)
        return NULL;
    size_t len = (size_t)(d - key);
    uint32_t b = prefix_murmur3(key, len) % PREFIX_BUCKETS;
    for (struct prefix_stat *p = buckets[b]; p != NULL; p = p->next)
        if (p->len == len && memcmp(p->name, key, len) == 0)
            return p;
    if (nprefixes >= PREFIX_MAX)
        return NULL;
    struct prefix_stat *p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->name, key, len);
    p->len = len;
    p->next = buckets[b];
    buckets[b] = p;
    nprefixes++;
    return p;
}

void
prefix_record_get(const char *key, size_t nkey, bool hit)
{
    pthread_mutex_lock(&prefix_lock);
    struct prefix_stat *p = prefix_find(key, nkey);
    if (p != NULL) {
        p->gets++;
        if (hit)
            p->hits++;
    }
    pthread_mutex_unlock(&prefix_lock);
}

void
prefix_record_set(const char *key, size_t nkey)
{
    pthread_mutex_lock(&prefix_lock);
    struct prefix_stat *p = prefix_find(key, nkey);
    if (p != NULL)
        p->sets++;
    pthread_mutex_unlock(&prefix_lock);
}

void
prefix_record_delete(const char *key, size_t nkey)
{
    pthread_mutex_lock(&prefix_lock);
    struct prefix_stat *p = prefix_find(key, nkey);
    if (p != NULL)
        p->dels++;
    pthread_mutex_unlock(&prefix_lock);
}

void
prefix_dump(struct reply_buf *out)
{
    pthread_mutex_lock(&prefix_lock);
    for (unsigned b = 0; b < PREFIX_BUCKETS; b++)
        for (const struct prefix_stat *p = buckets[b]; p != NULL; p = p->next)
            reply_printf(out, "PREFIX %.*s get %llu hit %llu set %llu del %llu\r\n",
                         (int)p->len, p->name, (unsigned long long)p->gets,
                         (unsigned long long)p->hits, (unsigned long long)p->sets,
                         (unsigned long long)p->dels);
    pthread_mutex_unlock(&prefix_lock);
    reply_add(out, "END\r\n", 5);
}

void
prefix_clear(void)
{
    pthread_mutex_lock(&prefix_lock);
    for (unsigned b = 0; b < PREFIX_BUCKETS; b++) {
        while (buckets[b] != NULL) {
            struct prefix_stat *p = buckets[b];
            buckets[b] = p->next;
            free(p);
        }
    }
    nprefixes = 0;
    pthread_mutex_unlock(&prefix_lock);
}

void
prefix_teardown(void)
{
    prefix_clear();
}
