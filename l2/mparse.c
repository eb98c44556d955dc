/* mparse: strict on what the client relies on (codes, the value length, the
 * numbers of f c t s l, the opaque and key tokens), lenient only where
 * memcached may grow (an unknown flag letter is skipped, so a newer server's
 * extra return flags do not break the stream). */
#include "l2/mparse.h"

#include <string.h>

static const struct {
    const char *name;
    size_t len;
    enum mparse_code code;
} mparse_codes[] = {
    {"VA", 2, MP_VA},
    {"HD", 2, MP_HD},
    {"EN", 2, MP_EN},
    {"NF", 2, MP_NF},
    {"NS", 2, MP_NS},
    {"EX", 2, MP_EX},
    {"MN", 2, MP_MN},
    {"ERROR", 5, MP_ERROR},
    {"CLIENT_ERROR", 12, MP_CLIENT_ERROR},
    {"SERVER_ERROR", 12, MP_SERVER_ERROR},
};

#define MPARSE_NCODES (sizeof(mparse_codes) / sizeof(mparse_codes[0]))

const char *
mparse_code_name(enum mparse_code code)
{
    for (size_t i = 0; i < MPARSE_NCODES; i++)
        if (mparse_codes[i].code == code)
            return mparse_codes[i].name;
    return "??";
}

static bool
mparse_u64(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A token may hold any printable byte but space; the line is already split
 * on spaces, so only control bytes and DEL are left to refuse. */
static bool
mparse_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x21 || ch == 0x7f)
            return false;
    }
    return true;
}

static bool
mparse_flag(const char *tok, size_t n, struct mparse_reply *r)
{
    const char *v = tok + 1;
    size_t nv = n - 1;
    uint64_t num;
    switch (tok[0]) {
    case 'f':
        if (!mparse_u64(v, nv, &num) || num > UINT32_MAX)
            return false;
        r->flags = (uint32_t)num;
        r->has_flags = true;
        return true;
    case 'c':
        if (!mparse_u64(v, nv, &r->cas))
            return false;
        r->has_cas = true;
        return true;
    case 't':
        if (nv == 2 && v[0] == '-' && v[1] == '1') {
            r->ttl = -1;
        } else {
            if (!mparse_u64(v, nv, &num) || num > INT32_MAX)
                return false;
            r->ttl = (int64_t)num;
        }
        r->has_ttl = true;
        return true;
    case 's':
        if (!mparse_u64(v, nv, &r->size))
            return false;
        r->has_size = true;
        return true;
    case 'h':
        if (nv != 1 || (v[0] != '0' && v[0] != '1'))
            return false;
        r->hit_before = v[0] == '1';
        r->has_hit = true;
        return true;
    case 'l':
        if (!mparse_u64(v, nv, &r->last_access))
            return false;
        r->has_last = true;
        return true;
    case 'W':
    case 'Z':
    case 'X':
    case 'b':
        if (nv != 0)
            return false;
        if (tok[0] == 'W')
            r->win = true;
        else if (tok[0] == 'Z')
            r->won = true;
        else if (tok[0] == 'X')
            r->stale = true;
        else
            r->key_binary = true;
        return true;
    case 'k':
        if (nv == 0 || nv > 250 || !mparse_printable(v, nv))
            return false;
        r->key = v;
        r->nkey = nv;
        return true;
    case 'O':
        if (nv == 0 || nv > 32 || !mparse_printable(v, nv))
            return false;
        r->opaque = v;
        r->nopaque = nv;
        return true;
    default:
        /* A flag letter this client does not know: skip it, but only if it
         * looks like one (a letter and printable bytes). */
        if (!((tok[0] >= 'a' && tok[0] <= 'z') || (tok[0] >= 'A' && tok[0] <= 'Z')))
            return false;
        return mparse_printable(v, nv);
    }
}

enum mparse_status
mparse_line(const char *line, size_t len, struct mparse_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (len == 0 || len > MPARSE_LINE_MAX || memchr(line, '\n', len) || memchr(line, '\r', len) ||
        memchr(line, '\0', len))
        return MPARSE_BAD;
    size_t clen = 0;
    while (clen < len && line[clen] != ' ')
        clen++;
    size_t i;
    for (i = 0; i < MPARSE_NCODES; i++)
        if (mparse_codes[i].len == clen && memcmp(mparse_codes[i].name, line, clen) == 0)
            break;
    if (i == MPARSE_NCODES)
        return MPARSE_BAD;
    r->code = mparse_codes[i].code;
    if (r->code == MP_ERROR || r->code == MP_CLIENT_ERROR || r->code == MP_SERVER_ERROR) {
        r->msg = clen < len ? line + clen + 1 : line + len;
        r->nmsg = clen < len ? len - clen - 1 : 0;
        return MPARSE_OK;
    }
    if (r->code == MP_MN)
        return clen == len ? MPARSE_OK : MPARSE_BAD;
    size_t p = clen;
    bool need_len = r->code == MP_VA;
    while (p < len) {
        if (line[p] != ' ')
            return MPARSE_BAD;
        while (p < len && line[p] == ' ')
            p++;
        if (p == len)
            break;
        size_t start = p;
        while (p < len && line[p] != ' ')
            p++;
        const char *tok = line + start;
        size_t n = p - start;
        if (need_len) {
            uint64_t v;
            if (!mparse_u64(tok, n, &v) || v > UINT32_MAX - 2)
                return MPARSE_BAD;
            r->vlen = (uint32_t)v;
            need_len = false;
            continue;
        }
        if (!mparse_flag(tok, n, r))
            return MPARSE_BAD;
    }
    return need_len ? MPARSE_BAD : MPARSE_OK;
}
