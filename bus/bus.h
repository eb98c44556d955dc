/* bus: the invalidation bus — the only header of bus/ that main.c includes.
 * Worker threads publish "key changed" / "flush_all" after a client's
 * mutation succeeded; they are batched into numbered datagrams for the peers,
 * sent by the publishing workers themselves when a batch is due
 * (bus_publish_poll). A bus thread (its own libev loop) applies the peers'
 * datagrams to the local cache (cache_drop / cache_flush), never
 * re-publishing them, and keeps the heartbeats and repairs going. Lost
 * datagrams are NACKed and repaired from the sender's ring; what cannot be
 * repaired makes this node flush its cache (a miss is fine, a stale hit is
 * not). Datagram layout: bus/wire.h. */
#ifndef FLEETCACHE_BUS_H
#define FLEETCACHE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/option.h"

/* The bus's options: one row each (src/option.h), and the struct they
 * generate. bus_options_default() loads the rows' defaults. */
#define BUS_OPTIONS(X, ALSO)                                                                          \
    X(char *, group, .name = "bus-group", .type = OPTION_HOSTPORT, .arg = "<addr:port>",        \
      .help = "invalidation bus multicast group", .stat = "bus_group",                          \
      .bad = "Invalid --bus-group: %s (want ADDR:PORT)")                                        \
    X(char *, interface, .name = "bus-interface", .type = OPTION_STRING, .arg = "<addr>",       \
      .help = "local address of the interface the bus joins and sends on (default: the "        \
              "kernel's choice)",                                                               \
      .stat = "bus_interface", .bad = "Invalid --bus-interface: empty")                         \
    X(int, ttl, .name = "bus-ttl", .type = OPTION_INT, .arg = "<num>", .def = "1", .min = 0,    \
      .max = 255, .help = "multicast TTL of bus datagrams (0 keeps them on this host)",         \
      .stat = "bus_ttl", .bad = "Invalid --bus-ttl: %s (want 0-255)")                           \
    X(char *, peers, .name = "bus-peers", .type = OPTION_HOSTPORTS, .arg = "<host:port,...>",   \
      .help = "unicast bus peers (instead of multicast)", .stat = "bus_peers",                  \
      .bad = "Invalid --bus-peers: %s (want HOST:PORT,...)")                                    \
    X(char *, listen, .name = "bus-listen", .type = OPTION_HOSTPORT, .arg = "<addr:port>",      \
      .help = "address the unicast bus listens on", .stat = "bus_listen",                       \
      .bad = "Invalid --bus-listen: %s (want ADDR:PORT)")                                       \
    X(char *, key_file, .name = "bus-key-file", .type = OPTION_STRING, .arg = "<path>",         \
      .help = "shared key file (64 hex digits or 32 raw bytes): authenticate every bus "        \
              "datagram (required unless --bus-insecure)",                                      \
      .stat = "bus_key_file", .bad = "Invalid --bus-key-file: empty")                           \
    X(bool, insecure, .name = "bus-insecure", .type = OPTION_SWITCH,                            \
      .help = "run the bus without a key: anyone on the network can flush this node",           \
      .stat = "bus_insecure")                                                                   \
    X(uint64_t, node_id, .name = "bus-node-id", .type = OPTION_INT, .arg = "<num>", .def = "0", \
      .min = 0, .max = UINT32_MAX, .help = "this node's id on the bus (0: random)",             \
      .stat = "bus_node_id", .bad = "Invalid --bus-node-id: %s (want 0-4294967295)")            \
    X(uint32_t, flush_delay_us, .name = "bus-flush-delay-us", .type = OPTION_INT,               \
      .arg = "<num>", .def = "500", .min = 0, .max = 10 * 1000 * 1000,                          \
      .help = "longest a key waits for its batch, in microseconds; a quiet bus sends at once",  \
      .stat = "bus_flush_delay_us", .bad = "Invalid --bus-flush-delay-us: %s (want 0-10000000)") \
    X(uint32_t, announce_window_ms, .name = "bus-announce-window-ms", .type = OPTION_INT,       \
      .arg = "<num>", .def = "2000", .min = 0, .max = 3600 * 1000,                              \
      .help = "a node that wrote a key this recently and hears another value for it announces " \
              "a delete (milliseconds, 0: off)",                                                \
      .stat = "bus_announce_window_ms",                                                         \
      .bad = "Invalid --bus-announce-window-ms: %s (want 0-3600000)")                          \
    X(bool, sync, .name = "bus-sync", .type = OPTION_SWITCH,                                    \
      .help = "synchronous mode: a write's reply waits until no node can serve the old "        \
              "value; nodes serve hits only under read leases from every peer",                 \
      .stat = "bus_sync")                                                                       \
    X(uint32_t, sync_nodes, .name = "bus-sync-nodes", .type = OPTION_INT, .arg = "<num>",      \
      .def = "0", .min = 0, .max = 256,                                                         \
      .help = "--bus-sync: how many nodes the fleet has, this one included (default in "        \
              "unicast mode: the peers + 1; required in multicast mode)",                       \
      .stat = "bus_sync_nodes", .bad = "Invalid --bus-sync-nodes: %s (want 1-256)")             \
    X(uint32_t, lease_ms, .name = "bus-lease-ms", .type = OPTION_INT, .arg = "<num>",          \
      .def = "100", .min = 5, .max = 60000,                                                     \
      .help = "--bus-sync: read lease length in milliseconds: the longest a write waits for a " \
              "silent peer",                                                                    \
      .stat = "bus_lease_ms", .bad = "Invalid --bus-lease-ms: %s (want 5-60000)")

