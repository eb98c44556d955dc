/* Tests for bus/bus.c, send.c, receive.c and loop.c: the real bus thread
 * and the real cache, against a fake peer (a UDP socket in the test) on
 * loopback unicast. Every wait is a poll with a deadline. */
#include "bus/bus.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/crypto.h"
#include "bus/wire.h"
#include "cache/cache.h"
#include "src/clock.h"

#define PEER_ID 777
#define PEER_EPOCH 5000

static int fp = -1;                     /* the fake peer's socket */
static struct sockaddr_in bus_addr;     /* where the bus listens */
static uint8_t peer_key[BUS_KEY_SIZE];
static bool sealed;
static uint64_t peer_ctl_seq;

static int64_t
ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint16_t
free_udp_port(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

static uint32_t flush_delay_us = 300;
static uint32_t forget_ms;              /* 0: the bus's default */
static uint32_t nack_interval_ms;       /* 0: the bus's default */
static uint32_t peer_timeout_ms = 600;
static uint32_t announce_window_ms = 2000;
/* Off unless a test is about it: the repeat of a burst's last datagram
 * would otherwise be one more DATA datagram for every test to skip. */
static bool tail_repeat;
static uint32_t ration_us, repair_window_ms; /* 0: the bus's defaults */
static bool sync_mode;
static uint32_t lease_ms = 100;

static void
start(const char *key_file, uint32_t ring_size)
{
    char err[256] = "";
    clock_setup();
    struct cache_options co;
    cache_options_default(&co);
    co.mem_limit = 16 << 20;
    co.hashpower = 10;
    co.manual = true;
    cr_assert(cache_setup(&co, err, sizeof(err)), "%s", err);

    fp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fp, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fp, (struct sockaddr *)&a, &l);

    char listen[32], peers[32];
    uint16_t port = free_udp_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(peers, sizeof(peers), "127.0.0.1:%u", ntohs(a.sin_port));
    cr_assert(inet_pton(AF_INET, "127.0.0.1", &bus_addr.sin_addr) == 1);
    bus_addr.sin_family = AF_INET;
    bus_addr.sin_port = htons(port);

    struct bus_options o;
    bus_options_default(&o);
    o.listen = listen;
    o.peers = peers;
    o.key_file = (char *)key_file; /* read only; the test owns it */
    o.insecure = key_file == NULL;
    o.heartbeat_ms = 50;
    o.repair_deadline_ms = 200;
    o.peer_timeout_ms = peer_timeout_ms;
    o.ring_size = ring_size;
    o.flush_delay_us = flush_delay_us;
    o.forget_ms = forget_ms;
    o.nack_interval_ms = nack_interval_ms;
    o.announce_window_ms = announce_window_ms;
    o.sync = sync_mode;
    o.lease_ms = lease_ms;
    o.no_tail_repeat = !tail_repeat;
    o.ration_us = ration_us;
    o.repair_window_ms = repair_window_ms;
    cr_assert(bus_setup(&o, err, sizeof(err)), "bus_setup: %s", err);
    cr_assert_not(bus_setup(&o, err, sizeof(err)), "a second bus_setup must refuse");
    peer_ctl_seq = 0;
}

static void
start_plain(void)
{
    sealed = false;
    start(NULL, 0);
}

/* A flush delay long enough to tell "at once" from "after the delay". */
static void
start_slow(void)
{
    sealed = false;
    flush_delay_us = 1000000;
    start(NULL, 0);
}

static void
stop(void)
{
    bus_teardown();
    cache_teardown();
    if (fp >= 0)
        close(fp);
    fp = -1;
}

static uint64_t
statv(const char *name);
static bool
wait_stat(const char *name, uint64_t at_least, int ms);

/* --- the fake peer ------------------------------------------------------- */

static void
send_raw(const uint8_t *d, size_t n)
{
    cr_assert_eq(sendto(fp, d, n, 0, (struct sockaddr *)&bus_addr, sizeof(bus_addr)), (ssize_t)n);
}

static size_t
frame(uint8_t type, uint32_t node, uint64_t epoch, uint64_t seq, const uint8_t *p, size_t plen,
      uint8_t *out)
{
    struct wire_header h = {.type = type, .node_id = node, .epoch = epoch, .seq = seq};
    return bus_crypto_frame(sealed ? peer_key : NULL, &h, p, plen, out, WIRE_DATAGRAM_MAX);
}

/* DATA from the fake peer: "key" drops unconditionally, "key=hash" with a hash. */
static void
send_data_from(uint32_t node, uint64_t epoch, uint64_t seq, const char *const *keys, size_t n)
{
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    size_t plen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(keys[i], '=');
        size_t nkey = eq ? (size_t)(eq - keys[i]) : strlen(keys[i]);
        uint64_t hash = eq ? strtoull(eq + 1, NULL, 10) : 0;
        cr_assert(wire_put_invalidate(p, sizeof(p), &plen, keys[i], nkey, eq != NULL, hash));
    }
    send_raw(d, frame(WIRE_DATA, node, epoch, seq, p, plen, d));
}

static void
send_data(uint64_t seq, const char *const *keys, size_t n)
{
    send_data_from(PEER_ID, PEER_EPOCH, seq, keys, n);
}

static size_t
heartbeat_from(uint64_t epoch, uint64_t ctl_seq, uint64_t last, bool leaving, uint8_t *d)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    struct wire_heartbeat hb = {.last_seq = last, .leaving = leaving};
    size_t plen = wire_put_heartbeat(p, &hb);
    return frame(WIRE_HEARTBEAT, PEER_ID, epoch, ctl_seq, p, plen, d);
}

static void
send_heartbeat(uint64_t last, bool leaving)
{
    uint8_t d[WIRE_DATAGRAM_MAX];
    send_raw(d, heartbeat_from(PEER_EPOCH, ++peer_ctl_seq, last, leaving, d));
}

/* A heartbeat from another peer: the bus reads one socket in order, so once
 * it is counted, everything sent before it has been handled. It makes
 * checks right after a datagram independent of new counters and of any
 * peer timeout. */
static void
sync_bus(void)
{
    static uint64_t ctl;
    uint64_t before = statv("heartbeats_received");
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    struct wire_heartbeat hb = {.last_seq = 0};
    size_t plen = wire_put_heartbeat(p, &hb);
    send_raw(d, frame(WIRE_HEARTBEAT, PEER_ID + 1, PEER_EPOCH, ++ctl, p, plen, d));
    cr_assert(wait_stat("heartbeats_received", before + 1, 2000));
}

/* The wall clock in microseconds: what a node just booted takes as epoch. */
static uint64_t
wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static void
send_nack(uint64_t first, uint32_t count)
{
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    struct wire_nack n = {.target = bus_node_id(), .epoch = 0, .n = 1,
                          .r = {{.first = first, .count = count}}};
    n.epoch = statv("epoch"); /* the bus's own epoch */
    size_t plen = wire_put_nack(p, &n);
    send_raw(d, frame(WIRE_NACK, PEER_ID, PEER_EPOCH, ++peer_ctl_seq, p, plen, d));
}

struct got {
    struct wire_header h;
    uint8_t raw[WIRE_DATAGRAM_MAX];
    size_t rawlen;
    uint8_t payload[WIRE_PAYLOAD_MAX];
};

/* Set by a test to play a worker gone idle: recv_type stops polling. */
static bool publisher_idle;

