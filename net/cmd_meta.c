/* cmd_meta: the meta commands (mg ms md ma me mn) as memcached 1.6.18 runs
 * them: net/meta.c reads the flags, the cache does the work under the key's
 * lock (cache_meta_*), and the reply line carries the requested flags in
 * request order. q silences only the nominal code of each command (mg: EN;
 * ms, md: HD; ma: HD or VA), never an error. mg's value goes out straight
 * from item memory, in the same writev as the rest of the batch, as get's. */
#include "net/cmd.h"

#include <stdio.h>
#include <string.h>

#include "net/cmd_internal.h"
#include "net/l2cmd.h"
#include "net/meta.h"
#include "net/watch.h"

#define META_ERR_FORMAT "CLIENT_ERROR bad command line format"

/* --- mg ------------------------------------------------------------------ */

/* The flags that make memcached lock the item and bump it only after the
 * reply was built (so h and l see the time before this read). */
static bool
mg_locked(const struct meta_request *m)
{
    return meta_has(m, 'h') || meta_has(m, 'l') || meta_has(m, 'T') || meta_has(m, 'N') ||
           meta_has(m, 'R');
}

/* The TTL steps, in request order, up to a too-long opaque: memcached stops
 * acting on flags there. */
static void
mg_steps(const struct proto_request *req, const struct meta_request *m, struct cache_mstep *steps,
         unsigned *nsteps)
{
    unsigned end = m->opaque_bad >= 0 ? (unsigned)m->opaque_bad : m->nflags;
    unsigned n = 0;
    for (unsigned i = 0; i < end; i++) {
        struct cache_mstep *s = &steps[n];
        switch (req->tokens[m->first + i].p[0]) {
        case 'T':
            *s = (struct cache_mstep){ .op = CACHE_MSTEP_TTL, .arg = m->ttl_t };
            break;
        case 'N':
            *s = (struct cache_mstep){ .op = CACHE_MSTEP_TTL_IF_NEW, .arg = m->ttl_n };
            break;
        case 'R':
            if (m->cmd != META_MG)
                continue;
            *s = (struct cache_mstep){ .op = CACHE_MSTEP_RECACHE, .arg = m->ttl_r };
            break;
        case 't':
            *s = (struct cache_mstep){ .op = CACHE_MSTEP_READ_TTL };
            break;
        default:
            continue;
        }
        n++;
    }
    *nsteps = n;
}

/* " O..." and " k..." for replies that carry no item (EN, NF, EX ...). */
static char *
meta_put_echo(char *p, const struct proto_request *req, const struct meta_request *m)
{
    for (unsigned i = 0; i < m->nflags; i++) {
        const struct proto_token *t = &req->tokens[m->first + i];
        if (t->p[0] == 'O')
            p = meta_put_token(p, t);
        else if (t->p[0] == 'k')
            p = meta_put_key(p, m->key, m->nkey, m->binary);
    }
    return p;
}

/* Parses a meta request; a malformed one is answered with its error line
 * (ms also swallows its data block, so it does this itself). */
static bool
parse_or_refuse(struct conn *c, enum meta_cmd kind, struct proto_request *req, struct meta_request *m)
{
    if (meta_parse(kind, req, m))
        return true;
    reply_line(&c->out, m->error);
    return false;
}

/* Queues "CODE<echoed flags>\r\n". */
static void
meta_reply_code(struct conn *c, const char *code, const struct proto_request *req,
                const struct meta_request *m)
{
    char *line = reply_reserve(&c->out, META_LINE_MAX);
    if (line == NULL)
        return;
    char *p = line;
    memcpy(p, code, 2);
    p = meta_put_echo(p + 2, req, m);
    *p++ = '\r';
    *p++ = '\n';
    reply_commit(&c->out, (size_t)(p - line));
}

