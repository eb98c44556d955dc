/* bus: the bus thread (one libev loop: sockets, batch timer, tick timer, wake
 * and stop asyncs), the publish side that worker threads call, and `stats
 * bus`. Invariants: DATA datagrams are numbered, kept in the ring and sent
 * under send_lock, by whichever thread finds a batch due (bus_publish_poll:
 * usually a publishing worker between two loop iterations, so a busy node
 * never wakes the bus thread for its keys); everything else on the sockets
 * belongs to the bus thread. Received invalidations go to the cache and never
 * back onto the bus, except the one rule below ("differs -> announce").
 *
 * Differs -> announce. A peer's set-like invalidation carries the new value's
 * hash; cache_drop keeps a copy with that hash and drops any other. When it
 * drops a copy that this node itself published lately, the two nodes raced
 * (typically a read-through fill of an old DB read landing after the other's
 * write): the peer may now hold a value we just judged different, so we
 * announce a plain delete of the key. The announcement carries no hash, and a
 * hashless invalidation never triggers an announcement, so every client write
 * causes at most one announcement per node and nothing ever echoes back.
 * Copies that were not written here lately are dropped silently, so an
 * ordinary write to a popular key does not make every node answer. */
#include "bus/bus.h"

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bus/batch.h"
#include "bus/crypto.h"
#include "bus/mcast.h"
#include "bus/peer.h"
#include "bus/recent.h"
#include "bus/ring.h"
#include "bus/wire.h"
#include "cache/cache.h"
#include "src/log.h"

#define BUS_METRICS(X)                                                          \
    X(datagrams_sent)       /* every datagram, repairs and control included */ \
    X(datagrams_received)   /* every datagram read from a socket */             \
    X(batches_sent)         /* DATA datagrams, first transmission */            \
    X(keys_published)       /* local changes handed to the bus */              \
    X(keys_merged)          /* ... merged into a record of the same batch */    \
    X(keys_sent)            /* key records in DATA datagrams sent */            \
    X(flushes_published)                                                        \
    X(keys_received)        /* key records applied from peers */                \
    X(keys_dropped)         /* ... that dropped a local copy */                 \
    X(keys_kept)            /* ... whose value hash matched our copy */         \
    X(keys_missed)          /* ... with no local copy */                        \
    X(flushes_received)                                                         \
    X(announces)            /* deletes announced after a racing copy differed */\
    X(heartbeats_sent)                                                          \
    X(heartbeats_received)                                                      \
    X(gaps)                 /* times holes opened in a peer's sequence */       \
    X(nacks_sent)                                                               \
    X(nacks_received)                                                           \
    X(repairs_sent)         /* DATA datagrams resent for a NACK */              \
    X(repairs_received)     /* DATA datagrams that filled a hole */             \
    X(gones_sent)           /* "no longer in my ring" answers */                \
    X(gones_received)                                                           \
    X(unrepairable_flushes) /* whole-cache flushes for lost datagrams, sum of: */\
    X(flush_deadline)                                                           \
    X(flush_gone)                                                               \
    X(flush_restart)                                                            \
    X(flush_timeout)                                                            \
    X(flush_too_far)                                                            \
    X(join_flushes)         /* first contact with unknown history, cache not empty */ \
    X(restarts)             /* a peer came back with a new epoch */             \
    X(auth_failures)        /* forged, corrupt, or sealed/clear mismatch */     \
    X(replays)              /* duplicate or older (epoch, seq) */               \
    X(malformed)            /* truncated or not a bus datagram */               \
    X(own_ignored)          /* our own datagrams, looped back */                \
    X(send_errors)                                                              \
    X(overflows)            /* publishers outran the send queue: fleet flushed */ \
    X(peers_evicted)

enum bus_metric {
#define BUS_METRIC_ENUM(name) M_##name,
    BUS_METRICS(BUS_METRIC_ENUM)
#undef BUS_METRIC_ENUM
    BUS_METRIC_COUNT
};

static const char *const metric_names[] = {
#define BUS_METRIC_NAME(name) #name,
    BUS_METRICS(BUS_METRIC_NAME)
#undef BUS_METRIC_NAME
};

static const enum bus_metric flush_metric[BUS_FLUSH_REASON_COUNT] = {
#define BUS_FLUSH_METRIC(name) M_flush_##name,
    BUS_FLUSH_REASONS(BUS_FLUSH_METRIC)
#undef BUS_FLUSH_METRIC
};

#define BUS_PEERS_MAX 256
#define BUS_READY_MAX 4096      /* full batches waiting: ~5.6 MB at most */
#define BUS_REPAIRS_PER_NACK 128
#define BUS_RECV_BURST 64       /* datagrams per readiness event, so timers run */
#define BUS_TICK_FAST_US 5000
/* A heartbeat follows every DATA datagram within this long, so a lost last
 * datagram of a burst is noticed in milliseconds, not a heartbeat interval. */
