/* config: the top of the option tree. It gathers the option rows every
 * module declares (net/, cache/, bus/, l2/) with the process's own and with the
 * memcached flags accepted for compatibility, hands them to src/option.c
 * (parse, -h, man page, `stats settings`), and keeps only the checks that
 * span options. Top tier: it includes every module; nothing includes it but
 * main.c. Each module is then set up with its own struct from here. */
#ifndef FLEETCACHE_SRC_CONFIG_H
#define FLEETCACHE_SRC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bus/bus.h"
#include "cache/cache.h"
#include "l2/l2.h"
#include "net/net.h"
#include "src/option.h"

/* The process itself: main.c reads these. */
#define CONFIG_PROCESS_OPTIONS(X, ALSO)                                                               \
    X(bool, help, .flag = 'h', .name = "help", .type = OPTION_SWITCH,                           \
      .help = "print this help and exit")                                                       \
    X(bool, license, .flag = 'i', .name = "license", .type = OPTION_SWITCH,                     \
      .help = "print the licenses and exit")                                                    \
    X(bool, version, .flag = 'V', .name = "version", .type = OPTION_SWITCH,                     \
      .help = "print version and exit")                                                         \
    X(int, verbose, .flag = 'v', .name = "verbose", .type = OPTION_COUNT,                       \
      .help = "verbose (start-up and errors); -vv also prints client commands, replies and "    \
              "connections; -vvv more",                                                         \
      .stat = "verbosity")                                                                      \
    X(bool, daemonize, .flag = 'd', .name = "daemon", .type = OPTION_SWITCH,                    \
      .help = "run as a daemon")                                                                \
    X(char *, pidfile, .flag = 'P', .name = "pidfile", .type = OPTION_STRING, .arg = "<file>",  \
      .help = "save PID in <file> once listening (removed at exit with -d)")                    \
    X(char *, user, .flag = 'u', .name = "user", .type = OPTION_STRING, .arg = "<user>",        \
      .help = "assume identity of <username> (required when run as root)")                      \
    X(bool, coredumps, .flag = 'r', .name = "enable-coredumps", .type = OPTION_SWITCH,          \
      .help = "maximize core file limit")                                                       \
    X(bool, lock_memory, .flag = 'k', .name = "lock-memory", .type = OPTION_SWITCH,             \
      .help = "lock down all paged memory")                                                     \
    X(bool, large_pages, .flag = 'L', .name = "enable-largepages", .type = OPTION_SWITCH,       \
      .help = "try to use large memory pages (slab pages always ask for them)",                 \
      .notice = "-L: slab pages are already marked for transparent huge pages; nothing to add") \
    X(bool, extended, .flag = 'o', .name = "extended", .type = OPTION_SUBOPTS, .arg = "<opts>", \
      .help = "comma separated list of extended options (below)")

#define CONFIG_NOTICE_EXT "-o ext_*: fleetcached has no external storage (extstore); " \
    "every item stays in memory"
#define CONFIG_NOTICE_SSL "-o ssl_*: fleetcached has no TLS (-Z is refused); ignored"

/* memcached 1.6.18's other flags: each refused as a build of memcached
 * without the feature refuses it, or accepted, shown in `stats settings`
 * and, where it changes nothing here, announced by a one-line notice. */
