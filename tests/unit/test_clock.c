/* Tests for src/clock.c. */
#include "src/clock.h"

#include <criterion/criterion.h>
#include <time.h>

Test(clock, starts_at_two_and_maps_to_unix_time)
{
    clock_setup();
    cr_expect_eq(clock_now(), 2);
    time_t started = clock_process_started();
    cr_expect(started <= time(NULL) - 2 && started >= time(NULL) - 4);
}

Test(clock, set_moves_the_clock_and_update_never_goes_back)
{
    clock_setup();
    clock_set(1000);
    cr_expect_eq(clock_now(), 1000);
    clock_update();
    cr_expect_geq(clock_now(), 1000);
}
