/* fcbench: a small memcached load generator for scripts/bench.
 * N connections spread over T threads (one libev loop each) run a closed-loop
 * workload for a bounded time. Every reply is parsed and checked (key, flags,
 * length, content), so a server that answers garbage is counted, not fast.
 * Latency per request goes into log-linear histograms (HdrHistogram-style,
 * under 1% error); the result is one "FCBENCH key=value ..." line on stdout.
 * With --two-tier HOST:PORT it plays an application that runs two cache
 * tiers itself: a get that misses the server asks the second tier, and a hit
 * there is set back into the first (noreply, --l1-ttl seconds), so the
 * two-level mode of a node can be measured against doing it by hand.
 * Links libev, libm and pthreads only: nothing of fleetcache. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_MULTIGET 128
#define MAX_DEPTH 4096
#define MAX_VALUE (64u << 20)
#define MAX_DURATION 3600.0
#define MAX_LINE 4096           /* longest reply line we accept */
#define FLAGS_OF(idx) ((uint32_t)((idx) * 2654435761u) & 0xffffu)

/* ---- options ---- */

enum bench_mode { MODE_RUN, MODE_LOAD, MODE_STATS, MODE_INVAL, MODE_IDLE, MODE_CHURN };

struct bench_opts {
    enum bench_mode mode;
    char host[256];
    char port[16];
    char peer_host[256];
    char peer_port[16];
    int conns;
    int threads;
    double duration;
    double warmup;
    double timeout;             /* bound on load, stats and connect */
    uint32_t keys;
    uint32_t key_base;          /* load mode sets keys key_base..key_base+keys-1 */
    uint32_t key_min;
    uint32_t key_max;
    uint32_t value;
    uint32_t ratio_set;
    uint32_t ratio_get;
    uint32_t multiget;
    uint32_t depth;
    bool preload;
    bool verify;                /* compare value content, not just length */
    bool frames_only;           /* check framing and sizes only (the ceiling) */
    const char *stats_arg;
    uint32_t count;             /* inval iterations */
    bool inval_delete;
    uint64_t seed;
    double max_miss;            /* misses/get_keys above this make a run invalid */
    bool meta;                  /* gets as "mg <key> v f k", sets as "ms" */
    char tier_host[256];        /* --two-tier: the second tier, "" for none */
    char tier_port[16];
    uint32_t l1_ttl;            /* --l1-ttl: expiry of the copies set back */
};

static struct bench_opts opt = {
    .mode = MODE_RUN, .host = "127.0.0.1", .port = "11211",
    .conns = 50, .threads = 1, .duration = 5.0, .warmup = 0.5, .timeout = 120.0,
    .keys = 100000, .key_min = 16, .key_max = 16, .value = 100,
    .ratio_set = 1, .ratio_get = 9, .multiget = 1, .depth = 1,
    .preload = false, .verify = true, .stats_arg = "", .count = 1000,
    .inval_delete = false, .seed = 0x9e3779b97f4a7c15ull, .max_miss = 1.0,
    .tier_host = "", .tier_port = "", .l1_ttl = 0,
};

