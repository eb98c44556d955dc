/* l2cmd_meta: the meta commands on a node with an L2 pool. mg reads as get
 * does: an L1 hit is cmd_mg's own, unchanged; a miss is fetched (coalesced
 * with the fetches of classic gets; one with N is a lease fetch, so that L2
 * decides who wins); flags only L2 can answer for (R and T: L2's TTL; h, l:
 * L2's item; b: a binary key) send the whole mg to L2 as it is. ms, md and
 * ma go to L2 with the client's flags. Every reply is built here, from the
 * client's own flags in its order, with L2's values: the request L2 sees
 * carries this node's opaque, and never q (every request must be answered,
 * in order) nor k. */
#include "net/l2cmd_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "net/conn.h"
#include "net/inflight.h"
#include "net/net_internal.h"

static void
l2cmd_plan(struct mplan *p, const struct proto_request *req, const struct meta_request *m)
{
    memset(p, 0, sizeof(*p));
    p->value = meta_has(m, 'v');
    p->quiet = meta_has(m, 'q');
    p->binary = m->binary;
    p->mode = m->mode;
    p->invalidate = meta_has(m, 'I');
    for (unsigned i = 0; i < m->nflags && p->nret < sizeof(p->ret); i++) {
        const struct proto_token *t = &req->tokens[m->first + i];
        char f = t->p[0];
        if (strchr("fctskOhl", f) == NULL)
            continue;
        p->ret[p->nret++] = f;
        if (f == 'O' && t->len <= META_OPAQUE_MAX) {
            p->nopaque = (uint8_t)t->len;
            memcpy(p->opaque, t->p, t->len);
        }
    }
}

/* The arguments L2 gets: ms's length, then the client's flags but O, q and
 * k, then extra. -1 when they do not fit a request. */
static ssize_t
l2cmd_fwd_args(char *out, size_t cap, const struct proto_request *req,
               const struct meta_request *m, bool with_len, const char *extra)
{
    size_t n = 0;
    if (with_len)
        n = (size_t)snprintf(out, cap, "%" PRId32, m->vlen);
    for (unsigned i = 0; i < m->nflags; i++) {
        const struct proto_token *t = &req->tokens[m->first + i];
        if (t->p[0] == 'O' || t->p[0] == 'q' || t->p[0] == 'k')
            continue;
        if (n + 1 + t->len >= cap)
            return -1;
        if (n > 0)
            out[n++] = ' ';
        memcpy(out + n, t->p, t->len);
        n += t->len;
    }
    size_t ne = strlen(extra);
    if (n + ne + 1 >= cap)
        return -1;
    memcpy(out + n, extra, ne + 1);
    return (ssize_t)(n + ne);
}

/* The values a reply line may show, wherever they came from. */
struct mvals {
    bool has_f, has_c, has_t, has_s, has_l, has_h;
    uint32_t f;
    uint64_t c;
    int64_t t;
    uint64_t s, l;
    bool h;
    uint8_t marks;
};

static void
l2cmd_vals_of_item(struct mvals *v, struct item *it, uint8_t marks)
{
    *v = (struct mvals){ .has_f = true, .has_c = true, .has_t = true, .has_s = true,
                         .f = item_flags(it), .c = item_cas(it), .t = item_ttl(it),
                         .s = item_nbytes(it) - 2, .marks = marks };
}

static void
l2cmd_vals_of_reply(struct mvals *v, const struct mparse_reply *m)
{
    *v = (struct mvals){ .has_f = m->has_flags, .has_c = m->has_cas, .has_t = m->has_ttl,
                         .has_s = m->has_size, .has_l = m->has_last, .has_h = m->has_hit,
                         .f = m->flags, .c = m->cas, .t = m->ttl, .s = m->size,
                         .l = m->last_access, .h = m->hit_before,
                         .marks = (m->win ? INFLIGHT_WIN : 0) | (m->won ? INFLIGHT_WON : 0) |
                                  (m->stale ? INFLIGHT_STALE : 0) };
    if (m->code == MP_VA && !v->has_s) {
        v->has_s = true;
        v->s = m->vlen;
    }
}

/* Queues code (" <vlen>" after it when vlen >= 0) and the client's return
 * flags in its order: all of them for a success (v given), else only O and
 * k (and ms's c0), as memcached echoes them. */
