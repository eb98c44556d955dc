/* option: parses, defaults, prints and documents typed option rows (see
 * option.h). Every value, the defaults included, goes through
 * option_apply, so a default that would be refused on the command line
 * fails the unit tests instead of shipping. Refusals use the row's own
 * words (memcached's, where memcached refuses the same thing). */
#include "src/option.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"

/* Long-only options get getopt values above any char. */
#define OPTION_LONG_BASE 0x100

struct option_ref {
    const struct option_group *group;
    size_t index;
};

static void *
option_field(const struct option_row *row, const void *base)
{
    return (char *)base + row->offset;
}

static bool
option_fail(char *err, size_t errlen, int *exit_code, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool
option_fail(char *err, size_t errlen, int *exit_code, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (exit_code != NULL)
        *exit_code = code;
    return false;
}

static int
option_exit(const struct option_row *row)
{
    return row->exit != 0 ? row->exit : OPTION_EXIT_USAGE;
}

/* How a user wrote the option: "-p", "--bus-ttl" or "-o hashpower". */
static void
option_spelling(const struct option_row *row, char *buf, size_t len)
{
    if (row->sub)
        snprintf(buf, len, "-o %s", row->name);
    else if (row->flag)
        snprintf(buf, len, "-%c", row->flag);
    else
        snprintf(buf, len, "--%s", row->name);
}

/* Refuses arg for row: the row's message, or a generic one with the range. */
static bool
option_refuse(const struct option_row *row, const char *arg, bool high, char *err,
              size_t errlen, int *exit_code)
{
    const char *fmt = high && row->bad_high != NULL ? row->bad_high : row->bad;
    if (fmt != NULL) {
        /* The row's format takes the argument once, as %s, or not at all. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        char line[512];
        snprintf(line, sizeof(line), fmt, arg);
#pragma GCC diagnostic pop
        return option_fail(err, errlen, exit_code, option_exit(row), "%s", line);
    }
    char who[64];
    option_spelling(row, who, sizeof(who));
    if (row->max != 0)
        return option_fail(err, errlen, exit_code, option_exit(row),
                           "Invalid value for %s: %s (want %.15g-%.15g)", who, arg, row->min,
                           row->max);
    if (row->min != 0)
        return option_fail(err, errlen, exit_code, option_exit(row),
                           "Invalid value for %s: %s (want at least %.15g)", who, arg, row->min);
    return option_fail(err, errlen, exit_code, option_exit(row), "Invalid value for %s: %s", who,
                       arg);
}

/* The range a store can hold, for rows that give none. */
static void
option_store_range(enum option_store s, long double *lo, long double *hi)
{
    switch (s) {
    case OPTION_STORE_INT: *lo = INT_MIN; *hi = INT_MAX; break;
    case OPTION_STORE_UINT: *lo = 0; *hi = UINT_MAX; break;
    case OPTION_STORE_LONG: *lo = LONG_MIN; *hi = LONG_MAX; break;
    case OPTION_STORE_ULONG: *lo = 0; *hi = ULONG_MAX; break;
    case OPTION_STORE_LLONG: *lo = LLONG_MIN; *hi = LLONG_MAX; break;
    case OPTION_STORE_ULLONG: *lo = 0; *hi = ULLONG_MAX; break;
    default: *lo = -HUGE_VALL; *hi = HUGE_VALL; break;
    }
}

static void
option_store_number(const struct option_row *row, void *base, long double v)
{
    void *f = option_field(row, base);
    switch (row->store) {
    case OPTION_STORE_INT: *(int *)f = (int)v; break;
    case OPTION_STORE_UINT: *(unsigned *)f = (unsigned)v; break;
    case OPTION_STORE_LONG: *(long *)f = (long)v; break;
    case OPTION_STORE_ULONG: *(unsigned long *)f = (unsigned long)v; break;
    case OPTION_STORE_LLONG: *(long long *)f = (long long)v; break;
    case OPTION_STORE_ULLONG: *(unsigned long long *)f = (unsigned long long)v; break;
    case OPTION_STORE_DOUBLE: *(double *)f = (double)v; break;
    case OPTION_STORE_BOOL: *(bool *)f = v != 0; break;
    case OPTION_STORE_CHAR: *(char *)f = (char)v; break;
    case OPTION_STORE_STRING:
    case OPTION_STORE_NONE: break;
    }
}

/* Checks v against the row's range (or the store's) and stores it. Exact
 * for integers up to 2^64: long double carries 64 bits of mantissa. */
static bool
option_set_number(const struct option_row *row, void *base, const char *arg, long double v,
                  char *err, size_t errlen, int *exit_code)
{
    /* A range is given when min or max is non-zero; max 0 means no upper bound. */
    if (row->min != 0 || row->max != 0 || row->min_open) {
        if (v < row->min || (row->min_open && v == row->min))
            return option_refuse(row, arg, false, err, errlen, exit_code);
        if (row->max != 0 && v > row->max)
            return option_refuse(row, arg, true, err, errlen, exit_code);
    }
    uint64_t unit = row->unit != 0 ? row->unit : 1;
    v *= unit;
    long double lo, hi;
    option_store_range(row->store, &lo, &hi);
    if (v < lo || v > hi)
        return option_refuse(row, arg, v > hi, err, errlen, exit_code);
    option_store_number(row, base, v);
    return true;
}

static bool
option_parse_int(const char *s, int base, long double *out)
{
    char *end;
    errno = 0;
    if (*s == '-') {
        long long v = strtoll(s, &end, base);
        if (errno != 0 || end == s || *end != '\0')
            return false;
        *out = v;
    } else {
        if (*s == '+')
            s++;
        if (*s < '0' || *s > '9')
            return false;
        unsigned long long v = strtoull(s, &end, base);
        if (errno != 0 || end == s || *end != '\0')
            return false;
        *out = v;
    }
    return true;
}

/* Index of word in choices "a|b=shown|c", or -1. */
static int
option_choice_index(const char *choices, const char *word)
{
    size_t n = strlen(word);
    int i = 0;
    for (const char *p = choices; p != NULL && *p != '\0'; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t wlen = eq != NULL ? (size_t)(eq - p) : len;
        if (wlen == n && memcmp(p, word, n) == 0)
            return i;
        p = bar != NULL ? bar + 1 : NULL;
    }
    return -1;
}

/* The shown name of choice number index (what follows '=', or the word). */
static void
option_choice_name(const char *choices, int index, char *buf, size_t len)
{
    const char *p = choices;
    for (int i = 0; p != NULL && i < index; i++) {
        p = strchr(p, '|');
        if (p != NULL)
            p++;
    }
    if (p == NULL) {
        snprintf(buf, len, "%d", index);
        return;
    }
    const char *bar = strchr(p, '|');
    size_t l = bar != NULL ? (size_t)(bar - p) : strlen(p);
    const char *eq = memchr(p, '=', l);
    if (eq != NULL) {
        l -= (size_t)(eq + 1 - p);
        p = eq + 1;
    }
    snprintf(buf, len, "%.*s", (int)l, p);
}

static void
option_set_string(const struct option_row *row, void *base, const char *val)
{
    char **f = option_field(row, base);
    free(*f);
    *f = strdup(val);
}

/* -l a -l b: "a,b"; a token given again is dropped, as memcached does. */
static void
option_append_list(const struct option_row *row, void *base, const char *val)
{
    char **f = option_field(row, base);
    if (*f == NULL) {
        *f = strdup(val);
        return;
    }
    size_t n = strlen(val);
    for (const char *p = *f; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, val, n) == 0)
            return;
    }
    size_t old = strlen(*f);
    char *joined = malloc(old + 1 + n + 1);
    if (joined == NULL)
        return;
    memcpy(joined, *f, old);
    joined[old] = ',';
    memcpy(joined + old + 1, val, n + 1);
    free(*f);
    *f = joined;
}

/* "host:port" (len bytes of s) with a numeric port 1-65535; host may be
 * "[v6]" and must not be empty. */
static bool
option_hostport(const char *s, size_t len)
{
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL || colon == s)
        return false;
    uint32_t port;
    size_t plen = len - (size_t)(colon + 1 - s);
    return util_parse_u32(colon + 1, plen, &port) && port >= 1 && port <= 65535;
}

