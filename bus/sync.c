/* sync: --bus-sync, read-your-writes across the fleet (the argument is in
 * docs/consistency.md; the lease protocol with one peer in bus/lease.h).
 *
 *   reads    a node serves hits only while it holds a usable lease from each
 *            of the --bus-sync-nodes - 1 other nodes and from every live
 *            peer: lease_until_ns, one atomic load for the workers.
 *   writes   every publication has a ticket; DATA seq s carries the tickets
 *            taken with it. Seq s is complete when each peer applied it (its
 *            STATUS says so) or every grant that would let it skip s ended;
 *            then its tickets are done, and the replies waiting for them go.
 *   STATUS   one datagram (per 36 peers) every lease/8; after applying DATA,
 *            or when a peer shows it missed our ack (at most every
 *            BUS_ACK_DELAY_US); and while our writes wait, asking for acks:
 *            our now (a request), our last DATA seq, and per peer the DATA
 *            seq of it we applied (an ack), how far we heard its acks of
 *            ours, and its last now we heard (a grant).
 *
 * Invariants: lease_until_ns is computed after the DATA of the burst was
 * applied to the cache, so a worker that sees a lease sees the drops it
 * stands for; a peer entry with one of our grants still running is never
 * forgotten; and no ticket is done before the lease of our previous life
 * (same node id) can have ended, boot + lease + margin. */
#include <string.h>

#include "bus/bus_internal.h"
#include "bus/wire.h"

void
bus_sync_setup(const struct bus_options *opts)
{
    bus.sync = opts->sync;
    bus.on_sync_progress = opts->on_sync_progress;
    atomic_store(&bus.sync_done, 0);
    bus.pub_ticket = bus.cur_first_ticket = 0;
    bus.tk_head = bus.tk_count = 0;
    bus.complete_seq = 0;
    bus.ack_owed = false;
    bus.last_status_us = 0;
    bus.ask_us = BUS_ACK_ASK_US;
    if (!bus.sync) {
        atomic_store(&bus.lease_until_ns, INT64_MAX);
        return;
    }
    unsigned nodes = opts->sync_nodes;
    if (nodes == 0)
        nodes = (unsigned)bus.ep.npeers + 1; /* unicast: the peers and us */
    bus.sync_need = nodes - 1;
    bus.lease_us = (int64_t)opts->lease_ms * 1000;
    bus.lease_margin_us = bus.lease_us / 16 + BUS_LEASE_SLACK_US;
    bus.status_interval_us = bus.lease_us / 8;
    bus.boot_until_us = bus_now_us() + bus.lease_us + bus.lease_margin_us;
    bus.next_status_us = 0;
    /* A fleet of one needs nobody's lease. */
    atomic_store(&bus.lease_until_ns, bus.sync_need == 0 ? INT64_MAX : 0);
}

bool
bus_sync_enabled(void)
{
    return bus.sync;
}

uint64_t
bus_sync_done(void)
{
    /* seq_cst: a worker parks (counts) then looks; the bus stores then
     * counts (net/conn.c's conn_park). */
    return atomic_load(&bus.sync_done);
}

bool
bus_read_ok(void)
{
    int64_t until = atomic_load_explicit(&bus.lease_until_ns, memory_order_acquire);
    if (until == INT64_MAX)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec < until)
        return true;
    bus_count(M_reads_refused, 1);
    return false;
}

bool
bus_sync_may_forget(const struct bus_peer *p, int64_t now_us)
{
    return bus_lease_last_end(&p->lease) <= now_us;
}

void
bus_sync_sent(uint64_t seq, uint64_t ticket)
{
    if (bus.tk_count) {
        unsigned last = (bus.tk_head + bus.tk_count - 1) % BUS_TICKETS;
        /* Full, or the same seq (nothing new went out): the newest entry
         * takes the later ticket, which only makes its writers wait for a
         * later seq. */
        if (bus.tickets[last].seq == seq || bus.tk_count == BUS_TICKETS) {
            bus.tickets[last].seq = seq;
            if (ticket > bus.tickets[last].ticket)
                bus.tickets[last].ticket = ticket;
            return;
        }
    }
    unsigned i = (bus.tk_head + bus.tk_count) % BUS_TICKETS;
    bus.tickets[i].seq = seq;
    bus.tickets[i].ticket = ticket;
    bus.tk_count++;
}

