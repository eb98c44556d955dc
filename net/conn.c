/* conn: the per-connection state machine. One pass (conn_run) reads, parses
 * every complete command in the buffer (pipelining), then sends everything
 * those commands queued with writev. Invariants: while output is pending the
 * socket is not read (back-pressure), and a connection is destroyed only at
 * the top of one of its own watcher callbacks, never in the middle of a pass. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/binary.h"
#include "net/cmd.h"
#include "net/l2cmd.h"
#include "net/lookahead.h"
#include "net/proto.h"
#include "net/watch.h"
#include "src/clock.h"
#include "src/log.h"

/* memcached's read buffer size: a typical pipelined batch fits at once.
 * A connection takes one from its worker's pool only to read, and gives it
 * back once everything in it has been parsed: an idle connection holds no
 * read buffer (nor reply arrays, reply_buf_idle). */
#define CONN_RBUF_INIT (16 * 1024)
/* A multiget line may grow the buffer this far; beyond it the client gets
 * "CLIENT_ERROR line too long" and is closed (memcached grows without end). */
#define CONN_LINE_MAX (1024 * 1024)
/* Back-pressure bound: once this much output is queued and unsent, stop
 * parsing and write; if the socket will not take it, stop reading. */
#define CONN_OUT_HIGH (1024 * 1024)
/* A watcher takes this much of its log lines per step. */
#define CONN_WATCH_CHUNK (64 * 1024)

enum conn_stop {
    STOP_WAIT_READ,     /* need bytes the socket does not have yet */
    STOP_FULL,          /* output above CONN_OUT_HIGH: send first */
    STOP_YIELD,         /* -R requests done in this pass */
    STOP_CLOSE,         /* quit, EOF, fatal error: close after sending */
    STOP_WAIT_L2,       /* a command waits on L2: send, then sleep */
};

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_idle_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_rbuf_drop(struct conn *c);

static void
conn_set_events(struct conn *c, unsigned events)
{
    if (c->io_events == events)
        return;
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, (int)events);
    if (events)
        ev_io_start(c->w->loop, &c->io);
    c->io_events = events;
}

/* --- --bus-sync: replies that wait for the fleet ------------------------------------ */

/* True while c's replies must wait: its last publication's ticket is not
 * done yet. */
static bool
conn_held(struct conn *c)
{
    if (c->sync_ticket == 0)
        return false;
    if (c->w->shared->opts.sync_done() >= c->sync_ticket) {
        c->sync_ticket = 0;
        return false;
    }
    return true;
}

static void
conn_unpark(struct conn *c)
{
    if (!c->parked)
        return;
    struct worker *w = c->w;
    if (c->park_prev)
        c->park_prev->park_next = c->park_next;
    else
        w->parked = c->park_next;
    if (c->park_next)
        c->park_next->park_prev = c->park_prev;
    c->park_prev = c->park_next = NULL;
    c->parked = false;
    atomic_fetch_sub(&w->nparked, 1);
}

/* Parks c while it is held: no reading, no writing, until net_sync_progress
 * wakes its worker. The count goes up before the last look at the ticket,
 * and the bus stores a new done before it reads the count (both seq_cst),
 * so a wake-up is never missed. False (nothing parked) when not held. */
static bool
conn_park(struct conn *c)
{
    struct worker *w = c->w;
    if (!c->parked) {
        c->park_prev = NULL;
        c->park_next = w->parked;
        if (w->parked)
            w->parked->park_prev = c;
        w->parked = c;
        c->parked = true;
        atomic_fetch_add(&w->nparked, 1);
    }
    if (!conn_held(c)) {
        conn_unpark(c);
        return false;
    }
    conn_set_events(c, 0);
    atomic_store_explicit(&c->stat_state, CONN_STAT_MWRITE, memory_order_relaxed);
    return true;
}

void
conn_sync_wake(struct worker *w)
{
    struct conn *c = w->parked;
    while (c != NULL) {
        struct conn *next = c->park_next;
        if (!conn_held(c)) {
            conn_unpark(c);
            ev_feed_event(w->loop, &c->io, EV_READ); /* runs it from the loop */
        }
        c = next;
    }
}