#define BUS_TAIL_HEARTBEAT_US 10000
/* A lost or departed peer is forgotten after this long; then even an older
 * epoch from its id is accepted (a restart after a backwards clock step). */
#define BUS_FORGET_US (10 * 1000000LL)
#define BUS_LINGER_S 0.06       /* two NACK rounds */

static struct {
    /* Set once by bus_setup before the thread starts; read-only after. */
    uint32_t node_id;
    uint64_t epoch;
    bool sealed;
    uint8_t key[BUS_KEY_SIZE];
    int64_t flush_delay_ns;
    int64_t heartbeat_us;
    int64_t announce_window_ms;
    struct bus_peer_timing timing;
    struct mcast_endpoints ep;
    struct ev_loop *loop;
    pthread_t thread;
    bool thread_started;

    /* Publish side: worker threads, under pub_lock. */
    pthread_mutex_t pub_lock;
    bool running;
    struct bus_batch *cur;
    int64_t cur_since_ns;       /* when cur got its first record */
    /* Something waits to be sent, and from when it is due: written under
     * the lock, read without it by bus_publish_poll, which workers call
     * often enough that the lock must stay out of the way until then. */
    _Atomic bool pending;
    _Atomic int64_t due_ns;
    struct bus_batch *ready[BUS_READY_MAX];
    size_t nready;
    struct bus_batch *spare[BUS_READY_MAX];
    size_t nspare;
    bool overflow;
    struct bus_recent recent;

    /* DATA sending, from any thread: the ring, data_seq, ordered sends.
     * Lock order: send_lock, then pub_lock. */
    pthread_mutex_t send_lock;
    struct bus_ring *ring;
    _Atomic int64_t last_data_ns;   /* when the last DATA datagram went out */
    /* DATA went out since the last heartbeat: the bus thread owes a tail
     * heartbeat (set by senders, who wake it once per tail). */
    _Atomic bool tail_owed;

    /* Bus thread only. */
    ev_io group_io, fd_io;
    ev_async wake, stop;
    /* Due time of the bus thread's own batches (announcements). The delay is
     * sub-millisecond and libev's epoll backend rounds timer waits up to
     * whole milliseconds, so it runs on a timerfd. */
    int batch_fd;
    ev_io batch_io;
    ev_timer tick, linger;
    bool announced;             /* read_cb queued announcements */
    uint64_t ctl_seq;
    int64_t next_heartbeat_us;

    /* Peers: written by the bus thread, read by bus_stats, under peers_lock. */
    pthread_mutex_t peers_lock;
    struct bus_peer *peers;
    size_t npeers;

