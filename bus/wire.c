/* wire: byte-exact encoding of the bus datagram (picture in wire.h). Every
 * read is preceded by a length check against the bytes actually present;
 * nothing here trusts a length field before comparing it with len. */
#include "bus/wire.h"

#include <string.h>

static const char *const result_names[] = {
#define WIRE_RESULT_NAME(name) #name,
    WIRE_RESULTS(WIRE_RESULT_NAME)
#undef WIRE_RESULT_NAME
};

const char *
wire_result_name(enum wire_result r)
{
    if ((unsigned)r >= WIRE_RESULT_COUNT)
        return "WIRE_UNKNOWN";
    return result_names[r];
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t
get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

uint8_t
wire_type_version(uint8_t type)
{
    return type == WIRE_STATUS ? WIRE_VERSION_STATUS : WIRE_VERSION_MIN;
}

void
wire_header_encode(const struct wire_header *h, uint8_t out[WIRE_HEADER_SIZE])
{
    put32(out, WIRE_MAGIC);
    out[4] = h->version ? h->version : wire_type_version(h->type);
    out[5] = h->type;
    out[6] = h->flags;
    out[7] = 0;
    put32(out + 8, h->node_id);
    put16(out + 12, h->plen);
    put16(out + 14, 0);
    put64(out + 16, h->epoch);
    put64(out + 24, h->seq);
}

enum wire_result
wire_header_decode(const uint8_t *buf, size_t len, struct wire_header *h)
{
    if (len < WIRE_HEADER_SIZE)
        return WIRE_SHORT;
    if (get32(buf) != WIRE_MAGIC)
        return WIRE_BAD_MAGIC;
    if (buf[4] < WIRE_VERSION_MIN)
        return WIRE_BAD_VERSION;
    bool newer = buf[4] > WIRE_VERSION;
    if (newer ? buf[5] == 0
              : buf[5] < WIRE_DATA || buf[5] > WIRE_STATUS || wire_type_version(buf[5]) > buf[4])
        return WIRE_BAD_TYPE;
    /* A newer version may use the reserved bytes; never the sealed bit's meaning. */
    if (!newer && ((buf[6] & ~WIRE_FLAG_SEALED) != 0 || buf[7] != 0 || get16(buf + 14) != 0))
        return WIRE_BAD_FLAGS;
    h->version = buf[4];
    h->type = buf[5];
    h->flags = buf[6] & WIRE_FLAG_SEALED;
    h->node_id = get32(buf + 8);
    h->plen = get16(buf + 12);
    h->epoch = get64(buf + 16);
    h->seq = get64(buf + 24);
    if (h->node_id == 0)
        return WIRE_BAD_NODE;
    if (h->seq == 0)
        return WIRE_BAD_SEQ;
    size_t want = WIRE_HEADER_SIZE + (size_t)h->plen +
                  ((h->flags & WIRE_FLAG_SEALED) ? WIRE_TAG_SIZE : 0);
    if (h->plen > WIRE_PAYLOAD_MAX || len != want)
        return WIRE_BAD_LENGTH;
    return newer ? WIRE_NEWER : WIRE_OK;
}

void
wire_nonce(const struct wire_header *h, uint8_t out[WIRE_NONCE_SIZE])
{
    put32(out, h->node_id);
    out[4] = h->type;
    out[5] = out[6] = out[7] = 0;
    put64(out + 8, h->epoch);
    put64(out + 16, h->seq);
}

bool
wire_put_invalidate(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t nkey,
                    bool has_hash, uint64_t hash)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX || *len > cap || cap - *len < WIRE_INVALIDATE_FIXED + nkey)
        return false;
    uint8_t *p = buf + *len;
    p[0] = WIRE_OP_INVALIDATE;
    p[1] = has_hash ? WIRE_REC_HAS_HASH : 0;
    p[2] = (uint8_t)nkey;
    put64(p + 3, has_hash ? hash : 0);
    memcpy(p + WIRE_INVALIDATE_FIXED, key, nkey);
    *len += WIRE_INVALIDATE_FIXED + nkey;
    return true;
}

bool
wire_put_flush(uint8_t *buf, size_t cap, size_t *len, int64_t delay)
{
    if (*len > cap || cap - *len < WIRE_FLUSH_SIZE)
        return false;
    buf[*len] = WIRE_OP_FLUSH;
    put64(buf + *len + 1, (uint64_t)delay);
    *len += WIRE_FLUSH_SIZE;
    return true;
}

