/* upconn: one worker's connection to one L2 server. Invariants: requests are
 * written in list order and the server answers in that order, so the head is
 * the only request a reply can belong to, and it must echo the head's
 * opaque; a reply for a request not yet fully written, an opaque that does
 * not match, a malformed line or a value not ending in "\r\n" mean the
 * stream can no longer be trusted: the connection is closed and every
 * request on it fails. The socket is never read while nothing is expected. */
#include "l2/l2_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "src/log.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#define UPCONN_RBUF 16384

static void upconn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void upconn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

void
upconn_init(struct upconn *c, struct l2_worker *w, unsigned server)
{
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->server = server;
    c->fd = -1;
    c->state = UP_IDLE;
    ev_init(&c->io, upconn_io_cb);
    c->io.data = c;
    ev_init(&c->timer, upconn_timer_cb);
    c->timer.data = c;
}

static void
upconn_set_events(struct upconn *c, unsigned events)
{
    if (c->io_events == events)
        return;
    ev_io_stop(c->w->loop, &c->io);
    if (events) {
        ev_io_set(&c->io, c->fd, (int)events);
        ev_io_start(c->w->loop, &c->io);
    }
    c->io_events = events;
}

/* Always read a ready connection, idle or not, so that a server closing it
 * (a restart) is noticed before the next request is written into it; write
 * while something is unsent and the in-flight bound allows. */
static void
upconn_want(struct upconn *c, bool blocked_write)
{
    unsigned ev = 0;
    if (c->state == UP_CONNECTING)
        ev = EV_WRITE;
    else if (c->state == UP_READY)
        ev = EV_READ | (blocked_write ? EV_WRITE : 0);
    upconn_set_events(c, ev);
}

static void
upconn_arm_timer(struct upconn *c)
{
    if (c->head == NULL || ev_is_active(&c->timer))
        return;
    double in = c->head->deadline - ev_now(c->w->loop);
    ev_timer_set(&c->timer, in > 0 ? in : 0., 0.);
    ev_timer_start(c->w->loop, &c->timer);
}

bool
upconn_push(struct upconn *c, struct l2_req *r)
{
    if (c->queued >= l2_pool.opts.max_inflight * L2_QUEUE_FACTOR)
        return false;
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    if (c->unsent == NULL) {
        c->unsent = r;
        c->unsent_off = 0;
    }
    c->queued++;
    atomic_store_explicit(&c->queued_pub, c->queued, memory_order_relaxed);
    c->dirty = true;
    upconn_arm_timer(c);
    return true;
}

/* Fails every request on the connection with status and closes it. The list
 * is detached first: a done callback may submit to this server again. */
static void
upconn_fail_all(struct upconn *c, enum l2_status status)
{
    struct l2_req *list = c->head;
    struct l2_req *unsent = c->unsent;
    if (c->fd >= 0) {
        upconn_set_events(c, 0);
        close(c->fd);
        c->fd = -1;
    }
    ev_timer_stop(c->w->loop, &c->timer);
    c->state = UP_IDLE;
    c->head = c->tail = c->unsent = NULL;
    c->unsent_off = 0;
    c->queued = c->inflight = 0;
    atomic_store_explicit(&c->queued_pub, 0, memory_order_relaxed);
    c->dirty = false;
    c->rstart = c->rend = 0;
    c->vreq = NULL;
    bool sent = true;
    while (list != NULL) {
        struct l2_req *r = list;
        list = r->next;
        if (r == unsent)
            sent = false;
        struct l2_reply reply = {.server = c->server};
        /* Never written: it cannot have been applied, whatever status says. */
        reply.status = sent ? status : (status == L2_SHUTDOWN ? L2_SHUTDOWN : L2_DOWN);
        l2_req_finish(c->w, r, &reply);
    }
}

/* A failure of the connection itself: counts toward ejection. */
static void
upconn_fail(struct upconn *c, enum l2_status status, const char *why)
{
    log_info("L2 server %s: %s", l2_pool.servers[c->server].name, why);
    if (status != L2_SHUTDOWN)
        l2_server_failed(c->server);
    upconn_fail_all(c, status);
}

/* The server closed a connection with nothing written on it: no request is
 * lost and nothing failed; whatever is queued goes out on a new one. */
static void
upconn_drop_idle(struct upconn *c)
{
    upconn_set_events(c, 0);
    close(c->fd);
    c->fd = -1;
    c->state = UP_IDLE;
    c->rstart = c->rend = 0;
    if (c->unsent != NULL) {
        c->unsent_off = 0;
        c->dirty = true;
    }
}

void
upconn_close(struct upconn *c, enum l2_status status)
{
    upconn_fail_all(c, status);
}

