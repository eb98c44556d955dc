/* Tests for src/check.c: CHECK aborts with its condition named where checks
 * are compiled in (the sanitizer build), and costs nothing, not even the
 * evaluation of its condition, where they are not. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>

#include "src/check.h"

#if CHECKS_ENABLED

Test(check, a_broken_invariant_aborts, .signal = SIGABRT)
{
    int refs = 0;
    CHECK(refs > 0);
}

Test(check, a_kept_invariant_passes)
{
    int refs = 1;
    CHECK(refs > 0);
    cr_assert_eq(refs, 1);
}

#else

Test(check, a_release_build_never_evaluates_the_condition)
{
    int evaluated = 0;
    CHECK(++evaluated == 42);
    cr_assert_eq(evaluated, 0);
}

#endif

Test(check, knows_which_mutexes_this_thread_holds)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    cr_assert_not(check_mutex_mine(&m));
    pthread_mutex_lock(&m);
    cr_assert(check_mutex_mine(&m));
    pthread_mutex_unlock(&m);
    cr_assert_not(check_mutex_mine(&m));
}