static void
conn_peer_name(struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "";
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(c->peer, sizeof(c->peer), "unknown");
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "tcp:%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "tcp6:[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(c->peer, sizeof(c->peer), "unix:%s", c->listen_name + 5);
    }
}

bool
conn_create(struct worker *w, int fd, const char *listen_name)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        atomic_fetch_sub(&w->shared->curr_conns, 1);
        return false;
    }
    c->fd = fd;
    c->w = w;
    c->listen_name = listen_name;
    c->state = CONN_PARSE;
    atomic_store(&c->last_cmd_time, clock_now());
    reply_buf_init_pooled(&c->out, &w->reply_pool);
    conn_peer_name(c);
    log_debug("<%d new %s client connection", fd,
              w->shared->opts.protocol == NET_PROTOCOL_ASCII ? "ascii" : "auto-negotiating");

    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    c->io_events = EV_READ;
    ev_io_start(w->loop, &c->io);
    ev_init(&c->idle, conn_idle_cb);
    c->idle.data = c;
    unsigned idle = w->shared->opts.idle_timeout;
    if (idle > 0) {
        ev_timer_set(&c->idle, (double)idle, 0.);
        ev_timer_start(w->loop, &c->idle);
    }

    pthread_mutex_lock(&w->conns_lock);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pthread_mutex_unlock(&w->conns_lock);
    return true;
}

void
conn_destroy(struct conn *c)
{
    struct worker *w = c->w;
    pthread_mutex_lock(&w->conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->conns_lock);

    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->idle);
    if (c->batched) {
        for (unsigned i = 0; i < w->nbatch; i++)
            if (w->batch[i] == c)
                w->batch[i] = NULL;
    }
    watch_remove(c->watch);
    if (c->l2op != NULL)
        l2cmd_detach(c->l2op); /* it finishes without us */
    l2cmd_fwd_free(&c->nread_fwd);
    conn_unpark(c);
    cache_release(&c->nread_it);
    reply_buf_deinit(&c->out);
    log_debug("<%d connection closed.", c->fd);
    close(c->fd);
    conn_rbuf_drop(c);
    free(c);
    atomic_fetch_sub(&w->shared->curr_conns, 1);
    net_worker_conn_gone(w);
}

/* Publishes a change of how many read buffers the worker's connections
 * hold (delta) and how many spares its pool keeps, for `stats`. */
static void
conn_rbuf_count(struct worker *w, int delta)
{
    uint32_t held = atomic_load_explicit(&w->rbufs_held, memory_order_relaxed);
    atomic_store_explicit(&w->rbufs_held, held + (uint32_t)delta, memory_order_relaxed);
    atomic_store_explicit(&w->rbufs_spare, w->rbufs.n, memory_order_relaxed);
}

/* Takes a read buffer from the worker's pool if c has none. */
static bool
conn_rbuf_take(struct conn *c)
{
    if (c->rbuf != NULL)
        return true;
    c->rbuf = bufpool_get(&c->w->rbufs, CONN_RBUF_INIT);
    if (c->rbuf == NULL)
        return false;
    c->rcap = CONN_RBUF_INIT;
    c->rstart = c->rend = c->look_end = 0;
    conn_rbuf_count(c->w, 1);
    return true;
}

/* Gives the read buffer back (to the pool when it has the pool's size). */
static void
conn_rbuf_drop(struct conn *c)
{
    if (c->rbuf == NULL)
        return;
    if (c->rcap == CONN_RBUF_INIT)
        bufpool_put(&c->w->rbufs, c->rbuf);
    else
        free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rstart = c->rend = c->look_end = 0;
    conn_rbuf_count(c->w, -1);
}

/* Makes room after rend for at least one more read; false when the line
 * being assembled has outgrown CONN_LINE_MAX (or no buffer could be had). */
static bool
conn_rbuf_room(struct conn *c)
{
    if (!conn_rbuf_take(c))
        return false;
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
    } else if (c->rstart > 0 && c->rcap - c->rend < c->rcap / 4) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    if (c->rend < c->rcap)
        return true;
    if (c->rcap >= CONN_LINE_MAX)
        return false;
    size_t ncap = c->rcap * 2;
    char *p = realloc(c->rbuf, ncap);
    if (p == NULL)
        return false;
    c->rbuf = p;
    c->rcap = ncap;
    return true;
}

