/* receive: the inbound side of the bus, on the bus thread. Reads datagrams,
 * authenticates and parses each whole before touching any state, follows
 * each sender in the peer table (peers_lock; bus_stats reads it), applies
 * its invalidations to the cache, and asks for repairs. Received
 * invalidations go to the cache and never back onto the bus, except the one
 * rule below ("differs -> announce").
 *
 * Which life of a sender to follow. We follow one life (boot epoch) per node
 * id; the lives we stopped following are kept in the floors (bus/floor.h),
 * also after the peer entry goes. A datagram of another life:
 *   - at or below what we saw of that life: a replay or a straggler, dropped
 *     (replays_old_life), whenever it comes: no flush, nothing applied;
 *   - newer than the life we follow, or a life we followed before that still
 *     speaks, or an older life that booted within BUS_EPOCH_FRESH_US by our
 *     wall clock (a restart whose clock went back): followed, after a flush
 *     unless the life we leave said a clean goodbye;
 *   - an older life, unknown and not fresh: refused (stale_epoch). It may be
 *     a replay, or a long-running node that shares the id: we cannot tell,
 *     so its DATA and heartbeats flush us. Noted in the floors, so the same
 *     datagram replayed again is merely dropped.
 * Invariant: a datagram we refuse never leaves copies in place that it may
 * have invalidated; the only refusals without a flush are of what we
 * already applied or flushed for.
 *
 * Who may speak. Unicast mode: only the addresses in --bus-peers (others:
 * outside_peers). Multicast mode: only the group (datagrams sent to our
 * sending socket: outside_group). NACKs, repairs and GONEs go only to the
 * group or to the configured peer a datagram came from, never to an
 * address a datagram claims, so no one can aim our answers elsewhere.
 *
 * Differs -> announce. A peer's set-like invalidation carries the new value's
 * hash; cache_drop keeps a copy with that hash and drops any other. When it
 * drops a copy that this node itself published lately, the two nodes raced
 * (typically a read-through fill of an old DB read landing after the other's
 * write): the peer may now hold a value we just judged different, so we
 * announce a plain delete of the key. The announcement carries no hash, and a
 * hashless invalidation never triggers an announcement, so every client write
 * causes at most one announcement per node and nothing ever echoes back.
 * Copies that were not written here lately are dropped silently, so an
 * ordinary write to a popular key does not make every node answer. */
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "bus/bus_internal.h"
#include "bus/wire.h"
#include "cache/cache.h"
#include "src/log.h"

/* quiet: the cause is logged once elsewhere, and may recur many times a second. */
static void
unrepairable(enum bus_flush_reason why, uint32_t node_id, bool quiet)
{
    cache_flush(0);
    bus_count(M_unrepairable_flushes, 1);
    bus_count(bus_flush_metric[why], 1);
    /* Worth an operator's attention, once; a flapping link must not flood
     * the log (stats bus counts every one). */
    static struct log_limit flush_log = LOG_LIMIT_INIT;
    if (!quiet)
        log_limited(&flush_log, 10000, LOG_ERROR,
                    "bus: flushed the cache: lost datagrams of node %" PRIu32
                    " cannot be repaired (%s)",
                    node_id, bus_metric_names[bus_flush_metric[why]] + strlen("flush_"));
}

/* Remembers a life no peer entry follows any more. */
static void
note_life(uint32_t node_id, const struct bus_life *life, bool followed)
{
    if (bus_floors_note(&bus.floors, node_id, life, followed))
        bus_count(M_floors_evicted, 1);
}

static void
act(struct bus_peer *p, const struct bus_peer_event *ev)
{
    if (ev->life_ended)
        note_life(p->node_id, &ev->ended, true);
    /* Flush before counting: whoever sees a count sees its flush. */
    if (ev->flush)
        unrepairable(ev->reason, p->node_id, false);
    if (ev->new_epoch)
        bus_count(M_restarts, 1);
    if (ev->epoch_back) {
        bus_count(M_epochs_back, 1);
        if (!bus.warned_epoch_back) {
            bus.warned_epoch_back = true;
            log_error("bus: node %" PRIu32 " went back from epoch %" PRIu64 " to %" PRIu64
                      ": its clock stepped back, or two nodes share its id (logged once; see "
                      "epochs_back in stats bus)", p->node_id, ev->ended.epoch, p->epoch);
        }
    }
    if (ev->join_unknown) {
        /* Its earlier datagrams may have invalidated keys we filled before
         * hearing it. An empty cache has nothing to lose, so check first. */
        struct cache_stats st;
        cache_stats_get(&st);
        if (st.curr_items > 0) {
            cache_flush(0);
            bus_count(M_join_flushes, 1);
        }
    }
    if (ev->gap) {
        bus_count(M_gaps, 1);
        /* The first NACK goes at once (after its small jitter). */
        bus_loop_tick_at(p->next_nack_us);
    }
}

