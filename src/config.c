/* config: option parsing and validation. CONFIG_OPTIONS is the only list of
 * flags: getopt_long's short string and long table, --help, and the
 * dispatch enum all come from it. Checks and their messages follow
 * memcached 1.6.18 (same words, same exit status) so scripts that start
 * memcached start fleetcached unchanged. */
#include "src/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "src/log.h"
#include "src/util.h"

/* sysexits.h values memcached uses. */
#define EXIT_USAGE 64

#define ITEM_SIZE_MIN 1024
#define ITEM_SIZE_MAX_LIMIT (1024u * 1024 * 1024)

/* id, short flag (0: long only), long name, argument (0 none, 1 required),
 * argument name, help. */
#define CONFIG_OPTIONS(X)                                                                 \
    X(PORT, 'p', "port", 1, "<num>", "TCP port to listen on (default: 11211)")            \
    X(UDP_PORT, 'U', "udp-port", 1, "<num>", "accepted for compatibility; UDP is never served") \
    X(UNIX_SOCKET, 's', "unix-socket", 1, "<file>", "UNIX socket to listen on (disables network support)") \
    X(UNIX_MASK, 'a', "unix-mask", 1, "<mask>", "access mask for UNIX socket, in octal (default: 700)") \
    X(ENABLE_SHUTDOWN, 'A', "enable-shutdown", 0, "", "enable ascii \"shutdown\" command")  \
    X(LISTEN, 'l', "listen", 1, "<addr>", "interface to listen on (default: INADDR_ANY); repeat or comma-separate for several") \
    X(DAEMON, 'd', "daemon", 0, "", "run as a daemon")                                    \
    X(USER, 'u', "user", 1, "<user>", "assume identity of <username> (only when run as root)") \
    X(MEMORY_LIMIT, 'm', "memory-limit", 1, "<num>", "item memory in megabytes (default: 64)") \
    X(DISABLE_EVICTIONS, 'M', "disable-evictions", 0, "", "return error on memory exhausted instead of evicting") \
    X(CONN_LIMIT, 'c', "conn-limit", 1, "<num>", "max simultaneous connections (default: 1024)") \
    X(VERBOSE, 'v', "verbose", 0, "", "verbose (print errors/warnings); -vv also prints client commands") \
    X(HELP, 'h', "help", 0, "", "print this help and exit")                               \
    X(VERSION, 'V', "version", 0, "", "print version and exit")                           \
    X(PIDFILE, 'P', "pidfile", 1, "<file>", "save PID in <file>, only used with -d option") \
    X(GROWTH_FACTOR, 'f', "slab-growth-factor", 1, "<num>", "chunk size growth factor (default: 1.25)") \
    X(SLAB_MIN_SIZE, 'n', "slab-min-size", 1, "<bytes>", "min space used for key+value+flags (default: 48)") \
    X(THREADS, 't', "threads", 1, "<num>", "number of threads to use (default: 4)")        \
    X(REQS_PER_EVENT, 'R', "max-reqs-per-event", 1, "<num>", "maximum number of requests per event (default: 20)") \
    X(DISABLE_CAS, 'C', "disable-cas", 0, "", "disable use of CAS")                       \
    X(BACKLOG, 'b', "listen-backlog", 1, "<num>", "set the backlog queue limit (default: 1024)") \
    X(PROTOCOL, 'B', "protocol", 1, "<name>", "protocol: ascii or auto (binary is not supported)") \
    X(MAX_ITEM_SIZE, 'I', "max-item-size", 1, "<num>", "adjusts max item size (default: 1m, min: 1k, max: 1024m)") \
    X(DISABLE_FLUSH, 'F', "disable-flush-all", 0, "", "disable flush_all command")        \
    X(EXTENDED, 'o', "extended", 1, "<opts>", "comma separated list of extended options (below)") \
    X(MAX_TTL, 0, "max-ttl", 1, "<secs>", "cap every item's TTL at <secs> seconds (default: 0, no cap)") \
    X(BUS_GROUP, 0, "bus-group", 1, "<addr:port>", "invalidation bus multicast group")    \
    X(BUS_INTERFACE, 0, "bus-interface", 1, "<addr>", "local address of the interface the bus uses") \
    X(BUS_TTL, 0, "bus-ttl", 1, "<num>", "multicast TTL of bus datagrams (0-255, default: 1)") \
    X(BUS_PEERS, 0, "bus-peers", 1, "<host:port,...>", "unicast bus peers (instead of multicast)") \
    X(BUS_LISTEN, 0, "bus-listen", 1, "<addr:port>", "address the unicast bus listens on") \
    X(BUS_KEY_FILE, 0, "bus-key-file", 1, "<path>", "shared key file: authenticate every bus datagram (64 hex digits; required unless --bus-insecure)") \
    X(BUS_INSECURE, 0, "bus-insecure", 0, "", "run the bus without a key: anyone on the network can flush this node") \
    X(BUS_NODE_ID, 0, "bus-node-id", 1, "<num>", "this node's id on the bus (default: random)") \
    X(BUS_FLUSH_DELAY_US, 0, "bus-flush-delay-us", 1, "<num>", "longest a key waits for its batch; a quiet bus sends at once (microseconds, default: 500)") \
    X(BUS_ANNOUNCE_WINDOW_MS, 0, "bus-announce-window-ms", 1, "<num>", "a node that wrote a key this recently and hears another value for it announces a delete (default: 2000, 0: off)")

