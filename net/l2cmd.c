/* l2cmd: read-through and write-through (see l2cmd.h). Every L2 callback runs
 * on the worker that sent the request; a fetch joined by a command of another
 * worker hands that command its value through the other worker's queue
 * (l2q, woken by l2_wake), carried by the waiter itself.
 *
 * L1 is only ever changed after L2 answered, under a ticket taken before the
 * request left (cache.h, "near copies"): a fetched copy older than a change
 * this node has seen meanwhile is not kept, and of two racing writes of one
 * key, the second to commit drops the key rather than guess which is newer
 * in L2. A write that failed or timed out drops the L1 copy and publishes,
 * since it may have been applied. */
#include "net/l2cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "l2/l2.h"
#include "net/conn.h"
#include "net/inflight.h"
#include "net/meta.h"
#include "net/net_internal.h"
#include "src/log.h"

enum l2op_kind {
    OP_GET,         /* get gets gat gats: values in key order, then END */
    OP_STORE,       /* set add replace append prepend cas */
    OP_DELETE,
    OP_ARITH,
    OP_TOUCH,
    OP_MG,          /* an mg L1 missed: one slot, answered from the fetch */
    OP_MG_THROUGH,  /* an mg sent to L2 as it is (R, T, h, l, b ...) */
    OP_MS,
    OP_MD,
    OP_MA,
};

/* How a meta command's client wants its reply: its return flags in request
 * order and its own opaque (the L2 request carries ours instead). */
struct mplan {
    char ret[META_TOKENS_MAX];  /* f c t s k O h l, as asked */
    uint8_t nret;
    uint8_t nopaque;
    char opaque[META_OPAQUE_MAX];   /* the whole token, "O..." */
    bool value;                 /* v */
    bool quiet;                 /* q */
    bool binary;                /* b: k echoes the key in base64 */
    char mode;                  /* ms M<mode>, ma M<mode>, 0 */
    bool invalidate;            /* ms I */
};

struct l2op {
    struct worker *w;
    struct conn *c;             /* NULL once the client went away */
    enum l2op_kind kind;
    const struct cmd_row *row;
    bool noreply;
    bool started;               /* everything was sent: finish at pending 0 */
    unsigned pending;           /* answers still awaited */
    /* OP_GET */
    bool with_cas;
    struct item **slots;        /* values in key order; NULL: a miss */
    size_t nslots, cap;
    struct fetch *batch;        /* fetches this get owns, not sent yet */
    /* writes */
    struct item *it;            /* OP_STORE: the value, sent from its memory */
    enum cache_store_op store_op;
    uint64_t ticket;
    int32_t exptime;            /* OP_TOUCH */
    bool incr;                  /* OP_ARITH */
    uint8_t nkey;
    char key[CACHE_KEY_MAX];
    /* meta commands */
    struct mplan plan;
    uint8_t marks;              /* OP_MG: the lease marks of its fetch */
    bool lease;                 /* OP_MG: N given: a lease fetch */
    bool touches;               /* OP_MG_THROUGH: T given: L2's expiry changes */
    int32_t lease_ttl;
    struct item *buf;           /* OP_MG_THROUGH: the value L2 sent, unlinked */
};

static struct l2op *
l2op_new(struct conn *c, enum l2op_kind kind, const struct cmd_row *row)
{
    struct l2op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->w = c->w;
    op->c = c;
    op->kind = kind;
    op->row = row;
    c->w->l2ops++;
    return op;
}

