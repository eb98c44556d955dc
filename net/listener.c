/* listener: one acceptor, on the main loop, for every listening socket.
 * Why one acceptor and not SO_REUSEPORT per worker: it serves the unix
 * socket too, keeps "address already in use" a start-up error (REUSEPORT
 * would let a second daemon share the port silently), counts -c exactly,
 * and spreads connections evenly (round-robin, not by 4-tuple hash).
 *
 * Workers read the table for `stats conns` while the main thread closes the
 * listeners at shutdown: an entry is written only before it is counted in
 * nlisteners (at start-up, before any worker exists), and listener_close
 * uncounts every entry before it closes a socket, so a reader sees only
 * entries that are complete and not being torn down. */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/stats_text.h"
#include "src/clock.h"
#include "src/log.h"

#define LISTENER_MAX 32
/* After EMFILE the acceptor pauses this long instead of spinning. */
#define LISTENER_PAUSE 0.1

struct listener {
    int fd;
    ev_io io;
    char name[96];
};

static struct listener listeners[LISTENER_MAX];
/* Entries [0, nlisteners) are complete; readers on other threads acquire. */
static _Atomic unsigned nlisteners;
static struct net_shared *shared;
static struct ev_loop *accept_loop;
static ev_timer pause_timer;
static int bound_port;
static char *unix_path;

static const char too_many[] = "ERROR Too many open connections\r\n";

static void
listener_pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    unsigned n = atomic_load_explicit(&nlisteners, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        ev_io_start(loop, &listeners[i].io);
    atomic_store(&shared->accepting, true);
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct listener *l = io->data;
    /* A bounded batch per wake-up keeps the main loop responsive. */
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_error("accept: %s; pausing new connections", strerror(errno));
                atomic_fetch_add(&shared->listen_disabled_num, 1);
                atomic_store(&shared->accepting, false);
                unsigned n = atomic_load_explicit(&nlisteners, memory_order_relaxed);
                for (unsigned j = 0; j < n; j++)
                    ev_io_stop(loop, &listeners[j].io);
                ev_timer_set(&pause_timer, LISTENER_PAUSE, 0.);
                ev_timer_start(loop, &pause_timer);
            }
            return;
        }
        if (atomic_load(&shared->curr_conns) >= shared->opts.max_conns) {
            ssize_t w = write(fd, too_many, sizeof(too_many) - 1);
            (void)w; /* best effort: the socket is closed either way */
            close(fd);
            atomic_fetch_add(&shared->rejected_conns, 1);
            continue;
        }
        atomic_fetch_add(&shared->curr_conns, 1);
        atomic_fetch_add(&shared->total_conns, 1);
        net_dispatch(fd, l->name);
    }
}

static bool
listener_add(int fd, const char *name, char *err, size_t errlen)
{
    unsigned n = atomic_load_explicit(&nlisteners, memory_order_relaxed);
    if (n == LISTENER_MAX) {
        snprintf(err, errlen, "too many listening addresses (max %d)", LISTENER_MAX);
        close(fd);
        return false;
    }
    struct listener *l = &listeners[n];
    l->fd = fd;
    snprintf(l->name, sizeof(l->name), "%s", name);
    ev_io_init(&l->io, listener_accept_cb, fd, EV_READ);
    l->io.data = l;
    atomic_store_explicit(&nlisteners, n + 1, memory_order_release); /* complete, then counted */
    return true;
}