void
cmd_mg(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct meta_request m;
    if (!parse_or_refuse(c, META_MG, req, &m))
        return;
    /* --bus-sync without a lease: this copy may be one a peer changed. */
    if (!cmd_read_ok(c))
        cache_drop(m.key, m.nkey, false, 0);
    /* Two-level mode: what only L2 can answer goes there (l2cmd.h). */
    bool l2 = c->w->l2 != NULL;
    if (l2 && m.opaque_bad < 0 && l2cmd_mg_through(c, req, &m))
        return;
    struct cache_mget g;
    g.vivify = meta_has(&m, 'N') && !l2; /* with a pool, leases live in L2 */
    g.discard = m.opaque_bad >= 0;
    g.no_bump = meta_has(&m, 'u') || (g.discard && mg_locked(&m));
    mg_steps(req, &m, g.steps, &g.nsteps);
    struct item *it = cache_meta_get(m.key, m.nkey, &g); /* released below or by the reply */
    if (watch_wants(WATCH_KIND(FETCHERS)))
        watch_fetch(m.key, m.nkey, it ? WATCH_FOUND : WATCH_NOT_FOUND, it ? item_class_id(it) : 0,
                    it ? item_nbytes(it) - 2 : 0, c->fd);
    if (g.overflow) {
        reply_line(&c->out, "SERVER_ERROR refcount overflow during fetch");
        return;
    }
    if (g.discard) {
        if (it == NULL)
            NET_STAT_ADD(c->w, cmd_get, 1);
        cache_release(&it);
        reply_line(&c->out, "CLIENT_ERROR opaque token too long");
        return;
    }
    if (it == NULL) {
        NET_STAT_ADD(c->w, cmd_get, 1);
        if (l2 && l2cmd_mg_miss(c, req, &m))
            return; /* read through, answered once L2 did */
        if (!meta_has(&m, 'q'))
            meta_reply_code(c, "EN", req, &m);
        return;
    }
    if (g.touched)
        NET_STAT_ADD(c->w, cmd_touch, 1);
    else
        NET_STAT_ADD(c->w, cmd_get, 1);

    char *line = reply_reserve(&c->out, META_LINE_MAX);
    if (line == NULL) {
        cache_release(&it);
        return;
    }
    char *p = line;
    bool value = meta_has(&m, 'v');
    if (value) {
        memcpy(p, "VA ", 3);
        p = meta_put_u64(p + 3, item_nbytes(it) - 2);
    } else {
        memcpy(p, "HD", 2);
        p += 2;
    }
    unsigned step = 0;
    for (unsigned i = 0; i < m.nflags; i++) {
        const struct proto_token *t = &req->tokens[m.first + i];
        switch (t->p[0]) {
        case 'T': case 'N': case 'R':
            step++;
            break;
        case 't':
            memcpy(p, " t", 2);
            p = meta_put_i64(p + 2, g.steps[step++].out);
            break;
        case 's':
            memcpy(p, " s", 2);
            p = meta_put_u64(p + 2, item_nbytes(it) - 2);
            break;
        case 'c':
            memcpy(p, " c", 2);
            p = meta_put_u64(p + 2, g.cas);
            break;
        case 'f':
            memcpy(p, " f", 2);
            p = meta_put_u64(p + 2, item_flags(it));
            break;
        case 'l':
            memcpy(p, " l", 2);
            p = meta_put_u64(p + 2, g.idle);
            break;
        case 'h':
            memcpy(p, g.fetched ? " h1" : " h0", 3);
            p += 3;
            break;
        case 'O':
            p = meta_put_token(p, t);
            break;
        case 'k':
            p = meta_put_key(p, item_key(it), item_nkey(it), item_key_binary(it));
            break;
        }
    }
    /* memcached's order: Z before X before W. */
    if (g.win_was_sent) {
        memcpy(p, " Z", 2);
        p += 2;
    }
    if (g.stale) {
        memcpy(p, " X", 2);
        p += 2;
    }
    if (g.won) {
        memcpy(p, " W", 2);
        p += 2;
    }
    *p++ = '\r';
    *p++ = '\n';
    reply_commit(&c->out, (size_t)(p - line));
    if (value)
        reply_item_data(&c->out, it); /* the reference moves to the reply */
    else
        cache_release(&it);
}

/* --- ms ------------------------------------------------------------------ */

