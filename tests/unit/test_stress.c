/* A bounded multi-threaded stress of the whole cache (run under ASan/UBSan
 * by scripts/test): random operations on a small key space in a cache small
 * enough to evict, with the maintenance thread running and pages moving
 * between classes all along (stores taking pages at once, automove, and a
 * thread asking for `slabs reassign`); then every invariant is checked and
 * every value must still belong to its key. */
#include "cache_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define THREADS 4
#define OPS_PER_THREAD 60000
#define KEYS 20000
#define LARGE_MAX (40 * 1024)   /* above slab_chunk_max below: large items too */

static atomic_uint corrupt;
static atomic_bool workers_done;
static atomic_uint arith_wrong;     /* incr answered anything but "not a number" or a miss */
/* How often the checked operations met a stored item: each check is only as
 * good as the number of items it looked at. (Pages move at almost every
 * store in a cache this small, so hits are few: tens, not thousands.) */
static atomic_uint arith_refused, get_hits;

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
    static _Thread_local char value[LARGE_MAX + 64];
    for (unsigned op = 0; op < OPS_PER_THREAD; op++) {
        unsigned r = next_rand(&w->seed);
        char key[32];
        /* A draw of its own: KEYS is a multiple of 8, so r % KEYS would tie
         * each key to one operation (gets only ever on keys never set). */
        int nkey = snprintf(key, sizeof(key), "key:%u", next_rand(&w->seed) % KEYS);
        /* A value names its key, so a reader can detect cross-talk. */
        size_t vlen = (size_t)snprintf(value, sizeof(value), "%s|", key);
        unsigned pick = next_rand(&w->seed);
        size_t extra = pick % 64 == 0 ? pick % LARGE_MAX : pick % 1500;
        memset(value + vlen, 'a' + (char)(w->id), extra);
        vlen += extra;
        switch (r % 8) {
        case 0: case 1: case 2: {
            struct item *it = cache_get(key, (size_t)nkey);
            if (it) {
                atomic_fetch_add(&get_hits, 1);
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
            /* Every value starts "key:N|": never a number, so incr must refuse
             * it (or miss), never count it up or fail for memory. */
            uint64_t v;
            enum cache_result ar = cache_arith(key, (size_t)nkey, true, 1, &v);
            if (ar == CACHE_NOT_NUMBER)
                atomic_fetch_add(&arith_refused, 1);
            else if (ar != CACHE_MISS)
                atomic_fetch_add(&arith_wrong, 1);
            break;
        }
        }
    }
    return NULL;
}

/* An operator moving pages by hand while the workers run. */
static void *
reassign(void *arg)
{
    unsigned seed = 104729, classes = cache_class_count() - 1;
    for (unsigned n = 0; n < 100000 && !atomic_load(&workers_done); n++) {
        unsigned r = next_rand(&seed);
        int src = r % 4 == 0 ? -1 : (int)(r % classes) + 1;
        int dst = (int)((r >> 8) % (classes + 1)); /* 0: the pool */
        (void)cache_slabs_reassign(src, dst);
        if (r % 97 == 0)
            cache_slab_automove_set((r >> 4) % 3);
        usleep(1000);
    }
    return NULL;
}

Test(stress, threads_hammering_a_small_cache_keep_every_invariant, .timeout = 240)
{
    struct cache_options o = fx_options(4);
    o.manual = false; /* the maintenance thread runs against the workers */
    o.slab_chunk_max = 16 * 1024;
    o.slab_automove = 2;
    fx_start(&o);
    pthread_t t[THREADS], mover;
    struct worker w[THREADS];
    atomic_store(&workers_done, false);
    pthread_create(&mover, NULL, reassign, NULL);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .seed = 7919 * (i + 1), .id = i };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&workers_done, true);
    pthread_join(mover, NULL);
    cr_expect_eq(atomic_load(&corrupt), 0, "values read under the wrong key");
    cr_expect_eq(atomic_load(&arith_wrong), 0, "incr took a value that is no number");
    cr_expect_gt(atomic_load(&arith_refused), 0, "incr never met a stored value");
    cr_expect_gt(atomic_load(&get_hits), 0, "no get ever found a value to check");
    struct cache_stats st;
    cache_stats_get(&st);
    cr_expect_leq(st.total_malloced, 4u << 20);
    cr_expect_gt(st.ops.evictions + st.mover.slab_reassign_evictions_nomem, 0,
                 "the cache was meant to be under pressure");
    cr_expect_gt(st.mover.slabs_moved, 0, "pages were meant to move");
    cr_log_info("pages moved %llu (%llu at once), rescues %llu, evictions %llu + %llu by moves, busy %llu/%llu",
                (unsigned long long)st.mover.slabs_moved, (unsigned long long)st.mover.slabs_moved_at_once,
                (unsigned long long)st.mover.slab_reassign_rescues, (unsigned long long)st.ops.evictions,
                (unsigned long long)st.mover.slab_reassign_evictions_nomem,
                (unsigned long long)st.mover.slab_reassign_busy_items,
                (unsigned long long)st.mover.slab_reassign_busy_deletes);
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