static bool
upconn_connect(struct upconn *c)
{
    struct l2_server *s = &l2_pool.servers[c->server];
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    if (s->addr.ss_family == AF_INET || s->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    if (c->rbuf == NULL) {
        c->rbuf = malloc(UPCONN_RBUF);
        if (c->rbuf == NULL) {
            close(fd);
            c->fd = -1;
            return false;
        }
        c->rcap = UPCONN_RBUF;
    }
    c->rstart = c->rend = 0;
    L2_ADD(c->w->stats[c->server].connects, 1);
    if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) == 0) {
        c->state = UP_READY;
        return true;
    }
    if (errno != EINPROGRESS) {
        close(fd);
        c->fd = -1;
        return false;
    }
    c->state = UP_CONNECTING;
    upconn_want(c, false);
    return true;
}

void
upconn_flush(struct upconn *c)
{
    c->dirty = false;
    if (c->unsent == NULL)
        return;
    if (c->state == UP_IDLE && !upconn_connect(c)) {
        upconn_fail(c, L2_DOWN, "connect failed");
        return;
    }
    if (c->state != UP_READY)
        return;
    unsigned max = l2_pool.opts.max_inflight;
    bool wrote = false;
    while (c->unsent != NULL && c->inflight < max) {
        struct iovec iov[IOV_MAX];
        int n = 0;
        unsigned reqs = c->inflight;
        size_t skip = c->unsent_off;
        for (struct l2_req *r = c->unsent; r != NULL && reqs < max && n + 2 <= IOV_MAX;
             r = r->next, reqs++) {
            size_t total = r->nline + r->nvalue;
            size_t off = r == c->unsent ? skip : 0;
            if (off < r->nline) {
                iov[n].iov_base = r->line + off;
                iov[n++].iov_len = r->nline - off;
                off = r->nline;
            }
            if (off < total) {
                iov[n].iov_base = (void *)(r->value + (off - r->nline));
                iov[n++].iov_len = total - off;
            }
        }
        ssize_t got = writev(c->fd, iov, n);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            upconn_fail(c, L2_TIMEOUT, "write failed");
            return;
        }
        if (!wrote)
            L2_ADD(c->w->stats[c->server].batches, 1);
        wrote = true;
        size_t left = (size_t)got;
        /* Advance over whole requests; a request counts as in flight from
         * its first byte written (a reply may follow only its last). */
        while (left > 0 && c->unsent != NULL) {
            struct l2_req *r = c->unsent;
            size_t total = r->nline + r->nvalue;
            size_t rem = total - c->unsent_off;
            if (c->unsent_off == 0)
                c->inflight++;
            if (left < rem) {
                c->unsent_off += left;
                left = 0;
            } else {
                left -= rem;
                c->unsent = r->next;
                c->unsent_off = 0;
            }
        }
        if (got == 0)
            break;
    }
    upconn_want(c, c->unsent != NULL && c->inflight < max);
}

/* Takes the head off the list for its reply. */
static struct l2_req *
upconn_pop(struct upconn *c)
{
    struct l2_req *r = c->head;
    c->head = r->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->queued--;
    c->inflight--;
    atomic_store_explicit(&c->queued_pub, c->queued, memory_order_relaxed);
    return r;
}

static bool
upconn_opaque_ok(const struct l2_req *r, const struct mparse_reply *m)
{
    char want[12];
    int n = snprintf(want, sizeof(want), "%u", (unsigned)r->opaque);
    return m->opaque != NULL && m->nopaque == (size_t)n && memcmp(m->opaque, want, (size_t)n) == 0;
}

/* The value of the head's VA reply is complete: checks its end, delivers. */
static bool
upconn_value_done(struct upconn *c)
{
    if (c->vtail[0] != '\r' || c->vtail[1] != '\n')
        return false;
    c->vreq = NULL;
    struct l2_reply reply = c->vreply;
    l2_server_ok(c->server);
    l2_req_finish(c->w, upconn_pop(c), &reply);
    return true;
}

/* Moves value bytes from the buffer into their destination. */
static void
upconn_take_value(struct upconn *c, const char *src, size_t n)
{
    size_t total = c->vdone + c->vleft;
    for (size_t i = 0; i < n; i++) {
        size_t pos = c->vdone + i;
        if (pos >= total - 2)
            c->vtail[pos - (total - 2)] = src[i];
    }
    if (c->vdst != NULL)
        memcpy(c->vdst + c->vdone, src, n);
    c->vdone += n;
    c->vleft -= n;
}

/* Parses every complete reply in the buffer. False when the stream broke
 * (the connection has been failed). */
