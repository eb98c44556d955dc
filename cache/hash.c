/* hash: the key -> item table. Chained buckets, power-of-two sized, guarded by
 * HT_STRIPES striped locks; a key's stripe is its hash's low bits, so while
 * the table doubles, one stripe covers a key's bucket in both tables. Growth
 * happens bucket by bucket on the maintenance thread: a reader only ever
 * waits for one bucket's move, never for the whole table. Only the switch of
 * table pointers at the start and end of a growth takes every stripe.
 * Buckets and chains hold 32-bit refs (cache_internal.h): 4 bytes a bucket.
 * Lookahead (ht_prefetch) reads a bucket with no lock: so a table, once
 * replaced, is emptied (its pages given back) but stays mapped until
 * teardown, and the table pointer and power are read under a sequence
 * count: such a read may see an old bucket, never unmapped memory. */
#include "cache/cache_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* One lock per cache line so that neighbouring stripes do not share one. */
struct stripe {
    pthread_mutex_t lock;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
};

static struct {
    struct stripe stripes[HT_STRIPES];
    uint32_t *primary;              /* all stripes guard the pointers and powers */
    unsigned power;
    uint32_t *old;                  /* the smaller table while growing */
    unsigned old_power;
    bool expanding;
    _Atomic uint64_t expand_bucket; /* old buckets below this have moved */
    _Atomic uint64_t items;
    _Atomic uint64_t grow_at;       /* item count that asks for growth */
    _Atomic unsigned power_seen;    /* power and expanding, readable without a lock */
    _Atomic bool expanding_seen;
    _Atomic unsigned seq;           /* odd while primary and power change */
    uint32_t *retired[HT_POWER_MAX + 1]; /* replaced tables, by power */
} ht;

static size_t
table_len(unsigned power)
{
    return ((size_t)1 << power) * sizeof(*ht.primary);
}