/* A buffer that grew for one long multiget goes back to its normal size
 * once drained, so idle connections stay small. */
static void
conn_rbuf_shrink(struct conn *c)
{
    if (c->rcap <= CONN_RBUF_INIT || c->rend - c->rstart > CONN_RBUF_INIT / 2)
        return;
    size_t n = c->rend - c->rstart;
    memmove(c->rbuf, c->rbuf + c->rstart, n);
    char *p = realloc(c->rbuf, CONN_RBUF_INIT);
    if (p != NULL) {
        c->rbuf = p;
        c->rcap = CONN_RBUF_INIT;
    }
    c->rstart = 0;
    c->rend = n;
}

/* readv(2); >0 bytes, 0 would block, -1 EOF or error (c->dead or
 * close_after_write set). */
static ssize_t
conn_readv(struct conn *c, struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = readv(c->fd, iov, iovcnt);
        if (n > 0) {
            NET_STAT_ADD(c->w, bytes_read, (uint64_t)n);
            return n;
        }
        if (n == 0) {
            /* EOF: still send what earlier commands queued, then close. */
            c->close_after_write = true;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        c->dead = true;
        return -1;
    }
}

/* Moves data-block bytes (NREAD into the item, SWALLOW into nowhere) from
 * the buffer, then straight from the socket. True when the block is done.
 * Each socket read also offers the whole (by then empty) read buffer for
 * whatever follows the block: a short read then proves the socket empty
 * (*drained), which saves the read that could only return EAGAIN after
 * every large set. */
static bool
conn_fill_block(struct conn *c, enum conn_stop *stop, bool *drained)
{
    bool into_item = c->state == CONN_NREAD;
    size_t *left = into_item ? &c->nread_left : &c->swallow_left;
    size_t avail = c->rend - c->rstart;
    size_t n = avail < *left ? avail : *left;
    if (n > 0) {
        if (into_item) {
            memcpy(c->nread_dst, c->rbuf + c->rstart, n);
            c->nread_dst += n;
        }
        c->rstart += n;
        *left -= n;
    }
    while (*left > 0) {
        if (!conn_rbuf_take(c)) {
            c->dead = true;
            *stop = STOP_CLOSE;
            return false;
        }
        /* The buffer was consumed above, so it is free for what follows. */
        c->rstart = c->rend = 0;
        struct iovec iov[2] = {
            {.iov_base = into_item ? c->nread_dst : c->w->scratch,
             .iov_len = into_item ? *left
                                  : (*left < sizeof(c->w->scratch) ? *left : sizeof(c->w->scratch))},
            {.iov_base = c->rbuf, .iov_len = c->rcap},
        };
        /* Only bytes past the block's end may land in the buffer. */
        int iovcnt = iov[0].iov_len == *left ? 2 : 1;
        ssize_t got = conn_readv(c, iov, iovcnt);
        if (got <= 0) {
            *stop = got == 0 ? STOP_WAIT_READ : STOP_CLOSE;
            return false;
        }
        *drained = iovcnt == 2 && (size_t)got < iov[0].iov_len + iov[1].iov_len;
        size_t block = (size_t)got < iov[0].iov_len ? (size_t)got : iov[0].iov_len;
        if (into_item)
            c->nread_dst += block;
        *left -= block;
        c->rend = (size_t)got - block;
    }
    return true;
}

/* memcached's -B auto: a first byte of 0x80 (the binary request magic)
 * makes the connection binary for good; -B binary and -B ascii decide
 * without looking. */
static void
conn_choose_protocol(struct conn *c)
{
    int proto = c->w->shared->opts.protocol;
    c->binary = proto == NET_PROTOCOL_BINARY ||
                (proto == NET_PROTOCOL_AUTO && (uint8_t)c->rbuf[c->rstart] == BIN_REQ_MAGIC);
    c->proto_known = true;
    /* Two-level mode speaks the text and meta protocols only: a binary
     * command would read and write this node's copies around the pool. */
    if (c->binary && c->w->l2 != NULL) {
        log_info("closing binary connection %d: two-level mode (--l2) serves text and meta only",
                 c->fd);
        c->dead = true;
    }
}

/* Parses and runs commands until input runs out, output is above the
 * bound, the -R budget is spent, or the connection must close. */
