/* meta: the meta protocol's lexical layer (mg ms md ma me mn) as memcached
 * 1.6.18 reads it: one request line's flags into a struct, base64 keys, and
 * the pieces of a reply line. No socket, no connection, no cache: meta_parse
 * runs on any line proto_parse_line tokenized, so it can be fuzzed alone.
 *
 *   mg <key> <flag>*            flags are single characters, some followed
 *   ms <key> <datalen> <flag>*  by a token: "v" "T30" "Oabc" "MS" ...
 *   md <key> <flag>*            the reply's flags come back in request order
 *   ma <key> <flag>*
 *   me <key> [b]
 *   mn
 */
#ifndef FLEETCACHE_NET_META_H
#define FLEETCACHE_NET_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "net/proto.h"

/* memcached's MFLAG_MAX_OPT_LENGTH: a line of more tokens is refused. */
#define META_TOKENS_MAX 20
/* An opaque token ('O' included) may be this long. */
#define META_OPAQUE_MAX 32
/* Room for the longest reply line: code, size, every flag, a base64 key. */
#define META_LINE_MAX 1024

enum meta_cmd {
    META_MG,
    META_MS,
    META_MD,
    META_MA,
    META_ME,
};

struct meta_request {
    enum meta_cmd cmd;
    const char *key;            /* as stored: decoded when binary */
    size_t nkey;
    bool binary;                /* b: the key was sent in base64 */
    /* The flag tokens, in request order: req->tokens[first .. first+nflags). */
    unsigned first, nflags;
    uint32_t seen[4];           /* bit per flag character 0..127 */
    int32_t vlen;               /* ms: the data block's length */
    int32_t ttl_n, ttl_t, ttl_r;/* N T R, as clients send expiry times */
    uint32_t client_flags;      /* F */
    uint64_t cas;               /* C */
    uint64_t initial, delta;    /* J (0), D (1) */
    char mode;                  /* M's character, 0 without M */
    /* Index (into the flag tokens) of an O longer than META_OPAQUE_MAX, or
     * -1. memcached notices it only while writing the reply, after mg and
     * ma did their work: the caller does the same, then answers the error. */
    int opaque_bad;
    const char *error;          /* the reply line when the request is refused */
    bool swallow;               /* ms refused after its length was read: the
                                 * data block still comes and is discarded */
    char keybuf[CACHE_KEY_MAX];
};

/* Reads the request after the dispatcher's checks (token count, key length).
 * Returns true when the command may run; false with m->error set (and
 * m->swallow for ms) when it is refused. m->key points into req or into
 * m->keybuf: both must outlive the use of m. */
bool
meta_parse(enum meta_cmd cmd, const struct proto_request *req, struct meta_request *m);

/* Whether the request carries flag character f. */
static inline bool
meta_has(const struct meta_request *m, char f)
{
    unsigned char u = (unsigned char)f;
    return u < 128 && (m->seen[u >> 5] & (UINT32_C(1) << (u & 31))) != 0;
}

/* memcached's base64 decoder: characters outside the alphabet are skipped,
 * the rest must come in groups of four, '=' pads the last group. Returns
 * the decoded length (at most cap), or 0 when src does not decode. */
size_t
meta_base64_decode(const char *src, size_t len, char *out, size_t cap);

/* Standard base64 with padding; out holds at least 4 * ((len + 2) / 3)
 * bytes. Returns the encoded length. */
size_t
meta_base64_encode(const char *src, size_t len, char *out);

/* Reply pieces, each written at p (room for it is the caller's, within
 * META_LINE_MAX for a whole line) and returning the end. */
char *
meta_put_u64(char *p, uint64_t v);
char *
meta_put_i64(char *p, int64_t v);
/* " k<key>", or " k<base64 key> b" for a binary key. */
char *
meta_put_key(char *p, const char *key, size_t nkey, bool binary);
/* " " and the token as sent (an opaque: "O123"). */
char *
meta_put_token(char *p, const struct proto_token *t);

/* What an ms needs once its data block has arrived, copied out of the
 * request line (which the read buffer may no longer hold by then). */
struct meta_stash {
    bool active;                /* the pending store is an ms */
    bool quiet;                 /* q: a nominal HD is not sent */
    uint8_t nret;               /* return flags in order: 'O' 'k' 'c' */
    char ret[3];
    uint8_t opaque_len;
    char opaque[META_OPAQUE_MAX];
};

#endif
