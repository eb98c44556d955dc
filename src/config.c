/* config: gathers every module's option rows into one command line (see
 * config.h) and keeps the checks that span options, with memcached
 * 1.6.18's words and exit status, so scripts that start memcached start
 * fleetcached unchanged. Single-option ranges and messages live in the rows. */
#include "src/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "src/log.h"

#define CONFIG_PAGE_SIZE (1024u * 1024)

#define CONFIG_PROCESS_ROW(...) OPTION_ROW(struct config_process, __VA_ARGS__)
static const struct option_row config_process_rows[] = {
    CONFIG_PROCESS_OPTIONS(CONFIG_PROCESS_ROW, CONFIG_PROCESS_ROW)
};
#undef CONFIG_PROCESS_ROW

#define CONFIG_COMPAT_ROW(...) OPTION_ROW(struct config_compat, __VA_ARGS__)
static const struct option_row config_compat_rows[] = {
    CONFIG_COMPAT_OPTIONS(CONFIG_COMPAT_ROW, CONFIG_COMPAT_ROW)
};
#undef CONFIG_COMPAT_ROW

/* memcached 1.6.18's `stats settings`, in its order. Names no row holds are
 * derived (config_live). */
static const char *const config_settings_order[] = {
    "maxbytes", "maxconns", "tcpport", "udpport", "inter", "verbosity", "oldest", "evictions",
    "domain_socket", "umask", "shutdown_command", "growth_factor", "chunk_size", "num_threads",
    "num_threads_per_udp", "stat_key_prefix", "detail_enabled", "reqs_per_event",
    "cas_enabled", "tcp_backlog", "binding_protocol", "auth_enabled_sasl",
    "auth_enabled_ascii", "item_size_max", "maxconns_fast", "hashpower_init", "slab_reassign",
    "slab_automove", "slab_automove_ratio", "slab_automove_window", "slab_chunk_max",
    "lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl", "tail_repair_time",
    "flush_enabled", "dump_enabled", "hash_algorithm", "lru_maintainer_thread",
    "lru_segmented", "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor",
    "temp_lru", "temporary_ttl", "idle_timeout", "watcher_logbuf_size", "worker_logbuf_size",
    "read_buf_mem_limit", "track_sizes", "inline_ascii_response", "ext_item_size",
    "ext_item_age", "ext_low_ttl", "ext_recache_rate", "ext_wbuf_size", "ext_compact_under",
    "ext_drop_under", "ext_max_sleep", "ext_max_frag", "slab_automove_freeratio",
    "ext_drop_unread", "ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_verify_mode",
    "ssl_keyformat", "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache",
    "ssl_kernel_tls", "ssl_min_version", "num_napi_ids", "memory_file",
};

static void
config_groups(struct config *cfg)
{
    bool *given = cfg->given;
    struct option_group g[CONFIG_NGROUPS] = {
        { "main", "Process", config_process_rows, CONFIG_NPROCESS, &cfg->proc, NULL },
        { "net", "Network and connections", net_option_rows, net_option_nrows, &cfg->net, NULL },
        { "cache", "Memory and items", cache_option_rows, cache_option_nrows, &cfg->cache, NULL },
        { "bus", "Invalidation bus", bus_option_rows, bus_option_nrows, &cfg->bus, NULL },
        { "l2", "Two-level caching: an L1 in front of a shared pool", l2_option_rows,
          l2_option_nrows, &cfg->l2, NULL },
        { "compat", "Accepted for compatibility with memcached", config_compat_rows,
          CONFIG_NCOMPAT, &cfg->compat, NULL },
    };
    for (size_t i = 0; i < CONFIG_NGROUPS; i++) {
        g[i].given = given;
        given += g[i].nrows;
        cfg->groups[i] = g[i];
    }
}

void
config_init(struct config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    config_groups(cfg);
    net_options_default(&cfg->net);
    cache_options_default(&cfg->cache);
    bus_options_default(&cfg->bus);
    l2_options_default(&cfg->l2);
    (void)option_defaults(config_process_rows, CONFIG_NPROCESS, &cfg->proc, err, sizeof(err));
    (void)option_defaults(config_compat_rows, CONFIG_NCOMPAT, &cfg->compat, err, sizeof(err));
}

