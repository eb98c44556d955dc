/* config: fleetcached's command line. One X-macro table of options (short
 * flag, long name, argument, help) generates getopt_long's tables and
 * --help; a second table of `stats settings` lines reads the parsed config.
 * Validation refuses what memcached 1.6.18 refuses, with one clear line. */
#ifndef FLEETCACHE_SRC_CONFIG_H
#define FLEETCACHE_SRC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "net/net.h"

struct config {
    /* network */
    int port;                   /* -p */
    int udp_port;               /* -U, accepted; UDP is never served */
    char *listen;               /* -l, repeated flags joined with ',' */
    char *unix_path;            /* -s */
    unsigned unix_mask;         /* -a */
    int backlog;                /* -b */
    unsigned max_conns;         /* -c */
    unsigned threads;           /* -t */
    unsigned reqs_per_event;    /* -R */
    unsigned idle_timeout;      /* -o idle_timeout */
    unsigned worker_slice_us;   /* -o worker_slice_us */
    bool shutdown_enabled;      /* -A */
    bool flush_enabled;         /* -F clears */
    char *protocol;             /* -B: ascii or auto */
    /* cache */
    uint64_t mem_limit;         /* -m, bytes */
    bool evict;                 /* -M clears */
    bool use_cas;               /* -C clears */
    uint64_t item_max;          /* -I, bytes */
    double factor;              /* -f */
    uint32_t chunk_min;         /* -n */
    uint32_t slab_chunk_max;    /* -o slab_chunk_max, bytes */
    bool slab_chunk_max_set;
    unsigned hashpower;         /* -o hashpower; 0 = the cache's default */
    bool lru_crawler;           /* -o [no_]lru_crawler */
    bool lru_maintainer;        /* -o [no_]lru_maintainer */
    bool track_sizes;           /* -o track_sizes */
    uint32_t max_ttl;           /* --max-ttl */
    /* process */
    int verbose;                /* -v, -vv, -vvv */
    bool daemonize;             /* -d */
    char *pidfile;              /* -P */
    char *user;                 /* -u */
    bool help, version;         /* -h, -V */
    /* invalidation bus: parsed and validated here, used by bus/ via main */
    char *bus_group;            /* --bus-group ADDR:PORT */
    char *bus_interface;        /* --bus-interface ADDR */
    int bus_ttl;                /* --bus-ttl N (0..255) */
    char *bus_peers;            /* --bus-peers HOST:PORT,... */
    char *bus_listen;           /* --bus-listen ADDR:PORT */
    char *bus_key_file;         /* --bus-key-file PATH */
    bool bus_insecure;          /* --bus-insecure */
    uint64_t bus_node_id;       /* --bus-node-id N */
    bool bus_node_id_set;
    uint32_t bus_flush_delay_us;    /* --bus-flush-delay-us N */
    uint32_t bus_announce_window_ms; /* --bus-announce-window-ms N (0: off) */
};

/* memcached's defaults (-p 11211, -m 64, -c 1024, -t 4, -I 1m ...). */
void
config_init(struct config *cfg);

/* Frees the strings the config owns. */
void
config_deinit(struct config *cfg);

/* Parses argv into cfg and validates it. On failure returns false with one
 * line in err and *exit_code set to memcached's exit status for it. */
bool
config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen,
             int *exit_code);

/* Writes --help. */
void
config_usage(FILE *out, const char *version);

/* Fills net options from cfg, `stats settings` included (the bus hooks are
 * left NULL for main to bind). cfg must outlive net/. */
void
config_net_options(const struct config *cfg, struct net_options *out);

/* net/'s settings callback: the `stats settings` lines for the struct
 * config at arg, in memcached's order. */
void
config_stats_settings(void *arg, net_stat_emit_fn emit, void *ctx);

#endif