static char *pattern;           /* value filler: pattern[i] = 'a' + i % 26 */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *fmt, const char *arg)
{
    fprintf(stderr, "fcbench: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

/* ---- keys and values: both derived from the key index, so replies can be checked ---- */

static uint32_t
u32_fmt(uint32_t v, char *out)
{
    char tmp[10];
    uint32_t n = 0, i;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* key_fmt: writes key number idx ("fc<idx>:" padded with 'k' to a length
 * between key_min and key_max chosen by a hash of idx); returns its length. */
static uint32_t
key_fmt(uint32_t idx, char *out)
{
    uint32_t n = 0, want = opt.key_min;
    if (opt.key_max > opt.key_min)
        want += (uint32_t)(mix64(idx) % (opt.key_max - opt.key_min + 1));
    out[n++] = 'f'; out[n++] = 'c';
    n += u32_fmt(idx, out + n);
    out[n++] = ':';
    while (n < want) out[n++] = 'k';
    return n;
}

/* value_prefix: the value of key idx starts with "<idx>|" when it fits. */
static uint32_t
value_prefix(uint32_t idx, char *out)
{
    uint32_t n;
    if (opt.value < 12) return 0;
    n = u32_fmt(idx, out);
    out[n++] = '|';
    return n;
}

static bool
value_check(uint32_t idx, const char *v, uint32_t len)
{
    char pre[16];
    uint32_t n;
    if (len != opt.value) return false;
    if (!opt.verify) return true;
    n = value_prefix(idx, pre);
    if (memcmp(v, pre, n) != 0) return false;
    return memcmp(v + n, pattern + n, len - n) == 0;
}

/* ---- latency histogram: log-linear buckets of nanoseconds ---- */

#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_MAX_BITS 45           /* about 9.7 hours */
#define H_BUCKETS ((H_MAX_BITS - H_SUB_BITS + 1) * H_SUB)

struct hist {
    uint64_t n;
    uint64_t sum;
    uint64_t max;
    uint64_t b[H_BUCKETS];
};

static uint32_t
hist_index(uint64_t v)
{
    uint32_t msb, shift;
    if (v < H_SUB) return (uint32_t)v;
    if (v >> H_MAX_BITS) v = (1ull << H_MAX_BITS) - 1;
    msb = 63u - (uint32_t)__builtin_clzll(v);
    shift = msb - H_SUB_BITS;
    return (shift + 1) * H_SUB + (uint32_t)((v >> shift) - H_SUB);
}

/* hist_value: the middle of bucket i, in ns. */
static double
hist_value(uint32_t i)
{
    uint32_t oct = i / H_SUB, shift;
    if (oct == 0) return i;
    shift = oct - 1;
    return (double)(((uint64_t)(i % H_SUB) + H_SUB) << shift) + (double)(1ull << shift) / 2.0;
}

static void
hist_add(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max) h->max = v;
}

static void
hist_merge(struct hist *into, const struct hist *h)
{
    uint32_t i;
    for (i = 0; i < H_BUCKETS; i++) into->b[i] += h->b[i];
    into->n += h->n;
    into->sum += h->sum;
    if (h->max > into->max) into->max = h->max;
}

/* hist_pct: the latency in microseconds below which a fraction q of samples fall. */
static double
hist_pct(const struct hist *h, double q)
{
    uint64_t want, seen = 0;
    uint32_t i;
    if (h->n == 0) return 0.0;
    want = (uint64_t)ceil(q * (double)h->n);
    if (want == 0) want = 1;
    for (i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            double v = hist_value(i);
            return (v > (double)h->max ? (double)h->max : v) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ---- connections ---- */

enum req_type { REQ_GET, REQ_SET };

struct req {
    uint8_t type;
    uint8_t nkeys;
    uint64_t t_send;
    uint32_t key[];             /* nkeys entries; slot size is fixed per run */
};

struct counters {
    uint64_t tier_asks;         /* --two-tier: gets that went to the second tier */
    uint64_t tier_hits;
    uint64_t gets;              /* get requests completed */
    uint64_t sets;
    uint64_t get_keys;          /* keys asked for */
    uint64_t hits;
    uint64_t misses;
    uint64_t errors;            /* error replies, failed sets, bad values */
    uint64_t conn_errors;       /* garbage or closed connections */
    uint64_t all_ops;           /* requests completed, warm-up included */
};

struct worker;

struct conn {
    struct worker *w;
    int fd;
    bool dead;
    bool done;                  /* load mode: nothing left to send */
    ev_io rio;
    ev_io wio;
    char *rbuf;
    size_t rcap, rlen, rpos;
    char *wbuf;
    size_t wcap, wlen, wpos;
    unsigned char *ring;        /* outstanding requests, oldest at head */
    size_t slot;
    uint32_t head, count;
    uint32_t kpos;              /* multiget: next key of the head request to match */
    uint32_t khits;
    uint64_t rng;
    /* --two-tier: the connection to the second tier, and whether the head
     * request waits on it (its first-tier get missed). */
    int tfd;
    ev_io trio;
    char *tbuf;
    size_t tcap, tlen;
    bool tier_wait;
};

struct worker {
    int id;
    struct ev_loop *loop;
    struct conn *conns;
    int nconns;
    int live;
    bool recording;
    bool stopping;
    uint64_t t_rec;
    uint64_t t_end;
    struct counters c;
    struct hist h;
    ev_timer warm_timer;
    ev_timer end_timer;
    pthread_t tid;
};

static atomic_uint_fast32_t load_next;  /* load mode: next key index to set */

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void
conn_kill(struct conn *c, const char *why)
{
    if (c->dead) return;
    c->dead = true;
    c->w->c.conn_errors++;
    c->w->live--;
    ev_io_stop(c->w->loop, &c->rio);
    ev_io_stop(c->w->loop, &c->wio);
    close(c->fd);
    c->fd = -1;
    if (c->tfd >= 0) {
        ev_io_stop(c->w->loop, &c->trio);
        close(c->tfd);
        c->tfd = -1;
    }
    if (c->w->c.conn_errors <= 5) fprintf(stderr, "fcbench: connection dropped: %s\n", why);
    if (c->w->live == 0) ev_break(c->w->loop, EVBREAK_ALL);
}

static void
wbuf_reserve(struct conn *c, size_t more)
{
    if (c->wlen + more <= c->wcap) return;
    if (c->wpos > 0) {
        memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
        c->wlen -= c->wpos;
        c->wpos = 0;
        if (c->wlen + more <= c->wcap) return;
    }
    while (c->wlen + more > c->wcap) c->wcap *= 2;
    c->wbuf = realloc(c->wbuf, c->wcap);
    if (!c->wbuf) die("%s", "out of memory");
}

static void
wbuf_put(struct conn *c, const char *s, size_t n)
{
    memcpy(c->wbuf + c->wlen, s, n);
    c->wlen += n;
}

static void
put_set(struct conn *c, uint32_t idx)
{
    char line[64 + 256];
    uint32_t n, p;
    wbuf_reserve(c, sizeof(line) + opt.value + 2);
    if (opt.meta) {
        /* ms <key> <bytes> F<flags> */
        memcpy(line, "ms ", 3);
        n = 3 + key_fmt(idx, line + 3);
        line[n++] = ' ';
        n += u32_fmt(opt.value, line + n);
        memcpy(line + n, " F", 2);
        n += 2;
        n += u32_fmt(FLAGS_OF(idx), line + n);
    } else {
        memcpy(line, "set ", 4);
        n = 4 + key_fmt(idx, line + 4);
        line[n++] = ' ';
        n += u32_fmt(FLAGS_OF(idx), line + n);
        memcpy(line + n, " 0 ", 3);
        n += 3;
        n += u32_fmt(opt.value, line + n);
    }
    line[n++] = '\r'; line[n++] = '\n';
    wbuf_put(c, line, n);
    p = value_prefix(idx, c->wbuf + c->wlen);
    memcpy(c->wbuf + c->wlen + p, pattern + p, opt.value - p);
    c->wlen += opt.value;
    wbuf_put(c, "\r\n", 2);
}

static struct req *
ring_at(struct conn *c, uint32_t i)
{
    return (struct req *)(c->ring + (size_t)((c->head + i) % opt.depth) * c->slot);
}

/* fill: queues requests until depth are outstanding (or load is done). */
static void
conn_fill(struct conn *c, uint64_t t)
{
    struct worker *w = c->w;
    while (c->count < opt.depth && !w->stopping) {
        struct req *r = ring_at(c, c->count);
        r->t_send = t;
        if (opt.mode == MODE_LOAD) {
            uint32_t idx = (uint32_t)atomic_fetch_add(&load_next, 1);
            if (idx >= opt.keys) { c->done = true; break; }
            idx += opt.key_base;
            r->type = REQ_SET;
            r->nkeys = 1;
            r->key[0] = idx;
            put_set(c, idx);
        } else if ((uint32_t)(rng_next(&c->rng) % (opt.ratio_set + opt.ratio_get)) < opt.ratio_set) {
            r->type = REQ_SET;
            r->nkeys = 1;
            r->key[0] = (uint32_t)(rng_next(&c->rng) % opt.keys);
            put_set(c, r->key[0]);
        } else if (opt.meta) {
            /* One key per mg; depth pipelines them as it does gets. */
            r->type = REQ_GET;
            r->nkeys = 1;
            r->key[0] = (uint32_t)(rng_next(&c->rng) % opt.keys);
            wbuf_reserve(c, 16 + 260);
            wbuf_put(c, "mg ", 3);
            c->wlen += key_fmt(r->key[0], c->wbuf + c->wlen);
            wbuf_put(c, " v f k\r\n", 8);
        } else {
            uint32_t k;
            r->type = REQ_GET;
            r->nkeys = (uint8_t)opt.multiget;
            wbuf_reserve(c, 8 + (size_t)opt.multiget * 260);
            wbuf_put(c, "get", 3);
            for (k = 0; k < opt.multiget; k++) {
                r->key[k] = (uint32_t)(rng_next(&c->rng) % opt.keys);
                c->wbuf[c->wlen++] = ' ';
                c->wlen += key_fmt(r->key[k], c->wbuf + c->wlen);
            }
            wbuf_put(c, "\r\n", 2);
        }
        c->count++;
    }
}

static void
conn_flush(struct conn *c)
{
    while (c->wpos < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(c->w->loop, &c->wio);
                return;
            }
            conn_kill(c, strerror(errno));
            return;
        }
        c->wpos += (size_t)n;
    }
    c->wpos = c->wlen = 0;
    ev_io_stop(c->w->loop, &c->wio);
}

static void
req_done(struct conn *c, struct req *r, uint64_t t)
{
    struct worker *w = c->w;
    w->c.all_ops++;
    if (w->recording) {
        if (r->type == REQ_SET) {
            w->c.sets++;
        } else {
            w->c.gets++;
            w->c.get_keys += r->nkeys;
            w->c.hits += c->khits;
            w->c.misses += r->nkeys - c->khits;
        }
        hist_add(&w->h, t - r->t_send);
    }
    c->head = (c->head + 1) % opt.depth;
    c->count--;
    c->kpos = c->khits = 0;
}

static bool
line_is(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(s, lit, m) == 0;
}

/* is_error_line: ERROR, CLIENT_ERROR ... or SERVER_ERROR ... */
static bool
is_error_line(const char *s, size_t n)
{
    return line_is(s, n, "ERROR") ||
        (n >= 12 && (memcmp(s, "SERVER_ERROR", 12) == 0 || memcmp(s, "CLIENT_ERROR", 12) == 0));
}

static bool
parse_u32(const char **p, const char *end, uint32_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9') return false;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) return false;
        s++;
    }
    *p = s;
    *out = (uint32_t)v;
    return true;
}

/* ---- --two-tier: the application's own second tier ---- */

static void conn_flush(struct conn *c);

/* tier_ask: the head get missed the first tier; ask the second. */
static void
tier_ask(struct conn *c, struct req *r)
{
    char line[300];
    size_t n = 0;
    memcpy(line, "get ", 4);
    n = 4 + key_fmt(r->key[0], line + 4);
    line[n++] = '\r';
    line[n++] = '\n';
    c->tier_wait = true;
    if (c->w->recording) c->w->c.tier_asks++;
    for (size_t off = 0; off < n;) {
        ssize_t w = send(c->tfd, line + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { conn_kill(c, "second tier: send failed"); return; }
        off += (size_t)w;
    }
}

/* tier_read_cb: the second tier's answer; a hit is set back into the first
 * tier (noreply, as an application would not wait for it). */
static void
tier_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    (void)loop; (void)revents;
    if (c->tlen == c->tcap) { conn_kill(c, "second tier: reply too long"); return; }
    ssize_t n = recv(c->tfd, c->tbuf + c->tlen, c->tcap - c->tlen, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        conn_kill(c, "second tier closed");
        return;
    }
    c->tlen += (size_t)n;
    if (!c->tier_wait) { conn_kill(c, "second tier: reply nobody asked for"); return; }
    /* "END\r\n", or "VALUE k f n\r\n<n bytes>\r\nEND\r\n" */
    struct req *r = (struct req *)(c->ring + (size_t)(c->head % opt.depth) * c->slot);
    if (c->tlen >= 5 && memcmp(c->tbuf, "END\r\n", 5) == 0) {
        if (c->tlen != 5) { conn_kill(c, "second tier: reply nobody asked for"); return; }
    } else {
        char *nl = memchr(c->tbuf, '\n', c->tlen);
        const char *p, *sp;
        uint32_t flags, bytes;
        size_t head, total;
        if (!nl) return;                        /* the VALUE line is not in yet */
        head = (size_t)(nl + 1 - c->tbuf);
        sp = head > 7 ? memchr(c->tbuf + 6, ' ', head - 7) : NULL;
        p = sp ? sp + 1 : NULL;
        if (memcmp(c->tbuf, "VALUE ", 6) != 0 || !p || !parse_u32(&p, nl, &flags) || *p++ != ' ' ||
                !parse_u32(&p, nl, &bytes) || bytes > MAX_VALUE) {
            conn_kill(c, "second tier: bad VALUE line");
            return;
        }
        total = head + bytes + 2 + 5;
        if (total > c->tcap) { conn_kill(c, "second tier: value too large"); return; }
        if (c->tlen < total) return;            /* more to come */
        if (c->tlen > total || memcmp(c->tbuf + total - 5, "END\r\n", 5) != 0) {
            conn_kill(c, "second tier: bad reply");
            return;
        }
        const char *v = c->tbuf + head;
        if (!value_check(r->key[0], v, bytes) && c->w->recording) c->w->c.errors++;
        /* the copy goes back into the first tier */
        char line[400];
        int ln;
        memcpy(line, "set ", 4);
        ln = 4 + (int)key_fmt(r->key[0], line + 4);
        ln += snprintf(line + ln, sizeof(line) - (size_t)ln, " %u %u %u noreply\r\n", flags, opt.l1_ttl, bytes);
        wbuf_reserve(c, (size_t)ln + bytes + 2);
        wbuf_put(c, line, (size_t)ln);
        wbuf_put(c, v, bytes);
        wbuf_put(c, "\r\n", 2);
        c->khits = 1;
        if (c->w->recording) c->w->c.tier_hits++;
    }
    c->tlen = 0;
    c->tier_wait = false;
    uint64_t t = now_ns();
    req_done(c, r, t);
    conn_fill(c, t);
    if (c->wlen > c->wpos && !ev_is_active(&c->wio)) conn_flush(c);
}

/* conn_parse: consumes every complete reply in rbuf. Returns false when the
 * connection was dropped (garbage); *need is the byte count to wait for. */
static bool
conn_parse(struct conn *c, uint64_t t, size_t *need)
{
    struct worker *w = c->w;
    *need = 0;
    while (c->count > 0) {
        char *s = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        char *nl = memchr(s, '\n', avail < MAX_LINE ? avail : MAX_LINE);
        struct req *r = ring_at(c, 0);
        size_t len;
        if (!nl) {
            if (avail >= MAX_LINE) { conn_kill(c, "reply line too long"); return false; }
            *need = avail + 1;
            return true;
        }
        if (nl == s || nl[-1] != '\r') { conn_kill(c, "reply line without CRLF"); return false; }
        len = (size_t)(nl - s) - 1;
        if (r->type == REQ_SET) {
            if (!line_is(s, len, opt.meta ? "HD" : "STORED")) {
                if (is_error_line(s, len) || line_is(s, len, "NOT_STORED") || line_is(s, len, "NS")) {
                    if (w->recording || opt.mode == MODE_LOAD) w->c.errors++;
                } else {
                    conn_kill(c, "unexpected reply to set");
                    return false;
                }
            }
            c->rpos += len + 2;
            req_done(c, r, t);
            continue;
        }
        if (line_is(s, len, opt.meta ? "EN" : "END")) {
            c->rpos += len + 2;
            if (c->tfd >= 0 && c->khits == 0) {
                tier_ask(c, r);     /* done when the second tier answers */
                return true;
            }
            req_done(c, r, t);
            continue;
        }
        if (opt.meta && len > 3 && memcmp(s, "VA ", 3) == 0) {
            /* VA <bytes> f<flags> k<key>, then the value */
            const char *p = s + 3, *end = s + len, *k;
            char want[260];
            uint32_t flags, bytes, klen, wl;
            if (!parse_u32(&p, end, &bytes) || bytes > MAX_VALUE || end - p < 3 ||
                    memcmp(p, " f", 2) != 0 || (p += 2, !parse_u32(&p, end, &flags)) ||
                    end - p < 3 || memcmp(p, " k", 2) != 0) {
                conn_kill(c, "malformed VA line");
                return false;
            }
            k = p + 2;
            klen = (uint32_t)(end - k);
            if (avail < len + 2 + (size_t)bytes + 2) {
                *need = len + 2 + (size_t)bytes + 2;
                return true;
            }
            if (memcmp(s + len + 2 + bytes, "\r\n", 2) != 0) {
                conn_kill(c, "value block without CRLF");
                return false;
            }
            wl = key_fmt(r->key[0], want);
            if (!opt.frames_only && (wl != klen || memcmp(want, k, klen) != 0)) {
                conn_kill(c, "VA for a key not asked");
                return false;
            }
            if (opt.frames_only ? bytes != opt.value
                                : flags != FLAGS_OF(r->key[0]) || !value_check(r->key[0], s + len + 2, bytes)) {
                if (w->recording) w->c.errors++;
            }
            c->khits = 1;
            c->rpos += len + 2 + bytes + 2;
            req_done(c, r, t);
            continue;
        }
        if (len > 6 && memcmp(s, "VALUE ", 6) == 0) {
            const char *p = s + 6, *end = s + len, *k;
            char want[260];
            uint32_t flags, bytes, klen, j;
            k = p;
            while (p < end && *p != ' ') p++;
            klen = (uint32_t)(p - k);
            if (p >= end || !(p++, parse_u32(&p, end, &flags)) || p >= end || *p++ != ' ' ||
                    !parse_u32(&p, end, &bytes) || (p < end && *p != ' ') || bytes > MAX_VALUE) {
                conn_kill(c, "malformed VALUE line");
                return false;
            }
            if (avail < len + 2 + (size_t)bytes + 2) {
                *need = len + 2 + (size_t)bytes + 2;
                return true;
            }
            if (memcmp(s + len + 2 + bytes, "\r\n", 2) != 0) {
                conn_kill(c, "value block without CRLF");
                return false;
            }
            /* The reply holds the asked keys in order, each at most once per ask. */
            for (j = c->kpos; j < r->nkeys && !opt.frames_only; j++) {
                uint32_t wl = key_fmt(r->key[j], want);
                if (wl == klen && memcmp(want, k, klen) == 0) break;
            }
            if (j == r->nkeys) { conn_kill(c, "VALUE for a key not asked"); return false; }
            if (opt.frames_only ? bytes != opt.value
                                : flags != FLAGS_OF(r->key[j]) || !value_check(r->key[j], s + len + 2, bytes)) {
                if (w->recording) w->c.errors++;
            }
            c->kpos = j + 1;
            c->khits++;
            c->rpos += len + 2 + bytes + 2;
            continue;
        }
        if (is_error_line(s, len)) {
            if (w->recording) w->c.errors++;
            c->rpos += len + 2;
            req_done(c, r, t);
            continue;
        }
        conn_kill(c, "unexpected reply to get");
        return false;
    }
    if (c->rpos < c->rlen) { conn_kill(c, "reply nobody asked for"); return false; }
    return true;
}

/* conn_check_done: load mode retires a connection with nothing left to do. */
static void
conn_check_done(struct conn *c)
{
    struct worker *w = c->w;
    if (opt.mode != MODE_LOAD || c->dead || !c->done || c->count > 0) return;
    ev_io_stop(w->loop, &c->rio);
    c->dead = true;
    if (--w->live == 0) ev_break(w->loop, EVBREAK_ALL);
}

static void
conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    size_t need;
    uint64_t t;
    ssize_t n;
    (void)loop; (void)revents;
    if (c->rlen == c->rcap) {
        c->rcap *= 2;
        c->rbuf = realloc(c->rbuf, c->rcap);
        if (!c->rbuf) die("%s", "out of memory");
    }
    n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        conn_kill(c, n == 0 ? "closed by server" : strerror(errno));
        return;
    }
    c->rlen += (size_t)n;
    t = now_ns();
    if (!conn_parse(c, t, &need)) return;
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (need > c->rcap) {
        while (need > c->rcap) c->rcap *= 2;
        c->rbuf = realloc(c->rbuf, c->rcap);
        if (!c->rbuf) die("%s", "out of memory");
    }
    conn_fill(c, t);
    if (c->wlen > c->wpos && !ev_is_active(&c->wio)) conn_flush(c);
    conn_check_done(c);
}

