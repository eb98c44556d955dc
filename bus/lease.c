/* lease: the two halves of a read lease between this node and one peer
 * (the protocol is in lease.h). Granter: requests heard, acks, and the
 * checkpoints of grants in flight. Grantee: the grant we may use, and the
 * few that wait for us to apply the granter's stream. */
#include "bus/lease.h"

#include <string.h>

void
bus_lease_init(struct bus_lease *l)
{
    memset(l, 0, sizeof(*l));
}

void
bus_lease_peer_restarted(struct bus_lease *l)
{
    l->req_us = 0;
    l->req_heard_us = 0;
    l->acked_ours = 0;
    l->until_us = 0;
    l->npending = 0;
}

void
bus_lease_heard(struct bus_lease *l, uint64_t req_us, uint64_t acked_ours, int64_t now_us)
{
    if (req_us > l->req_us) {
        l->req_us = req_us;
        l->req_heard_us = now_us;
    }
    if (acked_ours > l->acked_ours) {
        l->acked_ours = acked_ours;
        l->acked_at_us = now_us;
    }
}

uint64_t
bus_lease_grant(struct bus_lease *l, uint64_t data_seq, int64_t now_us, int64_t lease_us,
                int64_t margin_us)
{
    /* A request heard lease_us ago or earlier was sent earlier still: a
     * grant of it would have ended on arrival. */
    if (l->req_us == 0 || l->req_heard_us + lease_us <= now_us)
        return 0;
    int64_t end = l->req_heard_us + lease_us + margin_us;
    uint64_t first = data_seq + 1;
    struct bus_lease_checkpoint *last =
        l->cp_count ? &l->cp[(l->cp_head + l->cp_count - 1) % BUS_LEASE_CHECKPOINTS] : NULL;
    if (last && (last->first_seq == first || l->cp_count == BUS_LEASE_CHECKPOINTS)) {
        /* Same upto, or full: the last checkpoint widens to end later, which
         * only makes the writes it covers wait longer, never shorter. */
        if (end > last->expiry_us)
            last->expiry_us = end;
    } else {
        struct bus_lease_checkpoint *c =
            &l->cp[(l->cp_head + l->cp_count) % BUS_LEASE_CHECKPOINTS];
        c->first_seq = first;
        c->expiry_us = last && last->expiry_us > end ? last->expiry_us : end;
        l->cp_count++;
    }
    l->grants_sent++;
    return l->req_us;
}

uint64_t
bus_lease_covered(struct bus_lease *l, uint64_t data_seq, int64_t now_us)
{
    while (l->cp_count && l->cp[l->cp_head].expiry_us <= now_us) {
        l->cp_head = (l->cp_head + 1) % BUS_LEASE_CHECKPOINTS;
        l->cp_count--;
    }
    uint64_t cov = l->cp_count ? l->cp[l->cp_head].first_seq - 1 : data_seq;
    uint64_t acked = l->acked_ours < data_seq ? l->acked_ours : data_seq;
    if (cov > data_seq)
        cov = data_seq;
    return acked > cov ? acked : cov;
}

int64_t
bus_lease_next_end(const struct bus_lease *l)
{
    return l->cp_count ? l->cp[l->cp_head].expiry_us : INT64_MAX;
}

int64_t
bus_lease_last_end(const struct bus_lease *l)
{
    return l->cp_count ? l->cp[(l->cp_head + l->cp_count - 1) % BUS_LEASE_CHECKPOINTS].expiry_us
                       : 0;
}

void
bus_lease_granted(struct bus_lease *l, uint64_t echo_us, uint64_t lease_us, uint64_t upto,
                  uint64_t acked, int64_t now_us)
{
    if (echo_us == 0 || echo_us > (uint64_t)now_us || lease_us > INT64_MAX / 2)
        return;
    int64_t until = (int64_t)echo_us + (int64_t)lease_us;
    if (until <= now_us)
        return;
    l->grants_received++;
    if (upto <= acked) {
        if (until > l->until_us)
            l->until_us = until;
        return;
    }
    for (unsigned i = 0; i < l->npending; i++) {
        if (l->pending[i].upto == upto) {
            if (until > l->pending[i].until_us)
                l->pending[i].until_us = until;
            return;
        }
    }
    if (l->npending < BUS_LEASE_PENDING) {
        l->pending[l->npending++] = (struct bus_lease_pending){upto, until};
        return;
    }
    /* Full: the newest grant replaces the one that waits for the most. */
    unsigned far = 0;
    for (unsigned i = 1; i < l->npending; i++)
        if (l->pending[i].upto > l->pending[far].upto)
            far = i;
    if (until > l->pending[far].until_us)
        l->pending[far] = (struct bus_lease_pending){upto, until};
}

bool
bus_lease_applied(struct bus_lease *l, uint64_t acked)
{
    bool moved = false;
    for (unsigned i = 0; i < l->npending;) {
        if (l->pending[i].upto <= acked) {
            if (l->pending[i].until_us > l->until_us) {
                l->until_us = l->pending[i].until_us;
                moved = true;
            }
            l->pending[i] = l->pending[--l->npending];
        } else {
            i++;
        }
    }
    return moved;
}
