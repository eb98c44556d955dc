/* bus_internal: what the files of bus/ share; nothing outside bus/ includes
 * it. The bus's state is one struct, in parts, each guarded by one lock (or
 * owned by one thread) and written by one file:
 *
 *   send.c     outbound: the publish queue (pub_lock); numbered DATA, the
 *              ring, heartbeats and repairs (send_lock). Any thread.
 *   receive.c  inbound: read, authenticate, apply, the peer table
 *              (peers_lock), ask for repairs. The bus thread.
 *   loop.c     the bus thread: its libev loop, timers, wake-ups, goodbye.
 *   sync.c     --bus-sync: read leases, STATUS, tickets (peers_lock, and
 *              send_lock for the ticket queue).
 *   bus.c      set-up, tear-down, `stats bus`.
 *
 * Lock order: peers_lock, then send_lock, then pub_lock (never an earlier one
 * while holding a later one). send_lock -> pub_lock nests (taking batches),
 * and peers_lock -> send_lock (a STATUS names the last DATA seq). The
 * cache's locks come after all of them (a flush under peers_lock); the cache
 * never calls the bus. tick_lock comes last (a sender arms the bus thread's
 * timer under send_lock). Atomics (pending, due_ns, last_data_ns,
 * data_seq, the counters) are read without a lock. */
#ifndef FLEETCACHE_BUS_INTERNAL_H
#define FLEETCACHE_BUS_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bus/batch.h"
#include "bus/bus.h"
#include "bus/crypto.h"
#include "bus/floor.h"
#include "bus/mcast.h"
#include "bus/peer.h"
#include "bus/recent.h"
#include "bus/ring.h"

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
    X(keys_staled)          /* ... that marked a local copy stale (md I) */     \
    X(flushes_received)                                                         \
    X(announces)            /* deletes announced after a racing copy differed */\
    X(heartbeats_sent)                                                          \
    X(heartbeats_received)                                                      \
    X(gaps)                 /* times holes opened in a peer's sequence */       \
    X(nacks_sent)                                                               \
    X(nacks_received)                                                           \
    X(repairs_sent)         /* DATA datagrams resent for a NACK */              \
    X(repairs_rationed)     /* ... not resent: sent to that dest just before */ \
    X(repairs_received)     /* DATA datagrams that filled a hole */             \
    X(repairs_throttled)    /* ... not resent: the destination's budget was spent */ \
    X(tail_repeats)         /* last DATA datagrams sent again after a silence */ \
    X(nacks_suppressed)     /* our NACKs held back: another node asked first */ \
    X(gones_sent)           /* "no longer in my ring" answers */                \
    X(gones_received)                                                           \
    X(unrepairable_flushes) /* whole-cache flushes for datagrams lost to us, sum of: */\
    X(flush_deadline)                                                           \
    X(flush_gone)                                                               \
    X(flush_restart)                                                            \
    X(flush_timeout)                                                            \
    X(flush_too_far)                                                            \
    X(flush_epoch_back)                                                         \
    X(flush_stale_epoch)                                                        \
    X(flush_peers_full)                                                         \
    X(flush_duplicate_id)                                                       \
    X(flush_unreadable)                                                         \
    X(join_flushes)         /* first contact with unknown history, cache not empty */ \
    X(restarts)             /* a peer came back with a new epoch */             \
    X(epochs_back)          /* ... with an older one: clock stepped back, shared id */ \
    X(stale_epoch)          /* datagrams of an older life we refuse to follow */ \
    X(auth_failures)        /* forged, corrupt, or sealed/clear mismatch */     \
    X(replays)              /* duplicate or older seq in the life we follow */  \
    X(replays_old_life)     /* ... in a life we no longer follow (floors) */    \
    X(malformed)            /* truncated or not a bus datagram */               \
    X(newer_version)        /* datagrams of a newer format than ours */         \
    X(outside_peers)        /* unicast: from an address not in --bus-peers */   \
    X(outside_group)        /* multicast: sent to our sending socket, not the group */ \
    X(own_ignored)          /* our own datagrams (our id and epoch), looped back */ \
    X(duplicate_id)         /* another node's datagrams under our node id */    \
    X(send_errors)                                                              \
    X(overflows)            /* publishers outran the send queue: fleet flushed */ \
    X(peers_evicted)        /* dead peers' entries given to new senders */      \
    X(statuses_sent)        /* --bus-sync: STATUS datagrams (leases, acks) */  \
    X(statuses_received)                                                        \
    X(grants_sent)          /* read leases granted (echoes in our STATUS) */    \
    X(grants_received)      /* ... granted to us */                            \
    X(sync_writes)          /* publications the fleet acknowledged (tickets done) */ \
    X(sync_expired)         /* ... of which some peer was passed by lease expiry */ \
    X(reads_refused)        /* hits refused: no lease from every peer */        \
    X(peers_refused)        /* datagrams of senders past BUS_PEERS_MAX live peers */ \
    X(floors_evicted)       /* ids whose ended lives we could no longer keep */