static enum cache_store_op
ms_op(const struct meta_request *m)
{
    bool cas = meta_has(m, 'C');
    switch (m->mode) {
    case 'E':
        return CACHE_ADD;
    case 'A':
        return CACHE_APPEND;
    case 'P':
        return CACHE_PREPEND;
    case 'R':
        /* replace with a CAS works as cas, as in memcached */
        return cas ? (meta_has(m, 'I') ? CACHE_CAS_STALE : CACHE_CAS) : CACHE_REPLACE;
    default:
        return cas ? (meta_has(m, 'I') ? CACHE_CAS_STALE : CACHE_CAS) : CACHE_SET;
    }
}

static void
ms_stash(struct conn *c, const struct proto_request *req, const struct meta_request *m)
{
    struct meta_stash *s = &c->nread_meta;
    memset(s, 0, sizeof(*s));
    s->active = true;
    s->quiet = meta_has(m, 'q');
    for (unsigned i = 0; i < m->nflags && s->nret < sizeof(s->ret); i++) {
        const struct proto_token *t = &req->tokens[m->first + i];
        char f = t->p[0];
        if (f != 'O' && f != 'k' && f != 'c')
            continue;
        s->ret[s->nret++] = f;
        if (f == 'O') {
            s->opaque_len = (uint8_t)t->len; /* at most META_OPAQUE_MAX: parse checked */
            memcpy(s->opaque, t->p, t->len);
        }
    }
}

void
cmd_ms(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct meta_request m;
    if (!meta_parse(META_MS, req, &m)) {
        reply_line(&c->out, m.error);
        if (m.swallow) {
            c->state = CONN_SWALLOW;
            c->swallow_left = (size_t)m.vlen + 2;
        }
        return;
    }
    enum cache_store_op op = ms_op(&m);
    int64_t exptime = meta_has(&m, 'T') ? m.ttl_t : 0;
    struct item *it = NULL;
    enum cache_result r = cache_alloc(&it, m.key, m.nkey, m.client_flags, exptime, (uint32_t)m.vlen);
    if (r != CACHE_OK) {
        if (r == CACHE_TOO_LARGE) {
            NET_STAT_ADD(c->w, store_too_large, 1);
            reply_line(&c->out, reply_result_line(CACHE_TOO_LARGE));
        } else {
            NET_STAT_ADD(c->w, store_no_memory, 1);
            reply_line(&c->out, reply_result_line(CACHE_NO_MEMORY));
        }
        c->state = CONN_SWALLOW;
        c->swallow_left = (size_t)m.vlen + 2;
        /* memcached's ms drops the old value whatever the mode. */
        cache_drop(m.key, m.nkey, false, 0);
        cmd_publish(c, row, CACHE_OK, m.key, m.nkey, false, 0);
        return;
    }
    if (m.binary)
        item_set_key_binary(it);
    if (c->w->l2 != NULL && (c->nread_fwd = l2cmd_ms_prepare(req, &m)) == NULL) {
        cache_release(&it);
        reply_line(&c->out, "SERVER_ERROR out of memory storing object");
        c->state = CONN_SWALLOW;
        c->swallow_left = (size_t)m.vlen + 2;
        return;
    }
    ms_stash(c, req, &m);
    c->nread_it = it; /* released in cmd_complete_nread or conn_destroy */
    c->nread_dst = item_value(it);
    c->nread_left = (size_t)m.vlen + 2;
    c->nread_op = op;
    c->nread_row = row;
    /* append and prepend check a CAS too; add ignores it */
    c->nread_cas = (meta_has(&m, 'C') && op != CACHE_ADD) ? m.cas : 0;
    c->nread_noreply = false;
    c->state = CONN_NREAD;
}

