/* meta: flag parsing for the meta commands, base64 keys and reply pieces.
 * The checks run in memcached 1.6.18's order and give its exact error lines
 * (they differ between commands: md and ma say "invalid or duplicate flag"
 * for any flag error); bounds: a flag's token is read only within its view,
 * a decoded key never exceeds CACHE_KEY_MAX, and nothing here allocates. */
#include "net/meta.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#define E_FORMAT "CLIENT_ERROR bad command line format"
#define E_BAD_TOKEN "CLIENT_ERROR bad token in command line format"

static void
meta_see(struct meta_request *m, unsigned char f)
{
    m->seen[f >> 5] |= UINT32_C(1) << (f & 31);
}

/* The token after a flag's character. */
static struct proto_token
meta_arg(const struct proto_token *t)
{
    return (struct proto_token){ .p = t->p + 1, .len = t->len - 1 };
}

/* --- base64 ---------------------------------------------------------------- */

static const char meta_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for the alphabet, 0 for '=', -1 for anything else. */
static int
meta_b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    if (ch == '=')
        return 0;
    return -1;
}

size_t
meta_base64_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t valid = 0;
    for (size_t i = 0; i < len; i++)
        if (meta_b64_value((unsigned char)src[i]) >= 0)
            valid++;
    if (valid == 0 || valid % 4 != 0 || valid / 4 * 3 > cap)
        return 0;
    unsigned char block[4];
    size_t n = 0, o = 0;
    unsigned pad = 0;
    for (size_t i = 0; i < len; i++) {
        int v = meta_b64_value((unsigned char)src[i]);
        if (v < 0)
            continue;
        if (src[i] == '=')
            pad++;
        block[n++] = (unsigned char)v;
        if (n < 4)
            continue;
        out[o++] = (char)((block[0] << 2) | (block[1] >> 4));
        out[o++] = (char)((block[1] << 4) | (block[2] >> 2));
        out[o++] = (char)((block[2] << 6) | block[3]);
        n = 0;
        if (pad) {
            /* The first padded group ends the key, whatever follows. */
            if (pad > 2)
                return 0;
            return o - pad;
        }
    }
    return o;
}

