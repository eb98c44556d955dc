/* conn_harness: one client connection, end to end, on a byte buffer. A real
 * conn (net/conn.c) serves one end of a socketpair on a worker's libev loop
 * run by this thread; the harness writes the input into the other end in
 * pieces, drains the replies and finally closes its end, then runs the loop
 * until the connection is gone. Everything between the socket and the cache
 * is the server's own code: read buffering, the parser, cmd_dispatch, data
 * blocks split across reads, back-pressure, replies out of item memory.
 *
 * The first input byte chooses the set-up (so the fuzzer can steer it):
 *   bits 0-1  how the input is cut into writes: whole, 1-16 bytes,
 *             1-4096 bytes, at every '\n'
 *   bits 2-3  -R requests per event: 20, 1, 3, 1000
 *   bit  4    -I 4k (item_max 4 KiB)
 *   bit  5    -M with -m 2 (no eviction, small memory)
 *   bit  6    -C (no CAS)
 *   bit  7    slab_chunk_max 2 KiB, so values of a few KiB are large items
 * After each input: the connection must be gone and counted out, every item
 * reference released, and cache_verify must pass. A fresh cache per input
 * keeps runs independent. */
#ifndef FLEETCACHE_FUZZ_CONN_HARNESS_H
#define FLEETCACHE_FUZZ_CONN_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/cache.h"
#include "net/conn.h"
#include "src/clock.h"
#include "src/log.h"

/* Loop passes without progress before the harness calls it a hang. */
#define FUZZ_STUCK_PASSES 10000

static struct net_shared fz_shared;
static struct worker fz_worker;

static void
fz_die(const char *why)
{
    fprintf(stderr, "fuzz harness: %s\n", why);
    abort();
}

/* A publishing hook that checks what net/ hands the bus: a key of 1..250
 * readable bytes (ASan catches a view into freed memory). */
static volatile unsigned char fz_sink;

static void
fz_on_invalidate(const char *key, size_t nkey, bool has_hash, uint64_t hash)
{
    (void)has_hash;
    (void)hash;
    if (nkey == 0 || nkey > CACHE_KEY_MAX)
        fz_die("published a key of impossible length");
    for (size_t i = 0; i < nkey; i++)
        fz_sink ^= (unsigned char)key[i];
}

static void
fz_on_flush(int64_t delay)
{
    (void)delay;
}

static void
fz_conn_init(void)
{
    clock_setup();
    log_setup(LOG_ERROR);
    net_options_default(&fz_shared.opts); /* the server's defaults (-A off: no shutdown) */
    fz_shared.opts.threads = 1;
    fz_shared.opts.track_sizes = true;
    fz_shared.opts.version = "fuzz";
    fz_shared.opts.on_invalidate = fz_on_invalidate;
    fz_shared.opts.on_flush = fz_on_flush;
    fz_shared.started = time(NULL);
    pthread_mutex_init(&fz_shared.reset_lock, NULL);
    fz_shared.workers = &fz_worker;
    fz_shared.nworkers = 1;
    fz_worker.shared = &fz_shared;
    fz_worker.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (fz_worker.loop == NULL)
        fz_die("ev_loop_new");
    fz_worker.deadline_fd = -1;
    pthread_mutex_init(&fz_worker.queue_lock, NULL);
    pthread_mutex_init(&fz_worker.conns_lock, NULL);
}

static void
fz_cache_start(uint8_t cfg)
{
    struct cache_options o;
    cache_options_default(&o);
    o.mem_limit = (cfg & 0x20) ? 2u << 20 : 16u << 20;
    o.evict = !(cfg & 0x20);
    o.use_cas = !(cfg & 0x40);
    if (cfg & 0x10)
        o.item_max = 4096;
    if (cfg & 0x80)
        o.slab_chunk_max = 2048;
    o.hashpower = 10;
    o.lru_crawler = o.lru_maintainer = false; /* runs stay reproducible */
    char err[160];
    if (!cache_setup(&o, err, sizeof(err)))
        fz_die(err);
}