static bool option_apply_subopts(const struct option_group *groups, size_t ngroups,
                                 const char *arg, FILE *notices, char *err, size_t errlen,
                                 int *exit_code);

/* Gives row the value arg (NULL for options without one). */
static bool
option_apply(const struct option_row *row, void *base, const char *arg, char *err,
             size_t errlen, int *exit_code)
{
    long double v;
    switch (row->type) {
    case OPTION_SWITCH:
    case OPTION_CLEAR: {
        bool on = row->type == OPTION_SWITCH;
        if (arg != NULL) /* a default: "yes" or "no" */
            on = strcmp(arg, "yes") == 0;
        *(bool *)option_field(row, base) = on;
        return true;
    }
    case OPTION_COUNT:
        (*(int *)option_field(row, base))++;
        return true;
    case OPTION_INT:
        if (!option_parse_int(arg, 10, &v))
            return option_refuse(row, arg, false, err, errlen, exit_code);
        return option_set_number(row, base, arg, v, err, errlen, exit_code);
    case OPTION_OCTAL:
        if (*arg == '-' || !option_parse_int(arg, 8, &v))
            return option_refuse(row, arg, false, err, errlen, exit_code);
        return option_set_number(row, base, arg, v, err, errlen, exit_code);
    case OPTION_SIZE: {
        uint64_t size;
        if (!util_parse_size(arg, &size))
            return option_refuse(row, arg, false, err, errlen, exit_code);
        return option_set_number(row, base, arg, size, err, errlen, exit_code);
    }
    case OPTION_FLOAT: {
        char *end;
        errno = 0;
        double d = strtod(arg, &end);
        if (errno != 0 || end == arg || *end != '\0' || !isfinite(d))
            return option_refuse(row, arg, false, err, errlen, exit_code);
        return option_set_number(row, base, arg, d, err, errlen, exit_code);
    }
    case OPTION_STRING:
        if (*arg == '\0')
            return option_refuse(row, arg, false, err, errlen, exit_code);
        option_set_string(row, base, arg);
        return true;
    case OPTION_LIST:
        if (*arg == '\0')
            return option_refuse(row, arg, false, err, errlen, exit_code);
        option_append_list(row, base, arg);
        return true;
    case OPTION_HOSTPORT:
    case OPTION_HOSTPORTS: {
        bool good = *arg != '\0';
        if (row->type == OPTION_HOSTPORT) {
            good = good && option_hostport(arg, strlen(arg));
        } else {
            for (const char *p = arg; good && p != NULL;) {
                const char *comma = strchr(p, ',');
                good = option_hostport(p, comma != NULL ? (size_t)(comma - p) : strlen(p));
                p = comma != NULL ? comma + 1 : NULL;
            }
        }
        if (!good)
            return option_refuse(row, arg, false, err, errlen, exit_code);
        option_set_string(row, base, arg);
        return true;
    }
    case OPTION_CHAR:
        if (*arg == '\0')
            return option_refuse(row, arg, false, err, errlen, exit_code);
        *(char *)option_field(row, base) = arg[0];
        return true;
    case OPTION_CHOICE: {
        int i = option_choice_index(row->choices, arg);
        if (i < 0)
            return option_refuse(row, arg, false, err, errlen, exit_code);
        option_store_number(row, base, i);
        return true;
    }
    case OPTION_REFUSE:
        return option_refuse(row, arg != NULL ? arg : "", false, err, errlen, exit_code);
    case OPTION_SUBOPTS:
        return true; /* option_parse hands these to option_apply_subopts */
    }
    return true;
}