enum bus_metric {
#define BUS_METRIC_ENUM(name) M_##name,
    BUS_METRICS(BUS_METRIC_ENUM)
#undef BUS_METRIC_ENUM
    BUS_METRIC_COUNT
};

/* `stats bus` names, and the flush_<reason> counter of each reason (bus.c). */
extern const char *const bus_metric_names[BUS_METRIC_COUNT];
extern const enum bus_metric bus_flush_metric[BUS_FLUSH_REASON_COUNT];

/* The largest fleet: every live peer needs an entry (a sender without one
 * cannot be followed, so its datagrams flush us). */
#define BUS_PEERS_MAX 256
#define BUS_READY_MAX 4096      /* full batches waiting: ~5.6 MB at most */
#define BUS_REPAIRS_PER_NACK 128
#define BUS_RECV_BURST 64       /* datagrams per readiness event, so timers run */
/* After the last DATA datagram of a burst: a repeat of it this long after
 * (if nothing followed), then heartbeats at 1, 3, 7 ... ms (loop.c). */
#define BUS_TAIL_REPEAT_US 250
/* Repairs: each datagram goes to one destination at most once per
 * ration_us (250), and each destination gets at most the ring's size of
 * them per repair_window_us (15 ms; a token bucket), however many NACKs ask. */
#define BUS_DESTS_MAX 64
/* A lost or departed peer's entry goes after this long (its lives stay in
 * the floors). */
#define BUS_FORGET_MS 10000
/* An older life than the one we follow is followed (a restart whose clock
 * went back) only if it booted this recently by our wall clock, either way;
 * else it is refused (bus/receive.c). */
#define BUS_EPOCH_FRESH_US (60 * 1000000LL)
/* --bus-sync: STATUS every lease/8; an ack (a STATUS after applying DATA,
 * or when a peer's STATUS shows it missed ours) at most every
 * BUS_ACK_DELAY_US; a granter's bound on a grant adds
 * lease/16 + BUS_LEASE_SLACK_US for the two clocks' rates. */
#define BUS_ACK_DELAY_US 200
/* ... and while our writes wait for acks, a STATUS this often asks again. */
#define BUS_ACK_ASK_US 1000
#define BUS_LEASE_SLACK_US 200
#define BUS_TICKETS 4096
#define BUS_LINGER_S 0.06       /* two NACK rounds at the longest interval */

struct bus_state {
    /* Set once by bus_setup before the thread starts; read-only after. The
     * sockets are read by the bus thread only; sendto is safe from any. */
    uint32_t node_id;
    uint64_t epoch;
    bool sealed;
    uint8_t key[BUS_KEY_SIZE];
    int64_t flush_delay_ns;
    int64_t heartbeat_us;
    int64_t announce_window_ms;
    int64_t forget_us;
    int64_t tail_repeat_us;     /* 0: no tail repeat */
    int64_t ration_us;
    int64_t repair_window_us;
    /* --bus-sync (sync.c); set once. */
    bool sync;
    unsigned sync_need;         /* peers a node needs leases from: --bus-sync-nodes - 1 */
    int64_t lease_us, lease_margin_us, status_interval_us;
    int64_t boot_until_us;      /* no write completes before: our last life's grants */
    void (*on_sync_progress)(void);
    struct bus_peer_timing timing;
    struct mcast_endpoints ep;
    struct ev_loop *loop;
    pthread_t thread;
    bool thread_started;

    /* send.c, the publish queue: worker threads and the bus thread, under
     * pub_lock. */
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
    uint64_t pub_ticket;        /* --bus-sync: the last publication's ticket */
    uint64_t cur_first_ticket;  /* ... of cur's first record */

