/* ceiling: the do-nothing server scripts/bench measures against. It parses
 * nothing and stores nothing: it finds line ends, looks at a line's first
 * two bytes, and answers every request with a constant reply of the size the
 * workload's real reply has ("VALUE <key> <flags> <v>\r\n<v bytes>\r\nEND\r\n"
 * for a get of -m keys, "STORED\r\n" for a set once its data block of -v
 * bytes has come in and been skipped; with --meta "VA ..." and "HD"). One libev loop, one read and one
 * write per batch of requests, as a real server at its best. What a server
 * spends beyond this per request is its own work; the rest is the kernel's.
 * fcbench checks its replies with --frames-only (framing and sizes, not
 * the keys or the content, which no constant reply can match).
 * Links libev only: nothing of fleetcache. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RBUF 16384
#define MAX_VALUE (64u << 20)
#define COPY_MAX 1024  /* replies below this are copied, larger ones referenced */
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

struct cconn {
    ev_io io;
    char rbuf[RBUF];
    size_t rlen;
    size_t skip;        /* data-block bytes of a set still to discard */
    bool stored_due;    /* that set is answered once its block is in */
    /* Replies not yet written: small ones copied into text, large ones
     * (a 64 KiB value) pointed at, as a server sends values from memory. */
    struct iovec iov[IOV_MAX];
    int niov, iov_done;
    char text[RBUF];
    size_t tlen;
};

static char *get_reply, *set_reply;
static size_t get_len, set_len;
static size_t value_len = 100;

static void
cconn_close(struct ev_loop *loop, struct cconn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c);
}

/* Queues a constant reply; false when the queue is full (write first). */
static bool
out_add(struct cconn *c, const char *s, size_t n)
{
    if (n < COPY_MAX) {
        if (c->tlen + n > sizeof(c->text)) return false;
        char *dst = c->text + c->tlen;
        struct iovec *last = c->niov > c->iov_done ? &c->iov[c->niov - 1] : NULL;
        if (last != NULL && (char *)last->iov_base + last->iov_len == dst) {
            last->iov_len += n;     /* text right after text: one piece */
        } else {
            if (c->niov == IOV_MAX) return false;
            c->iov[c->niov++] = (struct iovec){.iov_base = dst, .iov_len = n};
        }
        memcpy(dst, s, n);
        c->tlen += n;
        return true;
    }
    if (c->niov == IOV_MAX) return false;
    c->iov[c->niov++] = (struct iovec){.iov_base = (void *)s, .iov_len = n};
    return true;
}

/* Writes what is queued; 1 when all of it went, 0 when the socket is full,
 * -1 when the peer is gone. */
static int
out_flush(struct cconn *c)
{
    while (c->iov_done < c->niov) {
        ssize_t w = writev(c->io.fd, c->iov + c->iov_done, c->niov - c->iov_done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        while (w > 0) {
            struct iovec *v = &c->iov[c->iov_done];
            if ((size_t)w < v->iov_len) {
                v->iov_base = (char *)v->iov_base + w;
                v->iov_len -= (size_t)w;
                w = 0;
            } else {
                w -= (ssize_t)v->iov_len;
                c->iov_done++;
            }
        }
    }
    c->niov = c->iov_done = 0;
    c->tlen = 0;
    return 1;
}

static void
cconn_watch(struct ev_loop *loop, struct cconn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events) return;   /* no epoll_ctl */
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Answers every complete request in rbuf, then writes. False: close. */
static bool
cconn_process(struct ev_loop *loop, struct cconn *c)
{
    size_t pos = 0;
    int r;
    for (;;) {
        if (c->skip > 0) {
            size_t k = c->rlen - pos < c->skip ? c->rlen - pos : c->skip;
            pos += k;
            c->skip -= k;
            if (c->skip > 0) break;
        }
        if (c->stored_due) {    /* as a real server: no answer before the data */
            if (!out_add(c, set_reply, set_len)) {
                r = out_flush(c);
                if (r < 0) return false;
                if (r == 0) break;
                continue;
            }
            c->stored_due = false;
        }
        char *nl = memchr(c->rbuf + pos, '\n', c->rlen - pos);
        if (nl == NULL) break;
        const char *s = c->rbuf + pos;
        bool set = (s[0] == 's' && s[1] == 'e') || (s[0] == 'm' && s[1] == 's');
        bool get = s[0] == 'g' || (s[0] == 'm' && s[1] == 'g');
        /* stats, version ...: "END" is enough to wait on */
        bool ok = set || (get ? out_add(c, get_reply, get_len) : out_add(c, "END\r\n", 5));
        if (!ok) {      /* the queue is full: write it, then go on */
            r = out_flush(c);
            if (r < 0) return false;
            if (r == 0) break;  /* the rest waits in rbuf until it drains */
            continue;
        }
        if (set) {
            c->skip = value_len + 2;
            c->stored_due = true;
        }
        pos = (size_t)(nl + 1 - c->rbuf);
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    if (c->rlen == RBUF && c->niov == 0) return false;  /* a line longer than we take */
    r = out_flush(c);
    if (r < 0) return false;
    cconn_watch(loop, c, r == 0 ? EV_WRITE : EV_READ);  /* back-pressure: no reading */
    return true;
}

static void
cconn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct cconn *c = io->data;
    if (revents & EV_WRITE) {
        int r = out_flush(c);
        if (r < 0 || (r > 0 && !cconn_process(loop, c))) cconn_close(loop, c);
        return;
    }
    ssize_t n = read(io->fd, c->rbuf + c->rlen, RBUF - c->rlen);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        cconn_close(loop, c);
        return;
    }
    c->rlen += (size_t)n;
    if (!cconn_process(loop, c)) cconn_close(loop, c);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct cconn *c = calloc(1, sizeof(*c));
        if (c == NULL) { close(fd); continue; }
        ev_io_init(&c->io, cconn_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
    }
}