bool
wire_put_stale(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t nkey,
               bool has_exptime, int64_t exptime)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX || *len > cap || cap - *len < WIRE_STALE_FIXED + nkey)
        return false;
    uint8_t *p = buf + *len;
    p[0] = WIRE_OP_STALE;
    p[1] = has_exptime ? WIRE_REC_HAS_EXPTIME : 0;
    p[2] = (uint8_t)nkey;
    put64(p + 3, has_exptime ? (uint64_t)exptime : 0);
    memcpy(p + WIRE_STALE_FIXED, key, nkey);
    *len += WIRE_STALE_FIXED + nkey;
    return true;
}

enum wire_result
wire_next_record(const uint8_t *p, size_t len, size_t *off, struct wire_record *r)
{
    size_t o = *off;
    if (o >= len)
        return WIRE_BAD_RECORD;
    size_t left = len - o;
    memset(r, 0, sizeof(*r));
    r->op = p[o];
    switch (r->op) {
    case WIRE_OP_INVALIDATE:
        if (left < WIRE_INVALIDATE_FIXED)
            return WIRE_BAD_RECORD;
        if ((p[o + 1] & ~WIRE_REC_HAS_HASH) != 0)
            return WIRE_BAD_RECORD;
        r->has_hash = (p[o + 1] & WIRE_REC_HAS_HASH) != 0;
        r->nkey = p[o + 2];
        r->hash = get64(p + o + 3);
        if (r->nkey == 0 || r->nkey > WIRE_KEY_MAX || left - WIRE_INVALIDATE_FIXED < r->nkey)
            return WIRE_BAD_RECORD;
        r->key = (const char *)(p + o + WIRE_INVALIDATE_FIXED);
        *off = o + WIRE_INVALIDATE_FIXED + r->nkey;
        return WIRE_OK;
    case WIRE_OP_FLUSH:
        if (left < WIRE_FLUSH_SIZE)
            return WIRE_BAD_RECORD;
        r->delay = (int64_t)get64(p + o + 1);
        *off = o + WIRE_FLUSH_SIZE;
        return WIRE_OK;
    case WIRE_OP_STALE:
        if (left < WIRE_STALE_FIXED)
            return WIRE_BAD_RECORD;
        if ((p[o + 1] & ~WIRE_REC_HAS_EXPTIME) != 0)
            return WIRE_BAD_RECORD;
        r->has_exptime = (p[o + 1] & WIRE_REC_HAS_EXPTIME) != 0;
        r->nkey = p[o + 2];
        r->exptime = (int64_t)get64(p + o + 3);
        if (r->nkey == 0 || r->nkey > WIRE_KEY_MAX || left - WIRE_STALE_FIXED < r->nkey)
            return WIRE_BAD_RECORD;
        r->key = (const char *)(p + o + WIRE_STALE_FIXED);
        *off = o + WIRE_STALE_FIXED + r->nkey;
        return WIRE_OK;
    default:
        return WIRE_BAD_RECORD;
    }
}

enum wire_result
wire_check_data(const uint8_t *p, size_t len, unsigned *nrec)
{
    size_t off = 0;
    unsigned n = 0;
    struct wire_record r;
    if (len == 0)
        return WIRE_BAD_PAYLOAD;
    while (off < len) {
        enum wire_result rc = wire_next_record(p, len, &off, &r);
        if (rc != WIRE_OK)
            return rc;
        n++;
    }
    *nrec = n;
    return WIRE_OK;
}

uint8_t
wire_data_version(const uint8_t *p, size_t len)
{
    size_t off = 0;
    struct wire_record r;
    while (off < len && wire_next_record(p, len, &off, &r) == WIRE_OK)
        if (r.op == WIRE_OP_STALE)
            return 2;
    return WIRE_VERSION_MIN;
}

size_t
wire_put_heartbeat(uint8_t *buf, const struct wire_heartbeat *hb)
{
    put64(buf, hb->last_seq);
    buf[8] = hb->leaving ? WIRE_HB_LEAVING : 0;
    return WIRE_HEARTBEAT_SIZE;
}