void
config_deinit(struct config *cfg)
{
    option_free(cfg->groups, CONFIG_NGROUPS);
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

static bool
config_given(const struct config *cfg, const char *name)
{
    return option_given(cfg->groups, CONFIG_NGROUPS, name);
}

/* -o no_modern: memcached 1.4's defaults, as memcached 1.6.18 applies them. */
static void
config_no_modern(struct config *cfg)
{
    if (!config_given(cfg, "slab_chunk_max"))
        cfg->cache.slab_chunk_max = CONFIG_PAGE_SIZE;
    cfg->cache.slab_reassign = false;
    cfg->cache.slab_automove = 0;
    cfg->compat.maxconns_fast = false;
    cfg->cache.lru_crawler = false;
    cfg->cache.lru_maintainer = false;
}

/* Checks that span options, in memcached's order and words. */
static bool
config_validate(struct config *cfg, FILE *notices, char *err, size_t errlen, int *exit_code)
{
    if (cfg->compat.no_modern)
        config_no_modern(cfg);
    if (cfg->net.threads > 64 && notices != NULL)
        fprintf(notices, "WARNING: Setting a high number of worker threads is not recommended.\n"
                         " Set this value to the number of cores in your machine or less.\n");
    if (cfg->compat.napi_ids > 0 && (unsigned)cfg->compat.napi_ids > cfg->net.threads)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "Number of napi_ids(%d) cannot be greater than number of threads(%u)",
                           cfg->compat.napi_ids, cfg->net.threads);
    if (cfg->cache.item_max > cfg->cache.mem_limit / 2)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "Cannot set item size limit higher than 1/2 of memory max.");
    /* memcached 1.6.18 does not shrink its 512 KiB default to fit a small
     * -I: -I below 512k needs an explicit -o slab_chunk_max. */
    if (cfg->cache.slab_chunk_max > cfg->cache.item_max)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "slab_chunk_max (bytes: %u) cannot be larger than -I (item_size_max %u)",
                           cfg->cache.slab_chunk_max, cfg->cache.item_max);
    if (cfg->cache.item_max % cfg->cache.slab_chunk_max != 0)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "-I (item_size_max: %u) must be evenly divisible by slab_chunk_max (bytes: %u)",
                           cfg->cache.item_max, cfg->cache.slab_chunk_max);
    if (CONFIG_PAGE_SIZE % cfg->cache.slab_chunk_max != 0)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "slab_chunk_max (bytes: %u) must divide evenly into %u (slab_page_size)",
                           cfg->cache.slab_chunk_max, CONFIG_PAGE_SIZE);
    if (cfg->cache.hot_lru_pct + cfg->cache.warm_lru_pct > 80)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "hot_lru_pct + warm_lru_pct cannot be more than 80%% combined");
    if (config_given(cfg, "temporary_ttl") && !cfg->cache.lru_maintainer)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "temporary_ttl requires lru_maintainer to be enabled");
    cfg->cache.temp_lru = config_given(cfg, "temporary_ttl"); /* as memcached: it turns it on */
    cfg->net.detail_enabled = config_given(cfg, "stat_key_prefix"); /* -D turns it on */
    if (cfg->bus.peers != NULL && cfg->bus.group != NULL)
        return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                           "--bus-peers and --bus-group are exclusive: pick unicast or multicast");
    if (cfg->l2.servers != NULL) {
        char why[256];
        if (!l2_servers_valid(cfg->l2.servers, why, sizeof(why)))
            return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE, "%s", why);
        if (cfg->net.protocol == NET_PROTOCOL_BINARY)
            return config_fail(err, errlen, exit_code, OPTION_EXIT_USAGE,
                               "--l2 serves the text and meta protocols only: -B binary "
                               "cannot be used with it");
    }
    return true;
}

bool
config_parse(struct config *cfg, int argc, char **argv, FILE *notices, char *err,
             size_t errlen, int *exit_code)
{
    if (!option_parse(cfg->groups, CONFIG_NGROUPS, argc, argv, notices, err, errlen, exit_code))
        return false;
    if (cfg->proc.help || cfg->proc.version || cfg->proc.license)
        return true;
    return config_validate(cfg, notices, err, errlen, exit_code);
}

void
config_usage(FILE *out, const char *version)
{
    struct config cfg;
    config_init(&cfg);
    fprintf(out, "fleetcached %s\n", version);
    option_usage(out, cfg.groups, CONFIG_NGROUPS);
    config_deinit(&cfg);
}

void
config_man(FILE *out)
{
    struct config cfg;
    config_init(&cfg);
    option_man(out, cfg.groups, CONFIG_NGROUPS);
    config_deinit(&cfg);
}