    /* send.c, DATA sending from any thread: the ring, data_seq, ordered
     * sends, heartbeats, repairs; under send_lock. */
    pthread_mutex_t send_lock;
    struct bus_ring *ring;
    /* Per destination (the group, or a --bus-peers index): repair tokens. */
    struct {
        double tokens;
        int64_t at_us;
    } repair_budget[BUS_DESTS_MAX];
    _Atomic int64_t last_data_ns;   /* when the last DATA datagram went out */
    /* ... and more DATA was coming then (keys waited, or a steady stream):
     * its tail looks first at the first heartbeat step, not the repeat's. */
    _Atomic bool data_steady;
    _Atomic uint64_t data_seq;
    /* --bus-sync: which tickets each DATA seq completes (under send_lock):
     * entries (seq, ticket) in order; seq done -> tickets up to ticket done. */
    struct {
        uint64_t seq, ticket;
    } tickets[BUS_TICKETS];
    unsigned tk_head, tk_count;

    /* loop.c and receive.c: the bus thread only. */
    ev_io group_io, fd_io;
    ev_async wake, stop;
    /* Due time of the bus thread's own batches (announcements). The delay is
     * sub-millisecond and libev's epoll backend rounds timer waits up to
     * whole milliseconds, so it runs on a timerfd. */
    int batch_fd;
    ev_io batch_io;
    /* Every other timer: one timerfd armed at the earliest deadline. */
    int tick_fd;
    ev_io tick_io;
    /* When it is armed for (INT64_MAX: not). Under tick_lock: a sender arms
     * it too, for the tail of its DATA (bus_loop_tail). */
    int64_t tick_at_us;
    pthread_mutex_t tick_lock;
    int64_t tail_base_us;       /* the DATA datagram the tail follows */
    int64_t tail_first_us;      /* its step 0 (the repeat) comes this long after it */
    int tail_step;              /* its next step; -1: done */
    bool leaving;               /* saying goodbye: every heartbeat says so */
    ev_timer linger;
    bool announced;             /* receive.c queued announcements */
    uint64_t ctl_seq;           /* control datagrams are sent by the bus thread only */
    int64_t next_heartbeat_us;
    bool warned_duplicate_id;   /* logged once */
    bool warned_epoch_back;
    bool warned_stale_epoch;
    bool warned_peers_full;

    /* receive.c, the peer table: written by the bus thread, read by
     * bus_stats, under peers_lock. */
    pthread_mutex_t peers_lock;
    struct bus_peer *peers;
    size_t npeers;
    struct bus_floors floors;   /* the lives no peer entry follows */
    /* sync.c, under peers_lock: */
    uint64_t complete_seq;      /* our DATA seqs no peer can serve stale any more */
    int64_t next_status_us, last_status_us;
    int64_t ask_us;             /* the next "ack?" STATUS, while writes wait */
    bool ack_owed;              /* applied DATA since our last STATUS */
    /* Read by workers without a lock: hits until then (CLOCK_MONOTONIC ns;
     * INT64_MAX: not in sync mode), and the highest ticket done. */
    _Atomic int64_t lease_until_ns;
    _Atomic uint64_t sync_done;

    _Atomic uint64_t m[BUS_METRIC_COUNT];
};

extern struct bus_state bus;

static inline void
bus_count(enum bus_metric m, uint64_t n)
{
    atomic_fetch_add_explicit(&bus.m[m], n, memory_order_relaxed);
}

