/* peer: gap detection and repair bookkeeping for one sender. Holes are
 * timed by "marks" (a FIFO of (highest hole, first noticed)), so the repair
 * deadline runs from when the oldest open hole was noticed, not from the
 * first hole of a long lossy stretch that keeps being partly repaired. */
#include "bus/peer.h"

#include <stdint.h>
#include <string.h>

#define BIT(seq) ((seq) % BUS_PEER_WINDOW)

static bool
test_bit(const struct bus_peer *p, uint64_t seq)
{
    return (p->seen[BIT(seq) / 64] >> (BIT(seq) % 64)) & 1;
}

static void
set_bit(struct bus_peer *p, uint64_t seq)
{
    p->seen[BIT(seq) / 64] |= (uint64_t)1 << (BIT(seq) % 64);
}

static void
clear_bit(struct bus_peer *p, uint64_t seq)
{
    p->seen[BIT(seq) / 64] &= ~((uint64_t)1 << (BIT(seq) % 64));
}

/* Forget every hole: after a flush nothing older matters any more. */
static void
skip_to(struct bus_peer *p, uint64_t seq)
{
    memset(p->seen, 0, sizeof(p->seen));
    p->acked = p->high = seq;
    p->mark_head = p->mark_count = 0;
    p->nack_sent_us = 0;
}

static void
flush(struct bus_peer_event *ev, enum bus_flush_reason why)
{
    if (!ev->flush) {
        ev->flush = true;
        ev->reason = why;
    }
}

/* xorshift32: the NACK jitter needs spread, not quality. */
static int64_t
jitter(struct bus_peer *p, int64_t max_us)
{
    if (max_us <= 0)
        return 0;
    uint32_t x = p->jitter_state ? p->jitter_state : (p->node_id | 1u);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->jitter_state = x;
    return (int64_t)(x % (uint32_t)(max_us + 1));
}

/* A new gap is NACKed at once (after the delay and jitter), however long
 * the NACK for older holes still has to wait: each NACK lists every hole,
 * and the sender rations what it resends. */
static void
push_mark(struct bus_peer *p, uint64_t high, int64_t now_us, const struct bus_peer_timing *t)
{
    int64_t first = now_us + t->nack_delay_us + jitter(p, t->nack_jitter_us);
    if (p->mark_count == 0 || first < p->next_nack_us)
        p->next_nack_us = first;
    if (p->mark_count == BUS_PEER_MARKS) {
        /* Full: widen the newest mark; its older time makes it stricter, never laxer. */
        p->marks[(p->mark_head + p->mark_count - 1) % BUS_PEER_MARKS].high = high;
        return;
    }
    struct bus_peer_mark *m = &p->marks[(p->mark_head + p->mark_count) % BUS_PEER_MARKS];
    m->high = high;
    m->since_us = now_us;
    p->mark_count++;
}

static void
advance(struct bus_peer *p)
{
    while (p->acked < p->high && test_bit(p, p->acked + 1)) {
        clear_bit(p, p->acked + 1);
        p->acked++;
    }
    while (p->mark_count && p->marks[p->mark_head].high <= p->acked) {
        p->mark_head = (p->mark_head + 1) % BUS_PEER_MARKS;
        p->mark_count--;
    }
    if (p->acked == p->high)
        p->nack_sent_us = 0; /* closed without a repair: no RTT sample */
}

void
bus_peer_init(struct bus_peer *p, uint32_t node_id, uint64_t epoch, bool whole_history,
              int64_t now_us)
{
    memset(p, 0, sizeof(*p));
    p->node_id = node_id;
    p->epoch = epoch;
    p->state = BUS_PEER_LIVE;
    p->last_heard_us = now_us;
    /* Repairing a young sender's first datagrams beats flushing our cache. */
    p->baselined = whole_history;
}

bool
bus_peer_has_holes(const struct bus_peer *p)
{
    return p->high > p->acked;
}

static bool
ended_clean(const struct bus_peer *p)
{
    return p->state == BUS_PEER_LEFT && p->baselined && !bus_peer_has_holes(p);
}

struct bus_life
bus_peer_life(const struct bus_peer *p)
{
    return (struct bus_life){.epoch = p->epoch, .data_high = p->high, .ctl_high = p->ctl_high,
                             .clean = ended_clean(p)};
}

/* Takes up life where we left it: what we saw of it counts as seen. */
static void
take_up(struct bus_peer *p, const struct bus_life *life)
{
    p->epoch = life->epoch;
    skip_to(p, life->data_high);
    p->baselined = true;
    p->ctl_high = life->ctl_high;
    p->ctl_mask = ~(uint64_t)0;  /* nothing at or below ctl_high passes again */
}

void
bus_peer_resume(struct bus_peer *p, uint32_t node_id, const struct bus_life *life,
                int64_t now_us)
{
    bus_peer_init(p, node_id, life->epoch, true, now_us);
    take_up(p, life);
    p->state = life->clean ? BUS_PEER_LEFT : BUS_PEER_LOST;
}