/* The worker may stop once its last connection and its last op are gone. */
static void
l2op_free(struct l2op *op)
{
    struct worker *w = op->w;
    for (size_t i = 0; i < op->nslots; i++)
        cache_release(&op->slots[i]);
    free(op->slots);
    cache_release(&op->it);
    cache_release(&op->buf);
    free(op);
    w->l2ops--;
    if (w->stopping && w->nconns == 0 && w->l2ops == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

static unsigned
l2cmd_l1_ttl(const struct worker *w)
{
    return w->shared->opts.l1_ttl;
}

static void
l2cmd_publish(struct worker *w, const char *key, size_t nkey)
{
    net_invalidate_fn fn = w->shared->opts.on_invalidate;
    /* No value hash: a peer's copy of the same bytes still carries the old
     * L2 CAS, and `cas` through it would fail forever. */
    if (fn != NULL)
        fn(key, nkey, false, 0);
}

/* Queues line for op's client (silenced by noreply as cmd_out does). */
static void
l2op_out(struct l2op *op, const char *line)
{
    if (op->c == NULL)
        return;
    op->c->noreply = op->noreply;
    cmd_out(op->c, line);
}

/* The answer is queued: the client's connection goes on, and op goes. */
static void
l2op_done(struct l2op *op)
{
    struct conn *c = op->c;
    if (c != NULL && c->state == CONN_WAIT && c->l2op == op)
        conn_resume(c);
    l2op_free(op);
}

/* --- reads -------------------------------------------------------------- */

static void
l2op_get_finish(struct l2op *op)
{
    struct conn *c = op->c;
    if (c != NULL) {
        for (size_t i = 0; i < op->nslots; i++) {
            if (op->slots[i] != NULL) {
                reply_value(&c->out, op->slots[i], op->with_cas); /* the reference moves */
                op->slots[i] = NULL;
            }
        }
        reply_add(&c->out, "END\r\n", 5);
    }
    l2op_done(op);
}

static void l2op_mg_finish(struct l2op *op);

/* A value (or a miss: it NULL) for slot, on op's own worker. */
static void
l2op_slot_done(struct l2op *op, size_t slot, struct item *it, uint8_t marks)
{
    if (op->c == NULL || slot >= op->nslots)
        cache_release(&it);
    else
        op->slots[slot] = it;
    op->marks = marks;
    if (--op->pending == 0 && op->started) {
        if (op->kind == OP_MG)
            l2op_mg_finish(op);
        else
            l2op_get_finish(op);
    }
}

/* Hands a fetched value to one waiter: directly on the fetching worker,
 * else through the waiter's worker's queue. */
static void
l2cmd_deliver(struct worker *from, struct waiter *wt, struct item *it)
{
    if (wt->w == from) {
        l2op_slot_done(wt->op, wt->slot, it, wt->marks);
        free(wt);
        return;
    }
    wt->it = it;
    struct worker *to = wt->w;
    pthread_mutex_lock(&to->l2q_lock);
    wt->next = to->l2q;
    to->l2q = wt;
    pthread_mutex_unlock(&to->l2q_lock);
    ev_async_send(to->loop, &to->l2_wake);
}

static void
l2cmd_drain(struct worker *w)
{
    pthread_mutex_lock(&w->l2q_lock);
    struct waiter *list = w->l2q;
    w->l2q = NULL;
    pthread_mutex_unlock(&w->l2q_lock);
    while (list != NULL) {
        struct waiter *wt = list;
        list = wt->next;
        l2op_slot_done(wt->op, wt->slot, wt->it, wt->marks);
        free(wt);
    }
}

static void
l2cmd_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    l2cmd_drain(a->data);
}

/* The L1 expiry of a copy whose L2 copy has ttl seconds left (-1: never). */
static int64_t
l2cmd_copy_exptime(const struct worker *w, int64_t ttl)
{
    int64_t cap = l2cmd_l1_ttl(w);
    if (ttl < 0 || ttl > cap)
        return cap;
    return ttl > 0 ? ttl : 1;
}

static char *
l2cmd_fetch_sink(void *arg, const struct l2_reply *head)
{
    struct fetch *f = arg;
    int64_t exptime = l2cmd_copy_exptime(f->owner, head->line.has_ttl ? head->line.ttl : -1);
    uint32_t flags = head->line.has_flags ? head->line.flags : 0;
    if (f->it != NULL || cache_alloc(&f->it, f->key, f->nkey, flags, exptime,
                                     head->line.vlen) != CACHE_OK)
        return NULL; /* L1 cannot hold it: read and dropped, the client misses */
    return item_value(f->it);
}

static void
l2cmd_fetch_done(void *arg, const struct l2_reply *reply)
{
    struct fetch *f = arg;
    struct worker *w = f->owner;
    struct item *it = f->it;
    f->it = NULL;
    const struct mparse_reply *m = &reply->line;
    bool have = reply->status == L2_OK && m->code == MP_VA && reply->value != NULL && it != NULL;
    if (!have)
        cache_release(&it);
    if (have) {
        /* Whoever is answered from it is told L2's CAS, kept or not. */
        if (m->has_cas)
            item_set_upstream_cas(it, m->cas);
        /* A lease reply (W, Z, X) or a copy with no time left is answered
         * but never kept: L1 must not serve L2's placeholders. */
        bool keep = m->has_cas && !(m->has_ttl && m->ttl == 0) && !m->win && !m->won &&
                    !m->stale;
        if (keep) {
            /* Offered to L1 before the fetch leaves the table (inflight.h). */
            bool kept = cache_store_upstream(it, f->ticket, false) == CACHE_OK;
            l2_note(w->l2, kept ? L2_STAT_fills : L2_STAT_fills_skipped, 1);
        } else {
            l2_note(w->l2, L2_STAT_fills_refused, 1);
        }
    } else if (reply->status == L2_OK && m->code == MP_VA) {
        l2_note(w->l2, L2_STAT_fills_refused, 1);
    } else if (reply->status == L2_OK && m->code == MP_EN && !f->in_table) {
        /* A gat that L2 misses: whatever L1 holds of the key is stale. */
        cache_drop(f->key, f->nkey, false, 0);
    }
    if (reply->status == L2_OK && (m->code == MP_VA || m->code == MP_HD) && f->lease)
        l2_note(w->l2, L2_STAT_lease_passthrough, 1);
    /* One request answered them all: the win goes to the first mg among
     * them, "won already" to the other mgs, stale to everyone (inflight.h). */
    bool win = have && m->win, won = have && (m->win || m->won), stale = have && m->stale;
    struct waiter *list = inflight_remove(f);
    while (list != NULL) {
        struct waiter *wt = list;
        list = wt->next;
        struct item *mine = NULL;
        if (have && item_hold(it))
            mine = it;
        wt->marks = stale ? INFLIGHT_STALE : 0;
        if (wt->meta && win) {
            wt->marks |= INFLIGHT_WIN;
            win = false;
        } else if (wt->meta && won) {
            wt->marks |= INFLIGHT_WON;
        }
        l2cmd_deliver(w, wt, mine);
    }
    cache_release(&it);
    free(f);
}

static void
l2cmd_send_fetch(struct worker *w, struct fetch *f)
{
    char args[48];
    int n = !f->in_table ? snprintf(args, sizeof(args), "v f c t T%" PRId32, f->exptime)
            : f->lease   ? snprintf(args, sizeof(args), "v f c t N%" PRId32, f->lease_ttl)
                         : snprintf(args, sizeof(args), "v f c t");
    struct l2_call call = {
        .cmd = "mg", .key = f->key, .nkey = f->nkey, .args = args, .nargs = (size_t)n,
        .is_get = true, .sink = l2cmd_fetch_sink, .done = l2cmd_fetch_done, .arg = f,
    };
    if (l2_submit(w->l2, f->server, &call) != L2_SUBMITTED) {
        /* Ejected or refused: everyone waiting on it misses now. */
        struct l2_reply down = {.status = L2_DOWN, .server = f->server};
        l2cmd_fetch_done(f, &down);
    }
}

static bool
l2op_add_slot(struct l2op *op, struct item *it)
{
    if (op->nslots == op->cap) {
        size_t ncap = op->cap ? op->cap * 2 : 8;
        struct item **s = realloc(op->slots, ncap * sizeof(*s));
        if (s == NULL)
            return false;
        op->slots = s;
        op->cap = ncap;
    }
    op->slots[op->nslots++] = it;
    return true;
}

struct l2op *
l2cmd_get_begin(struct conn *c, bool with_cas)
{
    struct l2op *op = l2op_new(c, OP_GET, NULL);
    if (op != NULL)
        op->with_cas = with_cas;
    return op;
}

void
l2cmd_get_hit(struct l2op *op, struct item *it)
{
    if (!l2op_add_slot(op, it))
        cache_release(&it); /* out of memory: answered as a miss */
}

void
l2cmd_get_miss(struct l2op *op, const char *key, size_t nkey)
{
    size_t slot = op->nslots;
    if (!l2op_add_slot(op, NULL))
        return;
    struct fetch *f = NULL;
    struct item *hit = NULL;
    unsigned server = l2_server_for(key, nkey);
    bool lease = op->kind == OP_MG && op->lease;
    switch (inflight_join(key, nkey, lease, op->kind == OP_MG, op->w, op, slot, &f, &hit)) {
    case INFLIGHT_JOINED:
        op->pending++;
        l2_note_coalesced(op->w->l2, server, 1);
        break;
    case INFLIGHT_OWNER:
        op->pending++;
        f->server = server;
        f->lease_ttl = op->lease_ttl;
        f->batch_next = op->batch;
        op->batch = f;
        break;
    case INFLIGHT_HIT:
        op->slots[slot] = hit;
        break;
    case INFLIGHT_NOMEM:
        break;
    }
}

/* Sends the fetches op owns: one mg each, written together per server just
 * before the worker polls. */
static void
l2op_send_batch(struct l2op *op)
{
    struct fetch *f = op->batch;
    op->batch = NULL;
    while (f != NULL) {
        struct fetch *next = f->batch_next;
        l2cmd_send_fetch(op->w, f);
        f = next;
    }
}

void
l2cmd_get_abort(struct l2op *op)
{
    /* Others may have joined these fetches: they still go. */
    op->c = NULL;
    l2op_send_batch(op);
    op->started = true;
    if (op->pending == 0)
        l2op_free(op);
}

void
l2cmd_get_end(struct l2op *op)
{
    l2op_send_batch(op);
    if (op->pending == 0) {
        /* everything was settled on the spot */
        if (op->kind == OP_MG)
            l2op_mg_finish(op);
        else
            l2op_get_finish(op);
        return;
    }
    op->started = true;
    conn_suspend(op->c, op);
}

void
l2cmd_gat(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    int32_t exptime;
    if (!proto_parse_i32(&req->tokens[1], &exptime)) {
        cmd_out(c, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    bool with_cas = row->arg & GET_CAS;
    /* A gat changes the key's expiry, which L2 keeps: every key goes to L2
     * (one mg with T each, batched per server), hit in L1 or not. */
    uint64_t lookups = 0;
    for (size_t k = 2;; k = 0) {
        for (; req->tokens[k].len != 0; k++) {
            if (req->tokens[k].len > CACHE_KEY_MAX) {
                cmd_out(c, "CLIENT_ERROR bad command line format");
                NET_STAT_ADD(c->w, cmd_touch, lookups);
                return;
            }
            lookups++;
        }
        if (req->rest == NULL)
            break;
        proto_tokenize(req, req->rest, req->rest_len);
    }
    NET_STAT_ADD(c->w, cmd_touch, lookups);
    /* The line was consumed by the count: tokenize it again from the start. */
    proto_tokenize(req, req->line, req->line_len);
    struct l2op *op = l2cmd_get_begin(c, with_cas);
    if (op == NULL) {
        cmd_out(c, "SERVER_ERROR out of memory");
        return;
    }
    for (size_t k = 2;; k = 0) {
        for (; req->tokens[k].len != 0; k++) {
            const struct proto_token *key = &req->tokens[k];
            size_t slot = op->nslots;
            if (!l2op_add_slot(op, NULL))
                continue;
            struct fetch *f = inflight_private(key->p, key->len, c->w, op, slot);
            if (f == NULL)
                continue;
            f->server = l2_server_for(key->p, key->len);
            f->exptime = exptime;
            op->pending++;
            f->batch_next = op->batch;
            op->batch = f;
        }
        if (req->rest == NULL)
            break;
        proto_tokenize(req, req->rest, req->rest_len);
    }
    l2cmd_get_end(op);
}

/* --- writes ------------------------------------------------------------- */

/* The client's answer to an L2 reply no write expects: L2's own error line
 * when it has one, else what went wrong on the way. */
static void
l2op_out_failure(struct l2op *op, const struct l2_reply *reply)
{
    const struct mparse_reply *m = &reply->line;
    char line[320];
    switch (reply->status) {
    case L2_OK:
        if (m->code == MP_SERVER_ERROR || m->code == MP_CLIENT_ERROR) {
            snprintf(line, sizeof(line), "%s %.*s",
                     m->code == MP_SERVER_ERROR ? "SERVER_ERROR" : "CLIENT_ERROR",
                     (int)(m->nmsg > 250 ? 250 : m->nmsg), m->msg);
            l2op_out(op, line);
        } else {
            l2op_out(op, "SERVER_ERROR L2 answered out of turn");
        }
        return;
    case L2_TIMEOUT:
        l2op_out(op, "SERVER_ERROR L2 timeout");
        return;
    case L2_DOWN:
        l2op_out(op, "SERVER_ERROR L2 unavailable");
        return;
    case L2_BAD_REPLY:
        l2op_out(op, "SERVER_ERROR L2 answered garbage");
        return;
    case L2_SHUTDOWN:
        l2op_out(op, "SERVER_ERROR shutting down");
        return;
    }
}

/* Whether the write may have changed the key in L2 without our knowing
 * how: then L1 drops its copy and the bus is told, whatever the client
 * hears. A CLIENT_ERROR is L2 refusing outright. */
static bool
l2op_uncertain(const struct l2_reply *reply)
{
    if (reply->status != L2_OK)
        return reply->status != L2_DOWN; /* DOWN: never written */
    return reply->line.code == MP_SERVER_ERROR || reply->line.code == MP_ERROR;
}

static void
l2op_write_failed(struct l2op *op, const struct l2_reply *reply)
{
    l2_note(op->w->l2, L2_STAT_write_failures, 1);
    l2op_out_failure(op, reply);
    cache_drop(op->key, op->nkey, false, 0);
    l2_note(op->w->l2, L2_STAT_write_drops, 1);
    if (l2op_uncertain(reply) || reply->status == L2_DOWN)
        l2cmd_publish(op->w, op->key, op->nkey);
}

static void
l2cmd_store_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status != L2_OK || m->code == MP_SERVER_ERROR || m->code == MP_ERROR ||
        m->code == MP_CLIENT_ERROR || m->code == MP_VA || m->code == MP_EN || m->code == MP_MN) {
        l2op_write_failed(op, reply);
        l2op_done(op);
        return;
    }
    if (m->code == MP_HD) {
        l2op_out(op, "STORED");
        bool whole = op->store_op != CACHE_APPEND && op->store_op != CACHE_PREPEND;
        if (whole && m->has_cas) {
            item_set_upstream_cas(op->it, m->cas);
            bool kept = cache_store_upstream(op->it, op->ticket, true) == CACHE_OK;
            l2_note(op->w->l2, kept ? L2_STAT_write_commits : L2_STAT_write_drops, 1);
        } else {
            /* append/prepend: L2 holds a joined value this node never saw. */
            cache_drop(op->key, op->nkey, false, 0);
            l2_note(op->w->l2, L2_STAT_write_drops, 1);
        }
        l2cmd_publish(op->w, op->key, op->nkey);
    } else {
        /* NS, EX, NF: L2 refused. Its answer may contradict our copy
         * (add found a key, replace or cas found none or another): drop it. */
        l2op_out(op, m->code == MP_NS ? "NOT_STORED" : m->code == MP_EX ? "EXISTS" : "NOT_FOUND");
        cache_drop(op->key, op->nkey, false, 0);
    }
    l2op_done(op);
}

/* Sends op's request; on a refusal (ejected, full) answers at once. */
static void
l2op_submit(struct l2op *op, const char *cmd, const char *args, size_t nargs,
            const char *value, size_t nvalue, bool is_get, l2_done_fn done)
{
    struct l2_call call = {
        .cmd = cmd, .key = op->key, .nkey = op->nkey, .args = args, .nargs = nargs,
        .value = value, .nvalue = nvalue, .is_get = is_get, .done = done, .arg = op,
    };
    op->ticket = cache_ticket(op->key, op->nkey);
    unsigned server = l2_server_for(op->key, op->nkey);
    if (l2_submit(op->w->l2, server, &call) == L2_SUBMITTED) {
        op->started = true;
        conn_suspend(op->c, op);
        return;
    }
    struct l2_reply down = {.status = L2_DOWN, .server = server};
    done(op, &down);
}

void
l2cmd_store(struct conn *c, struct item *it, enum cache_store_op sop, uint64_t cas,
            int32_t exptime, const struct cmd_row *row, bool noreply)
{
    struct l2op *op = l2op_new(c, OP_STORE, row);
    if (op == NULL) {
        c->noreply = noreply;
        cmd_out(c, "SERVER_ERROR out of memory storing object");
        cache_release(&it);
        return;
    }
    op->it = it; /* released when op goes: the value is written from it */
    op->store_op = sop;
    op->noreply = noreply;
    op->nkey = item_nkey(it);
    memcpy(op->key, item_key(it), op->nkey);
    uint32_t vlen = item_nbytes(it) - 2;
    char args[96];
    int n;
    switch (sop) {
    case CACHE_APPEND:
    case CACHE_PREPEND:
        /* memcached keeps the stored item's flags and expiry. */
        n = snprintf(args, sizeof(args), "%" PRIu32 " c M%c", vlen, sop == CACHE_APPEND ? 'A' : 'P');
        break;
    case CACHE_CAS:
        n = snprintf(args, sizeof(args), "%" PRIu32 " F%" PRIu32 " T%" PRId32 " c C%" PRIu64, vlen,
                     item_flags(it), exptime, cas);
        break;
    default:
        n = snprintf(args, sizeof(args), "%" PRIu32 " F%" PRIu32 " T%" PRId32 " c%s", vlen,
                     item_flags(it), exptime,
                     sop == CACHE_ADD ? " ME" : sop == CACHE_REPLACE ? " MR" : "");
        break;
    }
    l2op_submit(op, "ms", args, (size_t)n, item_value(it), item_nbytes(it), false,
                l2cmd_store_done);
}

/* Fills op's key from a request token (the dispatcher checked its length). */
static struct l2op *
l2cmd_key_op(struct conn *c, enum l2op_kind kind, const struct cmd_row *row,
             const struct proto_token *key)
{
    struct l2op *op = l2op_new(c, kind, row);
    if (op == NULL) {
        cmd_out(c, "SERVER_ERROR out of memory");
        return NULL;
    }
    op->noreply = c->noreply;
    c->noreply = false;
    op->nkey = (uint8_t)key->len;
    memcpy(op->key, key->p, key->len);
    return op;
}

static void
l2cmd_delete_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status == L2_OK && (m->code == MP_HD || m->code == MP_NF)) {
        l2op_out(op, m->code == MP_HD ? "DELETED" : "NOT_FOUND");
        cache_drop(op->key, op->nkey, false, 0);
        /* As without L2: peers may hold the key even when L2 did not. */
        l2cmd_publish(op->w, op->key, op->nkey);
    } else {
        l2op_write_failed(op, reply);
    }
    l2op_done(op);
}

