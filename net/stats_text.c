/* stats_text: renders the stats sub-commands. The general `stats` is one
 * X-macro table in memcached 1.6.18's exact key order; keys for machinery we
 * do not have (extstore, logger watchers ...) stay, as zeros,
 * so exporters and dashboards find every key they expect. */
#include "net/stats_text.h"

#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "net/watch.h"
#include "src/clock.h"

/* Everything the general table reads, gathered once per request. */
struct stats_snapshot {
    struct cache_stats cache;
    struct net_thread_stats_sum {
#define STATS_SUM_FIELD(name) uint64_t name;
        NET_THREAD_STATS(STATS_SUM_FIELD)
#undef STATS_SUM_FIELD
    } net;
    long pid;
    uint32_t uptime;
    long now;
    struct rusage ru;
    unsigned max_conns, curr_conns, threads, listeners;
    uint64_t total_conns, rejected_conns, listen_disabled;
    bool accepting;
    uint64_t rbuf_count, rbuf_free;   /* read buffers: all, and spares */
    struct cache_crawler_status crawler;
    bool maintainer;
    struct watch_stats watch;
};

#define U64(x) ((unsigned long long)(x))

/* name, printf format, value: memcached 1.6.18's `stats`, in its order.
 * XIF rows appear only when their condition holds, as in memcached. */
