/* proto: line framing and tokenizing for the text protocol. Mirrors
 * memcached 1.6.18's try_read_command_ascii/tokenize_command byte for byte
 * (what counts as a line, where "\r" is stripped, that a NUL ends the
 * command, how many tokens one pass yields), reading only inside [buf, len). */
#include "net/proto.h"

#include <string.h>

size_t
proto_tokenize(struct proto_request *req, const char *s, size_t len)
{
    size_t n = 0;
    size_t i = 0;
    size_t start = 0;
    bool stopped = false;

    for (i = 0; i < len; i++) {
        if (s[i] != ' ')
            continue;
        if (i != start) {
            req->tokens[n].p = s + start;
            req->tokens[n].len = i - start;
            n++;
            if (n == PROTO_MAX_TOKENS - 1) {
                i++;
                start = i;
                stopped = true;
                break;
            }
        }
        start = i + 1;
    }
    if (!stopped && start < len) {
        req->tokens[n].p = s + start;
        req->tokens[n].len = len - start;
        n++;
        start = len;
        i = len;
    }
    /* The terminal token: memcached points it at the first unprocessed
     * character, or NULL when the string was scanned to its end. */
    req->tokens[n].len = 0;
    if (i < len) {
        req->tokens[n].p = s + i;
        req->rest = s + i;
        req->rest_len = len - i;
    } else {
        req->tokens[n].p = NULL;
        req->rest = NULL;
        req->rest_len = 0;
    }
    n++;
    req->ntokens = n;
    return n;
}

static bool
proto_is_multiget(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && buf[i] == ' ')
        i++;
    if (i > PROTO_MAX_LEADING_SPACES)
        return false;
    if (len - i >= 4 && memcmp(buf + i, "get ", 4) == 0)
        return true;
    if (len - i >= 5 && memcmp(buf + i, "gets ", 5) == 0)
        return true;
    return false;
}

enum proto_status
proto_parse_line(const char *buf, size_t len, struct proto_request *req)
{
    const char *nl = len ? memchr(buf, '\n', len) : NULL;
    if (nl == NULL) {
        if (len > PROTO_JUNK_LINE && !proto_is_multiget(buf, len))
            return PROTO_JUNK;
        return PROTO_NEED_MORE;
    }
    size_t end = (size_t)(nl - buf);
    req->consumed = end + 1;
    /* memcached strips '\r' only when something precedes it. */
    if (end > 1 && buf[end - 1] == '\r')
        end--;
    /* memcached tokenizes with strlen: a NUL ends the command early. */
    const char *nul = memchr(buf, '\0', end);
    if (nul != NULL)
        end = (size_t)(nul - buf);
    req->line = buf;
    req->line_len = end;
    proto_tokenize(req, buf, end);
    return PROTO_OK;
}

bool
proto_token_is(const struct proto_token *t, const char *word)
{
    size_t n = strlen(word);
    return t->p != NULL && t->len == n && memcmp(t->p, word, n) == 0;
}

static bool
proto_is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* strtoull/strtoll on a token view: leading blanks, an optional sign, decimal
 * digits; the digits must run to the token's end or to a blank. neg reports
 * a '-' sign; mag is the magnitude. False on no digits, junk or overflow of
 * 64 bits (ERANGE). */
static bool
proto_scan(const struct proto_token *t, bool *neg, uint64_t *mag)
{
    const char *p = t->p;
    const char *end = t->p + t->len;
    if (p == NULL)
        return false;
    while (p < end && proto_is_blank(*p))
        p++;
    *neg = false;
    if (p < end && (*p == '+' || *p == '-')) {
        *neg = *p == '-';
        p++;
    }
    const char *digits = p;
    uint64_t v = 0;
    bool range = false;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            range = true;
        else
            v = v * 10 + d;
        p++;
    }
    if (p == digits || range)
        return false;
    if (p < end && !proto_is_blank(*p))
        return false;
    *mag = v;
    return true;
}

bool
proto_parse_u64(const struct proto_token *t, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!proto_scan(t, &neg, &mag))
        return false;
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    /* memcached refuses a '-' only when the result looks negative as signed. */
    if ((int64_t)v < 0 && neg)
        return false;
    *out = v;
    return true;
}

bool
proto_parse_u32(const struct proto_token *t, uint32_t *out)
{
    uint64_t v;
    if (!proto_parse_u64(t, &v))
        return false;
    *out = (uint32_t)v; /* memcached stores the unsigned long into 32 bits */
    return true;
}

bool
proto_parse_i32(const struct proto_token *t, int32_t *out)
{
    bool neg;
    uint64_t mag;
    if (!proto_scan(t, &neg, &mag))
        return false;
    /* strtol's range on a 64-bit long, then memcached's cast to int32. */
    if ((!neg && mag > (uint64_t)INT64_MAX) || (neg && mag > (uint64_t)INT64_MAX + 1))
        return false;
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    *out = (int32_t)(uint32_t)v;
    return true;
}
