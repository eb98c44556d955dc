/* binary: the binary protocol's requests and responses, as memcached
 * 1.6.18's proto_bin.c answers them: the same shape checks (a malformed
 * request gets EINVAL "Invalid arguments" and the connection closes), the
 * same status codes and error bodies, quiet variants that stay silent on
 * success (and, for gets, on a miss) but still report errors, and SASL
 * answered as a memcached without SASL answers it. Every mutation calls the
 * cache and publishes on the bus by its text twin's command-table row.
 * Invariant: a request is consumed only once its header, extras and key are
 * all in the buffer; a value goes through the connection's NREAD state
 * straight into the new item, and a get's value is queued from item memory
 * with the item's reference. */
#include "net/binary.h"

#include <stdio.h>
#include <string.h>

#include "net/cmd_internal.h"
#include "net/conn.h"
#include "net/prefix.h"
#include "net/stats_text.h"
#include "net/watch.h"
#include "src/clock.h"
#include "src/log.h"

#define BIN_RES_MAGIC 0x81

/* Response statuses (memcached's protocol_binary.h) and the body an error
 * carries when the handler names none. */
#define BIN_STATUSES(X)                                                   \
    X(SUCCESS, 0x00, NULL)                                                \
    X(KEY_ENOENT, 0x01, "Not found")                                      \
    X(KEY_EEXISTS, 0x02, "Data exists for key.")                          \
    X(E2BIG, 0x03, "Too large.")                                          \
    X(EINVAL, 0x04, "Invalid arguments")                                  \
    X(NOT_STORED, 0x05, "Not stored.")                                    \
    X(DELTA_BADVAL, 0x06, "Non-numeric server-side value for incr or decr") \
    X(AUTH_ERROR, 0x20, "Auth failure.")                                  \
    X(UNKNOWN_COMMAND, 0x81, "Unknown command")                           \
    X(ENOMEM, 0x82, "Out of memory")

enum bin_status_code {
#define BIN_STATUS_ENUM(name, code, text) BIN_##name = code,
    BIN_STATUSES(BIN_STATUS_ENUM)
#undef BIN_STATUS_ENUM
};

static const char *
bin_status_text(uint16_t status)
{
    switch (status) {
#define BIN_STATUS_TEXT(name, code, text) case code: return text;
        BIN_STATUSES(BIN_STATUS_TEXT)
#undef BIN_STATUS_TEXT
    }
    return "UNHANDLED ERROR";
}

/* What a request's extras, key and body must look like (memcached's checks
 * in dispatch_bin_command); anything else is a protocol error. */
enum bin_shape {
    SHAPE_EMPTY,    /* no extras, key or body */
    SHAPE_FLUSH,    /* no key; extras 0 or 4 and nothing else */
    SHAPE_STORE,    /* extras 8 (flags, expiry), a key, a value */
    SHAPE_GET,      /* a key and nothing else */
    SHAPE_ARITH,    /* extras 20 (delta, initial, expiry), a key, nothing else */
    SHAPE_CONCAT,   /* a key, no extras, a value */
    SHAPE_STAT,     /* no extras; the key names a sub-command */
    SHAPE_SASL,     /* a key (the mechanism), no extras */
    SHAPE_TOUCH,    /* extras 4 (expiry) and a key */
    SHAPE_ANY,      /* SASL_LIST_MECHS's own check is EMPTY; unknown opcodes */
};

struct bin_req {
    uint8_t opcode;     /* as sent: responses echo it */
    uint8_t cmd;        /* the opcode it runs as (a quiet one's loud twin) */
    bool quiet;
    uint8_t extlen;
    uint16_t keylen;
    uint32_t bodylen;
    uint32_t opaque;
    uint64_t cas;
    const char *ext;
    const char *key;
};

typedef void (*bin_handler_fn)(struct conn *c, const struct bin_req *r);

static void bin_get(struct conn *c, const struct bin_req *r);
static void bin_store(struct conn *c, const struct bin_req *r);
static void bin_concat(struct conn *c, const struct bin_req *r);
static void bin_delete(struct conn *c, const struct bin_req *r);
static void bin_arith(struct conn *c, const struct bin_req *r);
static void bin_quit(struct conn *c, const struct bin_req *r);
static void bin_flush(struct conn *c, const struct bin_req *r);
static void bin_noop(struct conn *c, const struct bin_req *r);
static void bin_version(struct conn *c, const struct bin_req *r);
static void bin_stat(struct conn *c, const struct bin_req *r);
static void bin_sasl(struct conn *c, const struct bin_req *r);

