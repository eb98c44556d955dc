/* Tests for bus/floor.c: the lives kept after a peer entry goes, found by
 * (id, epoch), merged, ordered, grown and evicted. */
#include "bus/floor.h"

#include <criterion/criterion.h>

static struct bus_floors f;

static void
setup(void)
{
    cr_assert(bus_floors_init(&f));
}

static void
teardown(void)
{
    bus_floors_deinit(&f);
}

TestSuite(bus_floor, .init = setup, .fini = teardown, .timeout = 20);

static struct bus_life
life(uint64_t epoch, uint64_t data, uint64_t ctl, bool clean)
{
    return (struct bus_life){.epoch = epoch, .data_high = data, .ctl_high = ctl, .clean = clean};
}

Test(bus_floor, finds_a_life_by_id_and_epoch_only)
{
    struct bus_life l = life(100, 5, 7, true);
    cr_assert_not(bus_floors_note(&f, 42, &l, true));
    const struct bus_life *got = bus_floors_find(&f, 42, 100);
    cr_assert(got && got->data_high == 5 && got->ctl_high == 7 && got->clean);
    cr_assert_null(bus_floors_find(&f, 42, 101));
    cr_assert_null(bus_floors_find(&f, 43, 100));
    cr_assert_eq(bus_floors_latest(&f, 42)->epoch, 100);
    cr_assert_null(bus_floors_latest(&f, 43));
}

Test(bus_floor, a_life_noted_again_keeps_the_highest_seqs)
{
    struct bus_life a = life(100, 9, 2, true), b = life(100, 4, 8, false);
    bus_floors_note(&f, 42, &a, true);
    bus_floors_note(&f, 42, &b, true);
    const struct bus_life *got = bus_floors_find(&f, 42, 100);
    cr_assert(got->data_high == 9 && got->ctl_high == 8);
    cr_assert_not(got->clean, "clean only if every account says so");
}

Test(bus_floor, keeps_the_latest_lives_of_an_id)
{
    for (uint64_t e = 1; e <= BUS_FLOOR_LIVES + 1; e++) {
        struct bus_life l = life(e, e, e, false);
        bus_floors_note(&f, 42, &l, true);
    }
    cr_assert_null(bus_floors_find(&f, 42, 1), "the oldest life goes");
    for (uint64_t e = 2; e <= BUS_FLOOR_LIVES + 1; e++)
        cr_assert_not_null(bus_floors_find(&f, 42, e));
    cr_assert_eq(bus_floors_latest(&f, 42)->epoch, BUS_FLOOR_LIVES + 1);
    /* Noted again, an older life becomes the latest. */
    struct bus_life two = life(2, 2, 2, false);
    bus_floors_note(&f, 42, &two, true);
    cr_assert_eq(bus_floors_latest(&f, 42)->epoch, 2);
}

Test(bus_floor, a_refused_life_is_kept_but_never_the_latest)
{
    struct bus_life refused = life(5, 1, 0, false);
    bus_floors_note(&f, 42, &refused, false);
    cr_assert_not_null(bus_floors_find(&f, 42, 5));
    cr_assert_null(bus_floors_latest(&f, 42));
    struct bus_life followed = life(9, 3, 3, false);
    bus_floors_note(&f, 42, &followed, true);
    struct bus_life refused2 = life(4, 1, 0, false);
    bus_floors_note(&f, 42, &refused2, false);
    cr_assert_eq(bus_floors_latest(&f, 42)->epoch, 9);
    cr_assert_not_null(bus_floors_find(&f, 42, 4));
    /* Followed at last, it moves ahead of the refused ones. */
    struct bus_life now_followed = life(5, 6, 0, false);
    bus_floors_note(&f, 42, &now_followed, true);
    cr_assert_eq(bus_floors_latest(&f, 42)->epoch, 5);
    cr_assert_eq(bus_floors_latest(&f, 42)->data_high, 6);
}

Test(bus_floor, grows_and_finds_every_id)
{
    for (uint32_t id = 1; id <= 5000; id++) {
        struct bus_life l = life(id, id, 0, false);
        cr_assert_not(bus_floors_note(&f, id, &l, true));
    }
    for (uint32_t id = 1; id <= 5000; id++) {
        const struct bus_life *got = bus_floors_find(&f, id, id);
        cr_assert(got && got->data_high == id, "id %u", id);
    }
    cr_assert_eq(f.n, 5000);
}

Test(bus_floor, when_full_the_id_noted_least_recently_goes_and_the_rest_stay)
{
    for (uint32_t id = 1; id <= BUS_FLOORS_MAX; id++) {
        struct bus_life l = life(7, id, 0, false);
        cr_assert_not(bus_floors_note(&f, id, &l, true));
    }
    struct bus_life again = life(7, 1, 0, false);
    bus_floors_note(&f, 1, &again, true);   /* id 1 is now the most recent */
    struct bus_life l = life(7, 0, 0, false);
    cr_assert(bus_floors_note(&f, BUS_FLOORS_MAX + 1, &l, true), "full: one id must go");
    cr_assert_null(bus_floors_find(&f, 2, 7), "id 2 was noted least recently");
    cr_assert_eq(f.n, BUS_FLOORS_MAX);
    for (uint32_t id = 1; id <= BUS_FLOORS_MAX + 1; id++)
        if (id != 2)
            cr_assert_not_null(bus_floors_find(&f, id, 7), "id %u lost by the eviction", id);
}
