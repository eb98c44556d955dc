/* Tests for bus/peer.c: gap detection, NACK timing, repair deadline, epochs,
 * timeouts, replay windows — everything that decides "repair or flush". */
#include "bus/peer.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const struct bus_peer_timing T = {
    .nack_delay_us = 2000,
    .nack_min_us = 500,
    .nack_interval_us = 30000,
    .repair_deadline_us = 500000,
    .peer_timeout_us = 1000000,
};

static struct bus_peer p;
static struct bus_peer_event ev;

static enum bus_peer_verdict
data(uint64_t seq, int64_t now)
{
    return bus_peer_data(&p, 100, seq, now, &T, &ev);
}

static void
fresh(uint64_t seq, int64_t now)
{
    cr_assert_eq(data(seq, now), BUS_PEER_FRESH, "seq %lu", (unsigned long)seq);
}

static void
heartbeat(uint64_t last, bool leaving, int64_t now)
{
    cr_assert_eq(bus_peer_control(&p, p.epoch, p.ctl_high + 1, now, &ev), BUS_PEER_FRESH);
    memset(&ev, 0, sizeof(ev));
    bus_peer_heartbeat(&p, last, leaving, now, &T, &ev);
}

static void
init(void)
{
    bus_peer_init(&p, 42, 100, false, 0);
    memset(&ev, 0, sizeof(ev));
}

TestSuite(bus_peer, .init = init);

Test(bus_peer, in_order_data_advances_without_holes)
{
    for (uint64_t s = 1; s <= 10; s++) {
        fresh(s, (int64_t)s);
        cr_assert_not(ev.gap || ev.flush || ev.repaired || ev.join_unknown);
    }
    cr_assert_eq(p.acked, 10);
    cr_assert_not(bus_peer_has_holes(&p));
}

Test(bus_peer, a_hole_is_detected_nacked_and_repaired)
{
    fresh(1, 0);
    fresh(2, 0);
    fresh(5, 10);
    cr_assert(ev.gap);
    cr_assert(bus_peer_has_holes(&p));
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert_eq(n.target, 42);
    cr_assert_eq(n.epoch, 100);
    cr_assert_eq(n.n, 1);
    cr_assert(n.r[0].first == 3 && n.r[0].count == 2);
    fresh(4, 20);
    cr_assert(ev.repaired);
    cr_assert_eq(p.acked, 2);
    fresh(3, 30);
    cr_assert(ev.repaired);
    cr_assert_eq(p.acked, 5);
    cr_assert_not(bus_peer_has_holes(&p));
}

Test(bus_peer, duplicates_and_reordering_are_harmless)
{
    fresh(1, 0);
    fresh(3, 0);
    cr_assert_eq(data(3, 0), BUS_PEER_DUPLICATE);
    fresh(2, 0);
    cr_assert_eq(data(2, 0), BUS_PEER_DUPLICATE);
    cr_assert_eq(data(1, 0), BUS_PEER_DUPLICATE);
    cr_assert_eq(p.acked, 3);
}

Test(bus_peer, a_heartbeat_reveals_a_lost_trailing_datagram)
{
    fresh(1, 0);
    heartbeat(0, false, 0); /* baseline set by data already: 0 is old news */
    cr_assert_not(ev.gap);
    heartbeat(3, false, 100);
    cr_assert(ev.gap);
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert(n.n == 1 && n.r[0].first == 2 && n.r[0].count == 2);
}

Test(bus_peer, nacks_go_after_the_delay_then_repeat_at_twice_the_floor_before_any_rtt)
{
    bool due;
    fresh(1, 0);
    fresh(3, 1000000);
    cr_assert_eq(bus_peer_next_event(&p, &T), 1000000 + 2000, "the first NACK is the next event");
    bus_peer_tick(&p, 1000000 + 1999, &T, &due, &ev);
    cr_assert_not(due);
    bus_peer_tick(&p, 1000000 + 2000, &T, &due, &ev);
    cr_assert(due);
    cr_assert_eq(p.nacks, 1);
    bus_peer_tick(&p, 1000000 + 2999, &T, &due, &ev);
    cr_assert_not(due, "no round trip measured yet: the interval is twice the floor");
    bus_peer_tick(&p, 1000000 + 3000, &T, &due, &ev);
    cr_assert(due);
    cr_assert_not(ev.flush);
}

