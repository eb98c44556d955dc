/* peer: what this node knows of one sender's current life — its boot epoch,
 * which DATA seqs of that epoch arrived, where the holes are and since when,
 * its control replay window, and when it was last heard. Pure logic, no I/O:
 * every call fills a struct bus_peer_event that tells the caller what to do
 * (NACK, flush, remember an ended life) and what to count. Which life to
 * follow is the caller's decision (bus/receive.c, with bus/floor.h): a
 * datagram of another epoch is refused here until bus_peer_switch. Invariant:
 * every DATA seq <= acked has been applied or made irrelevant by a flush; a
 * bit is set only for seqs in (acked, acked+W]. */
#ifndef FLEETCACHE_BUS_PEER_H
#define FLEETCACHE_BUS_PEER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bus/lease.h"
#include "bus/wire.h"

/* Holes further than this behind the newest seq are not tracked: they are
 * unrepairable by construction, as the sender's ring is never larger. */
#define BUS_PEER_WINDOW 4096
#define BUS_PEER_MARKS 32

enum bus_peer_state {
    BUS_PEER_LIVE,
    BUS_PEER_LOST,  /* silent past the peer timeout; we flushed */
    BUS_PEER_LEFT,  /* said goodbye (heartbeat with the leaving flag) */
};

#define BUS_FLUSH_REASONS(X) \
    X(deadline)   /* a hole stayed open past the repair deadline */     \
    X(gone)       /* the sender's ring no longer holds what we need */  \
    X(restart)    /* the sender came back with a new epoch */           \
    X(timeout)    /* the sender was silent past the peer timeout */     \
    X(too_far)    /* more missing than the window can track */           \
    X(epoch_back) /* the sender went back to an older life */           \
    X(stale_epoch) /* an older life we refuse to follow spoke */         \
    X(peers_full) /* a sender we cannot follow: the table is full of live peers */ \
    X(duplicate_id) /* another node uses our id: we cannot follow it */ \
    X(unreadable) /* DATA we cannot read (a newer format): applied as a flush */

enum bus_flush_reason {
#define BUS_FLUSH_ENUM(name) BUS_FLUSH_##name,
    BUS_FLUSH_REASONS(BUS_FLUSH_ENUM)
#undef BUS_FLUSH_ENUM
    BUS_FLUSH_REASON_COUNT
};

enum bus_peer_verdict {
    BUS_PEER_FRESH,      /* new: apply it */
    BUS_PEER_DUPLICATE,  /* this (epoch, seq) was seen: drop, count a replay */
    BUS_PEER_STALE,      /* not the epoch we follow (switch first): drop */
};

/* One life of a sender (one boot epoch), as far as we saw it. */
struct bus_life {
    uint64_t epoch;
    uint64_t data_high;         /* highest DATA seq known to exist */
    uint64_t ctl_high;          /* highest control seq accepted */
    bool clean;                 /* ended with a goodbye and nothing missing */
};

/* NACK timing. A gap is NACKed at once (after nack_delay_us plus a jitter
 * of up to nack_jitter_us, so that in a multicast fleet the first NACK
 * heard can suppress the others); while holes stay open the NACK is
 * repeated every 2 x the measured repair round trip + 250 us, kept within
 * [nack_min_us, nack_interval_us]. */
struct bus_peer_timing {
    int64_t nack_delay_us;      /* before the first NACK of a gap */
    int64_t nack_jitter_us;     /* ... plus up to this much, pseudo-random */
    int64_t nack_min_us;        /* the shortest interval between NACKs */
    int64_t nack_interval_us;   /* the longest interval between NACKs */
    int64_t repair_deadline_us; /* a hole older than this makes us flush */
    int64_t peer_timeout_us;    /* silence longer than this makes us flush */
};

struct bus_peer_event {
    bool flush;                 /* flush the whole local cache, for reason */
    enum bus_flush_reason reason;
    bool join_unknown;          /* first contact: the sender had sent seqs we never saw */
    bool new_epoch;
    bool epoch_back;            /* ... older than the one it ended */
    bool life_ended;            /* remember ended (bus/floor.h) */
    struct bus_life ended;
    bool gap;                   /* new holes opened */
    bool repaired;              /* this datagram filled a hole */
};

struct bus_peer_mark {
    uint64_t high;              /* holes up to here ... */
    int64_t since_us;           /* ... exist since then */
};

