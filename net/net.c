/* net: set-up, the worker threads and the hand-off from the acceptor. Each
 * worker owns a libev loop and every connection on it; the only things
 * crossing threads are the hand-off queue (mutex + ev_async), the shared
 * atomics in struct net_shared and the per-worker conns list (for stats). */
#include "net/net.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/inflight.h"
#include "net/l2cmd.h"
#include "net/listener.h"
#include "net/prefix.h"
#include "net/watch.h"
#include "src/log.h"

/* Workers get this long to flush in-flight replies at shutdown. */
#define NET_STOP_DEADLINE 2.0

static struct net_shared shared;
static struct ev_loop *main_loop;
static ev_async stopped_async;     /* a worker finished (main loop) */
static _Atomic unsigned workers_running;
static unsigned next_worker;
static void (*stopped_done)(void *);
static void *stopped_arg;
static bool set_up;
/* --bus-sync: the bus thread wakes workers through net_sync_progress, which
 * must not touch them once net_teardown has begun to free them. */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sync_live;

void
net_dispatch(int fd, const char *listen_name)
{
    struct worker *w = &shared.workers[next_worker++ % shared.nworkers];
    pthread_mutex_lock(&w->queue_lock);
    if (w->queue_len == w->queue_cap) {
        size_t ncap = w->queue_cap ? w->queue_cap * 2 : 64;
        struct worker_handoff *q = realloc(w->queue, ncap * sizeof(*q));
        if (q == NULL) {
            pthread_mutex_unlock(&w->queue_lock);
            close(fd);
            atomic_fetch_sub(&shared.curr_conns, 1);
            return;
        }
        w->queue = q;
        w->queue_cap = ncap;
    }
    w->queue[w->queue_len++] = (struct worker_handoff){ fd, listen_name };
    pthread_mutex_unlock(&w->queue_lock);
    ev_async_send(w->loop, &w->wake);
}

static void
worker_close_all(struct worker *w)
{
    while (w->conns != NULL)
        conn_destroy(w->conns);
}

static void
worker_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    worker_close_all(w);
    ev_break(loop, EVBREAK_ALL);
}

void
net_worker_conn_gone(struct worker *w)
{
    /* Writes still waiting on L2 are let finish (until the stop deadline):
     * their L1 and bus side effects must happen. */
    if (w->stopping && w->nconns == 0 && l2cmd_worker_ops(w) == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

static void
worker_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    struct worker_handoff batch[64];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&w->queue_lock);
        while (n < 64 && w->queue_len > 0) {
            batch[n++] = w->queue[0];
            memmove(w->queue, w->queue + 1, (w->queue_len - 1) * sizeof(*w->queue));
            w->queue_len--;
        }
        pthread_mutex_unlock(&w->queue_lock);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (w->stopping) {
                close(batch[i].fd);
                atomic_fetch_sub(&shared.curr_conns, 1);
            } else {
                conn_create(w, batch[i].fd, batch[i].listen_name);
            }
        }
    }
    if (w->stopping && !ev_is_active(&w->stop_deadline)) {
        /* conn_begin_shutdown may destroy: walk a snapshot of the list. */
        struct conn *c = w->conns;
        while (c != NULL) {
            struct conn *next = c->next;
            conn_begin_shutdown(c);
            c = next;
        }
        if (w->nconns == 0 && l2cmd_worker_ops(w) == 0) {
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        ev_timer_set(&w->stop_deadline, NET_STOP_DEADLINE, 0.);
        ev_timer_start(loop, &w->stop_deadline);
    }
}

/* Sets the worker's deadline timer to fire within us microseconds, unless
 * it is already set to fire sooner. */
static void
worker_deadline(struct worker *w, double now, int64_t us)
{
    double at = now + (double)us * 1e-6;
    if (w->deadline_at > 0 && w->deadline_at <= at)
        return;
    int64_t ns = us > 0 ? us * 1000 : 1; /* zero would disarm */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(ns / 1000000000),
                                          .tv_nsec = (long)(ns % 1000000000)}};
    if (timerfd_settime(w->deadline_fd, 0, &its, NULL) == 0)
        w->deadline_at = at;
}

/* Nothing to do here: the prepare watcher runs before the next poll. */
static void
worker_deadline_fired(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = io->data;
    uint64_t expirations;
    ssize_t n = read(w->deadline_fd, &expirations, sizeof(expirations));
    (void)n; /* EAGAIN after a re-arm race is harmless */
    w->deadline_at = 0;
}

/* Before each poll: first the on_poll hook (the bus sends its due batches
 * from here, so a busy node never wakes another thread to do it), then the
 * worker slice.
 *
 * Two workers sharing a core both stay runnable under load, and the kernel
 * switches between runnable threads of equal standing only on its tick (4 ms
 * at HZ=250), so a request on the worker that is not running waited a whole
 * tick: p99 4.2 ms at -t 2 on one core, where memcached's LRU maintainer,
 * waking every millisecond, happens to slice its workers finer. A worker
 * that has run worker_slice_us without blocking yields between loop
 * iterations instead. Alone on a core, sched_yield returns at once; one
 * syscall per slice costs nothing measurable. */