Test(bus_peer, the_nack_interval_follows_the_repair_round_trip_within_its_bounds)
{
    bool due;
    fresh(1, 0);
    fresh(3, 1000);
    bus_peer_tick(&p, 3000, &T, &due, &ev);          /* NACK at 3000 */
    cr_assert(due);
    fresh(2, 3100);                                  /* repaired 100 us later */
    cr_assert(ev.repaired);
    cr_assert_eq(p.srtt_us, 100);
    cr_assert_eq(bus_peer_nack_interval(&p, &T), 500, "2 x 100 + 250 is below the floor");
    p.srtt_us = 2000;
    cr_assert_eq(bus_peer_nack_interval(&p, &T), 4250);
    p.srtt_us = 1000000;
    cr_assert_eq(bus_peer_nack_interval(&p, &T), 30000, "never longer than the ceiling");
}

Test(bus_peer, a_new_gap_is_nacked_at_once_while_an_older_one_waits_its_interval)
{
    bool due;
    fresh(1, 0);
    fresh(3, 1000);
    bus_peer_tick(&p, 3000, &T, &due, &ev);
    cr_assert(due);                                  /* next at 4000 */
    fresh(5, 3100);                                  /* a second hole */
    cr_assert(ev.gap);
    cr_assert_eq(p.next_nack_us, 4000, "the sooner of the two");
    fresh(7, 3900);
    cr_assert_eq(p.next_nack_us, 4000);
    p.next_nack_us = 90000;
    fresh(9, 4000);
    cr_assert_eq(p.next_nack_us, 6000, "a new gap does not wait behind a long interval");
}

Test(bus_peer, another_nodes_nack_for_all_our_holes_postpones_ours_and_others_do_not)
{
    fresh(1, 0);
    fresh(4, 1000);                                  /* holes 2, 3; NACK due at 3000 */
    struct wire_nack other = {.target = 42, .epoch = 100, .n = 1, .r = {{.first = 7, .count = 3}}};
    cr_assert_not(bus_peer_suppress(&p, &other, 2500, &T), "not our holes");
    other.r[0] = (struct wire_range){.first = 3, .count = 4};
    cr_assert_not(bus_peer_suppress(&p, &other, 2500, &T), "only some of our holes");
    cr_assert_eq(p.next_nack_us, 3000);
    other.r[0] = (struct wire_range){.first = 2, .count = 1};
    other.r[1] = (struct wire_range){.first = 3, .count = 9};
    other.n = 2;
    other.epoch = 99;
    cr_assert_not(bus_peer_suppress(&p, &other, 2500, &T), "another life's seqs");
    other.epoch = 100;
    cr_assert(bus_peer_suppress(&p, &other, 2500, &T), "two ranges that cover both holes");
    cr_assert_eq(p.next_nack_us, 2500 + 1000);
    cr_assert_eq(p.nacks_suppressed, 1);
    cr_assert_not(bus_peer_suppress(&p, &other, 2500, &T), "already later");
}

Test(bus_peer, lag_counts_what_is_known_but_not_applied_and_since_when)
{
    fresh(1, 0);
    cr_assert_eq(bus_peer_lag_seqs(&p), 0);
    cr_assert_eq(bus_peer_lag_us(&p, 5000), 0);
    heartbeat(6, false, 1000);
    cr_assert_eq(bus_peer_lag_seqs(&p), 5);
    cr_assert_eq(bus_peer_lag_us(&p, 5000), 4000);
    for (uint64_t s = 2; s <= 6; s++)
        fresh(s, 6000);
    cr_assert_eq(bus_peer_lag_seqs(&p), 0);
    cr_assert_eq(bus_peer_lag_us(&p, 7000), 0);
}

Test(bus_peer, an_unrepaired_hole_flushes_at_the_deadline_and_is_forgotten)
{
    bool due;
    fresh(1, 0);
    fresh(3, 1000);
    bus_peer_tick(&p, 1000 + 500000, &T, &due, &ev);
    cr_assert_not(ev.flush);
    bus_peer_tick(&p, 1000 + 500001, &T, &due, &ev);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_deadline);
    cr_assert_not(bus_peer_has_holes(&p));
    cr_assert_eq(p.acked, 3);
    cr_assert_eq(data(2, 600000), BUS_PEER_DUPLICATE); /* a late repair changes nothing */
    fresh(4, 600000);
}

