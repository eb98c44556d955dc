/* mparse: one reply line of memcached's meta protocol, as an L2 server sends
 * it ("VA 5 f0 c12 t-1", "HD c7", "EN", "NF", "NS", "EX", "MN", or an error
 * line), split into its code and the return flags the L2 client uses. Pure:
 * no I/O, no allocation; string fields are views into the caller's line.
 * Anything that is not a well-formed reply is MPARSE_BAD, so a server
 * speaking garbage is caught before a byte of it reaches a client. */
#ifndef FLEETCACHE_L2_MPARSE_H
#define FLEETCACHE_L2_MPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest reply line the client accepts (memcached's are far shorter). */
#define MPARSE_LINE_MAX 2048

enum mparse_code {
    MP_VA,              /* value follows: vlen bytes and "\r\n" */
    MP_HD,              /* success, no value */
    MP_EN,              /* miss (mg) */
    MP_NF,              /* not found (ms with C, md, ma) */
    MP_NS,              /* not stored (ms) */
    MP_EX,              /* exists: CAS mismatch */
    MP_MN,              /* end of a pipeline (mn) */
    MP_ERROR,           /* "ERROR" */
    MP_CLIENT_ERROR,    /* "CLIENT_ERROR <msg>" */
    MP_SERVER_ERROR,    /* "SERVER_ERROR <msg>" */
};

struct mparse_reply {
    enum mparse_code code;
    uint32_t vlen;              /* MP_VA: value bytes, without "\r\n" */
    bool has_flags, has_cas, has_ttl, has_size, has_hit, has_last;
    uint32_t flags;             /* f */
    uint64_t cas;               /* c */
    int64_t ttl;                /* t: seconds left, -1 for never */
    uint64_t size;              /* s */
    bool hit_before;            /* h */
    uint64_t last_access;       /* l */
    bool win;                   /* W: this client is to recache the key */
    bool won;                   /* Z: another client already was */
    bool stale;                 /* X: the value is stale */
    bool key_binary;            /* b: k is base64 */
    const char *key;            /* k, or NULL */
    size_t nkey;
    const char *opaque;         /* O, or NULL */
    size_t nopaque;
    const char *msg;            /* error lines: the text after the code */
    size_t nmsg;
};

enum mparse_status {
    MPARSE_OK = 0,
    MPARSE_BAD,             /* not a meta reply line: the stream is lost */
};

/* Parses line[0, len) (no "\r\n") into *out. */
enum mparse_status
mparse_line(const char *line, size_t len, struct mparse_reply *out);

/* "VA", "HD", ... for logs and stats. */
const char *
mparse_code_name(enum mparse_code code);

#endif