/* --- the peer table (peers_lock) --------------------------------------------------- */

/* Multicast NACK suppression needs the NACKs of a fleet spread over a
 * window long enough for the first to be heard before the others go: 20 us
 * per peer, at most a millisecond. Unicast NACKs reach only their target. */
static void
fleet_size_changed(void)
{
    int64_t j = bus.ep.multicast ? 20 * (int64_t)bus.npeers : 0;
    bus.timing.nack_jitter_us = j > 1000 ? 1000 : j;
}

static void
peer_remove(size_t i)
{
    struct bus_life life = bus_peer_life(&bus.peers[i]);
    note_life(bus.peers[i].node_id, &life, true);
    bus.peers[i] = bus.peers[--bus.npeers];
    fleet_size_changed();
}

static struct bus_peer *
peer_find(uint32_t node_id)
{
    for (size_t i = 0; i < bus.npeers; i++)
        if (bus.peers[i].node_id == node_id)
            return &bus.peers[i];
    return NULL;
}

/* A slot for a new entry: a free one, else the longest-silent dead (lost or
 * departed) peer's, whose life goes to the floors. Never a live peer's: it
 * would look new when heard again, and flush us. NULL when every entry is
 * live: the fleet is larger than we can follow. */
static struct bus_peer *
peer_slot(void)
{
    if (bus.npeers < BUS_PEERS_MAX) {
        struct bus_peer *p = &bus.peers[bus.npeers++];
        fleet_size_changed();
        return p;
    }
    struct bus_peer *v = NULL;
    int64_t now = bus_now_us();
    for (size_t i = 0; i < bus.npeers; i++) {
        struct bus_peer *q = &bus.peers[i];
        /* --bus-sync: a grant of ours still running binds our writes to it. */
        if (q->state != BUS_PEER_LIVE && bus_sync_may_forget(q, now) &&
            (!v || q->last_heard_us < v->last_heard_us))
            v = q;
    }
    if (!v)
        return NULL;
    bus_count(M_peers_evicted, 1);
    struct bus_life life = bus_peer_life(v);
    note_life(v->node_id, &life, true);
    return v;
}

/* A sender we cannot follow, for want of an entry. Like every refusal, it
 * must not leave copies in place that its datagrams may invalidate. */
static void
peers_full(const struct wire_header *h)
{
    if (h->type == WIRE_DATA || h->type == WIRE_HEARTBEAT)
        unrepairable(BUS_FLUSH_peers_full, h->node_id, true);
    bus_count(M_peers_refused, 1);
    if (!bus.warned_peers_full) {
        bus.warned_peers_full = true;
        log_error("bus: node %" PRIu32 " is one more than the %d live peers we can follow: "
                  "the fleet is too large for one bus; we flush on each of its datagrams "
                  "(logged once; see peers_refused in stats bus)", h->node_id, BUS_PEERS_MAX);
    }
}

static bool
fresh_epoch(uint64_t epoch)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    int64_t age = now - (int64_t)epoch;
    return epoch <= INT64_MAX && age < BUS_EPOCH_FRESH_US && age > -BUS_EPOCH_FRESH_US;
}