/* -o sub-options: id, name, takes a value, help. */
#define CONFIG_SUBOPTIONS(X)                                                             \
    X(IDLE_TIMEOUT, "idle_timeout", 1, "timeout for idle connections in seconds (default: 0, no timeout)") \
    X(SLAB_CHUNK_MAX, "slab_chunk_max", 1, "largest slab chunk in bytes; bigger items are stored whole (default: half of -I)") \
    X(WORKER_SLICE_US, "worker_slice_us", 1, "a busy worker yields its core after this many microseconds (default: 500, 0: never)") \
    X(HASHPOWER, "hashpower", 1, "initial hash table size as a power of two (default: 16)") \
    X(TRACK_SIZES, "track_sizes", 0, "enable 'stats sizes'")                             \
    X(MODERN, "modern", 0, "accepted; current defaults are already modern")             \
    X(NO_MODERN, "no_modern", 0, "accepted; no effect")                                  \
    X(LRU_CRAWLER, "lru_crawler", 0, "background reclaim of expired items (default: on)") \
    X(NO_LRU_CRAWLER, "no_lru_crawler", 0, "disable background reclaim of expired items") \
    X(LRU_MAINTAINER, "lru_maintainer", 0, "background maintenance thread (default: on)") \
    X(NO_LRU_MAINTAINER, "no_lru_maintainer", 0, "disable the background maintenance thread")

enum config_opt_id {
#define CONFIG_OPT_ENUM(id, sc, name, arg, argname, help) OPT_##id,
    CONFIG_OPTIONS(CONFIG_OPT_ENUM)
#undef CONFIG_OPT_ENUM
    OPT_COUNT
};

enum config_subopt_id {
#define CONFIG_SUBOPT_ENUM(id, name, arg, help) SUBOPT_##id,
    CONFIG_SUBOPTIONS(CONFIG_SUBOPT_ENUM)
#undef CONFIG_SUBOPT_ENUM
    SUBOPT_COUNT
};

struct config_opt_row {
    int short_flag;
    const char *name;
    int has_arg;
    const char *argname;
    const char *help;
};

static const struct config_opt_row config_opts[OPT_COUNT] = {
#define CONFIG_OPT_ROW(id, sc, name, arg, argname, help) [OPT_##id] = { sc, name, arg, argname, help },
    CONFIG_OPTIONS(CONFIG_OPT_ROW)
#undef CONFIG_OPT_ROW
};

struct config_subopt_row {
    const char *name;
    int has_arg;
    const char *help;
};

static const struct config_subopt_row config_subopts[SUBOPT_COUNT] = {
#define CONFIG_SUBOPT_ROW(id, name, arg, help) [SUBOPT_##id] = { name, arg, help },
    CONFIG_SUBOPTIONS(CONFIG_SUBOPT_ROW)
#undef CONFIG_SUBOPT_ROW
};

/* Long-only options get getopt values above any char. */
#define CONFIG_LONG_BASE 0x100

void
config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->port = 11211;
    cfg->unix_mask = 0700;
    cfg->backlog = 1024;
    cfg->max_conns = 1024;
    cfg->threads = 4;
    cfg->reqs_per_event = 20;
    cfg->worker_slice_us = 500;
    cfg->flush_enabled = true;
    cfg->mem_limit = 64ull * 1024 * 1024;
    cfg->evict = true;
    cfg->use_cas = true;
    cfg->item_max = 1024 * 1024;
    cfg->factor = 1.25;
    cfg->chunk_min = 48;
    cfg->lru_crawler = true;
    cfg->lru_maintainer = true;
    cfg->bus_ttl = 1;
    cfg->bus_flush_delay_us = 500; /* the bus batches for at most this long */
    cfg->bus_announce_window_ms = 2000;
}

