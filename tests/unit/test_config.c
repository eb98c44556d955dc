/* test_config: defaults, flag parsing, and refusals with memcached 1.6.18's
 * words and exit codes. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "src/config.h"

static bool
parse(struct config *cfg, const char *line, char *err, size_t errlen, int *code)
{
    char buf[512];
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof(buf), "fleetcached %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    config_init(cfg);
    return config_parse(cfg, argc, argv, err, errlen, code);
}

Test(config, defaults_are_memcacheds)
{
    struct config cfg;
    char err[256];
    int code = 0;
    cr_assert(parse(&cfg, "", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.port, 11211);
    cr_assert_eq(cfg.max_conns, 1024);
    cr_assert_eq(cfg.threads, 4);
    cr_assert_eq(cfg.mem_limit, 64ull << 20);
    cr_assert_eq(cfg.item_max, 1u << 20);
    cr_assert_eq(cfg.slab_chunk_max, 512u * 1024);
    cr_assert_eq(cfg.reqs_per_event, 20);
    cr_assert(cfg.evict && cfg.use_cas && cfg.flush_enabled);
    config_deinit(&cfg);
}

Test(config, flags_and_long_forms_are_applied)
{
    struct config cfg;
    char err[256];
    int code = 0;
    cr_assert(parse(&cfg, "-p 1234 -l 127.0.0.1 -l ::1 -t 2 -c 10 -m 128 -M -C -F -A -vv "
                          "-o idle_timeout=5,hashpower=20,no_lru_crawler,worker_slice_us=0 --max-ttl 60 "
                          "--bus-group 239.1.2.3:5000 --bus-ttl 2 --bus-node-id 7 "
                          "--bus-flush-delay-us 500 --threads=3",
                    err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.port, 1234);
    cr_assert_str_eq(cfg.listen, "127.0.0.1,::1");
    cr_assert_eq(cfg.threads, 3);
    cr_assert_eq(cfg.max_conns, 10);
    cr_assert_eq(cfg.mem_limit, 128ull << 20);
    cr_assert(!cfg.evict && !cfg.use_cas && !cfg.flush_enabled && cfg.shutdown_enabled);
    cr_assert_eq(cfg.verbose, 2);
    cr_assert_eq(cfg.idle_timeout, 5);
    cr_assert_eq(cfg.worker_slice_us, 0);
    cr_assert_eq(cfg.hashpower, 20);
    cr_assert(!cfg.lru_crawler);
    cr_assert_eq(cfg.max_ttl, 60);
    cr_assert_str_eq(cfg.bus_group, "239.1.2.3:5000");
    cr_assert_eq(cfg.bus_ttl, 2);
    cr_assert(cfg.bus_node_id_set && cfg.bus_node_id == 7);
    cr_assert_eq(cfg.bus_flush_delay_us, 500);
    config_deinit(&cfg);
}

Test(config, bus_insecure_is_a_flag_and_the_announce_window_a_number)
{
    struct config cfg;
    char err[256];
    int code = 0;
    cr_assert(parse(&cfg, "--bus-group 239.1.2.3:5000 --bus-insecure -p 1", err, sizeof(err),
                    &code), "%s", err);
    cr_assert(cfg.bus_insecure);
    cr_assert_eq(cfg.port, 1);
    cr_assert_eq(cfg.bus_announce_window_ms, 2000, "the default");
    config_deinit(&cfg);
    cr_assert(parse(&cfg, "--bus-announce-window-ms 0", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.bus_announce_window_ms, 0);
    config_deinit(&cfg);
}

/* Arrays, not pointers: Criterion re-runs the binary per parameter. */
struct refusal {
    char args[64];
    char message[128];
    int code;
};

static struct refusal refusals[] = {
    { "-c 0", "Maximum connections must be greater than 0", 1 },
    { "-c -5", "Maximum connections must be greater than 0", 1 },
    { "-t 0", "Number of threads must be greater than 0", 1 },
    { "-I 1000", "Item max size cannot be less than 1024 bytes.", 64 },
    { "-I 33m", "Cannot set item size limit higher than 1/2 of memory max.", 64 },
    { "-m 0", "Cannot set item size limit higher than 1/2 of memory max.", 64 },
    { "-I 2000", "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 2000)", 64 },
    { "-I 600k", "-I (item_size_max: 614400) must be evenly divisible by slab_chunk_max (bytes: 524288)", 64 },
    { "-f 1.0", "Factor must be greater than 1", 1 },
    { "-n 0", "Chunk size must be greater than 0", 1 },
    { "-R 0", "Number of requests per event must be greater than 0", 1 },
    { "-p 70000", "ERROR: Invalid port number 70000.", 64 },
    { "-o bogus", "Illegal suboption \"bogus\"", 1 },
    { "-o hashpower=5", "Initial hashtable multiplier of 5 is too low", 1 },
    { "-o hashpower=64", "Initial hashtable multiplier of 64 is too high", 1 },
    { "-o idle_timeout", "Missing numeric argument for idle_timeout", 1 },
    { "-o worker_slice_us=-1", "Invalid worker_slice_us: -1 (want 0-1000000)", 1 },
    { "--bus-ttl 300", "Invalid --bus-ttl: 300 (want 0-255)", 64 },
    { "--bus-announce-window-ms -1", "Invalid --bus-announce-window-ms: -1 (want 0-3600000)", 64 },
    { "--bus-group nonsense", "Invalid --bus-group: nonsense (want ADDR:PORT)", 64 },
};

ParameterizedTestParameters(config, refusals_match_memcached)
{
    return cr_make_param_array(struct refusal, refusals, sizeof(refusals) / sizeof(refusals[0]));
}

ParameterizedTest(struct refusal *r, config, refusals_match_memcached)
{
    struct config cfg;
    char err[256] = "";
    int code = 0;
    cr_assert_not(parse(&cfg, r->args, err, sizeof(err), &code), "%s accepted", r->args);
    cr_assert_str_eq(err, r->message);
    cr_assert_eq(code, r->code, "%s exit %d", r->args, code);
    config_deinit(&cfg);
}

static void
collect(void *ctx, const char *name, const char *fmt, ...)
{
    strcat(ctx, name);
    strcat(ctx, "\n");
}

Test(config, stats_settings_start_with_memcacheds_keys)
{
    struct config cfg;
    char err[256];
    int code;
    cr_assert(parse(&cfg, "", err, sizeof(err), &code));
    char names[8192] = "";
    config_stats_settings(&cfg, collect, names);
    cr_assert_eq(strncmp(names, "maxbytes\nmaxconns\ntcpport\nudpport\ninter\n", 40), 0);
    cr_assert_not_null(strstr(names, "item_size_max\n"));
    cr_assert_not_null(strstr(names, "idle_timeout\n"));
    config_deinit(&cfg);
}