#define CONFIG_COMPAT_OPTIONS(X, ALSO)                                                                \
    X(bool, sasl, .flag = 'S', .name = "enable-sasl", .type = OPTION_REFUSE,                    \
      .help = "turn on Sasl authentication (refused: no SASL here)",                            \
      .stat = "auth_enabled_sasl", .bad = "This server is not built with SASL support.")        \
    X(bool, auth_ascii, .flag = 'Y', .name = "auth-file", .type = OPTION_REFUSE,                \
      .arg = "<file>", .help = "ASCII protocol authentication (refused: not supported here)",   \
      .stat = "auth_enabled_ascii",                                                             \
      .bad = "ASCII protocol authentication (-Y) is not supported: refusing to start "          \
             "without it")                                                                      \
    X(bool, ssl_enabled, .flag = 'Z', .name = "enable-ssl", .type = OPTION_REFUSE,              \
      .help = "enable TLS/SSL (refused: no TLS here)", .stat = "ssl_enabled",                   \
      .bad = "This server is not built with TLS support.")                                      \
    X(char *, memory_file, .flag = 'e', .name = "memory-file", .type = OPTION_STRING,           \
      .arg = "<file>", .help = "mmap a file for item memory (accepted; not restartable here)",  \
      .stat = "memory_file", .show = OPTION_SHOW_PNULL,                                         \
      .notice = "-e: fleetcached keeps no memory file; a restart starts with an empty cache")   \
    X(int, napi_ids, .flag = 'N', .name = "napi-ids", .type = OPTION_INT, .arg = "<num>",       \
      .min = 1, .max = INT32_MAX, .help = "number of napi ids (accepted; not used here)",       \
      .stat = "num_napi_ids", .show = OPTION_SHOW_PNULL,                                        \
      .bad = "Maximum number of NAPI IDs must be greater than 0", .exit = 1,                    \
      .notice = "-N: connections go to the workers in turn, not by NAPI ID")                    \
    X(bool, maxconns_fast, .name = "maxconns_fast", .sub = true, .type = OPTION_SWITCH,         \
      .def = "yes", .help = "immediately close new connections after limit (default: on)",     \
      .stat = "maxconns_fast")                                                                  \
    ALSO(bool, maxconns_fast, .name = "no_maxconns_fast", .sub = true, .type = OPTION_CLEAR,       \
      .help = "accepted; connections over -c are always refused at once",                       \
      .notice = "-o no_maxconns_fast: connections over -c are always refused at once")          \
    X(int, hash_algorithm, .name = "hash_algorithm", .sub = true, .type = OPTION_CHOICE,        \
      .arg = "<name>", .def = "xxh3", .choices = "jenkins|murmur3|xxh3",                        \
      .help = "the hash table algorithm: jenkins, murmur3 or xxh3 (keys are always hashed "     \
              "with xxh3 here)",                                                                \
      .bad = "Unknown hash_algorithm option (jenkins, murmur3, xxh3)", .exit = 1)               \
    X(bool, no_hashexpand, .name = "no_hashexpand", .sub = true, .type = OPTION_SWITCH,         \
      .help = "accepted; the hash table still grows, in small background steps",               \
      .notice = "-o no_hashexpand: the hash table still grows, in small background steps")      \
    X(int, tail_repair_time, .name = "tail_repair_time", .sub = true, .type = OPTION_INT,       \
      .arg = "<secs>", .min = 10, .max = INT32_MAX,                                             \
      .help = "accepted; an item's references cannot leak here", .stat = "tail_repair_time",   \
      .bad = "Cannot set tail_repair_time to less than 10 seconds",                             \
      .missing = "Missing numeric argument for %s", .exit = 1,                                  \
      .notice = "-o tail_repair_time: item references cannot leak here; nothing to repair")     \
    X(uint32_t, worker_logbuf_size, .name = "worker_logbuf_size", .sub = true,                  \
      .type = OPTION_INT, .arg = "<kb>", .def = "64", .unit = 1024, .min = 0,                  \
      .max = UINT32_MAX / 1024, .help = "size in kilobytes of per-worker-thread log buffer",   \
      .stat = "worker_logbuf_size",                                                             \
      .bad = "could not parse argument to worker_logbuf_size", .exit = 1)                       \
    X(char *, slab_sizes, .name = "slab_sizes", .sub = true, .type = OPTION_STRING,             \
      .arg = "<a-b-...>", .help = "explicit slab class sizes (accepted; classes follow -n -f)",  \
      .notice = "-o slab_sizes: size classes follow -n and -f here")                            \
    X(bool, inline_ascii_response, .name = "inline_ascii_resp", .sub = true,                    \
      .type = OPTION_CLEAR, .help = "accepted; no effect (as in memcached)",                   \
      .stat = "inline_ascii_response")                                                          \
    ALSO(bool, inline_ascii_response, .name = "no_inline_ascii_resp", .sub = true,                 \
      .type = OPTION_CLEAR, .help = "accepted; no effect (as in memcached)")                   \
    X(bool, modern, .name = "modern", .sub = true, .type = OPTION_SWITCH,                       \
      .help = "accepted; today's defaults are already modern")                                 \
    X(bool, no_modern, .name = "no_modern", .sub = true, .type = OPTION_SWITCH,                 \
      .help = "1.4.x defaults: no crawler, no maintainer, no page moves, whole items")         \
    X(bool, drop_privileges, .name = "drop_privileges", .sub = true, .type = OPTION_SWITCH,     \
      .help = "accepted; no seccomp filter here (the packaged unit sandboxes the process)",    \
      .notice = "-o drop_privileges: no seccomp filter here; the systemd unit sandboxes")       \
    ALSO(bool, drop_privileges, .name = "no_drop_privileges", .sub = true, .type = OPTION_CLEAR,   \
      .help = "accepted; no effect")                                                            \
    X(int, resp_obj_mem_limit, .name = "resp_obj_mem_limit", .sub = true, .type = OPTION_INT,   \
      .arg = "<mb>", .implied = "0", .help = "deprecated (as in memcached)",                   \
      .notice = "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,")       \
    X(uint64_t, read_buf_mem_limit, .name = "read_buf_mem_limit", .sub = true,                  \
      .type = OPTION_INT, .arg = "<mb>", .def = "0", .unit = 1 << 20, .min = 0,                \
      .max = UINT32_MAX, .help = "limit in megabytes for connection buffers (accepted)",      \
      .stat = "read_buf_mem_limit", .bad = "could not parse argument to read_buf_mem_limit",    \
      .exit = 1,                                                                                \
      .notice = "-o read_buf_mem_limit: connection buffers are not capped as a whole here")     \
    X(uint32_t, sock_cookie_id, .name = "sock_cookie_id", .sub = true, .type = OPTION_INT,      \
      .arg = "<id>", .def = "0", .min = 0, .max = UINT32_MAX,                                   \
      .help = "socket cookie for firewalls (accepted; not set here)",                          \
      .notice = "-o sock_cookie_id: sockets are not marked here")                               \
    X(char *, ext_path, .name = "ext_path", .sub = true, .type = OPTION_STRING,                 \
      .arg = "<file:size>", .help = "extstore file (accepted; no extstore here)",              \
      .missing = "missing argument to ext_path, ie: ext_path=/d/file:5G", .exit = 1,           \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(uint32_t, ext_page_size, .name = "ext_page_size", .sub = true, .type = OPTION_INT,        \
      .arg = "<mb>", .def = "64", .min = 0, .max = UINT32_MAX,                                  \
      .help = "extstore page size in megabytes (accepted)",                                    \
      .bad = "could not parse argument to ext_page_size", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint64_t, ext_wbuf_size, .name = "ext_wbuf_size", .sub = true, .type = OPTION_INT,        \
      .arg = "<mb>", .def = "4", .unit = 1 << 20, .min = 0, .max = UINT32_MAX,                 \
      .help = "extstore write buffer in megabytes (accepted)", .stat = "ext_wbuf_size",        \
      .bad = "could not parse argument to ext_wbuf_size", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_threads, .name = "ext_threads", .sub = true, .type = OPTION_INT,            \
      .arg = "<num>", .def = "1", .min = 0, .max = UINT32_MAX,                                  \
      .help = "extstore IO threads (accepted)",                                                 \
      .bad = "could not parse argument to ext_threads", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_io_depth, .name = "ext_io_depth", .sub = true, .type = OPTION_INT,          \
      .arg = "<num>", .def = "1", .min = 0, .max = UINT32_MAX,                                  \
      .help = "extstore IO depth (accepted)",                                                   \
      .bad = "could not parse argument to ext_io_depth", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_item_size, .name = "ext_item_size", .sub = true, .type = OPTION_INT,        \
      .arg = "<bytes>", .def = "512", .min = 0, .max = UINT32_MAX,                              \
      .help = "extstore stores items larger than this (accepted)", .stat = "ext_item_size",    \
      .bad = "could not parse argument to ext_item_size", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_item_age, .name = "ext_item_age", .sub = true, .type = OPTION_INT,          \
      .arg = "<secs>", .def = "4294967295", .min = 0, .max = UINT32_MAX,                        \
      .help = "extstore stores items idle this long (accepted)", .stat = "ext_item_age",       \
      .bad = "could not parse argument to ext_item_age", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_low_ttl, .name = "ext_low_ttl", .sub = true, .type = OPTION_INT,            \
      .arg = "<secs>", .def = "0", .min = 0, .max = UINT32_MAX,                                 \
      .help = "extstore low TTL (accepted)", .stat = "ext_low_ttl",                             \
      .bad = "could not parse argument to ext_low_ttl", .exit = 1, .notice = CONFIG_NOTICE_EXT) \
    X(uint32_t, ext_recache_rate, .name = "ext_recache_rate", .sub = true, .type = OPTION_INT,  \
      .arg = "<num>", .def = "2000", .min = 0, .max = UINT32_MAX,                               \
      .help = "extstore recache rate (accepted)", .stat = "ext_recache_rate",                   \
      .bad = "could not parse argument to ext_recache_rate", .exit = 1,                         \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(uint32_t, ext_compact_under, .name = "ext_compact_under", .sub = true,                    \
      .type = OPTION_INT, .arg = "<pages>", .def = "0", .min = 0, .max = UINT32_MAX,           \
      .help = "extstore compaction threshold (accepted)", .stat = "ext_compact_under",         \
      .bad = "could not parse argument to ext_compact_under", .exit = 1,                        \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(uint32_t, ext_drop_under, .name = "ext_drop_under", .sub = true, .type = OPTION_INT,      \
      .arg = "<pages>", .def = "0", .min = 0, .max = UINT32_MAX,                                \
      .help = "extstore drop threshold (accepted)", .stat = "ext_drop_under",                   \
      .bad = "could not parse argument to ext_drop_under", .exit = 1,                           \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(uint32_t, ext_max_sleep, .name = "ext_max_sleep", .sub = true, .type = OPTION_INT,        \
      .arg = "<us>", .def = "1000000", .min = 0, .max = UINT32_MAX,                             \
      .help = "extstore background sleep (accepted)", .stat = "ext_max_sleep",                  \
      .bad = "could not parse argument to ext_max_sleep", .exit = 1,                            \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(double, ext_max_frag, .name = "ext_max_frag", .sub = true, .type = OPTION_FLOAT,          \
      .arg = "<ratio>", .def = "0.8", .help = "extstore page fragmentation (accepted)",         \
      .stat = "ext_max_frag", .bad = "could not parse argument to ext_max_frag", .exit = 1,     \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(double, slab_automove_freeratio, .name = "slab_automove_freeratio", .sub = true,          \
      .type = OPTION_FLOAT, .arg = "<ratio>", .def = "0.01",                                    \
      .help = "memory held free for extstore (accepted)", .stat = "slab_automove_freeratio",   \
      .show = OPTION_SHOW_FIXED3, .bad = "could not parse argument to slab_automove_freeratio", \
      .exit = 1, .notice = CONFIG_NOTICE_EXT)                                                   \
    X(bool, ext_drop_unread, .name = "ext_drop_unread", .sub = true, .type = OPTION_SWITCH,     \
      .help = "extstore drops unread values (accepted)", .stat = "ext_drop_unread",            \
      .notice = CONFIG_NOTICE_EXT)                                                              \
    X(char *, ssl_chain_cert, .name = "ssl_chain_cert", .sub = true, .type = OPTION_STRING,     \
      .arg = "<file>", .help = "certificate chain (accepted)", .stat = "ssl_chain_cert",        \
      .show = OPTION_SHOW_PNULL, .exit = 1, .notice = CONFIG_NOTICE_SSL)                        \
    X(char *, ssl_key, .name = "ssl_key", .sub = true, .type = OPTION_STRING, .arg = "<file>",  \
      .help = "private key (accepted)", .stat = "ssl_key", .show = OPTION_SHOW_PNULL,          \
      .exit = 1, .notice = CONFIG_NOTICE_SSL)                                                   \
    X(int, ssl_verify_mode, .name = "ssl_verify_mode", .sub = true, .type = OPTION_INT,         \
      .arg = "<0-3>", .def = "0", .min = 0, .max = 3, .help = "peer verification (accepted)",   \
      .stat = "ssl_verify_mode", .bad = "Invalid ssl_verify_mode. Use help to see valid options.", \
      .exit = 1, .notice = CONFIG_NOTICE_SSL)                                                   \
    X(int, ssl_keyformat, .name = "ssl_keyformat", .sub = true, .type = OPTION_INT,             \
      .arg = "<num>", .def = "1", .help = "private key format (accepted)",                     \
      .stat = "ssl_keyformat", .bad = "could not parse argument to ssl_keyformat", .exit = 1,   \
      .notice = CONFIG_NOTICE_SSL)                                                              \
    X(char *, ssl_ciphers, .name = "ssl_ciphers", .sub = true, .type = OPTION_STRING,           \
      .arg = "<list>", .help = "cipher list (accepted)", .stat = "ssl_ciphers", .exit = 1,      \
      .notice = CONFIG_NOTICE_SSL)                                                              \
    X(char *, ssl_ca_cert, .name = "ssl_ca_cert", .sub = true, .type = OPTION_STRING,           \
      .arg = "<file>", .help = "acceptable client CAs (accepted)", .stat = "ssl_ca_cert",       \
      .exit = 1, .notice = CONFIG_NOTICE_SSL)                                                   \
    X(uint32_t, ssl_wbuf_size, .name = "ssl_wbuf_size", .sub = true, .type = OPTION_INT,        \
      .arg = "<kb>", .def = "16", .unit = 1024, .min = 0, .max = UINT32_MAX / 1024,            \
      .help = "TLS output buffer in kilobytes (accepted)", .stat = "ssl_wbuf_size",            \
      .bad = "could not parse argument to ssl_wbuf_size", .exit = 1, .notice = CONFIG_NOTICE_SSL) \
    X(bool, ssl_session_cache, .name = "ssl_session_cache", .sub = true, .type = OPTION_SWITCH, \
      .help = "TLS session cache (accepted)", .stat = "ssl_session_cache",                     \
      .notice = CONFIG_NOTICE_SSL)                                                              \
    X(bool, ssl_kernel_tls, .name = "ssl_kernel_tls", .sub = true, .type = OPTION_SWITCH,       \
      .help = "kernel TLS offload (accepted)", .stat = "ssl_kernel_tls",                        \
      .notice = CONFIG_NOTICE_SSL)                                                              \
    X(int, ssl_min_version, .name = "ssl_min_version", .sub = true, .type = OPTION_CHOICE,      \
      .arg = "<0-3>", .def = "2", .choices = "0=tlsv1.0|1=tlsv1.1|2=tlsv1.2|3=tlsv1.3",         \
      .help = "minimum TLS version (accepted)", .stat = "ssl_min_version",                      \
      .bad = "Invalid ssl_min_version. Use help to see valid options.", .exit = 1,              \
      .notice = CONFIG_NOTICE_SSL)

struct config_process {
    CONFIG_PROCESS_OPTIONS(OPTION_FIELD, OPTION_SKIP)
};

struct config_compat {
    CONFIG_COMPAT_OPTIONS(OPTION_FIELD, OPTION_SKIP)
};

enum {
    CONFIG_NPROCESS = 0 CONFIG_PROCESS_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NCOMPAT = 0 CONFIG_COMPAT_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NNET = 0 NET_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NCACHE = 0 CACHE_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NBUS = 0 BUS_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NL2 = 0 L2_OPTIONS(OPTION_ONE, OPTION_ONE),
    CONFIG_NGROUPS = 6,
};

/* Every option of the process, module by module. */
struct config {
    struct config_process proc;
    struct net_options net;
    struct cache_options cache;
    struct bus_options bus;
    struct l2_options l2;
    struct config_compat compat;
    struct option_group groups[CONFIG_NGROUPS];
    bool given[CONFIG_NPROCESS + CONFIG_NNET + CONFIG_NCACHE + CONFIG_NBUS + CONFIG_NL2 +
               CONFIG_NCOMPAT];
};

/* Every row's default (memcached's: -p 11211, -m 64, -c 1024, -t 4, -I 1m ...). */
void
config_init(struct config *cfg);

/* Frees the strings the config owns. */
void
config_deinit(struct config *cfg);

/* Parses argv into cfg and runs the checks that span options. Notices of
 * accepted flags that change little go to notices (may be NULL). On
 * failure returns false with one line in err and *exit_code set to
 * memcached's exit status for it. */
bool
config_parse(struct config *cfg, int argc, char **argv, FILE *notices, char *err,
             size_t errlen, int *exit_code);

/* -h. */
void
config_usage(FILE *out, const char *version);

/* The man page's OPTIONS section (roff): the same rows as -h. */
void
config_man(FILE *out);

/* net/'s settings callback: the `stats settings` lines for the struct
 * config at arg, in memcached 1.6.18's order, then fleetcache's own. */
void
config_stats_settings(void *arg, net_stat_emit_fn emit, void *ctx);

#endif
