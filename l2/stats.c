/* stats: `stats l2` — the pool's settings, then per server (numbered in
 * --l2 order, memcached's "N:name" style of `stats slabs`) its counters
 * summed over the workers, whether it is ejected, what is in flight and
 * latency percentiles from a log-linear histogram, then the node's
 * two-level counters. Counters only grow, from start-up. */
#include "l2/l2_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned
l2_hist_index(uint64_t v)
{
    if (v < L2_HIST_SUB)
        return (unsigned)v;
    if (v >> L2_HIST_MAX_BITS)
        v = (UINT64_C(1) << L2_HIST_MAX_BITS) - 1;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - L2_HIST_SUB_BITS;
    return (shift + 1) * L2_HIST_SUB + (unsigned)((v >> shift) - L2_HIST_SUB);
}

/* The upper edge of bucket i, in microseconds: a percentile is never
 * reported lower than it was. */
static uint64_t
l2_hist_upper(unsigned i)
{
    unsigned oct = i / L2_HIST_SUB;
    if (oct == 0)
        return i;
    unsigned shift = oct - 1;
    return ((((uint64_t)(i % L2_HIST_SUB) + L2_HIST_SUB) + 1) << shift) - 1;
}

void
l2_hist_add(struct l2_server_stats *s, uint64_t us)
{
    L2_ADD(s->hist[l2_hist_index(us)], 1);
}

static uint64_t
l2_hist_pct(const uint64_t *b, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)n), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < L2_HIST_BUCKETS; i++) {
        seen += b[i];
        if (seen >= want)
            return l2_hist_upper(i);
    }
    return l2_hist_upper(L2_HIST_BUCKETS - 1);
}

static void
l2_emit_u64(l2_stat_fn emit, void *arg, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    emit(name, buf, arg);
}

static void
l2_emit_server(l2_stat_fn emit, void *arg, unsigned i, const char *name, uint64_t v)
{
    char key[64];
    snprintf(key, sizeof(key), "%u:%s", i, name);
    l2_emit_u64(emit, arg, key, v);
}

void
l2_stats(l2_stat_fn emit, void *arg)
{
    l2_emit_u64(emit, arg, "servers", l2_pool.nservers);
    if (l2_pool.nservers == 0)
        return;
    l2_emit_u64(emit, arg, "timeout_ms", l2_pool.opts.timeout_ms);
    l2_emit_u64(emit, arg, "failure_limit", l2_pool.opts.failure_limit);
    l2_emit_u64(emit, arg, "retry_ms", l2_pool.opts.retry_ms);
    l2_emit_u64(emit, arg, "max_inflight", l2_pool.opts.max_inflight);
    uint64_t node[L2_NODE_STAT_COUNT];
    uint64_t *hist = malloc(sizeof(uint64_t) * L2_HIST_BUCKETS);
    if (hist == NULL)
        return;
    pthread_mutex_lock(&l2_pool.workers_lock);
    for (unsigned k = 0; k < L2_NODE_STAT_COUNT; k++)
        node[k] = l2_pool.retired_node[k];
    for (struct l2_worker *w = l2_pool.workers; w != NULL; w = w->next)
        for (unsigned k = 0; k < L2_NODE_STAT_COUNT; k++)
            node[k] += atomic_load_explicit(&w->node[k], memory_order_relaxed);
    for (unsigned i = 0; i < l2_pool.nservers; i++) {
        struct l2_server *s = &l2_pool.servers[i];
        char key[64];
        snprintf(key, sizeof(key), "%u:address", i);
        emit(key, s->name, arg);
        l2_emit_server(emit, arg, i, "weight", s->weight);
#define L2_SUM_DECL(name) uint64_t name = atomic_load(&l2_pool.retired[i].name);
        L2_SERVER_STATS(L2_SUM_DECL)
#undef L2_SUM_DECL
        uint64_t in_flight = 0, n = 0;
        for (unsigned b = 0; b < L2_HIST_BUCKETS; b++)
            hist[b] = atomic_load(&l2_pool.retired[i].hist[b]);
        for (struct l2_worker *w = l2_pool.workers; w != NULL; w = w->next) {
            struct l2_server_stats *st = &w->stats[i];
#define L2_SUM_ADD(name) name += atomic_load_explicit(&st->name, memory_order_relaxed);
            L2_SERVER_STATS(L2_SUM_ADD)
#undef L2_SUM_ADD
            in_flight += atomic_load_explicit(&w->conns[i].queued_pub, memory_order_relaxed);
            for (unsigned b = 0; b < L2_HIST_BUCKETS; b++)
                hist[b] += atomic_load_explicit(&st->hist[b], memory_order_relaxed);
        }
        for (unsigned b = 0; b < L2_HIST_BUCKETS; b++)
            n += hist[b];
#define L2_EMIT(name) l2_emit_server(emit, arg, i, #name, name);
        L2_SERVER_STATS(L2_EMIT)
#undef L2_EMIT
        pthread_mutex_lock(&s->lock);
        uint64_t ejections = s->eject.ejections;
        pthread_mutex_unlock(&s->lock);
        double until = atomic_load(&s->down_until);
        l2_emit_server(emit, arg, i, "ejections", ejections);
        l2_emit_server(emit, arg, i, "ejected",
                       until != 0 && (double)l2_now_ns() * 1e-9 < until ? 1 : 0);
        l2_emit_server(emit, arg, i, "in_flight", in_flight);
        l2_emit_server(emit, arg, i, "latency_p50_us", l2_hist_pct(hist, n, 0.50));
        l2_emit_server(emit, arg, i, "latency_p90_us", l2_hist_pct(hist, n, 0.90));
        l2_emit_server(emit, arg, i, "latency_p99_us", l2_hist_pct(hist, n, 0.99));
        l2_emit_server(emit, arg, i, "latency_p999_us", l2_hist_pct(hist, n, 0.999));
    }
    pthread_mutex_unlock(&l2_pool.workers_lock);
    free(hist);
    static const char *const names[] = {
#define L2_NODE_NAME(name) #name,
        L2_NODE_STATS(L2_NODE_NAME)
#undef L2_NODE_NAME
    };
    for (unsigned k = 0; k < L2_NODE_STAT_COUNT; k++)
        l2_emit_u64(emit, arg, names[k], node[k]);
}