/* Waits up to ms for a datagram of type (0: any) from the bus; false on
 * timeout. The test thread publishes, so like a worker it must also call
 * bus_publish_poll between waits, within the time it asks for. */
static bool
recv_type(uint8_t type, int ms, struct got *g)
{
    int64_t deadline = ms_now() + ms;
    while (ms_now() < deadline) {
        int64_t due_us = publisher_idle ? -1 : bus_publish_poll();
        int wait = (int)(deadline - ms_now());
        if (due_us >= 0 && due_us / 1000 + 1 < wait)
            wait = (int)(due_us / 1000 + 1);
        struct pollfd pfd = {.fd = fp, .events = POLLIN};
        if (poll(&pfd, 1, wait) != 1)
            continue;
        ssize_t n = recv(fp, g->raw, sizeof(g->raw), 0);
        cr_assert_gt(n, 0);
        g->rawlen = (size_t)n;
        cr_assert_eq(wire_header_decode(g->raw, g->rawlen, &g->h), WIRE_OK);
        const uint8_t *p;
        cr_assert(bus_crypto_open(sealed ? peer_key : NULL, &g->h, g->raw, g->rawlen, g->payload, &p));
        if (p != g->payload)
            memcpy(g->payload, p, g->h.plen);
        if (type == 0 || g->h.type == type)
            return true;
    }
    return false;
}

/* --- stats ----------------------------------------------------------------- */

struct find {
    const char *name;
    uint64_t value;
    bool found;
};

static void
find_stat(const char *name, const char *value, void *ctx)
{
    struct find *f = ctx;
    if (strcmp(name, f->name) == 0) {
        f->value = strtoull(value, NULL, 10);
        f->found = true;
    }
}

static uint64_t
statv(const char *name)
{
    struct find f = {.name = name};
    bus_stats(find_stat, &f);
    cr_assert(f.found, "no stat %s", name);
    return f.value;
}

static bool
wait_stat(const char *name, uint64_t at_least, int ms)
{
    int64_t deadline = ms_now() + ms;
    do {
        if (statv(name) >= at_least)
            return true;
        usleep(2000);
    } while (ms_now() < deadline);
    return false;
}

/* For absence checks ("nothing was announced"): the next DATA datagram this
 * node sends after publishing a probe key must hold the probe alone; an
 * announcement queued before would be in it or in a datagram before it. A
 * check that no datagram arrives within some milliseconds passes on a slow
 * machine whatever the bus was about to send. */
static void
expect_nothing_sent_before_a_probe(void)
{
    bus_publish_invalidate("probe", 5, false, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g), "the probe never went out");
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(g.payload, g.h.plen, &off, &r), WIRE_OK);
    cr_assert(r.nkey == 5 && memcmp(r.key, "probe", 5) == 0, "sent %.*s before the probe",
              (int)r.nkey, r.key);
    cr_assert_eq(off, g.h.plen, "more than the probe in its datagram");
}

/* --- cache helpers ------------------------------------------------------------ */

static void
store(const char *key, const char *value)
{
    struct item *it = NULL;
    size_t vlen = strlen(value);
    cr_assert_eq(cache_alloc(&it, key, strlen(key), 0, 0, (uint32_t)vlen), CACHE_OK);
    memcpy(item_value(it), value, vlen);
    memcpy(item_value(it) + vlen, "\r\n", 2);
    cr_assert_eq(cache_store(it, CACHE_SET, 0, NULL), CACHE_OK);
    cache_release(&it);
}

static bool
has(const char *key)
{
    struct item *it = cache_get(key, strlen(key));
    bool yes = it != NULL;
    cache_release(&it);
    return yes;
}

static char *
hash_of(const char *value, char *buf, size_t len)
{
    snprintf(buf, len, "%llu", (unsigned long long)cache_value_hash(value, strlen(value), 0));
    return buf;
}

TestSuite(bus, .init = start_plain, .fini = stop, .timeout = 20);

/* --- publishing -------------------------------------------------------------------- */

Test(bus, publishes_keys_batched_and_deduplicated)
{
    bus_publish_invalidate("a", 1, true, 1);
    bus_publish_invalidate("b", 1, false, 0);
    bus_publish_invalidate("a", 1, true, 2);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert_eq(g.h.seq, 1);
    cr_assert_eq(g.h.node_id, bus_node_id());
    unsigned n;
    cr_assert_eq(wire_check_data(g.payload, g.h.plen, &n), WIRE_OK);
    cr_assert_eq(n, 2);
    size_t off = 0;
    struct wire_record r;
    wire_next_record(g.payload, g.h.plen, &off, &r);
    cr_assert(r.nkey == 1 && r.key[0] == 'a' && r.has_hash && r.hash == 2);
    cr_assert_eq(statv("keys_published"), 3);
    cr_assert_eq(statv("keys_merged"), 1);
    cr_assert_eq(statv("batches_sent"), 1);
    cr_assert_eq(statv("keys_sent"), 2);
}

Test(bus, many_keys_split_into_datagrams_under_the_limit)
{
    for (int i = 0; i < 500; i++) {
        char key[64];
        int n = snprintf(key, sizeof(key), "some:longish:key:number:%06d", i);
        bus_publish_invalidate(key, (size_t)n, true, (uint64_t)i);
    }
    unsigned keys = 0, datagrams = 0;
    struct got g;
    while (keys < 500 && recv_type(WIRE_DATA, 2000, &g)) {
        unsigned n;
        cr_assert_leq(g.rawlen, WIRE_DATAGRAM_MAX);
        cr_assert_eq(g.h.seq, datagrams + 1);
        cr_assert_eq(wire_check_data(g.payload, g.h.plen, &n), WIRE_OK);
        keys += n;
        datagrams++;
    }
    cr_assert_eq(keys, 500);
    cr_assert_lt(datagrams, 20, "%u datagrams for 500 keys", datagrams);
}

