/* l2: the client of the shared L2 pool — memcached (or fleetcached) servers
 * spoken to in the meta protocol, keys placed by twemproxy-compatible ketama.
 * It knows nothing of items, connections to clients or the bus: net/ calls
 * it (net -> l2), hands it request lines and value bytes, and gets parsed
 * replies back through callbacks.
 *
 * Threads: l2_setup() once (pool, ring, options); then each worker thread
 * creates its own struct l2_worker on its own libev loop and is the only
 * thread that touches it. A worker keeps one persistent, non-blocking
 * connection per server, opened on first use. Requests submitted during one
 * loop iteration go out together in one writev per server just before the
 * loop polls (a multi-key get costs one round trip per server), at most
 * max_inflight unanswered per connection; replies are matched in order and
 * each carries an opaque token the reply must echo, so a confused server is
 * caught instead of believed. The only state shared between workers is the
 * per-server failure count and ejection clock (eject.h), under a lock taken
 * only when something failed.
 *
 * Ownership: a request's line is copied; its value bytes are not (they go to
 * the socket straight from the caller's memory, which must stay valid until
 * the done callback). A value in a reply is read straight into memory the
 * caller's sink callback returns. Every submitted request gets exactly one
 * done callback, never from inside l2_submit. */
#ifndef FLEETCACHE_L2_L2_H
#define FLEETCACHE_L2_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l2/mparse.h"
#include "src/option.h"

struct ev_loop;

/* The two-level options: one row each (src/option.h); --l2 turns the mode
 * on. l1_ttl is read by main (the cache's TTL cap) and net/ (fills). */
#define L2_OPTIONS(X, ALSO)                                                                           \
    X(char *, servers, .name = "l2", .type = OPTION_STRING, .arg = "<host:port[:weight],...>",  \
      .help = "two-level mode: read and write through this memcached pool, keys placed as "     \
              "twemproxy's md5/ketama places them",                                             \
      .stat = "l2_servers")                                                                     \
    X(uint32_t, l1_ttl, .name = "l1-ttl", .type = OPTION_INT, .arg = "<secs>", .def = "10",     \
      .min = 1, .max = 30 * 24 * 3600,                                                          \
      .help = "longest an L1 copy of an L2 value lives, bounding what a write that bypasses "   \
              "the fleet can leave stale",                                                      \
      .stat = "l1_ttl", .bad = "Invalid --l1-ttl: %s (want 1-2592000 seconds)")                 \
    X(uint32_t, timeout_ms, .name = "l2-timeout-ms", .type = OPTION_INT, .arg = "<ms>",         \
      .def = "1000", .min = 1, .max = 3600 * 1000,                                              \
      .help = "an L2 request unanswered this long fails (reads miss, writes SERVER_ERROR)",     \
      .stat = "l2_timeout_ms", .bad = "Invalid --l2-timeout-ms: %s (want 1-3600000)")           \
    X(uint32_t, failure_limit, .name = "l2-failure-limit", .type = OPTION_INT, .arg = "<num>",  \
      .def = "2", .min = 0, .max = 1000000,                                                     \
      .help = "consecutive failures that eject an L2 server (0: never; twemproxy's "            \
              "server_failure_limit)",                                                          \
      .stat = "l2_failure_limit", .bad = "Invalid --l2-failure-limit: %s (want 0-1000000)")     \
    X(uint32_t, retry_ms, .name = "l2-retry-ms", .type = OPTION_INT, .arg = "<ms>",             \
      .def = "1000", .min = 0, .max = 3600 * 1000,                                              \
      .help = "how long an ejected L2 server is left alone before it is tried again "           \
              "(twemproxy's server_retry_timeout)",                                             \
      .stat = "l2_retry_ms", .bad = "Invalid --l2-retry-ms: %s (want 0-3600000)")               \
    X(uint32_t, max_inflight, .name = "l2-max-inflight", .type = OPTION_INT, .arg = "<num>",    \
      .def = "1024", .min = 1, .max = 65536,                                                    \
      .help = "requests written and unanswered per L2 connection; more wait their turn",        \
      .stat = "l2_max_inflight", .bad = "Invalid --l2-max-inflight: %s (want 1-65536)")

struct l2_options {
    L2_OPTIONS(OPTION_FIELD, OPTION_SKIP)
};

/* The rows of L2_OPTIONS, for the option parser (src/option.h). */
extern const struct option_row l2_option_rows[];
extern const size_t l2_option_nrows;

/* Fills opts with the rows' defaults: no pool. */
void
l2_options_default(struct l2_options *opts);

/* Checks a --l2 list without resolving anything; false with a reason. */
bool
l2_servers_valid(const char *spec, char *err, size_t errlen);

