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

#include "src/option.h"

struct ev_loop;

/* Called on the worker thread after a mutation of key succeeded (set, add,
 * replace, append, prepend, cas, incr, decr: has_hash true and value_hash
 * the new item's item_value_hash when it is known) and after every delete,
 * hit or miss (has_hash false). Failed add/cas publish nothing. */
typedef void (*net_invalidate_fn)(const char *key, size_t nkey, bool has_hash,
                                  uint64_t value_hash);
/* Called instead of the invalidate hook after a meta `md key I` (hit or
 * miss): peers should mark their copies stale rather than drop them;
 * has_exptime/exptime carry its T flag (an expiry as the client sent it).
 * NULL: the invalidate hook is called (peers drop their copies). */
typedef void (*net_stale_fn)(const char *key, size_t nkey, bool has_exptime, int64_t exptime);
/* Called after flush_all succeeded, with its delay in seconds (0 = now). */
typedef void (*net_flush_fn)(int64_t delay);
/* Called by each worker before it polls for events, and after each
 * connection it served (an iteration over many busy connections can take
 * milliseconds): returns microseconds until it must be called again even if
 * no event comes, or -1 for never. */
typedef int64_t (*net_poll_fn)(void);

/* --bus-sync (main sets all three, or none): the ticket of the calling
 * thread's last publication; the highest ticket the fleet has applied (a
 * connection whose command published holds its replies until it reaches
 * that command's ticket); and whether this node may serve a hit now (a
 * retrieval without it answers as a miss). Each is an atomic load or two. */
typedef uint64_t (*net_ticket_fn)(void);
typedef bool (*net_read_ok_fn)(void);

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

/* The front end's options: one row each (src/option.h), and the struct
 * they generate. net_options_default() loads the rows' defaults. */
#define NET_OPTIONS(X, ALSO)                                                                          \
    X(int, tcp_port, .flag = 'p', .name = "port", .type = OPTION_INT, .arg = "<num>",           \
      .def = "11211", .min = 0, .max = 65535, .help = "TCP port to listen on (0: none)",        \
      .stat = "tcpport", .bad = "ERROR: Invalid port number %s.")                               \
    X(int, udp_port, .flag = 'U', .name = "udp-port", .type = OPTION_INT, .arg = "<num>",       \
      .def = "0", .help = "accepted for compatibility; UDP is never served",                    \
      .stat = "udpport")                                                                        \
    X(char *, unix_path, .flag = 's', .name = "unix-socket", .type = OPTION_STRING,             \
      .arg = "<file>", .help = "UNIX socket to listen on (disables network support)",           \
      .stat = "domain_socket")                                                                  \
    X(unsigned, unix_mask, .flag = 'a', .name = "unix-mask", .type = OPTION_OCTAL,              \
      .arg = "<mask>", .def = "700", .min = 0, .max = 0777,                                     \
      .help = "access mask for UNIX socket, in octal", .stat = "umask",                         \
      .show = OPTION_SHOW_OCTAL)                                                                \
    X(bool, shutdown_enabled, .flag = 'A', .name = "enable-shutdown", .type = OPTION_SWITCH,    \
      .help = "enable ascii \"shutdown\" command", .stat = "shutdown_command")                 \
    X(char *, listen, .flag = 'l', .name = "listen", .type = OPTION_LIST, .arg = "<addr>",      \
      .help = "interface to listen on (default: INADDR_ANY); repeat or comma-separate "         \
              "for several, host:port for another port",                                        \
      .stat = "inter")                                                                          \
    X(unsigned, max_conns, .flag = 'c', .name = "conn-limit", .type = OPTION_INT,               \
      .arg = "<num>", .def = "1024", .min = 1, .max = INT32_MAX,                                \
      .help = "max simultaneous connections", .stat = "maxconns",                               \
      .bad = "Maximum connections must be greater than 0", .exit = 1)                           \
    X(unsigned, threads, .flag = 't', .name = "threads", .type = OPTION_INT, .arg = "<num>",    \
      .def = "4", .min = 1, .max = 1024, .help = "number of threads to use",                    \
      .stat = "num_threads", .bad = "Number of threads must be greater than 0",                 \
      .bad_high = "Number of threads must be at most 1024", .exit = 1)                          \
    X(unsigned, reqs_per_event, .flag = 'R', .name = "max-reqs-per-event", .type = OPTION_INT,  \
      .arg = "<num>", .def = "20", .min = 1, .max = INT32_MAX,                                  \
      .help = "maximum number of requests per event, limits the requests processed per "        \
              "connection to prevent starvation",                                               \
      .stat = "reqs_per_event", .bad = "Number of requests per event must be greater than 0",   \
      .exit = 1)                                                                                \
    X(int, backlog, .flag = 'b', .name = "listen-backlog", .type = OPTION_INT, .arg = "<num>",  \
      .def = "1024", .help = "set the backlog queue limit", .stat = "tcp_backlog")              \
    X(int, protocol, .flag = 'B', .name = "protocol", .type = OPTION_CHOICE, .arg = "<name>",   \
      .def = "auto", .choices = "auto=auto-negotiate|binary|ascii",                             \
      .help = "protocol - one of ascii, binary, or auto (default: auto-negotiate)",             \
      .stat = "binding_protocol",                                                               \
      .bad = "Invalid value for binding protocol: %s\n -- should be one of auto, binary, or ascii") \
    X(bool, flush_enabled, .flag = 'F', .name = "disable-flush-all", .type = OPTION_CLEAR,      \
      .def = "yes", .help = "disable flush_all command", .stat = "flush_enabled")               \
    X(bool, dump_enabled, .flag = 'X', .name = "disable-dumping", .type = OPTION_CLEAR,         \
      .def = "yes", .help = "disable stats cachedump and lru_crawler metadump",                 \
      .stat = "dump_enabled")                                                                   \
    X(bool, watch_enabled, .flag = 'W', .name = "disable-watch", .type = OPTION_CLEAR,          \
      .def = "yes", .help = "disable watch commands (live logging)")                            \
    X(char, stat_key_prefix, .flag = 'D', .type = OPTION_CHAR, .arg = "<char>", .def = ":",     \
      .help = "delimiter between key prefixes and IDs for per-prefix stats (turns "             \
              "\"stats detail\" on)",                                                           \
      .stat = "stat_key_prefix", .bad = "No delimiter specified", .exit = 1)                    \
    X(unsigned, idle_timeout, .name = "idle_timeout", .sub = true, .type = OPTION_INT,          \
      .arg = "<secs>", .def = "0", .min = 0, .max = INT32_MAX,                                  \
      .help = "timeout for idle connections (0: no timeout)", .stat = "idle_timeout",           \
      .missing = "Missing numeric argument for %s", .exit = 1)                                  \
    X(unsigned, worker_slice_us, .name = "worker_slice_us", .sub = true, .type = OPTION_INT,    \
      .arg = "<us>", .def = "500", .min = 0, .max = 1000000,                                    \
      .help = "a busy worker yields its core after this many microseconds (0: never)",          \
      .stat = "worker_slice_us", .bad = "Invalid worker_slice_us: %s (want 0-1000000)",         \
      .exit = 1)                                                                                \
    X(bool, track_sizes, .name = "track_sizes", .sub = true, .type = OPTION_SWITCH,             \
      .help = "enable dynamic reports for 'stats sizes' command", .stat = "track_sizes")                         \
    X(uint32_t, watcher_logbuf_size, .name = "watcher_logbuf_size", .sub = true,                \
      .type = OPTION_INT, .arg = "<kb>", .def = "256", .unit = 1024, .min = 0,                 \
      .max = UINT32_MAX / 1024, .help = "size in kilobytes of per-watcher write buffer",       \
      .stat = "watcher_logbuf_size",                                                            \
      .bad = "could not parse argument to watcher_logbuf_size", .exit = 1)