void
config_deinit(struct config *cfg)
{
    free(cfg->listen);
    free(cfg->unix_path);
    free(cfg->protocol);
    free(cfg->pidfile);
    free(cfg->user);
    free(cfg->bus_group);
    free(cfg->bus_interface);
    free(cfg->bus_peers);
    free(cfg->bus_listen);
    free(cfg->bus_key_file);
    memset(cfg, 0, sizeof(*cfg));
}

static bool
config_fail(char *err, size_t errlen, int *exit_code, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool
config_fail(char *err, size_t errlen, int *exit_code, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    *exit_code = code;
    return false;
}

static void
config_set_str(char **dst, const char *val)
{
    free(*dst);
    *dst = strdup(val);
}

/* memcached reads most numbers with atoi; we refuse junk instead of
 * silently reading it as 0, and otherwise accept what memcached accepts. */
static bool
config_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* "host:port" with a numeric port; host may be "[v6]". */
static bool
config_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    long long port;
    return colon != NULL && colon != s && config_int(colon + 1, 1, 65535, &port);
}

static bool
config_parse_subopts(struct config *cfg, const char *arg, char *err, size_t errlen,
                     int *exit_code)
{
    char *list = strdup(arg);
    char *save = NULL;
    bool ok = true;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL && ok;
         tok = strtok_r(NULL, ",", &save)) {
        char *val = strchr(tok, '=');
        if (val != NULL)
            *val++ = '\0';
        int id = -1;
        for (int i = 0; i < SUBOPT_COUNT; i++)
            if (strcmp(tok, config_subopts[i].name) == 0)
                id = i;
        if (id < 0) {
            ok = config_fail(err, errlen, exit_code, 1, "Illegal suboption \"%s\"", tok);
            break;
        }
        if (config_subopts[id].has_arg && val == NULL) {
            ok = config_fail(err, errlen, exit_code, 1, "Missing numeric argument for %s", tok);
            break;
        }
        long long v = 0;
        switch ((enum config_subopt_id)id) {
        case SUBOPT_IDLE_TIMEOUT:
            if (!config_int(val, 0, UINT32_MAX, &v))
                ok = config_fail(err, errlen, exit_code, 1, "Invalid idle_timeout: %s", val);
            cfg->idle_timeout = (unsigned)v;
            break;
        case SUBOPT_WORKER_SLICE_US:
            if (!config_int(val, 0, 1000000, &v))
                ok = config_fail(err, errlen, exit_code, 1, "Invalid worker_slice_us: %s (want 0-1000000)", val);
            cfg->worker_slice_us = (unsigned)v;
            break;
        case SUBOPT_SLAB_CHUNK_MAX:
            if (!config_int(val, 1, UINT32_MAX, &v))
                ok = config_fail(err, errlen, exit_code, 1, "Invalid slab_chunk_max: %s", val);
            cfg->slab_chunk_max = (uint32_t)v;
            cfg->slab_chunk_max_set = true;
            break;
        case SUBOPT_HASHPOWER:
            /* memcached: atoi, so junk reads as 0 and is "too low". */
            if (!config_int(val, INT32_MIN, INT32_MAX, &v))
                v = 0;
            if (v < 12)
                ok = config_fail(err, errlen, exit_code, 1,
                                 "Initial hashtable multiplier of %lld is too low", v);
            else if (v > 63)
                ok = config_fail(err, errlen, exit_code, 1,
                                 "Initial hashtable multiplier of %lld is too high", v);
            cfg->hashpower = (unsigned)v;
            break;
        case SUBOPT_TRACK_SIZES:
            cfg->track_sizes = true;
            break;
        case SUBOPT_MODERN:
        case SUBOPT_NO_MODERN:
            break;
        case SUBOPT_LRU_CRAWLER:
            cfg->lru_crawler = true;
            break;
        case SUBOPT_NO_LRU_CRAWLER:
            cfg->lru_crawler = false;
            break;
        case SUBOPT_LRU_MAINTAINER:
            cfg->lru_maintainer = true;
            break;
        case SUBOPT_NO_LRU_MAINTAINER:
            cfg->lru_maintainer = false;
            break;
        case SUBOPT_COUNT:
            break;
        }
    }
    free(list);
    return ok;
}