static bool
option_takes_arg(const struct option_row *row)
{
    switch (row->type) {
    case OPTION_SWITCH:
    case OPTION_CLEAR:
    case OPTION_COUNT:
        return false;
    case OPTION_REFUSE:
        return row->arg != NULL;
    default:
        return row->arg != NULL || row->implied == NULL;
    }
}

bool
option_defaults(const struct option_row *rows, size_t nrows, void *base, char *err,
                size_t errlen)
{
    /* Zero first: two rows may share a field (lru_crawler, no_lru_crawler),
     * and only one of them carries its default. */
    for (size_t i = 0; i < nrows; i++) {
        const struct option_row *r = &rows[i];
        if (r->store == OPTION_STORE_STRING) {
            char **f = option_field(r, base);
            *f = NULL;
        } else if (r->store != OPTION_STORE_NONE) {
            option_store_number(r, base, 0);
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        const struct option_row *r = &rows[i];
        if (r->def == NULL || r->store == OPTION_STORE_NONE)
            continue;
        if (r->type == OPTION_LIST) {
            option_set_string(r, base, r->def);
            continue;
        }
        char why[256];
        int code;
        if (!option_apply(r, base, r->def, why, sizeof(why), &code)) {
            snprintf(err, errlen, "default of %s: %s", r->name ? r->name : "?", why);
            return false;
        }
    }
    return true;
}

static void
option_notice(FILE *notices, const char *text, const char **seen, size_t *nseen, size_t cap)
{
    if (notices == NULL || text == NULL)
        return;
    for (size_t i = 0; i < *nseen; i++)
        if (strcmp(seen[i], text) == 0)
            return;
    if (*nseen < cap)
        seen[(*nseen)++] = text;
    fprintf(notices, "%s\n", text);
}

/* Notices already printed during this parse (one line per distinct text). */
static const char *option_seen[64];
static size_t option_nseen;

static void
option_mark(const struct option_group *g, size_t i, FILE *notices)
{
    if (g->given != NULL)
        g->given[i] = true;
    option_notice(notices, g->rows[i].notice, option_seen, &option_nseen,
                  sizeof(option_seen) / sizeof(option_seen[0]));
}

/* -o a,b=c: memcached's getsubopt() rules (a value may hold '=' but no ','). */
static bool
option_apply_subopts(const struct option_group *groups, size_t ngroups, const char *arg,
                     FILE *notices, char *err, size_t errlen, int *exit_code)
{
    char *list = strdup(arg);
    if (list == NULL)
        return option_fail(err, errlen, exit_code, 1, "out of memory");
    bool ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL && ok;
         tok = strtok_r(NULL, ",", &save)) {
        char whole[256];
        snprintf(whole, sizeof(whole), "%s", tok);
        char *val = strchr(tok, '=');
        if (val != NULL)
            *val++ = '\0';
        const struct option_group *g = NULL;
        size_t idx = 0;
        for (size_t gi = 0; gi < ngroups && g == NULL; gi++)
            for (size_t i = 0; i < groups[gi].nrows; i++)
                if (groups[gi].rows[i].sub && strcmp(groups[gi].rows[i].name, tok) == 0) {
                    g = &groups[gi];
                    idx = i;
                    break;
                }
        if (g == NULL) {
            ok = option_fail(err, errlen, exit_code, 1, "Illegal suboption \"%s\"", whole);
            break;
        }
        const struct option_row *r = &g->rows[idx];
        if (r->type == OPTION_SWITCH || r->type == OPTION_CLEAR || r->type == OPTION_COUNT) {
            val = NULL; /* memcached ignores a value given to a switch */
        } else if (val == NULL || (r->arg == NULL && r->implied != NULL)) {
            if (r->implied == NULL) {
                const char *fmt = r->missing != NULL ? r->missing : "Missing %s argument";
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                char line[256];
                snprintf(line, sizeof(line), fmt, r->name);
#pragma GCC diagnostic pop
                ok = option_fail(err, errlen, exit_code, option_exit(r), "%s", line);
                break;
            }
            val = (char *)r->implied;
        }
        ok = option_apply(r, g->base, val, err, errlen, exit_code);
        if (ok)
            option_mark(g, idx, notices);
    }
    free(list);
    return ok;
}

