/* send: the outbound side of the bus. The publish queue (pub_lock): worker
 * threads, and the bus thread's announcements, add records to the current
 * batch; full batches wait in a ready queue. DATA sending (send_lock): the
 * thread that finds a batch due numbers it, keeps it in the ring and sends it
 * (bus_publish_poll: usually a publishing worker between two loop
 * iterations, so a busy node never wakes the bus thread for its keys).
 * Heartbeats and repairs from the ring take send_lock too. Invariants: DATA
 * seqs follow the order batches were taken; no heartbeat goes out after DATA
 * it does not count; a ring slot being resent is never overwritten. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"
#include "bus/wire.h"
#include "src/log.h"

/* --- the publish queue (pub_lock) ------------------------------------------------- */

/* --bus-sync: the ticket of this thread's last publication. */
static _Thread_local uint64_t my_ticket;

uint64_t
bus_sync_ticket(void)
{
    return my_ticket;
}

static struct bus_batch *
batch_get_locked(void)
{
    if (bus.nspare)
        return bus.spare[--bus.nspare];
    struct bus_batch *b = malloc(sizeof(*b));
    if (b)
        bus_batch_init(b);
    return b;
}

static void
batch_put_locked(struct bus_batch *b)
{
    bus_batch_reset(b);
    if (bus.nspare < BUS_READY_MAX)
        bus.spare[bus.nspare++] = b;
    else
        free(b);
}

/* Moves the full current batch to the ready queue. When that cannot be done
 * the batch's keys are lost, so the peers are told to flush instead. */
static void
rotate_locked(void)
{
    struct bus_batch *next = batch_get_locked();
    if (!next || bus.nready == BUS_READY_MAX) {
        bus.overflow = true;
        atomic_store_explicit(&bus.due_ns, 0, memory_order_relaxed);
        bus_batch_reset(bus.cur);
        if (next)
            batch_put_locked(next);
        return;
    }
    bus.ready[bus.nready++] = bus.cur;
    bus.cur = next;
    atomic_store_explicit(&bus.due_ns, 0, memory_order_relaxed); /* a full batch goes now */
}

/* When cur, first recorded at since, may go: Nagle's rule, see bus_flush_due. */
static int64_t
due_locked(int64_t since)
{
    int64_t last = atomic_load_explicit(&bus.last_data_ns, memory_order_relaxed);
    return (last < since ? last : since) + bus.flush_delay_ns;
}

/* Starts cur's clock when it gets its first record. */
static void
note_first_locked(void)
{
    if (bus_batch_empty(bus.cur)) {
        bus.cur_since_ns = bus_mono_ns();
        bus.cur_first_ticket = bus.pub_ticket;
        /* Full batches waiting are due now, whatever cur's clock says. */
        if (bus.nready == 0 && !bus.overflow)
            atomic_store_explicit(&bus.due_ns, due_locked(bus.cur_since_ns),
                                  memory_order_relaxed);
    }
}

static void
add_invalidate_locked(const char *key, size_t nkey, bool has_hash, uint64_t hash)
{
    note_first_locked();
    enum bus_batch_result r = bus_batch_add_invalidate(bus.cur, key, nkey, has_hash, hash);
    if (r == BUS_BATCH_FULL) {
        rotate_locked();
        note_first_locked();
        r = bus_batch_add_invalidate(bus.cur, key, nkey, has_hash, hash);
    }
    if (r == BUS_BATCH_MERGED)
        bus_count(M_keys_merged, 1);
    atomic_store_explicit(&bus.pending, true, memory_order_relaxed);
}

void
bus_publish_invalidate(const char *key, size_t nkey, bool has_hash, uint64_t value_hash)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX)
        return;
    int64_t t = bus_mono_ms();
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        bus_count(M_keys_published, 1);
        if (bus.announce_window_ms > 0)
            bus_recent_note(&bus.recent, key, nkey, t);
        my_ticket = ++bus.pub_ticket;
        add_invalidate_locked(key, nkey, has_hash, value_hash);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