struct bus_options {
    BUS_OPTIONS(OPTION_FIELD, OPTION_SKIP)
    /* Tuning, not options; 0 means the default in brackets. */
    uint32_t heartbeat_ms;      /* [100] */
    uint32_t nack_interval_ms;  /* [30] the longest interval between NACKs for the same holes */
    uint32_t nack_min_us;       /* [500] the shortest; between them, 2 x RTT + 250 us */
    bool no_tail_repeat;        /* [false] do not resend the last DATA datagram of a burst */
    uint32_t ration_us;         /* [250] a datagram goes to one destination at most this often */
    uint32_t repair_window_ms;  /* [15] ... and a destination gets at most the ring per window */
    /* Set by main: --bus-sync calls it (from the bus thread) whenever
     * bus_sync_done() moved, so whoever parks replies can wake them. */
    void (*on_sync_progress)(void);
    uint32_t repair_deadline_ms;/* [500] a hole older than this: flush */
    uint32_t peer_timeout_ms;   /* [1000] a peer silent this long: flush */
    uint32_t ring_size;         /* [1024] datagrams kept for repair, up to 4096 */
    uint32_t forget_ms;         /* [10000] a lost or departed peer's entry goes (its lives stay) */
};

/* The rows of BUS_OPTIONS, for the option parser (src/option.h). */
extern const struct option_row bus_option_rows[];
extern const size_t bus_option_nrows;

/* Fills opts with the rows' defaults: no bus configured, ttl 1. */
void
bus_options_default(struct bus_options *opts);

/* True when opts ask for a bus (a group or a listen address). */
bool
bus_enabled(const struct bus_options *opts);

/* Opens the sockets, loads the key, starts the bus thread. Call once, after
 * cache_setup(). Returns false with a one-line reason in err (size errlen);
 * nothing is left running then. Without a key file it refuses (the reason
 * says how to make a key) unless opts->insecure, and then logs a warning
 * (log_error). */
bool
bus_setup(const struct bus_options *opts, char *err, size_t errlen);

/* Sends what is pending and a goodbye heartbeat, stops the thread, closes
 * everything. Safe to call when bus_setup was not called or failed. Publishing
 * concurrently with or after teardown is a no-op. */
void
bus_teardown(void);

/* A client changed key on this node (any successful store, delete, incr,
 * decr...). has_hash/value_hash: the new value's cache_value_hash() for
 * set-like changes, so peers holding the same value keep it; has_hash false
 * for a delete. Thread-safe and cheap (a short lock, no syscall). The key
 * goes out at the publishing thread's next bus_publish_poll() once its batch
 * has waited the flush delay. No-op while the bus is not running. */
void
bus_publish_invalidate(const char *key, size_t nkey, bool has_hash, uint64_t value_hash);

/* A client marked key stale on this node (meta `md key I`, with T: its new
 * expiry as sent): peers mark their copies stale too, with the same expiry,
 * instead of dropping them. Goes out in a version-2 datagram (bus/wire.h:
 * a node too old to read it flushes). Thread-safe, as bus_publish_invalidate. */
void
bus_publish_stale(const char *key, size_t nkey, bool has_exptime, int64_t exptime);

/* A client ran flush_all [delay] on this node. */
void
bus_publish_flush(int64_t delay);
/* Sends the batches that are due. A thread that published must call it
 * between bursts of work (a worker: before each poll for events, and after
 * each connection it served) and again within the returned number of
 * microseconds, or -1 when nothing waits. Cheap until something is due: an
 * atomic load, and a clock read while keys wait. */
int64_t
bus_publish_poll(void);

/* `stats bus`: calls emit once per line, memcached style (name, value). */
typedef void (*bus_stat_fn)(const char *name, const char *value, void *ctx);
void
bus_stats(bus_stat_fn emit, void *ctx);

/* --- synchronous mode (--bus-sync) -------------------------------------------------------
 * Tickets: every publication gets the next number. A client's reply for a
 * mutation waits until bus_sync_done() reaches its ticket: then every peer
 * applied it, or provably serves no hits until it has (docs/consistency.md).
 * The wait is bounded by the lease (--bus-lease-ms, plus a sixteenth). */

/* The ticket of the calling thread's last publication (0: none). */
uint64_t
bus_sync_ticket(void);

/* The highest ticket the fleet has applied. One atomic load. */
uint64_t
bus_sync_done(void);

/* May this node serve a hit now? True while it holds a usable read lease
 * from every peer (and always without --bus-sync). One atomic load and one
 * clock read; a refusal is counted. */
bool
bus_read_ok(void);

/* True when the bus runs in synchronous mode. */
bool
bus_sync_enabled(void);

/* This node's id (0 while not running). */
uint32_t
bus_node_id(void);

#endif
