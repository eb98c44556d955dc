/* spec: the two-level options' rows and the --l2 server list,
 * HOST:PORT[:WEIGHT] items separated by commas (HOST may be a [v6]
 * literal). Pure parsing, no resolving: config checks a list with it before
 * anything starts. */
#include "l2/l2_internal.h"

#include <stdio.h>
#include <string.h>

#define L2_OPTION_ROW(...) OPTION_ROW(struct l2_options, __VA_ARGS__)
const struct option_row l2_option_rows[] = { L2_OPTIONS(L2_OPTION_ROW, L2_OPTION_ROW) };
#undef L2_OPTION_ROW
const size_t l2_option_nrows = sizeof(l2_option_rows) / sizeof(l2_option_rows[0]);

void
l2_options_default(struct l2_options *opts)
{
    char err[256];
    memset(opts, 0, sizeof(*opts));
    /* Every default is a row's; test_config checks that each one parses. */
    (void)option_defaults(l2_option_rows, l2_option_nrows, opts, err, sizeof(err));
}

/* One item of the --l2 list: HOST:PORT[:WEIGHT], HOST may be [v6]. */
static bool
l2_parse_item(const char *item, size_t len, struct l2_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->weight = 1;
    const char *p = item, *end = item + len;
    const char *host = p;
    size_t hlen;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL)
            goto bad;
        host = p + 1;
        hlen = (size_t)(close - host);
        p = close + 1;
    } else {
        while (p < end && *p != ':')
            p++;
        hlen = (size_t)(p - host);
    }
    if (hlen == 0 || hlen >= sizeof(out->host) || p >= end || *p != ':')
        goto bad;
    memcpy(out->host, host, hlen);
    p++;
    const char *port = p;
    while (p < end && *p != ':')
        p++;
    size_t plen = (size_t)(p - port);
    if (plen == 0 || plen >= sizeof(out->port))
        goto bad;
    unsigned long pn = 0;
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9')
            goto bad;
        pn = pn * 10 + (unsigned long)(port[i] - '0');
    }
    if (pn == 0 || pn > 65535)
        goto bad;
    memcpy(out->port, port, plen);
    out->name_len = (size_t)(p - item);
    if (p < end) {
        p++;
        if (p == end || end - p > 6)
            goto bad;
        unsigned long w = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                goto bad;
            w = w * 10 + (unsigned long)(*p - '0');
        }
        if (w == 0 || w > 100000)
            goto bad;
        out->weight = (uint32_t)w;
    }
    return true;
bad:
    snprintf(err, errlen, "Invalid --l2 server \"%.*s\" (want HOST:PORT[:WEIGHT], weight 1-100000)",
             (int)len, item);
    return false;
}

bool
l2_spec_each(const char *spec, char *err, size_t errlen,
             bool (*fn)(const char *item, size_t len, const struct l2_spec *s, void *arg),
             void *arg)
{
    if (spec == NULL || spec[0] == '\0') {
        snprintf(err, errlen, "Invalid --l2: empty server list");
        return false;
    }
    const char *p = spec;
    unsigned n = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        struct l2_spec s;
        if (!l2_parse_item(p, len, &s, err, errlen))
            return false;
        if (++n > 1024) {
            snprintf(err, errlen, "Invalid --l2: more than 1024 servers");
            return false;
        }
        if (fn != NULL && !fn(p, len, &s, arg)) {
            snprintf(err, errlen, "--l2 server %.*s: cannot resolve it", (int)len, p);
            return false;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return true;
}

bool
l2_servers_valid(const char *spec, char *err, size_t errlen)
{
    return l2_spec_each(spec, err, errlen, NULL, NULL);
}