#define STATS_GENERAL(X, XIF)                                                  \
    X(pid, "%ld", s->pid)                                                      \
    X(uptime, "%u", s->uptime)                                                 \
    X(time, "%ld", s->now)                                                     \
    X(version, "%s", sh->opts.version)                                         \
    XIF(sh->opts.product_version != NULL, fleetcache_version, "%s",            \
        sh->opts.product_version)                                              \
    X(libevent, "libev-%d.%d", ev_version_major(), ev_version_minor())         \
    X(pointer_size, "%d", (int)(8 * sizeof(void *)))                           \
    X(rusage_user, "%ld.%06ld", (long)s->ru.ru_utime.tv_sec, (long)s->ru.ru_utime.tv_usec) \
    X(rusage_system, "%ld.%06ld", (long)s->ru.ru_stime.tv_sec, (long)s->ru.ru_stime.tv_usec) \
    X(max_connections, "%u", s->max_conns)                                     \
    X(curr_connections, "%u", s->curr_conns)                                   \
    X(total_connections, "%llu", U64(s->total_conns))                          \
    X(rejected_connections, "%llu", U64(s->rejected_conns))                    \
    X(connection_structures, "%u", s->curr_conns + s->listeners)               \
    X(response_obj_oom, "%d", 0)                                               \
    X(response_obj_count, "%llu", U64(s->rbuf_count))                          \
    X(response_obj_bytes, "%llu", U64(s->rbuf_count * 2048))                   \
    X(read_buf_count, "%llu", U64(s->rbuf_count))                              \
    X(read_buf_bytes, "%llu", U64(s->rbuf_count * 16384))                      \
    X(read_buf_bytes_free, "%llu", U64(s->rbuf_free * 16384))                  \
    X(read_buf_oom, "%d", 0)                                                   \
    X(reserved_fds, "%u", 5 + s->threads * 3)                                  \
    X(cmd_get, "%llu", U64(s->net.cmd_get))                                    \
    X(cmd_set, "%llu", U64(s->cache.ops.cmd_set))                              \
    X(cmd_flush, "%llu", U64(s->net.cmd_flush))                                \
    X(cmd_touch, "%llu", U64(s->net.cmd_touch))                                \
    X(cmd_meta, "%llu", U64(s->net.cmd_meta))                                  \
    X(get_hits, "%llu", U64(s->cache.ops.get_hits))                            \
    X(get_misses, "%llu", U64(s->cache.ops.get_misses))                        \
    X(get_expired, "%llu", U64(s->cache.ops.get_expired))                      \
    X(get_flushed, "%llu", U64(s->cache.ops.get_flushed))                      \
    X(delete_misses, "%llu", U64(s->cache.ops.delete_misses))                  \
    X(delete_hits, "%llu", U64(s->cache.ops.delete_hits))                      \
    X(incr_misses, "%llu", U64(s->cache.ops.incr_misses))                      \
    X(incr_hits, "%llu", U64(s->cache.ops.incr_hits))                          \
    X(decr_misses, "%llu", U64(s->cache.ops.decr_misses))                      \
    X(decr_hits, "%llu", U64(s->cache.ops.decr_hits))                          \
    X(cas_misses, "%llu", U64(s->cache.ops.cas_misses))                        \
    X(cas_hits, "%llu", U64(s->cache.ops.cas_hits))                            \
    X(cas_badval, "%llu", U64(s->cache.ops.cas_badval))                        \
    X(touch_hits, "%llu", U64(s->cache.ops.touch_hits))                        \
    X(touch_misses, "%llu", U64(s->cache.ops.touch_misses))                    \
    X(store_too_large, "%llu", U64(s->net.store_too_large))                    \
    X(store_no_memory, "%llu", U64(s->net.store_no_memory))                    \
    X(auth_cmds, "%d", 0)                                                      \
    X(auth_errors, "%d", 0)                                                    \
    XIF(sh->opts.idle_timeout > 0, idle_kicks, "%llu", U64(s->net.idle_kicks)) \
    X(bytes_read, "%llu", U64(s->net.bytes_read))                              \
    X(bytes_written, "%llu", U64(s->net.bytes_written))                        \
    X(limit_maxbytes, "%llu", U64(s->cache.limit_maxbytes))                    \
    X(accepting_conns, "%d", s->accepting ? 1 : 0)                             \
    X(listen_disabled_num, "%llu", U64(s->listen_disabled))                    \
    X(time_in_listen_disabled_us, "%d", 0)                                     \
    X(threads, "%u", s->threads)                                               \
    X(conn_yields, "%llu", U64(s->net.conn_yields))                            \
    X(hash_power_level, "%u", s->cache.hash_power_level)                       \
    X(hash_bytes, "%llu", U64(s->cache.hash_bytes))                            \
    X(hash_is_expanding, "%d", s->cache.hash_is_expanding ? 1 : 0)             \
    XIF(s->cache.slab_reassign, slab_reassign_rescues, "%llu", U64(s->cache.mover.slab_reassign_rescues)) \
    XIF(s->cache.slab_reassign, slab_reassign_chunk_rescues, "%llu", U64(s->cache.mover.slab_reassign_chunk_rescues)) \
    XIF(s->cache.slab_reassign, slab_reassign_evictions_nomem, "%llu", U64(s->cache.mover.slab_reassign_evictions_nomem)) \
    XIF(s->cache.slab_reassign, slab_reassign_inline_reclaim, "%llu", U64(s->cache.mover.slab_reassign_inline_reclaim)) \
    XIF(s->cache.slab_reassign, slab_reassign_busy_items, "%llu", U64(s->cache.mover.slab_reassign_busy_items)) \
    XIF(s->cache.slab_reassign, slab_reassign_busy_deletes, "%llu", U64(s->cache.mover.slab_reassign_busy_deletes)) \
    XIF(s->cache.slab_reassign, slab_reassign_running, "%d", s->cache.slab_reassign_running ? 1 : 0) \
    XIF(s->cache.slab_reassign, slabs_moved, "%llu", U64(s->cache.mover.slabs_moved)) \
    XIF(s->crawler.enabled, lru_crawler_running, "%d", s->crawler.running ? 1 : 0) \
    XIF(s->crawler.enabled, lru_crawler_starts, "%llu", U64(s->crawler.starts)) \
    XIF(s->maintainer, lru_maintainer_juggles, "%d", 0)                        \
    X(malloc_fails, "%llu", U64(s->cache.malloc_fails))                        \
    X(log_worker_dropped, "%d", 0)                                             \
    X(log_worker_written, "%llu", U64(s->watch.written))                       \
    X(log_watcher_skipped, "%llu", U64(s->watch.skipped))                      \
    X(log_watcher_sent, "%llu", U64(s->watch.sent))                            \
    X(log_watchers, "%u", s->watch.watchers)                                   \
    X(unexpected_napi_ids, "%d", 0)                                            \
    X(round_robin_fallback, "%d", 0)                                           \
    X(bytes, "%llu", U64(s->cache.bytes))                                      \
    X(curr_items, "%llu", U64(s->cache.curr_items))                            \
    X(total_items, "%llu", U64(s->cache.ops.total_items))                      \
    X(slab_global_page_pool, "%llu", U64(s->cache.slab_global_page_pool))      \
    X(expired_unfetched, "%llu", U64(s->cache.ops.expired_unfetched))          \
    X(evicted_unfetched, "%llu", U64(s->cache.ops.evicted_unfetched))          \
    XIF(s->maintainer, evicted_active, "%llu", U64(s->cache.ops.evicted_active)) \
    X(evictions, "%llu", U64(s->cache.ops.evictions))                          \
    X(reclaimed, "%llu", U64(s->cache.ops.reclaimed))                          \
    X(crawler_reclaimed, "%llu", U64(s->cache.ops.crawler_reclaimed))          \
    X(crawler_items_checked, "%llu", U64(s->cache.ops.crawler_items_checked))  \
    X(lrutail_reflocked, "%llu", U64(s->cache.ops.lrutail_reflocked))          \
    XIF(s->maintainer, moves_to_cold, "%llu", U64(s->cache.ops.moves_to_cold)) \
    XIF(s->maintainer, moves_to_warm, "%llu", U64(s->cache.ops.moves_to_warm)) \
    XIF(s->maintainer, moves_within_lru, "%llu", U64(s->cache.ops.moves_within_lru)) \
    XIF(s->maintainer, direct_reclaims, "%llu", U64(s->cache.ops.direct_reclaims)) \
    XIF(s->maintainer, lru_bumps_dropped, "%d", 0)

