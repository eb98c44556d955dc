/* l2_internal: what the files of l2/ share — the pool of servers (shared by
 * every worker: read-only after set-up but for the ejection state under its
 * lock), a worker's connections (one per server, touched by that worker's
 * thread only), the request queue of a connection, and the counters.
 *
 * A connection's requests form one FIFO list in the order they were
 * submitted, which is the order they are written and answered:
 *
 *   head ............ unsent ............ tail
 *   written, awaiting  first request not
 *   their reply        fully written yet */
#ifndef FLEETCACHE_L2_L2_INTERNAL_H
#define FLEETCACHE_L2_L2_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "l2/eject.h"
#include "l2/ketama.h"
#include "l2/l2.h"

/* A request line: "ms " key (250) " " arguments " O" opaque "\r\n". */
#define L2_LINE_MAX (3 + 250 + 1 + L2_ARGS_MAX + 16 + 2)
/* Values this small are kept in the request when no sink is given. */
#define L2_SMALL_VALUE 64
/* Requests queued on one connection (written or not) before submit refuses. */
#define L2_QUEUE_FACTOR 16

struct l2_server {
    char *name;                 /* "host:port" as given */
    char *ketama_name;          /* what the ring hashes (ketama.h) */
    uint32_t weight;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    pthread_mutex_t lock;       /* guards eject */
    struct eject_state eject;
    _Atomic bool troubled;      /* eject_troubled(&eject), read without the lock */
    _Atomic double down_until;  /* eject.until, read without the lock */
};

struct l2_pool {
    struct l2_options opts;
    struct l2_server *servers;
    unsigned nservers;
    struct ketama_ring ring;
    struct eject_policy policy;
    double timeout_s;
    pthread_mutex_t workers_lock;   /* the list below, for `stats l2` */
    struct l2_worker *workers;
    /* Counters of workers already destroyed, so totals never go down. */
    struct l2_server_stats *retired;
    uint64_t retired_node[L2_NODE_STAT_COUNT];
};

extern struct l2_pool l2_pool;

struct l2_req {
    struct l2_req *next;
    unsigned server;
    uint16_t nline;
    bool is_get;
    const char *value;
    size_t nvalue;
    l2_sink_fn sink;
    l2_done_fn done;
    void *arg;
    uint64_t started_ns;        /* CLOCK_MONOTONIC at submit, for latency */
    double deadline;            /* ev_now() by which it must be answered */
    uint32_t opaque;
    char small[L2_SMALL_VALUE];
    char line[L2_LINE_MAX];
};

/* Latency in microseconds, log-linear: 8 buckets per power of two (under
 * 13% error), up to 2^27 us (two minutes). */
#define L2_HIST_SUB_BITS 3
#define L2_HIST_SUB (1u << L2_HIST_SUB_BITS)
#define L2_HIST_MAX_BITS 27
#define L2_HIST_BUCKETS ((L2_HIST_MAX_BITS - L2_HIST_SUB_BITS + 1) * L2_HIST_SUB)

#define L2_SERVER_STATS(X)                                                   \
    X(requests)         /* requests sent (or failed) to the server */        \
    X(batches)          /* writes carrying them: round trips */              \
    X(hits)             /* gets answered with a value */                     \
    X(misses)           /* gets answered EN */                               \
    X(errors)           /* error replies, garbage, failed connections */     \
    X(timeouts)         /* requests that timed out */                        \
    X(refused)          /* requests not sent: server ejected, queue full */  \
    X(coalesced)        /* misses that joined another's request */           \
    X(connects)         /* connections opened */

struct l2_server_stats {
#define L2_STAT_FIELD(name) _Atomic uint64_t name;
    L2_SERVER_STATS(L2_STAT_FIELD)
#undef L2_STAT_FIELD
    _Atomic uint64_t hist[L2_HIST_BUCKETS];
};

