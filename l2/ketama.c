/* ketama: the continuum. The points-per-server arithmetic is done in the
 * same float and double steps as twemproxy's ketama_update, because its
 * rounding decides how many points a weighted server gets. */
#include "l2/ketama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l2/md5.h"

#define KETAMA_POINTS_PER_SERVER 160
#define KETAMA_POINTS_PER_HASH 4
#define KETAMA_NAME_MAX 86      /* twemproxy's KETAMA_MAX_HOSTLEN */

static uint32_t
ketama_word(const uint8_t *d, unsigned i)
{
    return (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
           (uint32_t)d[4 * i + 3] << 24;
}

uint32_t
ketama_hash(const char *key, size_t nkey)
{
    uint8_t d[16];
    md5_digest(key, nkey, d);
    return ketama_word(d, 0);
}

/* Ties (two servers' points on one value) keep server order, as glibc's
 * merge-sort qsort does for twemproxy. */
static int
ketama_cmp(const void *a, const void *b)
{
    const struct ketama_point *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static uint32_t
ketama_points_for(uint32_t weight, uint32_t total_weight, unsigned nlive)
{
    float pct = (float)weight / (float)total_weight;
    /* float product, then a double sum with twemproxy's epsilon, then floorf. */
    return (uint32_t)(floorf((float)(pct * KETAMA_POINTS_PER_SERVER / 4 * (float)nlive +
                                     0.0000000001)) * 4);
}

bool
ketama_build(struct ketama_ring *ring, const struct ketama_server *servers, unsigned n)
{
    memset(ring, 0, sizeof(*ring));
    if (n == 0)
        return false;
    uint32_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (servers[i].weight == 0 || total + servers[i].weight < total)
            return false;
        total += servers[i].weight;
    }
    size_t cap = 0;
    for (unsigned i = 0; i < n; i++)
        cap += ketama_points_for(servers[i].weight, total, n);
    if (cap == 0)
        return false;
    struct ketama_point *pts = calloc(cap, sizeof(*pts));
    if (pts == NULL)
        return false;
    uint32_t np = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t per = ketama_points_for(servers[i].weight, total, n);
        for (uint32_t p = 0; p < per / KETAMA_POINTS_PER_HASH; p++) {
            char host[KETAMA_NAME_MAX];
            int len = snprintf(host, sizeof(host), "%.*s-%u", (int)servers[i].nname,
                               servers[i].name, p);
            /* snprintf's truncation, as twemproxy hashes it */
            size_t hlen = len < 0 ? 0 : (size_t)len;
            if (hlen >= sizeof(host))
                hlen = sizeof(host) - 1;
            uint8_t d[16];
            md5_digest(host, hlen, d);
            for (unsigned x = 0; x < KETAMA_POINTS_PER_HASH; x++)
                pts[np++] = (struct ketama_point){ketama_word(d, x), i};
        }
    }
    qsort(pts, np, sizeof(*pts), ketama_cmp);
    ring->points = pts;
    ring->npoints = np;
    return true;
}

void
ketama_free(struct ketama_ring *ring)
{
    free(ring->points);
    memset(ring, 0, sizeof(*ring));
}

uint32_t
ketama_lookup(const struct ketama_ring *ring, uint32_t hash)
{
    uint32_t lo = 0, hi = ring->npoints;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ring->points[mid].value < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == ring->npoints)
        lo = 0;
    return ring->points[lo].index;
}

uint32_t
ketama_server_for(const struct ketama_ring *ring, unsigned nservers, const char *key,
                  size_t nkey)
{
    /* twemproxy's server_pool_hash: one server, or an empty key, hash to 0. */
    if (nservers <= 1)
        return 0;
    uint32_t hash = nkey == 0 ? 0 : ketama_hash(key, nkey);
    return ketama_lookup(ring, hash);
}