/* Parses the pool, resolves every server, builds the ring. False with a
 * one-line reason (a bad list, a host that does not resolve). */
bool
l2_setup(const struct l2_options *opts, char *err, size_t errlen);

/* After every worker was destroyed. */
void
l2_teardown(void);

unsigned
l2_nservers(void);

/* The server index owning key (ketama, as twemproxy places it). */
unsigned
l2_server_for(const char *key, size_t nkey);

/* "host:port" of server i, as given. */
const char *
l2_server_name(unsigned i);

/* --- per worker --------------------------------------------------------- */

struct l2_worker;

/* On the worker's thread, with its loop. NULL on OOM. */
struct l2_worker *
l2_worker_create(struct ev_loop *loop);

/* On the worker's thread (or after it was joined): closes the connections
 * and fails every pending request (L2_SHUTDOWN), so each done runs. */
void
l2_worker_destroy(struct l2_worker *w);

/* Requests submitted and not yet done. */
unsigned
l2_worker_pending(const struct l2_worker *w);

/* --- requests ------------------------------------------------------------ */

enum l2_status {
    L2_OK = 0,          /* the server answered: see reply.line */
    L2_TIMEOUT,         /* no answer in time: it may have been applied */
    L2_DOWN,            /* never sent, or the connection failed under it */
    L2_BAD_REPLY,       /* the server answered garbage; connection dropped */
    L2_SHUTDOWN,        /* the worker is going away */
};

struct l2_reply {
    enum l2_status status;
    unsigned server;
    struct mparse_reply line;   /* L2_OK: the parsed reply line; its string
                                 * views (msg, key) live during the callback */
    char *value;                /* MP_VA: the sink's memory holding vlen bytes
                                 * and "\r\n", or NULL when it was discarded */
};

/* Called once the header of a VA reply is parsed: returns where its vlen
 * bytes plus "\r\n" go, or NULL to have them read and dropped. */
typedef char *(*l2_sink_fn)(void *arg, const struct l2_reply *head);
/* Called exactly once per submitted request, on the worker's thread. */
typedef void (*l2_done_fn)(void *arg, const struct l2_reply *reply);

/* The longest arguments a request may carry (l2_call.args). */
#define L2_ARGS_MAX 400

struct l2_call {
    const char *cmd;            /* "mg", "ms", "md", "ma", "mn" */
    const char *key;            /* sent as it is: the caller checked it */
    size_t nkey;
    const char *args;           /* what follows the key, e.g. "v f c t" or
                                 * "5 F0 T0 c"; an opaque is appended */
    size_t nargs;
    const char *value;          /* ms: the value and its "\r\n", sent from
                                 * here with writev; valid until done */
    size_t nvalue;
    bool is_get;                /* counts VA/EN as hits/misses */
    l2_sink_fn sink;            /* NULL: small values (ma's) are kept in the
                                 * request, bigger ones dropped */
    l2_done_fn done;
    void *arg;
};

enum l2_submit_result {
    L2_SUBMITTED = 0,
    L2_EJECTED,         /* the server is ejected: nothing was sent */
    L2_REFUSED,         /* line too long, queue full or out of memory */
};

enum l2_submit_result
l2_submit(struct l2_worker *w, unsigned server, const struct l2_call *call);

/* --- statistics ------------------------------------------------------------ */

/* Counts, for server, a miss that joined another request for the same key
 * instead of sending its own (net/ coalesces; the count lives here). */
void
l2_note_coalesced(struct l2_worker *w, unsigned server, uint64_t n);

/* Node-wide two-level counters kept by net/ and reported by `stats l2`. */
#define L2_NODE_STATS(X)                                                   \
    X(fills)            /* L1 copies made from an L2 hit */                \
    X(fills_skipped)    /* not kept: the key changed while it was fetched */ \
    X(fills_refused)    /* not kept: too large, no memory, no time left */ \
    X(write_commits)    /* writes L2 acknowledged and L1 keeps */          \
    X(write_drops)      /* writes after which L1 dropped its copy */       \
    X(write_failures)   /* writes answered SERVER_ERROR (error, timeout) */ \
    X(lease_passthrough)/* meta gets with lease flags sent to L2 */

enum l2_node_stat {
#define L2_NODE_ENUM(name) L2_STAT_##name,
    L2_NODE_STATS(L2_NODE_ENUM)
#undef L2_NODE_ENUM
    L2_NODE_STAT_COUNT
};

void
l2_note(struct l2_worker *w, enum l2_node_stat which, uint64_t n);

/* `stats l2`: one (name, value) pair per call. */
typedef void (*l2_stat_fn)(const char *name, const char *value, void *arg);

void
l2_stats(l2_stat_fn emit, void *arg);

#endif
