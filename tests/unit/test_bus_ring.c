/* Tests for bus/ring.c: consecutive seqs, overwrite, and no stale slot served. */
#include "bus/ring.h"

#include <criterion/criterion.h>
#include <string.h>

Test(bus_ring, keeps_the_last_n_datagrams)
{
    struct bus_ring *r = bus_ring_create(4, 16);
    cr_assert_not_null(r);
    cr_assert_eq(bus_ring_oldest(r), 0);
    for (uint64_t s = 1; s <= 10; s++) {
        uint8_t d[16];
        memset(d, (int)s, sizeof(d));
        cr_assert(bus_ring_put(r, s, d, (size_t)s));
    }
    cr_assert_eq(bus_ring_oldest(r), 7);
    cr_assert_eq(bus_ring_newest(r), 10);
    const uint8_t *d;
    size_t len;
    for (uint64_t s = 1; s <= 6; s++)
        cr_assert_not(bus_ring_get(r, s, &d, &len), "seq %lu served after overwrite", (unsigned long)s);
    for (uint64_t s = 7; s <= 10; s++) {
        cr_assert(bus_ring_get(r, s, &d, &len));
        cr_assert_eq(len, s);
        cr_assert_eq(d[0], s);
    }
    cr_assert_not(bus_ring_get(r, 11, &d, &len));
    cr_assert_not(bus_ring_get(r, 0, &d, &len));
    bus_ring_destroy(r);
}

Test(bus_ring, refuses_gaps_zero_and_oversized_datagrams)
{
    struct bus_ring *r = bus_ring_create(8, 4);
    uint8_t d[8] = {0};
    cr_assert_not(bus_ring_put(r, 0, d, 1));
    cr_assert(bus_ring_put(r, 5, d, 4)); /* the first may start anywhere */
    cr_assert_not(bus_ring_put(r, 7, d, 1));
    cr_assert_not(bus_ring_put(r, 5, d, 1));
    cr_assert_not(bus_ring_put(r, 6, d, 5));
    cr_assert(bus_ring_put(r, 6, d, 0));
    cr_assert_eq(bus_ring_oldest(r), 5);
    bus_ring_destroy(r);
    cr_assert_null(bus_ring_create(0, 4));
    bus_ring_destroy(NULL);
}

Test(bus_ring, a_datagram_is_repaired_to_each_dest_once_per_interval)
{
    struct bus_ring *r = bus_ring_create(4, 16);
    uint8_t d[16] = {0};
    for (uint64_t s = 1; s <= 5; s++)
        cr_assert(bus_ring_put(r, s, d, sizeof(d)));
    cr_assert(bus_ring_may_repair(r, 3, 0, 1000, 100));
    cr_assert_not(bus_ring_may_repair(r, 3, 0, 1050, 100), "again within the interval");
    cr_assert(bus_ring_may_repair(r, 3, 7, 1050, 100), "another dest has its own share");
    cr_assert(bus_ring_may_repair(r, 4, 0, 1050, 100), "another datagram too");
    cr_assert(bus_ring_may_repair(r, 3, 0, 1100, 100), "a whole interval later");
    cr_assert_not(bus_ring_may_repair(r, 1, 0, 1100, 100), "not held any more");
    cr_assert_not(bus_ring_may_repair(r, 9, 0, 1100, 100), "never sent");
    cr_assert_not(bus_ring_may_repair(r, 3, 64, 5000, 100), "no such dest");
    /* A slot reused by a newer datagram starts with a clean slate. */
    cr_assert(bus_ring_may_repair(r, 5, 0, 2000, 100));
    cr_assert(bus_ring_put(r, 6, d, sizeof(d)));
    cr_assert(bus_ring_put(r, 7, d, sizeof(d)));
    cr_assert(bus_ring_put(r, 8, d, sizeof(d)));
    cr_assert(bus_ring_put(r, 9, d, sizeof(d)));
    cr_assert(bus_ring_may_repair(r, 9, 0, 2010, 100), "seq 9 took 5's slot");
    bus_ring_destroy(r);
}