/* An older life we will not follow spoke (see the top of the file). */
static void
stale_epoch(const struct wire_header *h, const struct bus_life *followed, bool floor)
{
    if (h->type == WIRE_DATA || h->type == WIRE_HEARTBEAT)
        unrepairable(BUS_FLUSH_stale_epoch, h->node_id, true);
    bus_count(M_stale_epoch, 1);
    struct bus_life seen = {.epoch = h->epoch};
    if (h->type == WIRE_DATA)
        seen.data_high = h->seq;
    else
        seen.ctl_high = h->seq;
    note_life(h->node_id, &seen, false);
    if (!bus.warned_stale_epoch) {
        bus.warned_stale_epoch = true;
        log_error("bus: node %" PRIu32 " spoke in epoch %" PRIu64 ", older than the epoch %"
                  PRIu64 " we follow%s and not booted lately: a replay, or two nodes share the "
                  "id; refused, and its data flushes us (logged once; see stale_epoch in stats "
                  "bus)", h->node_id, h->epoch, followed->epoch, floor ? " (of a forgotten peer)" : "");
    }
}

/* Finds or makes the entry that follows h's life, under peers_lock. NULL:
 * the datagram is refused (counted here). */
static struct bus_peer *
peer_for(const struct wire_header *h, int64_t now)
{
    struct bus_peer *p = peer_find(h->node_id);
    if (p && p->epoch == h->epoch)
        return p;       /* the common case: one compare */
    const struct bus_life *known = bus_floors_find(&bus.floors, h->node_id, h->epoch);
    if (known && h->seq <= (h->type == WIRE_DATA ? known->data_high : known->ctl_high)) {
        bus_count(M_replays_old_life, 1);
        return NULL;
    }
    struct bus_life current;
    const struct bus_life *latest = NULL;
    if (p) {
        current = bus_peer_life(p);
        latest = &current;
    } else if ((latest = bus_floors_latest(&bus.floors, h->node_id))) {
        current = *latest;
        latest = &current;
    }
    if (latest && h->epoch < latest->epoch && !known && !fresh_epoch(h->epoch)) {
        stale_epoch(h, latest, p == NULL);
        return NULL;
    }
    struct bus_life resume;
    if (known)
        resume = *known;    /* copied: noting the life we leave may move it */
    if (!p) {
        p = peer_slot();
        if (!p) {
            peers_full(h);
            return NULL;
        }
        if (!latest) {
            bus_peer_init(p, h->node_id, h->epoch, h->epoch > bus.epoch, now);
            return p;
        }
        bus_peer_resume(p, h->node_id, latest, now);
    }
    if (p->epoch != h->epoch) {
        struct bus_peer_event ev;
        bus_peer_switch(p, h->epoch, known ? &resume : NULL, now, &ev);
        bus_sync_peer_restarted(p);
        act(p, &ev);
    }
    return p;
}

/* --- applying DATA ------------------------------------------------------------------- */

static void
announce(const char *key, size_t nkey)
{
    bus_queue_announce(key, nkey);
    bus.announced = true;
    bus_count(M_announces, 1);
}

/* A datagram's keys are looked up one after another, each waiting on its
 * bucket's and item's cache misses: first every bucket, then every bucket's
 * first item is asked for (cache_prefetch), so the misses overlap. */
static void
prefetch_data(const uint8_t *payload, size_t plen)
{
    uint64_t hv[WIRE_PAYLOAD_MAX / 4];
    size_t n = 0, off = 0;
    struct wire_record r;
    while (off < plen && n < sizeof(hv) / sizeof(hv[0]) &&
           wire_next_record(payload, plen, &off, &r) == WIRE_OK) {
        if (r.op == WIRE_OP_FLUSH)
            continue;
        hv[n] = cache_key_hash(r.key, r.nkey);
        cache_prefetch(hv[n++], 0);
    }
    for (size_t i = 0; i < n; i++)
        cache_prefetch(hv[i], 1);
}

static void
apply_data(const uint8_t *payload, size_t plen)
{
    size_t off = 0;
    struct wire_record r;
    int64_t t = bus_mono_ms();
    prefetch_data(payload, plen);
    while (off < plen && wire_next_record(payload, plen, &off, &r) == WIRE_OK) {
        if (r.op == WIRE_OP_FLUSH) {
            cache_flush(r.delay);
            bus_count(M_flushes_received, 1);
            continue;
        }
        bus_count(M_keys_received, 1);
        if (r.op == WIRE_OP_STALE) {
            /* md I on a peer: serve-stale here too. A mark is weaker than a
             * drop, so nothing to announce; a lease out here is voided. */
            if (cache_mark_stale(r.key, r.nkey, r.has_exptime, r.exptime) == CACHE_OK)
                bus_count(M_keys_staled, 1);
            else
                bus_count(M_keys_missed, 1);
            continue;
        }
        switch (cache_drop(r.key, r.nkey, r.has_hash, r.hash)) {
        case CACHE_OK:
            bus_count(M_keys_dropped, 1);
            if (r.has_hash && bus_published_lately(r.key, r.nkey, t))
                announce(r.key, r.nkey);
            break;
        case CACHE_EXISTS:
            bus_count(M_keys_kept, 1);
            break;
        default:
            bus_count(M_keys_missed, 1);
            break;
        }
    }
}

