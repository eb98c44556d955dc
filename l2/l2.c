/* l2: the pool (parsing --l2, resolving, the ketama ring, the shared
 * ejection state), the per-worker client (requests, their free list, the
 * flush before each poll) and submission. Connection I/O is upconn.c. */
#include "l2/l2_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/log.h"

struct l2_pool l2_pool;

/* Free requests a worker keeps for reuse; beyond this they are freed. */
#define L2_FREE_KEEP 256

uint64_t
l2_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double
l2_now_s(void)
{
    return (double)l2_now_ns() * 1e-9;
}

/* --- the pool ------------------------------------------------------------- */

static bool
l2_count_item(const char *item, size_t len, const struct l2_spec *s, void *arg)
{
    (void)item;
    (void)len;
    (void)s;
    (*(unsigned *)arg)++;
    return true;
}

static bool
l2_add_item(const char *item, size_t len, const struct l2_spec *s, void *arg)
{
    unsigned *i = arg;
    struct l2_server *srv = &l2_pool.servers[*i];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(s->host, s->port, &hints, &ai) != 0 || ai == NULL)
        return false;
    memcpy(&srv->addr, ai->ai_addr, ai->ai_addrlen);
    srv->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    srv->name = strndup(item, s->name_len);
    /* twemproxy hashes "host:port", or "host" alone on memcached's port. */
    srv->ketama_name = strcmp(s->port, "11211") == 0 ? strdup(s->host)
                                                     : strndup(item, s->name_len);
    if (item[0] == '[' && strcmp(s->port, "11211") == 0) {
        free(srv->ketama_name);
        srv->ketama_name = strndup(item, strchr(item, ']') - item + 1);
    }
    srv->weight = s->weight;
    pthread_mutex_init(&srv->lock, NULL);
    (*i)++;
    (void)len;
    return srv->name != NULL && srv->ketama_name != NULL;
}

bool
l2_setup(const struct l2_options *opts, char *err, size_t errlen)
{
    memset(&l2_pool, 0, sizeof(l2_pool));
    l2_pool.opts = *opts;
    l2_pool.opts.servers = NULL; /* the caller's string: not kept */
    if (l2_pool.opts.timeout_ms == 0)
        l2_pool.opts.timeout_ms = 1000;
    if (l2_pool.opts.max_inflight == 0)
        l2_pool.opts.max_inflight = 1024;
    l2_pool.timeout_s = l2_pool.opts.timeout_ms * 1e-3;
    l2_pool.policy.failure_limit = l2_pool.opts.failure_limit;
    l2_pool.policy.retry_s = l2_pool.opts.retry_ms * 1e-3;
    pthread_mutex_init(&l2_pool.workers_lock, NULL);

    unsigned n = 0;
    if (!l2_spec_each(opts->servers, err, errlen, l2_count_item, &n))
        return false;
    l2_pool.servers = calloc(n, sizeof(*l2_pool.servers));
    l2_pool.retired = calloc(n, sizeof(*l2_pool.retired));
    if (l2_pool.servers == NULL || l2_pool.retired == NULL) {
        snprintf(err, errlen, "out of memory setting up the L2 pool");
        l2_teardown();
        return false;
    }
    unsigned added = 0;
    bool ok = l2_spec_each(opts->servers, err, errlen, l2_add_item, &added);
    l2_pool.nservers = added;
    if (!ok) {
        l2_teardown();
        return false;
    }
    struct ketama_server *ks = calloc(n, sizeof(*ks));
    if (ks == NULL) {
        snprintf(err, errlen, "out of memory setting up the L2 pool");
        l2_teardown();
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        ks[i] = (struct ketama_server){l2_pool.servers[i].ketama_name,
                                       strlen(l2_pool.servers[i].ketama_name),
                                       l2_pool.servers[i].weight};
    ok = ketama_build(&l2_pool.ring, ks, n);
    free(ks);
    if (!ok) {
        snprintf(err, errlen, "cannot build the L2 ring (weights too uneven?)");
        l2_teardown();
        return false;
    }
    log_info("L2 pool: %u server(s), timeout %u ms, ejection after %u failure(s) for %u ms",
             n, l2_pool.opts.timeout_ms, l2_pool.opts.failure_limit, l2_pool.opts.retry_ms);
    return true;
}

void
l2_teardown(void)
{
    for (unsigned i = 0; i < l2_pool.nservers; i++) {
        free(l2_pool.servers[i].name);
        free(l2_pool.servers[i].ketama_name);
        pthread_mutex_destroy(&l2_pool.servers[i].lock);
    }
    free(l2_pool.servers);
    free(l2_pool.retired);
    ketama_free(&l2_pool.ring);
    if (l2_pool.nservers > 0 || l2_pool.servers != NULL)
        pthread_mutex_destroy(&l2_pool.workers_lock);
    memset(&l2_pool, 0, sizeof(l2_pool));
}

unsigned
l2_nservers(void)
{
    return l2_pool.nservers;
}

unsigned
l2_server_for(const char *key, size_t nkey)
{
    return ketama_server_for(&l2_pool.ring, l2_pool.nservers, key, nkey);
}

const char *
l2_server_name(unsigned i)
{
    return i < l2_pool.nservers ? l2_pool.servers[i].name : "";
}

/* --- ejection ----------------------------------------------------------------- */

static bool
l2_server_allows(unsigned server)
{
    struct l2_server *s = &l2_pool.servers[server];
    double until = atomic_load_explicit(&s->down_until, memory_order_relaxed);
    return until == 0 || l2_now_s() >= until;
}

void
l2_server_failed(unsigned server)
{
    struct l2_server *s = &l2_pool.servers[server];
    pthread_mutex_lock(&s->lock);
    if (eject_failure(&s->eject, &l2_pool.policy, l2_now_s()))
        log_error("L2 server %s ejected for %u ms after %s", s->name, l2_pool.opts.retry_ms,
                  s->eject.ejections > 1 ? "failing on probation" : "repeated failures");
    atomic_store(&s->down_until, s->eject.until);
    atomic_store(&s->troubled, eject_troubled(&s->eject));
    pthread_mutex_unlock(&s->lock);
}

void
l2_server_ok(unsigned server)
{
    struct l2_server *s = &l2_pool.servers[server];
    if (!atomic_load_explicit(&s->troubled, memory_order_relaxed))
        return;
    pthread_mutex_lock(&s->lock);
    if (s->eject.ejections > 0 && s->eject.probation)
        log_info("L2 server %s answers again", s->name);
    eject_success(&s->eject);
    atomic_store(&s->down_until, 0.0);
    atomic_store(&s->troubled, false);
    pthread_mutex_unlock(&s->lock);
}

/* --- workers --------------------------------------------------------------------- */

static void
l2_flush_all(struct l2_worker *w)
{
    for (unsigned i = 0; i < l2_pool.nservers; i++)
        if (w->conns[i].dirty)
            upconn_flush(&w->conns[i]);
}

static void
l2_flush_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    struct l2_worker *w = p->data;
    l2_flush_all(w);
    w->flushed = true;
}

