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
#include "net/l2cmd_internal.h"
#include "net/net_internal.h"
#include "src/log.h"

struct l2op *
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
void
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

void
l2cmd_publish(struct worker *w, const char *key, size_t nkey)
{
    net_invalidate_fn fn = w->shared->opts.on_invalidate;
    /* No value hash: a peer's copy of the same bytes still carries the old
     * L2 CAS, and `cas` through it would fail forever. */
    if (fn != NULL)
        fn(key, nkey, false, 0);
}

void
l2op_publish(struct l2op *op)
{
    l2cmd_publish(op->w, op->key, op->nkey);
    if (op->c != NULL)
        cmd_sync_wait(op->c);
}

/* Queues line for op's client (silenced by noreply as cmd_out does). */
void
l2op_out(struct l2op *op, const char *line)
{
    if (op->c == NULL)
        return;
    op->c->noreply = op->noreply;
    cmd_out(op->c, line);
}

/* The answer is queued: the client's connection goes on, and op goes. */
void
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
void
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

/* A write L2 did not confirm: the client hears why, L1 drops its copy and
 * the bus is told, since it may have been applied; only a CLIENT_ERROR is
 * L2 refusing outright, with nothing to tell. */
static void
l2op_write_failed(struct l2op *op, const struct l2_reply *reply)
{
    l2_note(op->w->l2, L2_STAT_write_failures, 1);
    l2op_out_failure(op, reply);
    cache_drop(op->key, op->nkey, false, 0);
    l2_note(op->w->l2, L2_STAT_write_drops, 1);
    if (!(reply->status == L2_OK && reply->line.code == MP_CLIENT_ERROR))
        l2op_publish(op);
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
        /* append/prepend: L2 holds a joined value this node never saw. */
        bool whole = op->store_op != CACHE_APPEND && op->store_op != CACHE_PREPEND;
        l2op_stored(op, whole && m->has_cas, m->cas);
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
    l2op_send(op, &call);
}

void
l2op_send(struct l2op *op, const struct l2_call *call)
{
    op->ticket = cache_ticket(op->key, op->nkey);
    unsigned server = l2_server_for(call->key, call->nkey);
    if (l2_submit(op->w->l2, server, call) == L2_SUBMITTED) {
        op->started = true;
        conn_suspend(op->c, op);
        return;
    }
    struct l2_reply down = {.status = L2_DOWN, .server = server};
    call->done(op, &down);
}

void
l2op_stored(struct l2op *op, bool keep, uint64_t cas)
{
    if (keep) {
        item_set_upstream_cas(op->it, cas);
        bool kept = cache_store_upstream(op->it, op->ticket, true) == CACHE_OK;
        l2_note(op->w->l2, kept ? L2_STAT_write_commits : L2_STAT_write_drops, 1);
    } else {
        cache_drop(op->key, op->nkey, false, 0);
        l2_note(op->w->l2, L2_STAT_write_drops, 1);
    }
    l2op_publish(op);
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
        l2op_publish(op);
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
        l2op_publish(op);
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
        l2op_publish(op);
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