void
bus_publish_stale(const char *key, size_t nkey, bool has_exptime, int64_t exptime)
{
    if (nkey == 0 || nkey > WIRE_KEY_MAX)
        return;
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        bus_count(M_keys_published, 1);
        my_ticket = ++bus.pub_ticket;
        note_first_locked();
        if (bus_batch_add_stale(bus.cur, key, nkey, has_exptime, exptime) == BUS_BATCH_FULL) {
            rotate_locked();
            note_first_locked();
            (void)bus_batch_add_stale(bus.cur, key, nkey, has_exptime, exptime);
        }
        atomic_store_explicit(&bus.pending, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

void
bus_publish_flush(int64_t delay)
{
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        bus_count(M_flushes_published, 1);
        my_ticket = ++bus.pub_ticket;
        note_first_locked();
        if (bus_batch_add_flush(bus.cur, delay) == BUS_BATCH_FULL) {
            rotate_locked();
            note_first_locked();
            if (bus_batch_add_flush(bus.cur, delay) == BUS_BATCH_FULL)
                bus.overflow = true;
        }
        atomic_store_explicit(&bus.pending, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

bool
bus_published_lately(const char *key, size_t nkey, int64_t now_ms)
{
    if (bus.announce_window_ms == 0)
        return false;   /* the rule is off */
    pthread_mutex_lock(&bus.pub_lock);
    bool maybe = bus_recent_maybe(&bus.recent, key, nkey, now_ms, bus.announce_window_ms);
    pthread_mutex_unlock(&bus.pub_lock);
    return maybe;
}

void
bus_queue_announce(const char *key, size_t nkey)
{
    pthread_mutex_lock(&bus.pub_lock);
    if (bus.running) {
        ++bus.pub_ticket;
        add_invalidate_locked(key, nkey, false, 0);
    }
    pthread_mutex_unlock(&bus.pub_lock);
}

void
bus_send_release(void)
{
    pthread_mutex_lock(&bus.pub_lock);
    free(bus.cur);
    bus.cur = NULL;
    for (size_t i = 0; i < bus.nready; i++)
        free(bus.ready[i]);
    for (size_t i = 0; i < bus.nspare; i++)
        free(bus.spare[i]);
    bus.nready = bus.nspare = 0;
    pthread_mutex_unlock(&bus.pub_lock);
}

/* --- sending (DATA from any thread, control from the bus thread) ---------------- */

void
bus_sent(size_t ndatagrams, unsigned failures)
{
    bus_count(M_datagrams_sent, ndatagrams - failures);
    if (failures)
        bus_count(M_send_errors, failures);
}

/* Under send_lock. */
static void
send_payload_data(const uint8_t *payload, size_t plen, unsigned nkeys)
{
    struct wire_header h = {
        .version = wire_data_version(payload, plen), /* 1 unless it holds a stale mark */
        .type = WIRE_DATA,
        .node_id = bus.node_id,
        .epoch = bus.epoch,
        .seq = atomic_load(&bus.data_seq) + 1,
    };
    uint8_t dgram[WIRE_DATAGRAM_MAX];
    size_t n = bus_crypto_frame(bus_seal_key(), &h, payload, plen, dgram, sizeof(dgram));
    if (n == 0)
        return; /* cannot happen: a batch never exceeds WIRE_PAYLOAD_MAX */
    bus_ring_put(bus.ring, h.seq, dgram, n);
    atomic_store(&bus.data_seq, h.seq);
    bus_count(M_batches_sent, 1);
    bus_count(M_keys_sent, nkeys);
    size_t fanout = bus.ep.multicast ? 1 : bus.ep.npeers;
    bus_sent(fanout, mcast_send_all(&bus.ep, dgram, n));
    int64_t sent = bus_mono_ns();
    int64_t prev = atomic_load(&bus.last_data_ns);
    /* The tail after it: the bus thread's timer, armed from here. Waking the
     * bus thread instead cost the publishing node a context switch per
     * datagram, on the core that serves its clients. More DATA is coming
     * when keys already wait, or on a steady stream (this datagram followed
     * the last one within a flush delay and a repeat's wait). */
    bool steady = (prev > 0 && sent - prev < bus.flush_delay_ns + bus.tail_repeat_us * 1000) ||
                  atomic_load_explicit(&bus.pending, memory_order_relaxed);
    atomic_store(&bus.data_steady, steady); /* before the time: tail_run reads it after */
    atomic_store(&bus.last_data_ns, sent);
    bus_loop_tail(sent / 1000, steady);
}

void
bus_send_tail_repeat(void)
{
    pthread_mutex_lock(&bus.send_lock);
    const uint8_t *d;
    size_t len;
    if (bus_ring_get(bus.ring, atomic_load(&bus.data_seq), &d, &len)) {
        size_t fanout = bus.ep.multicast ? 1 : bus.ep.npeers;
        bus_sent(fanout, mcast_send_all(&bus.ep, d, len));
        bus_count(M_tail_repeats, 1);
    }
    pthread_mutex_unlock(&bus.send_lock);
}

static void
send_batch(struct bus_batch *b)
{
    if (!bus_batch_empty(b))
        send_payload_data(b->payload, b->len, b->nkeys);
}

void
bus_send_control(uint8_t type, const uint8_t *payload, size_t plen, const struct sockaddr *to,
                 socklen_t tolen)
{
    struct wire_header h = {
        .type = type,
        .node_id = bus.node_id,
        .epoch = bus.epoch,
        .seq = ++bus.ctl_seq,
    };
    uint8_t dgram[WIRE_DATAGRAM_MAX];
    size_t n = bus_crypto_frame(bus_seal_key(), &h, payload, plen, dgram, sizeof(dgram));
    if (n == 0)
        return;
    if (to)
        bus_sent(1, mcast_send_to(&bus.ep, to, tolen, dgram, n) ? 0 : 1);
    else
        bus_sent(bus.ep.multicast ? 1 : bus.ep.npeers, mcast_send_all(&bus.ep, dgram, n));
}

void
bus_send_control_to(int dest, uint8_t type, const uint8_t *payload, size_t plen)
{
    if (dest == BUS_DEST_GROUP)
        bus_send_control(type, payload, plen, (const struct sockaddr *)&bus.ep.group,
                         sizeof(bus.ep.group));
    else if (dest >= 0 && (size_t)dest < bus.ep.npeers)
        bus_send_control(type, payload, plen, (const struct sockaddr *)&bus.ep.peers[dest],
                         sizeof(bus.ep.peers[dest]));
}

void
bus_send_heartbeat(bool leaving)
{
    /* Under send_lock, as DATA: a worker's datagram cannot slip between
     * reading last_seq and sending, so no heartbeat goes out after DATA it
     * does not count. */
    pthread_mutex_lock(&bus.send_lock);
    uint8_t p[WIRE_PAYLOAD_MAX];
    struct wire_heartbeat hb = {.last_seq = atomic_load(&bus.data_seq),
                                .leaving = leaving || bus.leaving};
    bus_send_control(WIRE_HEARTBEAT, p, wire_put_heartbeat(p, &hb), NULL, 0);
    pthread_mutex_unlock(&bus.send_lock);
    bus_count(M_heartbeats_sent, 1);
}

/* Due is Nagle's rule with a clock: a flush delay after the previous DATA
 * datagram, or after the batch's first record if that came later. On a quiet
 * bus a key goes out at once; under load partial datagrams leave at most once
 * a delay, and no record ever waits longer than the delay. */
int64_t
bus_flush_due(bool force)
{
    struct bus_batch *out[BUS_READY_MAX + 1];
    int64_t wait = -1;
    /* send_lock first and throughout: batches get their sequence numbers in
     * the order they were taken, so a key's newer record never goes out
     * before an older one (a receiver keeps a copy whose hash matches the
     * last record it applied). Publishers only wait for the take. */
    pthread_mutex_lock(&bus.send_lock);
    pthread_mutex_lock(&bus.pub_lock);
    size_t n = bus.nready;
    memcpy(out, bus.ready, n * sizeof(out[0]));
    bus.nready = 0;
    bool overflow = bus.overflow;
    bus.overflow = false;
    /* Every ticket up to this one goes out below: cur's keys wait only if
     * cur stays (a lost key of an overflow is covered by its flush). */
    uint64_t sent_ticket = bus.pub_ticket;
    if (!bus_batch_empty(bus.cur)) {
        int64_t due = due_locked(bus.cur_since_ns), now = bus_mono_ns();
        int64_t left = due - now;
        struct bus_batch *next = force || left <= 0 ? batch_get_locked() : NULL;
        if (next) {
            out[n++] = bus.cur;
            bus.cur = next;
        } else {
            sent_ticket = bus.cur_first_ticket - 1;
            /* Not due yet (or no memory for a fresh batch: try again soon). */
            wait = left > 0 ? (left + 999) / 1000 : 1000;
            atomic_store_explicit(&bus.due_ns, left > 0 ? due : now + 1000000,
                                  memory_order_relaxed);
        }
    }
    atomic_store_explicit(&bus.pending, !bus_batch_empty(bus.cur), memory_order_relaxed);
    pthread_mutex_unlock(&bus.pub_lock);
    if (n == 0 && !overflow) {
        pthread_mutex_unlock(&bus.send_lock);
        return wait;
    }
    for (size_t i = 0; i < n; i++)
        send_batch(out[i]);
    if (overflow) {
        /* Some keys never made it into a datagram: the peers must flush. */
        uint8_t p[WIRE_FLUSH_SIZE];
        size_t len = 0;
        wire_put_flush(p, sizeof(p), &len, 0);
        send_payload_data(p, len, 0);
        bus_count(M_overflows, 1);
    }
    if (bus.sync)
        bus_sync_sent(atomic_load(&bus.data_seq), sent_ticket);
    pthread_mutex_unlock(&bus.send_lock);
    /* --bus-sync: the bus thread completes tickets; it may have looked
     * before these went in (and with no peer to wait for, they are done). */
    if (bus.sync)
        bus_loop_wake();
    if (overflow) {
        static struct log_limit overflow_log = LOG_LIMIT_INIT;
        log_limited(&overflow_log, 10000, LOG_ERROR,
                    "bus: publishers outran the send queue; asked the peers to flush");
    }
    pthread_mutex_lock(&bus.pub_lock);
    for (size_t i = 0; i < n; i++)
        batch_put_locked(out[i]);
    pthread_mutex_unlock(&bus.pub_lock);
    return wait;
}

int64_t
bus_publish_poll(void)
{
    if (!atomic_load_explicit(&bus.pending, memory_order_relaxed))
        return -1;
    /* Not due: answer without the lock. A hint read stale is at most one
     * flush delay ahead, or in the past, which only costs the lock. */
    int64_t left = atomic_load_explicit(&bus.due_ns, memory_order_relaxed) - bus_mono_ns();
    if (left > 0)
        return (left + 999) / 1000;
    return bus_flush_due(false);
}

/* --- repairs (bus thread) --------------------------------------------------------- */

static void
send_gone(uint32_t target, uint64_t epoch, int dest)
{
    uint8_t p[WIRE_PAYLOAD_MAX];
    pthread_mutex_lock(&bus.send_lock);
    uint64_t oldest = bus_ring_oldest(bus.ring);
    pthread_mutex_unlock(&bus.send_lock);
    struct wire_gone g = {.target = target, .epoch = epoch, .oldest = oldest};
    bus_send_control_to(dest, WIRE_GONE, p, wire_put_gone(p, &g));
    bus_count(M_gones_sent, 1);
}

/* One repair token of dest, if any is left: a bucket of the ring's size,
 * refilled at the ring's size per repair_window_us. Under send_lock. */
static bool
repair_token(unsigned dest, int64_t now)
{
    double cap = (double)bus_ring_capacity(bus.ring);
    double *tokens = &bus.repair_budget[dest].tokens;
    int64_t *at = &bus.repair_budget[dest].at_us;
    if (*at == 0) {
        *tokens = cap;
    } else if (now > *at) {
        *tokens += cap * (double)(now - *at) / (double)bus.repair_window_us;
        if (*tokens > cap)
            *tokens = cap;
    }
    *at = now;
    if (*tokens < 1.0)
        return false;
    *tokens -= 1.0;
    return true;
}

/* A NACK is the only datagram answered with more bytes than it holds, so
 * its answers go only to the fleet (dest), each datagram of the ring at
 * most once per ration_us to each dest (a requester that lost the
 * repair asks again after its NACK interval, never shorter), and at most
 * the ring's size per repair_window_us to each dest: a flood of NACKs,
 * forged or real, gets nothing more. */
unsigned
bus_serve_nack(uint32_t from, const struct wire_nack *n, int dest)
{
    bus_count(M_nacks_received, 1);
    if (n->epoch != bus.epoch) {
        send_gone(from, n->epoch, dest);
        return 0;
    }
    const struct sockaddr *to;
    socklen_t tolen;
    if (dest == BUS_DEST_GROUP) {
        to = (const struct sockaddr *)&bus.ep.group;
        tolen = sizeof(bus.ep.group);
    } else if (dest >= 0 && (size_t)dest < bus.ep.npeers) {
        to = (const struct sockaddr *)&bus.ep.peers[dest];
        tolen = sizeof(bus.ep.peers[dest]);
    } else {
        return 0;
    }
    unsigned served = 0;
    unsigned ration_dest = dest == BUS_DEST_GROUP ? 0 : (unsigned)dest;
    int64_t now = bus_now_us();
    /* Held while repairing: a sender must not overwrite a slot being resent. */
    pthread_mutex_lock(&bus.send_lock);
    uint64_t oldest = bus_ring_oldest(bus.ring), newest = atomic_load(&bus.data_seq);
    bool gone = false;
    unsigned budget = BUS_REPAIRS_PER_NACK;
    for (unsigned i = 0; i < n->n && budget; i++) {
        uint64_t first = n->r[i].first, last = first + n->r[i].count - 1;
        if (first < oldest || oldest == 0)
            gone = true;
        if (first < oldest)
            first = oldest;
        if (last > newest)
            last = newest; /* never sent: nothing to repeat */
        for (uint64_t s = first; s <= last && budget && oldest; s++, budget--) {
            const uint8_t *d;
            size_t len;
            if (!bus_ring_get(bus.ring, s, &d, &len))
                continue;
            if (!bus_ring_may_repair(bus.ring, s, ration_dest, now, bus.ration_us)) {
                bus_count(M_repairs_rationed, 1);
                continue;
            }
            if (!repair_token(ration_dest, now)) {
                bus_count(M_repairs_throttled, 1);
                continue;
            }
            bus_sent(1, mcast_send_to(&bus.ep, to, tolen, d, len) ? 0 : 1);
            bus_count(M_repairs_sent, 1);
            served++;
        }
    }
    pthread_mutex_unlock(&bus.send_lock);
    if (gone)
        send_gone(from, n->epoch, dest);
    return served;
}