static void
conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    conn_flush(io->data);
}

/* tcp_connect: a blocking connect bounded by opt.timeout; returns fd or -1. */
static int
tcp_connect(const char *host, const char *port, double timeout_s)
{
    struct addrinfo hints = {0}, *ai = NULL;
    struct pollfd pfd;
    int fd, one = 1, err = 0, rc;
    socklen_t elen = sizeof(err);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return -1;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(ai); return -1; }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0 && errno != EINPROGRESS) { close(fd); return -1; }
    if (rc < 0) {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        if (poll(&pfd, 1, (int)(timeout_s * 1000)) != 1 ||
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            close(fd);
            return -1;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void
warm_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop; (void)revents;
    w->recording = true;
    w->t_rec = now_ns();
}

static void
end_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    w->t_end = now_ns();
    w->recording = false;
    w->stopping = true;
    ev_break(loop, EVBREAK_ALL);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t t = now_ns();
    int i;
    for (i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->dead) continue;
        conn_fill(c, t);
        conn_flush(c);
        conn_check_done(c);
    }
    if (opt.mode == MODE_RUN) {
        ev_timer_init(&w->warm_timer, warm_cb, opt.warmup, 0.0);
        w->warm_timer.data = w;
        ev_timer_init(&w->end_timer, end_cb, opt.warmup + opt.duration, 0.0);
        w->end_timer.data = w;
        if (opt.warmup > 0) ev_timer_start(w->loop, &w->warm_timer);
        else { w->recording = true; w->t_rec = t; }
    } else {
        /* load: everything counts; the end timer is only the time bound */
        w->recording = true;
        w->t_rec = t;
        ev_timer_init(&w->end_timer, end_cb, opt.timeout, 0.0);
        w->end_timer.data = w;
    }
    ev_timer_start(w->loop, &w->end_timer);
    if (w->live > 0) ev_run(w->loop, 0);
    if (!w->t_end) w->t_end = now_ns();
    if (opt.mode == MODE_LOAD) w->recording = false;
    return NULL;
}

