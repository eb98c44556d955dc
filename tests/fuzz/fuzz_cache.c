/* fuzz_cache: the cache's public operations driven by the input bytes,
 * against a model (a small table in this file) that predicts every result:
 * what each store/delete/incr/touch/drop returns, every value, flags and CAS
 * a lookup sees, expiry as the clock moves, flush_all now and delayed, and
 * that an item a reader holds never changes under it. Any disagreement, and
 * any broken internal invariant (cache_verify, CHECKs), aborts.
 *
 * Input: a set-up byte, then a stream of operations, each an opcode byte
 * then its arguments (see next_op); the stream ends where the bytes do.
 * Eight keys of different lengths (one of 250 bytes); values from input
 * bytes, decimal numbers with space padding, or patterns of up to ~128 KiB
 * (large items: slab_chunk_max is 16 KiB here).
 *
 * Set-up byte, bit 0 clear: memory is ample, nothing may be evicted, and the
 * model is exact. Bit 0 set: 1 MiB of 64 KiB pages, so stores evict, take
 * pages from other classes and fail for memory; bits 1-2 pick slab_automove
 * (0-2), and a reassign operation moves pages by hand. The model then also
 * accepts a miss on a key it holds, but only if the cache counted an item
 * lost (evicted, or unlinked by a page move) since it last saw that key, and
 * a failure for memory only if the cache counted one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_internal.h" /* item_total, for the -I limit */
#include "src/clock.h"

#define NKEYS 8
#define NHOLD 4
#define ITEM_MAX (1u << 20)
#define MAX_OPS 512

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct model {
    bool present;           /* stored and not deleted/flushed (may have expired) */
    uint64_t loss_mark;     /* items the cache had lost when the model last saw this one */
    char *val;
    size_t vlen;
    uint32_t flags;
    uint32_t exp;           /* rel time; 0 never */
    uint64_t cas;           /* 0: not known (after incr/decr) */
    uint64_t cas_floor;     /* a CAS learnt later must exceed this */
    unsigned gen;           /* bumps with every new item under the key */
};

struct hold {
    struct item *it;
    unsigned key, gen;
    char *snap;             /* key + value + "\r\n" as they were */
    size_t snaplen;
    uint32_t flags;
};

#define VALUE_MAX (64 * 2039 + 64)

static char keys[NKEYS][251];
static char pattern[VALUE_MAX];
static size_t nkeys[NKEYS];
static struct model m[NKEYS];
static struct hold held[NHOLD];
static uint32_t flush_pending;  /* rel time a delayed flush takes effect; 0 none */
static bool tight;              /* small memory: see the set-up byte */
static bool trace;              /* FUZZ_TRACE=1: each operation on stderr, for triage */
static const uint8_t *in;
static size_t in_left;
static unsigned opno;

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#include <stdarg.h>
static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_cache: op %u: ", opno);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static bool
take(uint8_t *b)
{
    if (in_left == 0)
        return false;
    *b = *in++;
    in_left--;
    return true;
}

static uint8_t
byte(void)
{
    uint8_t b = 0;
    (void)take(&b);
    return b;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    trace = getenv("FUZZ_TRACE") != NULL;
    static const size_t lens[NKEYS] = { 1, 1, 2, 4, 250, 17, 1, 40 };
    for (size_t i = 0; i < VALUE_MAX; i++)
        pattern[i] = (char)('a' + i % 26);
    for (unsigned k = 0; k < NKEYS; k++) {
        nkeys[k] = lens[k];
        for (size_t i = 0; i < lens[k]; i++)
            keys[k][i] = (char)('a' + (k * 7 + i) % 26);
        keys[k][0] = (char)('a' + k); /* distinct even at one byte */
    }
    return 0;
}

/* --- what the cache counts as lost --- */

/* Items taken from the cache alive: evicted from an LRU, evicted or unlinked
 * while busy by a page move. */