bool
option_parse(const struct option_group *groups, size_t ngroups, int argc, char **argv,
             FILE *notices, char *err, size_t errlen, int *exit_code)
{
    size_t total = 0;
    for (size_t gi = 0; gi < ngroups; gi++)
        total += groups[gi].nrows;
    struct option_ref *refs = calloc(total + 1, sizeof(*refs));
    struct option *longopts = calloc(total + 1, sizeof(*longopts));
    char *shortopts = calloc(3 * total + 2, 1);
    if (refs == NULL || longopts == NULL || shortopts == NULL) {
        free(refs);
        free(longopts);
        free(shortopts);
        return option_fail(err, errlen, exit_code, 1, "out of memory");
    }
    size_t nref = 0, nlong = 0, ns = 0;
    for (size_t gi = 0; gi < ngroups; gi++) {
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            const struct option_row *r = &groups[gi].rows[i];
            if (r->sub)
                continue;
            refs[nref] = (struct option_ref){ &groups[gi], i };
            bool takes = option_takes_arg(r) || r->type == OPTION_SUBOPTS;
            if (r->name != NULL)
                longopts[nlong++] = (struct option){
                    r->name,
                    takes ? required_argument
                          : (r->type == OPTION_COUNT ? optional_argument : no_argument),
                    NULL, OPTION_LONG_BASE + (int)nref };
            if (r->flag) {
                shortopts[ns++] = r->flag;
                if (takes)
                    shortopts[ns++] = ':';
            }
            nref++;
        }
    }
    option_nseen = 0;
    optind = 0; /* glibc: 0 also forgets a half-read "-abc" of an earlier parse */
    opterr = 1; /* getopt prints its own "invalid option" line, as memcached's does */
    bool ok = true;
    int c;
    while (ok && (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const struct option_ref *ref = NULL;
        if (c >= OPTION_LONG_BASE) {
            ref = &refs[c - OPTION_LONG_BASE];
        } else {
            for (size_t i = 0; i < nref && ref == NULL; i++)
                if (c != 0 && refs[i].group->rows[refs[i].index].flag == c)
                    ref = &refs[i];
        }
        if (ref == NULL) {
            ok = option_fail(err, errlen, exit_code, 1, "Illegal argument \"%c\"", '?');
            break;
        }
        const struct option_row *r = &ref->group->rows[ref->index];
        if (r->type == OPTION_SUBOPTS) {
            ok = option_apply_subopts(groups, ngroups, optarg, notices, err, errlen, exit_code);
        } else {
            const char *arg = option_takes_arg(r) ? optarg : NULL;
            ok = option_apply(r, ref->group->base, arg, err, errlen, exit_code);
        }
        if (ok)
            option_mark(ref->group, ref->index, notices);
    }
    if (ok && optind < argc)
        ok = option_fail(err, errlen, exit_code, 1, "Unexpected argument \"%s\"", argv[optind]);
    free(refs);
    free(longopts);
    free(shortopts);
    return ok;
}