Test(bus_peer, the_deadline_runs_from_when_the_oldest_open_hole_was_seen)
{
    bool due;
    fresh(1, 0);
    fresh(3, 0);        /* hole 2 seen at 0 */
    fresh(5, 400000);   /* hole 4 seen at 0.4 s */
    fresh(2, 450000);   /* hole 2 repaired */
    bus_peer_tick(&p, 700000, &T, &due, &ev);
    cr_assert_not(ev.flush, "hole 4 is only 0.3 s old");
    bus_peer_tick(&p, 900001, &T, &due, &ev);
    cr_assert(ev.flush);
}

Test(bus_peer, the_gone_answer_flushes_only_for_holes_below_the_ring)
{
    fresh(1, 0);
    fresh(5, 0);
    memset(&ev, 0, sizeof(ev));
    bus_peer_gone(&p, 100, 2, &ev);
    cr_assert_not(ev.flush, "holes 2..4 are still in the sender's ring");
    bus_peer_gone(&p, 99, 0, &ev);
    cr_assert_not(ev.flush, "about an epoch we no longer follow");
    bus_peer_gone(&p, 100, 4, &ev);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_gone);
    cr_assert_eq(p.acked, 5);
}

Test(bus_peer, other_epochs_are_refused_until_the_caller_switches)
{
    fresh(1, 0);
    cr_assert_eq(bus_peer_data(&p, 99, 2, 0, &T, &ev), BUS_PEER_STALE);
    cr_assert_eq(bus_peer_control(&p, 99, 50, 0, &ev), BUS_PEER_STALE);
    cr_assert_eq(bus_peer_data(&p, 200, 1, 0, &T, &ev), BUS_PEER_STALE);
    cr_assert_eq(p.epoch, 100);
}

/* A restart: the caller switches, then hands over the datagram. */
static void
restart(uint64_t epoch, int64_t now)
{
    bus_peer_switch(&p, epoch, NULL, now, &ev);
    cr_assert(ev.new_epoch && ev.life_ended);
}

Test(bus_peer, a_restart_flushes_and_starts_the_new_epoch_at_seq_1)
{
    fresh(1, 0);
    fresh(2, 0);
    restart(200, 10);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_restart);
    cr_assert_not(ev.epoch_back);
    cr_assert(ev.ended.epoch == 100 && ev.ended.data_high == 2 && !ev.ended.clean);
    cr_assert_eq(bus_peer_data(&p, 200, 3, 10, &T, &ev), BUS_PEER_FRESH);
    cr_assert(ev.gap, "seqs 1 and 2 of the new epoch are missing");
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert(n.epoch == 200 && n.n == 1 && n.r[0].first == 1 && n.r[0].count == 2);
}

Test(bus_peer, a_clean_goodbye_spares_the_restart_flush)
{
    fresh(1, 0);
    heartbeat(1, true, 5);
    cr_assert_eq(p.state, BUS_PEER_LEFT);
    restart(300, 10);
    cr_assert_not(ev.flush);
    cr_assert(ev.ended.clean);
    cr_assert_eq(bus_peer_data(&p, 300, 1, 10, &T, &ev), BUS_PEER_FRESH);
    cr_assert_eq(p.state, BUS_PEER_LIVE);
}

Test(bus_peer, a_goodbye_with_holes_still_flushes_on_restart)
{
    fresh(1, 0);
    heartbeat(3, true, 5);
    restart(300, 10);
    cr_assert(ev.flush);
}

Test(bus_peer, going_back_to_an_older_epoch_flushes_as_epoch_back)
{
    fresh(1, 0);
    restart(50, 10);
    cr_assert(ev.flush && ev.epoch_back);
    cr_assert_eq(ev.reason, BUS_FLUSH_epoch_back);
    cr_assert_eq(bus_peer_data(&p, 50, 1, 10, &T, &ev), BUS_PEER_FRESH);
}

/* A life followed before and taken up again: what we saw of it counts as
 * seen, what came since is asked for. */
Test(bus_peer, a_resumed_life_continues_from_what_we_saw)
{
    for (uint64_t s = 1; s <= 5; s++)
        fresh(s, 0);
    cr_assert_eq(bus_peer_control(&p, 100, 7, 0, &ev), BUS_PEER_FRESH);
    struct bus_life old = bus_peer_life(&p);
    cr_assert(old.epoch == 100 && old.data_high == 5 && old.ctl_high == 7 && !old.clean);
    restart(200, 10);
    bus_peer_switch(&p, 100, &old, 20, &ev);
    cr_assert(ev.flush && ev.epoch_back && ev.ended.epoch == 200);
    cr_assert_eq(data(5, 20), BUS_PEER_DUPLICATE, "seen before the switch");
    cr_assert_eq(bus_peer_control(&p, 100, 7, 20, &ev), BUS_PEER_DUPLICATE);
    cr_assert_eq(bus_peer_control(&p, 100, 3, 20, &ev), BUS_PEER_DUPLICATE);
    cr_assert_eq(bus_peer_control(&p, 100, 8, 20, &ev), BUS_PEER_FRESH);
    fresh(8, 20);
    cr_assert(ev.gap);
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert(n.n == 1 && n.r[0].first == 6 && n.r[0].count == 2);
}

