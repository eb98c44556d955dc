/* lease: the read leases of --bus-sync between this node and one peer, both
 * ways. Pure logic, no I/O, no clock of its own: every time is the caller's
 * monotonic clock in microseconds, and the only times that cross the wire
 * are a node's own, echoed back to it.
 *
 * A node serves hits only while it holds a usable lease from every peer. A
 * lease is granted by echoing the grantee's own "now" (from its STATUS): it
 * runs from that instant, which is no later than the grant was sent, for
 * lease_us of the grantee's clock. A grant also names the granter's last
 * DATA seq when it was sent ("upto"): the grantee may use it only once it
 * has applied the granter's stream through upto. So a grant never lets a
 * node serve a copy that a DATA datagram sent before the grant changed.
 *
 * The granter bounds each grant without trusting the grantee's clock: the
 * request it echoes was sent before the granter heard it, so the lease ends
 * before heard + lease_us + margin on the granter's clock (the margin covers
 * the two clocks' rates). A write of the granter with DATA seq s is safe to
 * acknowledge once, for every peer, the peer applied s (its acked, reported
 * back in its STATUS) or every grant sent to it with upto < s has ended:
 * grants sent later need s applied before they can be used. The grants
 * with upto < s are the "checkpoints" kept below, one per distinct upto.
 * Invariant: checkpoint first_seq and expiry never decrease along the FIFO. */
#ifndef FLEETCACHE_BUS_LEASE_H
#define FLEETCACHE_BUS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_LEASE_CHECKPOINTS 32
#define BUS_LEASE_PENDING 4

/* Grants to a peer in flight: those sent when our last DATA seq was
 * first_seq - 1 end by expiry_us. */
struct bus_lease_checkpoint {
    uint64_t first_seq;
    int64_t expiry_us;
};

/* A grant from the peer that waits for us to apply its stream through upto. */
struct bus_lease_pending {
    uint64_t upto;
    int64_t until_us;
};

struct bus_lease {
    /* As granter: what we know of the peer's requests and acks. */
    uint64_t req_us;            /* its latest "now" (its clock), 0: none */
    int64_t req_heard_us;       /* ... when we heard it (our clock) */
    uint64_t acked_ours;        /* our DATA seqs it applied through (our life) */
    int64_t acked_at_us;        /* when that last moved */
    struct bus_lease_checkpoint cp[BUS_LEASE_CHECKPOINTS];
    unsigned cp_head, cp_count;
    uint64_t grants_sent;

    /* As grantee: its grants to us. */
    int64_t until_us;           /* the best grant we may use: hits until then */
    struct bus_lease_pending pending[BUS_LEASE_PENDING];
    unsigned npending;
    uint64_t grants_received;
};

/* Empties both directions (a new peer). */
void
bus_lease_init(struct bus_lease *l);

/* The peer changed life: its grants to us and its acks of our stream are of
 * a life that ended (our grants to it stay: they bound a node that may
 * still run). */
void
bus_lease_peer_restarted(struct bus_lease *l);

/* --- as granter ----------------------------------------------------------------------- */

/* The peer's STATUS: its now (request) heard at now_us, and its ack of our
 * stream (0 when it named another life of ours, or none). */
void
bus_lease_heard(struct bus_lease *l, uint64_t req_us, uint64_t acked_ours, int64_t now_us);

/* A grant to send now, our last DATA seq being data_seq: returns the value
 * to echo (0: no fresh request, no grant) and records its checkpoint, which
 * ends at heard + lease_us + margin_us. */
uint64_t
bus_lease_grant(struct bus_lease *l, uint64_t data_seq, int64_t now_us, int64_t lease_us,
                int64_t margin_us);

/* The highest of our DATA seqs (at most data_seq) that this peer can no
 * longer serve stale: applied, or every grant that would let it skip the
 * seq has ended. Drops the checkpoints that ended. */
uint64_t
bus_lease_covered(struct bus_lease *l, uint64_t data_seq, int64_t now_us);

/* When the oldest grant in flight ends (INT64_MAX: none): coverage can move then. */
int64_t
bus_lease_next_end(const struct bus_lease *l);

/* When the last grant in flight ends (0: none): the peer may be forgotten then. */
int64_t
bus_lease_last_end(const struct bus_lease *l);

/* --- as grantee ------------------------------------------------------------------------ */

/* A grant from the peer: our echoed now_us, its length, its upto; acked is
 * how far we applied its stream. Ignored when echo is in our future or
 * ended already. */
void
bus_lease_granted(struct bus_lease *l, uint64_t echo_us, uint64_t lease_us, uint64_t upto,
                  uint64_t acked, int64_t now_us);

/* We applied the peer's stream through acked: pending grants may become
 * usable. True when until_us moved. */
bool
bus_lease_applied(struct bus_lease *l, uint64_t acked);

#endif