bool
option_given(const struct option_group *groups, size_t ngroups, const char *name)
{
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++)
            if (groups[gi].given != NULL && groups[gi].given[i] &&
                ((groups[gi].rows[i].name != NULL && strcmp(groups[gi].rows[i].name, name) == 0) ||
                 (groups[gi].rows[i].stat != NULL && strcmp(groups[gi].rows[i].stat, name) == 0)))
                return true;
    return false;
}

void
option_free(const struct option_group *groups, size_t ngroups)
{
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            const struct option_row *r = &groups[gi].rows[i];
            if (r->store != OPTION_STORE_STRING)
                continue;
            char **f = option_field(r, groups[gi].base);
            free(*f);
            *f = NULL;
        }
}

/* "(default: 11211)" for rows that take a value and have a default. */
static void
option_default_note(const struct option_row *r, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->def != NULL && option_takes_arg(r) && r->type != OPTION_REFUSE)
        snprintf(buf, len, " (default: %s)", r->def);
}

void
option_usage(FILE *out, const struct option_group *groups, size_t ngroups)
{
    char left[96], note[96];
    for (size_t gi = 0; gi < ngroups; gi++) {
        bool heading = false;
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            const struct option_row *r = &groups[gi].rows[i];
            if (r->sub)
                continue;
            if (!heading) {
                fprintf(out, "%s:\n", groups[gi].title);
                heading = true;
            }
            const char *arg = option_takes_arg(r) || r->type == OPTION_SUBOPTS ? r->arg : NULL;
            if (r->flag && r->name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", r->flag, r->name, arg ? "=" : "",
                         arg ? arg : "");
            else if (r->flag)
                snprintf(left, sizeof(left), "-%c%s%s", r->flag, arg ? " " : "", arg ? arg : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", r->name, arg ? "=" : "",
                         arg ? arg : "");
            option_default_note(r, note, sizeof(note));
            fprintf(out, "  %-30s %s%s\n", left, r->help, note);
        }
    }
    fprintf(out, "-o sub-options (-o name[=value],name...):\n");
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            const struct option_row *r = &groups[gi].rows[i];
            if (!r->sub)
                continue;
            const char *arg = option_takes_arg(r) ? r->arg : NULL;
            snprintf(left, sizeof(left), "%s%s%s", r->name, arg ? "=" : "", arg ? arg : "");
            option_default_note(r, note, sizeof(note));
            fprintf(out, "   - %-27s %s%s\n", left, r->help, note);
        }
}

