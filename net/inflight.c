/* inflight: INFLIGHT_STRIPES locks over INFLIGHT_BUCKETS chains. A fetch is
 * small and lives one L2 round trip, so the table holds about as many as
 * there are distinct keys being missed at once. */
#include "net/inflight.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "net/net_internal.h"

#define INFLIGHT_STRIPES 256
#define INFLIGHT_BUCKETS 16384

struct inflight_stripe {
    pthread_mutex_t lock;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
};

static struct inflight_stripe stripes[INFLIGHT_STRIPES];
static struct fetch *buckets[INFLIGHT_BUCKETS];

static pthread_mutex_t *
inflight_lock_of(uint64_t hv)
{
    return &stripes[hv & (INFLIGHT_STRIPES - 1)].lock;
}

/* Buckets use more bits than stripes: each stripe owns the buckets whose
 * index agrees with it in the low bits. */
static struct fetch **
inflight_bucket(uint64_t hv)
{
    return &buckets[hv & (INFLIGHT_BUCKETS - 1)];
}

void
inflight_setup(void)
{
    for (unsigned i = 0; i < INFLIGHT_STRIPES; i++)
        pthread_mutex_init(&stripes[i].lock, NULL);
    memset(buckets, 0, sizeof(buckets));
}

void
inflight_teardown(void)
{
    for (unsigned i = 0; i < INFLIGHT_STRIPES; i++)
        pthread_mutex_destroy(&stripes[i].lock);
}

static struct fetch *
inflight_new(const char *key, size_t nkey, uint64_t hv, bool meta, struct worker *w,
             struct l2op *op, size_t slot)
{
    struct fetch *f = calloc(1, sizeof(*f));
    struct waiter *first = malloc(sizeof(*first));
    if (f == NULL || first == NULL) {
        free(f);
        free(first);
        return NULL;
    }
    *first = (struct waiter){NULL, w, op, slot, NULL, 0, meta};
    f->hv = hv;
    f->owner = w;
    f->waiters = first;
    f->last = &first->next;
    f->nwaiters = 1;
    f->nkey = (uint8_t)nkey;
    memcpy(f->key, key, nkey);
    f->ticket = cache_ticket(key, nkey);
    return f;
}

enum inflight_result
inflight_join(const char *key, size_t nkey, bool lease, bool meta, struct worker *w,
              struct l2op *op, size_t slot, struct fetch **fetch, struct item **hit)
{
    uint64_t hv = XXH3_64bits(key, nkey);
    pthread_mutex_t *lock = inflight_lock_of(hv);
    pthread_mutex_lock(lock);
    for (struct fetch *f = *inflight_bucket(hv); f != NULL; f = f->next) {
        if (f->hv == hv && f->lease == lease && f->nkey == nkey &&
            memcmp(f->key, key, nkey) == 0) {
            struct waiter *wt = malloc(sizeof(*wt));
            if (wt == NULL) {
                pthread_mutex_unlock(lock);
                return INFLIGHT_NOMEM;
            }
            *wt = (struct waiter){NULL, w, op, slot, NULL, 0, meta};
            *f->last = wt;
            f->last = &wt->next;
            f->nwaiters++;
            pthread_mutex_unlock(lock);
            return INFLIGHT_JOINED;
        }
    }
    /* No fetch: one may just have ended, leaving its copy in L1. */
    struct item *it = cache_peek(key, nkey, NULL);
    if (it != NULL) {
        pthread_mutex_unlock(lock);
        *hit = it;
        return INFLIGHT_HIT;
    }
    struct fetch *f = inflight_new(key, nkey, hv, meta, w, op, slot);
    if (f == NULL) {
        pthread_mutex_unlock(lock);
        return INFLIGHT_NOMEM;
    }
    f->lease = lease;
    struct fetch **b = inflight_bucket(hv);
    f->next = *b;
    *b = f;
    f->in_table = true;
    pthread_mutex_unlock(lock);
    *fetch = f;
    return INFLIGHT_OWNER;
}

struct fetch *
inflight_private(const char *key, size_t nkey, struct worker *w, struct l2op *op, size_t slot)
{
    return inflight_new(key, nkey, XXH3_64bits(key, nkey), false, w, op, slot);
}

struct waiter *
inflight_remove(struct fetch *f)
{
    if (!f->in_table)
        return f->waiters;
    pthread_mutex_t *lock = inflight_lock_of(f->hv);
    pthread_mutex_lock(lock);
    for (struct fetch **pp = inflight_bucket(f->hv); *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->in_table = false;
    f->next = NULL;
    struct waiter *list = f->waiters;
    f->waiters = NULL;
    f->last = &f->waiters;
    pthread_mutex_unlock(lock);
    return list;
}
