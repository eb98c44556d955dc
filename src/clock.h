/* clock: the coarse process clock every module reads.
 * Time is kept as seconds since just before start-up ("relative time"), so a
 * 32-bit value lasts 136 years and the values 0 and 1 stay free for "never"
 * and "already expired". It moves once a second (clock_update, from a timer)
 * and tests move it by hand (clock_set); reading it is one relaxed load. */
#ifndef FLEETCACHE_CLOCK_H
#define FLEETCACHE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Starts the clock: relative time 2 is "now". Call once before anything reads it. */
void
clock_setup(void);

/* Current relative time in seconds (>= 2). */
uint32_t
clock_now(void);

/* Re-reads the monotonic clock; call about once a second. */
void
clock_update(void);

/* Tests only: jump to relative time rel (later clock_update calls continue from it). */
void
clock_set(uint32_t rel);

/* Unix time corresponding to relative time 0. */
time_t
clock_process_started(void);

#endif