void
cmd_ms_complete(struct conn *c, struct item *it, bool chunk_ok)
{
    struct meta_stash *s = &c->nread_meta;
    s->active = false;
    if (!chunk_ok) {
        l2cmd_fwd_free(&c->nread_fwd);
        cache_count_set(it);
        reply_line(&c->out, "CLIENT_ERROR bad data chunk");
        return;
    }
    if (c->nread_fwd != NULL) {
        /* Two-level mode: through L2 first, from item memory. */
        struct l2fwd *fwd = c->nread_fwd;
        c->nread_fwd = NULL;
        if (!item_hold(it)) { /* the op's; the caller releases its own */
            l2cmd_fwd_free(&fwd);
            reply_line(&c->out, "SERVER_ERROR out of memory storing object");
            return;
        }
        l2cmd_ms(c, it, fwd, c->nread_row);
        return;
    }
    enum cache_store_op op = c->nread_op;
    uint64_t cas = 0;
    /* --bus-sync without a lease: what depends on the copy meets none. */
    if (op != CACHE_SET && !cmd_read_ok(c))
        cache_drop(item_key(it), item_nkey(it), false, 0);
    enum cache_result r = cache_store(it, op, c->nread_cas, &cas);
    if (watch_wants(WATCH_KIND(MUTATIONS)))
        cmd_watch_store(c, it, op, r);
    const char *code;
    switch (r) {
    case CACHE_OK:
        code = "HD";
        break;
    case CACHE_EXISTS:
        code = "EX";
        break;
    case CACHE_MISS:
        code = "NF";
        break;
    case CACHE_NOT_STORED:
        code = "NS";
        break;
    default:
        code = NULL;
        break;
    }
    if (code == NULL) {
        reply_line(&c->out, "SERVER_ERROR Unhandled storage type.");
    } else if (!(r == CACHE_OK && s->quiet)) {
        char *line = reply_reserve(&c->out, META_LINE_MAX);
        if (line != NULL) {
            char *p = line;
            memcpy(p, code, 2);
            p += 2;
            for (unsigned i = 0; i < s->nret; i++) {
                switch (s->ret[i]) {
                case 'O':
                    *p++ = ' ';
                    memcpy(p, s->opaque, s->opaque_len);
                    p += s->opaque_len;
                    break;
                case 'k':
                    p = meta_put_key(p, item_key(it), item_nkey(it), item_key_binary(it));
                    break;
                case 'c':
                    memcpy(p, " c", 2);
                    p = meta_put_u64(p + 2, r == CACHE_OK ? cas : 0);
                    break;
                }
            }
            *p++ = '\r';
            *p++ = '\n';
            reply_commit(&c->out, (size_t)(p - line));
        }
    }
    if (r == CACHE_OK && c->w->shared->opts.on_invalidate != NULL) {
        bool whole = op != CACHE_APPEND && op != CACHE_PREPEND;
        cmd_publish(c, c->nread_row, CACHE_OK, item_key(it), item_nkey(it), whole,
                    whole ? item_value_hash(it) : 0);
    }
}

/* --- md ------------------------------------------------------------------ */

void
cmd_md(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct meta_request m;
    if (!parse_or_refuse(c, META_MD, req, &m))
        return;
    struct cache_mdelete d = {
        .has_cas = meta_has(&m, 'C'),
        .cas = m.cas,
        .stale = meta_has(&m, 'I'),
        .has_exptime = meta_has(&m, 'T'),
        .exptime = m.ttl_t,
    };
    enum cache_result r = cache_meta_delete(m.key, m.nkey, &d);
    const char *code = r == CACHE_OK ? "HD" : r == CACHE_MISS ? "NF" : "EX";
    if (!(r == CACHE_OK && meta_has(&m, 'q')))
        meta_reply_code(c, code, req, &m);
    net_stale_fn stale = c->w->shared->opts.on_stale;
    if (d.stale && stale != NULL && c->w->shared->opts.on_invalidate != NULL) {
        /* serve-stale on every node, not just here; published as a delete is */
        if (r == CACHE_OK || r == CACHE_MISS) {
            stale(m.key, m.nkey, d.has_exptime, d.exptime);
            cmd_sync_wait(c);
        }
    } else {
        cmd_publish(c, row, r, m.key, m.nkey, false, 0);
    }
}

/* --- ma ------------------------------------------------------------------ */

