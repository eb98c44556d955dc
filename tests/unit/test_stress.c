/* A bounded multi-threaded stress of the whole cache (run under ASan/UBSan
 * by scripts/test): random operations on a small key space in a cache small
 * enough to evict, with the maintenance thread running; then every invariant
 * is checked and every value must still belong to its key. */
#include "cache_fixture.h"

#include <pthread.h>
#include <stdatomic.h>

#define THREADS 4
#define OPS_PER_THREAD 60000
#define KEYS 20000

static atomic_uint corrupt;

struct worker {
    unsigned seed;
    unsigned id;
};

static unsigned
next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *
work(void *arg)
{
    struct worker *w = arg;
    char value[2048];
    for (unsigned op = 0; op < OPS_PER_THREAD; op++) {
        unsigned r = next_rand(&w->seed);
        char key[32];
        int nkey = snprintf(key, sizeof(key), "key:%u", r % KEYS);
        /* A value names its key, so a reader can detect cross-talk. */
        size_t vlen = (size_t)snprintf(value, sizeof(value), "%s|", key);
        size_t extra = next_rand(&w->seed) % 1500;
        memset(value + vlen, 'a' + (char)(w->id), extra);
        vlen += extra;
        switch (r % 8) {
        case 0: case 1: case 2: {
            struct item *it = cache_get(key, (size_t)nkey);
            if (it) {
                if (memcmp(item_value(it), key, (size_t)nkey) != 0 || item_value(it)[nkey] != '|'
                    || memcmp(item_value(it) + item_nbytes(it) - 2, "\r\n", 2) != 0)
                    atomic_fetch_add(&corrupt, 1);
                cache_release(&it);
            }
            break;
        }
        case 3: case 4:
            fx_store(key, value, vlen, 0, 0, CACHE_SET, 0, NULL);
            break;
        case 5:
            cache_delete(key, (size_t)nkey);
            break;
        case 6:
            fx_store(key, "z", 1, 0, 0, CACHE_APPEND, 0, NULL);
            break;
        case 7: {
            uint64_t v;
            (void)cache_arith(key, (size_t)nkey, true, 1, &v); /* values are not numbers: must refuse */
            break;
        }
        }
    }
    return NULL;
}

Test(stress, threads_hammering_a_small_cache_keep_every_invariant, .timeout = 120)
{
    struct cache_options o = fx_options(4);
    o.lru_maintainer = true;
    fx_start(&o);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .seed = 7919 * (i + 1), .id = i };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(atomic_load(&corrupt), 0, "values read under the wrong key");
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_leq(st.total_malloced, 4u << 20);
    cr_expect_gt(st.ops.evictions, 0, "the cache was meant to be under pressure");
    /* curr_items agrees with what lookups find. */
    unsigned found = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof(key), "key:%u", k);
        found += fx_has(key);
    }
    cache_stats_get(&st);
    cr_expect_eq(st.curr_items, found);
    fx_verify();
    fx_stop();
}