/* opcode, name, the opcode it runs as, quiet, shape, handler. The text
 * twin whose row publishes a mutation is chosen in the handler. */
#define BIN_COMMANDS(X)                                              \
    X(0x00, GET, 0x00, false, SHAPE_GET, bin_get)                    \
    X(0x01, SET, 0x01, false, SHAPE_STORE, bin_store)                \
    X(0x02, ADD, 0x02, false, SHAPE_STORE, bin_store)                \
    X(0x03, REPLACE, 0x03, false, SHAPE_STORE, bin_store)            \
    X(0x04, DELETE, 0x04, false, SHAPE_GET, bin_delete)              \
    X(0x05, INCREMENT, 0x05, false, SHAPE_ARITH, bin_arith)          \
    X(0x06, DECREMENT, 0x06, false, SHAPE_ARITH, bin_arith)          \
    X(0x07, QUIT, 0x07, false, SHAPE_EMPTY, bin_quit)                \
    X(0x08, FLUSH, 0x08, false, SHAPE_FLUSH, bin_flush)              \
    X(0x09, GETQ, 0x00, true, SHAPE_GET, bin_get)                    \
    X(0x0a, NOOP, 0x0a, false, SHAPE_EMPTY, bin_noop)                \
    X(0x0b, VERSION, 0x0b, false, SHAPE_EMPTY, bin_version)          \
    X(0x0c, GETK, 0x0c, false, SHAPE_GET, bin_get)                   \
    X(0x0d, GETKQ, 0x0c, true, SHAPE_GET, bin_get)                   \
    X(0x0e, APPEND, 0x0e, false, SHAPE_CONCAT, bin_concat)           \
    X(0x0f, PREPEND, 0x0f, false, SHAPE_CONCAT, bin_concat)          \
    X(0x10, STAT, 0x10, false, SHAPE_STAT, bin_stat)                 \
    X(0x11, SETQ, 0x01, true, SHAPE_STORE, bin_store)                \
    X(0x12, ADDQ, 0x02, true, SHAPE_STORE, bin_store)                \
    X(0x13, REPLACEQ, 0x03, true, SHAPE_STORE, bin_store)            \
    X(0x14, DELETEQ, 0x04, true, SHAPE_GET, bin_delete)              \
    X(0x15, INCREMENTQ, 0x05, true, SHAPE_ARITH, bin_arith)          \
    X(0x16, DECREMENTQ, 0x06, true, SHAPE_ARITH, bin_arith)          \
    X(0x17, QUITQ, 0x07, true, SHAPE_EMPTY, bin_quit)                \
    X(0x18, FLUSHQ, 0x08, true, SHAPE_FLUSH, bin_flush)              \
    X(0x19, APPENDQ, 0x0e, true, SHAPE_CONCAT, bin_concat)           \
    X(0x1a, PREPENDQ, 0x0f, true, SHAPE_CONCAT, bin_concat)          \
    X(0x1c, TOUCH, 0x1c, false, SHAPE_TOUCH, bin_get)                \
    X(0x1d, GAT, 0x1d, false, SHAPE_TOUCH, bin_get)                  \
    X(0x1e, GATQ, 0x1d, true, SHAPE_TOUCH, bin_get)                  \
    X(0x20, SASL_LIST_MECHS, 0x20, false, SHAPE_EMPTY, bin_sasl)     \
    X(0x21, SASL_AUTH, 0x21, false, SHAPE_SASL, bin_sasl)            \
    X(0x22, SASL_STEP, 0x22, false, SHAPE_SASL, bin_sasl)            \
    X(0x23, GATK, 0x23, false, SHAPE_TOUCH, bin_get)                 \
    X(0x24, GATKQ, 0x23, true, SHAPE_TOUCH, bin_get)

enum bin_opcode {
#define BIN_OPCODE_ENUM(code, name, runs_as, quiet, shape, handler) BIN_CMD_##name = code,
    BIN_COMMANDS(BIN_OPCODE_ENUM)
#undef BIN_OPCODE_ENUM
};

struct bin_row {
    bin_handler_fn handler;     /* NULL: unknown opcode */
    uint8_t runs_as;
    bool quiet;
    enum bin_shape shape;
};