static void
stats_sum_net(struct net_shared *sh, struct net_thread_stats_sum *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < sh->nworkers; i++) {
        struct worker *w = &sh->workers[i];
#define STATS_ADD(name) \
        sum->name += atomic_load_explicit(&w->stats.name, memory_order_relaxed);
        NET_THREAD_STATS(STATS_ADD)
#undef STATS_ADD
    }
    pthread_mutex_lock(&sh->reset_lock);
#define STATS_SUB(name) sum->name -= sh->base.name;
    NET_THREAD_STATS(STATS_SUB)
#undef STATS_SUB
    pthread_mutex_unlock(&sh->reset_lock);
}

void
stats_text_general(struct net_shared *sh, struct reply_buf *out)
{
    struct stats_snapshot snap;
    struct stats_snapshot *s = &snap;
    memset(s, 0, sizeof(*s));
    cache_stats_get(&s->cache);
    stats_sum_net(sh, &s->net);
    s->pid = (long)getpid();
    s->uptime = clock_now() - 2;
    s->now = (long)(clock_process_started() + clock_now());
    getrusage(RUSAGE_SELF, &s->ru);
    s->max_conns = sh->opts.max_conns;
    s->listeners = atomic_load(&sh->nlisteners);
    /* memcached counts its listening connections too, minus one. */
    unsigned curr = atomic_load(&sh->curr_conns);
    s->curr_conns = curr + s->listeners > 0 ? curr + s->listeners - 1 : 0;
    s->threads = sh->nworkers;
    pthread_mutex_lock(&sh->reset_lock);
    s->total_conns = atomic_load(&sh->total_conns) + s->listeners - sh->base.total_conns;
    s->rejected_conns = atomic_load(&sh->rejected_conns) - sh->base.rejected_conns;
    pthread_mutex_unlock(&sh->reset_lock);
    s->listen_disabled = atomic_load(&sh->listen_disabled_num);
    s->accepting = atomic_load(&sh->accepting);
    /* Read buffers are taken only to read and given back when idle, as
     * memcached's: those connections hold, and the workers' spares. */
    s->rbuf_count = s->rbuf_free = 0;
    for (unsigned i = 0; i < sh->nworkers; i++) {
        uint32_t spare = atomic_load_explicit(&sh->workers[i].rbufs_spare, memory_order_relaxed);
        s->rbuf_count += atomic_load_explicit(&sh->workers[i].rbufs_held, memory_order_relaxed) + spare;
        s->rbuf_free += spare;
    }
    cache_crawler_status(&s->crawler);
    s->maintainer = cache_maintainer();
    watch_stats_get(&s->watch);

#define STATS_LINE(name, fmt, ...) reply_printf(out, "STAT " #name " " fmt "\r\n", __VA_ARGS__);
#define STATS_LINE_IF(cond, name, fmt, ...) \
    if (cond)                               \
        STATS_LINE(name, fmt, __VA_ARGS__)
    STATS_GENERAL(STATS_LINE, STATS_LINE_IF)
#undef STATS_LINE_IF
#undef STATS_LINE
    reply_add(out, "END\r\n", 5);
}