    _Atomic uint64_t data_seq;
    _Atomic uint64_t m[BUS_METRIC_COUNT];
} bus = {
    .pub_lock = PTHREAD_MUTEX_INITIALIZER,
    .send_lock = PTHREAD_MUTEX_INITIALIZER,
    .peers_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void
count(enum bus_metric m, uint64_t n)
{
    atomic_fetch_add_explicit(&bus.m[m], n, memory_order_relaxed);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    /* The coarse clock is a vDSO read: no syscall on the publish path. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

/* Our own clock rather than ev_now(), so bus_stats can read peer ages from
 * another thread against the same time base. */
static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
now_us(void)
{
    return mono_ns() / 1000;
}

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

/* --- publish side (worker threads) ---------------------------------------- */

static struct bus_batch *
batch_get_locked(void)
{
    if (bus.nspare)
        return bus.spare[--bus.nspare];
    struct bus_batch *b = malloc(sizeof(*b));
    if (b)
        bus_batch_init(b);
    return b;
}

static void
batch_put_locked(struct bus_batch *b)
{
    bus_batch_reset(b);
    if (bus.nspare < BUS_READY_MAX)
        bus.spare[bus.nspare++] = b;
    else
        free(b);
}

/* Moves the full current batch to the ready queue. When that cannot be done
 * the batch's keys are lost, so the peers are told to flush instead. */
static void
rotate_locked(void)
{
    struct bus_batch *next = batch_get_locked();
    if (!next || bus.nready == BUS_READY_MAX) {
        bus.overflow = true;
        atomic_store_explicit(&bus.due_ns, 0, memory_order_relaxed);
        bus_batch_reset(bus.cur);
        if (next)
            batch_put_locked(next);
        return;
    }
    bus.ready[bus.nready++] = bus.cur;
    bus.cur = next;
    atomic_store_explicit(&bus.due_ns, 0, memory_order_relaxed); /* a full batch goes now */
}

/* When cur, first recorded at since, may go: Nagle's rule, see flush_due. */
static int64_t
due_locked(int64_t since)
{
    int64_t last = atomic_load_explicit(&bus.last_data_ns, memory_order_relaxed);
    return (last < since ? last : since) + bus.flush_delay_ns;
}

/* Starts cur's clock when it gets its first record. */
static void
note_first_locked(void)
{
    if (bus_batch_empty(bus.cur)) {
        bus.cur_since_ns = mono_ns();
        /* Full batches waiting are due now, whatever cur's clock says. */
        if (bus.nready == 0 && !bus.overflow)
            atomic_store_explicit(&bus.due_ns, due_locked(bus.cur_since_ns),
                                  memory_order_relaxed);
    }
}

static void
add_invalidate_locked(const char *key, size_t nkey, bool has_hash, uint64_t hash)
{
    note_first_locked();
    enum bus_batch_result r = bus_batch_add_invalidate(bus.cur, key, nkey, has_hash, hash);
    if (r == BUS_BATCH_FULL) {
        rotate_locked();
        note_first_locked();
        r = bus_batch_add_invalidate(bus.cur, key, nkey, has_hash, hash);
    }
    if (r == BUS_BATCH_MERGED)
        count(M_keys_merged, 1);
    atomic_store_explicit(&bus.pending, true, memory_order_relaxed);
}

void
bus_publish_invalidate(const char *key, size_t nkey, bool has_hash, uint64_t value_hash)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX)
        return;
    int64_t t = mono_ms();
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        count(M_keys_published, 1);
        bus_recent_note(&bus.recent, key, nkey, t);
        add_invalidate_locked(key, nkey, has_hash, value_hash);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

void
bus_publish_flush(int64_t delay)
{
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        count(M_flushes_published, 1);
        note_first_locked();
        if (bus_batch_add_flush(bus.cur, delay) == BUS_BATCH_FULL) {
            rotate_locked();
            note_first_locked();
            if (bus_batch_add_flush(bus.cur, delay) == BUS_BATCH_FULL)
                bus.overflow = true;
        }
        atomic_store_explicit(&bus.pending, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

/* --- sending (DATA from any thread, control from the bus thread) ---------------- */

static const uint8_t *
seal_key(void)
{
    return bus.sealed ? bus.key : NULL;
}

static void
sent(size_t ndatagrams, unsigned failures)
{
    count(M_datagrams_sent, ndatagrams - failures);
    if (failures)
        count(M_send_errors, failures);
}

/* Under send_lock. */
static void
send_payload_data(const uint8_t *payload, size_t plen, unsigned nkeys)
{
    struct wire_header h = {
        .type = WIRE_DATA,
        .node_id = bus.node_id,
        .epoch = bus.epoch,
        .seq = atomic_load(&bus.data_seq) + 1,
    };
    uint8_t dgram[WIRE_DATAGRAM_MAX];
    size_t n = bus_crypto_frame(seal_key(), &h, payload, plen, dgram, sizeof(dgram));
    if (n == 0)
        return; /* cannot happen: a batch never exceeds WIRE_PAYLOAD_MAX */
    bus_ring_put(bus.ring, h.seq, dgram, n);
    atomic_store(&bus.data_seq, h.seq);
    count(M_batches_sent, 1);
    count(M_keys_sent, nkeys);
    size_t fanout = bus.ep.multicast ? 1 : bus.ep.npeers;
    sent(fanout, mcast_send_all(&bus.ep, dgram, n));
    atomic_store_explicit(&bus.last_data_ns, mono_ns(), memory_order_relaxed);
    /* One wake per tail, not per datagram: the flag stays set until the
     * heartbeat that pays it goes out. */
    if (!atomic_exchange(&bus.tail_owed, true))
        ev_async_send(bus.loop, &bus.wake);
}

static void
send_batch(struct bus_batch *b)
{
    if (!bus_batch_empty(b))
        send_payload_data(b->payload, b->len, b->nkeys);
}

/* to == NULL: to the group or every peer. */
static void
send_control(uint8_t type, const uint8_t *payload, size_t plen, const struct sockaddr *to,
             socklen_t tolen)
{
    struct wire_header h = {
        .type = type,
        .node_id = bus.node_id,
        .epoch = bus.epoch,
        .seq = ++bus.ctl_seq,
    };
    uint8_t dgram[WIRE_DATAGRAM_MAX];
    size_t n = bus_crypto_frame(seal_key(), &h, payload, plen, dgram, sizeof(dgram));
    if (n == 0)
        return;
    if (to)
        sent(1, mcast_send_to(&bus.ep, to, tolen, dgram, n) ? 0 : 1);
    else
        sent(bus.ep.multicast ? 1 : bus.ep.npeers, mcast_send_all(&bus.ep, dgram, n));
}

static void
send_heartbeat(bool leaving)
{
    /* Under send_lock, as DATA: a worker's datagram cannot slip between
     * reading last_seq and sending, so no heartbeat goes out after DATA it
     * does not count. Cleared first: DATA sent from here on is owed a later
     * heartbeat. */
    pthread_mutex_lock(&bus.send_lock);
    atomic_store(&bus.tail_owed, false);
    uint8_t p[WIRE_PAYLOAD_MAX];
    struct wire_heartbeat hb = {.last_seq = atomic_load(&bus.data_seq), .leaving = leaving};
    send_control(WIRE_HEARTBEAT, p, wire_put_heartbeat(p, &hb), NULL, 0);
    pthread_mutex_unlock(&bus.send_lock);
    count(M_heartbeats_sent, 1);
}

/* Sends every full batch, and the current one when it is due (at once with
 * force). Returns microseconds until the current batch is due, or -1 when
 * nothing waits.
 *
 * Due is Nagle's rule with a clock: a flush delay after the previous DATA
 * datagram, or after the batch's first record if that came later. On a quiet
 * bus a key goes out at once; under load partial datagrams leave at most once
 * a delay, and no record ever waits longer than the delay. */
static int64_t
flush_due(bool force)
{
    struct bus_batch *out[BUS_READY_MAX + 1];
    int64_t wait = -1;
    /* send_lock first and throughout: batches get their sequence numbers in
     * the order they were taken, so a key's newer record never goes out
     * before an older one (a receiver keeps a copy whose hash matches the
     * last record it applied). Publishers only wait for the take. */
    pthread_mutex_lock(&bus.send_lock);
    pthread_mutex_lock(&bus.pub_lock);
    size_t n = bus.nready;
    memcpy(out, bus.ready, n * sizeof(out[0]));
    bus.nready = 0;
    bool overflow = bus.overflow;
    bus.overflow = false;
    if (!bus_batch_empty(bus.cur)) {
        int64_t due = due_locked(bus.cur_since_ns), now = mono_ns();
        int64_t left = due - now;
        struct bus_batch *next = force || left <= 0 ? batch_get_locked() : NULL;
        if (next) {
            out[n++] = bus.cur;
            bus.cur = next;
        } else {
            /* Not due yet (or no memory for a fresh batch: try again soon). */
            wait = left > 0 ? (left + 999) / 1000 : 1000;
            atomic_store_explicit(&bus.due_ns, left > 0 ? due : now + 1000000,
                                  memory_order_relaxed);
        }
    }
    atomic_store_explicit(&bus.pending, !bus_batch_empty(bus.cur), memory_order_relaxed);
    pthread_mutex_unlock(&bus.pub_lock);
    if (n == 0 && !overflow) {
        pthread_mutex_unlock(&bus.send_lock);
        return wait;
    }
    for (size_t i = 0; i < n; i++)
        send_batch(out[i]);
    if (overflow) {
        /* Some keys never made it into a datagram: the peers must flush. */
        uint8_t p[WIRE_FLUSH_SIZE];
        size_t len = 0;
        wire_put_flush(p, sizeof(p), &len, 0);
        send_payload_data(p, len, 0);
        count(M_overflows, 1);
    }
    pthread_mutex_unlock(&bus.send_lock);
    if (overflow)
        log_error("bus: publishers outran the send queue; asked the peers to flush");
    pthread_mutex_lock(&bus.pub_lock);
    for (size_t i = 0; i < n; i++)
        batch_put_locked(out[i]);
    pthread_mutex_unlock(&bus.pub_lock);
    return wait;
}

int64_t
bus_publish_poll(void)
{
    if (!atomic_load_explicit(&bus.pending, memory_order_relaxed))
        return -1;
    /* Not due: answer without the lock. A hint read stale is at most one
     * flush delay ahead, or in the past, which only costs the lock. */
    int64_t left = atomic_load_explicit(&bus.due_ns, memory_order_relaxed) - mono_ns();
    if (left > 0)
        return (left + 999) / 1000;
    return flush_due(false);
}

/* The bus thread's own publications (announcements) have no worker to send
 * them: after announcing, it sets its timerfd for the batch they joined. One
 * shot is enough: when it fires that batch is due, unless someone sent it
 * already. Never re-armed for workers' batches, which their workers send. */
static void
bus_thread_flush_later(void)
{
    int64_t wait = flush_due(false);
    if (wait < 0)
        return;
    int64_t ns = wait > 0 ? wait * 1000 : 1; /* zero would disarm */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(ns / 1000000000),
                                          .tv_nsec = (long)(ns % 1000000000)}};
    timerfd_settime(bus.batch_fd, 0, &its, NULL);
}

/* A sender owes the peers a tail heartbeat: bring the next one forward. */
static void
wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    if (!atomic_load(&bus.tail_owed))
        return;
    int64_t tail = now_us() + BUS_TAIL_HEARTBEAT_US;
    if (tail < bus.next_heartbeat_us) {
        bus.next_heartbeat_us = tail;
        if (bus.tick.repeat > BUS_TAIL_HEARTBEAT_US / 1e6) {
            bus.tick.repeat = BUS_TAIL_HEARTBEAT_US / 1e6;
            ev_timer_again(loop, &bus.tick);
        }
    }
}

