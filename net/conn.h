/* conn: one client connection, owned by exactly one worker thread, and the
 * worker/shared types the rest of net/ sees. A connection is only ever
 * touched by its worker's thread, except the few _Atomic fields `stats
 * conns` reads from elsewhere under the worker's conns_lock.
 *
 * Input:  rbuf [0 ........ rstart ====unparsed==== rend ..... rcap)
 * Output: struct reply_buf (reply.h), flushed with writev once per batch. */
#ifndef FLEETCACHE_NET_CONN_H
#define FLEETCACHE_NET_CONN_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"
#include "net/net.h"
#include "net/reply.h"

/* Per-worker counters, memcached's names; summed on `stats`. */
#define NET_THREAD_STATS(X) \
    X(bytes_read)           \
    X(bytes_written)        \
    X(cmd_get)              \
    X(cmd_touch)            \
    X(cmd_flush)            \
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

struct net_shared;
struct conn;

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
    pthread_mutex_t conns_lock; /* guards the list, for `stats conns` */
    struct conn *conns;
    unsigned nconns;
    struct net_thread_stats stats;
    char scratch[16384];        /* bytes swallowed after a refused store */
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

enum conn_state {
    CONN_PARSE,     /* reading command lines */
    CONN_NREAD,     /* reading a storage command's data block into its item */
    CONN_SWALLOW,   /* discarding the data block of a refused store */
};
/* stat_state also says "waiting to write" (memcached's conn_mwrite). */
#define CONN_STAT_MWRITE 3

struct conn {
    int fd;
    struct worker *w;
    ev_io io;
    ev_timer idle;
    unsigned io_events;
    enum conn_state state;
    _Atomic int stat_state;         /* for `stats conns` */
    _Atomic uint32_t last_cmd_time; /* clock_now() of the last command */
    bool close_after_write;         /* quit, or a fatal protocol error */
    bool dead;                      /* socket failed: close at once */
    bool noreply;                   /* current command suppresses its reply */

    char *rbuf;
    size_t rcap, rstart, rend;

    struct reply_buf out;
    /* Output state when this pass began parsing: everything after it is
     * still unsent, which is what memcached discards when a multiget hits a
     * key that is too long. */
    struct reply_mark batch_mark;

    /* CONN_NREAD: the item being filled (one reference, released in
     * conn_complete_nread or conn_destroy). */
    struct item *nread_it;
    char *nread_dst;
    size_t nread_left;
    enum cache_store_op nread_op;
    uint64_t nread_cas;
    bool nread_noreply;
    /* CONN_SWALLOW: bytes still to discard. */
    size_t swallow_left;

    char peer[64];
    const char *listen_name;
    struct conn *prev, *next;
};

/* Creates a connection for an accepted non-blocking socket on worker w's
 * thread and starts reading. Closes fd and returns false on OOM. */
bool
conn_create(struct worker *w, int fd, const char *listen_name);

/* Worker shutdown: flush what is queued, then close (quietly). */
void
conn_begin_shutdown(struct conn *c);

/* The one close path: stops watchers, releases item references, closes the
 * fd, frees. Never called from inside the connection's own conn_run. */
void
conn_destroy(struct conn *c);

/* Worker-side bookkeeping after a connection went away (net.c). */
void
net_worker_conn_gone(struct worker *w);

#endif