static bool
upconn_parse(struct upconn *c)
{
    for (;;) {
        if (c->vreq != NULL) {
            size_t avail = c->rend - c->rstart;
            size_t n = avail < c->vleft ? avail : c->vleft;
            upconn_take_value(c, c->rbuf + c->rstart, n);
            c->rstart += n;
            if (c->vleft > 0)
                return true;
            if (!upconn_value_done(c)) {
                upconn_fail(c, L2_BAD_REPLY, "a value did not end in CRLF");
                return false;
            }
            if (c->fd < 0)
                return false; /* a done callback cannot close us, but be safe */
            continue;
        }
        char *s = c->rbuf + c->rstart;
        size_t avail = c->rend - c->rstart;
        char *nl = avail ? memchr(s, '\n', avail) : NULL;
        if (nl == NULL) {
            if (avail > MPARSE_LINE_MAX) {
                upconn_fail(c, L2_BAD_REPLY, "reply line too long");
                return false;
            }
            return true;
        }
        size_t len = (size_t)(nl - s);
        if (len == 0 || s[len - 1] != '\r') {
            upconn_fail(c, L2_BAD_REPLY, "reply line without CRLF");
            return false;
        }
        struct l2_reply reply = {.status = L2_OK, .server = c->server};
        if (mparse_line(s, len - 1, &reply.line) != MPARSE_OK) {
            upconn_fail(c, L2_BAD_REPLY, "malformed reply line");
            return false;
        }
        struct l2_req *r = c->head;
        if (r == NULL || r == c->unsent) {
            upconn_fail(c, L2_BAD_REPLY, "a reply nobody asked for");
            return false;
        }
        bool is_error = reply.line.code == MP_ERROR || reply.line.code == MP_CLIENT_ERROR ||
                        reply.line.code == MP_SERVER_ERROR;
        if (reply.line.code == MP_MN || (!is_error && !upconn_opaque_ok(r, &reply.line))) {
            upconn_fail(c, L2_BAD_REPLY, "a reply out of order (opaque mismatch)");
            return false;
        }
        c->rstart += len + 1;
        if (reply.line.code != MP_VA) {
            l2_server_ok(c->server);
            l2_req_finish(c->w, upconn_pop(c), &reply);
            if (c->fd < 0)
                return false;
            continue;
        }
        /* A value follows: decide where it goes, then move it there. The
         * line's string views die with the buffer: only numbers are kept. */
        reply.line.msg = reply.line.key = reply.line.opaque = NULL;
        reply.line.nmsg = reply.line.nkey = reply.line.nopaque = 0;
        c->vreq = r;
        c->vreply = reply;
        c->vdone = 0;
        c->vleft = (size_t)reply.line.vlen + 2;
        c->vtail[0] = c->vtail[1] = 0;
        if (r->sink != NULL)
            c->vdst = r->sink(r->arg, &reply);
        else
            c->vdst = c->vleft <= L2_SMALL_VALUE ? r->small : NULL;
        c->vreply.value = c->vdst;
    }
}

static void
upconn_read(struct upconn *c)
{
    for (;;) {
        if (c->rstart == c->rend) {
            c->rstart = c->rend = 0;
        } else if (c->rstart > 0) {
            memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
            c->rend -= c->rstart;
            c->rstart = 0;
        }
        /* A long value goes straight from the socket to its destination,
         * with the buffer behind it for whatever follows. */
        struct iovec iov[2];
        int n = 0;
        size_t direct = 0;
        if (c->vreq != NULL && c->rstart == c->rend && c->vleft > 2 && c->vdst != NULL) {
            direct = c->vleft - 2;  /* the CRLF lands in the buffer, to be checked */
            iov[n].iov_base = c->vdst + c->vdone;
            iov[n++].iov_len = direct;
        }
        iov[n].iov_base = c->rbuf + c->rend;
        iov[n++].iov_len = c->rcap - c->rend;
        if (iov[n - 1].iov_len == 0) {
            upconn_fail(c, L2_BAD_REPLY, "reply line too long");
            return;
        }
        ssize_t got = readv(c->fd, iov, n);
        if (got == 0) {
            if (c->inflight == 0 && c->vreq == NULL)
                upconn_drop_idle(c);
            else
                upconn_fail(c, L2_TIMEOUT, "closed by the server");
            return;
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            upconn_fail(c, L2_TIMEOUT, "read failed");
            return;
        }
        size_t g = (size_t)got;
        if (direct > 0) {
            size_t d = g < direct ? g : direct;
            c->vdone += d;
            c->vleft -= d;
            g -= d;
        }
        c->rend += g;
        if (!upconn_parse(c))
            return;
        if ((size_t)got < iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0))
            break; /* a short read emptied the socket */
    }
    /* Replies freed room under the in-flight bound. */
    if (c->unsent != NULL)
        upconn_flush(c);
    else
        upconn_want(c, false);
}

static void
upconn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct upconn *c = io->data;
    if (c->state == UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            upconn_fail(c, L2_DOWN, "connect failed");
            return;
        }
        c->state = UP_READY;
        upconn_flush(c);
        return;
    }
    if (revents & EV_READ) {
        upconn_read(c);
        if (c->fd < 0)
            return;
    }
    if ((revents & EV_WRITE) && c->unsent != NULL)
        upconn_flush(c);
}

static void
upconn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct upconn *c = t->data;
    if (c->head == NULL)
        return;
    double now = ev_now(loop);
    if (c->head->deadline > now + 1e-4) {
        /* The head it was armed for was answered: re-arm for the new one. */
        ev_timer_set(t, c->head->deadline - now, 0.);
        ev_timer_start(loop, t);
        return;
    }
    upconn_fail(c, c->state == UP_CONNECTING ? L2_DOWN : L2_TIMEOUT,
                c->state == UP_CONNECTING ? "connect timed out" : "request timed out");
}
