/* Tests for src/check.c: CHECK aborts with its condition named where checks
 * are compiled in (the sanitizer build), and costs nothing, not even the
 * evaluation of its condition, where they are not. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

Test(check, a_forked_child_knows_its_own_mutexes)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    cr_assert_not(check_mutex_mine(&m)); /* the parent's thread id is now cached */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        pthread_mutex_lock(&m);
        _exit(check_mutex_mine(&m) ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child took its parent's id");
}
