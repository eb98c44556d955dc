/* bus: the bus's one state (bus_internal.h), its set-up and tear-down, and
 * `stats bus`. Set-up fills the read-only part before the bus thread starts;
 * tear-down shuts publishers out first, then stops the thread, then frees.
 * Stats read every part under its own lock, one lock at a time. */
#include "bus/bus.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"
#include "src/log.h"

struct bus_state bus = {
    .pub_lock = PTHREAD_MUTEX_INITIALIZER,
    .send_lock = PTHREAD_MUTEX_INITIALIZER,
    .peers_lock = PTHREAD_MUTEX_INITIALIZER,
    .batch_fd = -1,
    .tick_fd = -1,
};

const char *const bus_metric_names[BUS_METRIC_COUNT] = {
#define BUS_METRIC_NAME(name) #name,
    BUS_METRICS(BUS_METRIC_NAME)
#undef BUS_METRIC_NAME
};

const enum bus_metric bus_flush_metric[BUS_FLUSH_REASON_COUNT] = {
#define BUS_FLUSH_METRIC(name) M_flush_##name,
    BUS_FLUSH_REASONS(BUS_FLUSH_METRIC)
#undef BUS_FLUSH_METRIC
};

#define BUS_OPTION_ROW(...) OPTION_ROW(struct bus_options, __VA_ARGS__)
const struct option_row bus_option_rows[] = { BUS_OPTIONS(BUS_OPTION_ROW, BUS_OPTION_ROW) };
#undef BUS_OPTION_ROW
const size_t bus_option_nrows = sizeof(bus_option_rows) / sizeof(bus_option_rows[0]);

void
bus_options_default(struct bus_options *opts)
{
    char err[256];
    memset(opts, 0, sizeof(*opts));
    /* Every default is a row's; a test checks that each one parses. */
    (void)option_defaults(bus_option_rows, bus_option_nrows, opts, err, sizeof(err));
}

bool
bus_enabled(const struct bus_options *opts)
{
    return (opts->group && *opts->group) || (opts->listen && *opts->listen);
}

uint32_t
bus_node_id(void)
{
    return bus.node_id;
}

/* --- lifecycle ------------------------------------------------------------------------ */

static uint32_t
or_default(uint32_t v, uint32_t d)
{
    return v ? v : d;
}

static void
release_all(void)
{
    bus_loop_destroy();
    mcast_close(&bus.ep);
    bus_ring_destroy(bus.ring);
    bus.ring = NULL;
    bus_send_release();
    pthread_mutex_lock(&bus.peers_lock);
    free(bus.peers);
    bus.peers = NULL;
    bus.npeers = 0;
    bus_floors_deinit(&bus.floors);
    pthread_mutex_unlock(&bus.peers_lock);
    sodium_memzero(bus.key, sizeof(bus.key));
    bus.node_id = 0;
}

