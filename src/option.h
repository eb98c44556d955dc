/* option: typed option rows, and everything done with them. A module
 * declares its options as one X-macro of rows in its own header (in the
 * manner of pelikan's option tables); the same rows generate the fields of
 * its options struct, its defaults, the command-line parser, -h, the man
 * page's OPTIONS section and its lines of `stats settings`. Base tier: knows
 * no module; the top (src/config.c) hands it the modules' groups of rows.
 *
 * A row, as a module writes it:
 *
 *   X(uint32_t, chunk_min, .flag = 'n', .name = "slab-min-size", .type = OPTION_INT,
 *     .arg = "<bytes>", .def = "48", .min = 1, .max = INT32_MAX,
 *     .help = "min space used for key+value+flags", .stat = "chunk_size")
 *
 * the C type and field first (OPTION_FIELD makes the struct member), then
 * designated initializers of struct option_row (OPTION_ROW adds the field's
 * offset and storage). The default is written once, as a user would type
 * it, and goes through the same parser as the command line. */
#ifndef FLEETCACHE_OPTION_H
#define FLEETCACHE_OPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* sysexits.h's EX_USAGE: memcached's exit status for most refusals. */
#define OPTION_EXIT_USAGE 64

/* What the argument looks like and what giving the option does. */
enum option_type {
    OPTION_SWITCH,   /* no argument: the bool field becomes true */
    OPTION_CLEAR,    /* no argument: the bool field becomes false (-M, -C, no_*) */
    OPTION_COUNT,    /* no argument, repeatable: the int field counts (-v, -vv) */
    OPTION_INT,      /* decimal integer in [min, max], stored times unit */
    OPTION_SIZE,     /* integer with an optional k/m/g suffix (-I 2m), in [min, max] */
    OPTION_FLOAT,    /* decimal fraction in [min, max] (min excluded with min_open) */
    OPTION_OCTAL,    /* octal number in [min, max] (-a 700) */
    OPTION_STRING,   /* text (a copy is kept; option_free releases it) */
    OPTION_LIST,     /* text, repeatable: joined with ',', repeats dropped (-l) */
    OPTION_HOSTPORT, /* text "host:port" with a numeric port 1-65535 ("[v6]:port" too) */
    OPTION_HOSTPORTS,/* text, a comma-separated list of host:port */
    OPTION_CHAR,     /* one character (-D :) */
    OPTION_CHOICE,   /* one word of choices "a|b=shown|c"; the field holds its index */
    OPTION_REFUSE,   /* always refused with bad (a feature this build lacks) */
    OPTION_SUBOPTS,  /* comma-separated -o sub-options (rows with sub = true) */
};

/* How `stats settings` prints a value (memcached's own quirks included). */
enum option_show {
    OPTION_SHOW_PLAIN,  /* ints as decimal, floats %.2f, bools yes/no, strings or NULL */
    OPTION_SHOW_ONOFF,  /* bool as on/off */
    OPTION_SHOW_OCTAL,  /* %o */
    OPTION_SHOW_FIXED3, /* %.3f */
    OPTION_SHOW_PNULL,  /* "(null)" for a NULL string or a zero number */
};

/* The C type of the field, found by _Generic from the field itself. */
enum option_store {
    OPTION_STORE_NONE,
    OPTION_STORE_BOOL,
    OPTION_STORE_CHAR,
    OPTION_STORE_INT,
    OPTION_STORE_UINT,
    OPTION_STORE_LONG,
    OPTION_STORE_ULONG,
    OPTION_STORE_LLONG,
    OPTION_STORE_ULLONG,
    OPTION_STORE_DOUBLE,
    OPTION_STORE_STRING,
};

struct option_row {
    char flag;              /* short flag, 0 for none */
    const char *name;       /* long name (--name), or the -o sub-option's name */
    bool sub;               /* an -o sub-option rather than a flag */
    enum option_type type;
    const char *arg;        /* argument's name in -h ("<num>"); NULL: takes none */
    const char *def;        /* default, as typed on the command line; NULL: zero */
    const char *implied;    /* a sub-option given without "=value" means this */
    double min, max;        /* range, before unit; both 0 (and not min_open): any
                             * value of the type; max 0 alone: no upper bound */
    bool min_open;          /* OPTION_FLOAT: min itself is refused */
    uint64_t unit;          /* OPTION_INT: stored as value * unit (-m: MiB); 0 = 1 */
    const char *choices;    /* OPTION_CHOICE: "word|word=shown|..." */
    const char *help;
    const char *stat;       /* name in `stats settings`; NULL: not shown */
    enum option_show show;
    const char *bad;        /* refusal, printf with the argument as %s; NULL: generic */
    const char *bad_high;   /* refusal above max; NULL: bad */
    const char *missing;    /* sub-option without its value, %s = name; NULL: generic */
    int exit;               /* exit status of a refusal; 0: OPTION_EXIT_USAGE */
    const char *notice;     /* printed once when given: accepted, and why it changes little */
    size_t offset;          /* of the field in the owner's struct (OPTION_ROW) */
    enum option_store store;
};

