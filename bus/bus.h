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

struct bus_options {
    const char *group;          /* --bus-group ADDR:PORT: multicast mode */
    const char *interface;      /* --bus-interface ADDR: join and send there; NULL: kernel's choice */
    int ttl;                    /* --bus-ttl, default 1; 0 keeps datagrams on this host */
    const char *listen;         /* --bus-listen ADDR:PORT: unicast mode ... */
    const char *peers;          /* --bus-peers HOST:PORT,...: ... sending to each of these */
    const char *key_file;       /* --bus-key-file PATH: 64 hex digits or 32 raw bytes */
    bool insecure;              /* --bus-insecure: run without a key (bus_setup refuses otherwise) */
    uint64_t node_id;           /* --bus-node-id, 1..4294967295; 0: random; more: bus_setup fails */
    uint32_t flush_delay_us;    /* --bus-flush-delay-us: a batch waits at most this long (default 500) */
    uint32_t announce_window_ms;/* --bus-announce-window-ms (default 2000; 0: off): see
                                 * bus/receive.c, "differs -> announce" */
    /* Tuning; 0 means the default in brackets. */
    uint32_t heartbeat_ms;      /* [100] */
    uint32_t nack_interval_ms;  /* [30] between NACKs for the same holes */
    uint32_t repair_deadline_ms;/* [500] a hole older than this: flush */
    uint32_t peer_timeout_ms;   /* [1000] a peer silent this long: flush */
    uint32_t ring_size;         /* [1024] datagrams kept for repair, up to 4096 */
    uint32_t forget_ms;         /* [10000] a lost or departed peer's entry goes (its lives stay) */
};

/* Fills opts with the defaults: no bus configured, ttl 1. */
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

/* This node's id (0 while not running). */
uint32_t
bus_node_id(void);

#endif