static bool
listener_open_unix(const struct net_options *o, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    if (strlen(o->unix_path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "unix socket path too long: %s", o->unix_path);
        return false;
    }
    /* A stale socket file from an earlier run is removed, as memcached does. */
    if (lstat(o->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(o->unix_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return false;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, o->unix_path);
    mode_t old = umask((mode_t)(~o->unix_mask & 0777));
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc != 0 || listen(fd, o->backlog) != 0) {
        snprintf(err, errlen, "failed to listen on UNIX socket \"%s\": %s", o->unix_path,
                 strerror(errno));
        close(fd);
        return false;
    }
    unix_path = strdup(o->unix_path);
    char name[96];
    snprintf(name, sizeof(name), "unix:%s", o->unix_path);
    return listener_add(fd, name, err, errlen);
}

/* One -l entry: "host", "host:port", "[v6]:port" or "[v6]". */
static bool
listener_open_tcp_one(const char *spec, int default_port, int backlog, char *err,
                      size_t errlen)
{
    char host[256];
    char port[16];
    snprintf(port, sizeof(port), "%d", default_port);
    const char *h = spec;
    size_t hlen = strlen(spec);
    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (close_br == NULL) {
            snprintf(err, errlen, "invalid listen address: %s", spec);
            return false;
        }
        h = spec + 1;
        hlen = (size_t)(close_br - h);
        if (close_br[1] == ':')
            snprintf(port, sizeof(port), "%s", close_br + 2);
    } else {
        const char *colon = strchr(spec, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            hlen = (size_t)(colon - spec);
            snprintf(port, sizeof(port), "%s", colon + 1);
        }
    }
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "invalid listen address: %s", spec);
        return false;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    const char *node = (hlen == 0 || strcmp(host, "*") == 0) ? NULL : host;
    int gai = getaddrinfo(node, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "failed to listen on one of interface(s) %s: %s", spec,
                 gai_strerror(gai));
        return false;
    }
    bool any = false;
    for (struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        int fd = socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        p->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (p->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, p->ai_addr, p->ai_addrlen) != 0) {
            int e = errno;
            close(fd);
            if (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
                continue;
            snprintf(err, errlen, "failed to listen on TCP port %s: %s", port, strerror(e));
            freeaddrinfo(ai);
            return false;
        }
        if (listen(fd, backlog) != 0) {
            snprintf(err, errlen, "listen(): %s", strerror(errno));
            close(fd);
            freeaddrinfo(ai);
            return false;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char addr[INET6_ADDRSTRLEN] = "";
        char name[96];
        unsigned short bport = 0;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
            bport = ntohs(s6->sin6_port);
            snprintf(name, sizeof(name), "tcp6:[%s]:%u", addr, bport);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
            bport = ntohs(s4->sin_port);
            snprintf(name, sizeof(name), "tcp:%s:%u", addr, bport);
        }
        if (bound_port == 0)
            bound_port = bport;
        if (!listener_add(fd, name, err, errlen)) {
            freeaddrinfo(ai);
            return false;
        }
        any = true;
    }
    freeaddrinfo(ai);
    if (!any) {
        snprintf(err, errlen, "failed to listen on one of interface(s) %s: no usable address",
                 spec);
        return false;
    }
    return true;
}

bool
listener_open(struct net_shared *sh, char *err, size_t errlen)
{
    const struct net_options *o = &sh->opts;
    shared = sh;
    ev_init(&pause_timer, listener_pause_cb);
    /* memcached: a unix socket replaces TCP altogether. */
    if (o->unix_path != NULL)
        return listener_open_unix(o, err, errlen);
    if (o->tcp_port == 0)
        return true;
    if (o->listen == NULL)
        return listener_open_tcp_one("", o->tcp_port, o->backlog, err, errlen);
    char *list = strdup(o->listen);
    if (list == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = true;
    char *save = NULL;
    for (char *p = strtok_r(list, ";,", &save); p != NULL && ok;
         p = strtok_r(NULL, ";,", &save))
        ok = listener_open_tcp_one(p, o->tcp_port, o->backlog, err, errlen);
    free(list);
    return ok;
}

void
listener_start(struct ev_loop *loop)
{
    accept_loop = loop;
    unsigned n = atomic_load_explicit(&nlisteners, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        ev_io_start(loop, &listeners[i].io);
    atomic_store(&shared->nlisteners, n);
    atomic_store(&shared->accepting, n > 0);
}

void
listener_close(void)
{
    /* Uncounted first: from here on no reader looks at an entry. */
    unsigned n = atomic_exchange(&nlisteners, 0);
    for (unsigned i = 0; i < n; i++) {
        if (accept_loop != NULL)
            ev_io_stop(accept_loop, &listeners[i].io);
        close(listeners[i].fd);
    }
    if (accept_loop != NULL)
        ev_timer_stop(accept_loop, &pause_timer);
    if (shared != NULL)
        atomic_store(&shared->accepting, false);
    if (unix_path != NULL) {
        unlink(unix_path);
        free(unix_path);
        unix_path = NULL;
    }
}

int
listener_port(void)
{
    return bound_port;
}

void
listener_stats_conns(struct reply_buf *out)
{
    unsigned n = atomic_load_explicit(&nlisteners, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        const struct listener *l = &listeners[i];
        reply_printf(out, "STAT %d:addr %s\r\n", l->fd, l->name);
        reply_printf(out, "STAT %d:state conn_listening\r\n", l->fd);
        reply_printf(out, "STAT %d:secs_since_last_cmd %u\r\n", l->fd, clock_now() - 2);
    }
}