/* The binding protocols, in the order of -B's choices. */
enum net_protocol { NET_PROTOCOL_AUTO, NET_PROTOCOL_BINARY, NET_PROTOCOL_ASCII };

struct net_options {
    NET_OPTIONS(OPTION_FIELD, OPTION_SKIP)
    bool detail_enabled;        /* -D given: `stats detail` records from the start */
    /* Set by main, not by options. */
    const char *version;        /* for "version" and `stats version` */
    const char *product_version;/* fleetcache's own, `stats fleetcache_version` */
    net_invalidate_fn on_invalidate;  /* NULL: nobody listens */
    net_stale_fn on_stale;
    net_flush_fn on_flush;
    net_poll_fn on_poll;        /* NULL: nothing to do between polls */
    net_ticket_fn sync_ticket;  /* NULL: replies never wait for the fleet */
    net_ticket_fn sync_done;
    net_read_ok_fn read_ok;     /* NULL: hits are always served */
    net_settings_fn settings;   /* NULL: `stats settings` is just END */
    void *settings_arg;
    net_substats_fn substats;   /* NULL: unknown `stats x` is ERROR */
    /* Two-level mode: l2/ is set up (l2_setup) and every worker reads
     * through and writes through its pool; L1 copies live at most l1_ttl
     * seconds (the cache's max_ttl must not exceed it either). */
    bool l2;
    unsigned l1_ttl;
};

/* The rows of NET_OPTIONS, for the option parser (src/option.h). */
extern const struct option_row net_option_rows[];
extern const size_t net_option_nrows;

/* Fills opts with the rows' defaults (memcached's: -p 11211, -c 1024, -t 4
 * ...) and no hooks. */
void
net_options_default(struct net_options *opts);

/* Whether `stats detail` records now (-D, `stats detail on|off`). */
bool
net_stats_detail_enabled(void);

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

/* The fleet applied more publications (--bus-sync; any thread): wakes the
 * workers whose connections hold replies. Cheap when none waits. */
void
net_sync_progress(void);

/* The TCP port actually bound (useful with -p 0), or 0. */
int
net_bound_port(void);

#endif