size_t
meta_base64_encode(const char *src, size_t len, char *out)
{
    const unsigned char *s = (const unsigned char *)src;
    char *p = out;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        *p++ = meta_b64_alphabet[s[i] >> 2];
        *p++ = meta_b64_alphabet[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *p++ = meta_b64_alphabet[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *p++ = meta_b64_alphabet[s[i + 2] & 63];
    }
    if (len - i == 1) {
        *p++ = meta_b64_alphabet[s[i] >> 2];
        *p++ = meta_b64_alphabet[(s[i] & 3) << 4];
        *p++ = '=';
        *p++ = '=';
    } else if (len - i == 2) {
        *p++ = meta_b64_alphabet[s[i] >> 2];
        *p++ = meta_b64_alphabet[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *p++ = meta_b64_alphabet[(s[i + 1] & 15) << 2];
        *p++ = '=';
    }
    return (size_t)(p - out);
}

/* --- flags -------------------------------------------------------------------- */

/* memcached's _meta_flag_preparse: every flag token from m->first on. A
 * repeated or non-ASCII flag and an unknown one stop at once; a bad argument
 * is remembered (the last one's line wins) and parsing goes on. Returns the
 * error line or NULL. */
static const char *
meta_flags(const struct proto_request *req, struct meta_request *m)
{
    const char *err = NULL;
    bool has_error = false;
    for (unsigned i = m->first; i < req->ntokens && req->tokens[i].len != 0; i++) {
        const struct proto_token *t = &req->tokens[i];
        struct proto_token a = meta_arg(t);
        unsigned char f = (unsigned char)t->p[0];
        if (f >= 127 || meta_has(m, (char)f))
            return "CLIENT_ERROR duplicate flag";
        meta_see(m, f);
        m->nflags++;
        switch (f) {
        case 'b': {
            size_t n = meta_base64_decode(m->key, m->nkey, m->keybuf, sizeof(m->keybuf));
            if (n == 0) {
                err = "CLIENT_ERROR error decoding key";
                has_error = true;
            }
            m->key = m->keybuf;
            m->nkey = n;
            m->binary = true;
            break;
        }
        case 'N':
            if (!proto_parse_i32(&a, &m->ttl_n)) {
                err = E_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'T':
            if (!proto_parse_i32(&a, &m->ttl_t)) {
                err = E_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'R':
            if (!proto_parse_i32(&a, &m->ttl_r)) {
                err = E_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'F':
            /* memcached flags the error without a line of its own. */
            if (!proto_parse_u32(&a, &m->client_flags))
                has_error = true;
            break;
        case 'C':
            if (!proto_parse_u64(&a, &m->cas)) {
                err = E_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'M':
            if (t->len != 2) {
                err = "CLIENT_ERROR incorrect length for M token";
                has_error = true;
            } else {
                m->mode = t->p[1];
            }
            break;
        case 'J':
            if (!proto_parse_u64(&a, &m->initial)) {
                err = "CLIENT_ERROR invalid numeric initial value";
                has_error = true;
            }
            break;
        case 'D':
            if (!proto_parse_u64(&a, &m->delta)) {
                err = "CLIENT_ERROR invalid numeric delta value";
                has_error = true;
            }
            break;
        case 'O':
            if (t->len > META_OPAQUE_MAX && m->opaque_bad < 0)
                m->opaque_bad = (int)(i - m->first);
            break;
        case 'P': case 'L':     /* hints for proxies: ignored */
        case 'k': case 's': case 't': case 'c': case 'f':
        case 'v': case 'l': case 'h': case 'u': case 'q': case 'I':
            break;
        default:
            return "CLIENT_ERROR invalid flag";
        }
    }
    if (has_error)
        return err != NULL ? err : E_FORMAT;
    return NULL;
}

static bool
meta_refuse(struct meta_request *m, const char *line)
{
    m->error = line;
    return false;
}

static bool
meta_parse_me(const struct proto_request *req, struct meta_request *m)
{
    /* Only "me <key> b" decodes, the b exactly the third token. */
    if (req->ntokens >= 4 && req->tokens[2].len == 1 && req->tokens[2].p[0] == 'b') {
        size_t n = meta_base64_decode(m->key, m->nkey, m->keybuf, sizeof(m->keybuf));
        if (n == 0)
            return meta_refuse(m, E_FORMAT);
        m->key = m->keybuf;
        m->nkey = n;
        m->binary = true;
    }
    return true;
}

bool
meta_parse(enum meta_cmd cmd, const struct proto_request *req, struct meta_request *m)
{
    memset(m, 0, offsetof(struct meta_request, keybuf));
    m->cmd = cmd;
    m->key = req->tokens[1].p;
    m->nkey = req->tokens[1].len;
    m->delta = 1;
    m->opaque_bad = -1;
    m->first = 2;
    if (cmd == META_ME)
        return meta_parse_me(req, m);

    const char *err;
    switch (cmd) {
    case META_MG:
        if (req->ntokens > META_TOKENS_MAX)
            return meta_refuse(m, "CLIENT_ERROR options flags are too long");
        err = meta_flags(req, m);
        return err == NULL || meta_refuse(m, err);
    case META_MS:
        if (req->ntokens == 3)
            return meta_refuse(m, E_FORMAT);
        if (req->ntokens > META_TOKENS_MAX)
            return meta_refuse(m, "CLIENT_ERROR options flags too long");
        if (!proto_parse_i32(&req->tokens[2], &m->vlen) || m->vlen < 0 || m->vlen > INT_MAX - 2)
            return meta_refuse(m, E_FORMAT);
        /* From here on the data block is known to follow. */
        m->swallow = true;
        m->first = 3;
        err = meta_flags(req, m);
        if (err != NULL)
            return meta_refuse(m, err);
        /* memcached notes a long opaque first, then a bad mode overrides. */
        if (m->mode != 0 && strchr("EAPRS", m->mode) == NULL)
            return meta_refuse(m, "CLIENT_ERROR invalid mode for ms M token");
        if (m->opaque_bad >= 0)
            return meta_refuse(m, "CLIENT_ERROR opaque token too long");
        return true;
    case META_MD:
        if (req->ntokens > META_TOKENS_MAX)
            return meta_refuse(m, "CLIENT_ERROR options flags too long");
        if (meta_flags(req, m) != NULL)
            return meta_refuse(m, "CLIENT_ERROR invalid or duplicate flag");
        if (m->opaque_bad >= 0)
            return meta_refuse(m, "CLIENT_ERROR opaque token too long");
        return true;
    case META_MA:
        if (req->ntokens > META_TOKENS_MAX)
            return meta_refuse(m, "CLIENT_ERROR options flags too long");
        if (meta_flags(req, m) != NULL)
            return meta_refuse(m, "CLIENT_ERROR invalid or duplicate flag");
        if (m->mode != 0 && strchr("I+D-", m->mode) == NULL)
            return meta_refuse(m, "CLIENT_ERROR invalid mode for ma M token");
        return true;
    case META_ME:
        break;
    }
    return true;
}

/* --- reply pieces ---------------------------------------------------------------- */

char *
meta_put_u64(char *p, uint64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *s = e;
    do {
        *--s = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(p, s, (size_t)(e - s));
    return p + (e - s);
}

char *
meta_put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return meta_put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return meta_put_u64(p, (uint64_t)v);
}

char *
meta_put_key(char *p, const char *key, size_t nkey, bool binary)
{
    *p++ = ' ';
    *p++ = 'k';
    if (!binary) {
        memcpy(p, key, nkey);
        return p + nkey;
    }
    p += meta_base64_encode(key, nkey, p);
    *p++ = ' ';
    *p++ = 'b';
    return p;
}

char *
meta_put_token(char *p, const struct proto_token *t)
{
    *p++ = ' ';
    memcpy(p, t->p, t->len);
    return p + t->len;
}