/* --- one datagram -------------------------------------------------------------------- */

/* Another node speaks under our node id (a copied --bus-node-id). We cannot
 * follow it: its sequence numbers, NACKs and repairs would be mistaken for
 * ours. So its invalidations never reach us, and every datagram of it that
 * may carry or announce some (DATA, heartbeats) costs us a flush: a miss,
 * never a stale hit. Loud: counted, and logged once. */
static void
duplicate_id(const struct wire_header *h, const struct sockaddr *src)
{
    /* Flush first, count after: whoever sees the count sees the flush. */
    if (h->type == WIRE_DATA || h->type == WIRE_HEARTBEAT)
        unrepairable(BUS_FLUSH_duplicate_id, h->node_id, true);
    bus_count(M_duplicate_id, 1);
    if (!bus.warned_duplicate_id) {
        bus.warned_duplicate_id = true;
        char from[64];
        mcast_format_addr(src, from, sizeof(from));
        log_error("bus: another node (epoch %" PRIu64 ", from %s) uses our node id %" PRIu32
                  ": give each node its own --bus-node-id. We cannot follow it, so we flush "
                  "on each of its datagrams (logged once; see duplicate_id in stats bus)",
                  h->epoch, from, bus.node_id);
    }
}

/* dest: where answers to this datagram may go (bus_internal.h). */
static void
handle_datagram(const uint8_t *buf, size_t len, const struct sockaddr *src, socklen_t srclen,
                int dest)
{
    struct wire_header h;
    enum wire_result hr = wire_header_decode(buf, len, &h);
    if (hr != WIRE_OK && hr != WIRE_NEWER) {
        bus_count(M_malformed, 1);
        return;
    }
    if (h.node_id == bus.node_id && h.epoch == bus.epoch) {
        bus_count(M_own_ignored, 1);
        return;
    }
    uint8_t plain[WIRE_PAYLOAD_MAX];
    const uint8_t *payload;
    if (!bus_crypto_open(bus_seal_key(), &h, buf, len, plain, &payload)) {
        bus_count(M_auth_failures, 1);
        return;
    }
    /* A newer format (wire.h, Versions): its control datagrams say nothing
     * we need; its DATA may invalidate in ways we cannot read, so it is
     * followed like any DATA and applied as a flush. */
    bool unreadable = false;
    if (hr == WIRE_NEWER) {
        bus_count(M_newer_version, 1);
        if (h.type != WIRE_DATA)
            return;
        unreadable = true;
    }
    /* Parse fully before touching any state: all of a datagram or none. */
    union {
        struct wire_heartbeat hb;
        struct wire_nack nack;
        struct wire_gone gone;
        struct wire_status st;
    } c;
    unsigned nrec;
    enum wire_result wr = WIRE_BAD_TYPE;
    switch (h.type) {
    case WIRE_DATA:
        /* Authenticated DATA we cannot read (records we do not know, or
         * newer than the datagram's version says) comes from a key holder
         * that speaks a format we do not know: applied as a flush, never
         * dropped (without a key, anyone could flush us anyway). */
        wr = unreadable ? WIRE_OK : wire_check_data(payload, h.plen, &nrec);
        if (wr == WIRE_OK && !unreadable && wire_data_version(payload, h.plen) > h.version)
            wr = WIRE_BAD_VERSION;
        if (wr != WIRE_OK) {
            unreadable = true;
            wr = WIRE_OK;
        }
        break;
    case WIRE_STATUS:
        wr = wire_get_status(payload, h.plen, &c.st);
        break;
    case WIRE_HEARTBEAT:
        wr = wire_get_heartbeat(payload, h.plen, &c.hb);
        break;
    case WIRE_NACK:
        wr = wire_get_nack(payload, h.plen, &c.nack);
        break;
    case WIRE_GONE:
        wr = wire_get_gone(payload, h.plen, &c.gone);
        break;
    }
    if (wr != WIRE_OK) {
        bus_count(M_malformed, 1);
        return;
    }
    if (h.node_id == bus.node_id) {
        duplicate_id(&h, src);
        return;
    }
    /* Control datagrams addressed to another node are none of our business,
     * except, in multicast mode, a NACK we may share (below). */
    bool others_nack = h.type == WIRE_NACK && c.nack.target != bus.node_id;
    if ((others_nack && !bus.ep.multicast) ||
        (h.type == WIRE_GONE && c.gone.target != bus.node_id))
        return;

    int64_t now = bus_now_us();
    struct bus_peer_event ev;
    enum bus_peer_verdict v;
    pthread_mutex_lock(&bus.peers_lock);
    struct bus_peer *p = peer_for(&h, now);
    if (!p) {
        pthread_mutex_unlock(&bus.peers_lock);
        return;
    }
    if (h.type == WIRE_DATA)
        v = bus_peer_data(p, h.epoch, h.seq, now, &bus.timing, &ev);
    else
        v = bus_peer_control(p, h.epoch, h.seq, now, &ev);
    if (v != BUS_PEER_FRESH) {
        pthread_mutex_unlock(&bus.peers_lock);
        bus_count(M_replays, 1);
        return;
    }
    if (srclen <= sizeof(p->addr)) {
        memcpy(&p->addr, src, srclen);
        p->addrlen = srclen;
    }
    act(p, &ev);
    switch (h.type) {
    case WIRE_DATA:
        if (ev.repaired)
            bus_count(M_repairs_received, 1);
        break;
    case WIRE_HEARTBEAT:
        bus_count(M_heartbeats_received, 1);
        memset(&ev, 0, sizeof(ev));
        bus_peer_heartbeat(p, c.hb.last_seq, c.hb.leaving, now, &bus.timing, &ev);
        act(p, &ev);
        break;
    case WIRE_GONE:
        bus_count(M_gones_received, 1);
        memset(&ev, 0, sizeof(ev));
        bus_peer_gone(p, c.gone.epoch, c.gone.oldest, &ev);
        act(p, &ev);
        break;
    case WIRE_STATUS:
        /* Its last DATA seq works as a heartbeat's; the rest is --bus-sync's. */
        memset(&ev, 0, sizeof(ev));
        bus_peer_heartbeat(p, c.st.last_seq, false, now, &bus.timing, &ev);
        act(p, &ev);
        if (bus.sync)
            bus_sync_status_in(p, &c.st, now);
        break;
    case WIRE_NACK:
        if (!others_nack)
            p->nacks_in++;
        if (others_nack) {
            /* Another node asked the target for holes we may have too: its
             * repairs come to the group, so our own NACK can wait (multicast
             * NACK suppression: one loss upstream of many nodes draws few
             * NACKs, not one per node). */
            struct bus_peer *t = peer_find(c.nack.target);
            if (t && bus_peer_suppress(t, &c.nack, now, &bus.timing))
                bus_count(M_nacks_suppressed, 1);
        }
        break;
    }
    pthread_mutex_unlock(&bus.peers_lock);

    if (h.type == WIRE_DATA && unreadable) {
        unrepairable(BUS_FLUSH_unreadable, h.node_id, true);
    } else if (h.type == WIRE_DATA) {
        apply_data(payload, h.plen);
        bus.ack_owed = true;    /* --bus-sync: tell the writer, soon */
    } else if (h.type == WIRE_NACK && !others_nack) {
        unsigned served = bus_serve_nack(h.node_id, &c.nack, dest);
        if (served) {
            pthread_mutex_lock(&bus.peers_lock);
            struct bus_peer *q = peer_find(h.node_id);
            if (q && q->epoch == h.epoch)
                q->repairs_served += served;
            pthread_mutex_unlock(&bus.peers_lock);
        }
    }
}