static void
batch_timer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    uint64_t expirations;
    ssize_t n = read(w->fd, &expirations, sizeof(expirations));
    (void)n; /* EAGAIN after a re-arm race: the flush below is harmless */
    (void)flush_due(false);
}

/* --- receiving (bus thread) ---------------------------------------------------- */

static void
unrepairable(enum bus_flush_reason why, uint32_t node_id)
{
    cache_flush(0);
    count(M_unrepairable_flushes, 1);
    count(flush_metric[why], 1);
    log_info("bus: flushed the cache: lost datagrams of node %" PRIu32 " cannot be repaired (%s)",
             node_id, metric_names[flush_metric[why]] + strlen("flush_"));
}

static void
act(struct bus_peer *p, const struct bus_peer_event *ev)
{
    if (ev->new_epoch)
        count(M_restarts, 1);
    if (ev->flush)
        unrepairable(ev->reason, p->node_id);
    if (ev->join_unknown) {
        /* Its earlier datagrams may have invalidated keys we filled before
         * hearing it. An empty cache has nothing to lose, so check first. */
        struct cache_stats st;
        cache_stats_get(&st);
        if (st.curr_items > 0) {
            cache_flush(0);
            count(M_join_flushes, 1);
        }
    }
    if (ev->gap) {
        count(M_gaps, 1);
        /* Wake the tick soon enough for the first NACK. */
        if (bus.tick.repeat > BUS_TICK_FAST_US / 1e6) {
            bus.tick.repeat = BUS_TICK_FAST_US / 1e6;
            ev_timer_again(bus.loop, &bus.tick);
        }
    }
}