bool
bus_setup(const struct bus_options *opts, char *err, size_t errlen)
{
    if (bus.thread_started) {
        snprintf(err, errlen, "bus: already running");
        return false;
    }
    bus.ep.fd = bus.ep.group_fd = -1;
    bus.batch_fd = bus.tick_fd = -1;
    atomic_store(&bus.pending, false);
    atomic_store(&bus.last_data_ns, 0);
    atomic_store(&bus.due_ns, 0);
    if (!bus_crypto_setup()) {
        snprintf(err, errlen, "bus: libsodium failed to initialise");
        return false;
    }
    bus.sealed = opts->key_file && *opts->key_file;
    if (bus.sealed && opts->insecure) {
        snprintf(err, errlen, "bus: --bus-key-file and --bus-insecure contradict each other: "
                              "give one");
        return false;
    }
    /* Secure by default: an open bus lets anyone who can send it a datagram
     * flush every node's cache, and make nodes send datagrams. */
    if (!bus.sealed && !opts->insecure) {
        snprintf(err, errlen, "bus: no --bus-key-file. Make a key once, " BUS_KEY_RECIPE
                              ", give every node a copy (--bus-key-file bus.key), or accept an "
                              "unauthenticated bus with --bus-insecure");
        return false;
    }
    if (bus.sealed && !bus_crypto_load_key(opts->key_file, bus.key, err, errlen))
        return false;
    if (opts->node_id > UINT32_MAX) {
        snprintf(err, errlen, "--bus-node-id %" PRIu64 ": want 1..%" PRIu32, opts->node_id,
                 UINT32_MAX);
        return false;
    }
    uint32_t ring_size = or_default(opts->ring_size, 1024);
    if (ring_size > BUS_PEER_WINDOW) {
        snprintf(err, errlen, "bus: ring size %" PRIu32 " above %d", ring_size, BUS_PEER_WINDOW);
        return false;
    }
    if (!mcast_open(&bus.ep, opts->group, opts->interface, opts->ttl, opts->listen, opts->peers,
                    err, errlen))
        return false;
    if (opts->sync && bus.ep.multicast && opts->sync_nodes == 0) {
        snprintf(err, errlen, "--bus-sync in multicast mode needs --bus-sync-nodes N, the number "
                              "of nodes in the fleet (a node serves hits only while it holds "
                              "leases from N-1 peers)");
        mcast_close(&bus.ep);
        return false;
    }
    if (opts->sync && !bus.ep.multicast && opts->sync_nodes > bus.ep.npeers + 1) {
        snprintf(err, errlen, "--bus-sync-nodes %" PRIu32 ": more than --bus-peers and this node "
                              "(%zu)", opts->sync_nodes, bus.ep.npeers + 1);
        mcast_close(&bus.ep);
        return false;
    }

    bus.node_id = (uint32_t)opts->node_id;
    while (bus.node_id == 0)
        bus.node_id = randombytes_random();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Wall-clock microseconds: grows across restarts, which replay checks need. */
    bus.epoch = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
    /* Looped-back own datagrams stop in the kernel; own_ignored then counts
     * only what slips past (unicast mode, or a kernel without the filter). */
    (void)mcast_ignore_node(&bus.ep, bus.node_id, bus.epoch);
    bus.flush_delay_ns = (int64_t)opts->flush_delay_us * 1000;
    bus.heartbeat_us = (int64_t)or_default(opts->heartbeat_ms, 100) * 1000;
    bus.announce_window_ms = opts->announce_window_ms;
    bus.timing.nack_interval_us = (int64_t)or_default(opts->nack_interval_ms, 30) * 1000;
    bus.timing.nack_min_us = (int64_t)or_default(opts->nack_min_us, 500);
    if (bus.timing.nack_min_us > bus.timing.nack_interval_us)
        bus.timing.nack_min_us = bus.timing.nack_interval_us;
    bus.timing.nack_delay_us = 0;
    bus.timing.nack_jitter_us = 0;  /* grows with a multicast fleet (receive.c) */
    bus.tail_repeat_us = opts->no_tail_repeat ? 0 : BUS_TAIL_REPEAT_US;
    bus.ration_us = or_default(opts->ration_us, 250);
    bus.repair_window_us = (int64_t)or_default(opts->repair_window_ms, 15) * 1000;
    memset(bus.repair_budget, 0, sizeof(bus.repair_budget));
    bus.timing.repair_deadline_us = (int64_t)or_default(opts->repair_deadline_ms, 500) * 1000;
    bus.timing.peer_timeout_us = (int64_t)or_default(opts->peer_timeout_ms, 1000) * 1000;
    bus.forget_us = (int64_t)or_default(opts->forget_ms, BUS_FORGET_MS) * 1000;
    bus.ctl_seq = 0;
    bus.leaving = false;
    bus.warned_duplicate_id = bus.warned_epoch_back = bus.warned_stale_epoch = false;
    bus.warned_peers_full = false;
    atomic_store(&bus.data_seq, 0);
    for (int i = 0; i < BUS_METRIC_COUNT; i++)
        atomic_store(&bus.m[i], 0);
    bus_recent_init(&bus.recent);
    bus_sync_setup(opts);

    bus.ring = bus_ring_create(ring_size, WIRE_DATAGRAM_MAX);
    bus.peers = calloc(BUS_PEERS_MAX, sizeof(*bus.peers));
    bus.cur = malloc(sizeof(*bus.cur));
    if (!bus.ring || !bus.peers || !bus.cur || !bus_floors_init(&bus.floors) ||
        !bus_loop_create()) {
        snprintf(err, errlen, "bus: out of memory or file descriptors");
        release_all();
        return false;
    }
    bus_batch_init(bus.cur);

    pthread_mutex_lock(&bus.pub_lock);
    bus.running = true;
    pthread_mutex_unlock(&bus.pub_lock);
    if (!bus_loop_start(err, errlen)) {
        pthread_mutex_lock(&bus.pub_lock);
        bus.running = false;
        pthread_mutex_unlock(&bus.pub_lock);
        release_all();
        return false;
    }

    char where[64] = "";
    if (bus.ep.multicast)
        mcast_format_addr((struct sockaddr *)&bus.ep.group, where, sizeof(where));
    log_info("bus: node %" PRIu32 " epoch %" PRIu64 " on %s%s", bus.node_id, bus.epoch,
             bus.ep.multicast ? "multicast " : "unicast ",
             bus.ep.multicast ? where : opts->listen);
    if (!bus.sealed)
        log_error("bus: unauthenticated (--bus-insecure): anyone who can reach the bus "
                  "can drop or flush this node's keys");
    return true;
}