void
l2cmd_delete(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    struct l2op *op = l2cmd_key_op(c, OP_DELETE, row, &req->tokens[1]);
    if (op != NULL)
        l2op_submit(op, "md", "", 0, NULL, 0, false, l2cmd_delete_done);
}

static void
l2cmd_arith_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status == L2_OK && m->code == MP_VA && reply->value != NULL && m->vlen <= 20) {
        char num[24];
        memcpy(num, reply->value, m->vlen);
        num[m->vlen] = '\0';
        l2op_out(op, num);
        cache_drop(op->key, op->nkey, false, 0);
        l2cmd_publish(op->w, op->key, op->nkey);
    } else if (reply->status == L2_OK && m->code == MP_NF) {
        l2op_out(op, "NOT_FOUND");
        cache_drop(op->key, op->nkey, false, 0);
    } else if (reply->status == L2_OK && m->code == MP_CLIENT_ERROR) {
        /* "cannot increment or decrement non-numeric value": the client's. */
        l2op_out_failure(op, reply);
        cache_drop(op->key, op->nkey, false, 0);
    } else {
        l2op_write_failed(op, reply);
    }
    l2op_done(op);
}

void
l2cmd_arith(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    uint64_t delta;
    if (!proto_parse_u64(&req->tokens[2], &delta)) {
        cmd_out(c, "CLIENT_ERROR invalid numeric delta argument");
        return;
    }
    struct l2op *op = l2cmd_key_op(c, OP_ARITH, row, &req->tokens[1]);
    if (op == NULL)
        return;
    op->incr = row->arg != 0;
    char args[48];
    int n = snprintf(args, sizeof(args), "v D%" PRIu64 "%s", delta, op->incr ? "" : " MD");
    l2op_submit(op, "ma", args, (size_t)n, NULL, 0, false, l2cmd_arith_done);
}