/* Tables are mappings of their own, zero-filled by the kernel. */
static uint32_t *
table_alloc(unsigned power)
{
    void *p = mmap(NULL, table_len(power), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A replaced table gives its pages back but keeps its addresses until
 * teardown: a lookahead may still read it (and finds zeros). */
static void
table_retire(uint32_t *t, unsigned power)
{
    if (ht.retired[power] != NULL) /* a table this size retired before: unmap that one */
        munmap(ht.retired[power], table_len(power));
    (void)madvise(t, table_len(power), MADV_DONTNEED);
    ht.retired[power] = t;
}

static inline uint64_t
hmask(unsigned power)
{
    return (UINT64_C(1) << power) - 1;
}

static inline pthread_mutex_t *
stripe_of(uint64_t hv)
{
    return &ht.stripes[hv & (HT_STRIPES - 1)].lock;
}

bool
ht_setup(unsigned power, char *err, size_t errlen)
{
    if (power < HT_POWER_MIN || power > HT_POWER_MAX) {
        snprintf(err, errlen, "hashpower must be between %d and %d", HT_POWER_MIN, HT_POWER_MAX);
        return false;
    }
    ht.primary = table_alloc(power);
    if (ht.primary == NULL) {
        snprintf(err, errlen, "cannot allocate a hash table of 2^%u buckets", power);
        return false;
    }
    ht.power = power;
    ht.old = NULL;
    ht.expanding = false;
    atomic_store(&ht.expand_bucket, 0);
    atomic_store(&ht.items, 0);
    atomic_store(&ht.grow_at, (UINT64_C(3) << power) / 2);
    atomic_store(&ht.power_seen, power);
    atomic_store(&ht.expanding_seen, false);
    for (unsigned i = 0; i < HT_STRIPES; i++)
        pthread_mutex_init(&ht.stripes[i].lock, NULL);
    return true;
}

void
ht_teardown(void)
{
    if (ht.primary != NULL)
        munmap(ht.primary, table_len(ht.power));
    if (ht.old != NULL)
        munmap(ht.old, table_len(ht.old_power));
    for (unsigned p = 0; p <= HT_POWER_MAX; p++) {
        if (ht.retired[p] != NULL)
            munmap(ht.retired[p], table_len(p));
        ht.retired[p] = NULL;
    }
    ht.primary = ht.old = NULL;
    for (unsigned i = 0; i < HT_STRIPES; i++)
        pthread_mutex_destroy(&ht.stripes[i].lock);
}

void
ht_lock(uint64_t hv)
{
    /* Stripe before class, never the reverse; and never twice. */
    CHECK(!class_lock_held_any());
    CHECK(!check_mutex_mine(stripe_of(hv)));
    pthread_mutex_lock(stripe_of(hv));
}

void
ht_unlock(uint64_t hv)
{
    pthread_mutex_unlock(stripe_of(hv));
}

bool
ht_trylock(uint64_t hv)
{
    return pthread_mutex_trylock(stripe_of(hv)) == 0;
}

static void
lock_all(void)
{
    for (unsigned i = 0; i < HT_STRIPES; i++)
        pthread_mutex_lock(&ht.stripes[i].lock);
}

static void
unlock_all(void)
{
    for (unsigned i = HT_STRIPES; i-- > 0;)
        pthread_mutex_unlock(&ht.stripes[i].lock);
}

/* The bucket holding hv right now; the caller holds hv's stripe, which is
 * also the stripe the mover holds while it moves that bucket. */
static uint32_t *
bucket_of(uint64_t hv)
{
    CHECK(check_mutex_mine(stripe_of(hv)));
    if (ht.expanding) {
        uint64_t ob = hv & hmask(ht.old_power);
        if (ob >= atomic_load_explicit(&ht.expand_bucket, memory_order_acquire))
            return &ht.old[ob];
    }
    return &ht.primary[hv & hmask(ht.power)];
}

struct item *
ht_find(const char *key, size_t nkey, uint64_t hv)
{
    for (uint32_t r = *bucket_of(hv); r != 0;) {
        struct item *it = item_at(r);
        if (it->nkey == nkey && memcmp(it->data, key, nkey) == 0)
            return it;
        r = it->h_next;
    }
    return NULL;
}

void
ht_insert(struct item *it, uint64_t hv)
{
    uint32_t *b = bucket_of(hv);
    it->h_next = *b;
    *b = item_ref(it);
}

void
ht_remove(struct item *it, uint64_t hv)
{
    uint32_t want = item_ref(it);
    for (uint32_t *pp = bucket_of(hv); *pp != 0; pp = &item_at(*pp)->h_next) {
        if (*pp == want) {
            *pp = it->h_next;
            it->h_next = 0;
            return;
        }
    }
}

void
ht_replace(struct item *old, struct item *fresh, uint64_t hv)
{
    uint32_t want = item_ref(old);
    for (uint32_t *pp = bucket_of(hv); *pp != 0; pp = &item_at(*pp)->h_next) {
        if (*pp == want) {
            fresh->h_next = old->h_next;
            *pp = item_ref(fresh);
            old->h_next = 0;
            return;
        }
    }
}

bool
ht_same_stripe(uint64_t a, uint64_t b)
{
    return stripe_of(a) == stripe_of(b);
}

bool
ht_count(int delta)
{
    uint64_t n = atomic_fetch_add_explicit(&ht.items, (uint64_t)(int64_t)delta, memory_order_relaxed) + (uint64_t)(int64_t)delta;
    return delta > 0 && n == atomic_load_explicit(&ht.grow_at, memory_order_relaxed);
}

/* Buckets moved per step: small enough that one step holds each stripe only
 * briefly, large enough that a million-bucket table grows in a second. */
#define EXPAND_BATCH 4096

bool
ht_expand_step(void)
{
    if (!ht.expanding) {
        /* Only this (maintenance) thread changes ht.power, so reading it here is safe. */
        if (atomic_load(&ht.items) <= atomic_load(&ht.grow_at) || ht.power >= HT_POWER_MAX)
            return false;
        uint32_t *bigger = table_alloc(ht.power + 1);
        if (bigger == NULL)
            return false; /* try again on a later step */
        lock_all();
        ht.old = ht.primary;
        ht.old_power = ht.power;
        atomic_fetch_add_explicit(&ht.seq, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        __atomic_store_n(&ht.primary, bigger, __ATOMIC_RELAXED);
        __atomic_store_n(&ht.power, ht.power + 1, __ATOMIC_RELAXED);
        atomic_fetch_add_explicit(&ht.seq, 1, memory_order_release);
        atomic_store(&ht.expand_bucket, 0);
        ht.expanding = true;
        unlock_all();
        atomic_store(&ht.expanding_seen, true);
        atomic_store(&ht.power_seen, ht.power);
        atomic_store(&ht.grow_at, (UINT64_C(3) << ht.power) / 2);
    }
    uint64_t old_size = UINT64_C(1) << ht.old_power;
    for (unsigned n = 0; n < EXPAND_BATCH; n++) {
        uint64_t b = atomic_load(&ht.expand_bucket);
        if (b == old_size) {
            lock_all();
            table_retire(ht.old, ht.old_power);
            ht.old = NULL;
            ht.expanding = false;
            unlock_all();
            atomic_store(&ht.expanding_seen, false);
            return atomic_load(&ht.items) > atomic_load(&ht.grow_at);
        }
        pthread_mutex_t *lock = stripe_of(b);
        pthread_mutex_lock(lock);
        uint32_t r = ht.old[b];
        while (r != 0) {
            struct item *it = item_at(r);
            uint32_t next = it->h_next;
            uint64_t hv = item_hash_key(it->data, it->nkey);
            uint32_t *nb = &ht.primary[hv & hmask(ht.power)];
            it->h_next = *nb;
            *nb = r;
            r = next;
        }
        ht.old[b] = 0;
        atomic_store_explicit(&ht.expand_bucket, b + 1, memory_order_release);
        pthread_mutex_unlock(lock);
    }
    return true;
}

unsigned
ht_power(void)
{
    return atomic_load(&ht.power_seen);
}

bool
ht_expanding(void)
{
    return atomic_load(&ht.expanding_seen);
}

uint64_t
ht_bytes(void)
{
    return (UINT64_C(1) << ht_power()) * sizeof(*ht.primary);
}

void
ht_prefetch(uint64_t hv, unsigned step)
{
    /* primary and power as one consistent pair, or nothing (seqlock) */
    unsigned s0 = atomic_load_explicit(&ht.seq, memory_order_acquire);
    if (s0 & 1)
        return;
    uint32_t *t = __atomic_load_n(&ht.primary, __ATOMIC_RELAXED);
    unsigned power = __atomic_load_n(&ht.power, __ATOMIC_RELAXED);
    atomic_thread_fence(memory_order_acquire);
    if (t == NULL || atomic_load_explicit(&ht.seq, memory_order_relaxed) != s0)
        return;
    uint32_t *b = &t[hv & hmask(power)];
    if (step == 0) {
        __builtin_prefetch(b);
        return;
    }
    /* The chain's first item: its header and the key after it. The ref
     * may be stale by now; prefetching where it points cannot fault. Only
     * slab refs decode without a read; a large item is not worth one. */
    uint32_t ref = __atomic_load_n(b, __ATOMIC_RELAXED);
    if (ref != 0 && ref < REF_LARGE_BASE) {
        const char *it = (const char *)item_at(ref);
        __builtin_prefetch(it);
        __builtin_prefetch(it + 64);
    }
}