static struct bus_peer *
peer_find(uint32_t node_id)
{
    for (size_t i = 0; i < bus.npeers; i++)
        if (bus.peers[i].node_id == node_id)
            return &bus.peers[i];
    return NULL;
}

static struct bus_peer *
peer_add(uint32_t node_id, uint64_t epoch, int64_t now)
{
    struct bus_peer *p;
    if (bus.npeers < BUS_PEERS_MAX) {
        p = &bus.peers[bus.npeers++];
    } else {
        /* Full: replace the longest-silent peer, preferring ones not live. */
        p = &bus.peers[0];
        for (size_t i = 1; i < bus.npeers; i++) {
            struct bus_peer *q = &bus.peers[i];
            bool q_better = (q->state != BUS_PEER_LIVE) != (p->state != BUS_PEER_LIVE)
                                ? q->state != BUS_PEER_LIVE
                                : q->last_heard_us < p->last_heard_us;
            if (q_better)
                p = q;
        }
        count(M_peers_evicted, 1);
    }
    bus_peer_init(p, node_id, epoch, epoch > bus.epoch, now);
    return p;
}

static void
announce(const char *key, size_t nkey)
{
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running)
        add_invalidate_locked(key, nkey, false, 0);
    pthread_mutex_unlock(&bus.pub_lock);
    bus.announced = true;
    count(M_announces, 1);
}

static void
apply_data(const uint8_t *payload, size_t plen)
{
    size_t off = 0;
    struct wire_record r;
    int64_t t = mono_ms();
    while (off < plen && wire_next_record(payload, plen, &off, &r) == WIRE_OK) {
        if (r.op == WIRE_OP_FLUSH) {
            cache_flush(r.delay);
            count(M_flushes_received, 1);
            continue;
        }
        count(M_keys_received, 1);
        switch (cache_drop(r.key, r.nkey, r.has_hash, r.hash)) {
        case CACHE_OK: {
            count(M_keys_dropped, 1);
            bool racing = false;
            if (r.has_hash) {
                pthread_mutex_lock(&bus.pub_lock);
                racing = bus_recent_maybe(&bus.recent, r.key, r.nkey, t, bus.announce_window_ms);
                pthread_mutex_unlock(&bus.pub_lock);
            }
            if (racing)
                announce(r.key, r.nkey);
            break;
        }
        case CACHE_EXISTS:
            count(M_keys_kept, 1);
            break;
        default:
            count(M_keys_missed, 1);
            break;
        }
    }
}

static void
send_gone(uint32_t target, uint64_t epoch, const struct sockaddr *to, socklen_t tolen)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    pthread_mutex_lock(&bus.send_lock);
    uint64_t oldest = bus_ring_oldest(bus.ring);
    pthread_mutex_unlock(&bus.send_lock);
    struct wire_gone g = {.target = target, .epoch = epoch, .oldest = oldest};
    send_control(WIRE_GONE, p, wire_put_gone(p, &g), to, tolen);
    count(M_gones_sent, 1);
}

static void
serve_nack(uint32_t from, const struct wire_nack *n, const struct sockaddr *to, socklen_t tolen)
{
    count(M_nacks_received, 1);
    if (n->epoch != bus.epoch) {
        send_gone(from, n->epoch, to, tolen);
        return;
    }
    /* Held while repairing: a sender must not overwrite a slot being resent. */
    pthread_mutex_lock(&bus.send_lock);
    uint64_t oldest = bus_ring_oldest(bus.ring), newest = atomic_load(&bus.data_seq);
    bool gone = false;
    unsigned budget = BUS_REPAIRS_PER_NACK;
    for (unsigned i = 0; i < n->n && budget; i++) {
        uint64_t first = n->r[i].first, last = first + n->r[i].count - 1;
        if (first < oldest || oldest == 0)
            gone = true;
        if (first < oldest)
            first = oldest;
        if (last > newest)
            last = newest; /* never sent: nothing to repeat */
        for (uint64_t s = first; s <= last && budget && oldest; s++, budget--) {
            const uint8_t *d;
            size_t len;
            if (bus_ring_get(bus.ring, s, &d, &len)) {
                sent(1, mcast_send_to(&bus.ep, to, tolen, d, len) ? 0 : 1);
                count(M_repairs_sent, 1);
            }
        }
    }
    pthread_mutex_unlock(&bus.send_lock);
    if (gone)
        send_gone(from, n->epoch, to, tolen);
}