static void
l2cmd_touch_done(void *arg, const struct l2_reply *reply)
{
    struct l2op *op = arg;
    const struct mparse_reply *m = &reply->line;
    if (reply->status == L2_OK && m->code == MP_HD) {
        l2op_out(op, "TOUCHED");
        /* L1 keeps its copy with the new expiry (capped at --l1-ttl); peers
         * drop theirs, whose expiry is now wrong. */
        int64_t exptime = op->exptime;
        if (exptime >= 0 && (exptime == 0 || exptime > (int64_t)l2cmd_l1_ttl(op->w)) &&
            exptime <= CACHE_REALTIME_MAXDELTA)
            exptime = l2cmd_l1_ttl(op->w);
        if (cache_touch(op->key, op->nkey, exptime) != CACHE_OK)
            cache_drop(op->key, op->nkey, false, 0);
        l2cmd_publish(op->w, op->key, op->nkey);
    } else if (reply->status == L2_OK && m->code == MP_EN) {
        l2op_out(op, "NOT_FOUND");
        cache_drop(op->key, op->nkey, false, 0);
    } else {
        l2op_write_failed(op, reply);
    }
    l2op_done(op);
}

void
l2cmd_touch(struct conn *c, struct proto_request *req, const struct cmd_row *row)
{
    int32_t exptime;
    if (!proto_parse_i32(&req->tokens[2], &exptime)) {
        cmd_out(c, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    NET_STAT_ADD(c->w, cmd_touch, 1);
    struct l2op *op = l2cmd_key_op(c, OP_TOUCH, row, &req->tokens[1]);
    if (op == NULL)
        return;
    op->exptime = exptime;
    char args[24];
    int n = snprintf(args, sizeof(args), "T%" PRId32, exptime);
    l2op_submit(op, "mg", args, (size_t)n, NULL, 0, false, l2cmd_touch_done);
}

/* --- meta commands ----------------------------------------------------------
 * mg reads as get does: an L1 hit is cmd_mg's own, unchanged; a miss is
 * fetched (coalesced, with the fetches of classic gets; one with N is a
 * lease fetch, so that L2 decides who wins); flags that only L2 can answer
 * for (R and T: L2's TTL; h, l: L2's item; b: a binary key) send the whole
 * mg to L2 as it is. ms, md and ma go to L2 with the client's flags. In
 * every case the reply is built here, from the client's own flags in its
 * order, with L2's values: the request L2 sees carries this node's opaque
 * and never q (every request must be answered, in order) nor k. */

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

static void
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
    op->ticket = cache_ticket(op->key, op->nkey);
    unsigned server = l2_server_for(key->p, key->len);
    if (l2_submit(op->w->l2, server, &call) == L2_SUBMITTED) {
        op->started = true;
        conn_suspend(op->c, op);
        return;
    }
    struct l2_reply down = {.status = L2_DOWN, .server = server};
    done(op, &down);
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
        l2cmd_publish(op->w, op->key, op->nkey);
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
        if (whole && m->has_cas && !op->plan.invalidate && !op->plan.binary) {
            item_set_upstream_cas(op->it, m->cas);
            bool kept = cache_store_upstream(op->it, op->ticket, true) == CACHE_OK;
            l2_note(op->w->l2, kept ? L2_STAT_write_commits : L2_STAT_write_drops, 1);
        } else {
            cache_drop(op->key, op->nkey, false, 0);
            l2_note(op->w->l2, L2_STAT_write_drops, 1);
        }
        l2cmd_publish(op->w, op->key, op->nkey);
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
            l2cmd_publish(op->w, op->key, op->nkey);
    } else {
        l2op_meta_failure(op, reply);
        l2_note(op->w->l2, L2_STAT_write_failures, 1);
        cache_drop(op->key, op->nkey, false, 0);
        l2cmd_publish(op->w, op->key, op->nkey);
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
        l2cmd_publish(op->w, op->key, op->nkey);
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
        l2cmd_publish(op->w, op->key, op->nkey);
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

/* --- life cycle ------------------------------------------------------------- */

void
l2cmd_detach(struct l2op *op)
{
    op->c = NULL;
    for (size_t i = 0; i < op->nslots; i++)
        cache_release(&op->slots[i]);
}

bool
l2cmd_worker_setup(struct worker *w)
{
    pthread_mutex_init(&w->l2q_lock, NULL);
    ev_async_init(&w->l2_wake, l2cmd_wake_cb);
    w->l2_wake.data = w;
    if (!w->shared->opts.l2)
        return true;
    w->l2 = l2_worker_create(w->loop);
    if (w->l2 == NULL)
        return false;
    ev_async_start(w->loop, &w->l2_wake);
    ev_unref(w->loop); /* deliveries alone do not keep a worker running */
    return true;
}

void
l2cmd_teardown(struct worker *workers, unsigned n)
{
    /* Fails every request still in flight: each done runs here, on this
     * thread, now that no worker runs. Deliveries go to the queues ... */
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        if (w->l2 != NULL) {
            l2_worker_destroy(w->l2);
            w->l2 = NULL;
        }
    }
    /* ... which are drained last, so every op has had all its answers. */
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        l2cmd_drain(w);
        if (ev_is_active(&w->l2_wake)) {
            ev_ref(w->loop);
            ev_async_stop(w->loop, &w->l2_wake);
        }
        pthread_mutex_destroy(&w->l2q_lock);
        if (w->l2ops != 0)
            log_error("worker %u: %u two-level operation(s) never finished", w->id, w->l2ops);
    }
}

unsigned
l2cmd_worker_ops(const struct worker *w)
{
    return w->l2ops;
}