void
bus_peer_switch(struct bus_peer *p, uint64_t epoch, const struct bus_life *resume,
                int64_t now_us, struct bus_peer_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (epoch == p->epoch)
        return;
    /* Only a goodbye with nothing missing proves we lost nothing of the life
     * it ends; otherwise its last words may be gone for good. */
    ev->life_ended = true;
    ev->ended = bus_peer_life(p);
    ev->epoch_back = epoch < p->epoch;
    if (!ev->ended.clean)
        flush(ev, ev->epoch_back ? BUS_FLUSH_epoch_back : BUS_FLUSH_restart);
    ev->new_epoch = true;
    if (resume && resume->epoch == epoch) {
        take_up(p, resume);
    } else {
        p->epoch = epoch;
        skip_to(p, 0);
        p->baselined = true; /* a new epoch starts at seq 1: all of it counts */
        p->ctl_high = p->ctl_mask = 0;
    }
    p->state = BUS_PEER_LIVE;
    p->last_heard_us = now_us;
}

static void
heard(struct bus_peer *p, int64_t now_us)
{
    p->last_heard_us = now_us;
    if (p->state == BUS_PEER_LOST)
        p->state = BUS_PEER_LIVE;
}

/* The sender says seqs up to high exist. */
static void
learn_high(struct bus_peer *p, uint64_t high, int64_t now_us, const struct bus_peer_timing *t,
           struct bus_peer_event *ev)
{
    if (high <= p->high)
        return;
    if (high - p->acked > BUS_PEER_WINDOW) {
        flush(ev, BUS_FLUSH_too_far);
        skip_to(p, high);
        return;
    }
    push_mark(p, high, now_us, t);
    p->high = high;
    ev->gap = true;
}

enum bus_peer_verdict
bus_peer_data(struct bus_peer *p, uint64_t epoch, uint64_t seq, int64_t now_us,
              const struct bus_peer_timing *t, struct bus_peer_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (epoch != p->epoch)
        return BUS_PEER_STALE;
    heard(p, now_us);
    if (p->state == BUS_PEER_LEFT)
        p->state = BUS_PEER_LIVE;
    if (!p->baselined) {
        p->baselined = true;
        skip_to(p, seq - 1);
        ev->join_unknown = seq > 1;
    }
    if (seq <= p->acked)
        return BUS_PEER_DUPLICATE;
    if (seq - p->acked > BUS_PEER_WINDOW) {
        flush(ev, BUS_FLUSH_too_far);
        skip_to(p, seq - 1);
    }
    if (test_bit(p, seq))
        return BUS_PEER_DUPLICATE;
    set_bit(p, seq);
    if (seq <= p->high) {
        ev->repaired = true;
        p->repairs++;
        if (p->nack_sent_us) {
            /* The first repair after a NACK times the round trip. */
            int64_t rtt = now_us - p->nack_sent_us;
            p->srtt_us = p->srtt_us ? (7 * p->srtt_us + rtt) / 8 : rtt;
            p->nack_sent_us = 0;
        }
    } else
        learn_high(p, seq - 1, now_us, t, ev); /* holes up to seq - 1, if any */
    if (seq > p->high)
        p->high = seq;
    advance(p);
    return BUS_PEER_FRESH;
}

enum bus_peer_verdict
bus_peer_control(struct bus_peer *p, uint64_t epoch, uint64_t ctl_seq, int64_t now_us,
                 struct bus_peer_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (epoch != p->epoch)
        return BUS_PEER_STALE;
    /* 64-wide sliding window (as IPsec's): reordered control datagrams pass once. */
    if (ctl_seq > p->ctl_high) {
        uint64_t shift = ctl_seq - p->ctl_high;
        p->ctl_mask = shift >= 64 ? 0 : p->ctl_mask << shift;
        p->ctl_mask |= 1;
        p->ctl_high = ctl_seq;
    } else {
        uint64_t d = p->ctl_high - ctl_seq;
        if (d >= 64 || (p->ctl_mask >> d) & 1)
            return BUS_PEER_DUPLICATE;
        p->ctl_mask |= (uint64_t)1 << d;
    }
    heard(p, now_us);
    return BUS_PEER_FRESH;
}

void
bus_peer_heartbeat(struct bus_peer *p, uint64_t last_seq, bool leaving, int64_t now_us,
                   const struct bus_peer_timing *t, struct bus_peer_event *ev)
{
    if (!p->baselined) {
        p->baselined = true;
        skip_to(p, last_seq);
        ev->join_unknown = last_seq > 0;
    } else {
        learn_high(p, last_seq, now_us, t, ev);
    }
    p->state = leaving ? BUS_PEER_LEFT : BUS_PEER_LIVE;
}