static inline int64_t
bus_mono_ms(void)
{
    struct timespec ts;
    /* The coarse clock is a vDSO read: no syscall on the publish path. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

/* Our own clock rather than ev_now(), so bus_stats can read peer ages from
 * another thread against the same time base. */
static inline int64_t
bus_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t
bus_now_us(void)
{
    return bus_mono_ns() / 1000;
}

static inline const uint8_t *
bus_seal_key(void)
{
    return bus.sealed ? bus.key : NULL;
}

/* --- send.c ------------------------------------------------------------------ */

/* Counts ndatagrams sends of which failures failed. */
void
bus_sent(size_t ndatagrams, unsigned failures);

/* Sends every full batch, and the current one when it is due (at once with
 * force). Returns microseconds until the current batch is due, or -1 when
 * nothing waits. Takes send_lock and pub_lock. */
int64_t
bus_flush_due(bool force);

/* A control datagram; to == NULL: to the group or every peer. Bus thread. */
void
bus_send_control(uint8_t type, const uint8_t *payload, size_t plen, const struct sockaddr *to,
                 socklen_t tolen);

/* A heartbeat with the last DATA seq sent. Bus thread; takes send_lock. */
void
bus_send_heartbeat(bool leaving);

/* Sends the last DATA datagram again, to every destination. Bus thread;
 * takes send_lock. */
void
bus_send_tail_repeat(void);

/* Where control datagrams and repairs may go: never to an address a
 * datagram claims, only to the group (multicast mode) or to one configured
 * peer (unicast mode: its index in --bus-peers). */
#define BUS_DEST_GROUP (-1)

/* Sends a control datagram to dest. Bus thread. */
void
bus_send_control_to(int dest, uint8_t type, const uint8_t *payload, size_t plen);

/* Answers a peer's NACK from the ring (or with GONE) at dest: each datagram
 * at most once per ration_us per dest, and at most the ring's size per
 * repair_window_us per dest. Returns how many it resent. Bus thread. */
unsigned
bus_serve_nack(uint32_t from, const struct wire_nack *n, int dest);

/* True if this node may have published key within the announce window. */
bool
bus_published_lately(const char *key, size_t nkey, int64_t now_ms);

/* Queues an announcement (a hashless delete of key) from the bus thread. */
void
bus_queue_announce(const char *key, size_t nkey);

/* Frees the batches (tear-down). */
void
bus_send_release(void);

/* --- receive.c --------------------------------------------------------------- */

/* libev callback for both sockets. */
void
bus_read_cb(struct ev_loop *loop, ev_io *w, int revents);

/* The timers' work on every peer: forget, time out, deadlines, NACKs.
 * Returns when it next has work (INT64_MAX: none). */
int64_t
bus_peers_tick(int64_t now_us);

/* --- sync.c ------------------------------------------------------------------ */

/* Set-up of the sync part (bus_setup, before the thread starts). */
void
bus_sync_setup(const struct bus_options *opts);

/* A STATUS from p (fresh), under peers_lock. */
void
bus_sync_status_in(struct bus_peer *p, const struct wire_status *st, int64_t now_us);

/* p now follows another life of its sender, under peers_lock. */
void
bus_sync_peer_restarted(struct bus_peer *p);

/* After a burst of datagrams was applied: leases, acks, completions. Bus
 * thread; takes peers_lock. */
void
bus_sync_after_receive(int64_t now_us);

/* The timers' work: STATUS, completions, the lease. Returns when it next
 * has work. Bus thread; takes peers_lock. */
int64_t
bus_sync_tick(int64_t now_us);

/* DATA went out through seq, carrying every ticket up to ticket. Under
 * send_lock. */
void
bus_sync_sent(uint64_t seq, uint64_t ticket);

/* True when p may be forgotten: no grant of ours to it still runs. */
bool
bus_sync_may_forget(const struct bus_peer *p, int64_t now_us);

/* --- loop.c ------------------------------------------------------------------ */

/* Creates the loop, its timerfd and watchers; false when out of resources. */
bool
bus_loop_create(void);

/* Starts the bus thread; false with the reason in err. */
bool
bus_loop_start(char *err, size_t errlen);

/* Says goodbye, stops and joins the bus thread. */
void
bus_loop_stop(void);

void
bus_loop_destroy(void);

/* Wakes the bus thread (--bus-sync: tickets to complete). Any thread. */
void
bus_loop_wake(void);

/* A sender's DATA went out at sent_us: the bus thread's tick is armed for
 * the tail's first step, unless it comes earlier already. With more_coming
 * (keys already wait for the next datagram) that is the first heartbeat
 * step, not the repeat, which tail_run would leave out anyway. Any thread;
 * the bus thread is not woken now (a timerfd_settime, not a context switch). */
void
bus_loop_tail(int64_t sent_us, bool more_coming);

/* Bus thread: the next tick comes at at_us (bus_now_us's clock) or earlier. */
void
bus_loop_tick_at(int64_t at_us);

/* Bus thread: the next tick comes within us microseconds. */
void
bus_loop_tick_within(int64_t us);

/* Bus thread: sends due batches now and arms the timerfd for the rest. */
void
bus_loop_flush_later(void);

#endif
