/* net_internal: what the files of net/ share and nobody else sees — the
 * worker threads, the state shared between the acceptor and the workers, and
 * the per-worker counters. Invariant: a worker's fields are written only by
 * its own thread, except the queue (queue_lock), the connection list
 * (conns_lock) and the atomics, which other threads read for `stats`. */
#ifndef FLEETCACHE_NET_NET_INTERNAL_H
#define FLEETCACHE_NET_NET_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "net/bufpool.h"
#include "net/net.h"
#include "net/reply.h"

/* Per-worker counters, memcached's names; summed on `stats`. */
#define NET_THREAD_STATS(X) \
    X(bytes_read)           \
    X(bytes_written)        \
    X(cmd_get)              \
    X(cmd_touch)            \
    X(cmd_flush)            \
    X(cmd_meta)             \
    X(store_too_large)      \
    X(store_no_memory)      \
    X(conn_yields)          \
    X(idle_kicks)

struct net_thread_stats {
#define NET_STAT_FIELD(name) _Atomic uint64_t name;
    NET_THREAD_STATS(NET_STAT_FIELD)
#undef NET_STAT_FIELD
};

/* Only the owning thread adds, so a relaxed load+store is enough (no locked
 * instruction on the hot path); readers on other threads see a recent value. */
#define NET_STAT_ADD(w, name, n)                                              \
    atomic_store_explicit(&(w)->stats.name,                                   \
        atomic_load_explicit(&(w)->stats.name, memory_order_relaxed) + (n),   \
        memory_order_relaxed)

/* Ready connections read ahead of running them, per loop iteration. */
#define NET_BATCH_MAX 64

struct net_shared;
struct conn;
struct l2_worker;
struct waiter;

struct worker_handoff {
    int fd;
    const char *listen_name;    /* "tcp:127.0.0.1:11211", lives as long as net */
};

struct worker {
    unsigned id;
    pthread_t thread;
    struct ev_loop *loop;
    struct net_shared *shared;
    ev_async wake;              /* new sockets queued, or shutdown asked */
    pthread_mutex_t queue_lock;
    struct worker_handoff *queue;
    size_t queue_len, queue_cap;
    _Atomic bool stopping;      /* set by net_shutdown on the main thread */
    ev_timer stop_deadline;
    ev_prepare before_poll;     /* on_poll hook and worker slices, see net.c */
    ev_check after_poll;
    /* on_poll's deadline. libev's epoll backend rounds timer waits up to
     * whole milliseconds, so a sleeping worker wakes for it on a timerfd. */
    int deadline_fd;
    ev_io deadline_io;
    double deadline_at;         /* ev_time() it is set for; 0: not set */
    double run_since;           /* ev_time() when it last blocked or yielded */
    double poll_at;             /* ev_time() as it entered the poll */
    /* --bus-sync: connections whose replies wait for the fleet (this
     * thread's list), woken by net_sync_progress from the bus thread. */
    ev_async sync_wake;
    struct conn *parked;
    _Atomic unsigned nparked;
    pthread_mutex_t conns_lock; /* guards the list, for `stats conns` */
    struct conn *conns;
    unsigned nconns;
    struct net_thread_stats stats;
    /* Two-level mode (l2cmd.c): this worker's L2 client, and the values
     * other workers' fetches deliver to its waiting commands. */
    struct l2_worker *l2;       /* NULL without an L2 pool */
    ev_async l2_wake;
    pthread_mutex_t l2q_lock;
    struct waiter *l2q;         /* delivered, not yet handed to their ops */
    unsigned l2ops;             /* ops alive on this worker */
    char scratch[16384];        /* bytes swallowed after a refused store */
    /* Spare read buffers and reply arrays: connections take them while
     * they have something to read or send and give them back when idle. */
    struct bufpool rbufs;
    struct reply_pool reply_pool;
    /* For `stats` (read_buf_*): read buffers its connections hold, and
     * spares in rbufs; written by this worker only. */
    _Atomic uint32_t rbufs_held, rbufs_spare;
    /* Batching across connections (conn.c): between the poll and the next
     * one, ready connections are read and their keys' buckets prefetched
     * first, then run one after another from batch_prepare. */
    ev_check batch_open;
    ev_prepare batch_run;
    bool batching;              /* io callbacks defer into batch[] */
    unsigned nbatch, nbatch_hv, nbatch_hv_items; /* items: step 1 asked */
    struct conn *batch[NET_BATCH_MAX];  /* NULL: destroyed since */
    uint64_t batch_hv[NET_BATCH_MAX];
};

/* Everything net/ shares between the acceptor and the workers. */
struct net_shared {
    struct net_options opts;
    struct worker *workers;
    unsigned nworkers;
    _Atomic unsigned curr_conns;        /* client connections open */
    _Atomic uint64_t total_conns;
    _Atomic uint64_t rejected_conns;
    _Atomic unsigned nlisteners;
    _Atomic bool accepting;
    _Atomic uint64_t listen_disabled_num;
    time_t started;
    /* `stats reset` baselines: counters only grow; reset remembers them. */
    pthread_mutex_t reset_lock;
    struct {
#define NET_BASE_FIELD(name) uint64_t name;
        NET_THREAD_STATS(NET_BASE_FIELD)
#undef NET_BASE_FIELD
        uint64_t total_conns, rejected_conns;
    } base;
};

#endif