static bool
config_apply(struct config *cfg, enum config_opt_id id, const char *arg, char *err,
             size_t errlen, int *exit_code)
{
    long long v = 0;
    uint64_t size = 0;
    switch (id) {
    case OPT_PORT:
        if (!config_int(arg, 0, INT32_MAX, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "ERROR: Invalid port number %s.", arg);
        if (v > 65535)
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "ERROR: Invalid port number %lld.", v);
        cfg->port = (int)v;
        break;
    case OPT_UDP_PORT:
        if (!config_int(arg, 0, 65535, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "ERROR: Invalid port number %s.", arg);
        cfg->udp_port = (int)v;
        break;
    case OPT_UNIX_SOCKET:
        config_set_str(&cfg->unix_path, arg);
        break;
    case OPT_UNIX_MASK: {
        char *end;
        unsigned long m = strtoul(arg, &end, 8);
        if (end == arg || *end != '\0' || m > 0777)
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid unix socket mask: %s", arg);
        cfg->unix_mask = (unsigned)m;
        break;
    }
    case OPT_ENABLE_SHUTDOWN:
        cfg->shutdown_enabled = true;
        break;
    case OPT_LISTEN:
        if (cfg->listen == NULL) {
            config_set_str(&cfg->listen, arg);
        } else {
            /* memcached joins repeated -l flags into one list. */
            size_t n = strlen(cfg->listen) + strlen(arg) + 2;
            char *joined = malloc(n);
            snprintf(joined, n, "%s,%s", cfg->listen, arg);
            free(cfg->listen);
            cfg->listen = joined;
        }
        break;
    case OPT_DAEMON:
        cfg->daemonize = true;
        break;
    case OPT_USER:
        config_set_str(&cfg->user, arg);
        break;
    case OPT_MEMORY_LIMIT:
        /* A bare number is megabytes; a k/m/g suffix is taken as written. */
        if (config_int(arg, 0, INT64_MAX / (1024 * 1024), &v))
            size = (uint64_t)v * 1024 * 1024;
        else if (!util_parse_size(arg, &size))
            size = 0; /* memcached: junk reads as 0, refused below */
        cfg->mem_limit = size;
        break;
    case OPT_DISABLE_EVICTIONS:
        cfg->evict = false;
        break;
    case OPT_CONN_LIMIT:
        if (!config_int(arg, INT32_MIN, INT32_MAX, &v) || v <= 0)
            return config_fail(err, errlen, exit_code, 1, "Maximum connections must be greater than 0");
        cfg->max_conns = (unsigned)v;
        break;
    case OPT_VERBOSE:
        cfg->verbose++;
        break;
    case OPT_HELP:
        cfg->help = true;
        break;
    case OPT_VERSION:
        cfg->version = true;
        break;
    case OPT_PIDFILE:
        config_set_str(&cfg->pidfile, arg);
        break;
    case OPT_GROWTH_FACTOR: {
        char *end;
        double f = strtod(arg, &end);
        if (end == arg || *end != '\0' || !(f > 1.0))
            return config_fail(err, errlen, exit_code, 1, "Factor must be greater than 1");
        cfg->factor = f;
        break;
    }
    case OPT_SLAB_MIN_SIZE:
        if (!config_int(arg, INT32_MIN, INT32_MAX, &v) || v <= 0)
            return config_fail(err, errlen, exit_code, 1, "Chunk size must be greater than 0");
        cfg->chunk_min = (uint32_t)v;
        break;
    case OPT_THREADS:
        if (!config_int(arg, INT32_MIN, INT32_MAX, &v) || v <= 0)
            return config_fail(err, errlen, exit_code, 1, "Number of threads must be greater than 0");
        if (v > 1024)
            return config_fail(err, errlen, exit_code, 1, "Number of threads must be at most 1024");
        if (v > 64)
            fprintf(stderr, "WARNING: Setting a high number of workerthreads is not recommended.\n"
                            " Set this value to the number of cores in your machine or less.\n");
        cfg->threads = (unsigned)v;
        break;
    case OPT_REQS_PER_EVENT:
        if (!config_int(arg, INT32_MIN, INT32_MAX, &v) || v <= 0)
            return config_fail(err, errlen, exit_code, 1,
                               "Number of requests per event must be greater than 0");
        cfg->reqs_per_event = (unsigned)v;
        break;
    case OPT_DISABLE_CAS:
        cfg->use_cas = false;
        break;
    case OPT_BACKLOG:
        if (!config_int(arg, 1, INT32_MAX, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid listen backlog: %s", arg);
        cfg->backlog = (int)v;
        break;
    case OPT_PROTOCOL:
        if (strcmp(arg, "auto") != 0 && strcmp(arg, "ascii") != 0) {
            if (strcmp(arg, "binary") == 0)
                return config_fail(err, errlen, exit_code, EXIT_USAGE,
                                   "The binary protocol is not supported: use ascii or auto");
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid value for binding protocol: %s -- should be one of auto, binary, or ascii",
                               arg);
        }
        config_set_str(&cfg->protocol, arg);
        break;
    case OPT_MAX_ITEM_SIZE:
        if (!util_parse_size(arg, &size))
            size = 0; /* memcached: junk is "less than 1024 bytes" */
        if (size < ITEM_SIZE_MIN)
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Item max size cannot be less than 1024 bytes.");
        if (size > ITEM_SIZE_MAX_LIMIT)
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Cannot set item size limit higher than a gigabyte.");
        cfg->item_max = size;
        break;
    case OPT_DISABLE_FLUSH:
        cfg->flush_enabled = false;
        break;
    case OPT_EXTENDED:
        return config_parse_subopts(cfg, arg, err, errlen, exit_code);
    case OPT_MAX_TTL:
        if (!config_int(arg, 0, UINT32_MAX, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid --max-ttl: %s", arg);
        cfg->max_ttl = (uint32_t)v;
        break;
    case OPT_BUS_GROUP:
        if (!config_hostport(arg))
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-group: %s (want ADDR:PORT)", arg);
        config_set_str(&cfg->bus_group, arg);
        break;
    case OPT_BUS_INTERFACE:
        if (arg[0] == '\0')
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid --bus-interface: empty");
        config_set_str(&cfg->bus_interface, arg);
        break;
    case OPT_BUS_TTL:
        if (!config_int(arg, 0, 255, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-ttl: %s (want 0-255)", arg);
        cfg->bus_ttl = (int)v;
        break;
    case OPT_BUS_PEERS: {
        char *list = strdup(arg);
        char *save = NULL;
        bool good = arg[0] != '\0';
        for (char *p = strtok_r(list, ",", &save); p != NULL && good;
             p = strtok_r(NULL, ",", &save))
            good = config_hostport(p);
        free(list);
        if (!good)
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-peers: %s (want HOST:PORT,...)", arg);
        config_set_str(&cfg->bus_peers, arg);
        break;
    }
    case OPT_BUS_LISTEN:
        if (!config_hostport(arg))
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-listen: %s (want ADDR:PORT)", arg);
        config_set_str(&cfg->bus_listen, arg);
        break;
    case OPT_BUS_KEY_FILE:
        if (arg[0] == '\0')
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid --bus-key-file: empty");
        config_set_str(&cfg->bus_key_file, arg);
        break;
    case OPT_BUS_INSECURE:
        cfg->bus_insecure = true;
        break;
    case OPT_BUS_NODE_ID: {
        uint64_t node_id;
        if (!util_parse_u64(arg, strlen(arg), &node_id))
            return config_fail(err, errlen, exit_code, EXIT_USAGE, "Invalid --bus-node-id: %s", arg);
        cfg->bus_node_id = node_id;
        cfg->bus_node_id_set = true;
        break;
    }
    case OPT_BUS_FLUSH_DELAY_US:
        if (!config_int(arg, 0, 10 * 1000 * 1000, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-flush-delay-us: %s (want 0-10000000)", arg);
        cfg->bus_flush_delay_us = (uint32_t)v;
        break;
    case OPT_BUS_ANNOUNCE_WINDOW_MS:
        if (!config_int(arg, 0, 3600 * 1000, &v))
            return config_fail(err, errlen, exit_code, EXIT_USAGE,
                               "Invalid --bus-announce-window-ms: %s (want 0-3600000)", arg);
        cfg->bus_announce_window_ms = (uint32_t)v;
        break;
    case OPT_COUNT:
        break;
    }
    return true;
}

/* Cross-option checks, in memcached's order. */
static bool
config_validate(struct config *cfg, char *err, size_t errlen, int *exit_code)
{
    if (cfg->item_max > cfg->mem_limit / 2)
        return config_fail(err, errlen, exit_code, EXIT_USAGE,
                           "Cannot set item size limit higher than 1/2 of memory max.");
    /* memcached 1.6.18 does not shrink its 512 KiB default to fit a small
     * -I: -I below 512k needs an explicit -o slab_chunk_max. */
    if (!cfg->slab_chunk_max_set)
        cfg->slab_chunk_max = 512 * 1024;
    if (cfg->slab_chunk_max > cfg->item_max)
        return config_fail(err, errlen, exit_code, EXIT_USAGE,
                           "slab_chunk_max (bytes: %u) cannot be larger than -I (item_size_max %llu)",
                           cfg->slab_chunk_max, (unsigned long long)cfg->item_max);
    if (cfg->item_max % cfg->slab_chunk_max != 0)
        return config_fail(err, errlen, exit_code, EXIT_USAGE,
                           "-I (item_size_max: %llu) must be evenly divisible by slab_chunk_max (bytes: %u)",
                           (unsigned long long)cfg->item_max, cfg->slab_chunk_max);
    if (cfg->bus_peers != NULL && cfg->bus_group != NULL)
        return config_fail(err, errlen, exit_code, EXIT_USAGE,
                           "--bus-peers and --bus-group are exclusive: pick unicast or multicast");
    return true;
}

bool
config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen,
             int *exit_code)
{
    struct option longopts[OPT_COUNT + 1];
    char shortopts[2 * OPT_COUNT + 1];
    size_t ns = 0;
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct config_opt_row *r = &config_opts[i];
        longopts[i] = (struct option){ r->name, r->has_arg ? required_argument : no_argument,
                                       NULL, r->short_flag ? r->short_flag : CONFIG_LONG_BASE + i };
        if (r->short_flag) {
            shortopts[ns++] = (char)r->short_flag;
            if (r->has_arg)
                shortopts[ns++] = ':';
        }
    }
    longopts[OPT_COUNT] = (struct option){ NULL, 0, NULL, 0 };
    shortopts[ns] = '\0';

    optind = 1;
    opterr = 1; /* getopt prints its own "invalid option" line */
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int id = -1;
        if (c >= CONFIG_LONG_BASE) {
            id = c - CONFIG_LONG_BASE;
        } else {
            for (int i = 0; i < OPT_COUNT; i++)
                if (config_opts[i].short_flag == c)
                    id = i;
        }
        if (id < 0)
            return config_fail(err, errlen, exit_code, 1, "Illegal argument \"%c\"", '?');
        if (!config_apply(cfg, (enum config_opt_id)id, optarg, err, errlen, exit_code))
            return false;
    }
    if (optind < argc)
        return config_fail(err, errlen, exit_code, 1, "Unexpected argument \"%s\"", argv[optind]);
    if (cfg->help || cfg->version)
        return true;
    return config_validate(cfg, err, errlen, exit_code);
}

void
config_usage(FILE *out, const char *version)
{
    fprintf(out, "fleetcached %s\n", version);
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct config_opt_row *r = &config_opts[i];
        char left[64];
        if (r->short_flag)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", r->short_flag, r->name,
                     r->has_arg ? "=" : "", r->argname);
        else
            snprintf(left, sizeof(left), "    --%s%s%s", r->name, r->has_arg ? "=" : "",
                     r->argname);
        fprintf(out, "%-32s %s\n", left, r->help);
    }
    fprintf(out, "-o options:\n");
    for (int i = 0; i < SUBOPT_COUNT; i++) {
        const struct config_subopt_row *r = &config_subopts[i];
        fprintf(out, "   - %-22s %s\n", r->name, r->help);
    }
}

void
config_net_options(const struct config *cfg, struct net_options *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = cfg->listen;
    o->tcp_port = cfg->port;
    o->unix_path = cfg->unix_path;
    o->unix_mask = cfg->unix_mask;
    o->backlog = cfg->backlog;
    o->threads = cfg->threads;
    o->max_conns = cfg->max_conns;
    o->reqs_per_event = cfg->reqs_per_event;
    o->idle_timeout = cfg->idle_timeout;
    o->worker_slice_us = cfg->worker_slice_us;
    o->shutdown_enabled = cfg->shutdown_enabled;
    o->flush_enabled = cfg->flush_enabled;
    o->track_sizes = cfg->track_sizes;
    o->settings = config_stats_settings;
    o->settings_arg = (void *)cfg;
}

#define YESNO(b) ((b) ? "yes" : "no")

/* name, format, value: memcached 1.6.18's `stats settings`, in its order,
 * without the extstore/TLS/proxy lines (those features do not exist here). */
#define CONFIG_SETTINGS(X)                                                     \
    X("maxbytes", "%llu", (unsigned long long)cfg->mem_limit)                  \
    X("maxconns", "%u", cfg->max_conns)                                        \
    X("tcpport", "%d", cfg->port)                                              \
    X("udpport", "%d", cfg->udp_port)                                          \
    X("inter", "%s", cfg->listen ? cfg->listen : "NULL")                       \
    X("verbosity", "%d", log_verbosity())                                      \
    X("oldest", "%d", 0)                                                       \
    X("evictions", "%s", cfg->evict ? "on" : "off")                            \
    X("domain_socket", "%s", cfg->unix_path ? cfg->unix_path : "NULL")         \
    X("umask", "%o", cfg->unix_mask)                                           \
    X("shutdown_command", "%s", YESNO(cfg->shutdown_enabled))                  \
    X("growth_factor", "%.2f", cfg->factor)                                    \
    X("chunk_size", "%u", cfg->chunk_min)                                      \
    X("num_threads", "%u", cfg->threads)                                       \
    X("num_threads_per_udp", "%u", cfg->threads)                               \
    X("stat_key_prefix", "%s", ":")                                            \
    X("detail_enabled", "%s", "no")                                            \
    X("reqs_per_event", "%u", cfg->reqs_per_event)                             \
    X("cas_enabled", "%s", YESNO(cfg->use_cas))                                \
    X("tcp_backlog", "%d", cfg->backlog)                                       \
    X("binding_protocol", "%s", cfg->protocol && strcmp(cfg->protocol, "ascii") == 0 ? "ascii" : "auto-negotiate") \
    X("auth_enabled_sasl", "%s", "no")                                         \
    X("auth_enabled_ascii", "%s", "no")                                        \
    X("item_size_max", "%llu", (unsigned long long)cfg->item_max)              \
    X("maxconns_fast", "%s", "yes")                                            \
    X("hashpower_init", "%u", cfg->hashpower)                                  \
    X("slab_reassign", "%s", "yes")                                            \
    X("slab_automove", "%d", 1)                                                \
    X("slab_automove_ratio", "%.2f", 0.8)                                      \
    X("slab_automove_window", "%d", 30)                                        \
    X("slab_chunk_max", "%u", cfg->slab_chunk_max)                             \
    X("lru_crawler", "%s", YESNO(cfg->lru_crawler))                            \
    X("lru_crawler_sleep", "%d", 100)                                          \
    X("lru_crawler_tocrawl", "%d", 0)                                          \
    X("tail_repair_time", "%d", 0)                                             \
    X("flush_enabled", "%s", YESNO(cfg->flush_enabled))                        \
    X("dump_enabled", "%s", "no")                                              \
    X("hash_algorithm", "%s", "xxh3")                                          \
    X("lru_maintainer_thread", "%s", YESNO(cfg->lru_maintainer))               \
    X("lru_segmented", "%s", "yes")                                            \
    X("hot_lru_pct", "%d", 20)                                                 \
    X("warm_lru_pct", "%d", 40)                                                \
    X("hot_max_factor", "%.2f", 0.2)                                           \
    X("warm_max_factor", "%.2f", 2.0)                                          \
    X("temp_lru", "%s", "no")                                                  \
    X("temporary_ttl", "%d", 61)                                               \
    X("idle_timeout", "%u", cfg->idle_timeout)                                 \
    X("watcher_logbuf_size", "%d", 262144)                                     \
    X("worker_logbuf_size", "%d", 65536)                                       \
    X("read_buf_mem_limit", "%d", 0)                                           \
    X("track_sizes", "%s", YESNO(cfg->track_sizes))                            \
    X("inline_ascii_response", "%s", "no")                                     \
    X("max_ttl", "%u", cfg->max_ttl)

void
config_stats_settings(void *arg, net_stat_emit_fn emit, void *ctx)
{
    const struct config *cfg = arg;
#define CONFIG_SETTING_LINE(name, fmt, value) emit(ctx, name, fmt, value);
    CONFIG_SETTINGS(CONFIG_SETTING_LINE)
#undef CONFIG_SETTING_LINE
}
