/* clock: relative seconds since start-up, advanced from CLOCK_MONOTONIC so a
 * wall-clock step never makes items expire early or live forever. */
#include "src/clock.h"

#include <stdatomic.h>

static _Atomic uint32_t now_rel;
static time_t process_started;
/* Monotonic second at which relative time was last pinned (start or clock_set). */
static _Atomic int64_t mono_base;
static _Atomic uint32_t rel_base;

static int64_t
mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

void
clock_setup(void)
{
    process_started = time(NULL) - 2;
    atomic_store(&mono_base, mono_seconds());
    atomic_store(&rel_base, 2);
    atomic_store(&now_rel, 2);
}

uint32_t
clock_now(void)
{
    return atomic_load_explicit(&now_rel, memory_order_relaxed);
}

void
clock_update(void)
{
    int64_t elapsed = mono_seconds() - atomic_load(&mono_base);
    uint32_t rel = atomic_load(&rel_base) + (uint32_t)elapsed;
    /* Never step backwards: expiry decisions already taken must stay true. */
    if (rel > clock_now())
        atomic_store_explicit(&now_rel, rel, memory_order_relaxed);
}

void
clock_set(uint32_t rel)
{
    atomic_store(&mono_base, mono_seconds());
    atomic_store(&rel_base, rel);
    atomic_store_explicit(&now_rel, rel, memory_order_relaxed);
}

time_t
clock_process_started(void)
{
    return process_started;
}