void
bus_peer_gone(struct bus_peer *p, uint64_t asked_epoch, uint64_t oldest, struct bus_peer_event *ev)
{
    if (asked_epoch != p->epoch || !bus_peer_has_holes(p))
        return;
    /* Holes at or above oldest can still be repaired; only older ones are lost. */
    if (oldest != 0 && p->acked + 1 >= oldest)
        return;
    flush(ev, BUS_FLUSH_gone);
    skip_to(p, p->high);
}

void
bus_peer_tick(struct bus_peer *p, int64_t now_us, const struct bus_peer_timing *t,
              bool *nack_due, struct bus_peer_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    *nack_due = false;
    if (p->state == BUS_PEER_LIVE && now_us - p->last_heard_us > t->peer_timeout_us) {
        p->state = BUS_PEER_LOST;
        flush(ev, BUS_FLUSH_timeout);
        skip_to(p, p->high);
        return;
    }
    if (!bus_peer_has_holes(p))
        return;
    if (p->mark_count && now_us - p->marks[p->mark_head].since_us > t->repair_deadline_us) {
        flush(ev, BUS_FLUSH_deadline);
        skip_to(p, p->high);
        return;
    }
    if (p->state != BUS_PEER_LOST && now_us >= p->next_nack_us) {
        *nack_due = true;
        p->nack_sent_us = now_us;
        p->nacks++;
        p->next_nack_us = now_us + bus_peer_nack_interval(p, t);
    }
}

int64_t
bus_peer_nack_interval(const struct bus_peer *p, const struct bus_peer_timing *t)
{
    int64_t iv = p->srtt_us ? 2 * p->srtt_us + 250 : 2 * t->nack_min_us;
    if (iv < t->nack_min_us)
        iv = t->nack_min_us;
    if (iv > t->nack_interval_us)
        iv = t->nack_interval_us;
    return iv;
}

int64_t
bus_peer_next_event(const struct bus_peer *p, const struct bus_peer_timing *t)
{
    int64_t next = INT64_MAX;
    if (p->state == BUS_PEER_LIVE)
        next = p->last_heard_us + t->peer_timeout_us + 1;
    if (bus_peer_has_holes(p)) {
        if (p->mark_count) {
            int64_t dl = p->marks[p->mark_head].since_us + t->repair_deadline_us + 1;
            if (dl < next)
                next = dl;
        }
        if (p->state != BUS_PEER_LOST && p->next_nack_us < next)
            next = p->next_nack_us;
    }
    return next;
}

/* True when [first, last] lies within the union of n's ranges (which a
 * NACK lists in ascending order). */
static bool
nack_covers(const struct wire_nack *n, uint64_t first, uint64_t last)
{
    uint64_t cur = first;
    for (unsigned i = 0; i < n->n && cur <= last; i++) {
        uint64_t a = n->r[i].first, b = a + n->r[i].count - 1;
        if (a <= cur && b >= cur)
            cur = b + 1;
    }
    return cur > last;
}

bool
bus_peer_suppress(struct bus_peer *p, const struct wire_nack *n, int64_t now_us,
                  const struct bus_peer_timing *t)
{
    if (n->epoch != p->epoch || !bus_peer_has_holes(p))
        return false;
    /* Only a NACK that asks for every hole we would ask for makes ours
     * unnecessary: in a large fleet other nodes' NACKs overlap ours all the
     * time, and one that covers part of our holes must not hold back our
     * request for the rest. */
    struct wire_nack mine;
    bus_peer_missing(p, &mine);
    for (unsigned i = 0; i < mine.n; i++)
        if (!nack_covers(n, mine.r[i].first, mine.r[i].first + mine.r[i].count - 1))
            return false;
    int64_t later = now_us + bus_peer_nack_interval(p, t);
    if (later <= p->next_nack_us)
        return false;
    p->next_nack_us = later;
    p->nacks_suppressed++;
    return true;
}

uint64_t
bus_peer_lag_seqs(const struct bus_peer *p)
{
    return p->high - p->acked;
}

int64_t
bus_peer_lag_us(const struct bus_peer *p, int64_t now_us)
{
    if (!bus_peer_has_holes(p) || p->mark_count == 0)
        return 0;
    int64_t age = now_us - p->marks[p->mark_head].since_us;
    return age > 0 ? age : 0;
}

void
bus_peer_missing(const struct bus_peer *p, struct wire_nack *n)
{
    n->target = p->node_id;
    n->epoch = p->epoch;
    n->n = 0;
    uint64_t s = p->acked + 1;
    while (s <= p->high && n->n < WIRE_NACK_RANGES_MAX) {
        if (test_bit(p, s)) {
            s++;
            continue;
        }
        uint64_t first = s;
        while (s <= p->high && !test_bit(p, s))
            s++;
        n->r[n->n].first = first;
        n->r[n->n].count = (uint32_t)(s - first);
        n->n++;
    }
}

const char *
bus_peer_state_name(enum bus_peer_state s)
{
    switch (s) {
    case BUS_PEER_LIVE:
        return "live";
    case BUS_PEER_LOST:
        return "lost";
    case BUS_PEER_LEFT:
        return "left";
    }
    return "unknown";
}
