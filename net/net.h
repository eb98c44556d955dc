/* net: the memcached text-protocol front end. One acceptor (on the caller's
 * libev loop) hands accepted sockets round-robin to worker threads, each of
 * which runs its own libev loop and owns its connections outright. net/
 * calls the cache through cache/cache.h and tells the outside world about
 * mutations only through the hooks below; it never includes bus/.
 *
 * Life cycle: net_setup() binds every listener (so a busy port fails start-up
 * with one clear line) and starts the workers; net_shutdown() stops
 * accepting and lets the workers flush in-flight replies and close;
 * net_teardown() joins the workers and frees everything. */
#ifndef FLEETCACHE_NET_NET_H
#define FLEETCACHE_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

/* Called on the worker thread after a mutation of key succeeded (set, add,
 * replace, append, prepend, cas, incr, decr: has_hash true and value_hash
 * the new item's item_value_hash when it is known) and after every delete,
 * hit or miss (has_hash false). Failed add/cas publish nothing. */
typedef void (*net_invalidate_fn)(const char *key, size_t nkey, bool has_hash,
                                  uint64_t value_hash);
/* Called after flush_all succeeded, with its delay in seconds (0 = now). */
typedef void (*net_flush_fn)(int64_t delay);
/* Called by each worker before it polls for events, and after each
 * connection it served (an iteration over many busy connections can take
 * milliseconds): returns microseconds until it must be called again even if
 * no event comes, or -1 for never. */
typedef int64_t (*net_poll_fn)(void);

/* Writes one "STAT name value" line into the reply being built. */
typedef void (*net_stat_emit_fn)(void *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Emits the `stats settings` lines; owned by whoever holds the settings
 * (arg is net_options.settings_arg). */
typedef void (*net_settings_fn)(void *arg, net_stat_emit_fn emit, void *ctx);
/* `stats <name>` for sub-commands net/ does not know (e.g. `stats bus`):
 * emits its lines and returns true, or returns false for "ERROR". */
typedef bool (*net_substats_fn)(const char *name, size_t len, net_stat_emit_fn emit,
                                void *ctx);

struct net_options {
    const char *listen;         /* -l list, comma separated; NULL = any */
    int tcp_port;               /* -p; 0 disables TCP */
    const char *unix_path;      /* -s; when set, TCP is off (memcached) */
    unsigned unix_mask;         /* -a, octal mode bits */
    int backlog;                /* -b */
    unsigned threads;           /* -t, >= 1 */
    unsigned max_conns;         /* -c, client connections at once */
    unsigned reqs_per_event;    /* -R */
    unsigned idle_timeout;      /* -o idle_timeout, seconds; 0 = never */
    unsigned worker_slice_us;   /* a busy worker yields after this; 0 = never */
    bool shutdown_enabled;      /* -A */
    bool flush_enabled;         /* false with -F */
    bool track_sizes;           /* -o track_sizes: `stats sizes` reports */
    const char *version;        /* for "version" and stats */
    net_invalidate_fn on_invalidate;  /* NULL: nobody listens */
    net_flush_fn on_flush;
    net_poll_fn on_poll;        /* NULL: nothing to do between polls */
    net_settings_fn settings;   /* NULL: `stats settings` is just END */
    void *settings_arg;
    net_substats_fn substats;   /* NULL: unknown `stats x` is ERROR */
};

/* Binds the listeners and starts the worker threads. The acceptor's
 * watchers are registered on loop (the caller's, usually the default loop).
 * Returns false with a one-line reason in err when it cannot. */
bool
net_setup(const struct net_options *opts, struct ev_loop *loop, char *err, size_t errlen);

/* Stops accepting and asks every worker to finish what it was writing and
 * close its connections. Call on the loop's thread. done (may be NULL) runs
 * on that thread once every worker has stopped. */
void
net_shutdown(void (*done)(void *arg), void *arg);

/* Joins the workers (after net_shutdown) and frees everything. */
void
net_teardown(void);

/* The TCP port actually bound (useful with -p 0), or 0. */
int
net_bound_port(void);

#endif