static void
handle_datagram(const uint8_t *buf, size_t len, const struct sockaddr *src, socklen_t srclen)
{
    struct wire_header h;
    if (wire_header_decode(buf, len, &h) != WIRE_OK) {
        count(M_malformed, 1);
        return;
    }
    if (h.node_id == bus.node_id) {
        count(M_own_ignored, 1);
        return;
    }
    uint8_t plain[WIRE_PAYLOAD_MAX];
    const uint8_t *payload;
    if (!bus_crypto_open(seal_key(), &h, buf, len, plain, &payload)) {
        count(M_auth_failures, 1);
        return;
    }
    /* Parse fully before touching any state: all of a datagram or none. */
    union {
        struct wire_heartbeat hb;
        struct wire_nack nack;
        struct wire_gone gone;
    } c;
    unsigned nrec;
    enum wire_result wr = WIRE_BAD_TYPE;
    switch (h.type) {
    case WIRE_DATA:
        wr = wire_check_data(payload, h.plen, &nrec);
        break;
    case WIRE_HEARTBEAT:
        wr = wire_get_heartbeat(payload, h.plen, &c.hb);
        break;
    case WIRE_NACK:
        wr = wire_get_nack(payload, h.plen, &c.nack);
        break;
    case WIRE_GONE:
        wr = wire_get_gone(payload, h.plen, &c.gone);
        break;
    }
    if (wr != WIRE_OK) {
        count(M_malformed, 1);
        return;
    }
    /* Control datagrams addressed to another node are none of our business. */
    if ((h.type == WIRE_NACK && c.nack.target != bus.node_id) ||
        (h.type == WIRE_GONE && c.gone.target != bus.node_id))
        return;

    int64_t now = now_us();
    struct bus_peer_event ev;
    enum bus_peer_verdict v;
    pthread_mutex_lock(&bus.peers_lock);
    struct bus_peer *p = peer_find(h.node_id);
    if (!p)
        p = peer_add(h.node_id, h.epoch, now);
    if (h.type == WIRE_DATA)
        v = bus_peer_data(p, h.epoch, h.seq, now, &bus.timing, &ev);
    else
        v = bus_peer_control(p, h.epoch, h.seq, now, &ev);
    if (v != BUS_PEER_FRESH) {
        pthread_mutex_unlock(&bus.peers_lock);
        count(M_replays, 1);
        return;
    }
    if (srclen <= sizeof(p->addr)) {
        memcpy(&p->addr, src, srclen);
        p->addrlen = srclen;
    }
    act(p, &ev);
    switch (h.type) {
    case WIRE_DATA:
        if (ev.repaired)
            count(M_repairs_received, 1);
        break;
    case WIRE_HEARTBEAT:
        count(M_heartbeats_received, 1);
        memset(&ev, 0, sizeof(ev));
        bus_peer_heartbeat(p, c.hb.last_seq, c.hb.leaving, now, &bus.timing, &ev);
        act(p, &ev);
        break;
    case WIRE_GONE:
        count(M_gones_received, 1);
        memset(&ev, 0, sizeof(ev));
        bus_peer_gone(p, c.gone.epoch, c.gone.oldest, &ev);
        act(p, &ev);
        break;
    }
    pthread_mutex_unlock(&bus.peers_lock);

    if (h.type == WIRE_DATA)
        apply_data(payload, h.plen);
    else if (h.type == WIRE_NACK)
        serve_nack(h.node_id, &c.nack, src, srclen);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    uint8_t buf[WIRE_DATAGRAM_MAX + 1];
    for (int i = 0; i < BUS_RECV_BURST; i++) {
        struct sockaddr_storage src;
        socklen_t srclen = sizeof(src);
        ssize_t n = recvfrom(w->fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&src, &srclen);
        if (n < 0)
            break; /* EAGAIN, or an ICMP error reported on the socket */
        count(M_datagrams_received, 1);
        if ((size_t)n > WIRE_DATAGRAM_MAX) {
            count(M_malformed, 1);
            continue;
        }
        handle_datagram(buf, (size_t)n, (struct sockaddr *)&src, srclen);
    }
    if (bus.announced) {
        bus.announced = false;
        bus_thread_flush_later();
    }
}

/* --- timers (bus thread) ---------------------------------------------------------- */

