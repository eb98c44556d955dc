/* conn: one client connection, owned by exactly one worker thread, and the
 * connection-level entry points. A connection is only ever touched by its
 * worker's thread, except the few _Atomic fields `stats conns` reads from
 * elsewhere under the worker's conns_lock (worker types: net_internal.h).
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
#include "net/meta.h"
#include "net/net_internal.h"
#include "net/reply.h"

struct cmd_row;
struct l2fwd;
struct l2op;

enum conn_state {
    CONN_PARSE,     /* reading command lines */
    CONN_NREAD,     /* reading a storage command's data block into its item */
    CONN_SWALLOW,   /* discarding the data block of a refused store */
    CONN_WATCH,     /* a `watch` log stream: input ignored, lines sent */
    CONN_DUMP,      /* an `lru_crawler metadump` running in steps */
    CONN_WAIT,      /* a command waits on L2: nothing more is parsed or read */
};
/* stat_state also says "waiting to write" (memcached's conn_mwrite). */
#define CONN_STAT_MWRITE 16

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
    bool proto_known;               /* its first byte chose text or binary */
    bool binary;                    /* speaks the binary protocol (binary.h) */
    bool batched;                   /* read ahead, waiting in w->batch */
    bool drained;                   /* that read emptied the socket */

    char *rbuf;
    size_t rcap, rstart, rend;
    size_t look_end;    /* rbuf offset lookahead has prefetched up to */

    struct reply_buf out;

    /* CONN_NREAD: the item being filled (one reference, released in
     * conn_complete_nread or conn_destroy). */
    struct item *nread_it;
    char *nread_dst;
    size_t nread_left;
    enum cache_store_op nread_op;
    const struct cmd_row *nread_row;    /* the table row, for publishing */
    uint64_t nread_cas;
    int32_t nread_exptime;              /* as the client gave it, for L2 */
    bool nread_noreply;
    struct meta_stash nread_meta;   /* the pending store is an ms */
    uint8_t bin_opcode;             /* a binary store's opcode and opaque, */
    uint32_t bin_opaque;            /* echoed when its value has arrived */
    struct l2fwd *nread_fwd;        /* two-level mode: that ms's L2 request */
    /* CONN_SWALLOW: bytes still to discard. */
    size_t swallow_left;
    /* CONN_WAIT: the command waiting on L2 (it points back at us). */
    struct l2op *l2op;

    struct watch *watch;            /* CONN_WATCH (watch.h), else NULL */
    struct cache_walk dump_walk;    /* CONN_DUMP's cursor */
    /* --bus-sync: replies wait until the fleet applied this ticket (the
     * connection's last publication); meanwhile it is on its worker's
     * parked list and reads nothing more. */
    uint64_t sync_ticket;
    bool parked;
    struct conn *park_prev, *park_next;

    char peer[64];
    const char *listen_name;
    struct conn *prev, *next;
};

/* Creates a connection for an accepted non-blocking socket on worker w's
 * thread and starts reading. Closes fd and returns false on OOM. */
bool
conn_create(struct worker *w, int fd, const char *listen_name);

/* Runs a pass of c from outside its io watcher (another watcher on the
 * same worker, e.g. a watch's wake-up). May destroy c. */
void
conn_kick(struct conn *c);
/* --bus-sync: the fleet applied more publications; runs every parked
 * connection of w whose ticket is done (net.c's wake-up calls it). */
void
conn_sync_wake(struct worker *w);

/* The current command waits on L2 (op): the connection stops parsing and
 * reading after it, and flushes what earlier commands queued. */
void
conn_suspend(struct conn *c, struct l2op *op);

/* op was answered (its reply is queued): parsing resumes where it stopped,
 * from the loop, not from inside the caller. */
void
conn_resume(struct conn *c);

/* The worker's poll returned: ready connections are read and their keys
 * prefetched now, and run together from conn_run_batch. */
void
conn_open_batch(struct worker *w);

/* Runs the connections read ahead since conn_open_batch, then stops
 * batching until the next poll. */
void
conn_run_batch(struct worker *w);

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
