/* test_config: every module's option rows gathered into one command line:
 * defaults, flag parsing into each module's struct, refusals with memcached
 * 1.6.18's words and exit codes, the checks that span options, `stats
 * settings` in memcached's order, and -h against the man page. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "src/config.h"

static struct config cfg;

static bool
parse(const char *line, char *err, size_t errlen, int *code)
{
    static char buf[1024];
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof(buf), "fleetcached %s", line);
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    config_init(&cfg);
    return config_parse(&cfg, argc, argv, NULL, err, errlen, code);
}

static void
teardown(void)
{
    config_deinit(&cfg);
}

TestSuite(config, .fini = teardown);

Test(config, defaults_are_memcacheds)
{
    char err[256];
    int code = 0;
    cr_assert(parse("", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.net.tcp_port, 11211);
    cr_assert_eq(cfg.net.max_conns, 1024);
    cr_assert_eq(cfg.net.threads, 4);
    cr_assert_eq(cfg.net.reqs_per_event, 20);
    cr_assert_eq(cfg.net.backlog, 1024);
    cr_assert_eq(cfg.net.unix_mask, 0700);
    cr_assert_eq(cfg.cache.mem_limit, 64ull << 20);
    cr_assert_eq(cfg.cache.item_max, 1u << 20);
    cr_assert_eq(cfg.cache.slab_chunk_max, 512u * 1024);
    cr_assert_eq(cfg.cache.chunk_min, 48);
    cr_assert_eq(cfg.cache.hashpower, 0);
    cr_assert(cfg.cache.evict && cfg.cache.use_cas && cfg.net.flush_enabled);
    cr_assert(cfg.cache.lru_crawler && cfg.cache.lru_maintainer);
    cr_assert_eq(cfg.bus.ttl, 1);
    cr_assert_eq(cfg.bus.flush_delay_us, 500);
    cr_assert_null(cfg.bus.group);
}

Test(config, every_modules_default_matches_its_own_options_default)
{
    char err[256];
    int code = 0;
    cr_assert(parse("", err, sizeof(err), &code), "%s", err);
    struct cache_options c;
    cache_options_default(&c);
    cr_assert_eq(c.mem_limit, cfg.cache.mem_limit);
    cr_assert_eq(c.slab_chunk_max, cfg.cache.slab_chunk_max);
    struct bus_options b;
    bus_options_default(&b);
    cr_assert_eq(b.flush_delay_us, cfg.bus.flush_delay_us);
    struct net_options n;
    net_options_default(&n);
    cr_assert_eq(n.threads, cfg.net.threads);
}

Test(config, flags_and_long_forms_reach_each_modules_struct)
{
    char err[256];
    int code = 0;
    cr_assert(parse("-p 1234 -l 127.0.0.1 -l ::1 -l 127.0.0.1 -t 2 -c 10 -m 128 -M -C -F -A -vv "
                    "-o idle_timeout=5,hashpower=20,no_lru_crawler,worker_slice_us=0 --max-ttl 60 "
                    "--bus-group 239.1.2.3:5000 --bus-ttl 2 --bus-node-id 7 "
                    "--bus-flush-delay-us 250 --threads=3",
                    err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.net.tcp_port, 1234);
    cr_assert_str_eq(cfg.net.listen, "127.0.0.1,::1");
    cr_assert_eq(cfg.net.threads, 3);
    cr_assert_eq(cfg.net.max_conns, 10);
    cr_assert_eq(cfg.cache.mem_limit, 128ull << 20);
    cr_assert(!cfg.cache.evict && !cfg.cache.use_cas && !cfg.net.flush_enabled);
    cr_assert(cfg.net.shutdown_enabled);
    cr_assert_eq(cfg.proc.verbose, 2);
    cr_assert_eq(cfg.net.idle_timeout, 5);
    cr_assert_eq(cfg.net.worker_slice_us, 0);
    cr_assert_eq(cfg.cache.hashpower, 20);
    cr_assert(!cfg.cache.lru_crawler && cfg.cache.lru_maintainer);
    cr_assert_eq(cfg.cache.max_ttl, 60);
    cr_assert_str_eq(cfg.bus.group, "239.1.2.3:5000");
    cr_assert_eq(cfg.bus.ttl, 2);
    cr_assert_eq(cfg.bus.node_id, 7);
    cr_assert_eq(cfg.bus.flush_delay_us, 250);
}

/* Every flag of memcached 1.6.18's -h that it accepts is accepted. */
Test(config, memcacheds_accepted_flags_are_accepted)
{
    char err[256];
    int code = 0;
    cr_assert(parse("-k -r -L -D # -X -W -e /tmp/x -N 2 -U 0 -b 0 -B ascii -i", err, sizeof(err),
                    &code), "%s", err);
    cr_assert(parse("-o slab_reassign,slab_automove=2,maxconns_fast,hash_algorithm=murmur3,"
                    "no_hashexpand,lru_crawler_sleep=50,watcher_logbuf_size=128,"
                    "read_buf_mem_limit=16,tail_repair_time=20,lru_crawler_tocrawl=5,"
                    "hot_lru_pct=10,warm_lru_pct=30,hot_max_factor=0.5,warm_max_factor=1.5,"
                    "temporary_ttl=30,worker_logbuf_size=32,slab_sizes=100-200,"
                    "inline_ascii_resp,no_inline_ascii_resp,modern,drop_privileges,"
                    "no_drop_privileges,resp_obj_mem_limit=1,sock_cookie_id=3,"
                    "slab_automove_ratio=0.5,slab_automove_window=10,no_slab_automove,"
                    "no_slab_reassign,no_maxconns_fast,track_sizes",
                    err, sizeof(err), &code), "%s", err);
    cr_assert(parse("-o ext_path=/d/f:1G,ext_page_size=8,ext_wbuf_size=4,ext_threads=2,"
                    "ext_io_depth=2,ext_item_size=100,ext_item_age=10,ext_low_ttl=5,"
                    "ext_recache_rate=10,ext_compact_under=1,ext_drop_under=1,ext_max_sleep=10,"
                    "ext_max_frag=0.5,ext_drop_unread,slab_automove_freeratio=0.02,"
                    "ssl_chain_cert=c,ssl_key=k,ssl_verify_mode=1,ssl_keyformat=1,"
                    "ssl_ciphers=x,ssl_ca_cert=a,ssl_wbuf_size=8,ssl_session_cache,"
                    "ssl_kernel_tls,ssl_min_version=3",
                    err, sizeof(err), &code), "%s", err);
    cr_assert(parse("--lock-memory --enable-coredumps --enable-largepages --disable-dumping "
                    "--disable-watch --memory-file=/tmp/x --napi-ids=1 --license",
                    err, sizeof(err), &code), "%s", err);
}