static void
l2_flush_late_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    struct l2_worker *w = p->data;
    w->late_fed = false;
    l2_flush_all(w);
}

static void
l2_after_poll_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)revents;
    struct l2_worker *w = c->data;
    w->flushed = false;
}

struct l2_worker *
l2_worker_create(struct ev_loop *loop)
{
    struct l2_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->loop = loop;
    w->conns = calloc(l2_pool.nservers, sizeof(*w->conns));
    w->stats = calloc(l2_pool.nservers, sizeof(*w->stats));
    if (w->conns == NULL || w->stats == NULL) {
        free(w->conns);
        free(w->stats);
        free(w);
        return NULL;
    }
    for (unsigned i = 0; i < l2_pool.nservers; i++)
        upconn_init(&w->conns[i], w, i);
    ev_prepare_init(&w->flush, l2_flush_cb);
    w->flush.data = w;
    ev_prepare_start(loop, &w->flush);
    ev_unref(loop); /* the flush alone must not keep the loop running */
    ev_check_init(&w->after_poll, l2_after_poll_cb);
    w->after_poll.data = w;
    ev_check_start(loop, &w->after_poll);
    ev_unref(loop);
    ev_prepare_init(&w->flush_late, l2_flush_late_cb);
    w->flush_late.data = w;
    pthread_mutex_lock(&l2_pool.workers_lock);
    w->next = l2_pool.workers;
    l2_pool.workers = w;
    pthread_mutex_unlock(&l2_pool.workers_lock);
    return w;
}

static void
l2_retire_stats(struct l2_worker *w)
{
    for (unsigned i = 0; i < l2_pool.nservers; i++) {
        struct l2_server_stats *from = &w->stats[i], *to = &l2_pool.retired[i];
#define L2_RETIRE(name) atomic_fetch_add(&to->name, atomic_load(&from->name));
        L2_SERVER_STATS(L2_RETIRE)
#undef L2_RETIRE
        for (unsigned b = 0; b < L2_HIST_BUCKETS; b++)
            atomic_fetch_add(&to->hist[b], atomic_load(&from->hist[b]));
    }
    for (unsigned k = 0; k < L2_NODE_STAT_COUNT; k++)
        l2_pool.retired_node[k] += atomic_load(&w->node[k]);
}