static enum conn_stop
conn_process(struct conn *c)
{
    unsigned budget = c->w->shared->opts.reqs_per_event;
    unsigned reqs = 0;
    struct proto_request req;
    enum conn_stop stop = STOP_WAIT_READ;
    /* A read that did not fill the buffer emptied the socket: asking again
     * would only earn EAGAIN, one wasted syscall per request. The watcher
     * is level-triggered, so bytes that arrive later wake us anyway. */
    bool drained = c->drained;
    c->drained = false;

    for (;;) {
        if (c->dead || c->close_after_write)
            return STOP_CLOSE;
        if (c->out.oom) {
            c->dead = true;
            return STOP_CLOSE;
        }
        if (c->state == CONN_WAIT)
            return STOP_WAIT_L2;
        if (c->out.pending > CONN_OUT_HIGH)
            return STOP_FULL;
        if (c->state == CONN_WATCH || c->state == CONN_DUMP) {
            if (reqs >= budget) {
                NET_STAT_ADD(c->w, conn_yields, 1);
                return STOP_YIELD;
            }
            reqs++;
            if (c->state == CONN_DUMP) {
                (void)cmd_dump_step(c);
                continue;
            }
            if (watch_drain(c->watch, &c->out, CONN_WATCH_CHUNK) > 0)
                continue;
            /* A watcher's input is ignored, as memcached's is; reading it
             * still tells when the client went away. */
            if (!conn_rbuf_take(c)) {
                c->dead = true;
                return STOP_CLOSE;
            }
            c->rstart = c->rend = 0;
            struct iovec iov = {.iov_base = c->rbuf, .iov_len = c->rcap};
            ssize_t got = conn_readv(c, &iov, 1);
            if (got == 0)
                return STOP_WAIT_READ;
            if (got < 0)
                return STOP_CLOSE;
            continue;
        }
        if (c->state != CONN_PARSE) {
            if (!conn_fill_block(c, &stop, &drained))
                return stop;
            if (c->state != CONN_NREAD)
                c->state = CONN_PARSE;
            else if (c->binary)
                bin_complete_nread(c);
            else
                cmd_complete_nread(c);
            reqs++;
            continue;
        }
        size_t avail = c->rend - c->rstart;
        if (avail > 0) {
            if (reqs >= budget) {
                NET_STAT_ADD(c->w, conn_yields, 1);
                return STOP_YIELD;
            }
            if (!c->proto_known) {
                conn_choose_protocol(c);
                if (c->dead)
                    return STOP_CLOSE;
            }
            if (c->binary) {
                enum bin_status bs = bin_process(c);
                if (bs == BIN_DONE) {
                    reqs++;
                    continue;
                }
                if (bs == BIN_CLOSE) {
                    c->dead = true;
                    return STOP_CLOSE;
                }
                goto need_more;
            }
            if (c->rstart >= c->look_end) {
                /* a batch of gets: prefetch its keys' buckets and items */
                size_t covered = lookahead(c->rbuf + c->rstart, avail);
                c->look_end = c->rstart + (covered > 0 ? covered : 1);
            }
            switch (proto_parse_line(c->rbuf + c->rstart, avail, &req)) {
            case PROTO_OK:
                c->rstart += req.consumed;
                atomic_store_explicit(&c->last_cmd_time, clock_now(), memory_order_relaxed);
                cmd_dispatch(c, &req);
                reqs++;
                continue;
            case PROTO_JUNK:
                /* memcached closes without a word on junk without a newline. */
                c->dead = true;
                return STOP_CLOSE;
            case PROTO_NEED_MORE:
                break;
            }
        }
need_more:
        c->look_end = 0; /* every complete line was parsed: look again after the read */
        conn_rbuf_shrink(c);
        if (!conn_rbuf_take(c)) {
            c->dead = true;
            return STOP_CLOSE;
        }
        if (!conn_rbuf_room(c)) {
            reply_line(&c->out, "CLIENT_ERROR line too long");
            c->close_after_write = true;
            return STOP_CLOSE;
        }
        if (drained)
            return STOP_WAIT_READ;
        /* --bus-sync: while replies wait for the fleet, read no more: what
         * arrived is answered after one wait, and a client that pipelines
         * without end cannot hold its own replies back for ever. */
        if (conn_held(c))
            return STOP_WAIT_READ;
        size_t room = c->rcap - c->rend;
        struct iovec iov = {.iov_base = c->rbuf + c->rend, .iov_len = room};
        ssize_t got = conn_readv(c, &iov, 1);
        if (got == 0)
            return STOP_WAIT_READ;
        if (got < 0)
            return STOP_CLOSE;
        c->rend += (size_t)got;
        drained = (size_t)got < room;
    }
}