/* The constant replies: keys and flags as long as fcbench's usual ones
 * ("fc12345:kkkkkkkk", five-digit flags). */
static void
make_replies(unsigned keys_per_get, int meta)
{
    const char *key = "fc12345:kkkkkkkk";
    char head[128];
    size_t hl, one, i;
    if (meta)
        hl = (size_t)snprintf(head, sizeof(head), "VA %zu f12345 k%s\r\n", value_len, key);
    else
        hl = (size_t)snprintf(head, sizeof(head), "VALUE %s 12345 %zu\r\n", key, value_len);
    one = hl + value_len + 2;
    get_len = (meta ? 1 : keys_per_get) * one + (meta ? 0 : 5);
    get_reply = malloc(get_len);
    if (get_reply == NULL) { perror("ceiling"); exit(1); }
    for (i = 0; i < (meta ? 1 : keys_per_get); i++) {
        char *p = get_reply + i * one;
        memcpy(p, head, hl);
        memset(p + hl, 'v', value_len);
        memcpy(p + hl + value_len, "\r\n", 2);
    }
    if (!meta) memcpy(get_reply + get_len - 5, "END\r\n", 5);
    set_reply = meta ? "HD\r\n" : "STORED\r\n";
    set_len = strlen(set_reply);
}

int
main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"listen", 1, 0, 'l'}, {"port", 1, 0, 'p'}, {"value", 1, 0, 'v'},
        {"keys-per-get", 1, 0, 'm'}, {"meta", 0, 0, 'M'}, {0, 0, 0, 0},
    };
    const char *addr = "127.0.0.1";
    int port = 11211, meta = 0, ch;
    unsigned long kpg = 1, v = 100;
    while ((ch = getopt_long(argc, argv, "l:p:v:m:M", longs, NULL)) != -1) {
        switch (ch) {
        case 'l': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'v': v = strtoul(optarg, NULL, 10); break;
        case 'm': kpg = strtoul(optarg, NULL, 10); break;
        case 'M': meta = 1; break;
        default:
            fprintf(stderr, "usage: ceiling [-l ADDR] [-p PORT] [-v VALUE_BYTES] [-m KEYS_PER_GET] [--meta]\n");
            return 2;
        }
    }
    if (v < 1 || v > MAX_VALUE || kpg < 1 || kpg > 128 || port <= 0 || port > 65535) {
        fprintf(stderr, "ceiling: value 1..%u bytes, 1..128 keys per get, a port\n", MAX_VALUE);
        return 2;
    }
    value_len = v;
    make_replies((unsigned)kpg, meta);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { fprintf(stderr, "ceiling: bad address\n"); return 1; }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) { perror("ceiling"); return 1; }
    struct ev_loop *loop = EV_DEFAULT;
    ev_io lio;
    ev_io_init(&lio, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &lio);
    ev_run(loop, 0);
    return 0;
}