struct bus_peer {
    uint32_t node_id;
    uint64_t epoch;
    enum bus_peer_state state;
    bool baselined;             /* false until the first datagram sets acked */
    uint64_t acked;
    uint64_t high;              /* highest DATA seq known to exist */
    uint64_t seen[BUS_PEER_WINDOW / 64];
    struct bus_peer_mark marks[BUS_PEER_MARKS];
    unsigned mark_head, mark_count;
    int64_t next_nack_us;
    int64_t nack_sent_us;       /* last NACK, until its first repair arrives (RTT) */
    int64_t srtt_us;            /* smoothed NACK -> repair round trip, 0: none yet */
    uint32_t jitter_state;      /* xorshift for the NACK jitter */
    uint64_t nacks;             /* NACKs sent to it */
    uint64_t nacks_suppressed;  /* ... held back: another node asked for the same */
    uint64_t repairs;           /* repairs of it received (holes filled) */
    uint64_t nacks_in;          /* NACKs it sent us */
    uint64_t repairs_served;    /* our datagrams resent for its NACKs */
    uint64_t ctl_high, ctl_mask;
    int64_t last_heard_us;
    struct sockaddr_storage addr; /* where its datagrams come from: NACK target */
    socklen_t addrlen;
    struct bus_lease lease;     /* --bus-sync: read leases both ways (bus/lease.h) */
};

/* A peer first heard now, in epoch. whole_history: it booted after we did
 * (its epoch is newer than ours), so every DATA seq of this epoch matters to
 * us and missing ones from seq 1 on are NACKed; otherwise its earlier
 * history is unknown and the first datagram sets the baseline. */
void
bus_peer_init(struct bus_peer *p, uint32_t node_id, uint64_t epoch, bool whole_history,
              int64_t now_us);

/* A sender we no longer had an entry for, in a life we saw before: its
 * state is LEFT if that life ended clean, else LOST; seqs at or below what
 * we saw count as seen, the ones above are asked for as holes. */
void
bus_peer_resume(struct bus_peer *p, uint32_t node_id, const struct bus_life *life,
                int64_t now_us);

/* The sender now speaks in another life: epoch, from seq 1 (a new boot), or
 * from what we saw of it (resume, a life we followed before). The life it
 * leaves is ended into ev; that life's datagrams may be lost to us unless
 * it ended clean, so ev says flush (restart, or epoch_back when older). */
void
bus_peer_switch(struct bus_peer *p, uint64_t epoch, const struct bus_life *resume,
                int64_t now_us, struct bus_peer_event *ev);

/* This life as far as we saw it. */
struct bus_life
bus_peer_life(const struct bus_peer *p);

/* A DATA datagram (epoch, seq) arrived. */
enum bus_peer_verdict
bus_peer_data(struct bus_peer *p, uint64_t epoch, uint64_t seq, int64_t now_us,
              const struct bus_peer_timing *t, struct bus_peer_event *ev);

/* A control datagram (epoch, control seq) arrived: the replay window. Call
 * before acting on any HEARTBEAT, NACK or GONE. */
enum bus_peer_verdict
bus_peer_control(struct bus_peer *p, uint64_t epoch, uint64_t ctl_seq, int64_t now_us,
                 struct bus_peer_event *ev);

/* A fresh heartbeat's contents. */
void
bus_peer_heartbeat(struct bus_peer *p, uint64_t last_seq, bool leaving, int64_t now_us,
                   const struct bus_peer_timing *t, struct bus_peer_event *ev);

/* A fresh GONE: the sender cannot repeat seqs below oldest of asked_epoch. */
void
bus_peer_gone(struct bus_peer *p, uint64_t asked_epoch, uint64_t oldest, struct bus_peer_event *ev);

/* Timers: sets *nack_due when a NACK should go out now, flushes on the
 * repair deadline and the peer timeout. */
void
bus_peer_tick(struct bus_peer *p, int64_t now_us, const struct bus_peer_timing *t,
              bool *nack_due, struct bus_peer_event *ev);

/* True while some seq in (acked, high] is missing. */
bool
bus_peer_has_holes(const struct bus_peer *p);

/* The next time bus_peer_tick has work for p (a NACK, the repair deadline,
 * the peer timeout), or INT64_MAX: nothing pending. */
int64_t
bus_peer_next_event(const struct bus_peer *p, const struct bus_peer_timing *t);

/* The interval between NACKs to p now (RTT-scaled, within the bounds). */
int64_t
bus_peer_nack_interval(const struct bus_peer *p, const struct bus_peer_timing *t);

/* Another node NACKed p for n's ranges (multicast: its repairs will reach
 * us too). If we miss any of them, our own next NACK waits one interval.
 * True when it did. */
bool
bus_peer_suppress(struct bus_peer *p, const struct wire_nack *n, int64_t now_us,
                  const struct bus_peer_timing *t);

/* Sequence numbers of p known to exist but not applied yet, and how long
 * the oldest of them has been missing (0: nothing missing). */
uint64_t
bus_peer_lag_seqs(const struct bus_peer *p);
int64_t
bus_peer_lag_us(const struct bus_peer *p, int64_t now_us);

/* Fills n (target and epoch included) with the first missing ranges. */
void
bus_peer_missing(const struct bus_peer *p, struct wire_nack *n);

const char *
bus_peer_state_name(enum bus_peer_state s);

#endif
