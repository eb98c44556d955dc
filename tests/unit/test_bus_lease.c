/* Tests for bus/lease.c: what a granter may promise and when a write may
 * pass a peer; when a grantee may use a grant. Times are plain numbers. */
#include "bus/lease.h"

#include <criterion/criterion.h>
#include <string.h>

#define L 100000        /* lease, us */
#define M 6450          /* margin, us */

static struct bus_lease l;

static void
init(void)
{
    bus_lease_init(&l);
}

TestSuite(bus_lease, .init = init);

Test(bus_lease, no_request_no_grant_and_a_stale_request_is_not_granted)
{
    cr_assert_eq(bus_lease_grant(&l, 10, 1000, L, M), 0);
    bus_lease_heard(&l, 777, 0, 1000);
    cr_assert_eq(bus_lease_grant(&l, 10, 1000 + L, L, M), 0,
                 "heard a lease ago: it would end on arrival");
    cr_assert_eq(l.cp_count, 0);
}

Test(bus_lease, a_grant_echoes_the_latest_request_and_bounds_it_from_when_it_was_heard)
{
    bus_lease_heard(&l, 500, 0, 1000);
    bus_lease_heard(&l, 400, 0, 1500);      /* an older request, reordered: ignored */
    cr_assert_eq(bus_lease_grant(&l, 10, 2000, L, M), 500);
    cr_assert_eq(l.cp_count, 1);
    cr_assert_eq(l.cp[0].first_seq, 11, "it lets the peer skip seqs from 11 on");
    cr_assert_eq(l.cp[0].expiry_us, 1000 + L + M, "heard + lease + margin, not sent + ...");
}

Test(bus_lease, a_write_passes_a_peer_by_its_ack_or_once_every_grant_that_skips_it_ended)
{
    bus_lease_heard(&l, 500, 0, 1000);
    bus_lease_grant(&l, 10, 1000, L, M);    /* upto 10: seqs >= 11 may be skipped */
    uint64_t end = 1000 + L + M;
    cr_assert_eq(bus_lease_covered(&l, 12, 2000), 10, "12 and 11 wait for it");
    bus_lease_heard(&l, 600, 11, 3000);     /* acked 11 */
    cr_assert_eq(bus_lease_covered(&l, 12, 3000), 11);
    cr_assert_eq(bus_lease_next_end(&l), (int64_t)end);
    cr_assert_eq(bus_lease_covered(&l, 12, (int64_t)end - 1), 11);
    cr_assert_eq(bus_lease_covered(&l, 12, (int64_t)end), 12, "the grant ended: all of ours");
    cr_assert_eq(l.cp_count, 0);
}

Test(bus_lease, a_grant_sent_after_a_write_does_not_hold_it_up)
{
    bus_lease_heard(&l, 500, 10, 1000);
    bus_lease_grant(&l, 10, 1000, L, M);    /* first_seq 11 */
    bus_lease_heard(&l, 600, 10, 5000);
    bus_lease_grant(&l, 12, 5000, L, M);    /* sent after 11, 12: first_seq 13 */
    /* Seq 12 waits only for the grant that lets it be skipped (first 11). */
    cr_assert_eq(bus_lease_covered(&l, 12, 1000 + L + M), 12);
    cr_assert_eq(bus_lease_covered(&l, 14, 1000 + L + M), 12, "13, 14 wait for the second");
}

Test(bus_lease, grants_with_one_upto_share_a_checkpoint_and_a_full_queue_widens_its_last)
{
    for (int i = 0; i < 5; i++) {
        bus_lease_heard(&l, 500 + i, 0, 1000 + i);
        bus_lease_grant(&l, 10, 1000 + i, L, M);
    }
    cr_assert_eq(l.cp_count, 1);
    cr_assert_eq(l.cp[0].expiry_us, 1004 + L + M, "the latest end");
    for (uint64_t s = 11; s < 11 + 2 * BUS_LEASE_CHECKPOINTS; s++) {
        bus_lease_heard(&l, 1000 + s, 0, (int64_t)(2000 + s));
        bus_lease_grant(&l, s, (int64_t)(2000 + s), L, M);
    }
    cr_assert_eq(l.cp_count, BUS_LEASE_CHECKPOINTS);
    for (unsigned i = 1; i < l.cp_count; i++) {
        const struct bus_lease_checkpoint *a = &l.cp[(l.cp_head + i - 1) % BUS_LEASE_CHECKPOINTS];
        const struct bus_lease_checkpoint *b = &l.cp[(l.cp_head + i) % BUS_LEASE_CHECKPOINTS];
        cr_assert(a->first_seq < b->first_seq && a->expiry_us <= b->expiry_us, "in order");
    }
    /* The newest grant (upto 10 + 2 x 32) must still hold up seq 11 + 2 x 32 - 1. */
    uint64_t newest = 10 + 2 * BUS_LEASE_CHECKPOINTS;
    cr_assert_lt(bus_lease_covered(&l, newest + 1, 2000 + (int64_t)newest + L + M - 1), newest);
    cr_assert_eq(bus_lease_last_end(&l), 2000 + (int64_t)newest + L + M);
}

Test(bus_lease, a_grant_is_usable_once_its_upto_is_applied)
{
    bus_lease_granted(&l, 900, L, 20, 20, 1000);
    cr_assert_eq(l.until_us, 900 + L, "applied through 20: usable at once");
    bus_lease_granted(&l, 950, L, 25, 20, 1100);
    cr_assert_eq(l.until_us, 900 + L, "25 not applied yet");
    cr_assert_not(bus_lease_applied(&l, 24));
    cr_assert(bus_lease_applied(&l, 25));
    cr_assert_eq(l.until_us, 950 + L);
    cr_assert_eq(l.npending, 0);
}

Test(bus_lease, grants_from_our_future_or_already_over_are_ignored)
{
    bus_lease_granted(&l, 5000, L, 1, 1, 4000);    /* echo after now: not ours */
    bus_lease_granted(&l, 0, L, 1, 1, 4000);
    bus_lease_granted(&l, 100, 1000, 1, 1, 4000);  /* 100 + 1000 <= 4000 */
    cr_assert_eq(l.until_us, 0);
    cr_assert_eq(l.grants_received, 0);
}

Test(bus_lease, a_full_pending_list_keeps_the_grants_nearest_to_usable)
{
    for (unsigned i = 0; i < BUS_LEASE_PENDING + 3; i++)
        bus_lease_granted(&l, 1000 + i, L, 100 + i, 50, 2000);
    cr_assert_eq(l.npending, BUS_LEASE_PENDING);
    cr_assert(bus_lease_applied(&l, 100));
    cr_assert_eq(l.until_us, 1000 + L);
}

Test(bus_lease, a_peer_restart_voids_its_grants_and_acks_but_not_ours)
{
    bus_lease_heard(&l, 500, 9, 1000);
    bus_lease_grant(&l, 10, 1000, L, M);
    bus_lease_granted(&l, 900, L, 1, 1, 1000);
    bus_lease_peer_restarted(&l);
    cr_assert_eq(l.until_us, 0);
    cr_assert_eq(l.acked_ours, 0);
    cr_assert_eq(l.req_us, 0);
    cr_assert_eq(l.cp_count, 1, "the old life may still serve until our grant ends");
    cr_assert_eq(bus_lease_covered(&l, 12, 2000), 10);
}