static uint64_t
losses(void)
{
    struct cache_stats st;
    cache_stats_get(&st);
    return st.ops.evictions + st.mover.slab_reassign_evictions_nomem +
           st.mover.slab_reassign_busy_deletes;
}

static uint64_t
out_of_memory(void)
{
    struct cache_stats st;
    cache_stats_get(&st);
    return st.ops.outofmemory;
}

/* --- the model's rules (memcached's, as cache.h states them) --- */

static uint32_t
now(void)
{
    return clock_now();
}

static bool
live(unsigned k)
{
    return m[k].present && !(m[k].exp != 0 && m[k].exp <= now());
}

/* A result that says "absent" for a key the model holds: true (and the
 * model forgets the key) if the cache may have lost it since the model last
 * saw it. Never with ample memory. */
static bool
lost(unsigned k)
{
    if (!tight || !live(k) || losses() <= m[k].loss_mark)
        return false;
    m[k].present = false;
    return true;
}

static uint32_t
exp_for(int64_t ttl)
{
    if (ttl == 0)
        return 0;
    if (ttl < 0)
        return 1;
    return (uint32_t)ttl + now();
}

static bool
fits(unsigned k, size_t vlen, uint32_t flags)
{
    return item_total(nkeys[k], flags != 0 ? sizeof(flags) : 0, vlen + 2) <= ITEM_MAX;
}

static void
set_model(unsigned k, const char *v, size_t vlen, uint32_t flags, uint32_t exp, uint64_t cas)
{
    char *copy = malloc(vlen ? vlen : 1);
    if (copy == NULL)
        die("out of memory");
    memcpy(copy, v, vlen);
    free(m[k].val);
    if (cas != 0 && cas <= m[k].cas_floor)
        die("CAS %" PRIu64 " not above %" PRIu64, cas, m[k].cas_floor);
    m[k] = (struct model){ .present = true, .val = copy, .vlen = vlen, .flags = flags,
                           .exp = exp, .cas = cas, .cas_floor = cas ? cas : m[k].cas_floor,
                           .gen = m[k].gen + 1, .loss_mark = losses() };
}

static void
forget(unsigned k)
{
    m[k].present = false;
}

/* A lookup's item must be the model's value; learns an unknown CAS. */
static void
check_item(unsigned k, struct item *it)
{
    if (!live(k))
        die("key %u: a hit, the model says miss", k);
    if (item_nkey(it) != nkeys[k] || memcmp(item_key(it), keys[k], nkeys[k]) != 0)
        die("key %u: the item has another key", k);
    if (item_nbytes(it) != m[k].vlen + 2 || memcmp(item_value(it), m[k].val, m[k].vlen) != 0 ||
        memcmp(item_value(it) + m[k].vlen, "\r\n", 2) != 0)
        die("key %u: value differs (%u bytes, model %zu)", k, item_nbytes(it) - 2, m[k].vlen);
    if (item_flags(it) != m[k].flags)
        die("key %u: flags %u, model %u", k, item_flags(it), m[k].flags);
    m[k].loss_mark = losses();
    uint64_t cas = item_cas(it);
    if (m[k].cas == 0) {
        if (cas <= m[k].cas_floor)
            die("key %u: CAS %" PRIu64 " not above %" PRIu64, k, cas, m[k].cas_floor);
        m[k].cas = m[k].cas_floor = cas;
    } else if (cas != m[k].cas) {
        die("key %u: CAS %" PRIu64 ", model %" PRIu64, k, cas, m[k].cas);
    }
}

static unsigned
holds_on(unsigned k)
{
    unsigned n = 0;
    for (unsigned s = 0; s < NHOLD; s++)
        n += held[s].it != NULL && held[s].key == k && held[s].gen == m[k].gen;
    return n;
}