static void
l2op_meta_line(struct l2op *op, const char *code, int64_t vlen, const struct mvals *v)
{
    struct conn *c = op->c;
    if (c == NULL)
        return;
    char *line = reply_reserve(&c->out, META_LINE_MAX);
    if (line == NULL)
        return;
    char *p = line;
    memcpy(p, code, 2);
    p += 2;
    if (vlen >= 0) {
        *p++ = ' ';
        p = meta_put_u64(p, (uint64_t)vlen);
    }
    for (unsigned i = 0; i < op->plan.nret; i++) {
        switch (op->plan.ret[i]) {
        case 'O':
            *p++ = ' ';
            memcpy(p, op->plan.opaque, op->plan.nopaque);
            p += op->plan.nopaque;
            break;
        case 'k':
            p = meta_put_key(p, op->key, op->nkey, op->plan.binary);
            break;
        case 'c':
            if (v != NULL && v->has_c) {
                memcpy(p, " c", 2);
                p = meta_put_u64(p + 2, v->c);
            } else if (op->kind == OP_MS) {
                memcpy(p, " c0", 3);
                p += 3;
            }
            break;
        case 'f':
            if (v != NULL && v->has_f) {
                memcpy(p, " f", 2);
                p = meta_put_u64(p + 2, v->f);
            }
            break;
        case 't':
            if (v != NULL && v->has_t) {
                memcpy(p, " t", 2);
                p = meta_put_i64(p + 2, v->t);
            }
            break;
        case 's':
            if (v != NULL && v->has_s) {
                memcpy(p, " s", 2);
                p = meta_put_u64(p + 2, v->s);
            }
            break;
        case 'l':
            if (v != NULL && v->has_l) {
                memcpy(p, " l", 2);
                p = meta_put_u64(p + 2, v->l);
            }
            break;
        case 'h':
            if (v != NULL && v->has_h) {
                memcpy(p, v->h ? " h1" : " h0", 3);
                p += 3;
            }
            break;
        }
    }
    if (v != NULL) {
        /* memcached's order: Z before X before W. */
        if (v->marks & INFLIGHT_WON) {
            memcpy(p, " Z", 2);
            p += 2;
        }
        if (v->marks & INFLIGHT_STALE) {
            memcpy(p, " X", 2);
            p += 2;
        }
        if (v->marks & INFLIGHT_WIN) {
            memcpy(p, " W", 2);
            p += 2;
        }
    }
    *p++ = '\r';
    *p++ = '\n';
    reply_commit(&c->out, (size_t)(p - line));
}

/* An error line of L2's, or what went wrong on the way, for a meta client. */
static void
l2op_meta_failure(struct l2op *op, const struct l2_reply *reply)
{
    if (op->c != NULL)
        op->noreply = false; /* q never silences an error */
    l2op_out_failure(op, reply);
}

void
l2op_mg_finish(struct l2op *op)
{
    struct item *it = op->slots[0];
    op->slots[0] = NULL;
    if (op->c != NULL) {
        if (it == NULL) {
            if (!op->plan.quiet)
                l2op_meta_line(op, "EN", -1, NULL);
        } else {
            struct mvals v;
            l2cmd_vals_of_item(&v, it, op->marks);
            bool value = op->plan.value;
            l2op_meta_line(op, value ? "VA" : "HD", value ? (int64_t)item_nbytes(it) - 2 : -1, &v);
            if (value) {
                reply_item_data(&op->c->out, it); /* the reference moves */
                it = NULL;
            }
        }
    }
    cache_release(&it);
    l2op_done(op);
}

static struct l2op *
l2cmd_meta_op(struct conn *c, enum l2op_kind kind, const struct cmd_row *row,
              const struct proto_request *req, const struct meta_request *m)
{
    struct l2op *op = l2op_new(c, kind, row);
    if (op == NULL)
        return NULL;
    l2cmd_plan(&op->plan, req, m);
    op->nkey = (uint8_t)m->nkey;
    memcpy(op->key, m->key, m->nkey);
    return op;
}

bool
l2cmd_mg_miss(struct conn *c, const struct proto_request *req, const struct meta_request *m)
{
    struct l2op *op = l2cmd_meta_op(c, OP_MG, NULL, req, m);
    if (op == NULL)
        return false;
    op->lease = meta_has(m, 'N');
    op->lease_ttl = m->ttl_n;
    l2cmd_get_miss(op, m->key, m->nkey);
    l2cmd_get_end(op);
    return true;
}

/* Where a value L2 sends for a whole-mg request goes: an unlinked item,
 * written from item memory to the client like any other value. */
static char *
l2cmd_buf_sink(void *arg, const struct l2_reply *head)
{
    struct l2op *op = arg;
    uint32_t flags = head->line.has_flags ? head->line.flags : 0;
    if (op->buf != NULL || cache_alloc(&op->buf, op->key, op->nkey, flags, 0,
                                       head->line.vlen) != CACHE_OK)
        return NULL;
    return item_value(op->buf);
}