/* Maps a C type to the field it stores into. */
#define OPTION_STORE_OF(expr)                                                    \
    _Generic((expr),                                                             \
        bool: OPTION_STORE_BOOL, char: OPTION_STORE_CHAR, int: OPTION_STORE_INT, \
        unsigned: OPTION_STORE_UINT, long: OPTION_STORE_LONG,                    \
        unsigned long: OPTION_STORE_ULONG, long long: OPTION_STORE_LLONG,        \
        unsigned long long: OPTION_STORE_ULLONG, double: OPTION_STORE_DOUBLE,    \
        char *: OPTION_STORE_STRING)

/* X-macro actions for a module's table MODULE_OPTIONS(X, ALSO): X(ctype,
 * field, .initializers...) declares a field and its row; ALSO(...) is
 * another spelling of a field declared above (no_lru_crawler), a row only. */
#define OPTION_FIELD(ctype, field, ...) ctype field;
#define OPTION_SKIP(...)
#define OPTION_ROW(T, ctype, field, ...)                                          \
    { .offset = offsetof(T, field), .store = OPTION_STORE_OF(((T *)0)->field),   \
      __VA_ARGS__ },
/* Counts rows: enum { N = 0 MODULE_OPTIONS(OPTION_ONE, OPTION_ONE) }. */
#define OPTION_ONE(...) +1
/* A row with no field (-h, -o, refused flags). */
#define OPTION_ROW_NOFIELD(...) { .store = OPTION_STORE_NONE, __VA_ARGS__ },

/* One module's rows and the struct they fill. */
struct option_group {
    const char *owner;          /* "net", "cache", "bus", "main" ... */
    const char *title;          /* heading in -h and the man page */
    const struct option_row *rows;
    size_t nrows;
    void *base;                 /* the owner's options struct */
    bool *given;                /* nrows flags: set by option_parse; may be NULL */
};

/* Writes every row's default (and zero where there is none) into base.
 * Returns false, with a reason in err, only if a default does not parse:
 * a bug the unit tests catch. */
bool
option_defaults(const struct option_row *rows, size_t nrows, void *base, char *err,
                size_t errlen);

/* Parses argv (getopt_long: short flags, --long[=value], -o a,b=c) into the
 * groups' structs, which must hold their defaults. Notices of accepted
 * options that change little go to notices (may be NULL). On a refusal
 * returns false with one line in err and memcached's exit status for it in
 * *exit_code. */
bool
option_parse(const struct option_group *groups, size_t ngroups, int argc, char **argv,
             FILE *notices, char *err, size_t errlen, int *exit_code);

/* True when option_parse saw a row whose long or sub-option name, or whose
 * `stats settings` name, is name. */
bool
option_given(const struct option_group *groups, size_t ngroups, const char *name);

/* Frees the strings option_parse or option_defaults copied into the groups. */
void
option_free(const struct option_group *groups, size_t ngroups);

/* -h: flags group by group, then the -o sub-options. */
void
option_usage(FILE *out, const struct option_group *groups, size_t ngroups);

/* The man page's OPTIONS section (roff), from the same rows as -h. */
void
option_man(FILE *out, const struct option_group *groups, size_t ngroups);

/* `stats settings`: for each name of order (then every other row with a
 * stat name, in group order) calls emit with its value. A name no row
 * holds, or one live answers for, takes live's value; live returns false
 * to skip it. */
typedef void (*option_emit_fn)(void *ctx, const char *name, const char *value);
typedef bool (*option_live_fn)(void *arg, const char *name, char *buf, size_t len);
void
option_settings(const struct option_group *groups, size_t ngroups,
                const char *const *order, size_t norder, option_live_fn live, void *live_arg,
                option_emit_fn emit, void *ctx);

/* Formats the current value of row (in base) as `stats settings` shows it. */
void
option_format(const struct option_row *row, const void *base, char *buf, size_t len);

#endif