/* run_phase: one run or load over fresh connections; prints the result line.
 * Returns 0 when the run was clean (no errors, no dropped connections). */
static int
run_phase(enum bench_mode mode)
{
    enum bench_mode saved = opt.mode;
    struct worker *ws;
    struct counters tot = {0};
    struct hist *h;
    double ops_s = 0, keys_s = 0, window = 0;
    int i, t, clean;
    uint64_t t_begin = now_ns();
    struct rusage ru;
    double client_cpu, client_cpu_s;
    opt.mode = mode;
    atomic_store(&load_next, 0);
    ws = calloc((size_t)opt.threads, sizeof(*ws));
    h = calloc(1, sizeof(*h));
    if (!ws || !h) die("%s", "out of memory");
    for (t = 0; t < opt.threads; t++) {
        struct worker *w = &ws[t];
        w->id = t;
        w->loop = ev_loop_new(EVFLAG_AUTO);
        w->nconns = opt.conns / opt.threads + (t < opt.conns % opt.threads ? 1 : 0);
        w->conns = calloc((size_t)w->nconns, sizeof(struct conn));
        if (!w->loop || !w->conns) die("%s", "cannot create an event loop");
        for (i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            c->w = w;
            c->fd = tcp_connect(opt.host, opt.port, opt.timeout < 5 ? opt.timeout : 5);
            if (c->fd < 0) {
                fprintf(stderr, "fcbench: cannot connect to %s:%s\n", opt.host, opt.port);
                exit(2);
            }
            c->rcap = 64 * 1024;
            c->rbuf = malloc(c->rcap);
            c->wcap = 64 * 1024;
            c->wbuf = malloc(c->wcap);
            c->slot = (sizeof(struct req) + sizeof(uint32_t) * opt.multiget + 7) & ~(size_t)7;
            c->ring = calloc(opt.depth, c->slot);
            if (!c->rbuf || !c->wbuf || !c->ring) die("%s", "out of memory");
            c->rng = mix64(opt.seed ^ ((uint64_t)t << 32) ^ (uint64_t)i) | 1;
            c->tfd = -1;
            if (opt.tier_host[0] && mode == MODE_RUN) {
                c->tfd = tcp_connect(opt.tier_host, opt.tier_port, opt.timeout < 5 ? opt.timeout : 5);
                if (c->tfd < 0) {
                    fprintf(stderr, "fcbench: cannot connect to %s:%s\n", opt.tier_host, opt.tier_port);
                    exit(2);
                }
                c->tcap = 64 * 1024 + (size_t)opt.value;
                c->tbuf = malloc(c->tcap);
                if (!c->tbuf) die("%s", "out of memory");
                ev_io_init(&c->trio, tier_read_cb, c->tfd, EV_READ);
                c->trio.data = c;
                ev_io_start(w->loop, &c->trio);
            }
            ev_io_init(&c->rio, conn_read_cb, c->fd, EV_READ);
            ev_io_init(&c->wio, conn_write_cb, c->fd, EV_WRITE);
            c->rio.data = c->wio.data = c;
            ev_io_start(w->loop, &c->rio);
            w->live++;
        }
    }
    for (t = 0; t < opt.threads; t++)
        if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0) die("%s", "pthread_create failed");
    for (t = 0; t < opt.threads; t++) {
        struct worker *w = &ws[t];
        double win;
        pthread_join(w->tid, NULL);
        if (!w->t_rec) w->t_rec = w->t_end;   /* every connection died in the warm-up */
        win = (double)(w->t_end - w->t_rec) / 1e9;
        if (win <= 0) win = 1e-9;
        ops_s += (double)(w->c.gets + w->c.sets) / win;
        keys_s += (double)(w->c.get_keys + w->c.sets) / win;
        if (win > window) window = win;
        tot.gets += w->c.gets; tot.sets += w->c.sets; tot.get_keys += w->c.get_keys;
        tot.hits += w->c.hits; tot.misses += w->c.misses;
        tot.errors += w->c.errors; tot.conn_errors += w->c.conn_errors;
        tot.all_ops += w->c.all_ops;
        tot.tier_asks += w->c.tier_asks; tot.tier_hits += w->c.tier_hits;
        hist_merge(h, &w->h);
        for (i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->fd >= 0) close(c->fd);
            if (c->tfd >= 0) close(c->tfd);
            free(c->rbuf); free(c->wbuf); free(c->ring); free(c->tbuf);
        }
        free(w->conns);
        ev_loop_destroy(w->loop);
    }
    if (mode == MODE_LOAD && tot.sets < opt.keys) {
        fprintf(stderr, "fcbench: load stopped after %.1f s with %" PRIu64 " of %u keys set\n",
                window, tot.sets, opt.keys);
        tot.errors += opt.keys - tot.sets;
    }
    /* the load generator's own CPU use, as a share of its threads' wall time:
     * near 100 means the client, not the server, set the pace */
    getrusage(RUSAGE_SELF, &ru);
    client_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    client_cpu = client_cpu_s / ((double)(now_ns() - t_begin) / 1e9 * opt.threads) * 100.0;
    /* a run is valid when every reply checked out, and (with --max-miss)
     * a preloaded key space was actually there */
    clean = tot.errors == 0 && tot.conn_errors == 0 && tot.gets + tot.sets > 0 &&
        (double)tot.misses <= opt.max_miss * (double)tot.get_keys;
    printf("FCBENCH mode=%s ops=%" PRIu64 " duration_s=%.3f ops_per_s=%.0f keys_per_s=%.0f"
           " gets=%" PRIu64 " sets=%" PRIu64 " get_keys=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64
           " errors=%" PRIu64 " conn_errors=%" PRIu64 " valid=%d"
           " p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f"
           " all_ops=%" PRIu64 " client_cpu_pct=%.0f client_cpu_s=%.3f"
           " conns=%d threads=%d depth=%u multiget=%u value=%u keys=%u ratio=%u:%u"
           " tier_asks=%" PRIu64 " tier_hits=%" PRIu64 "\n",
           mode == MODE_LOAD ? "load" : "run", tot.gets + tot.sets, window, ops_s, keys_s,
           tot.gets, tot.sets, tot.get_keys, tot.hits, tot.misses, tot.errors, tot.conn_errors, clean,
           hist_pct(h, 0.50), hist_pct(h, 0.90), hist_pct(h, 0.99), hist_pct(h, 0.999),
           (double)h->max / 1000.0, h->n ? (double)h->sum / (double)h->n / 1000.0 : 0.0,
           tot.all_ops, client_cpu, client_cpu_s, opt.conns, opt.threads, opt.depth, opt.multiget, opt.value, opt.keys,
           opt.ratio_set, opt.ratio_get, tot.tier_asks, tot.tier_hits);
    fflush(stdout);
    free(ws);
    free(h);
    opt.mode = saved;
    return clean ? 0 : 1;
}