Test(bus, heartbeats_carry_the_last_seq)
{
    bus_publish_invalidate("k", 1, false, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert(recv_type(WIRE_HEARTBEAT, 2000, &g));
    struct wire_heartbeat hb;
    cr_assert_eq(wire_get_heartbeat(g.payload, g.h.plen, &hb), WIRE_OK);
    cr_assert_eq(hb.last_seq, 1);
    cr_assert_not(hb.leaving);
}

static void
start_repeating(void)
{
    tail_repeat = true;
    start_plain();
}

/* After a burst, silence: its last datagram goes again, byte for byte (a
 * receiver that lost it alone gets it without asking), then heartbeats
 * say how far the burst went. */
Test(bus_tail, a_bursts_last_datagram_is_repeated_then_heartbeats_follow,
     .init = start_repeating, .fini = stop, .timeout = 20)
{
    bus_publish_invalidate("k", 1, false, 0);
    struct got first, g;
    cr_assert(recv_type(WIRE_DATA, 2000, &first));
    /* The bus thread's start-up heartbeat may come before or after. */
    cr_assert(recv_type(WIRE_DATA, 2000, &g), "no repeat: repeats %lu hb %lu batches %lu", (unsigned long)statv("tail_repeats"), (unsigned long)statv("heartbeats_sent"), (unsigned long)statv("batches_sent"));
    cr_assert_eq(g.rawlen, first.rawlen);
    cr_assert_eq(memcmp(g.raw, first.raw, g.rawlen), 0, "a repeat is the same bytes");
    cr_assert(recv_type(0, 2000, &g));
    cr_assert_eq(g.h.type, WIRE_HEARTBEAT);
    struct wire_heartbeat hb;
    cr_assert_eq(wire_get_heartbeat(g.payload, g.h.plen, &hb), WIRE_OK);
    cr_assert_eq(hb.last_seq, 1);
    cr_assert_eq(statv("tail_repeats"), 1);
    cr_assert_eq(statv("batches_sent"), 1, "a repeat is not a new batch");
}

Test(bus, publishes_flush_all)
{
    bus_publish_flush(0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(g.payload, g.h.plen, &off, &r), WIRE_OK);
    cr_assert_eq(r.op, WIRE_OP_FLUSH);
}

/* --- applying a peer's datagrams ------------------------------------------------ */

Test(bus, a_peer_change_drops_the_local_copy)
{
    char h[32];
    store("k", "old");
    store("other", "x");
    const char *keys[] = {"k"};
    char kh[64];
    snprintf(kh, sizeof(kh), "k=%s", hash_of("new", h, sizeof(h)));
    keys[0] = kh;
    send_data(1, keys, 1);
    cr_assert(wait_stat("keys_dropped", 1, 2000));
    cr_assert_not(has("k"));
    cr_assert(has("other"));
}

Test(bus, a_peer_fill_with_the_same_value_keeps_the_copy)
{
    char h[32], kh[64];
    store("k", "same");
    snprintf(kh, sizeof(kh), "k=%s", hash_of("same", h, sizeof(h)));
    const char *keys[] = {kh};
    send_data(1, keys, 1);
    cr_assert(wait_stat("keys_kept", 1, 2000));
    sync_bus();
    cr_assert(has("k"));
    cr_assert_eq(statv("announces"), 0);
}

Test(bus, a_peer_delete_drops_unconditionally_and_misses_are_counted)
{
    store("k", "v");
    const char *keys[] = {"k", "absent"};
    send_data(1, keys, 2);
    cr_assert(wait_stat("keys_received", 2, 2000));
    cr_assert_not(has("k"));
    cr_assert_eq(statv("keys_missed"), 1);
}

/* DATA at a given header version holding one STALE record for key. */
static void
send_stale(uint64_t seq, uint8_t version, const char *key, bool has_exptime, int64_t exptime)
{
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    size_t plen = 0;
    cr_assert(wire_put_stale(p, sizeof(p), &plen, key, strlen(key), has_exptime, exptime));
    struct wire_header h = {.version = version, .type = WIRE_DATA, .node_id = PEER_ID,
                            .epoch = PEER_EPOCH, .seq = seq};
    send_raw(d, bus_crypto_frame(sealed ? peer_key : NULL, &h, p, plen, d, WIRE_DATAGRAM_MAX));
}

static bool
is_stale(const char *key)
{
    struct item *it = cache_peek(key, strlen(key), NULL);
    bool yes = it != NULL && item_stale(it);
    cache_release(&it);
    return yes;
}

Test(bus, a_peer_stale_mark_keeps_the_copy_and_marks_it)
{
    store("k", "v");
    send_stale(1, 2, "k", true, 30);
    cr_assert(wait_stat("keys_staled", 1, 2000));
    cr_assert(has("k"), "a stale mark keeps the value");
    cr_assert(is_stale("k"));
    struct item *it = cache_peek("k", 1, NULL);
    cr_assert_eq(item_ttl(it), 30);
    cache_release(&it);
    send_stale(2, 2, "absent", false, 0);
    cr_assert(wait_stat("keys_missed", 1, 2000));
    cr_assert_eq(statv("keys_dropped"), 0);
}

/* A record newer than its datagram's version cannot be read as the sender
 * meant it: the datagram is followed (no hole) and applied as a flush. */
Test(bus, a_stale_record_in_a_version_1_datagram_is_unreadable_and_flushes)
{
    store("k", "v");
    send_stale(1, 1, "k", false, 0);
    sync_bus();
    cr_assert_eq(statv("flush_unreadable"), 1);
    cr_assert_eq(statv("malformed"), 0);
    cr_assert_eq(statv("keys_received"), 0);
    cr_assert_not(has("k"), "flushed");
    cr_assert_eq(statv("peer:777:acked"), 1, "followed: no hole to repair");
}

/* A datagram of a version newer than ours: control is ignored, DATA is
 * followed and applied as a flush. */
Test(bus, a_newer_versions_data_flushes_and_its_control_is_ignored)
{
    store("k", "v");
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    size_t plen = 0;
    cr_assert(wire_put_invalidate(p, sizeof(p), &plen, "other", 5, false, 0));
    struct wire_header h = {.version = WIRE_VERSION + 1, .type = 77, .node_id = PEER_ID,
                            .epoch = PEER_EPOCH, .seq = 1};
    send_raw(d, bus_crypto_frame(NULL, &h, p, plen, d, sizeof(d)));
    sync_bus();
    cr_assert_eq(statv("newer_version"), 1);
    cr_assert(has("k"), "a control datagram of a newer version changed something");
    h.type = WIRE_DATA;
    send_raw(d, bus_crypto_frame(NULL, &h, p, plen, d, sizeof(d)));
    sync_bus();
    cr_assert_eq(statv("newer_version"), 2);
    cr_assert_eq(statv("flush_unreadable"), 1);
    cr_assert_not(has("k"));
}

Test(bus, a_stale_mark_goes_out_at_version_2_and_keys_at_version_1)
{
    struct got g;
    bus_publish_stale("k", 1, true, 60);
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert_eq(g.h.version, 2);
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(g.payload, g.h.plen, &off, &r), WIRE_OK);
    cr_assert_eq(r.op, WIRE_OP_STALE);
    cr_assert(r.has_exptime);
    cr_assert_eq(r.exptime, 60);
    cr_assert_eq(off, g.h.plen);
    bus_publish_invalidate("k", 1, false, 0);
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert_eq(g.h.version, 1, "a datagram without stale marks stays readable by old nodes");
}

Test(bus, a_peer_flush_all_flushes)
{
    store("k", "v");
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    size_t plen = 0;
    wire_put_flush(p, sizeof(p), &plen, 0);
    send_raw(d, frame(WIRE_DATA, PEER_ID, PEER_EPOCH, 1, p, plen, d));
    cr_assert(wait_stat("flushes_received", 1, 2000));
    cr_assert_not(has("k"));
}

Test(bus, its_own_datagrams_are_ignored)
{
    store("k", "v");
    const char *keys[] = {"k"};
    send_data_from(bus_node_id(), statv("epoch"), 1, keys, 1);
    cr_assert(wait_stat("own_ignored", 1, 2000));
    cr_assert(has("k"));
    cr_assert_eq(statv("duplicate_id"), 0);
}

/* Same id, another epoch: another node copied our --bus-node-id. Its
 * invalidations cannot be followed, so each of its datagrams flushes us. */
Test(bus, another_node_with_our_id_is_counted_and_flushes_us)
{
    store("k", "v");
    const char *keys[] = {"unrelated"};
    send_data_from(bus_node_id(), PEER_EPOCH, 1, keys, 1);
    cr_assert(wait_stat("duplicate_id", 1, 2000));
    cr_assert_not(has("k"), "a node we cannot follow left our copies in place");
    cr_assert_eq(statv("flush_duplicate_id"), 1);
    cr_assert_eq(statv("own_ignored"), 0);
    cr_assert_eq(statv("peers"), 0, "a twin of ours is no peer");
}