/* Datagrams taken per recvmmsg: a burst costs one system call, and one
 * that returns fewer proves the socket empty (no call that only says
 * EAGAIN). Its buffers are the bus thread's. */
#define BUS_RECV_VEC 16
static uint8_t recv_bufs[BUS_RECV_VEC][WIRE_DATAGRAM_MAX + 1];
static struct sockaddr_storage recv_srcs[BUS_RECV_VEC];

void
bus_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    /* Multicast mode: everything of the fleet comes to the group socket. */
    bool stranger_socket = bus.ep.multicast && w->fd != bus.ep.group_fd;
    struct mmsghdr msgs[BUS_RECV_VEC];
    struct iovec iov[BUS_RECV_VEC];
    for (int taken = 0; taken < BUS_RECV_BURST;) {
        for (int i = 0; i < BUS_RECV_VEC; i++) {
            iov[i] = (struct iovec){.iov_base = recv_bufs[i], .iov_len = sizeof(recv_bufs[i])};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &recv_srcs[i],
                                              .msg_namelen = sizeof(recv_srcs[i]),
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
            msgs[i].msg_len = 0;
        }
        int got = recvmmsg(w->fd, msgs, BUS_RECV_VEC, MSG_DONTWAIT, NULL);
        if (got <= 0)
            break; /* EAGAIN, or an ICMP error reported on the socket */
        for (int i = 0; i < got; i++) {
            bus_count(M_datagrams_received, 1);
            if (stranger_socket) {
                bus_count(M_outside_group, 1);
                continue;
            }
            struct sockaddr *src = (struct sockaddr *)&recv_srcs[i];
            socklen_t srclen = msgs[i].msg_hdr.msg_namelen;
            int dest = BUS_DEST_GROUP;
            if (!bus.ep.multicast) {
                dest = mcast_peer_index(&bus.ep, src, srclen);
                if (dest < 0) {
                    bus_count(M_outside_peers, 1);
                    continue;
                }
            }
            /* MSG_TRUNC in msg_flags: longer than any datagram of ours */
            if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > WIRE_DATAGRAM_MAX) {
                bus_count(M_malformed, 1);
                continue;
            }
            handle_datagram(recv_bufs[i], msgs[i].msg_len, src, srclen, dest);
        }
        taken += got;
        if (got < BUS_RECV_VEC)
            break; /* the socket is empty */
    }
    if (bus.announced) {
        bus_loop_flush_later();
        bus.announced = false;
    }
    /* After the burst was applied: a lease granted for it is usable now. */
    if (bus.sync)
        bus_sync_after_receive(bus_now_us());
}