/* Only the owning thread adds: a relaxed load and store is enough. */
#define L2_ADD(field, n)                                                     \
    atomic_store_explicit(&(field),                                          \
        atomic_load_explicit(&(field), memory_order_relaxed) + (n),          \
        memory_order_relaxed)

enum upconn_state {
    UP_IDLE,            /* no socket */
    UP_CONNECTING,
    UP_READY,
};

struct upconn {
    struct l2_worker *w;
    unsigned server;
    int fd;
    enum upconn_state state;
    ev_io io;
    unsigned io_events;
    ev_timer timer;             /* the head's deadline (lazily re-armed) */
    struct l2_req *head, *tail, *unsent;
    size_t unsent_off;          /* bytes of unsent already written */
    unsigned queued;            /* requests in the list */
    unsigned inflight;          /* requests of the list before unsent */
    _Atomic unsigned queued_pub; /* queued, for `stats l2` */
    uint32_t next_opaque;
    bool dirty;                 /* has unsent requests: write before polling */
    char *rbuf;
    size_t rcap, rstart, rend;
    /* A VA reply whose value is still arriving. */
    struct l2_req *vreq;
    struct l2_reply vreply;
    char *vdst;                 /* NULL: drop the bytes */
    size_t vleft;               /* value bytes and "\r\n" still to come */
    size_t vdone;
    char vtail[2];              /* the last two bytes, checked to be "\r\n" */
};

struct l2_worker {
    struct ev_loop *loop;
    struct upconn *conns;       /* one per server */
    ev_prepare flush;           /* writes what the iteration submitted */
    /* A request submitted after the flush of this iteration (a callback
     * fed from inside it, e.g. a client resumed by a failure found while
     * flushing) must not wait for the next poll: flush_late is fed once
     * for it. after_poll clears flushed. */
    ev_check after_poll;
    ev_prepare flush_late;      /* never started: only fed */
    bool flushed;
    bool late_fed;
    struct l2_req *free_reqs;
    unsigned nfree;
    _Atomic unsigned pending;
    struct l2_server_stats *stats;  /* one per server */
    _Atomic uint64_t node[L2_NODE_STAT_COUNT];
    struct l2_worker *next;     /* l2_pool.workers */
};

/* --- spec.c ---------------------------------------------------------------- */
struct l2_spec {
    char host[256];
    char port[8];
    uint32_t weight;
    size_t name_len;            /* "host:port" within the item */
};
/* Calls fn (when not NULL) for each item of the --l2 list; false with a
 * reason in err on the first bad item or when fn refuses one. */
bool
l2_spec_each(const char *spec, char *err, size_t errlen,
             bool (*fn)(const char *item, size_t len, const struct l2_spec *s, void *arg),
             void *arg);

/* --- upconn.c ------------------------------------------------------------ */
void
upconn_init(struct upconn *c, struct l2_worker *w, unsigned server);
/* Queues r; false when the queue is full (r untouched). */
bool
upconn_push(struct upconn *c, struct l2_req *r);
/* Writes whatever is unsent (connecting first if needed). */
void
upconn_flush(struct upconn *c);
/* Closes and fails everything with status (used at destroy). */
void
upconn_close(struct upconn *c, enum l2_status status);

/* --- l2.c ------------------------------------------------------------------ */
/* Returns a finished request to the worker's free list. */
void
l2_req_free(struct l2_worker *w, struct l2_req *r);
/* Runs r's done callback with reply, counts it, frees r. */
void
l2_req_finish(struct l2_worker *w, struct l2_req *r, struct l2_reply *reply);
/* A connection to server failed (refused, broken, timed out, garbage). */
void
l2_server_failed(unsigned server);
/* A reply arrived from server. */
void
l2_server_ok(unsigned server);
uint64_t
l2_now_ns(void);

/* --- stats.c --------------------------------------------------------------- */
void
l2_hist_add(struct l2_server_stats *s, uint64_t us);

#endif
