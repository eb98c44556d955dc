/* test_option: the typed option rows of src/option.c on a table of its own:
 * defaults through the parser, each type, ranges and their refusals, -o
 * sub-options, repeats, and `stats settings` formatting. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/option.h"

#define T_OPTIONS(X, ALSO)                                                                      \
    X(int, port, .flag = 'p', .name = "port", .type = OPTION_INT, .arg = "<num>",               \
      .def = "11211", .min = 0, .max = 65535, .help = "TCP port", .stat = "tcpport",            \
      .bad = "ERROR: Invalid port number %s.")                                                  \
    X(uint64_t, mem, .flag = 'm', .name = "memory-limit", .type = OPTION_INT, .arg = "<num>",   \
      .def = "64", .unit = 1 << 20, .help = "megabytes", .stat = "maxbytes")                    \
    X(uint32_t, item_max, .flag = 'I', .name = "max-item-size", .type = OPTION_SIZE,            \
      .arg = "<num>", .def = "1m", .min = 1024, .max = 1 << 30, .help = "item size",            \
      .bad = "too small", .bad_high = "too big")                                                \
    X(double, factor, .flag = 'f', .type = OPTION_FLOAT, .arg = "<num>", .def = "1.25",         \
      .min = 1, .min_open = true, .help = "factor", .stat = "growth_factor",                    \
      .bad = "Factor must be greater than 1", .exit = 1)                                        \
    X(unsigned, mask, .flag = 'a', .type = OPTION_OCTAL, .arg = "<mask>", .def = "700",         \
      .min = 0, .max = 0777, .help = "mask", .stat = "umask", .show = OPTION_SHOW_OCTAL)        \
    X(bool, evict, .flag = 'M', .type = OPTION_CLEAR, .def = "yes", .help = "no evictions",     \
      .stat = "evictions", .show = OPTION_SHOW_ONOFF)                                           \
    X(int, verbose, .flag = 'v', .name = "verbose", .type = OPTION_COUNT, .help = "louder")     \
    X(char *, listen, .flag = 'l', .type = OPTION_LIST, .arg = "<addr>", .help = "listen",      \
      .stat = "inter")                                                                          \
    X(char *, peers, .name = "peers", .type = OPTION_HOSTPORTS, .arg = "<h:p,...>",             \
      .help = "peers", .bad = "bad peers %s")                                                   \
    X(char, delim, .flag = 'D', .type = OPTION_CHAR, .arg = "<char>", .def = ":",               \
      .help = "delimiter", .bad = "No delimiter specified", .exit = 1)                          \
    X(int, proto, .flag = 'B', .type = OPTION_CHOICE, .arg = "<name>", .def = "auto",           \
      .choices = "auto=auto-negotiate|binary|ascii", .help = "protocol",                       \
      .stat = "binding_protocol", .bad = "no protocol %s")                                      \
    X(bool, sasl, .flag = 'S', .type = OPTION_REFUSE, .help = "sasl",                           \
      .bad = "This server is not built with SASL support.")                                     \
    X(bool, ext, .flag = 'o', .type = OPTION_SUBOPTS, .arg = "<opts>", .help = "extended")      \
    X(bool, crawler, .name = "lru_crawler", .sub = true, .type = OPTION_SWITCH, .def = "yes",   \
      .help = "crawler", .stat = "lru_crawler")                                                 \
    ALSO(bool, crawler, .name = "no_lru_crawler", .sub = true, .type = OPTION_CLEAR,            \
      .help = "no crawler")                                                                     \
    X(int, automove, .name = "slab_automove", .sub = true, .type = OPTION_INT, .arg = "<n>",    \
      .def = "1", .implied = "1", .min = 0, .max = 2, .help = "automove",                      \
      .bad = "slab_automove must be between 0 and 2", .exit = 1)                                \
    X(unsigned, idle, .name = "idle_timeout", .sub = true, .type = OPTION_INT, .arg = "<secs>", \
      .def = "0", .help = "idle", .missing = "Missing numeric argument for %s", .exit = 1,      \
      .notice = "idle: noted")                                                                  \
    X(char *, path, .name = "ext_path", .sub = true, .type = OPTION_STRING, .arg = "<p>",      \
      .help = "path", .notice = "ext: ignored", .show = OPTION_SHOW_PNULL, .stat = "ext_path")  \
    X(int, other, .name = "ext_other", .sub = true, .type = OPTION_INT, .arg = "<n>",           \
      .help = "other", .notice = "ext: ignored")

struct t_opts {
    T_OPTIONS(OPTION_FIELD, OPTION_SKIP)
};

#define T_ROW(...) OPTION_ROW(struct t_opts, __VA_ARGS__)
static const struct option_row t_rows[] = { T_OPTIONS(T_ROW, T_ROW) };
enum { T_NROWS = 0 T_OPTIONS(OPTION_ONE, OPTION_ONE) };

static struct t_opts opts;
static bool given[T_NROWS];
static struct option_group group = { "t", "Test", t_rows, T_NROWS, &opts, given };
static char err[256];
static int code;
static char notices[1024];

static void
reset(void)
{
    option_free(&group, 1);
    memset(given, 0, sizeof(given));
    char why[256] = "";
    cr_assert(option_defaults(t_rows, T_NROWS, &opts, why, sizeof(why)), "%s", why);
}

/* Splits line on spaces into argv and parses it, notices into `notices`. */
static bool
parse(const char *line)
{
    static char buf[512];
    char *argv[32];
    int argc = 0;
    reset();
    snprintf(buf, sizeof(buf), "prog %s", line);
    for (char *t = strtok(buf, " "); t != NULL && argc < 31; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    err[0] = '\0';
    code = 0;
    memset(notices, 0, sizeof(notices));
    FILE *n = fmemopen(notices, sizeof(notices) - 1, "w");
    bool ok = option_parse(&group, 1, argc, argv, n, err, sizeof(err), &code);
    fclose(n);
    return ok;
}

static void
teardown(void)
{
    option_free(&group, 1);
}

TestSuite(option, .fini = teardown);

Test(option, defaults_go_through_the_parser_with_their_units)
{
    reset();
    cr_assert_eq(opts.port, 11211);
    cr_assert_eq(opts.mem, 64ull << 20);
    cr_assert_eq(opts.item_max, 1u << 20);
    cr_assert_float_eq(opts.factor, 1.25, 1e-9);
    cr_assert_eq(opts.mask, 0700);
    cr_assert(opts.evict && opts.crawler);
    cr_assert_eq(opts.delim, ':');
    cr_assert_eq(opts.proto, 0);
    cr_assert_null(opts.listen);
}

Test(option, each_type_takes_its_argument)
{
    cr_assert(parse("-p 1 -m 2 -I 2m -f 1.5 -a 770 -M -vv -v -D # -B ascii --peers a:1,b:2"),
              "%s", err);
    cr_assert_eq(opts.port, 1);
    cr_assert_eq(opts.mem, 2ull << 20);
    cr_assert_eq(opts.item_max, 2u << 20);
    cr_assert_float_eq(opts.factor, 1.5, 1e-9);
    cr_assert_eq(opts.mask, 0770);
    cr_assert_not(opts.evict);
    cr_assert_eq(opts.verbose, 3);
    cr_assert_eq(opts.delim, '#');
    cr_assert_eq(opts.proto, 2);
    cr_assert_str_eq(opts.peers, "a:1,b:2");
}

Test(option, long_forms_take_equals_or_the_next_word)
{
    cr_assert(parse("--port=7 --memory-limit 3 --verbose"), "%s", err);
    cr_assert_eq(opts.port, 7);
    cr_assert_eq(opts.mem, 3ull << 20);
    cr_assert_eq(opts.verbose, 1);
}

Test(option, a_repeated_list_joins_with_commas_and_drops_repeats)
{
    cr_assert(parse("-l 127.0.0.1 -l ::1 -l 127.0.0.1 -l 27.0.0.1"), "%s", err);
    cr_assert_str_eq(opts.listen, "127.0.0.1,::1,27.0.0.1");
}

Test(option, out_of_range_values_get_the_rows_words_and_exit_status)
{
    cr_assert_not(parse("-p 70000"));
    cr_assert_str_eq(err, "ERROR: Invalid port number 70000.");
    cr_assert_eq(code, OPTION_EXIT_USAGE);
    cr_assert_not(parse("-f 1"));
    cr_assert_str_eq(err, "Factor must be greater than 1");
    cr_assert_eq(code, 1);
    cr_assert_not(parse("-I 1000"));
    cr_assert_str_eq(err, "too small");
    cr_assert_not(parse("-I 2g"));
    cr_assert_str_eq(err, "too big");
    cr_assert_not(parse("-a 1000"));
    cr_assert_str_eq(err, "Invalid value for -a: 1000 (want 0-511)");
}

Test(option, junk_numbers_are_refused_not_read_as_zero)
{
    cr_assert_not(parse("-p 12ab"));
    cr_assert_str_eq(err, "ERROR: Invalid port number 12ab.");
    cr_assert_not(parse("-m lots"));
    cr_assert_not(parse("-m -5"));
    cr_assert_not(parse("-a 9"));
    cr_assert_not(parse("--peers a:1,b"));
    cr_assert_str_eq(err, "bad peers a:1,b");
    cr_assert_not(parse("-B binaryish"));
    cr_assert_str_eq(err, "no protocol binaryish");
}

Test(option, a_refused_flag_says_why)
{
    cr_assert_not(parse("-S"));
    cr_assert_str_eq(err, "This server is not built with SASL support.");
    cr_assert_eq(code, OPTION_EXIT_USAGE);
}

Test(option, sub_options_switch_take_values_and_imply_them)
{
    cr_assert(parse("-o no_lru_crawler,slab_automove,idle_timeout=5"), "%s", err);
    cr_assert_not(opts.crawler);
    cr_assert_eq(opts.automove, 1);
    cr_assert_eq(opts.idle, 5);
    cr_assert(parse("-o slab_automove=2 -o lru_crawler"), "%s", err);
    cr_assert_eq(opts.automove, 2);
    cr_assert(opts.crawler);
}

Test(option, sub_option_refusals_use_memcacheds_words)
{
    cr_assert_not(parse("-o bogus=1"));
    cr_assert_str_eq(err, "Illegal suboption \"bogus=1\"");
    cr_assert_eq(code, 1);
    cr_assert_not(parse("-o idle_timeout"));
    cr_assert_str_eq(err, "Missing numeric argument for idle_timeout");
    cr_assert_not(parse("-o slab_automove=3"));
    cr_assert_str_eq(err, "slab_automove must be between 0 and 2");
}

Test(option, a_notice_is_printed_once_per_text)
{
    cr_assert(parse("-o ext_path=/x,ext_other=1,idle_timeout=2"), "%s", err);
    cr_assert_str_eq(notices, "ext: ignored\nidle: noted\n");
}

Test(option, unknown_flags_and_stray_words_are_refused)
{
    cr_assert_not(parse("-x"));
    cr_assert_str_eq(err, "Illegal argument \"?\"");
    cr_assert_eq(code, 1);
    cr_assert_not(parse("-p 1 stray"));
    cr_assert_str_eq(err, "Unexpected argument \"stray\"");
}

Test(option, given_is_known_by_name_and_by_stat_name)
{
    cr_assert(parse("-D # -o idle_timeout=1"), "%s", err);
    cr_assert(option_given(&group, 1, "idle_timeout"));
    cr_assert_not(option_given(&group, 1, "port"));
    cr_assert(parse("-D #"), "%s", err);
    cr_assert_not(option_given(&group, 1, "idle_timeout"));
}

static void
collect(void *ctx, const char *name, const char *value)
{
    strcat(ctx, name);
    strcat(ctx, " ");
    strcat(ctx, value);
    strcat(ctx, "\n");
}

static bool
live(void *arg, const char *name, char *buf, size_t len)
{
    if (strcmp(name, "oldest") != 0)
        return false;
    snprintf(buf, len, "42");
    return true;
}

Test(option, settings_follow_the_order_then_the_rest_in_row_order)
{
    cr_assert(parse("-M -a 755 -l a -l b"), "%s", err);
    static const char *const order[] = { "maxbytes", "oldest", "evictions", "umask", "inter",
                                         "nothing" };
    char out[2048] = "";
    option_settings(&group, 1, order, 6, live, NULL, collect, out);
    cr_assert_str_eq(out, "maxbytes 67108864\noldest 42\nevictions off\numask 755\ninter a,b\n"
                          "tcpport 11211\ngrowth_factor 1.25\nbinding_protocol auto-negotiate\n"
                          "lru_crawler yes\next_path (null)\n");
}

static char *
capture(void (*fn)(FILE *, const struct option_group *, size_t))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, &group, 1);
    fclose(f);
    return buf;
}

Test(option, help_and_man_page_list_the_same_rows)
{
    reset();
    char *help = capture(option_usage);
    char *man = capture(option_man);
    for (size_t i = 0; i < T_NROWS; i++) {
        cr_assert_not_null(strstr(help, t_rows[i].help), "-h lacks %s", t_rows[i].help);
        cr_assert_not_null(strstr(man, t_rows[i].help), "man lacks %s", t_rows[i].help);
    }
    cr_assert_not_null(strstr(help, "-p, --port=<num>"));
    cr_assert_not_null(strstr(man, "\\fB\\-p\\fR, \\fB\\-\\-port\\fR=\\fI<num>\\fR"));
    cr_assert_not_null(strstr(help, "(default: 11211)"));
    cr_assert_not_null(strstr(man, "(default: 11211)"));
    free(help);
    free(man);
}