/* --- timers' work on the peers ------------------------------------------------------------ */

/* To the group, or to the configured peer the sender's datagrams come from. */
static void
send_nack(struct bus_peer *p)
{
    int dest = BUS_DEST_GROUP;
    if (!bus.ep.multicast) {
        dest = p->addrlen ? mcast_peer_index(&bus.ep, (struct sockaddr *)&p->addr, p->addrlen) : -1;
        if (dest < 0)
            return;
    }
    struct wire_nack n;
    bus_peer_missing(p, &n);
    if (n.n == 0)
        return;
    uint8_t buf[WIRE_PAYLOAD_MAX];
    bus_send_control_to(dest, WIRE_NACK, buf, wire_put_nack(buf, &n));
    bus_count(M_nacks_sent, 1);
}

int64_t
bus_peers_tick(int64_t now)
{
    int64_t next = INT64_MAX;
    pthread_mutex_lock(&bus.peers_lock);
    for (size_t i = 0; i < bus.npeers; i++) {
        struct bus_peer *p = &bus.peers[i];
        if (p->state != BUS_PEER_LIVE && now - p->last_heard_us > bus.forget_us &&
            bus_sync_may_forget(p, now)) {
            peer_remove(i--);
            continue;
        }
        bool nack_due;
        struct bus_peer_event ev;
        bus_peer_tick(p, now, &bus.timing, &nack_due, &ev);
        act(p, &ev);
        if (nack_due)
            send_nack(p);
        int64_t t = bus_peer_next_event(p, &bus.timing);
        if (p->state != BUS_PEER_LIVE && p->last_heard_us + bus.forget_us + 1 < t)
            t = p->last_heard_us + bus.forget_us + 1;
        if (t < next)
            next = t;
    }
    pthread_mutex_unlock(&bus.peers_lock);
    return next;
}