/* memcached's safe_strtoull over the value bytes only. */
static bool
model_counter(const char *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')))
        i++;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    size_t digits = i;
    uint64_t v = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (i == digits)
        return false;
    if (i < n && !(p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r') || p[i] == '\0'))
        return false;
    if (neg) {
        v = (uint64_t)0 - v;
        if ((int64_t)v < 0)
            return false;
    }
    *out = v;
    return true;
}

/* --- inputs --- */

static size_t
value(char *buf, size_t cap)
{
    uint8_t sel = byte();
    size_t n = sel & 63;
    switch (sel >> 6) {
    case 0: /* literal bytes */
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)byte();
        return n;
    case 1: { /* a number with space padding either side */
        uint64_t v = 0;
        unsigned digits = byte() % 21;
        for (unsigned i = 0; i < digits; i++)
            v = v * 10 + byte() % 10;
        size_t len = (size_t)snprintf(buf, cap, "%*s%" PRIu64 "%*s", (int)(n & 7), "", v,
                                      (int)(n >> 3), "");
        return len;
    }
    case 2:
        n *= 97;
        break;
    default:
        n *= 2039;
        break;
    }
    n = n < cap ? n : cap;
    memcpy(buf, pattern, n); /* a loop here would be most of a run's time */
    return n;
}

static int64_t
ttl(void)
{
    static const int64_t ttls[8] = { 0, 1, 2, 3, 5, 10, -1, 0 };
    return ttls[byte() % 8];
}

static uint32_t
flags(void)
{
    static const uint32_t f[4] = { 0, 1, 42, UINT32_MAX };
    uint8_t b = byte();
    return (b & 3) == 3 ? b : f[b & 3];
}

/* --- operations --- */

/* What a store of vlen bytes under key k should answer, by the model. */
static enum cache_result
store_result(unsigned k, enum cache_store_op op, size_t vlen, uint64_t cas_in)
{
    bool was_live = live(k);
    switch (op) {
    case CACHE_SET:
        return CACHE_OK;
    case CACHE_ADD:
        return was_live ? CACHE_NOT_STORED : CACHE_OK;
    case CACHE_REPLACE:
        return was_live ? CACHE_OK : CACHE_NOT_STORED;
    case CACHE_APPEND:
    case CACHE_PREPEND:
        return was_live && fits(k, m[k].vlen + vlen, m[k].flags) ? CACHE_OK : CACHE_NOT_STORED;
    case CACHE_CAS:
        return !was_live ? CACHE_MISS : cas_in != m[k].cas ? CACHE_EXISTS : CACHE_OK;
    case CACHE_CAS_STALE:
        break; /* meta's late fill: leases are not modelled, never played */
    }
    die("store op %d is not modelled", (int)op);
}

static void
op_store(unsigned k, enum cache_store_op op)
{
    static char v[VALUE_MAX];
    size_t vlen = value(v, sizeof(v));
    uint32_t fl = flags();
    int64_t t = ttl();
    uint8_t cas_sel = op == CACHE_CAS ? byte() : 0;

    struct item *it = NULL;
    uint64_t oom = out_of_memory();
    enum cache_result r = cache_alloc(&it, keys[k], nkeys[k], fl, t, (uint32_t)vlen);
    if (!fits(k, vlen, fl)) {
        if (r != CACHE_TOO_LARGE)
            die("key %u: %zu bytes allocated past the item limit: %s", k, vlen, cache_result_name(r));
        return;
    }
    if (r == CACHE_NO_MEMORY && tight && out_of_memory() > oom)
        return; /* nothing stored, nothing changed */
    if (r != CACHE_OK)
        die("key %u: alloc of %zu bytes: %s", k, vlen, cache_result_name(r));
    memcpy(item_value(it), v, vlen);
    memcpy(item_value(it) + vlen, "\r\n", 2);

    uint64_t cas_in = 0;
    if (op == CACHE_CAS && live(k)) {
        if (m[k].cas == 0) { /* learn it first, as a client would with gets */
            struct item *g = cache_get(keys[k], nkeys[k]);
            if (g == NULL && !lost(k))
                die("key %u: live in the model, missed", k);
            if (g != NULL)
                check_item(k, g);
            cache_release(&g);
        }
        cas_in = m[k].cas + (cas_sel & 1 ? 1 + (cas_sel >> 1) : 0);
    } else if (op == CACHE_CAS) {
        cas_in = cas_sel;
    }

    uint64_t cas_out = 0;
    oom = out_of_memory();
    r = cache_store(it, op, cas_in, &cas_out);
    enum cache_result want = store_result(k, op, vlen, cas_in);
    if (r == CACHE_NOT_STORED && want == CACHE_OK && tight && out_of_memory() > oom &&
        (op == CACHE_APPEND || op == CACHE_PREPEND)) {
        /* The joined value found no memory; the old one, which the store
         * held all along, is still there. */
        want = CACHE_NOT_STORED;
    } else if (r != want && lost(k)) {
        want = store_result(k, op, vlen, cas_in);
    }
    if (r != want)
        die("key %u: store op %d: %s, model %s", k, (int)op, cache_result_name(r),
            cache_result_name(want));
    cache_release(&it);
    if (r != CACHE_OK)
        return;
    if (cas_out == 0)
        die("key %u: stored without a CAS", k);
    if (op == CACHE_APPEND || op == CACHE_PREPEND) {
        size_t n = m[k].vlen + vlen;
        char *j = malloc(n ? n : 1);
        if (j == NULL)
            die("out of memory");
        if (op == CACHE_APPEND) {
            memcpy(j, m[k].val, m[k].vlen);
            memcpy(j + m[k].vlen, v, vlen);
        } else {
            memcpy(j, v, vlen);
            memcpy(j + vlen, m[k].val, m[k].vlen);
        }
        /* The joined item keeps the old flags and expiry. */
        set_model(k, j, n, m[k].flags, m[k].exp, cas_out);
        free(j);
    } else {
        set_model(k, v, vlen, fl, exp_for(t), cas_out);
    }
}

static void
op_get(unsigned k, bool touch)
{
    int64_t t = touch ? ttl() : 0;
    struct item *it = touch ? cache_get_touch(keys[k], nkeys[k], t) : cache_get(keys[k], nkeys[k]);
    if (it == NULL) {
        if (live(k) && !lost(k))
            die("key %u: a miss, the model holds %zu bytes", k, m[k].vlen);
        return;
    }
    check_item(k, it);
    cache_release(&it);
    if (touch)
        m[k].exp = exp_for(t);
}

static void
op_touch(unsigned k)
{
    int64_t t = ttl();
    enum cache_result r = cache_touch(keys[k], nkeys[k], t);
    enum cache_result want = live(k) ? CACHE_OK : CACHE_MISS;
    if (r == CACHE_MISS && want == CACHE_OK && lost(k))
        want = CACHE_MISS;
    if (r != want)
        die("key %u: touch %s, model %s", k, cache_result_name(r), cache_result_name(want));
    if (r == CACHE_OK)
        m[k].exp = exp_for(t);
}

static void
op_delete(unsigned k)
{
    enum cache_result r = cache_delete(keys[k], nkeys[k]);
    enum cache_result want = live(k) ? CACHE_OK : CACHE_MISS;
    if (r == CACHE_MISS && want == CACHE_OK && lost(k))
        want = CACHE_MISS;
    if (r != want)
        die("key %u: delete %s, model %s", k, cache_result_name(r), cache_result_name(want));
    forget(k);
}

static void
op_arith(unsigned k, bool incr)
{
    uint64_t delta = 0;
    unsigned n = byte() % 9;
    for (unsigned i = 0; i < n; i++)
        delta = delta << 8 | byte();
    uint64_t got = 0, v = 0;
    uint64_t oom = out_of_memory();
    enum cache_result r = cache_arith(keys[k], nkeys[k], incr, delta, &got);
    if (r == CACHE_MISS && live(k))
        (void)lost(k);
    enum cache_result want = !live(k) ? CACHE_MISS
                             : model_counter(m[k].val, m[k].vlen, &v) ? CACHE_OK
                                                                      : CACHE_NOT_NUMBER;
    /* A longer result that found no memory for its new item changes nothing. */
    if (r == CACHE_NO_MEMORY && want == CACHE_OK && tight && out_of_memory() > oom)
        return;
    if (r != want)
        die("key %u: %s on '%.*s': %s, model %s", k, incr ? "incr" : "decr",
            (int)(m[k].vlen < 40 ? m[k].vlen : 40), m[k].present ? m[k].val : "",
            cache_result_name(r), cache_result_name(want));
    if (r != CACHE_OK)
        return;
    v = incr ? v + delta : delta > v ? 0 : v - delta;
    if (got != v)
        die("key %u: %s gave %" PRIu64 ", model %" PRIu64, k, incr ? "incr" : "decr", got, v);
    char buf[32];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "%" PRIu64, v);
    bool in_place = len <= m[k].vlen && holds_on(k) == 0;
    if (in_place) {
        memset(m[k].val, ' ', m[k].vlen);
        memcpy(m[k].val, buf, len);
        m[k].cas = 0; /* a new one, learnt at the next lookup */
    } else {
        uint64_t floor = m[k].cas_floor;
        set_model(k, buf, len, m[k].flags, m[k].exp, 0);
        m[k].cas_floor = floor;
    }
}