static void
stats_emit(void *ctx, const char *name, const char *fmt, ...)
{
    struct reply_buf *out = ctx;
    char val[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    reply_printf(out, "STAT %s %s\r\n", name, val);
}

void
stats_text_settings(struct net_shared *sh, struct reply_buf *out)
{
    if (sh->opts.settings != NULL)
        sh->opts.settings(sh->opts.settings_arg, stats_emit, out);
    reply_add(out, "END\r\n", 5);
}

bool
stats_text_sub(struct net_shared *sh, const char *name, size_t len, struct reply_buf *out)
{
    if (sh->opts.substats == NULL)
        return false;
    struct reply_mark m;
    reply_mark(out, &m);
    if (!sh->opts.substats(name, len, stats_emit, out)) {
        reply_rollback(out, &m);
        return false;
    }
    reply_add(out, "END\r\n", 5);
    return true;
}

/* name, value, condition: `stats items` per class, memcached's keys, order
 * and conditions (the segment counts, ages and moves only with its LRU
 * maintainer; number_temp only with the temporary LRU on). */
#define STATS_ITEMS(X)                                          \
    X(number, cs.number, true)                                  \
    X(number_hot, cs.number_hot, mt)                            \
    X(number_warm, cs.number_warm, mt)                          \
    X(number_cold, cs.number_cold, mt)                          \
    X(number_temp, cs.number_temp, mt && lru.temp_lru)          \
    X(age_hot, cs.age_hot, mt)                                  \
    X(age_warm, cs.age_warm, mt)                                \
    X(age, cs.age, true)                                        \
    X(mem_requested, cs.mem_requested, true)                    \
    X(evicted, cs.ops.evictions, true)                          \
    X(evicted_nonzero, cs.ops.evicted_nonzero, true)            \
    X(evicted_time, cs.evicted_time, true)                      \
    X(outofmemory, cs.ops.outofmemory, true)                    \
    X(tailrepairs, 0, true)                                     \
    X(reclaimed, cs.ops.reclaimed, true)                        \
    X(expired_unfetched, cs.ops.expired_unfetched, true)        \
    X(evicted_unfetched, cs.ops.evicted_unfetched, true)        \
    X(evicted_active, cs.ops.evicted_active, mt)                \
    X(crawler_reclaimed, cs.ops.crawler_reclaimed, true)        \
    X(crawler_items_checked, cs.ops.crawler_items_checked, true) \
    X(lrutail_reflocked, cs.ops.lrutail_reflocked, true)        \
    X(moves_to_cold, cs.ops.moves_to_cold, mt)                  \
    X(moves_to_warm, cs.ops.moves_to_warm, mt)                  \
    X(moves_within_lru, cs.ops.moves_within_lru, mt)            \
    X(direct_reclaims, cs.ops.direct_reclaims, mt)              \
    X(hits_to_hot, cs.ops.hits_to_hot, mt)                      \
    X(hits_to_warm, cs.ops.hits_to_warm, mt)                    \
    X(hits_to_cold, cs.ops.hits_to_cold, mt)                    \
    X(hits_to_temp, cs.ops.hits_to_temp, mt)

void
stats_text_items(struct reply_buf *out)
{
    unsigned n = cache_class_count();
    bool mt = cache_maintainer();
    struct cache_lru_tuning lru;
    cache_lru_get(&lru);
    for (unsigned i = 0; i < n; i++) {
        struct cache_class_stats cs;
        cache_class_stats_get(i, &cs);
        if (cs.number == 0)
            continue;
#define ITEMS_LINE(name, value, cond) \
        if (cond)                     \
            reply_printf(out, "STAT items:%u:" #name " %llu\r\n", cs.id, U64(value));
        STATS_ITEMS(ITEMS_LINE)
#undef ITEMS_LINE
    }
    reply_add(out, "END\r\n", 5);
}

/* name, value: `stats slabs` per class. */
#define STATS_SLABS(X)                          \
    X(chunk_size, cs.chunk_size)                \
    X(chunks_per_page, cs.chunks_per_page)      \
    X(total_pages, cs.total_pages)              \
    X(total_chunks, cs.total_chunks)            \
    X(used_chunks, cs.used_chunks)              \
    X(free_chunks, cs.free_chunks)              \
    X(free_chunks_end, cs.free_chunks_end)      \
    X(get_hits, cs.ops.get_hits)                \
    X(cmd_set, cs.ops.cmd_set)                  \
    X(delete_hits, cs.ops.delete_hits)          \
    X(incr_hits, cs.ops.incr_hits)              \
    X(decr_hits, cs.ops.decr_hits)              \
    X(cas_hits, cs.ops.cas_hits)                \
    X(cas_badval, cs.ops.cas_badval)            \
    X(touch_hits, cs.ops.touch_hits)

void
stats_text_slabs(struct reply_buf *out)
{
    unsigned n = cache_class_count();
    unsigned active = 0;
    for (unsigned i = 0; i < n; i++) {
        struct cache_class_stats cs;
        cache_class_stats_get(i, &cs);
        if (cs.total_pages == 0)
            continue;
        active++;
#define SLABS_LINE(name, value) \
        reply_printf(out, "STAT %u:" #name " %llu\r\n", cs.id, U64(value));
        STATS_SLABS(SLABS_LINE)
#undef SLABS_LINE
    }
    struct cache_stats st;
    cache_stats_get(&st);
    reply_printf(out, "STAT active_slabs %u\r\n", active);
    reply_printf(out, "STAT total_malloced %llu\r\n", U64(st.total_malloced));
    reply_add(out, "END\r\n", 5);
}

static void
stats_size_line(uint32_t size, uint64_t count, void *arg)
{
    reply_printf(arg, "STAT %u %llu\r\n", size, U64(count));
}

void
stats_text_sizes(struct net_shared *sh, struct reply_buf *out)
{
    /* memcached reports sizes only with -o track_sizes. */
    if (!sh->opts.track_sizes)
        reply_add(out, "STAT sizes_status disabled\r\n", 28);
    else
        cache_sizes_foreach(stats_size_line, out);
    reply_add(out, "END\r\n", 5);
}

static const char *
stats_state_name(int state)
{
    switch (state) {
    case CONN_PARSE: return "conn_parse_cmd";
    case CONN_NREAD: return "conn_nread";
    case CONN_SWALLOW: return "conn_swallow";
    case CONN_WATCH:
    case CONN_DUMP: return "conn_watch";
    case CONN_WAIT: return "conn_io_queue";
    default: return "conn_mwrite";
    }
}

void
stats_text_conns(struct net_shared *sh, struct reply_buf *out)
{
    listener_stats_conns(out);
    uint32_t now = clock_now();
    for (unsigned i = 0; i < sh->nworkers; i++) {
        struct worker *w = &sh->workers[i];
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *c = w->conns; c != NULL; c = c->next) {
            uint32_t last = atomic_load_explicit(&c->last_cmd_time, memory_order_relaxed);
            int st = atomic_load_explicit(&c->stat_state, memory_order_relaxed);
            reply_printf(out, "STAT %d:addr %s\r\n", c->fd, c->peer);
            reply_printf(out, "STAT %d:listen_addr %s\r\n", c->fd, c->listen_name);
            reply_printf(out, "STAT %d:state %s\r\n", c->fd, stats_state_name(st));
            reply_printf(out, "STAT %d:secs_since_last_cmd %u\r\n", c->fd, now - last);
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
    reply_add(out, "END\r\n", 5);
}

void
stats_text_reset(struct net_shared *sh)
{
    cache_stats_reset();
    pthread_mutex_lock(&sh->reset_lock);
    memset(&sh->base, 0, sizeof(sh->base));
    for (unsigned i = 0; i < sh->nworkers; i++) {
        struct worker *w = &sh->workers[i];
#define STATS_BASE(name) \
        sh->base.name += atomic_load_explicit(&w->stats.name, memory_order_relaxed);
        NET_THREAD_STATS(STATS_BASE)
#undef STATS_BASE
    }
    sh->base.total_conns = atomic_load(&sh->total_conns);
    sh->base.rejected_conns = atomic_load(&sh->rejected_conns);
    pthread_mutex_unlock(&sh->reset_lock);
}