/* ---- blocking helpers for the stats and inval modes ---- */

struct bconn {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static bool
bconn_open(struct bconn *b, const char *host, const char *port, double timeout_s)
{
    b->len = 0;
    b->fd = tcp_connect(host, port, timeout_s);
    if (b->fd < 0) return false;
    fcntl(b->fd, F_SETFL, fcntl(b->fd, F_GETFL) & ~O_NONBLOCK);
    return true;
}

static bool
bconn_send(struct bconn *b, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(b->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* bconn_until: reads until the buffer ends with one of the given terminators
 * (at a line start) or the deadline passes. Returns the reply length or -1. */
static ssize_t
bconn_until(struct bconn *b, const char *const *ends, uint64_t deadline)
{
    b->len = 0;
    for (;;) {
        struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
        uint64_t t = now_ns();
        const char *const *e;
        ssize_t n;
        for (e = ends; *e; e++) {
            size_t el = strlen(*e);
            if (b->len >= el && memcmp(b->buf + b->len - el, *e, el) == 0 &&
                    (b->len == el || b->buf[b->len - el - 1] == '\n'))
                return (ssize_t)b->len;
        }
        if (t >= deadline || b->len == sizeof(b->buf) - 1) return -1;
        if (poll(&pfd, 1, (int)((deadline - t) / 1000000 + 1)) <= 0) continue;
        n = recv(b->fd, b->buf + b->len, sizeof(b->buf) - 1 - b->len, 0);
        if (n <= 0) return -1;
        b->len += (size_t)n;
        b->buf[b->len] = '\0';
    }
}

/* ---- idle and churn: what connections cost a server's memory ---- */

/* idle_open: a connection that asked one thing ("version") and had its
 * answer, as an idle client's is; the fd, or -1. */
static int
idle_open(uint64_t deadline)
{
    static const char ask[] = "version\r\n";
    char buf[256];
    size_t len = 0;
    int fd = tcp_connect(opt.host, opt.port, opt.timeout);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (send(fd, ask, sizeof(ask) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(ask) - 1)) { close(fd); return -1; }
    while (len < sizeof(buf) && (len == 0 || buf[len - 1] != '\n')) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        uint64_t t = now_ns();
        ssize_t n;
        if (t >= deadline || poll(&pfd, 1, (int)((deadline - t) / 1000000 + 1)) <= 0) break;
        n = recv(fd, buf + len, sizeof(buf) - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    if (len == 0 || buf[len - 1] != '\n') { close(fd); return -1; }
    return fd;
}

/* conns_mode: idle opens -c connections, says so on stdout, holds them -d
 * seconds and closes them; churn opens and closes -n connections in waves
 * of -c (each asks one thing before it closes). */
static int
conns_mode(bool churn)
{
    struct rlimit rl;
    uint64_t deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);
    uint32_t total = churn ? opt.count : (uint32_t)opt.conns, done = 0, ok = 0, waves = 0;
    int *fds = calloc((size_t)opt.conns, sizeof(int));
    if (!fds) die("%s", "out of memory");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)opt.conns + 64 ? rl.rlim_max : (rlim_t)opt.conns + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    while (done < total && now_ns() < deadline) {
        uint32_t n = 0, i, wave = total - done < (uint32_t)opt.conns ? total - done : (uint32_t)opt.conns;
        for (i = 0; i < wave; i++) {
            int fd = idle_open(deadline);
            if (fd >= 0) { fds[n++] = fd; ok++; }
        }
        done += wave;
        waves++;
        if (!churn) {
            printf("FCBENCH mode=idle conns=%d ok=%u\n", opt.conns, ok);
            fflush(stdout);
            struct timespec hold = { (time_t)opt.duration, (long)((opt.duration - (double)(time_t)opt.duration) * 1e9) };
            nanosleep(&hold, NULL);
        }
        for (i = 0; i < n; i++) close(fds[i]);
    }
    if (churn) printf("FCBENCH mode=churn conns=%u ok=%u waves=%u\n", total, ok, waves);
    free(fds);
    return ok == total ? 0 : 1;
}

static int
stats_mode(void)
{
    static struct bconn b;
    static const char *const ends[] = { "END\r\n", "ERROR\r\n", NULL };
    uint64_t deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);
    char cmd[300];
    int n;
    /* retried until the deadline, so it doubles as "wait until the server listens" */
    while (!bconn_open(&b, opt.host, opt.port, 1.0)) {
        if (now_ns() >= deadline) {
            fprintf(stderr, "fcbench: cannot connect to %s:%s\n", opt.host, opt.port);
            return 2;
        }
        usleep(20000);
    }
    n = snprintf(cmd, sizeof(cmd), "stats%s%s\r\n", *opt.stats_arg ? " " : "", opt.stats_arg);
    if (!bconn_send(&b, cmd, (size_t)n) || bconn_until(&b, ends, deadline) < 0) {
        fprintf(stderr, "fcbench: no complete stats reply\n");
        return 2;
    }
    fwrite(b.buf, 1, b.len, stdout);
    close(b.fd);
    return strncmp(b.buf + b.len - 7, "ERROR\r\n", 7) == 0 ? 1 : 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* inval_mode: for each key, make B hold it, mutate it on A, and time from A's
 * reply to the first get on B that misses. Keys not reached before the
 * --timeout deadline, or after five timeouts in a row, count as timeouts. */
static int
inval_mode(void)
{
    static struct bconn a, b;
    static const char *const ends_set[] = { "STORED\r\n", "NOT_STORED\r\n", "ERROR\r\n",
        "DELETED\r\n", "NOT_FOUND\r\n", NULL };
    static const char *const ends_get[] = { "END\r\n", "ERROR\r\n", NULL };
    uint64_t *lat = calloc(opt.count, sizeof(uint64_t));
    uint32_t i, ok = 0, timeouts = 0, errors = 0, streak = 0;
    /* --timeout bounds the whole run; one key gets at most a second */
    uint64_t end_all = now_ns() + (uint64_t)(opt.timeout * 1e9);
    double bound = opt.timeout < 1 ? opt.timeout : 1;
    char cmd[512], key[128];
    int n;
    if (!lat) die("%s", "out of memory");
    if (!bconn_open(&a, opt.host, opt.port, 5) || !bconn_open(&b, opt.peer_host, opt.peer_port, 5)) {
        fprintf(stderr, "fcbench: cannot connect to both nodes\n");
        return 2;
    }
    for (i = 0; i < opt.count && now_ns() < end_all; i++) {
        uint64_t t0, t, deadline;
        bool gone = false;
        int tries;
        snprintf(key, sizeof(key), "fcinval:%ld:%u", (long)getpid(), i);
        /* B must hold the key first; a late invalidation from an earlier
         * write may still drop it, so retry a few times */
        for (tries = 0; tries < 50; tries++) {
            deadline = now_ns() + (uint64_t)(bound * 1e9);
            n = snprintf(cmd, sizeof(cmd), "set %s 0 0 3\r\nold\r\n", key);
            if (!bconn_send(&b, cmd, (size_t)n) || bconn_until(&b, ends_set, deadline) < 0) goto broken;
            n = snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
            if (!bconn_send(&b, cmd, (size_t)n) || bconn_until(&b, ends_get, deadline) < 0) goto broken;
            if (strncmp(b.buf, "VALUE ", 6) == 0) break;
            usleep(1000);
        }
        if (tries == 50) { errors++; continue; }
        if (opt.inval_delete) n = snprintf(cmd, sizeof(cmd), "delete %s\r\n", key);
        else n = snprintf(cmd, sizeof(cmd), "set %s 0 0 3\r\nnew\r\n", key);
        deadline = now_ns() + (uint64_t)(bound * 1e9);
        if (!bconn_send(&a, cmd, (size_t)n) || bconn_until(&a, ends_set, deadline) < 0) goto broken;
        t0 = now_ns();
        n = snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
        while ((t = now_ns()) < deadline) {
            if (!bconn_send(&b, cmd, (size_t)n) || bconn_until(&b, ends_get, deadline) < 0) break;
            if (strncmp(b.buf, "END\r\n", 5) == 0) { gone = true; t = now_ns(); break; }
        }
        if (gone) {
            lat[ok++] = t - t0;
            streak = 0;
        } else {
            timeouts++;
            /* a bus that drops nothing would cost a second per key: stop */
            if (++streak == 5) { i++; break; }
        }
        usleep(200);
    }
    timeouts += opt.count - i;
    qsort(lat, ok, sizeof(uint64_t), cmp_u64);
    printf("FCBENCH mode=inval count=%u ok=%u timeouts=%u errors=%u p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
           opt.count, ok, timeouts, errors,
           ok ? (double)lat[(size_t)(0.50 * (ok - 1))] / 1000.0 : 0.0,
           ok ? (double)lat[(size_t)(0.99 * (ok - 1))] / 1000.0 : 0.0,
           ok ? (double)lat[ok - 1] / 1000.0 : 0.0);
    free(lat);
    return ok == opt.count ? 0 : 1;
broken:
    fprintf(stderr, "fcbench: a node stopped answering during the inval run\n");
    free(lat);
    return 2;
}

/* ---- command line ---- */

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: fcbench [options]\n"
        "  -s, --server HOST:PORT   server (127.0.0.1:11211)\n"
        "  -M, --mode MODE          run | load | stats | inval | idle | churn (run)\n"
        "  -c, --conns N            connections (50)\n"
        "  -T, --threads N          load-generator threads, one libev loop each (1)\n"
        "  -d, --duration SEC       measured time of a run (5, at most 3600)\n"
        "  -w, --warmup SEC         unmeasured time before it (0.5)\n"
        "  -k, --keys N             key space; load mode sets keys 0..N-1 (100000)\n"
        "      --key-base B         load mode: set keys B..B+N-1 instead (0)\n"
        "      --key-min N, --key-max N  key length range (16, 16)\n"
        "  -v, --value BYTES        value size (100)\n"
        "  -r, --ratio SET:GET      request mix (1:9)\n"
        "  -m, --multiget K         keys per get request (1, at most %d)\n"
        "  -D, --depth D            requests in flight per connection (1, at most %d)\n"
        "      --meta               meta protocol: gets as \"mg <key> v f k\" (one key each),\n"
        "                           sets as \"ms <key> <bytes> F<flags>\"\n"
        "  -P, --preload            set the whole key space before the run\n"
        "      --no-verify          check value lengths only, not content\n"
        "      --frames-only        check replies' framing and sizes only, not keys, flags\n"
        "                           or content (for tests/bench/ceiling's constant replies)\n"
        "      --max-miss FRAC      run invalid when misses exceed FRAC of keys asked (1)\n"
        "      --timeout SEC        bound on load, stats, connect and a whole inval run (120)\n"
        "      --stats-arg ARG      stats mode: e.g. slabs, settings\n"
        "      --peer HOST:PORT     inval mode: the node that must drop the key\n"
        "      --inval-op set|delete  inval mode: mutation sent to --server (set)\n"
        "  -n, --count N            inval mode: keys to time (1000); churn mode: connections\n"
        "                           opened and closed, -c at a time\n"
        "                           idle mode: opens -c connections that each ask \"version\",\n"
        "                           prints a line, holds them -d seconds, closes them\n"
        "      --seed N             random seed\n"
        "      --two-tier HOST:PORT run mode: a get that misses asks this second tier and\n"
        "                           sets a hit back (noreply), as an application running\n"
        "                           two cache tiers itself would (-m 1 -D 1 -r 0:1 only,\n"
        "                           without --meta)\n"
        "      --l1-ttl SEC         --two-tier: expiry of the copies set back (0)\n"
        "Prints one line: FCBENCH key=value ... (valid=1 when every reply checked out).\n"
        "Exit 0 when valid, 1 when not, 2 when the run could not start.\n",
        MAX_MULTIGET, MAX_DEPTH);
}