static void
op_drop(unsigned k)
{
    uint8_t sel = byte();
    bool has_hash = sel & 1;
    uint64_t h = live(k) ? cache_value_hash(m[k].val, m[k].vlen, m[k].flags) : 0;
    if (sel & 2)
        h ^= 1 + (sel >> 2);
    enum cache_result r = cache_drop(keys[k], nkeys[k], has_hash, h);
    if (r == CACHE_MISS && live(k))
        (void)lost(k);
    enum cache_result want = !live(k) ? CACHE_MISS : has_hash && !(sel & 2) ? CACHE_EXISTS : CACHE_OK;
    if (r != want)
        die("key %u: drop %s, model %s", k, cache_result_name(r), cache_result_name(want));
    if (r == CACHE_OK)
        forget(k);
}

static void
op_flush(void)
{
    static const int64_t delays[8] = { 0, 0, 1, 2, 3, 5, -1, 10 };
    int64_t d = delays[byte() % 8];
    cache_flush(d);
    uint32_t at = d > 0 ? (uint32_t)d + now() - 1 : now();
    if (at <= now()) {
        flush_pending = 0;
        for (unsigned k = 0; k < NKEYS; k++)
            forget(k);
    } else {
        flush_pending = at;
    }
}

static void
op_advance(void)
{
    clock_set(now() + 1 + byte() % 4);
    /* As the maintenance thread would: a due delayed flush lands now. */
    cache_maintain();
    if (flush_pending != 0 && flush_pending <= now()) {
        flush_pending = 0;
        for (unsigned k = 0; k < NKEYS; k++)
            forget(k);
    }
}