/* Sends queued output. False when the socket is full (or dead). */
static bool
conn_flush(struct conn *c)
{
    if (reply_empty(&c->out))
        return true;
    uint64_t written = 0;
    enum reply_send_result r = reply_send(&c->out, c->fd, &written);
    NET_STAT_ADD(c->w, bytes_written, written);
    if (r == REPLY_ERROR)
        c->dead = true;
    return r == REPLY_SENT;
}

/* Waiting for input with nothing unparsed: the read buffer and the reply
 * arrays go back to the worker's pools (a command waiting on L2 keeps its
 * buffer: it still has to be resumed from it). */
static void
conn_go_idle(struct conn *c)
{
    if (c->rbuf != NULL && c->rstart == c->rend && c->state != CONN_WAIT)
        conn_rbuf_drop(c);
    if (reply_empty(&c->out))
        reply_buf_idle(&c->out);
}

/* One pass; destroys c when it is finished with. */
static void
conn_run(struct conn *c)
{
    for (;;) {
        if (!c->dead && c->sync_ticket && conn_park(c))
            return; /* the fleet first, then the replies */
        if (!c->dead && !conn_flush(c)) {
            if (c->dead)
                break;
            conn_set_events(c, EV_WRITE); /* back-pressure: no reading */
            atomic_store_explicit(&c->stat_state, CONN_STAT_MWRITE, memory_order_relaxed);
            return;
        }
        if (c->dead)
            break;
        if (c->close_after_write || c->w->stopping)
            break;
        enum conn_stop stop = conn_process(c);
        if (stop == STOP_FULL)
            continue;
        if (!c->dead && c->sync_ticket && conn_park(c))
            return;
        if (!c->dead && !conn_flush(c)) {
            if (c->dead)
                break;
            conn_set_events(c, EV_WRITE);
            atomic_store_explicit(&c->stat_state, CONN_STAT_MWRITE, memory_order_relaxed);
            return;
        }
        if (stop == STOP_CLOSE || c->dead)
            break;
        if (stop == STOP_WAIT_L2) {
            conn_set_events(c, 0); /* conn_resume wakes us */
            atomic_store_explicit(&c->stat_state, CONN_WAIT, memory_order_relaxed);
            return;
        }
        conn_go_idle(c);
        /* -R spent with input left: come back at the next poll, as
         * memcached does, by waiting for the socket to be writable (it is).
         * ev_feed_event would not do: libev runs the event it was fed next,
         * before the other ready connections, so a client pipelining
         * without pause kept the worker (readers beside a 32-deep writer
         * got 12,000 gets/s where memcached gives them 60,000). */
        conn_set_events(c, stop == STOP_YIELD ? EV_READ | EV_WRITE : EV_READ);
        atomic_store_explicit(&c->stat_state, c->state, memory_order_relaxed);
        return;
    }
    conn_destroy(c);
}

void
conn_kick(struct conn *c)
{
    conn_run(c);
}

/* Batching across connections. A single get per connection still waits on
 * two cache misses (its bucket, its item) that lookahead cannot overlap
 * within the connection; a poll that returns many ready connections can.
 * While the worker's io callbacks run, a connection with nothing unparsed
 * is read at once, its first keys hashed and their buckets prefetched, and
 * it is set aside; the next callback (a read later) prefetches the items
 * those buckets point to, and once every callback has run, the
 * set-aside connections run in order. Reading
 * first changes no order a client can see: each connection's bytes are
 * still handled in order, and one connection's replies never wait on
 * another's. Returns true when c was set aside. */