void
bus_teardown(void)
{
    pthread_mutex_lock(&bus.pub_lock);
    bool was_running = bus.running;
    bus.running = false;
    pthread_mutex_unlock(&bus.pub_lock);
    if (!was_running && !bus.thread_started)
        return;
    bus_loop_stop();
    release_all();
}

/* --- stats ------------------------------------------------------------------------------ */

static void
emit_u64(bus_stat_fn emit, void *ctx, const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    emit(name, buf, ctx);
}

void
bus_stats(bus_stat_fn emit, void *ctx)
{
    pthread_mutex_lock(&bus.pub_lock);
    bool running = bus.running;
    pthread_mutex_unlock(&bus.pub_lock);
    emit_u64(emit, ctx, "enabled", running);
    if (!running)
        return;
    int64_t now = bus_now_us();
    emit_u64(emit, ctx, "node_id", bus.node_id);
    emit_u64(emit, ctx, "epoch", bus.epoch);
    emit("mode", bus.ep.multicast ? "multicast" : "unicast", ctx);
    emit_u64(emit, ctx, "authenticated", bus.sealed);
    emit_u64(emit, ctx, "announce_window_ms", (uint64_t)bus.announce_window_ms);
    emit_u64(emit, ctx, "last_seq", atomic_load(&bus.data_seq));
    emit_u64(emit, ctx, "sync", bus.sync);
    if (bus.sync) {
        /* The read lease: how long this node may still serve hits. */
        int64_t until = atomic_load(&bus.lease_until_ns);
        int64_t left = until == INT64_MAX ? INT64_MAX : until / 1000 - now;
        emit_u64(emit, ctx, "sync_nodes", bus.sync_need + 1);
        emit_u64(emit, ctx, "lease_ms", (uint64_t)(bus.lease_us / 1000));
        emit_u64(emit, ctx, "lease_left_ms",
                 left == INT64_MAX ? UINT64_MAX : left > 0 ? (uint64_t)left / 1000 : 0);
        emit_u64(emit, ctx, "sync_done", atomic_load(&bus.sync_done));
    }
    for (int i = 0; i < BUS_METRIC_COUNT; i++)
        emit_u64(emit, ctx, bus_metric_names[i], atomic_load_explicit(&bus.m[i], memory_order_relaxed));

    pthread_mutex_lock(&bus.peers_lock);
    emit_u64(emit, ctx, "peers", bus.npeers);
    uint64_t data_seq = atomic_load(&bus.data_seq);
    for (size_t i = 0; i < bus.npeers; i++) {
        const struct bus_peer *p = &bus.peers[i];
        char name[64], value[64];
#define PEER_U64(field, v)                                                       \
    do {                                                                         \
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":" field, p->node_id);     \
        emit_u64(emit, ctx, name, (v));                                          \
    } while (0)
        PEER_U64("epoch", p->epoch);
        PEER_U64("last_seq", p->high);
        PEER_U64("acked", p->acked);
        /* A lagging peer: datagrams of it known and not applied, and how
         * long the oldest of them has been missing. */
        PEER_U64("lag_seqs", bus_peer_lag_seqs(p));
        PEER_U64("lag_ms", (uint64_t)(bus_peer_lag_us(p, now) / 1000));
        int64_t age = now - p->last_heard_us;
        PEER_U64("last_heard_ms", age > 0 ? (uint64_t)age / 1000 : 0);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":state", p->node_id);
        emit(name, bus_peer_state_name(p->state), ctx);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":addr", p->node_id);
        mcast_format_addr((const struct sockaddr *)&p->addr, value, sizeof(value));
        emit(name, p->addrlen ? value : "-", ctx);
        PEER_U64("nacks_sent", p->nacks);
        PEER_U64("nacks_suppressed", p->nacks_suppressed);
        PEER_U64("repairs_received", p->repairs);
        PEER_U64("nacks_received", p->nacks_in);
        PEER_U64("repairs_served", p->repairs_served);
        PEER_U64("rtt_us", (uint64_t)p->srtt_us);
        if (bus.sync) {
            /* Its lease to us (what we may use), ours to it, and how far
             * behind our stream it says it is. */
            const struct bus_lease *l = &p->lease;
            PEER_U64("lease_left_ms", l->until_us > now ? (uint64_t)(l->until_us - now) / 1000 : 0);
            int64_t end = bus_lease_last_end(l);
            PEER_U64("granted_left_ms", end > now ? (uint64_t)(end - now) / 1000 : 0);
            PEER_U64("acked_ours", l->acked_ours);
            PEER_U64("behind_ours", data_seq > l->acked_ours ? data_seq - l->acked_ours : 0);
            PEER_U64("ack_age_ms", l->acked_at_us && now > l->acked_at_us
                                       ? (uint64_t)(now - l->acked_at_us) / 1000 : 0);
        }
#undef PEER_U64
    }
    pthread_mutex_unlock(&bus.peers_lock);
}