void
bus_sync_peer_restarted(struct bus_peer *p)
{
    bus_lease_peer_restarted(&p->lease);
}

void
bus_sync_status_in(struct bus_peer *p, const struct wire_status *st, int64_t now_us)
{
    bus_count(M_statuses_received, 1);
    uint64_t acked_ours = 0, echo = 0;
    for (unsigned i = 0; i < st->n; i++) {
        if (st->e[i].node == bus.node_id && st->e[i].epoch == bus.epoch) {
            acked_ours = st->e[i].acked;
            echo = st->e[i].echo;
            /* It does not know how far we applied its stream (our ack was
             * lost, or is on its way): say it again, soon. */
            if (st->e[i].acked_by < p->acked)
                bus.ack_owed = true;
            break;
        }
    }
    bus_lease_heard(&p->lease, st->now_us, acked_ours, now_us);
    if (echo) {
        uint64_t before = p->lease.grants_received;
        bus_lease_granted(&p->lease, echo, st->lease_us, st->last_seq, p->acked, now_us);
        if (p->lease.grants_received != before)
            bus_count(M_grants_received, 1);
    }
}

/* --- under peers_lock ------------------------------------------------------------------ */

/* The read lease: every live peer's usable grant, and at least sync_need
 * live peers. */
static void
lease_update_locked(void)
{
    if (bus.sync_need == 0)
        return;     /* INT64_MAX, set once */
    unsigned live = 0;
    int64_t until = INT64_MAX;
    for (size_t i = 0; i < bus.npeers; i++) {
        struct bus_peer *p = &bus.peers[i];
        (void)bus_lease_applied(&p->lease, p->acked);
        if (p->state != BUS_PEER_LIVE)
            continue;
        live++;
        if (p->lease.until_us < until)
            until = p->lease.until_us;
    }
    if (live < bus.sync_need || until <= 0)
        until = 0;
    atomic_store_explicit(&bus.lease_until_ns, until == 0 ? 0 : until * 1000,
                          memory_order_release);
}

/* Moves complete_seq and the tickets it completes; returns when a grant in
 * flight ends next, if writes wait for one (*waiting). */
static int64_t
complete_locked(int64_t now, bool *waiting_out)
{
    *waiting_out = false;
    if (now < bus.boot_until_us) {
        pthread_mutex_lock(&bus.send_lock);
        *waiting_out = bus.tk_count > 0;
        pthread_mutex_unlock(&bus.send_lock);
        return bus.boot_until_us;
    }
    uint64_t data_seq = atomic_load(&bus.data_seq), c = data_seq;
    bool expired = false;
    for (size_t i = 0; i < bus.npeers; i++) {
        struct bus_peer *p = &bus.peers[i];
        uint64_t cov = bus_lease_covered(&p->lease, data_seq, now);
        if (cov < c)
            c = cov;
        if (cov > p->lease.acked_ours && cov > bus.complete_seq)
            expired = true;     /* passed by a lease that ended, not by an ack */
    }
    if (c > bus.complete_seq)
        bus.complete_seq = c;
    uint64_t done = 0;
    bool waiting;
    pthread_mutex_lock(&bus.send_lock);
    while (bus.tk_count && bus.tickets[bus.tk_head].seq <= bus.complete_seq) {
        done = bus.tickets[bus.tk_head].ticket;
        bus.tk_head = (bus.tk_head + 1) % BUS_TICKETS;
        bus.tk_count--;
    }
    waiting = bus.tk_count > 0;
    pthread_mutex_unlock(&bus.send_lock);
    *waiting_out = waiting;
    if (done > atomic_load_explicit(&bus.sync_done, memory_order_relaxed)) {
        bus.ask_us = BUS_ACK_ASK_US;    /* progress: ask soon again next time */
        uint64_t before = atomic_exchange_explicit(&bus.sync_done, done, memory_order_seq_cst);
        bus_count(M_sync_writes, done - before);
        if (expired)
            bus_count(M_sync_expired, 1);
        if (bus.on_sync_progress)
            bus.on_sync_progress();
    }
    if (!waiting)
        return INT64_MAX;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < bus.npeers; i++) {
        int64_t e = bus_lease_next_end(&bus.peers[i].lease);
        if (e < next)
            next = e;
    }
    return next;
}