Test(bus, duplicates_in_the_life_we_follow_are_replays)
{
    const char *keys[] = {"x"};
    send_data(1, keys, 1);
    send_data(1, keys, 1);
    cr_assert(wait_stat("replays", 1, 2000));
    cr_assert_eq(statv("unrepairable_flushes"), 0);
}

/* An older life, unknown to us, that did not boot lately: a replay, or a
 * long-running node sharing the id. Refused, and since it may be the
 * latter, it flushes us; the same datagram again is only a replay. */
Test(bus, an_old_unknown_epoch_is_refused_and_flushes_once_per_datagram)
{
    const char *keys[] = {"x"};
    send_data(1, keys, 1);
    cr_assert(wait_stat("keys_received", 1, 2000));
    store("other", "v");
    const char *kk[] = {"k"};
    send_data_from(PEER_ID, PEER_EPOCH - 1, 2, kk, 1);
    sync_bus();
    cr_assert_not(has("other"), "a refused datagram left our copies in place");
    cr_assert_eq(statv("stale_epoch"), 1);
    cr_assert_eq(statv("flush_stale_epoch"), 1);
    cr_assert_eq(statv("keys_received"), 1, "a refused datagram was applied");
    store("other", "v");
    send_data_from(PEER_ID, PEER_EPOCH - 1, 2, kk, 1);
    cr_assert(wait_stat("replays_old_life", 1, 2000));
    cr_assert(has("other"));
    cr_assert_eq(statv("flush_stale_epoch"), 1);
    cr_assert_eq(statv("peer:777:epoch"), PEER_EPOCH, "still following the real life");
}

/* Issue 13: without a key, one heartbeat with a live peer's id and epoch
 * 2^64-1 made the other nodes take every real datagram of that peer for a
 * replay, and serve stale values. The real peer's next datagram must now
 * take the bus back to its life, after a flush. */
Test(bus, a_spoofed_far_future_epoch_never_silences_the_real_peer)
{
    const char *keys[] = {"x"};
    send_data(1, keys, 1);
    send_heartbeat(1, false);
    cr_assert(wait_stat("heartbeats_received", 1, 2000));
    uint8_t d[WIRE_DATAGRAM_MAX];
    send_raw(d, heartbeat_from(UINT64_MAX, 1, 0, false, d));
    cr_assert(wait_stat("restarts", 1, 2000));
    store("k", "old");              /* filled after the spoof's flush */
    const char *kk[] = {"k"};
    send_data(2, kk, 1);            /* the real peer changes k */
    sync_bus();
    cr_assert_not(has("k"), "stale copy served after a spoofed epoch");
    cr_assert_eq(statv("keys_received"), 2, "the real peer's datagram was refused");
    cr_assert_eq(statv("epochs_back"), 1);
    cr_assert_eq(statv("peer:777:epoch"), PEER_EPOCH);
    cr_assert_geq(statv("flush_epoch_back"), 1);
}

/* A node whose clock was an hour ahead restarts after the clock was set
 * right: its new epoch is older than the one we followed, but fresh by our
 * clock. Its invalidations must apply, not be dropped as replays. */
Test(bus, a_restart_with_a_clock_stepped_back_is_followed)
{
    uint64_t ahead = wall_us() + 3600ull * 1000000;
    const char *keys[] = {"x"};
    send_data_from(PEER_ID, ahead, 1, keys, 1);
    cr_assert(wait_stat("keys_received", 1, 2000));
    store("k", "old");
    const char *kk[] = {"k"};
    send_data_from(PEER_ID, wall_us(), 1, kk, 1);
    sync_bus();
    cr_assert_not(has("k"), "the restarted node's invalidation was dropped");
    cr_assert_eq(statv("keys_received"), 2);
    cr_assert_eq(statv("epochs_back"), 1);
    cr_assert_eq(statv("flush_epoch_back"), 1);
    cr_assert_eq(statv("stale_epoch"), 0);
}

Test(bus, garbage_and_truncation_are_counted_and_change_nothing)
{
    store("k", "v");
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37);
    send_raw(junk, sizeof(junk));
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    size_t plen = 0;
    wire_put_invalidate(p, sizeof(p), &plen, "k", 1, false, 0);
    size_t n = frame(WIRE_DATA, PEER_ID, PEER_EPOCH, 1, p, plen, d);
    send_raw(d, n - 1);
    cr_assert(wait_stat("malformed", 2, 2000));
    cr_assert(has("k"));
}

/* --- loss and repair ------------------------------------------------------------------ */

Test(bus, a_gap_is_nacked_and_a_repair_fills_it)
{
    store("lost", "v");
    const char *k1[] = {"one"}, *k2[] = {"lost"}, *k3[] = {"three"};
    send_data(1, k1, 1);
    send_data(3, k3, 1);
    struct got g;
    cr_assert(recv_type(WIRE_NACK, 2000, &g));
    struct wire_nack n;
    cr_assert_eq(wire_get_nack(g.payload, g.h.plen, &n), WIRE_OK);
    cr_assert(n.target == PEER_ID && n.epoch == PEER_EPOCH && n.n == 1);
    cr_assert(n.r[0].first == 2 && n.r[0].count == 1);
    send_data(2, k2, 1);
    cr_assert(wait_stat("repairs_received", 1, 2000));
    cr_assert_not(has("lost"));
    cr_assert_eq(statv("unrepairable_flushes"), 0);
    cr_assert_eq(statv("gaps"), 1);
}

Test(bus, a_lost_trailing_datagram_is_noticed_from_the_heartbeat)
{
    const char *k1[] = {"one"};
    send_data(1, k1, 1);
    send_heartbeat(2, false);
    struct got g;
    cr_assert(recv_type(WIRE_NACK, 2000, &g));
}

Test(bus, an_unrepaired_gap_flushes_the_cache_at_the_deadline)
{
    store("k", "v");
    const char *k1[] = {"one"};
    send_data(1, k1, 1);
    send_data(3, k1, 1);
    int64_t t0 = ms_now();
    cr_assert(wait_stat("unrepairable_flushes", 1, 3000));
    cr_assert_geq(ms_now() - t0, 150, "flushed before the deadline");
    cr_assert_eq(statv("flush_deadline"), 1);
    cr_assert_not(has("k"));
    cr_assert_geq(statv("nacks_sent"), 2, "NACKs repeat until the deadline");
}

Test(bus, a_restarted_peer_makes_us_flush)
{
    const char *k1[] = {"one"};
    send_data(1, k1, 1);
    cr_assert(wait_stat("keys_received", 1, 2000));
    store("k", "v");
    send_data_from(PEER_ID, PEER_EPOCH + 1, 1, k1, 1);
    cr_assert(wait_stat("flush_restart", 1, 2000));
    cr_assert_not(has("k"));
    cr_assert_eq(statv("restarts"), 1);
}

Test(bus, a_peer_that_said_goodbye_restarts_without_a_flush)
{
    const char *k1[] = {"one"};
    send_data(1, k1, 1);
    send_heartbeat(1, true);
    cr_assert(wait_stat("heartbeats_received", 1, 2000));
    store("k", "v");
    send_data_from(PEER_ID, PEER_EPOCH + 1, 1, k1, 1);
    cr_assert(wait_stat("restarts", 1, 2000));
    sync_bus();
    cr_assert(has("k"));
    cr_assert_eq(statv("unrepairable_flushes"), 0);
}