Test(bus_peer, a_forgotten_peer_resumes_lost_or_left)
{
    struct bus_life lost = {.epoch = 7, .data_high = 3, .ctl_high = 2, .clean = false};
    bus_peer_resume(&p, 42, &lost, 0);
    cr_assert(p.epoch == 7 && p.state == BUS_PEER_LOST && p.acked == 3);
    struct bus_life left = {.epoch = 7, .data_high = 3, .ctl_high = 2, .clean = true};
    bus_peer_resume(&p, 42, &left, 0);
    cr_assert_eq(p.state, BUS_PEER_LEFT);
    cr_assert_eq(bus_peer_data(&p, 7, 4, 0, &T, &ev), BUS_PEER_FRESH);
    cr_assert_not(ev.gap);
    cr_assert_eq(p.state, BUS_PEER_LIVE);
}

Test(bus_peer, first_contact_mid_stream_reports_unknown_history)
{
    cr_assert_eq(data(57, 0), BUS_PEER_FRESH);
    cr_assert(ev.join_unknown);
    cr_assert_not(ev.gap);
    cr_assert_eq(p.acked, 57);

    bus_peer_init(&p, 43, 100, false, 0);
    cr_assert_eq(data(1, 0), BUS_PEER_FRESH);
    cr_assert_not(ev.join_unknown);

    bus_peer_init(&p, 44, 100, false, 0);
    heartbeat(0, false, 0);
    cr_assert_not(ev.join_unknown);
    bus_peer_init(&p, 45, 100, false, 0);
    heartbeat(9, false, 0);
    cr_assert(ev.join_unknown);
    cr_assert_eq(p.acked, 9);
}

Test(bus_peer, a_sender_younger_than_us_is_repaired_from_seq_1)
{
    bus_peer_init(&p, 46, 100, true, 0);
    cr_assert_eq(data(4, 0), BUS_PEER_FRESH);
    cr_assert_not(ev.join_unknown);
    cr_assert(ev.gap);
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert(n.n == 1 && n.r[0].first == 1 && n.r[0].count == 3);

    bus_peer_init(&p, 47, 100, true, 0);
    heartbeat(2, false, 0);
    cr_assert_not(ev.join_unknown);
    cr_assert(ev.gap);
}

Test(bus_peer, silence_past_the_timeout_flushes_once)
{
    bool due;
    fresh(1, 0);
    bus_peer_tick(&p, 1000000, &T, &due, &ev);
    cr_assert_not(ev.flush);
    bus_peer_tick(&p, 1000001, &T, &due, &ev);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_timeout);
    cr_assert_eq(p.state, BUS_PEER_LOST);
    bus_peer_tick(&p, 3000000, &T, &due, &ev);
    cr_assert_not(ev.flush);
    heartbeat(1, false, 3000001);
    cr_assert_eq(p.state, BUS_PEER_LIVE);
}

Test(bus_peer, a_partition_that_heals_repairs_what_it_can)
{
    bool due;
    fresh(1, 0);
    bus_peer_tick(&p, 2000000, &T, &due, &ev);
    cr_assert(ev.flush); /* timeout */
    fresh(6, 2500000);   /* back: 2..5 happened during the partition */
    cr_assert(ev.gap);
    cr_assert_eq(p.state, BUS_PEER_LIVE);
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert(n.n == 1 && n.r[0].first == 2 && n.r[0].count == 4);
}

Test(bus_peer, a_leaving_peer_does_not_time_out)
{
    bool due;
    fresh(1, 0);
    heartbeat(1, true, 0);
    bus_peer_tick(&p, 10000000, &T, &due, &ev);
    cr_assert_not(ev.flush);
}

Test(bus_peer, more_missing_than_the_window_flushes_at_once)
{
    fresh(1, 0);
    fresh(2 + BUS_PEER_WINDOW, 0);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_too_far);
    cr_assert_eq(p.acked, 2 + BUS_PEER_WINDOW);
    heartbeat(10 + 2 * BUS_PEER_WINDOW, false, 0);
    cr_assert(ev.flush);
    cr_assert_eq(ev.reason, BUS_FLUSH_too_far);
}

