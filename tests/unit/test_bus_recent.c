/* Tests for bus/recent.c: "published lately" answers, erring toward yes. */
#include "bus/recent.h"

#include <criterion/criterion.h>
#include <stdio.h>

static struct bus_recent r;

Test(bus_recent, remembers_a_key_within_the_window_only)
{
    bus_recent_init(&r);
    cr_assert_not(bus_recent_maybe(&r, "k", 1, 1000, 100));
    bus_recent_note(&r, "k", 1, 1000);
    cr_assert(bus_recent_maybe(&r, "k", 1, 1050, 100));
    cr_assert(bus_recent_maybe(&r, "k", 1, 1100, 100));
    cr_assert_not(bus_recent_maybe(&r, "k", 1, 1101, 100));
}

Test(bus_recent, unrelated_keys_are_mostly_not_recent)
{
    bus_recent_init(&r);
    bus_recent_note(&r, "k", 1, 1000);
    unsigned maybe = 0;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "other%d", i);
        maybe += bus_recent_maybe(&r, key, (size_t)n, 1001, 100);
    }
    cr_assert_lt(maybe, 5); /* only slot collisions with "k" */
}

Test(bus_recent, a_colliding_newer_key_still_answers_maybe)
{
    bus_recent_init(&r);
    /* Fill every slot recently: whatever the key, the answer must be yes. */
    for (int i = 0; i < 24 * BUS_RECENT_SLOTS; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "fill%d", i);
        bus_recent_note(&r, key, (size_t)n, 5000);
    }
    cr_assert(bus_recent_maybe(&r, "never-noted", 11, 5001, 100));
}