Test(bus, a_silent_peer_makes_us_flush_after_the_timeout)
{
    send_heartbeat(0, false);
    cr_assert(wait_stat("peers", 1, 2000));
    store("k", "v");
    cr_assert(wait_stat("flush_timeout", 1, 3000));
    cr_assert_not(has("k"));
}

Test(bus, joining_a_peer_mid_stream_flushes_only_a_non_empty_cache)
{
    send_heartbeat(40, false);
    cr_assert(wait_stat("heartbeats_received", 1, 2000));
    sync_bus();
    cr_assert_eq(statv("join_flushes"), 0);
    cr_assert_eq(statv("gaps"), 0);
}

Test(bus, joining_a_peer_mid_stream_with_a_filled_cache_flushes_it)
{
    store("k", "v"); /* filled before we heard the peer: its history may void it */
    send_heartbeat(40, false);
    cr_assert(wait_stat("join_flushes", 1, 2000));
    cr_assert_not(has("k"));
    cr_assert_eq(statv("unrepairable_flushes"), 0);
}

Test(bus, a_peer_younger_than_us_is_repaired_not_flushed_for)
{
    store("k", "v");
    const char *k1[] = {"x"};
    send_data_from(PEER_ID, UINT64_MAX / 2, 3, k1, 1); /* booted after us; 1 and 2 lost */
    struct got g;
    cr_assert(recv_type(WIRE_NACK, 2000, &g));
    struct wire_nack n;
    cr_assert_eq(wire_get_nack(g.payload, g.h.plen, &n), WIRE_OK);
    cr_assert(n.n == 1 && n.r[0].first == 1 && n.r[0].count == 2);
    send_data_from(PEER_ID, UINT64_MAX / 2, 1, k1, 1);
    send_data_from(PEER_ID, UINT64_MAX / 2, 2, k1, 1);
    cr_assert(wait_stat("repairs_received", 2, 2000));
    cr_assert(has("k"));
    cr_assert_eq(statv("join_flushes"), 0);
}

Test(bus, serves_nacks_from_its_ring_byte_for_byte)
{
    bus_publish_invalidate("k", 1, false, 0);
    struct got first, again;
    cr_assert(recv_type(WIRE_DATA, 2000, &first));
    send_heartbeat(0, false); /* so the bus knows us */
    send_nack(1, 1);
    cr_assert(recv_type(WIRE_DATA, 2000, &again));
    cr_assert_eq(again.rawlen, first.rawlen);
    cr_assert_eq(memcmp(again.raw, first.raw, first.rawlen), 0);
    cr_assert(wait_stat("repairs_sent", 1, 1000));
}

Test(bus, answers_gone_for_what_the_ring_no_longer_holds)
{
    bus_teardown();
    cache_teardown();
    close(fp);
    start(NULL, 4);
    struct got g;
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        bus_publish_invalidate(key, strlen(key), false, 0);
        cr_assert(recv_type(WIRE_DATA, 2000, &g));
    }
    send_nack(1, 2);
    cr_assert(recv_type(WIRE_GONE, 2000, &g));
    struct wire_gone gone;
    cr_assert_eq(wire_get_gone(g.payload, g.h.plen, &gone), WIRE_OK);
    cr_assert_eq(gone.target, PEER_ID);
    cr_assert_eq(gone.oldest, 3);
}

/* Issue 13: a NACK from an address that is not one of --bus-peers made the
 * bus send repairs to that address (up to 128 datagrams of 1,400 bytes for
 * one small datagram: an amplifier). It is dropped and counted, and nothing
 * goes to it. */
Test(bus, a_nack_from_outside_the_peers_is_dropped_and_answered_nowhere)
{
    bus_publish_invalidate("k", 1, false, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    int stranger = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(stranger, (struct sockaddr *)&a, sizeof(a)), 0);
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    struct wire_nack n = {.target = bus_node_id(), .epoch = statv("epoch"), .n = 1,
                          .r = {{.first = 1, .count = 1}}};
    size_t plen = wire_put_nack(p, &n);
    size_t len = frame(WIRE_NACK, PEER_ID, PEER_EPOCH, 1, p, plen, d);
    cr_assert_eq(sendto(stranger, d, len, 0, (struct sockaddr *)&bus_addr, sizeof(bus_addr)),
                 (ssize_t)len);
    sync_bus(); /* from the real peer, after the stranger's NACK */
    cr_assert_eq(statv("outside_peers"), 1);
    cr_assert_eq(statv("nacks_received"), 0);
    cr_assert_eq(statv("repairs_sent"), 0);
    struct pollfd pfd = {.fd = stranger, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 0), 0, "the stranger got an answer");
    close(stranger);
}

/* Answers to NACKs are rationed: each datagram at most once per ration
 * interval (here 5 s) to each destination, however many NACKs ask; and
 * each destination gets at most the ring's size per repair window. */
static void
start_patient(void)
{
    ration_us = 5000000;
    start_plain();
}

Test(bus_patient, a_flood_of_nacks_gets_each_datagram_once_per_interval, .init = start_patient,
     .fini = stop, .timeout = 20)
{
    bus_publish_invalidate("k", 1, false, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    send_heartbeat(0, false);
    for (int i = 0; i < 20; i++)
        send_nack(1, 1);
    /* Counted after each NACK's answers went out: then all of them are here
     * (loopback delivers within sendto). */
    cr_assert(wait_stat("repairs_rationed", 19, 2000));
    cr_assert_eq(statv("repairs_sent"), 1);
    unsigned repairs = 0;
    struct pollfd pfd = {.fd = fp, .events = POLLIN};
    while (poll(&pfd, 1, 0) == 1) {
        cr_assert_gt(recv(fp, g.raw, sizeof(g.raw), 0), 0);
        repairs += g.raw[5] == WIRE_DATA;
    }
    cr_assert_eq(repairs, 1, "%u repairs of one datagram", repairs);
}

static void
start_budgeted(void)
{
    ration_us = 1;
    repair_window_ms = 3600 * 1000;
    start(NULL, 8);
}

Test(bus_budget, a_destination_gets_at_most_the_ring_per_window_however_it_asks,
     .init = start_budgeted, .fini = stop, .timeout = 20)
{
    struct got g;
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        bus_publish_invalidate(key, strlen(key), false, 0);
        cr_assert(recv_type(WIRE_DATA, 2000, &g));
    }
    send_heartbeat(0, false);
    send_nack(1, 8);
    cr_assert(wait_stat("repairs_sent", 8, 2000), "the first NACK gets the whole ring");
    usleep(2000);                       /* past the ration interval, not the window */
    for (int i = 0; i < 4; i++)
        send_nack(1, 8);
    /* Each of the 32 asks is refused, by the budget (or, for NACKs handled
     * within the same microsecond, by the ration). */
    int64_t deadline = ms_now() + 2000;
    while (statv("repairs_throttled") + statv("repairs_rationed") < 32 && ms_now() < deadline)
        usleep(2000);
    cr_assert_eq(statv("repairs_throttled") + statv("repairs_rationed"), 32);
    cr_assert_gt(statv("repairs_throttled"), 0);
    cr_assert_eq(statv("repairs_sent"), 8, "the budget is spent for the window");
}