/* Writes s for roff: '-' as "\-" (a real minus), '\' as "\e". */
static void
option_roff(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '-')
            fputs("\\-", out);
        else if (*s == '\\')
            fputs("\\e", out);
        else
            fputc(*s, out);
    }
}

static void
option_man_row(FILE *out, const struct option_row *r)
{
    const char *arg = option_takes_arg(r) || r->type == OPTION_SUBOPTS ? r->arg : NULL;
    fputs(".TP\n", out);
    if (r->sub) {
        fputs("\\fB\\-o\\fR \\fB", out);
        option_roff(out, r->name);
        fputs("\\fR", out);
        if (arg) {
            fputs("=\\fI", out);
            option_roff(out, arg);
            fputs("\\fR", out);
        }
    } else {
        if (r->flag)
            fprintf(out, "\\fB\\-%c\\fR", r->flag);
        if (r->flag && r->name)
            fputs(", ", out);
        if (r->name) {
            fputs("\\fB\\-\\-", out);
            option_roff(out, r->name);
            fputs("\\fR", out);
        }
        if (arg) {
            fputs(r->name ? "=\\fI" : " \\fI", out);
            option_roff(out, arg);
            fputs("\\fR", out);
        }
    }
    fputc('\n', out);
    char note[96];
    option_default_note(r, note, sizeof(note));
    option_roff(out, r->help);
    option_roff(out, note);
    fputc('\n', out);
}

void
option_man(FILE *out, const struct option_group *groups, size_t ngroups)
{
    fputs(".SH OPTIONS\n", out);
    for (size_t gi = 0; gi < ngroups; gi++) {
        bool heading = false;
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            if (groups[gi].rows[i].sub)
                continue;
            if (!heading) {
                fputs(".SS ", out);
                option_roff(out, groups[gi].title);
                fputc('\n', out);
                heading = true;
            }
            option_man_row(out, &groups[gi].rows[i]);
        }
    }
    fputs(".SS Sub\\-options (\\fB\\-o\\fR name[=value],name...)\n", out);
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++)
            if (groups[gi].rows[i].sub)
                option_man_row(out, &groups[gi].rows[i]);
}