static const struct bin_row bin_rows[256] = {
#define BIN_ROW(code, name, runs_as, quiet, shape, handler) [code] = { handler, runs_as, quiet, shape },
    BIN_COMMANDS(BIN_ROW)
#undef BIN_ROW
};

/* --- bytes on the wire ------------------------------------------------------ */

static uint16_t
be16(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint16_t)(u[0] << 8 | u[1]);
}

static uint32_t
be32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static uint64_t
be64(const char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void
put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static void
put32(char *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void
put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* Queues a response header echoing r's opcode and opaque. */
static void
bin_header(struct conn *c, const struct bin_req *r, uint16_t status, uint64_t cas,
           uint8_t extlen, uint16_t keylen, uint32_t bodylen)
{
    char h[BIN_HEADER_LEN];
    h[0] = (char)BIN_RES_MAGIC;
    h[1] = (char)r->opcode;
    put16(h + 2, keylen);
    h[4] = (char)extlen;
    h[5] = 0; /* raw bytes */
    put16(h + 6, status);
    put32(h + 8, bodylen);
    put32(h + 12, r->opaque);
    put64(h + 16, cas);
    reply_add(&c->out, h, sizeof(h));
}

/* memcached's write_bin_error: errors are sent even for quiet requests. */
static void
bin_error(struct conn *c, const struct bin_req *r, uint16_t status, const char *text)
{
    if (text == NULL)
        text = bin_status_text(status);
    size_t len = strlen(text);
    bin_header(c, r, status, 0, 0, 0, (uint32_t)len);
    reply_add(&c->out, text, len);
}

/* memcached's write_bin_response for a success with no body. */
static void
bin_ok(struct conn *c, const struct bin_req *r, uint64_t cas)
{
    if (!r->quiet)
        bin_header(c, r, BIN_SUCCESS, cas, 0, 0, 0);
}

/* The rest of a refused request's body is read and dropped. */
static void
bin_swallow(struct conn *c, size_t n)
{
    if (n == 0)
        return;
    c->state = CONN_SWALLOW;
    c->swallow_left = n;
}

static void
bin_publish(struct conn *c, const char *text_twin, enum cache_result res, const char *key,
            size_t nkey, bool has_hash, uint64_t hash)
{
    const struct cmd_row *row = cmd_row_named(text_twin);
    if (row != NULL)
        cmd_publish(c, row, res, key, nkey, has_hash, hash);
}

/* --- retrieval and touch ------------------------------------------------------ */

static void
bin_get(struct conn *c, const struct bin_req *r)
{
    bool touch = r->cmd == BIN_CMD_TOUCH || r->cmd == BIN_CMD_GAT || r->cmd == BIN_CMD_GATK;
    bool with_key = r->cmd == BIN_CMD_GETK || r->cmd == BIN_CMD_GATK;
    bool with_value = r->cmd != BIN_CMD_TOUCH;
    struct item *it = NULL;
    /* --bus-sync without a read lease: a miss (cmd_internal.h). */
    bool leased = cmd_read_ok(c);
    if (touch) {
        NET_STAT_ADD(c->w, cmd_touch, 1);
        if (leased)
            it = cache_get_touch(r->key, r->keylen, (int64_t)be32(r->ext));
    } else {
        NET_STAT_ADD(c->w, cmd_get, 1);
        if (leased)
            it = cache_get(r->key, r->keylen);
    }
    if (prefix_enabled())
        prefix_record_get(r->key, r->keylen, it != NULL);
    if (watch_wants(WATCH_KIND(FETCHERS)))
        watch_fetch(r->key, r->keylen, it ? WATCH_FOUND : WATCH_NOT_FOUND,
                    it ? item_class_id(it) : 0, it ? item_nbytes(it) - 2 : 0, c->fd);
    if (it == NULL) {
        if (r->quiet)
            return;
        if (with_key) {
            /* memcached's write_bin_miss_response: the key, no text */
            bin_header(c, r, BIN_KEY_ENOENT, 0, 0, r->keylen, r->keylen);
            reply_add(&c->out, r->key, r->keylen);
        } else {
            bin_error(c, r, BIN_KEY_ENOENT, NULL);
        }
        return;
    }
    uint32_t vlen = item_nbytes(it) - 2;
    uint16_t keylen = with_key ? r->keylen : 0;
    uint32_t body = 4 + keylen + (with_value ? vlen : 0);
    bin_header(c, r, BIN_SUCCESS, item_cas(it), 4, keylen, body);
    char flags[4];
    put32(flags, item_flags(it));
    reply_add(&c->out, flags, sizeof(flags));
    if (with_key)
        reply_add(&c->out, r->key, r->keylen);
    if (with_value)
        reply_item_bytes(&c->out, it, item_value(it), vlen); /* the reference moves to out */
    else
        cache_release(&it);
}

/* --- storage ------------------------------------------------------------------ */

/* An item for the value that follows, or the refusal and a swallow. */
static bool
bin_alloc(struct conn *c, const struct bin_req *r, enum cache_store_op op, uint32_t flags,
          uint32_t exptime, uint32_t vlen, const char *twin)
{
    if (prefix_enabled())
        prefix_record_set(r->key, r->keylen);
    struct item *it = NULL;
    enum cache_result res = cache_alloc(&it, r->key, r->keylen, flags, (int64_t)exptime, vlen);
    if (res != CACHE_OK) {
        if (res == CACHE_TOO_LARGE)
            bin_error(c, r, BIN_E2BIG, NULL);
        else
            bin_error(c, r, BIN_ENOMEM, "Out of memory allocating item");
        if (watch_wants(WATCH_KIND(MUTATIONS)))
            watch_store(r->key, r->keylen, op, res, 0, 0, 0, c->fd);
        bin_swallow(c, vlen);
        /* memcached will not leave the old value visible after a failed set. */
        if (r->cmd == BIN_CMD_SET) {
            cache_drop(r->key, r->keylen, false, 0);
            bin_publish(c, "set", CACHE_OK, r->key, r->keylen, false, 0);
        }
        return false;
    }
    c->nread_it = it; /* released in bin_complete_nread or conn_destroy */
    c->nread_dst = item_value(it);
    c->nread_left = vlen;
    c->nread_op = op;
    c->nread_row = cmd_row_named(twin);
    c->nread_cas = r->cas;
    c->nread_noreply = r->quiet;
    c->bin_opcode = r->opcode;
    c->bin_opaque = r->opaque;
    c->state = CONN_NREAD;
    return true;
}

static void
bin_store(struct conn *c, const struct bin_req *r)
{
    static const enum cache_store_op ops[] = {
        [BIN_CMD_SET] = CACHE_SET, [BIN_CMD_ADD] = CACHE_ADD, [BIN_CMD_REPLACE] = CACHE_REPLACE,
    };
    static const char *const twins[] = {
        [BIN_CMD_SET] = "set", [BIN_CMD_ADD] = "add", [BIN_CMD_REPLACE] = "replace",
    };
    /* A CAS in the header makes any of the three a cas (memcached's NREAD_CAS). */
    bool cas = r->cas != 0;
    uint32_t vlen = r->bodylen - r->keylen - r->extlen;
    (void)bin_alloc(c, r, cas ? CACHE_CAS : ops[r->cmd], be32(r->ext), be32(r->ext + 4), vlen,
                    cas ? "cas" : twins[r->cmd]);
}

static void
bin_concat(struct conn *c, const struct bin_req *r)
{
    bool append = r->cmd == BIN_CMD_APPEND;
    uint32_t vlen = r->bodylen - r->keylen;
    (void)bin_alloc(c, r, append ? CACHE_APPEND : CACHE_PREPEND, 0, 0, vlen,
                    append ? "append" : "prepend");
}

void
bin_complete_nread(struct conn *c)
{
    struct item *it = c->nread_it;
    c->nread_it = NULL;
    c->state = CONN_PARSE;
    /* The binary value comes without the "\r\n" the item keeps after it. */
    memcpy(item_value(it) + item_nbytes(it) - 2, "\r\n", 2);
    struct bin_req r = { .opcode = c->bin_opcode, .opaque = c->bin_opaque, .quiet = c->nread_noreply };
    enum cache_store_op op = c->nread_op;
    uint64_t cas = 0;
    /* --bus-sync without a lease: what depends on the copy meets none. */
    if (op != CACHE_SET && !cmd_read_ok(c))
        cache_drop(item_key(it), item_nkey(it), false, 0);
    enum cache_result res = cache_store(it, op, c->nread_cas, &cas);
    if (watch_wants(WATCH_KIND(MUTATIONS)))
        cmd_watch_store(c, it, op, res);
    switch (res) {
    case CACHE_OK:
        bin_ok(c, &r, cas);
        if (c->w->shared->opts.on_invalidate != NULL) {
            /* append/prepend store a combined value: it only holds the part. */
            bool whole = op != CACHE_APPEND && op != CACHE_PREPEND;
            cmd_publish(c, c->nread_row, CACHE_OK, item_key(it), item_nkey(it), whole,
                        whole ? item_value_hash(it) : 0);
        }
        break;
    case CACHE_EXISTS:
        bin_error(c, &r, BIN_KEY_EEXISTS, NULL);
        break;
    case CACHE_MISS:
        bin_error(c, &r, BIN_KEY_ENOENT, NULL);
        break;
    default:
        /* memcached's complete_update_bin: add's refusal reads "exists",
         * replace's "not found", the others' "not stored". */
        bin_error(c, &r, op == CACHE_ADD ? BIN_KEY_EEXISTS
                         : op == CACHE_REPLACE ? BIN_KEY_ENOENT : BIN_NOT_STORED, NULL);
        break;
    }
    cache_release(&it);
}

/* --- other mutations ------------------------------------------------------------ */

static void
bin_delete(struct conn *c, const struct bin_req *r)
{
    if (prefix_enabled())
        prefix_record_delete(r->key, r->keylen);
    struct cache_mdelete d = { .has_cas = r->cas != 0, .cas = r->cas };
    enum cache_result res = cache_meta_delete(r->key, r->keylen, &d);
    if (res == CACHE_OK)
        bin_ok(c, r, 0);
    else
        bin_error(c, r, res == CACHE_EXISTS ? BIN_KEY_EEXISTS : BIN_KEY_ENOENT, NULL);
    bin_publish(c, "delete", res, r->key, r->keylen, false, 0);
}

/* incr/decr with memcached's binary extras: a CAS to match (0: none), and
 * on a miss, unless the expiry is 0xffffffff, the item is created holding
 * initial with that expiry (an existing item keeps its own). */
static void
bin_arith(struct conn *c, const struct bin_req *r)
{
    bool incr = r->cmd == BIN_CMD_INCREMENT;
    uint32_t exptime = be32(r->ext + 16);
    struct cache_marith a = {
        .incr = incr,
        .delta = be64(r->ext),
        .cas = r->cas,
        .vivify = exptime != 0xffffffffu,
        .initial = be64(r->ext + 8),
        .nsteps = 1,
        .steps = { { .op = CACHE_MSTEP_TTL_IF_NEW, .arg = (int64_t)exptime } },
    };
    if (!cmd_read_ok(c))
        cache_drop(r->key, r->keylen, false, 0); /* --bus-sync without a lease */
    enum cache_result res = cache_meta_arith(r->key, r->keylen, &a);
    switch (res) {
    case CACHE_OK: {
        if (!r->quiet) {
            char body[8];
            put64(body, a.value);
            bin_header(c, r, BIN_SUCCESS, a.cas_out, 0, 0, sizeof(body));
            reply_add(&c->out, body, sizeof(body));
        }
        bin_publish(c, incr ? "incr" : "decr", CACHE_OK, r->key, r->keylen, false, 0);
        break;
    }
    case CACHE_NOT_NUMBER:
        bin_error(c, r, BIN_DELTA_BADVAL, NULL);
        break;
    case CACHE_NO_MEMORY:
        bin_error(c, r, BIN_ENOMEM, "Out of memory incrementing value");
        break;
    case CACHE_NOT_STORED: /* the new item could not be had */
        bin_error(c, r, BIN_ENOMEM, "Out of memory allocating new item");
        break;
    case CACHE_EXISTS:
        bin_error(c, r, BIN_KEY_EEXISTS, NULL);
        break;
    default:
        bin_error(c, r, BIN_KEY_ENOENT, NULL);
        break;
    }
}

/* --- administration ----------------------------------------------------------------- */

static void
bin_quit(struct conn *c, const struct bin_req *r)
{
    bin_ok(c, r, 0);
    c->close_after_write = true;
}

static void
bin_noop(struct conn *c, const struct bin_req *r)
{
    bin_header(c, r, BIN_SUCCESS, 0, 0, 0, 0);
}

static void
bin_version(struct conn *c, const struct bin_req *r)
{
    const char *v = c->w->shared->opts.version;
    size_t len = strlen(v);
    bin_header(c, r, BIN_SUCCESS, 0, 0, 0, (uint32_t)len);
    reply_add(&c->out, v, len);
}

static void
bin_flush(struct conn *c, const struct bin_req *r)
{
    struct net_shared *sh = c->w->shared;
    if (!sh->opts.flush_enabled) {
        bin_error(c, r, BIN_AUTH_ERROR, NULL); /* memcached's answer; not counted */
        return;
    }
    uint32_t exptime = r->extlen == 4 ? be32(r->ext) : 0;
    int64_t delay = exptime; /* as text: 0 is now; a large one an absolute time */
    cache_flush(delay);
    const struct cmd_row *row = cmd_row_named("flush_all");
    if (sh->opts.on_flush != NULL && row != NULL && row->publish == PUB_FLUSH) {
        sh->opts.on_flush(delay);
        cmd_sync_wait(c);
    }
    NET_STAT_ADD(c->w, cmd_flush, 1);
    bin_ok(c, r, 0);
}

/* Memcached without SASL answers every SASL opcode "unknown command" and
 * drops the request's value. */
static void
bin_sasl(struct conn *c, const struct bin_req *r)
{
    bin_error(c, r, BIN_UNKNOWN_COMMAND, NULL);
    bin_swallow(c, r->bodylen - r->keylen - r->extlen);
}

/* One STAT packet: key name, value. */
static void
bin_stat_packet(struct conn *c, const struct bin_req *r, const char *name, size_t nlen,
                const char *value, size_t vlen)
{
    bin_header(c, r, BIN_SUCCESS, 0, 0, (uint16_t)nlen, (uint32_t)(nlen + vlen));
    reply_add(&c->out, name, nlen);
    reply_add(&c->out, value, vlen);
}

/* Re-sends the text renderers' "STAT name value\r\n" lines as packets, then
 * the empty packet that ends a stats reply. */
static void
bin_stat_lines(struct conn *c, const struct bin_req *r, const struct reply_buf *text)
{
    const char *p = text->text, *end = text->text + text->text_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end - p > 5 && memcmp(p, "STAT ", 5) == 0) {
            const char *name = p + 5;
            const char *sp = memchr(name, ' ', (size_t)(line_end - name));
            const char *value = sp != NULL ? sp + 1 : line_end;
            size_t nlen = (size_t)((sp != NULL ? sp : line_end) - name);
            bin_stat_packet(c, r, name, nlen, value, (size_t)(line_end - value));
        }
        p = eol + 1;
    }
    bin_header(c, r, BIN_SUCCESS, 0, 0, 0, 0);
}