/* One STATUS (or more, 40 peers each) to the group or every peer. */
static void
send_status_locked(int64_t now)
{
    struct wire_status st;
    uint8_t p[WIRE_PAYLOAD_MAX];
    size_t i = 0;
    /* send_lock: last_seq and the grants' upto are one value, read once. */
    pthread_mutex_lock(&bus.send_lock);
    uint64_t data_seq = atomic_load(&bus.data_seq);
    do {
        memset(&st, 0, sizeof(st));
        st.lease_us = (uint32_t)bus.lease_us;
        st.now_us = (uint64_t)now;
        st.last_seq = data_seq;
        for (; i < bus.npeers && st.n < WIRE_STATUS_ENTRIES_MAX; i++) {
            struct bus_peer *q = &bus.peers[i];
            struct wire_status_entry *e = &st.e[st.n++];
            e->node = q->node_id;
            e->epoch = q->epoch;
            e->acked = q->acked;
            e->acked_by = q->lease.acked_ours;
            e->echo = bus_lease_grant(&q->lease, data_seq, now, bus.lease_us,
                                      bus.lease_margin_us);
            if (e->echo)
                bus_count(M_grants_sent, 1);
        }
        bus_send_control(WIRE_STATUS, p, wire_put_status(p, &st), NULL, 0);
        bus_count(M_statuses_sent, 1);
    } while (i < bus.npeers);
    pthread_mutex_unlock(&bus.send_lock);
    bus.last_status_us = now;
    bus.next_status_us = now + bus.status_interval_us;
    bus.ack_owed = false;
}

/* Sends what is due and returns when the next STATUS is due: every
 * status interval; an ack BUS_ACK_DELAY_US after the last STATUS at most;
 * and while writes wait, after BUS_ACK_ASK_US, then twice as long each time
 * nothing completes (a silent peer is waited out, not flooded): it tells
 * each peer how far we heard its acks, so one whose ack was lost says it
 * again. */
static int64_t
status_locked(int64_t now, bool waiting)
{
    if (bus.leaving)
        return INT64_MAX;   /* a goodbye grants nothing new */
    if (!waiting)
        bus.ask_us = BUS_ACK_ASK_US;
    int64_t next = bus.next_status_us;
    if (bus.ack_owed && bus.last_status_us + BUS_ACK_DELAY_US < next)
        next = bus.last_status_us + BUS_ACK_DELAY_US;
    if (waiting && bus.last_status_us + bus.ask_us < next)
        next = bus.last_status_us + bus.ask_us;
    if (now < next)
        return next;
    bool asking = waiting && next < bus.next_status_us && !bus.ack_owed;
    send_status_locked(now);
    if (asking && bus.ask_us < bus.status_interval_us)
        bus.ask_us *= 2;
    next = bus.next_status_us;
    if (waiting && now + bus.ask_us < next)
        next = now + bus.ask_us;
    return next;
}

/* --- entry points (bus thread) --------------------------------------------------------- */

int64_t
bus_sync_tick(int64_t now)
{
    bool waiting;
    pthread_mutex_lock(&bus.peers_lock);
    lease_update_locked();
    int64_t next = complete_locked(now, &waiting);
    int64_t s = status_locked(now, waiting);
    pthread_mutex_unlock(&bus.peers_lock);
    return next < s ? next : s;
}

void
bus_sync_after_receive(int64_t now)
{
    bus_loop_tick_at(bus_sync_tick(now));
}