/* A heartbeat from peer id (epoch PEER_EPOCH). */
static void
heartbeat_of(uint32_t id, uint64_t ctl_seq, uint64_t last, bool leaving)
{
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    struct wire_heartbeat hb = {.last_seq = last, .leaving = leaving};
    size_t plen = wire_put_heartbeat(p, &hb);
    send_raw(d, frame(WIRE_HEARTBEAT, id, PEER_EPOCH, ctl_seq, p, plen, d));
}

/* Issue 13: a full peer table (256) evicted live peers, which looked new
 * when heard again and flushed us. Now only dead peers are evicted; one
 * sender more than 256 live peers is refused, loudly, and flushes us. */
static bool
stat_present(const char *name)
{
    struct find f = {.name = name};
    bus_stats(find_stat, &f);
    return f.found;
}

/* sync_bus for a full table: a member's heartbeat, not a newcomer's. */
static void
sync_crowd(void)
{
    static uint64_t ctl = 100;
    uint64_t before = statv("heartbeats_received");
    heartbeat_of(1255, ++ctl, 5, false);
    cr_assert(wait_stat("heartbeats_received", before + 1, 2000));
}

static void
start_crowded(void)
{
    peer_timeout_ms = 20000;    /* no peer goes silent during the test */
    start_plain();
}

Test(bus_crowded, a_full_table_evicts_only_dead_peers_and_refuses_one_more_live_one,
     .init = start_crowded, .fini = stop, .timeout = 30)
{
    for (uint32_t id = 1000; id < 1000 + 256; id++)
        heartbeat_of(id, 1, 5, false);  /* each has sent 5 datagrams before */
    cr_assert(wait_stat("heartbeats_received", 256, 5000));
    cr_assert_eq(statv("peers"), 256);
    heartbeat_of(2000, 1, 5, false);    /* one too many */
    sync_crowd();
    cr_assert_eq(statv("peers_refused"), 1);
    cr_assert_eq(statv("flush_peers_full"), 1, "a sender we cannot follow must flush us");
    cr_assert_eq(statv("peers_evicted"), 0, "a live peer was evicted");
    store("k", "v");
    heartbeat_of(1000, 2, 5, false);    /* the oldest live peer, nothing new */
    sync_crowd();
    cr_assert(has("k"), "a live peer looked new when heard again");
    cr_assert_eq(statv("join_flushes"), 0);
    /* A peer that said goodbye is dead: its entry goes to a newcomer. */
    heartbeat_of(1001, 2, 5, true);
    heartbeat_of(2001, 1, 0, false);
    sync_crowd();
    cr_assert_eq(statv("peers_evicted"), 1);
    cr_assert_eq(statv("peers_refused"), 1);
    cr_assert(stat_present("peer:2001:state"), "the newcomer has no entry");
    cr_assert_not(stat_present("peer:1001:state"), "the departed peer kept its entry");
}

/* Nagle's rule with a clock: a quiet bus sends a key at once; the next
 * datagram waits the flush delay after that one, and the publisher is told
 * when to poll again. */
Test(bus_slow, a_quiet_bus_sends_at_once_then_batches_for_the_delay, .init = start_slow,
     .fini = stop, .timeout = 20)
{
    struct got g;
    bus_publish_invalidate("first", 5, false, 0);
    cr_assert_eq(bus_publish_poll(), -1, "a quiet bus sends at once: nothing left waiting");
    publisher_idle = true;
    cr_assert(recv_type(WIRE_DATA, 500, &g), "the first key waited (the delay is 1 s)");
    bus_publish_invalidate("second", 6, false, 0);
    bus_publish_invalidate("third", 5, false, 0);
    int64_t due = bus_publish_poll();
    cr_assert(due > 0 && due <= 1000000, "due in %lld us", (long long)due);
    cr_assert_not(recv_type(WIRE_DATA, 300, &g), "a batch left before its delay");
    /* Counted when sent, so a batch still on its way would show here too. */
    cr_assert_eq(statv("batches_sent"), 1, "a batch left before its delay");
    publisher_idle = false;
    cr_assert(recv_type(WIRE_DATA, 3000, &g));
    unsigned n;
    cr_assert_eq(wire_check_data(g.payload, g.h.plen, &n), WIRE_OK);
    cr_assert_eq(n, 2, "both keys in one datagram");
    cr_assert_eq(g.h.seq, 2);
}

/* --- differs -> announce ------------------------------------------------------------------ */

Test(bus, a_racing_local_write_that_differs_is_announced_as_a_delete)
{
    char h[32], kh[64];
    store("k", "mine");
    bus_publish_invalidate("k", 1, true, cache_value_hash("mine", 4, 0));
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    snprintf(kh, sizeof(kh), "k=%s", hash_of("theirs", h, sizeof(h)));
    const char *keys[] = {kh};
    /* No worker polls from here on: the bus thread must send its own
     * announcement. */
    publisher_idle = true;
    send_data(1, keys, 1);
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    size_t off = 0;
    struct wire_record r;
    cr_assert_eq(wire_next_record(g.payload, g.h.plen, &off, &r), WIRE_OK);
    cr_assert(r.nkey == 1 && r.key[0] == 'k' && !r.has_hash, "an announcement is a plain delete");
    cr_assert_eq(statv("announces"), 1);
    cr_assert_not(has("k"));
}

/* --bus-announce-window-ms 0: the rule is off; even a copy written here a
 * moment ago is dropped silently. */
static void
start_no_announce(void)
{
    announce_window_ms = 0;
    start_plain();
}

Test(bus_no_announce, with_the_window_off_a_racing_copy_is_dropped_silently,
     .init = start_no_announce, .fini = stop, .timeout = 20)
{
    char h[32], kh[64];
    cr_assert_eq(statv("announce_window_ms"), 0);
    store("k", "mine");
    bus_publish_invalidate("k", 1, true, cache_value_hash("mine", 4, 0));
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    snprintf(kh, sizeof(kh), "k=%s", hash_of("theirs", h, sizeof(h)));
    const char *keys[] = {kh};
    send_data(1, keys, 1);
    sync_bus();
    cr_assert_not(has("k"));
    cr_assert_eq(statv("keys_dropped"), 1);
    cr_assert_eq(statv("announces"), 0);
    publisher_idle = true;
    struct pollfd pfd = {.fd = fp, .events = POLLIN};
    while (poll(&pfd, 1, 0) == 1) {
        cr_assert_gt(recv(fp, g.raw, sizeof(g.raw), 0), 0);
        cr_assert_neq(g.raw[5], WIRE_DATA, "something was announced");
    }
}

Test(bus, an_old_copy_that_differs_is_dropped_silently)
{
    char h[32], kh[64];
    store("k", "old"); /* never published by this node */
    snprintf(kh, sizeof(kh), "k=%s", hash_of("new", h, sizeof(h)));
    const char *keys[] = {kh};
    send_data(1, keys, 1);
    cr_assert(wait_stat("keys_dropped", 1, 2000));
    sync_bus();
    cr_assert_eq(statv("announces"), 0);
    expect_nothing_sent_before_a_probe();
}

Test(bus, an_announcement_never_causes_another)
{
    /* A hashless delete from a peer on a key we wrote: dropped, not announced. */
    store("k", "mine");
    bus_publish_invalidate("k", 1, true, cache_value_hash("mine", 4, 0));
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    const char *keys[] = {"k"};
    send_data(1, keys, 1);
    cr_assert(wait_stat("keys_dropped", 1, 2000));
    sync_bus();
    cr_assert_eq(statv("announces"), 0);
    expect_nothing_sent_before_a_probe();
}