static void
l2cmd_mg_through_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status != L2_OK) {
        /* A read that could not be made is a miss. */
        if (!op->plan.quiet)
            l2op_meta_line(op, "EN", -1, NULL);
    } else if (m->code == MP_VA || m->code == MP_HD) {
        struct mvals v;
        l2cmd_vals_of_reply(&v, m);
        if (m->code == MP_VA && reply->value == NULL) {
            l2op_out(op, "SERVER_ERROR object too large for cache");
        } else {
            l2op_meta_line(op, m->code == MP_VA ? "VA" : "HD",
                           m->code == MP_VA ? (int64_t)m->vlen : -1, &v);
            if (m->code == MP_VA && op->c != NULL) {
                reply_item_data(&op->c->out, op->buf); /* the reference moves */
                op->buf = NULL;
            }
        }
        l2_note(op->w->l2, L2_STAT_lease_passthrough, 1);
    } else if (m->code == MP_EN) {
        if (!op->plan.quiet)
            l2op_meta_line(op, "EN", -1, NULL);
    } else {
        l2op_meta_failure(op, reply);
    }
    /* A touch changed L2's expiry: this node's copy no longer has it. */
    if (op->touches)
        cache_drop(op->key, op->nkey, false, 0);
    l2op_done(op);
}

/* Sends op's request with the raw key the client sent (base64 stays). */
static void
l2op_meta_submit(struct l2op *op, const char *cmd, const struct proto_token *key,
                 const char *args, size_t nargs, const char *value, size_t nvalue,
                 l2_sink_fn sink, l2_done_fn done)
{
    struct l2_call call = {
        .cmd = cmd, .key = key->p, .nkey = key->len, .args = args, .nargs = nargs,
        .value = value, .nvalue = nvalue, .is_get = cmd[1] == 'g', .sink = sink,
        .done = done, .arg = op,
    };
    l2op_send(op, &call);
}

bool
l2cmd_mg_through(struct conn *c, struct proto_request *req, const struct meta_request *m)
{
    if (!(m->binary || meta_has(m, 'R') || meta_has(m, 'T') || meta_has(m, 'h') ||
          meta_has(m, 'l')))
        return false;
    struct l2op *op = l2cmd_meta_op(c, OP_MG_THROUGH, NULL, req, m);
    char args[L2_ARGS_MAX];
    ssize_t n = op != NULL ? l2cmd_fwd_args(args, sizeof(args), req, m, false, "") : -1;
    if (n < 0) {
        if (op != NULL)
            l2op_free(op);
        reply_line(&c->out, "SERVER_ERROR out of memory");
        return true;
    }
    op->touches = meta_has(m, 'T');
    NET_STAT_ADD(c->w, cmd_get, 1);
    l2op_meta_submit(op, "mg", &req->tokens[1], args, (size_t)n, NULL, 0, l2cmd_buf_sink,
                     l2cmd_mg_through_done);
    return true;
}

struct l2fwd {
    struct mplan plan;
    uint16_t nkey, nargs;
    char key[4 * ((CACHE_KEY_MAX + 2) / 3) + 1];    /* as sent: base64 fits */
    char args[L2_ARGS_MAX];
};

struct l2fwd *
l2cmd_ms_prepare(const struct proto_request *req, const struct meta_request *m)
{
    struct l2fwd *fwd = malloc(sizeof(*fwd));
    if (fwd == NULL)
        return NULL;
    l2cmd_plan(&fwd->plan, req, m);
    const struct proto_token *key = &req->tokens[1];
    if (key->len >= sizeof(fwd->key)) {
        free(fwd);
        return NULL;
    }
    memcpy(fwd->key, key->p, key->len);
    fwd->nkey = (uint16_t)key->len;
    /* c: the new CAS, so L1 can keep the value as L2 holds it. */
    ssize_t n = l2cmd_fwd_args(fwd->args, sizeof(fwd->args), req, m, true,
                               meta_has(m, 'c') ? "" : " c");
    if (n < 0) {
        free(fwd);
        return NULL;
    }
    fwd->nargs = (uint16_t)n;
    return fwd;
}

void
l2cmd_fwd_free(struct l2fwd **fwd)
{
    free(*fwd);
    *fwd = NULL;
}

static void
l2cmd_ms_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status != L2_OK || !(m->code == MP_HD || m->code == MP_NS || m->code == MP_EX ||
                                    m->code == MP_NF)) {
        l2op_meta_failure(op, reply);
        l2_note(op->w->l2, L2_STAT_write_failures, 1);
        cache_drop(op->key, op->nkey, false, 0);
        l2op_publish(op);
        l2op_done(op);
        return;
    }
    struct mvals v;
    l2cmd_vals_of_reply(&v, m);
    v.marks = 0;
    if (m->code == MP_HD) {
        if (!op->plan.quiet)
            l2op_meta_line(op, "HD", -1, &v);
        char mode = op->plan.mode;
        bool whole = mode != 'A' && mode != 'P' && mode != 'a' && mode != 'p';
        l2op_stored(op, whole && m->has_cas && !op->plan.invalidate && !op->plan.binary, m->cas);
    } else {
        v.has_c = false;
        l2op_meta_line(op, mparse_code_name(m->code), -1, &v);
        cache_drop(op->key, op->nkey, false, 0);
    }
    l2op_done(op);
}

