/* cache_fixture: starts a cache with small, explicit options for one test and
 * offers string-level helpers so that tests read as what they check. */
#ifndef FLEETCACHE_CACHE_FIXTURE_H
#define FLEETCACHE_CACHE_FIXTURE_H

#include "cache/cache.h"
#include "src/clock.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline struct cache_options
fx_options(uint64_t mem_mb)
{
    struct cache_options o;
    cache_options_default(&o);
    o.mem_limit = mem_mb << 20;
    o.hashpower = 10;
    o.manual = true; /* tests run maintenance by hand */
    return o;
}

static inline void
fx_start(const struct cache_options *o)
{
    char err[160] = "";
    clock_setup();
    cr_assert(cache_setup(o, err, sizeof(err)), "cache_setup: %s", err);
}

static inline void
fx_start_default(void)
{
    struct cache_options o = fx_options(64);
    fx_start(&o);
}

static inline void
fx_stop(void)
{
    cache_teardown();
}

/* Stores key=value with op; returns the cache's result. */
static inline enum cache_result
fx_store(const char *key, const char *value, size_t vlen, uint32_t flags,
         int64_t exptime, enum cache_store_op op, uint64_t cas_in, uint64_t *cas_out)
{
    struct item *it = NULL;
    enum cache_result r = cache_alloc(&it, key, strlen(key), flags, exptime, (uint32_t)vlen);
    if (r != CACHE_OK)
        return r;
    memcpy(item_value(it), value, vlen);
    memcpy(item_value(it) + vlen, "\r\n", 2);
    r = cache_store(it, op, cas_in, cas_out);
    cache_release(&it);
    cr_assert_null(it, "cache_release must clear the pointer");
    return r;
}

static inline enum cache_result
fx_set(const char *key, const char *value)
{
    return fx_store(key, value, strlen(value), 0, 0, CACHE_SET, 0, NULL);
}

static inline enum cache_result
fx_set_ttl(const char *key, const char *value, int64_t exptime)
{
    return fx_store(key, value, strlen(value), 0, exptime, CACHE_SET, 0, NULL);
}

/* The value stored under key as a NUL-terminated copy (caller frees), or NULL. */
static inline char *
fx_get(const char *key)
{
    struct item *it = cache_get(key, strlen(key));
    if (it == NULL)
        return NULL;
    uint32_t n = item_nbytes(it);
    cr_assert_geq(n, 2);
    cr_assert_eq(memcmp(item_value(it) + n - 2, "\r\n", 2), 0, "value must end in CRLF");
    char *copy = malloc(n - 1);
    memcpy(copy, item_value(it), n - 2);
    copy[n - 2] = '\0';
    cache_release(&it);
    return copy;
}

static inline bool
fx_has(const char *key)
{
    char *v = fx_get(key);
    free(v);
    return v != NULL;
}

static inline void
fx_expect(const char *key, const char *want)
{
    char *v = fx_get(key);
    if (want == NULL) {
        cr_expect_null(v, "%s should be absent, holds '%s'", key, v ? v : "");
    } else {
        cr_expect_not_null(v, "%s should hold '%s', is absent", key, want);
        if (v)
            cr_expect_str_eq(v, want, "%s", key);
    }
    free(v);
}

static inline void
fx_verify(void)
{
    char err[256] = "";
    cr_assert(cache_verify(err, sizeof(err)), "cache_verify: %s", err);
}

static inline void
fx_advance(uint32_t seconds)
{
    clock_set(clock_now() + seconds);
}

#endif