/* Lines of `stats settings` that are no row's value: live state, or
 * derived from several rows as memcached derives them. */
/* The cache's knobs that commands turn at run time (cache_memlimit, lru,
 * lru_crawler): memcached's `stats settings` shows them as they are now. */
static bool
config_live_cache(const char *name, char *buf, size_t len)
{
    struct cache_lru_tuning lru;
    struct cache_crawler_status cs;
    struct cache_stats st;
    cache_lru_get(&lru);
    cache_crawler_status(&cs);
    if (strcmp(name, "maxbytes") == 0) {
        cache_stats_get(&st);
        snprintf(buf, len, "%llu", (unsigned long long)st.limit_maxbytes);
    } else if (strcmp(name, "lru_crawler") == 0)
        snprintf(buf, len, "%s", cs.enabled ? "yes" : "no");
    else if (strcmp(name, "lru_crawler_sleep") == 0)
        snprintf(buf, len, "%u", cs.sleep_us);
    else if (strcmp(name, "lru_crawler_tocrawl") == 0)
        snprintf(buf, len, "%u", cs.tocrawl);
    else if (strcmp(name, "lru_segmented") == 0)
        snprintf(buf, len, "%s", lru.segmented ? "yes" : "no");
    else if (strcmp(name, "hot_lru_pct") == 0)
        snprintf(buf, len, "%u", lru.hot_pct);
    else if (strcmp(name, "warm_lru_pct") == 0)
        snprintf(buf, len, "%u", lru.warm_pct);
    else if (strcmp(name, "hot_max_factor") == 0)
        snprintf(buf, len, "%.2f", lru.hot_max_factor);
    else if (strcmp(name, "warm_max_factor") == 0)
        snprintf(buf, len, "%.2f", lru.warm_max_factor);
    else if (strcmp(name, "temp_lru") == 0)
        snprintf(buf, len, "%s", lru.temp_lru ? "yes" : "no");
    else if (strcmp(name, "temporary_ttl") == 0)
        snprintf(buf, len, "%u", lru.temp_ttl);
    else
        return false;
    return true;
}

static bool
config_live(void *arg, const char *name, char *buf, size_t len)
{
    const struct config *cfg = arg;
    if (strcmp(name, "verbosity") == 0)
        snprintf(buf, len, "%d", log_verbosity()); /* the `verbosity` command changes it */
    else if (strcmp(name, "oldest") == 0)
        snprintf(buf, len, "0");
    else if (strcmp(name, "num_threads_per_udp") == 0)
        snprintf(buf, len, "%u", cfg->net.listen != NULL && strchr(cfg->net.listen, ',')
                                     ? 1u : cfg->net.threads);
    else if (strcmp(name, "detail_enabled") == 0)
        snprintf(buf, len, "%s", net_stats_detail_enabled() ? "yes" : "no");
    else if (strcmp(name, "hash_algorithm") == 0)
        snprintf(buf, len, "xxh3"); /* whatever -o hash_algorithm said */
    else if (cache_class_count() > 0 && config_live_cache(name, buf, len))
        return true;
    else if (strcmp(name, "lru_segmented") == 0)
        snprintf(buf, len, "%s", cfg->cache.lru_maintainer ? "yes" : "no");
    else if (strcmp(name, "slab_automove") == 0 && cache_class_count() > 0)
        snprintf(buf, len, "%u", cache_slab_automove()); /* `slabs automove` changes it */
    else if (strcmp(name, "slab_automove_ratio") == 0 && cache_class_count() > 0)
        snprintf(buf, len, "%.2f", cache_slab_automove_ratio());
    else if (strcmp(name, "temp_lru") == 0)
        snprintf(buf, len, "%s", option_given(cfg->groups, CONFIG_NGROUPS, "temporary_ttl")
                                     ? "yes" : "no");
    else
        return false;
    return true;
}

struct config_emit {
    net_stat_emit_fn emit;
    void *ctx;
};

static void
config_emit_line(void *arg, const char *name, const char *value)
{
    struct config_emit *e = arg;
    e->emit(e->ctx, name, "%s", value);
}

void
config_stats_settings(void *arg, net_stat_emit_fn emit, void *ctx)
{
    struct config *cfg = arg;
    struct config_emit e = { emit, ctx };
    option_settings(cfg->groups, CONFIG_NGROUPS, config_settings_order,
                    sizeof(config_settings_order) / sizeof(config_settings_order[0]),
                    config_live, cfg, config_emit_line, &e);
}