static void
check_hold(struct hold *h)
{
    struct item *it = h->it;
    size_t n = item_nkey(it) + item_nbytes(it);
    if (n != h->snaplen || memcmp(item_key(it), h->snap, n) != 0 || item_flags(it) != h->flags)
        die("key %u: a held item changed under its reader", h->key);
}

static void
op_hold(unsigned k)
{
    struct hold *h = &held[byte() % NHOLD];
    if (h->it != NULL) {
        check_hold(h);
        cache_release(&h->it);
        free(h->snap);
        h->snap = NULL;
        return;
    }
    struct item *it = cache_get(keys[k], nkeys[k]);
    if (it == NULL) {
        if (live(k) && !lost(k))
            die("key %u: a miss, the model holds %zu bytes", k, m[k].vlen);
        return;
    }
    check_item(k, it);
    h->it = it;
    h->key = k;
    h->gen = m[k].gen;
    h->flags = item_flags(it);
    h->snaplen = item_nkey(it) + item_nbytes(it);
    h->snap = malloc(h->snaplen);
    if (h->snap == NULL)
        die("out of memory");
    memcpy(h->snap, item_key(it), h->snaplen);
}

/* `slabs reassign src dst` by hand (tight memory only): pages leave a class
 * with their items rescued, evicted or, if busy, waited for. */