void
cmd_ma(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct meta_request m;
    if (!parse_or_refuse(c, META_MA, req, &m))
        return;
    if (!cmd_read_ok(c))
        cache_drop(m.key, m.nkey, false, 0); /* --bus-sync without a lease */
    struct cache_marith a;
    a.incr = m.mode != 'D' && m.mode != '-';
    a.delta = m.delta;
    a.cas = m.cas;
    a.vivify = meta_has(&m, 'N');
    a.initial = m.initial;
    mg_steps(req, &m, a.steps, &a.nsteps);
    enum cache_result r = cache_meta_arith(m.key, m.nkey, &a);
    if (r == CACHE_OK)
        cmd_publish(c, row, r, m.key, m.nkey, false, 0);
    switch (r) {
    case CACHE_NOT_NUMBER:
        reply_line(&c->out, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        return;
    case CACHE_NO_MEMORY:
        reply_line(&c->out, "SERVER_ERROR out of memory");
        return;
    case CACHE_NOT_STORED:
        reply_line(&c->out, "SERVER_ERROR Out of memory allocating new item");
        return;
    default:
        break;
    }
    if (m.opaque_bad >= 0) {
        reply_line(&c->out, "CLIENT_ERROR opaque token too long");
        return;
    }
    if (r != CACHE_OK) {
        meta_reply_code(c, r == CACHE_MISS ? "NF" : "EX", req, &m);
        return;
    }
    /* memcached's q hides a changed counter but not a created one. */
    if (meta_has(&m, 'q') && !a.created)
        return;
    char digits[24];
    size_t ndigits = (size_t)(meta_put_u64(digits, a.value) - digits);
    char *line = reply_reserve(&c->out, META_LINE_MAX);
    if (line == NULL)
        return;
    char *p = line;
    bool value = meta_has(&m, 'v');
    if (value) {
        memcpy(p, "VA ", 3);
        p = meta_put_u64(p + 3, ndigits);
    } else {
        memcpy(p, "HD", 2);
        p += 2;
    }
    unsigned step = 0;
    for (unsigned i = 0; i < m.nflags; i++) {
        const struct proto_token *t = &req->tokens[m.first + i];
        switch (t->p[0]) {
        case 'T': case 'N':
            step++;
            break;
        case 't':
            memcpy(p, " t", 2);
            p = meta_put_i64(p + 2, a.steps[step++].out);
            break;
        case 'c':
            memcpy(p, " c", 2);
            p = meta_put_u64(p + 2, a.cas_out);
            break;
        case 'O':
            p = meta_put_token(p, t);
            break;
        case 'k':
            p = meta_put_key(p, m.key, m.nkey, m.binary);
            break;
        }
    }
    *p++ = '\r';
    *p++ = '\n';
    if (value) {
        memcpy(p, digits, ndigits);
        p += ndigits;
        *p++ = '\r';
        *p++ = '\n';
    }
    reply_commit(&c->out, (size_t)(p - line));
}

/* --- me, mn ---------------------------------------------------------------- */

void
cmd_me(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct meta_request m;
    if (!parse_or_refuse(c, META_ME, req, &m))
        return;
    NET_STAT_ADD(c->w, cmd_meta, 1);
    struct cache_item_info info;
    struct item *it = cache_peek(m.key, m.nkey, &info); /* released below */
    if (it == NULL) {
        reply_add(&c->out, "EN\r\n", 4);
        return;
    }
    char *line = reply_reserve(&c->out, META_LINE_MAX);
    if (line != NULL) {
        char *p = line;
        memcpy(p, "ME ", 3);
        p += 3;
        if (item_key_binary(it)) {
            p += meta_base64_encode(item_key(it), item_nkey(it), p);
        } else {
            memcpy(p, item_key(it), item_nkey(it));
            p += item_nkey(it);
        }
        /* memcached prints exp as now - expiry: minus the TTL left. */
        int n = snprintf(p, META_LINE_MAX - (size_t)(p - line),
                         " exp=%lld la=%u cas=%llu fetch=%s cls=%u size=%zu\r\n",
                         (long long)(info.ttl < 0 ? -1 : -info.ttl), info.idle,
                         (unsigned long long)item_cas(it), info.fetched ? "yes" : "no",
                         item_class_id(it), item_total_size(it));
        reply_commit(&c->out, (size_t)(p - line) + (size_t)n);
    }
    cache_release(&it);
}

void
cmd_mn(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    reply_add(&c->out, "MN\r\n", 4);
}