/* --- stats and lifecycle --------------------------------------------------------------------- */

struct lines {
    char text[8192];
    size_t len;
};

static void
collect(const char *name, const char *value, void *ctx)
{
    struct lines *l = ctx;
    l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "STAT %s %s\n", name, value);
}

Test(bus, stats_list_counters_and_peers)
{
    send_heartbeat(0, false);
    cr_assert(wait_stat("peers", 1, 2000));
    static struct lines l;
    bus_stats(collect, &l);
    cr_assert(strstr(l.text, "STAT enabled 1\n"));
    cr_assert(strstr(l.text, "STAT mode unicast\n"));
    cr_assert(strstr(l.text, "STAT authenticated 0\n"));
    cr_assert(strstr(l.text, "STAT unrepairable_flushes 0\n"));
    cr_assert(strstr(l.text, "STAT peer:777:epoch 5000\n"), "%s", l.text);
    cr_assert(strstr(l.text, "STAT peer:777:state live\n"));
    cr_assert(strstr(l.text, "STAT peer:777:last_heard_ms "));
    cr_assert(strstr(l.text, "STAT peer:777:addr 127.0.0.1:"));
}

Test(bus, teardown_says_goodbye_and_stops_publishing)
{
    bus_publish_invalidate("pending", 7, false, 0);
    bus_teardown();
    struct got g;
    bool saw_leaving = false, saw_data = false;
    while (recv_type(0, 300, &g)) {
        if (g.h.type == WIRE_DATA) {
            saw_data = true;
            continue;
        }
        struct wire_heartbeat hb;
        cr_assert_eq(wire_get_heartbeat(g.payload, g.h.plen, &hb), WIRE_OK);
        if (hb.leaving) {
            cr_assert_eq(hb.last_seq, 1);
            saw_leaving = true;
            break;
        }
    }
    cr_assert(saw_data, "the pending batch went out before the goodbye");
    cr_assert(saw_leaving);
    bus_publish_invalidate("after", 5, false, 0); /* a no-op, not a crash */
    static struct lines l;
    bus_stats(collect, &l);
    cr_assert_str_eq(l.text, "STAT enabled 0\n");
}

/* --- authenticated ------------------------------------------------------------------------------ */

/* Secure by default: no key and no --bus-insecure is no bus, and the reason
 * says how to make a key. No bus thread is started (bus is not running). */
Test(bus_options, a_bus_without_a_key_refuses_to_start_unless_insecure)
{
    char err[512] = "";
    struct bus_options o;
    bus_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.peers = "127.0.0.1:9";
    cr_assert_not(bus_setup(&o, err, sizeof(err)));
    cr_assert(strstr(err, "no --bus-key-file"), "%s", err);
    cr_assert(strstr(err, "head -c 32 /dev/urandom | od -An -tx1"), "no recipe: %s", err);
    cr_assert(strstr(err, "--bus-insecure"), "%s", err);
    o.key_file = "/nonexistent/bus.key";
    o.insecure = true;
    cr_assert_not(bus_setup(&o, err, sizeof(err)));
    cr_assert(strstr(err, "contradict"), "%s", err);
    static struct lines l;
    bus_stats(collect, &l);
    cr_assert_str_eq(l.text, "STAT enabled 0\n");
}

static char keypath[64];

static void
start_sealed(void)
{
    snprintf(keypath, sizeof(keypath), "/tmp/fc-bus-key-%d", getpid());
    FILE *f = fopen(keypath, "w");
    cr_assert_not_null(f);
    fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    chmod(keypath, 0600);
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    cr_assert(bus_crypto_parse_key((const uint8_t *)hex, 64, peer_key));
    sealed = true;
    start(keypath, 0);
}

static void
stop_sealed(void)
{
    stop();
    unlink(keypath);
}

TestSuite(bus_sealed, .init = start_sealed, .fini = stop_sealed, .timeout = 20);

/* Peers that left are forgotten after 300 ms instead of 10 s. */
static void
start_sealed_forgetful(void)
{
    forget_ms = 300;
    start_sealed();
}

/* Issue 13: a sealed datagram recorded before its sender left, replayed
 * after the sender was forgotten, flushed the node and applied the old
 * keys. Its life is remembered (the floors): the replay is dropped, while
 * the same life speaking anew is followed from where we left it. */
Test(bus_forgetful, a_replay_after_the_sender_was_forgotten_changes_nothing,
     .init = start_sealed_forgetful, .fini = stop_sealed, .timeout = 20)
{
    uint8_t data[WIRE_DATAGRAM_MAX], bye[WIRE_DATAGRAM_MAX], p[WIRE_PAYLOAD_MAX];
    size_t plen = 0;
    cr_assert(wire_put_invalidate(p, sizeof(p), &plen, "a", 1, false, 0));
    size_t ndata = frame(WIRE_DATA, PEER_ID, PEER_EPOCH, 1, p, plen, data);
    size_t nbye = heartbeat_from(PEER_EPOCH, 1, 1, true, bye);
    send_raw(data, ndata);
    send_raw(bye, nbye);
    cr_assert(wait_stat("heartbeats_received", 1, 2000));
    cr_assert_eq(statv("keys_received"), 1);
    int64_t deadline = ms_now() + 5000;
    while (statv("peers") != 0 && ms_now() < deadline)
        usleep(10000);
    cr_assert_eq(statv("peers"), 0, "the departed peer was not forgotten");
    store("a", "v");
    send_raw(data, ndata);
    send_raw(bye, nbye);
    cr_assert(wait_stat("replays_old_life", 2, 2000));
    cr_assert(has("a"), "a replayed datagram was applied");
    cr_assert_eq(statv("peers"), 0, "a replay brought the peer back");
    cr_assert_eq(statv("keys_received"), 1);
    cr_assert_eq(statv("unrepairable_flushes"), 0);
    cr_assert_eq(statv("join_flushes"), 0);
    /* The same life, speaking anew: followed from seq 2, nothing flushed. */
    const char *aa[] = {"a"};
    send_data(2, aa, 1);
    cr_assert(wait_stat("keys_received", 2, 2000));
    cr_assert_not(has("a"));
    cr_assert_eq(statv("peers"), 1);
    cr_assert_eq(statv("gaps"), 0);
    cr_assert_eq(statv("unrepairable_flushes") + statv("join_flushes"), 0);
}

Test(bus_sealed, sealed_traffic_is_applied_and_forgeries_are_not)
{
    cr_assert_eq(statv("authenticated"), 1);
    store("k", "v");
    store("j", "v");
    /* Clear text from a node without the key. */
    sealed = false;
    const char *kk[] = {"k"};
    send_data(1, kk, 1);
    /* Sealed with the wrong key. */
    sealed = true;
    uint8_t right[BUS_KEY_SIZE];
    memcpy(right, peer_key, sizeof(right));
    peer_key[0] ^= 1;
    send_data(1, kk, 1);
    memcpy(peer_key, right, sizeof(right));
    cr_assert(wait_stat("auth_failures", 2, 2000));
    cr_assert(has("k"));
    /* The real thing, then a replay of it. */
    const char *jj[] = {"j"};
    send_data(1, jj, 1);
    cr_assert(wait_stat("keys_dropped", 1, 2000));
    cr_assert_not(has("j"));
    store("j", "v2");
    send_data(1, jj, 1);
    cr_assert(wait_stat("replays", 1, 2000));
    cr_assert(has("j"));
    cr_assert(has("k"));
    /* What the bus sends is sealed under the same key. */
    bus_publish_invalidate("mine", 4, false, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g)); /* recv_type asserts it opens */
    cr_assert(g.h.flags & WIRE_FLAG_SEALED);
}