Test(bus_peer, control_replay_window_allows_reordering_once)
{
    cr_assert_eq(bus_peer_control(&p, 100, 1, 0, &ev), BUS_PEER_FRESH);
    cr_assert_eq(bus_peer_control(&p, 100, 3, 0, &ev), BUS_PEER_FRESH);
    cr_assert_eq(bus_peer_control(&p, 100, 2, 0, &ev), BUS_PEER_FRESH);
    cr_assert_eq(bus_peer_control(&p, 100, 2, 0, &ev), BUS_PEER_DUPLICATE);
    cr_assert_eq(bus_peer_control(&p, 100, 3, 0, &ev), BUS_PEER_DUPLICATE);
    cr_assert_eq(bus_peer_control(&p, 100, 70, 0, &ev), BUS_PEER_FRESH);
    cr_assert_eq(bus_peer_control(&p, 100, 6, 0, &ev), BUS_PEER_DUPLICATE); /* too old */
    cr_assert_eq(bus_peer_control(&p, 100, 7, 0, &ev), BUS_PEER_FRESH);
    cr_assert_eq(bus_peer_control(&p, 100, 7, 0, &ev), BUS_PEER_DUPLICATE);
    cr_assert_eq(bus_peer_control(&p, 100, 1000, 0, &ev), BUS_PEER_FRESH);
    restart(101, 0);
    cr_assert_eq(bus_peer_control(&p, 101, 1, 0, &ev), BUS_PEER_FRESH); /* new epoch resets */
}

Test(bus_peer, nack_lists_at_most_16_ranges_oldest_first)
{
    fresh(1, 0);
    for (uint64_t s = 3; s <= 60; s += 2)
        fresh(s, 0);
    struct wire_nack n;
    bus_peer_missing(&p, &n);
    cr_assert_eq(n.n, WIRE_NACK_RANGES_MAX);
    for (unsigned i = 0; i < n.n; i++)
        cr_assert(n.r[i].first == 2 + 2 * i && n.r[i].count == 1);
}

Test(bus_peer, random_loss_duplication_and_reordering_converge, .timeout = 30)
{
    /* Deliver 1..N shuffled, each 0..2 times; then NACK-repair until whole. */
    enum { N = 3000 };
    static uint64_t order[3 * N];
    size_t n = 0;
    srand(7);
    for (uint64_t s = 1; s <= N; s++) {
        int copies = rand() % 10 < 3 ? 0 : 1 + (rand() % 5 == 0);
        for (int c = 0; c < copies; c++)
            order[n++] = s;
    }
    for (size_t i = n - 1; i > 0; i--) {
        /* Local shuffle only: reordering spans a few datagrams, as on a LAN. */
        size_t j = i - (size_t)rand() % (i < 8 ? i + 1 : 8);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    static bool got[N + 1];
    bus_peer_init(&p, 42, 100, true, 0); /* the epoch starts at seq 1 */
    for (size_t i = 0; i < n; i++) {
        enum bus_peer_verdict v = data(order[i], 0);
        cr_assert_eq(v == BUS_PEER_FRESH, !got[order[i]], "seq %lu", (unsigned long)order[i]);
        got[order[i]] = true;
        cr_assert_not(ev.flush);
    }
    heartbeat(N, false, 0);
    for (int round = 0; round < 1000 && bus_peer_has_holes(&p); round++) {
        struct wire_nack k;
        bus_peer_missing(&p, &k);
        cr_assert_gt(k.n, 0);
        for (unsigned r = 0; r < k.n; r++)
            for (uint64_t s = k.r[r].first; s < k.r[r].first + k.r[r].count; s++) {
                cr_assert_not(got[s], "NACKed seq %lu that arrived", (unsigned long)s);
                cr_assert_eq(data(s, 0), BUS_PEER_FRESH);
                cr_assert(ev.repaired);
                got[s] = true;
            }
    }
    cr_assert_eq(p.acked, N);
    for (uint64_t s = 1; s <= N; s++)
        cr_assert(got[s]);
}

Test(bus_peer, state_names)
{
    cr_assert_str_eq(bus_peer_state_name(BUS_PEER_LIVE), "live");
    cr_assert_str_eq(bus_peer_state_name(BUS_PEER_LOST), "lost");
    cr_assert_str_eq(bus_peer_state_name(BUS_PEER_LEFT), "left");
}