static bool
bin_key_is(const struct bin_req *r, const char *word)
{
    size_t n = strlen(word);
    return r->keylen == n && memcmp(r->key, word, n) == 0;
}

static void
bin_stat(struct conn *c, const struct bin_req *r)
{
    struct net_shared *sh = c->w->shared;
    struct reply_buf text;
    reply_buf_init(&text);
    if (r->keylen == 0) {
        stats_text_general(sh, &text);
    } else if (r->keylen >= 5 && memcmp(r->key, "reset", 5) == 0) {
        stats_text_reset(sh);
        prefix_clear();
    } else if (r->keylen >= 8 && memcmp(r->key, "settings", 8) == 0) {
        stats_text_settings(sh, &text);
    } else if (r->keylen >= 6 && memcmp(r->key, "detail", 6) == 0) {
        const char *sub = r->key + 6;
        size_t left = r->keylen - 6u;
        if (left >= 5 && memcmp(sub, " dump", 5) == 0) {
            prefix_dump(&text);
            bin_stat_packet(c, r, "detailed", 8, text.text, text.text_len);
            reply_buf_deinit(&text);
            bin_header(c, r, BIN_SUCCESS, 0, 0, 0, 0);
            return;
        } else if (left >= 3 && memcmp(sub, " on", 3) == 0) {
            prefix_set_enabled(true);
        } else if (left >= 4 && memcmp(sub, " off", 4) == 0) {
            prefix_set_enabled(false);
        } else {
            reply_buf_deinit(&text);
            bin_error(c, r, BIN_KEY_ENOENT, NULL);
            return;
        }
    } else if (bin_key_is(r, "items")) {
        stats_text_items(&text);
    } else if (bin_key_is(r, "slabs")) {
        stats_text_slabs(&text);
    } else if (bin_key_is(r, "sizes")) {
        stats_text_sizes(sh, &text);
    } else if (!stats_text_sub(sh, r->key, r->keylen, &text)) {
        reply_buf_deinit(&text);
        bin_error(c, r, BIN_KEY_ENOENT, NULL);
        return;
    }
    bin_stat_lines(c, r, &text);
    reply_buf_deinit(&text);
}