static void
send_nack(struct bus_peer *p)
{
    if (p->addrlen == 0)
        return;
    struct wire_nack n;
    bus_peer_missing(p, &n);
    if (n.n == 0)
        return;
    uint8_t buf[WIRE_PAYLOAD_MAX];
    send_control(WIRE_NACK, buf, wire_put_nack(buf, &n), (struct sockaddr *)&p->addr, p->addrlen);
    count(M_nacks_sent, 1);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    int64_t now = now_us();
    if (now >= bus.next_heartbeat_us) {
        send_heartbeat(false);
        bus.next_heartbeat_us = now + bus.heartbeat_us;
    }
    bool holes = false;
    pthread_mutex_lock(&bus.peers_lock);
    for (size_t i = 0; i < bus.npeers; i++) {
        struct bus_peer *p = &bus.peers[i];
        if (p->state != BUS_PEER_LIVE && now - p->last_heard_us > BUS_FORGET_US) {
            bus.peers[i--] = bus.peers[--bus.npeers];
            continue;
        }
        bool nack_due;
        struct bus_peer_event ev;
        bus_peer_tick(p, now, &bus.timing, &nack_due, &ev);
        act(p, &ev);
        if (nack_due)
            send_nack(p);
        holes |= bus_peer_has_holes(p);
    }
    pthread_mutex_unlock(&bus.peers_lock);
    /* Fast while repairing; otherwise a quarter heartbeat is fine for timeouts,
     * unless a tail heartbeat is due sooner. */
    int64_t next = holes ? BUS_TICK_FAST_US : bus.heartbeat_us / 4;
    if (bus.next_heartbeat_us - now < next)
        next = bus.next_heartbeat_us - now;
    if (next < 1000)
        next = 1000;
    w->repeat = next / 1e6;
    ev_timer_again(loop, w);
}

static void
linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    send_heartbeat(true);
    send_heartbeat(true);
    ev_break(loop, EVBREAK_ALL);
}

/* Goodbyes: a peer that hears one, with nothing missing, skips the restart
 * flush when we come back. We linger a little to answer last NACKs, so a
 * datagram lost just before shutdown does not spoil the goodbye. */
static void
stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)flush_due(true);
    send_heartbeat(true);
    ev_timer_init(&bus.linger, linger_cb, BUS_LINGER_S, 0.);
    ev_timer_start(loop, &bus.linger);
}