void
option_format(const struct option_row *r, const void *base, char *buf, size_t len)
{
    const void *f = option_field(r, base);
    long long s = 0;
    unsigned long long u = 0;
    bool is_signed = true;
    switch (r->store) {
    case OPTION_STORE_NONE:
        snprintf(buf, len, "%s", "");
        return;
    case OPTION_STORE_BOOL: {
        bool b = *(const bool *)f;
        snprintf(buf, len, "%s", r->show == OPTION_SHOW_ONOFF ? (b ? "on" : "off")
                                                               : (b ? "yes" : "no"));
        return;
    }
    case OPTION_STORE_CHAR:
        snprintf(buf, len, "%c", *(const char *)f);
        return;
    case OPTION_STORE_DOUBLE:
        snprintf(buf, len, r->show == OPTION_SHOW_FIXED3 ? "%.3f" : "%.2f", *(const double *)f);
        return;
    case OPTION_STORE_STRING: {
        const char *str = *(char *const *)f;
        snprintf(buf, len, "%s", str != NULL ? str : r->show == OPTION_SHOW_PNULL ? "(null)" : "NULL");
        return;
    }
    case OPTION_STORE_INT: s = *(const int *)f; break;
    case OPTION_STORE_LONG: s = *(const long *)f; break;
    case OPTION_STORE_LLONG: s = *(const long long *)f; break;
    case OPTION_STORE_UINT: u = *(const unsigned *)f; is_signed = false; break;
    case OPTION_STORE_ULONG: u = *(const unsigned long *)f; is_signed = false; break;
    case OPTION_STORE_ULLONG: u = *(const unsigned long long *)f; is_signed = false; break;
    }
    if (r->type == OPTION_CHOICE) {
        option_choice_name(r->choices, is_signed ? (int)s : (int)u, buf, len);
        return;
    }
    bool zero = is_signed ? s == 0 : u == 0;
    if (r->show == OPTION_SHOW_PNULL && zero)
        snprintf(buf, len, "(null)");
    else if (r->show == OPTION_SHOW_OCTAL)
        snprintf(buf, len, "%llo", is_signed ? (unsigned long long)s : u);
    else if (is_signed)
        snprintf(buf, len, "%lld", s);
    else
        snprintf(buf, len, "%llu", u);
}

static const struct option_row *
option_by_stat(const struct option_group *groups, size_t ngroups, const char *name,
               const void **base)
{
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++)
            if (groups[gi].rows[i].stat != NULL && strcmp(groups[gi].rows[i].stat, name) == 0) {
                *base = groups[gi].base;
                return &groups[gi].rows[i];
            }
    return NULL;
}

void
option_settings(const struct option_group *groups, size_t ngroups,
                const char *const *order, size_t norder, option_live_fn live, void *live_arg,
                option_emit_fn emit, void *ctx)
{
    char buf[256];
    for (size_t k = 0; k < norder; k++) {
        const void *base = NULL;
        const struct option_row *r = option_by_stat(groups, ngroups, order[k], &base);
        if (live != NULL && live(live_arg, order[k], buf, sizeof(buf)))
            emit(ctx, order[k], buf);
        else if (r != NULL) {
            option_format(r, base, buf, sizeof(buf));
            emit(ctx, order[k], buf);
        }
    }
    for (size_t gi = 0; gi < ngroups; gi++)
        for (size_t i = 0; i < groups[gi].nrows; i++) {
            const struct option_row *r = &groups[gi].rows[i];
            if (r->stat == NULL)
                continue;
            bool listed = false;
            for (size_t k = 0; k < norder && !listed; k++)
                listed = strcmp(order[k], r->stat) == 0;
            if (listed)
                continue;
            if (live != NULL && live(live_arg, r->stat, buf, sizeof(buf))) {
                emit(ctx, r->stat, buf);
                continue;
            }
            option_format(r, groups[gi].base, buf, sizeof(buf));
            emit(ctx, r->stat, buf);
        }
}