static void
worker_batch_open(struct ev_loop *loop, ev_check *ck, int revents)
{
    (void)loop;
    (void)revents;
    conn_open_batch(ck->data);
}

static void
worker_batch_run(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    conn_run_batch(p->data);
}

static void
worker_before_poll(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = p->data;
    const struct net_options *o = &w->shared->opts;
    int64_t us = o->on_poll != NULL ? o->on_poll() : -1;
    if (us < 0 && o->worker_slice_us == 0)
        return;
    double now = ev_time(); /* one clock read serves both */
    if (us >= 0)
        worker_deadline(w, now, us);
    if (o->worker_slice_us == 0)
        return;
    if (now - w->run_since >= o->worker_slice_us * 1e-6) {
        sched_yield();
        now = ev_time();
        w->run_since = now;
    }
    w->poll_at = now;
}

/* A poll that took longer than this slept: the worker's run starts anew. */
#define WORKER_SLEPT_S 20e-6

static void
worker_slice_after_poll(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)revents;
    struct worker *w = c->data;
    if (ev_now(loop) - w->poll_at > WORKER_SLEPT_S)
        w->run_since = ev_now(loop);
}

/* --bus-sync: the fleet applied more publications. */
static void
worker_sync_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    conn_sync_wake(a->data);
}

void
net_sync_progress(void)
{
    pthread_mutex_lock(&sync_lock);
    if (sync_live) {
        for (unsigned i = 0; i < shared.nworkers; i++) {
            struct worker *w = &shared.workers[i];
            if (atomic_load(&w->nparked) > 0)
                ev_async_send(w->loop, &w->sync_wake);
        }
    }
    pthread_mutex_unlock(&sync_lock);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_setname_np(pthread_self(), "fc-worker");
    ev_run(w->loop, 0);
    worker_close_all(w);
    bufpool_drain(&w->rbufs);
    reply_pool_drain(&w->reply_pool);
    atomic_fetch_sub(&workers_running, 1);
    ev_async_send(main_loop, &stopped_async);
    return NULL;
}

static void
net_stopped_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    if (atomic_load(&workers_running) == 0 && stopped_done != NULL) {
        void (*done)(void *) = stopped_done;
        stopped_done = NULL;
        done(stopped_arg);
    }
}

#define NET_OPTION_ROW(...) OPTION_ROW(struct net_options, __VA_ARGS__)
const struct option_row net_option_rows[] = { NET_OPTIONS(NET_OPTION_ROW, NET_OPTION_ROW) };
#undef NET_OPTION_ROW
const size_t net_option_nrows = sizeof(net_option_rows) / sizeof(net_option_rows[0]);

void
net_options_default(struct net_options *opts)
{
    char err[256];
    memset(opts, 0, sizeof(*opts));
    /* Every default is a row's; a test checks that each one parses. */
    (void)option_defaults(net_option_rows, net_option_nrows, opts, err, sizeof(err));
}