/* --- the request loop ----------------------------------------------------------------- */

static bool
bin_shape_ok(enum bin_shape shape, const struct bin_req *r)
{
    switch (shape) {
    case SHAPE_EMPTY:
        return r->extlen == 0 && r->keylen == 0 && r->bodylen == 0;
    case SHAPE_FLUSH:
        return r->keylen == 0 && r->bodylen == r->extlen && (r->extlen == 0 || r->extlen == 4);
    case SHAPE_STORE:
        return r->extlen == 8 && r->keylen != 0 && r->bodylen >= r->keylen + 8u;
    case SHAPE_GET:
        return r->extlen == 0 && r->bodylen == r->keylen && r->keylen > 0;
    case SHAPE_ARITH:
        return r->keylen > 0 && r->extlen == 20 && r->bodylen == r->keylen + 20u;
    case SHAPE_CONCAT:
        return r->keylen > 0 && r->extlen == 0;
    case SHAPE_STAT:
        return r->extlen == 0;
    case SHAPE_SASL:
        return r->extlen == 0 && r->keylen != 0;
    case SHAPE_TOUCH:
        return r->extlen == 4 && r->keylen != 0;
    case SHAPE_ANY:
        return true;
    }
    return false;
}

/* memcached's handle_binary_protocol_error: EINVAL, then hang up. */
static void
bin_protocol_error(struct conn *c, const struct bin_req *r)
{
    bin_error(c, r, BIN_EINVAL, NULL);
    log_info("protocol error (opcode %02x), close connection %d", r->opcode, c->fd);
    c->close_after_write = true;
}