Test(config, an_empty_delimiter_is_refused_as_memcached_does)
{
    char *argv[] = { "fleetcached", "-D", "", NULL };
    char err[256];
    int code = 0;
    config_init(&cfg);
    cr_assert_not(config_parse(&cfg, 3, argv, NULL, err, sizeof(err), &code));
    cr_assert_str_eq(err, "No delimiter specified");
    cr_assert_eq(code, 1);
}

Test(config, no_modern_brings_back_memcached_14s_defaults)
{
    char err[256];
    int code = 0;
    cr_assert(parse("-o no_modern", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.cache.slab_chunk_max, 1u << 20);
    cr_assert(!cfg.cache.lru_crawler && !cfg.cache.lru_maintainer);
    cr_assert(!cfg.cache.slab_reassign && cfg.cache.slab_automove == 0);
    cr_assert(parse("-I 2m -o slab_chunk_max=262144,no_modern", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.cache.slab_chunk_max, 262144);
}

Test(config, bus_insecure_is_a_flag_and_the_announce_window_a_number)
{
    char err[256];
    int code = 0;
    cr_assert(parse("--bus-group 239.1.2.3:5000 --bus-insecure -p 1", err, sizeof(err), &code),
              "%s", err);
    cr_assert(cfg.bus.insecure);
    cr_assert_eq(cfg.net.tcp_port, 1);
    cr_assert_eq(cfg.bus.announce_window_ms, 2000, "the default");
    config_deinit(&cfg);
    cr_assert(parse("--bus-announce-window-ms 0", err, sizeof(err), &code), "%s", err);
    cr_assert_eq(cfg.bus.announce_window_ms, 0);
}

Test(config, slab_mover_options_reach_the_cache)
{
    char err[256];
    int code = 0;
    cr_assert(parse("", err, sizeof(err), &code), "%s", err);
    cr_assert(cfg.cache.slab_reassign);
    cr_assert_eq(cfg.cache.slab_automove, 1);
    cr_assert_eq(cfg.cache.slab_automove_window, 30);
    cr_assert_float_eq(cfg.cache.slab_automove_ratio, 0.8, 1e-9);
    config_deinit(&cfg);
    cr_assert(parse("-o no_slab_reassign,slab_automove=2,slab_automove_ratio=0.5,slab_automove_window=3",
                    err, sizeof(err), &code), "%s", err);
    cr_assert_not(cfg.cache.slab_reassign);
    cr_assert_eq(cfg.cache.slab_automove, 2);
    cr_assert_eq(cfg.cache.slab_automove_window, 3);
    cr_assert_float_eq(cfg.cache.slab_automove_ratio, 0.5, 1e-9);
    config_deinit(&cfg);
    /* A bare slab_automove is 1, as in memcached. */
    cr_assert(parse("-o slab_automove=0,slab_reassign,slab_automove", err, sizeof(err), &code), "%s", err);
    cr_assert(cfg.cache.slab_reassign);
    cr_assert_eq(cfg.cache.slab_automove, 1);
}

/* Arrays, not pointers: Criterion re-runs the binary per parameter. */
struct refusal {
    char args[64];
    char message[160];
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
    { "-I 900000 -o slab_chunk_max=300000", "slab_chunk_max (bytes: 300000) must divide evenly into 1048576 (slab_page_size)", 64 },
    { "-f 1.0", "Factor must be greater than 1", 1 },
    { "-n 0", "Chunk size must be greater than 0", 1 },
    { "-R 0", "Number of requests per event must be greater than 0", 1 },
    { "-p 70000", "ERROR: Invalid port number 70000.", 64 },
    { "-B foo", "Invalid value for binding protocol: foo\n -- should be one of auto, binary, or ascii", 64 },
    { "-S", "This server is not built with SASL support.", 64 },
    { "-Z", "This server is not built with TLS support.", 64 },
    { "-N 0", "Maximum number of NAPI IDs must be greater than 0", 1 },
    { "-N 8", "Number of napi_ids(8) cannot be greater than number of threads(4)", 64 },
    { "-o bogus", "Illegal suboption \"bogus\"", 1 },
    { "-o bogus=1", "Illegal suboption \"bogus=1\"", 1 },
    { "-o hashpower=5", "Initial hashtable multiplier of 5 is too low", 1 },
    { "-o hashpower=33", "Initial hashtable multiplier of 33 is too high\nChoose a value based on \"STAT hash_power_level\" from a running instance", 1 },
    { "-o hashpower", "Missing numeric argument for hashpower", 1 },
    { "-o idle_timeout", "Missing numeric argument for idle_timeout", 1 },
    { "-o slab_automove=3", "slab_automove must be between 0 and 2", 1 },
    { "-o slab_automove_ratio=2", "slab_automove_ratio must be > 0 and < 1", 1 },
    { "-o slab_automove_window=2", "slab_automove_window must be > 2", 1 },
    { "-o tail_repair_time=5", "Cannot set tail_repair_time to less than 10 seconds", 1 },
    { "-o hash_algorithm=foo", "Unknown hash_algorithm option (jenkins, murmur3, xxh3)", 1 },
    { "-o lru_crawler_sleep=2000000", "LRU crawler sleep must be between 0 and 1 second", 1 },
    { "-o lru_crawler_tocrawl=x", "lru_crawler_tocrawl takes a numeric 32bit value", 1 },
    { "-o hot_max_factor=0", "hot_max_factor must be > 0", 1 },
    { "-o watcher_logbuf_size=x", "could not parse argument to watcher_logbuf_size", 1 },
    { "-o read_buf_mem_limit", "Missing read_buf_mem_limit argument", 1 },
    { "-o ext_path", "missing argument to ext_path, ie: ext_path=/d/file:5G", 1 },
    { "-o ssl_verify_mode=9", "Invalid ssl_verify_mode. Use help to see valid options.", 1 },
    { "-o ssl_min_version=7", "Invalid ssl_min_version. Use help to see valid options.", 1 },
    { "-o temporary_ttl=10,no_lru_maintainer", "temporary_ttl requires lru_maintainer to be enabled", 64 },
    { "-o hot_lru_pct=50,warm_lru_pct=40", "hot_lru_pct + warm_lru_pct cannot be more than 80% combined", 64 },
    { "-o worker_slice_us=-1", "Invalid worker_slice_us: -1 (want 0-1000000)", 1 },
    { "-o slab_automove=-1", "slab_automove must be between 0 and 2", 1 },
    { "-o slab_automove_ratio=x", "slab_automove_ratio must be > 0 and < 1", 1 },
    { "-o slab_automove_window=-5", "slab_automove_window must be > 2", 1 },
    { "--bus-ttl 300", "Invalid --bus-ttl: 300 (want 0-255)", 64 },
    { "--bus-announce-window-ms -1", "Invalid --bus-announce-window-ms: -1 (want 0-3600000)", 64 },
    { "--bus-group nonsense", "Invalid --bus-group: nonsense (want ADDR:PORT)", 64 },
    { "--bus-peers a:1,b", "Invalid --bus-peers: a:1,b (want HOST:PORT,...)", 64 },
    { "--bus-node-id 4294967296", "Invalid --bus-node-id: 4294967296 (want 0-4294967295)", 64 },
    { "--bus-flush-delay-us 10000001", "Invalid --bus-flush-delay-us: 10000001 (want 0-10000000)", 64 },
    { "--bus-group 239.1.1.1:5 --bus-peers a:1", "--bus-peers and --bus-group are exclusive: pick unicast or multicast", 64 },
};

ParameterizedTestParameters(config, refusals_match_memcached)
{
    return cr_make_param_array(struct refusal, refusals, sizeof(refusals) / sizeof(refusals[0]));
}

ParameterizedTest(struct refusal *r, config, refusals_match_memcached)
{
    char err[256] = "";
    int code = 0;
    cr_assert_not(parse(r->args, err, sizeof(err), &code), "%s accepted", r->args);
    cr_assert_str_eq(err, r->message);
    cr_assert_eq(code, r->code, "%s exit %d", r->args, code);
}

static void
collect(void *ctx, const char *name, const char *fmt, ...)
{
    strcat(ctx, name);
    strcat(ctx, "\n");
}

Test(config, stats_settings_list_memcacheds_76_names_in_its_order_first)
{
    char err[256];
    int code;
    cr_assert(parse("", err, sizeof(err), &code));
    char names[8192] = "";
    config_stats_settings(&cfg, collect, names);
    cr_assert_eq(strncmp(names, "maxbytes\nmaxconns\ntcpport\nudpport\ninter\nverbosity\noldest\n", 56), 0);
    const char *tail = strstr(names, "num_napi_ids\nmemory_file\n");
    cr_assert_not_null(tail);
    int n = 0;
    for (const char *p = names; p < tail; p++)
        n += *p == '\n';
    cr_assert_eq(n + 2, 76, "%d names before fleetcache's own", n + 2);
    cr_assert_not_null(strstr(tail, "max_ttl\n"));
    cr_assert_not_null(strstr(tail, "bus_flush_delay_us\n"));
}

static char *
capture(bool man)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (man)
        config_man(f);
    else
        config_usage(f, "test");
    fclose(f);
    return buf;
}

/* Undoes roff's escapes enough to compare words: "\-" is "-", fonts go. */
static void
unroff(char *s)
{
    char *w = s;
    for (char *r = s; *r != '\0';) {
        if (r[0] == '\\' && r[1] == '-') {
            *w++ = '-';
            r += 2;
        } else if (r[0] == '\\' && r[1] == 'f') {
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

Test(config, help_and_man_page_document_the_same_flags_with_the_same_words)
{
    char *help = capture(false);
    char *man = capture(true);
    unroff(man);
    cr_assert_not_null(strstr(man, ".SH OPTIONS\n"));
    struct config c;
    config_init(&c);
    size_t rows = 0;
    for (size_t g = 0; g < CONFIG_NGROUPS; g++)
        for (size_t i = 0; i < c.groups[g].nrows; i++, rows++) {
            const struct option_row *r = &c.groups[g].rows[i];
            char spelled[96];
            if (r->sub)
                snprintf(spelled, sizeof(spelled), "%s", r->name);
            else if (r->name != NULL)
                snprintf(spelled, sizeof(spelled), "--%s", r->name);
            else
                snprintf(spelled, sizeof(spelled), "-%c", r->flag);
            cr_assert_not_null(strstr(help, spelled), "-h lacks %s", spelled);
            cr_assert_not_null(strstr(man, spelled), "man page lacks %s", spelled);
            cr_assert_not_null(strstr(help, r->help), "-h lacks the help of %s", spelled);
            cr_assert_not_null(strstr(man, r->help), "man page lacks the help of %s", spelled);
            if (r->def != NULL && r->arg != NULL) {
                char note[96];
                snprintf(note, sizeof(note), "%s (default: %s)", r->help, r->def);
                cr_assert_not_null(strstr(help, note), "-h: %s", note);
                cr_assert_not_null(strstr(man, note), "man: %s", note);
            }
        }
    cr_assert_gt(rows, 100);
    config_deinit(&c);
    free(help);
    free(man);
}

Test(config, every_row_has_a_unique_spelling_and_stat_name)
{
    struct config c;
    config_init(&c);
    for (size_t g = 0; g < CONFIG_NGROUPS; g++)
        for (size_t i = 0; i < c.groups[g].nrows; i++) {
            const struct option_row *a = &c.groups[g].rows[i];
            cr_assert(a->flag || a->name, "a row without a name");
            cr_assert_not_null(a->help);
            for (size_t h = 0; h < CONFIG_NGROUPS; h++)
                for (size_t j = 0; j < c.groups[h].nrows; j++) {
                    const struct option_row *b = &c.groups[h].rows[j];
                    if (a == b)
                        continue;
                    cr_assert(!(a->flag && a->flag == b->flag), "-%c twice", a->flag);
                    cr_assert(!(a->name && b->name && a->sub == b->sub &&
                                strcmp(a->name, b->name) == 0), "%s twice", a->name);
                    cr_assert(!(a->stat && b->stat && strcmp(a->stat, b->stat) == 0),
                              "stat %s twice", a->stat);
                }
        }
    config_deinit(&c);
}