static bool
conn_read_ahead(struct conn *c)
{
    struct worker *w = c->w;
    if (!w->batching || w->nbatch == NET_BATCH_MAX || c->state != CONN_PARSE || !c->proto_known ||
        c->binary || c->dead || c->close_after_write || !reply_empty(&c->out) ||
        c->sync_ticket != 0 || c->parked || (c->rbuf != NULL && c->rstart != c->rend))
        return false; /* (--bus-sync: a held connection reads nothing) */
    if (!conn_rbuf_take(c))
        return false;
    /* A buffer kept (a command waited on L2) is empty here: start it over. */
    c->rstart = c->rend = c->look_end = 0;
    struct iovec iov = {.iov_base = c->rbuf, .iov_len = c->rcap};
    ssize_t got = conn_readv(c, &iov, 1);
    if (got <= 0)
        return false; /* nothing after all, or EOF: the usual path sees to it */
    c->rend = (size_t)got;
    c->drained = (size_t)got < c->rcap;
    /* The buckets asked for by earlier callbacks have had a read's time to
     * arrive: their first items can be asked for now. */
    for (; w->nbatch_hv_items < w->nbatch_hv; w->nbatch_hv_items++)
        cache_prefetch(w->batch_hv[w->nbatch_hv_items], 1);
    struct proto_token keys[4];
    size_t covered;
    size_t n = lookahead_keys(c->rbuf, c->rend, keys, 4, &covered);
    for (size_t i = 0; i < n && w->nbatch_hv < NET_BATCH_MAX; i++) {
        uint64_t hv = cache_key_hash(keys[i].p, keys[i].len);
        cache_prefetch(hv, 0);
        w->batch_hv[w->nbatch_hv++] = hv;
    }
    c->batched = true;
    w->batch[w->nbatch++] = c;
    return true;
}

void
conn_open_batch(struct worker *w)
{
    w->batching = true;
}

void
conn_run_batch(struct worker *w)
{
    net_poll_fn poll = w->shared->opts.on_poll;
    w->batching = false; /* from here on, callbacks run at once */
    for (unsigned i = w->nbatch_hv_items; i < w->nbatch_hv; i++)
        cache_prefetch(w->batch_hv[i], 1);
    w->nbatch_hv = w->nbatch_hv_items = 0;
    for (unsigned i = 0; i < w->nbatch; i++) {
        struct conn *c = w->batch[i];
        if (c == NULL)
            continue; /* closed since it was read */
        w->batch[i] = NULL;
        c->batched = false;
        conn_run(c); /* may free c */
        if (poll != NULL)
            (void)poll();
    }
    w->nbatch = 0;
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    if (c->batched)
        return; /* already read ahead: it runs with the batch */
    if ((revents & EV_READ) && conn_read_ahead(c))
        return;
    net_poll_fn poll = c->w->shared->opts.on_poll;
    conn_run(c); /* may free c */
    if (poll != NULL)
        (void)poll();
}

static void
conn_idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    unsigned timeout = c->w->shared->opts.idle_timeout;
    uint32_t last = atomic_load_explicit(&c->last_cmd_time, memory_order_relaxed);
    uint32_t now = clock_now();
    uint32_t idle = now - last;
    /* Whole seconds: idle only when strictly more than the timeout has
     * passed (as memcached), or a tick right after a command would kick a
     * busy client. Mid-value or mid-reply it is slow, not idle: wait. */
    if (idle > timeout && c->state == CONN_PARSE && reply_empty(&c->out) && !c->batched) {
        log_info("closing idle connection %d", c->fd);
        NET_STAT_ADD(c->w, idle_kicks, 1);
        conn_destroy(c);
        return;
    }
    double again = idle > timeout ? 1. : (double)(timeout - idle + 1);
    ev_timer_set(t, again, 0.);
    ev_timer_start(loop, t);
}

void
conn_suspend(struct conn *c, struct l2op *op)
{
    c->state = CONN_WAIT;
    c->l2op = op;
}

void
conn_resume(struct conn *c)
{
    c->state = CONN_PARSE;
    c->l2op = NULL;
    conn_set_events(c, EV_READ);
    ev_feed_event(c->w->loop, &c->io, EV_READ);
}

void
conn_begin_shutdown(struct conn *c)
{
    if (reply_empty(&c->out)) {
        conn_destroy(c);
        return;
    }
    c->close_after_write = true;
    conn_set_events(c, EV_WRITE);
}