enum wire_result
wire_get_heartbeat(const uint8_t *p, size_t len, struct wire_heartbeat *hb)
{
    if (len != WIRE_HEARTBEAT_SIZE || (p[8] & ~WIRE_HB_LEAVING) != 0)
        return WIRE_BAD_PAYLOAD;
    hb->last_seq = get64(p);
    hb->leaving = (p[8] & WIRE_HB_LEAVING) != 0;
    return WIRE_OK;
}

size_t
wire_put_nack(uint8_t *buf, const struct wire_nack *n)
{
    put32(buf, n->target);
    put64(buf + 4, n->epoch);
    buf[12] = n->n;
    size_t off = 13;
    for (unsigned i = 0; i < n->n && i < WIRE_NACK_RANGES_MAX; i++, off += 12) {
        put64(buf + off, n->r[i].first);
        put32(buf + off + 8, n->r[i].count);
    }
    return off;
}

enum wire_result
wire_get_nack(const uint8_t *p, size_t len, struct wire_nack *n)
{
    if (len < 13)
        return WIRE_BAD_PAYLOAD;
    n->target = get32(p);
    n->epoch = get64(p + 4);
    n->n = p[12];
    if (n->n == 0 || n->n > WIRE_NACK_RANGES_MAX || len != 13 + (size_t)n->n * 12)
        return WIRE_BAD_PAYLOAD;
    for (unsigned i = 0; i < n->n; i++) {
        n->r[i].first = get64(p + 13 + i * 12);
        n->r[i].count = get32(p + 13 + i * 12 + 8);
        if (n->r[i].first == 0 || n->r[i].count == 0 ||
            n->r[i].first > UINT64_MAX - n->r[i].count)
            return WIRE_BAD_PAYLOAD;
    }
    return WIRE_OK;
}

size_t
wire_put_gone(uint8_t *buf, const struct wire_gone *g)
{
    put32(buf, g->target);
    put64(buf + 4, g->epoch);
    put64(buf + 12, g->oldest);
    return WIRE_GONE_SIZE;
}

enum wire_result
wire_get_gone(const uint8_t *p, size_t len, struct wire_gone *g)
{
    if (len != WIRE_GONE_SIZE)
        return WIRE_BAD_PAYLOAD;
    g->target = get32(p);
    g->epoch = get64(p + 4);
    g->oldest = get64(p + 12);
    return WIRE_OK;
}

size_t
wire_put_status(uint8_t *buf, const struct wire_status *st)
{
    buf[0] = 0;
    put32(buf + 1, st->lease_us);
    put64(buf + 5, st->now_us);
    put64(buf + 13, st->last_seq);
    unsigned n = st->n > WIRE_STATUS_ENTRIES_MAX ? WIRE_STATUS_ENTRIES_MAX : st->n;
    buf[21] = (uint8_t)n;
    size_t off = WIRE_STATUS_FIXED;
    for (unsigned i = 0; i < n; i++, off += WIRE_STATUS_ENTRY) {
        put32(buf + off, st->e[i].node);
        put64(buf + off + 4, st->e[i].epoch);
        put64(buf + off + 12, st->e[i].acked);
        put64(buf + off + 20, st->e[i].acked_by);
        put64(buf + off + 28, st->e[i].echo);
    }
    return off;
}

enum wire_result
wire_get_status(const uint8_t *p, size_t len, struct wire_status *st)
{
    if (len < WIRE_STATUS_FIXED || p[0] != 0)
        return WIRE_BAD_PAYLOAD;
    st->lease_us = get32(p + 1);
    st->now_us = get64(p + 5);
    st->last_seq = get64(p + 13);
    st->n = p[21];
    if (st->n > WIRE_STATUS_ENTRIES_MAX ||
        len != WIRE_STATUS_FIXED + (size_t)st->n * WIRE_STATUS_ENTRY || st->now_us == 0)
        return WIRE_BAD_PAYLOAD;
    for (unsigned i = 0; i < st->n; i++) {
        const uint8_t *e = p + WIRE_STATUS_FIXED + i * WIRE_STATUS_ENTRY;
        st->e[i].node = get32(e);
        st->e[i].epoch = get64(e + 4);
        st->e[i].acked = get64(e + 12);
        st->e[i].acked_by = get64(e + 20);
        st->e[i].echo = get64(e + 28);
        if (st->e[i].node == 0)
            return WIRE_BAD_PAYLOAD;
    }
    return WIRE_OK;
}