void
l2cmd_ms(struct conn *c, struct item *it, struct l2fwd *fwd, const struct cmd_row *row)
{
    struct l2op *op = l2op_new(c, OP_MS, row);
    if (op == NULL) {
        reply_line(&c->out, "SERVER_ERROR out of memory storing object");
        cache_release(&it);
        free(fwd);
        return;
    }
    op->it = it; /* the value goes to L2 from it; released when op goes */
    op->plan = fwd->plan;
    op->nkey = item_nkey(it);
    memcpy(op->key, item_key(it), op->nkey);
    struct proto_token key = {fwd->key, fwd->nkey};
    /* The line is copied by l2_submit: fwd can go at once. */
    l2op_meta_submit(op, "ms", &key, fwd->args, fwd->nargs, item_value(it), item_nbytes(it),
                     NULL, l2cmd_ms_done);
    free(fwd);
}

static void
l2cmd_md_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status == L2_OK && (m->code == MP_HD || m->code == MP_NF || m->code == MP_EX)) {
        if (!(m->code == MP_HD && op->plan.quiet))
            l2op_meta_line(op, mparse_code_name(m->code), -1, NULL);
        cache_drop(op->key, op->nkey, false, 0);
        /* As md publishes without a pool; a refused CAS changed nothing. */
        if (m->code != MP_EX)
            l2op_publish(op);
    } else {
        l2op_meta_failure(op, reply);
        l2_note(op->w->l2, L2_STAT_write_failures, 1);
        cache_drop(op->key, op->nkey, false, 0);
        l2op_publish(op);
    }
    l2op_done(op);
}

static void
l2cmd_ma_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status == L2_OK && (m->code == MP_HD || m->code == MP_VA)) {
        struct mvals v;
        l2cmd_vals_of_reply(&v, m);
        v.has_f = v.has_s = v.has_l = v.has_h = false;
        v.marks = 0;
        /* q: memcached hides a changed counter but shows a created one;
         * which it was, L2 does not say: hidden either way. */
        if (!op->plan.quiet) {
            if (m->code == MP_VA && reply->value != NULL && m->vlen <= 20) {
                l2op_meta_line(op, "VA", (int64_t)m->vlen, &v);
                if (op->c != NULL) {
                    reply_add(&op->c->out, reply->value, m->vlen);
                    reply_add(&op->c->out, "\r\n", 2);
                }
            } else {
                l2op_meta_line(op, "HD", -1, &v);
            }
        }
        cache_drop(op->key, op->nkey, false, 0);
        l2op_publish(op);
    } else if (reply->status == L2_OK && (m->code == MP_NF || m->code == MP_EX ||
                                          m->code == MP_NS)) {
        l2op_meta_line(op, mparse_code_name(m->code), -1, NULL);
        cache_drop(op->key, op->nkey, false, 0);
    } else if (reply->status == L2_OK && m->code == MP_CLIENT_ERROR) {
        l2op_meta_failure(op, reply);
        cache_drop(op->key, op->nkey, false, 0);
    } else {
        l2op_meta_failure(op, reply);
        l2_note(op->w->l2, L2_STAT_write_failures, 1);
        cache_drop(op->key, op->nkey, false, 0);
        l2op_publish(op);
    }
    l2op_done(op);
}

/* md and ma: the whole command to L2 with the client's flags. */
static void
l2cmd_meta_write(struct conn *c, struct proto_request *req, const struct cmd_row *row,
                 enum meta_cmd which, enum l2op_kind kind, const char *cmd, l2_done_fn done)
{
    struct meta_request m;
    if (!meta_parse(which, req, &m)) {
        reply_line(&c->out, m.error);
        return;
    }
    if (m.opaque_bad >= 0) {
        reply_line(&c->out, "CLIENT_ERROR opaque token too long");
        return;
    }
    struct l2op *op = l2cmd_meta_op(c, kind, row, req, &m);
    char args[L2_ARGS_MAX];
    ssize_t n = op != NULL ? l2cmd_fwd_args(args, sizeof(args), req, &m, false, "") : -1;
    if (n < 0) {
        if (op != NULL)
            l2op_free(op);
        reply_line(&c->out, "SERVER_ERROR out of memory");
        return;
    }
    l2op_meta_submit(op, cmd, &req->tokens[1], args, (size_t)n, NULL, 0, NULL, done);
}

void
l2cmd_md(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    l2cmd_meta_write(c, req, row, META_MD, OP_MD, "md", l2cmd_md_done);
}

void
l2cmd_ma(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    l2cmd_meta_write(c, req, row, META_MA, OP_MA, "ma", l2cmd_ma_done);
}