static void *
bus_thread(void *arg)
{
    /* Named so that top -H and the bench can tell the bus's CPU apart. */
    pthread_setname_np(pthread_self(), "fc-bus");
    /* Signals belong to the main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    send_heartbeat(false);
    ev_run(bus.loop, 0);
    return NULL;
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
    if (bus.loop) {
        ev_loop_destroy(bus.loop);
        bus.loop = NULL;
    }
    if (bus.batch_fd >= 0)
        close(bus.batch_fd);
    bus.batch_fd = -1;
    mcast_close(&bus.ep);
    bus_ring_destroy(bus.ring);
    bus.ring = NULL;
    pthread_mutex_lock(&bus.pub_lock);
    free(bus.cur);
    bus.cur = NULL;
    for (size_t i = 0; i < bus.nready; i++)
        free(bus.ready[i]);
    for (size_t i = 0; i < bus.nspare; i++)
        free(bus.spare[i]);
    bus.nready = bus.nspare = 0;
    pthread_mutex_unlock(&bus.pub_lock);
    pthread_mutex_lock(&bus.peers_lock);
    free(bus.peers);
    bus.peers = NULL;
    bus.npeers = 0;
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
    bus.batch_fd = -1;
    atomic_store(&bus.pending, false);
    atomic_store(&bus.tail_owed, false);
    atomic_store(&bus.last_data_ns, 0);
    atomic_store(&bus.due_ns, 0);
    if (!bus_crypto_setup()) {
        snprintf(err, errlen, "bus: libsodium failed to initialise");
        return false;
    }
    bus.sealed = opts->key_file && *opts->key_file;
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

    bus.node_id = (uint32_t)opts->node_id;
    while (bus.node_id == 0)
        bus.node_id = randombytes_random();
    /* Looped-back own datagrams stop in the kernel; own_ignored then counts
     * only what slips past (unicast mode, or a kernel without the filter). */
    (void)mcast_ignore_node(&bus.ep, bus.node_id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Wall-clock microseconds: grows across restarts, which replay checks need. */
    bus.epoch = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
    bus.flush_delay_ns = (int64_t)opts->flush_delay_us * 1000;
    bus.heartbeat_us = (int64_t)or_default(opts->heartbeat_ms, 100) * 1000;
    bus.announce_window_ms = or_default(opts->announce_window_ms, 2000);
    bus.timing.nack_interval_us = (int64_t)or_default(opts->nack_interval_ms, 30) * 1000;
    bus.timing.nack_delay_us = 2000;
    bus.timing.repair_deadline_us = (int64_t)or_default(opts->repair_deadline_ms, 500) * 1000;
    bus.timing.peer_timeout_us = (int64_t)or_default(opts->peer_timeout_ms, 1000) * 1000;
    bus.ctl_seq = 0;
    atomic_store(&bus.data_seq, 0);
    for (int i = 0; i < BUS_METRIC_COUNT; i++)
        atomic_store(&bus.m[i], 0);
    bus_recent_init(&bus.recent);

    bus.ring = bus_ring_create(ring_size, WIRE_DATAGRAM_MAX);
    bus.peers = calloc(BUS_PEERS_MAX, sizeof(*bus.peers));
    bus.cur = malloc(sizeof(*bus.cur));
    bus.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    bus.batch_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!bus.ring || !bus.peers || !bus.cur || !bus.loop || bus.batch_fd < 0) {
        snprintf(err, errlen, "bus: out of memory or file descriptors");
        release_all();
        return false;
    }
    bus_batch_init(bus.cur);

    if (bus.ep.group_fd >= 0) {
        ev_io_init(&bus.group_io, read_cb, bus.ep.group_fd, EV_READ);
        ev_io_start(bus.loop, &bus.group_io);
    }
    ev_io_init(&bus.fd_io, read_cb, bus.ep.fd, EV_READ);
    ev_io_start(bus.loop, &bus.fd_io);
    ev_async_init(&bus.wake, wake_cb);
    ev_async_start(bus.loop, &bus.wake);
    ev_async_init(&bus.stop, stop_cb);
    ev_async_start(bus.loop, &bus.stop);
    ev_io_init(&bus.batch_io, batch_timer_cb, bus.batch_fd, EV_READ);
    ev_io_start(bus.loop, &bus.batch_io);
    ev_init(&bus.tick, tick_cb);
    bus.tick.repeat = bus.heartbeat_us / 4e6;
    ev_timer_again(bus.loop, &bus.tick);
    bus.next_heartbeat_us = now_us() + bus.heartbeat_us;

    pthread_mutex_lock(&bus.pub_lock);
    bus.running = true;
    pthread_mutex_unlock(&bus.pub_lock);
    int rc = pthread_create(&bus.thread, NULL, bus_thread, NULL);
    if (rc != 0) {
        pthread_mutex_lock(&bus.pub_lock);
        bus.running = false;
        pthread_mutex_unlock(&bus.pub_lock);
        snprintf(err, errlen, "bus: cannot start its thread: %s", strerror(rc));
        release_all();
        return false;
    }
    bus.thread_started = true;

    char where[64] = "";
    if (bus.ep.multicast)
        mcast_format_addr((struct sockaddr *)&bus.ep.group, where, sizeof(where));
    log_info("bus: node %" PRIu32 " epoch %" PRIu64 " on %s%s", bus.node_id, bus.epoch,
             bus.ep.multicast ? "multicast " : "unicast ",
             bus.ep.multicast ? where : opts->listen);
    if (!bus.sealed)
        log_error("bus: unauthenticated (no --bus-key-file): anyone who can reach the bus "
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
    if (bus.thread_started) {
        /* Publishers are shut out above, so the loop is ours alone now. */
        ev_async_send(bus.loop, &bus.stop);
        pthread_join(bus.thread, NULL);
        bus.thread_started = false;
    }
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
    emit_u64(emit, ctx, "node_id", bus.node_id);
    emit_u64(emit, ctx, "epoch", bus.epoch);
    emit("mode", bus.ep.multicast ? "multicast" : "unicast", ctx);
    emit_u64(emit, ctx, "authenticated", bus.sealed);
    emit_u64(emit, ctx, "last_seq", atomic_load(&bus.data_seq));
    for (int i = 0; i < BUS_METRIC_COUNT; i++)
        emit_u64(emit, ctx, metric_names[i], atomic_load_explicit(&bus.m[i], memory_order_relaxed));

    int64_t now = now_us();
    pthread_mutex_lock(&bus.peers_lock);
    emit_u64(emit, ctx, "peers", bus.npeers);
    for (size_t i = 0; i < bus.npeers; i++) {
        const struct bus_peer *p = &bus.peers[i];
        char name[64], value[64];
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":epoch", p->node_id);
        emit_u64(emit, ctx, name, p->epoch);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":last_seq", p->node_id);
        emit_u64(emit, ctx, name, p->high);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":acked", p->node_id);
        emit_u64(emit, ctx, name, p->acked);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":last_heard_ms", p->node_id);
        int64_t age = now - p->last_heard_us;
        emit_u64(emit, ctx, name, age > 0 ? (uint64_t)age / 1000 : 0);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":state", p->node_id);
        emit(name, bus_peer_state_name(p->state), ctx);
        snprintf(name, sizeof(name), "peer:%" PRIu32 ":addr", p->node_id);
        mcast_format_addr((const struct sockaddr *)&p->addr, value, sizeof(value));
        emit(name, p->addrlen ? value : "-", ctx);
    }
    pthread_mutex_unlock(&bus.peers_lock);
}