static unsigned
fz_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Size of the next write of the input at p (n bytes left). */
static size_t
fz_piece(unsigned mode, uint32_t *seed, const uint8_t *p, size_t n)
{
    size_t want;
    switch (mode) {
    case 0:
        want = n;
        break;
    case 1:
        want = 1 + fz_rand(seed) % 16;
        break;
    case 2:
        want = 1 + fz_rand(seed) % 4096;
        break;
    default: {
        const uint8_t *nl = memchr(p, '\n', n);
        want = nl ? (size_t)(nl - p) + 1 : n;
        break;
    }
    }
    return want < n ? want : n;
}

/* Plays data (after the set-up byte) on one connection; returns the reply
 * bytes seen. */
static size_t
fz_conn_play(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const unsigned reqs[4] = { 20, 1, 3, 1000 };
    uint8_t cfg = data[0];
    data++;
    size--;
    uint32_t seed = cfg * 2654435761u + (uint32_t)size;
    fz_shared.opts.reqs_per_event = reqs[(cfg >> 2) & 3];
    log_setup(LOG_ERROR); /* an input may have said "verbosity 2" */
    fz_cache_start(cfg);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        fz_die("socketpair");
    atomic_store(&fz_shared.curr_conns, 1); /* the acceptor's count, given back by conn_destroy */
    if (!conn_create(&fz_worker, sv[0], "unix:/fuzz"))
        fz_die("conn_create");

    size_t off = 0, replies = 0, pending = 0;
    bool closed = false;
    unsigned stuck = 0;
    char sink[65536];
    while (fz_worker.nconns > 0) {
        bool progress = false;
        if (!closed) {
            if (pending == 0 && off < size)
                pending = fz_piece(cfg & 3, &seed, data + off, size - off);
            if (pending > 0) {
                ssize_t w = send(sv[1], data + off, pending, MSG_NOSIGNAL);
                if (w > 0) {
                    off += (size_t)w;
                    pending -= (size_t)w;
                    progress = true;
                } else if (w < 0 && errno != EAGAIN) {
                    /* The server closed on us (quit, junk, line too long). */
                    closed = true;
                    shutdown(sv[1], SHUT_WR);
                }
            }
            if (!closed && off == size) {
                closed = true;
                shutdown(sv[1], SHUT_WR);
                progress = true;
            }
        }
        ev_run(fz_worker.loop, EVRUN_NOWAIT);
        /* "verbosity 2" logs every command after it: let it for the rest of
         * one pass, not of the input (writes to stderr are slow). */
        log_setup(LOG_ERROR);
        for (;;) {
            ssize_t r = recv(sv[1], sink, sizeof(sink), 0);
            if (r <= 0)
                break;
            replies += (size_t)r;
            progress = true;
        }
        stuck = progress ? 0 : stuck + 1;
        if (stuck > FUZZ_STUCK_PASSES)
            fz_die("the connection neither reads, writes nor closes");
    }
    close(sv[1]);
    if (atomic_load(&fz_shared.curr_conns) != 0)
        fz_die("curr_conns did not return to zero");
    char err[256];
    if (!cache_verify(err, sizeof(err))) /* also: no reference left behind */
        fz_die(err);
    cache_teardown();
    return replies;
}

/* A whole target on one connection: a file holding only
 *     #include "conn_harness.h"
 *     FUZZ_CONN_TARGET()
 * is a target (its seeds in corpus/NAME/ steer it: meta commands, say). */
#define FUZZ_CONN_TARGET()                                          \
    int LLVMFuzzerInitialize(int *argc, char ***argv);              \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);   \
    int LLVMFuzzerInitialize(int *argc, char ***argv)               \
    {                                                               \
        (void)argc;                                                 \
        (void)argv;                                                 \
        fz_conn_init();                                             \
        return 0;                                                   \
    }                                                               \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)    \
    {                                                               \
        fz_conn_play(data, size);                                   \
        return 0;                                                   \
    }

#endif