/* --- --bus-sync: leases and tickets with the fake peer (the only peer: a
 * fleet of two) ------------------------------------------------------------------------- */

static void
start_sync(void)
{
    sealed = false;
    sync_mode = true;
    lease_ms = 2000;
    start(NULL, 0);
}

/* A STATUS from the fake peer: its now, its last DATA seq, and its view of
 * the bus (acked_by: how far it heard the bus's acks; echo: a grant). */
static void
send_status(uint64_t now, uint64_t last_seq, uint64_t acked, uint64_t acked_by, uint64_t echo)
{
    uint8_t p[WIRE_PAYLOAD_MAX], d[WIRE_DATAGRAM_MAX];
    struct wire_status st = {.lease_us = lease_ms * 1000, .now_us = now, .last_seq = last_seq,
                             .n = 1};
    st.e[0] = (struct wire_status_entry){.node = bus_node_id(), .epoch = statv("epoch"),
                                         .acked = acked, .acked_by = acked_by, .echo = echo};
    size_t plen = wire_put_status(p, &st);
    send_raw(d, frame(WIRE_STATUS, PEER_ID, PEER_EPOCH, ++peer_ctl_seq, p, plen, d));
}

/* The bus's next STATUS, and its entry for the fake peer (false: none). */
static bool
recv_status(struct wire_status *st, struct wire_status_entry *mine)
{
    struct got g;
    if (!recv_type(WIRE_STATUS, 3000, &g))
        return false;
    cr_assert_eq(g.h.version, 3, "STATUS goes as version 3");
    cr_assert_eq(wire_get_status(g.payload, g.h.plen, st), WIRE_OK);
    for (unsigned i = 0; i < st->n; i++)
        if (st->e[i].node == PEER_ID) {
            *mine = st->e[i];
            return true;
        }
    memset(mine, 0, sizeof(*mine));
    return true;
}

/* Waits until ticket is done, reading what the bus sends meanwhile (its
 * STATUS datagrams would fill the fake peer's socket). */
static bool
wait_done(uint64_t ticket, int ms)
{
    int64_t deadline = ms_now() + ms;
    uint8_t buf[WIRE_DATAGRAM_MAX];
    while (bus_sync_done() < ticket && ms_now() < deadline) {
        struct pollfd pfd = {.fd = fp, .events = POLLIN};
        if (poll(&pfd, 1, 1) == 1)
            cr_assert_gt(recv(fp, buf, sizeof(buf), 0), 0);
    }
    return bus_sync_done() >= ticket;
}

static bool
wait_read_ok(bool want, int ms)
{
    int64_t deadline = ms_now() + ms;
    do {
        if (bus_read_ok() == want)
            return true;
        usleep(1000);
    } while (ms_now() < deadline);
    return false;
}

TestSuite(bus_sync, .init = start_sync, .fini = stop, .timeout = 30);

Test(bus_sync, no_hit_without_the_peers_grant_nor_before_its_stream_is_applied_through_it)
{
    cr_assert_eq(statv("sync"), 1);
    cr_assert_eq(statv("sync_nodes"), 2, "unicast: the peers and this node");
    cr_assert_not(bus_read_ok(), "no lease yet");
    cr_assert_gt(statv("reads_refused"), 0);
    struct wire_status st;
    struct wire_status_entry e;
    cr_assert(recv_status(&st, &e));
    const char *k1[] = {"a"};
    send_data(1, k1, 1);                        /* its stream: seq 1 applied */
    cr_assert(wait_stat("keys_received", 1, 2000));
    /* A grant of its stream through seq 3: not usable until 2 and 3 arrive. */
    send_status(1000, 3, 0, 0, st.now_us);
    cr_assert(wait_stat("grants_received", 1, 2000));
    cr_assert_not(bus_read_ok(), "a grant ahead of what we applied was used");
    const char *k2[] = {"b"}, *k3[] = {"c"};
    send_data(2, k2, 1);
    send_data(3, k3, 1);
    cr_assert(wait_read_ok(true, 2000), "applied through the grant: hits allowed");
    /* Nothing renews it: it runs out a lease after our request, whatever
     * the peer thinks. */
    cr_assert(wait_read_ok(false, 5000), "the lease never ran out");
}

Test(bus_sync, a_write_waits_for_the_peers_ack_or_for_its_grant_to_end)
{
    struct wire_status st;
    struct wire_status_entry e;
    cr_assert(recv_status(&st, &e));
    send_status(1000, 0, 0, 0, st.now_us);      /* the peer asks for a lease */
    /* Our grant to it: the echo of its now. */
    do
        cr_assert(recv_status(&st, &e));
    while (e.echo == 0);
    cr_assert_eq(e.echo, 1000);
    /* Whether in the boot wait or not, the write waits for it. */
    bus_publish_invalidate("k", 1, false, 0);
    uint64_t ticket = bus_sync_ticket();
    cr_assert_gt(ticket, 0);
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert_lt(bus_sync_done(), ticket, "done before the peer acked, its lease running");
    send_status(2000, 0, 0, 0, 0);              /* keeps asking, not acked yet */
    cr_assert(wait_stat("statuses_received", 2, 2000));
    cr_assert_lt(bus_sync_done(), ticket);
    send_status(3000, 0, g.h.seq, 0, 0);        /* its ack of our DATA */
    cr_assert(wait_done(ticket, 5000), "acked and still waiting");
    cr_assert_eq(statv("sync_expired"), 0);
    /* Now it falls silent: the next write passes it once our last grant,
     * made from its last request, has ended. */
    bus_publish_invalidate("j", 1, false, 0);
    uint64_t t2 = bus_sync_ticket();
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert(wait_done(t2, 10000), "a silent peer held the write for ever");
    cr_assert_geq(statv("sync_expired"), 1);
}

Test(bus_sync, the_bus_acks_a_peers_data_and_says_it_again_when_the_peer_missed_it)
{
    const char *k1[] = {"a"};
    send_data(1, k1, 1);
    cr_assert(wait_stat("keys_received", 1, 2000));
    struct wire_status st;
    struct wire_status_entry e;
    do
        cr_assert(recv_status(&st, &e));
    while (e.acked < 1);
    uint64_t sent = statv("statuses_sent");
    send_status(1000, 1, 0, 0, 0);              /* it heard no ack of ours */
    cr_assert(wait_stat("statuses_sent", sent + 1, 2000));
    cr_assert(recv_status(&st, &e));
    cr_assert_eq(e.acked, 1);
}

Test(bus_sync, no_write_completes_within_a_lease_of_start)
{
    /* A previous life of this node id may have granted leases still
     * running: with no peer heard at all, a write still waits them out. */
    bus_publish_invalidate("k", 1, false, 0);
    uint64_t ticket = bus_sync_ticket();
    struct got g;
    cr_assert(recv_type(WIRE_DATA, 2000, &g));
    cr_assert_lt(bus_sync_done(), ticket, "done within the boot wait of a 2 s lease");
    cr_assert(wait_done(ticket, 10000));
}