static void
op_reassign(void)
{
    uint8_t a = byte(), b = byte();
    if (!tight)
        return;
    int n = (int)cache_class_count();
    int src = (int)(a % (n + 1)) - 1;   /* -1: any class */
    int dst = (int)(b % (n + 1));       /* 0: the pool */
    (void)cache_slabs_reassign(src, dst);
}

static void
count_size(uint32_t size, uint64_t count, void *arg)
{
    uint64_t *sum = arg;
    (void)size;
    *sum += count;
}

static void
op_check(void)
{
    char err[256];
    bool holding = false;
    for (unsigned s = 0; s < NHOLD; s++)
        holding |= held[s].it != NULL;
    /* cache_verify wants every linked item referenced by the table alone. */
    if (!holding && !cache_verify(err, sizeof(err)))
        die("cache_verify: %s", err);
    uint64_t sized = 0, linked = 0;
    cache_sizes_foreach(count_size, &sized);
    struct cache_stats st;
    cache_stats_get(&st);
    linked = st.curr_items;
    if (!tight && losses() != 0)
        die("an item was lost with ample memory");
    if (sized != linked)
        die("stats sizes counts %" PRIu64 " items, curr_items %" PRIu64, sized, linked);
}

static bool
next_op(void)
{
    uint8_t op;
    if (!take(&op))
        return false;
    unsigned k = byte() % NKEYS;
    if (trace)
        fprintf(stderr, "op %u: %u key %u (live %d, losses %llu)\n", opno, op % 18, k, live(k),
                (unsigned long long)losses());
    switch (op % 18) {
    case 0: op_store(k, CACHE_SET); break;
    case 1: op_store(k, CACHE_ADD); break;
    case 2: op_store(k, CACHE_REPLACE); break;
    case 3: op_store(k, CACHE_APPEND); break;
    case 4: op_store(k, CACHE_PREPEND); break;
    case 5: op_store(k, CACHE_CAS); break;
    case 6: op_get(k, false); break;
    case 7: op_get(k, true); break;
    case 8: op_touch(k); break;
    case 9: op_delete(k); break;
    case 10: op_arith(k, true); break;
    case 11: op_arith(k, false); break;
    case 12: op_drop(k); break;
    case 13: op_flush(); break;
    case 14: op_advance(); break;
    case 15: op_hold(k); break;
    case 16: op_reassign(); break;
    default: op_check(); break;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    tight = data[0] & 1;
    clock_setup();
    struct cache_options o;
    cache_options_default(&o);
    /* Small pages keep a fresh cache per input cheap; 32 MiB holds the
     * worst case (eight 1 MiB items, four held ones, every class) twice. */
    o.page_size = 64u << 10;
    o.mem_limit = tight ? 1u << 20 : 32u << 20;
    o.slab_automove = tight ? (data[0] >> 1) % 3 : 0;
    o.slab_chunk_max = 16u << 10;
    o.item_max = ITEM_MAX;
    o.hashpower = 10;
    o.lru_crawler = o.lru_maintainer = false; /* one thread: the model's */
    char err[160];
    if (!cache_setup(&o, err, sizeof(err)))
        die("cache_setup: %s", err);
    memset(m, 0, sizeof(m));
    flush_pending = 0;
    in = data + 1;
    in_left = size - 1;
    for (opno = 0; opno < MAX_OPS && next_op(); opno++)
        ;
    for (unsigned s = 0; s < NHOLD; s++) {
        if (held[s].it != NULL) {
            check_hold(&held[s]);
            cache_release(&held[s].it);
        }
        free(held[s].snap);
        held[s].snap = NULL;
    }
    op_check();
    for (unsigned k = 0; k < NKEYS; k++) {
        free(m[k].val);
        m[k].val = NULL;
    }
    cache_teardown();
    return 0;
}