static void
split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= hlen || strlen(colon + 1) >= plen || !colon[1])
        die("expected HOST:PORT, got '%s'", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    strcpy(port, colon + 1);
}

static uint32_t
arg_u32(const char *s, uint32_t lo, uint32_t hi)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) die("number out of range: '%s'", s);
    return (uint32_t)v;
}

static double
arg_sec(const char *s, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= 0) || v > hi) die("seconds out of range: '%s'", s);
    return v;
}

int
main(int argc, char **argv)
{
    enum { O_KEYMIN = 256, O_KEYMAX, O_NOVERIFY, O_TIMEOUT, O_STATSARG, O_PEER, O_INVALOP, O_SEED, O_MAXMISS, O_META,
           O_TWOTIER, O_L1TTL, O_FRAMES, O_KEYBASE };
    static const struct option longs[] = {
        {"server", 1, 0, 's'}, {"mode", 1, 0, 'M'}, {"conns", 1, 0, 'c'},
        {"threads", 1, 0, 'T'}, {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'},
        {"keys", 1, 0, 'k'}, {"key-min", 1, 0, O_KEYMIN}, {"key-max", 1, 0, O_KEYMAX},
        {"value", 1, 0, 'v'}, {"ratio", 1, 0, 'r'}, {"multiget", 1, 0, 'm'},
        {"depth", 1, 0, 'D'}, {"preload", 0, 0, 'P'}, {"no-verify", 0, 0, O_NOVERIFY},
        {"timeout", 1, 0, O_TIMEOUT}, {"stats-arg", 1, 0, O_STATSARG}, {"peer", 1, 0, O_PEER},
        {"inval-op", 1, 0, O_INVALOP}, {"count", 1, 0, 'n'}, {"seed", 1, 0, O_SEED}, {"max-miss", 1, 0, O_MAXMISS},
        {"meta", 0, 0, O_META}, {"frames-only", 0, 0, O_FRAMES}, {"key-base", 1, 0, O_KEYBASE},
        {"two-tier", 1, 0, O_TWOTIER}, {"l1-ttl", 1, 0, O_L1TTL},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0},
    };
    bool have_peer = false;
    uint32_t i;
    int ch, rc;
    while ((ch = getopt_long(argc, argv, "s:M:c:T:d:w:k:v:r:m:D:Pn:h", longs, NULL)) != -1) {
        switch (ch) {
        case 's': split_hostport(optarg, opt.host, sizeof(opt.host), opt.port, sizeof(opt.port)); break;
        case 'M':
            if (!strcmp(optarg, "run")) opt.mode = MODE_RUN;
            else if (!strcmp(optarg, "load")) opt.mode = MODE_LOAD;
            else if (!strcmp(optarg, "stats")) opt.mode = MODE_STATS;
            else if (!strcmp(optarg, "inval")) opt.mode = MODE_INVAL;
            else if (!strcmp(optarg, "idle")) opt.mode = MODE_IDLE;
            else if (!strcmp(optarg, "churn")) opt.mode = MODE_CHURN;
            else die("unknown mode '%s'", optarg);
            break;
        case 'c': opt.conns = (int)arg_u32(optarg, 1, 10000); break;
        case 'T': opt.threads = (int)arg_u32(optarg, 1, 64); break;
        case 'd': opt.duration = arg_sec(optarg, MAX_DURATION); break;
        case 'w': opt.warmup = arg_sec(optarg, 60); break;
        case 'k': opt.keys = arg_u32(optarg, 1, 1000000000u); break;
        case O_KEYMIN: opt.key_min = arg_u32(optarg, 1, 250); break;
        case O_KEYMAX: opt.key_max = arg_u32(optarg, 1, 250); break;
        case 'v': opt.value = arg_u32(optarg, 1, MAX_VALUE); break;
        case 'r': {
            char *colon = strchr(optarg, ':');
            if (!colon) die("expected SET:GET, got '%s'", optarg);
            *colon = '\0';
            opt.ratio_set = arg_u32(optarg, 0, 1000000);
            opt.ratio_get = arg_u32(colon + 1, 0, 1000000);
            if (opt.ratio_set + opt.ratio_get == 0) die("%s", "ratio 0:0");
            break;
        }
        case 'm': opt.multiget = arg_u32(optarg, 1, MAX_MULTIGET); break;
        case 'D': opt.depth = arg_u32(optarg, 1, MAX_DEPTH); break;
        case 'P': opt.preload = true; break;
        case O_NOVERIFY: opt.verify = false; break;
        case O_TIMEOUT: opt.timeout = arg_sec(optarg, MAX_DURATION); break;
        case O_STATSARG: opt.stats_arg = optarg; break;
        case O_PEER:
            split_hostport(optarg, opt.peer_host, sizeof(opt.peer_host), opt.peer_port, sizeof(opt.peer_port));
            have_peer = true;
            break;
        case O_INVALOP:
            if (!strcmp(optarg, "set")) opt.inval_delete = false;
            else if (!strcmp(optarg, "delete")) opt.inval_delete = true;
            else die("unknown inval op '%s'", optarg);
            break;
        case 'n': opt.count = arg_u32(optarg, 1, 10000000); break;
        case O_SEED: opt.seed = arg_u32(optarg, 0, UINT32_MAX) * 0x9e3779b97f4a7c15ull + 1; break;
        case O_MAXMISS: opt.max_miss = arg_sec(optarg, 1.0); break;
        case O_META: opt.meta = true; break;
        case O_FRAMES: opt.frames_only = true; opt.verify = false; break;
        case O_KEYBASE: opt.key_base = arg_u32(optarg, 0, 1000000000u); break;
        case O_TWOTIER:
            split_hostport(optarg, opt.tier_host, sizeof(opt.tier_host), opt.tier_port, sizeof(opt.tier_port));
            break;
        case O_L1TTL: opt.l1_ttl = arg_u32(optarg, 0, 2592000); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) { usage(stderr); return 2; }
    if (opt.meta && opt.multiget > 1) die("%s", "--meta asks one key per mg: no --multiget");
    if (opt.key_max < opt.key_min) opt.key_max = opt.key_min;
    if (opt.timeout <= 0) opt.timeout = 1;
    signal(SIGPIPE, SIG_IGN);
    if (opt.mode == MODE_STATS) return stats_mode();
    if (opt.mode == MODE_IDLE || opt.mode == MODE_CHURN) return conns_mode(opt.mode == MODE_CHURN);
    if (opt.mode == MODE_INVAL) {
        if (!have_peer) die("%s", "inval mode needs --peer HOST:PORT");
        return inval_mode();
    }
    if (opt.threads > opt.conns) opt.threads = opt.conns;
    {
        struct rlimit rl;
        rlim_t need = (rlim_t)opt.conns * 2 + 64;  /* --two-tier: two sockets each */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
            rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    if (opt.tier_host[0] && (opt.multiget != 1 || opt.depth != 1 || opt.ratio_set != 0 || opt.meta))
        die("%s", "--two-tier takes -m 1 -D 1 -r 0:1, without --meta");
    pattern = malloc(opt.value);
    if (!pattern) die("%s", "out of memory");
    for (i = 0; i < opt.value; i++) pattern[i] = (char)('a' + i % 26);
    if (opt.mode == MODE_LOAD) return run_phase(MODE_LOAD);
    if (opt.preload) {
        uint32_t depth = opt.depth, mg = opt.multiget;
        opt.depth = 32;
        opt.multiget = 1;
        rc = run_phase(MODE_LOAD);
        opt.depth = depth;
        opt.multiget = mg;
        if (rc != 0) return rc;
    }
    return run_phase(MODE_RUN);
}