enum bin_status
bin_process(struct conn *c)
{
    const char *p = c->rbuf + c->rstart;
    size_t avail = c->rend - c->rstart;
    if (avail < BIN_HEADER_LEN)
        return BIN_NEED_MORE;
    if ((uint8_t)p[0] != BIN_REQ_MAGIC)
        return BIN_CLOSE; /* memcached: "Invalid magic", closed at once */
    struct bin_req r = {
        .opcode = (uint8_t)p[1],
        .keylen = be16(p + 2),
        .extlen = (uint8_t)p[4],
        .bodylen = be32(p + 8),
        .opaque = be32(p + 12),
        .cas = be64(p + 16),
    };
    const struct bin_row *row = &bin_rows[r.opcode];
    r.cmd = row->handler != NULL ? row->runs_as : r.opcode;
    r.quiet = row->quiet;
    /* Both refusals below close the connection, so they need not wait for
     * the key to arrive (memcached waits, then answers the same). */
    if (r.keylen > r.bodylen || (uint32_t)r.keylen + r.extlen > r.bodylen) {
        c->rstart += BIN_HEADER_LEN;
        r.quiet = false;
        bin_error(c, &r, BIN_UNKNOWN_COMMAND, NULL);
        c->close_after_write = true;
        return BIN_DONE;
    }
    if (r.keylen > CACHE_KEY_MAX) {
        c->rstart += BIN_HEADER_LEN;
        bin_protocol_error(c, &r);
        return BIN_DONE;
    }
    size_t need = BIN_HEADER_LEN + (size_t)r.extlen + r.keylen;
    if (avail < need)
        return BIN_NEED_MORE;
    r.ext = p + BIN_HEADER_LEN;
    r.key = r.ext + r.extlen;
    c->rstart += need;
    atomic_store_explicit(&c->last_cmd_time, clock_now(), memory_order_relaxed);
    if (log_verbosity() >= LOG_DEBUG)
        log_debug("<%d binary opcode 0x%02x key %.*s", c->fd, r.opcode, (int)r.keylen, r.key);
    if (row->handler == NULL) {
        bin_error(c, &r, BIN_UNKNOWN_COMMAND, NULL);
        bin_swallow(c, r.bodylen - r.keylen - r.extlen);
        return BIN_DONE;
    }
    if (!bin_shape_ok(row->shape, &r)) {
        bin_protocol_error(c, &r);
        return BIN_DONE;
    }
    row->handler(c, &r);
    return BIN_DONE;
}
