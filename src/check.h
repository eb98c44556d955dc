/* check: assertions on internal invariants (reference counts, lock order,
 * item state), compiled in only where configure enabled them (the sanitizer
 * build, --enable-checks); a release build pays nothing and never evaluates
 * the condition. A failed check names itself on stderr and aborts, so a
 * sanitizer or fuzzer run stops at the first broken invariant.
 * Checks guard our own invariants, never client input: bad input gets an
 * error line, not an abort. */
#ifndef FLEETCACHE_CHECK_H
#define FLEETCACHE_CHECK_H

#include <pthread.h>
#include <stdbool.h>

#ifdef FC_CHECKS
#define CHECKS_ENABLED 1
#define CHECK(cond) \
    ((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define CHECKS_ENABLED 0
/* sizeof keeps the condition type-checked (and its variables used) without
 * evaluating it. */
#define CHECK(cond) ((void)sizeof(!(cond)))
#endif

/* Prints "check failed: COND (file:line, func)" and aborts. */
_Noreturn void
check_failed(const char *cond, const char *file, int line, const char *func);

/* True when the calling thread holds m (glibc records the owner of every
 * mutex type). For checks only: the answer for other threads is a guess. */
bool
check_mutex_mine(const pthread_mutex_t *m);

#endif