void
l2_worker_destroy(struct l2_worker *w)
{
    if (w == NULL)
        return;
    for (unsigned i = 0; i < l2_pool.nservers; i++)
        upconn_close(&w->conns[i], L2_SHUTDOWN);
    ev_ref(w->loop);
    ev_prepare_stop(w->loop, &w->flush);
    ev_ref(w->loop);
    ev_check_stop(w->loop, &w->after_poll);
    ev_clear_pending(w->loop, &w->flush_late);
    pthread_mutex_lock(&l2_pool.workers_lock);
    for (struct l2_worker **pp = &l2_pool.workers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    l2_retire_stats(w);
    pthread_mutex_unlock(&l2_pool.workers_lock);
    for (unsigned i = 0; i < l2_pool.nservers; i++)
        free(w->conns[i].rbuf);
    while (w->free_reqs != NULL) {
        struct l2_req *r = w->free_reqs;
        w->free_reqs = r->next;
        free(r);
    }
    free(w->conns);
    free(w->stats);
    free(w);
}

unsigned
l2_worker_pending(const struct l2_worker *w)
{
    return atomic_load_explicit(&w->pending, memory_order_relaxed);
}

/* --- requests -------------------------------------------------------------------- */

void
l2_req_free(struct l2_worker *w, struct l2_req *r)
{
    if (w->nfree >= L2_FREE_KEEP) {
        free(r);
        return;
    }
    r->next = w->free_reqs;
    w->free_reqs = r;
    w->nfree++;
}

void
l2_req_finish(struct l2_worker *w, struct l2_req *r, struct l2_reply *reply)
{
    struct l2_server_stats *st = &w->stats[r->server];
    reply->server = r->server;
    switch (reply->status) {
    case L2_OK:
        if (r->is_get && reply->line.code == MP_VA)
            L2_ADD(st->hits, 1);
        else if (r->is_get && reply->line.code == MP_EN)
            L2_ADD(st->misses, 1);
        else if (reply->line.code == MP_ERROR || reply->line.code == MP_CLIENT_ERROR ||
                 reply->line.code == MP_SERVER_ERROR)
            L2_ADD(st->errors, 1);
        l2_hist_add(st, (l2_now_ns() - r->started_ns) / 1000);
        break;
    case L2_TIMEOUT:
        L2_ADD(st->timeouts, 1);
        break;
    case L2_BAD_REPLY:
    case L2_DOWN:
        L2_ADD(st->errors, 1);
        break;
    case L2_SHUTDOWN:
        break;
    }
    atomic_store_explicit(&w->pending, atomic_load_explicit(&w->pending, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    l2_done_fn done = r->done;
    void *arg = r->arg;
    /* Freed first: done may submit again and reuse it. */
    if (reply->value == r->small) {
        /* The small value lives in r: hand it over through a local copy. */
        char small[L2_SMALL_VALUE];
        memcpy(small, r->small, sizeof(small));
        reply->value = small;
        l2_req_free(w, r);
        done(arg, reply);
        return;
    }
    l2_req_free(w, r);
    done(arg, reply);
}

enum l2_submit_result
l2_submit(struct l2_worker *w, unsigned server, const struct l2_call *call)
{
    struct l2_server_stats *st = &w->stats[server];
    if (server >= l2_pool.nservers || call->nargs > L2_ARGS_MAX || call->nkey > 250) {
        L2_ADD(st->refused, 1);
        return L2_REFUSED;
    }
    if (!l2_server_allows(server)) {
        L2_ADD(st->refused, 1);
        return L2_EJECTED;
    }
    struct l2_req *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next;
        w->nfree--;
    } else {
        r = malloc(sizeof(*r));
        if (r == NULL) {
            L2_ADD(st->refused, 1);
            return L2_REFUSED;
        }
    }
    struct upconn *c = &w->conns[server];
    r->next = NULL;
    r->server = server;
    r->is_get = call->is_get;
    r->value = call->value;
    r->nvalue = call->value ? call->nvalue : 0;
    r->sink = call->sink;
    r->done = call->done;
    r->arg = call->arg;
    r->opaque = c->next_opaque++;
    size_t cl = strlen(call->cmd);
    char *p = r->line;
    memcpy(p, call->cmd, cl);
    p += cl;
    *p++ = ' ';
    memcpy(p, call->key, call->nkey);
    p += call->nkey;
    if (call->nargs > 0) {
        *p++ = ' ';
        memcpy(p, call->args, call->nargs);
        p += call->nargs;
    }
    p += snprintf(p, 16, " O%u\r\n", (unsigned)r->opaque);
    r->nline = (uint16_t)(p - r->line);
    r->started_ns = l2_now_ns();
    r->deadline = ev_now(w->loop) + l2_pool.timeout_s;
    if (!upconn_push(c, r)) {
        l2_req_free(w, r);
        L2_ADD(st->refused, 1);
        return L2_REFUSED;
    }
    L2_ADD(st->requests, 1);
    atomic_store_explicit(&w->pending, atomic_load_explicit(&w->pending, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (w->flushed && !w->late_fed) {
        w->late_fed = true;
        ev_feed_event(w->loop, &w->flush_late, EV_PREPARE);
    }
    return L2_SUBMITTED;
}

void
l2_note_coalesced(struct l2_worker *w, unsigned server, uint64_t n)
{
    if (server < l2_pool.nservers)
        L2_ADD(w->stats[server].coalesced, n);
}

void
l2_note(struct l2_worker *w, enum l2_node_stat which, uint64_t n)
{
    L2_ADD(w->node[which], n);
}