bool
net_setup(const struct net_options *opts, struct ev_loop *loop, char *err, size_t errlen)
{
    memset(&shared, 0, sizeof(shared));
    shared.opts = *opts;
    /* Guards for callers that did not start from net_options_default(). */
    if (shared.opts.threads == 0)
        shared.opts.threads = 1;
    if (shared.opts.reqs_per_event == 0)
        shared.opts.reqs_per_event = 1;
    if (shared.opts.version == NULL)
        shared.opts.version = "unknown";
    shared.started = time(NULL);
    pthread_mutex_init(&shared.reset_lock, NULL);
    prefix_setup(shared.opts.stat_key_prefix, shared.opts.detail_enabled);
    cache_set_evict_hook(watch_evicted);
    inflight_setup();
    main_loop = loop;

    if (!listener_open(&shared, err, errlen)) {
        listener_close();
        return false;
    }

    shared.nworkers = shared.opts.threads;
    shared.workers = calloc(shared.nworkers, sizeof(*shared.workers));
    if (shared.workers == NULL) {
        snprintf(err, errlen, "out of memory starting %u worker threads", shared.nworkers);
        listener_close();
        return false;
    }
    ev_async_init(&stopped_async, net_stopped_cb);
    ev_async_start(loop, &stopped_async);

    /* Workers block the shutdown signals: the main loop handles them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < shared.nworkers; i++) {
        struct worker *w = &shared.workers[i];
        w->id = i;
        w->shared = &shared;
        w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (w->loop == NULL) {
            snprintf(err, errlen, "failed to create the event loop of worker %u", i);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            shared.nworkers = i;
            return false;
        }
        pthread_mutex_init(&w->queue_lock, NULL);
        pthread_mutex_init(&w->conns_lock, NULL);
        ev_async_init(&w->wake, worker_wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
        if (shared.opts.sync_done != NULL) {
            ev_async_init(&w->sync_wake, worker_sync_cb);
            w->sync_wake.data = w;
            ev_async_start(w->loop, &w->sync_wake);
            ev_unref(w->loop);
        }
        ev_init(&w->stop_deadline, worker_deadline_cb);
        w->stop_deadline.data = w;
        if (!l2cmd_worker_setup(w)) {
            snprintf(err, errlen, "out of memory starting the L2 client of worker %u", i);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            ev_loop_destroy(w->loop);
            shared.nworkers = i;
            return false;
        }
        /* Highest priority: the batch opens before any io callback of a
         * poll runs, and runs before the other prepare (on_poll) does. */
        ev_check_init(&w->batch_open, worker_batch_open);
        w->batch_open.data = w;
        ev_set_priority(&w->batch_open, EV_MAXPRI);
        ev_check_start(w->loop, &w->batch_open);
        ev_unref(w->loop);
        ev_prepare_init(&w->batch_run, worker_batch_run);
        w->batch_run.data = w;
        ev_set_priority(&w->batch_run, EV_MAXPRI);
        ev_prepare_start(w->loop, &w->batch_run);
        ev_unref(w->loop);
        if (shared.opts.on_poll != NULL || shared.opts.worker_slice_us > 0) {
            ev_prepare_init(&w->before_poll, worker_before_poll);
            w->before_poll.data = w;
            ev_prepare_start(w->loop, &w->before_poll);
            ev_unref(w->loop); /* none of these may keep the loop running */
        }
        if (shared.opts.worker_slice_us > 0) {
            w->run_since = ev_time();
            ev_check_init(&w->after_poll, worker_slice_after_poll);
            w->after_poll.data = w;
            ev_check_start(w->loop, &w->after_poll);
            ev_unref(w->loop);
        }
        w->deadline_fd = -1;
        if (shared.opts.on_poll != NULL) {
            w->deadline_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
            if (w->deadline_fd < 0) {
                snprintf(err, errlen, "worker %u: timerfd_create: %s", i, strerror(errno));
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                ev_loop_destroy(w->loop);
                shared.nworkers = i;
                return false;
            }
            ev_io_init(&w->deadline_io, worker_deadline_fired, w->deadline_fd, EV_READ);
            w->deadline_io.data = w;
            ev_io_start(w->loop, &w->deadline_io);
            ev_unref(w->loop);
        }
        atomic_fetch_add(&workers_running, 1);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            atomic_fetch_sub(&workers_running, 1);
            snprintf(err, errlen, "failed to start worker thread %u", i);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            ev_loop_destroy(w->loop);
            if (w->deadline_fd >= 0)
                close(w->deadline_fd);
            shared.nworkers = i;
            return false;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&sync_lock);
    sync_live = shared.opts.sync_done != NULL;
    pthread_mutex_unlock(&sync_lock);
    listener_start(loop);
    set_up = true;
    log_info("listening with %u worker threads", shared.nworkers);
    return true;
}

void
net_shutdown(void (*done)(void *arg), void *arg)
{
    listener_close();
    stopped_done = done;
    stopped_arg = arg;
    for (unsigned i = 0; i < shared.nworkers; i++) {
        struct worker *w = &shared.workers[i];
        /* stopping is read on the worker only after the async wakes it;
         * ev_async_send is a full barrier. */
        w->stopping = true;
        ev_async_send(w->loop, &w->wake);
    }
    if (shared.nworkers == 0 || atomic_load(&workers_running) == 0)
        ev_async_send(main_loop, &stopped_async);
}

void
net_teardown(void)
{
    if (!set_up && shared.workers == NULL)
        return;
    for (unsigned i = 0; i < shared.nworkers; i++) {
        struct worker *w = &shared.workers[i];
        if (!w->stopping) {
            w->stopping = true;
            ev_async_send(w->loop, &w->wake);
        }
    }
    for (unsigned i = 0; i < shared.nworkers; i++)
        pthread_join(shared.workers[i].thread, NULL);
    pthread_mutex_lock(&sync_lock);
    sync_live = false;
    pthread_mutex_unlock(&sync_lock);
    /* Every worker is joined: what was still waiting on L2 finishes here. */
    l2cmd_teardown(shared.workers, shared.nworkers);
    for (unsigned i = 0; i < shared.nworkers; i++) {
        struct worker *w = &shared.workers[i];
        for (size_t q = 0; q < w->queue_len; q++)
            close(w->queue[q].fd);
        free(w->queue);
        ev_loop_destroy(w->loop);
        if (w->deadline_fd >= 0)
            close(w->deadline_fd);
        pthread_mutex_destroy(&w->queue_lock);
        pthread_mutex_destroy(&w->conns_lock);
    }
    listener_close();
    cache_set_evict_hook(NULL);
    prefix_teardown();
    if (main_loop != NULL)
        ev_async_stop(main_loop, &stopped_async);
    free(shared.workers);
    shared.workers = NULL;
    shared.nworkers = 0;
    pthread_mutex_destroy(&shared.reset_lock);
    inflight_teardown();
    set_up = false;
}

bool
net_stats_detail_enabled(void)
{
    return prefix_enabled();
}

int
net_bound_port(void)
{
    return listener_port();
}
