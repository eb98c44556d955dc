/* check: the failure path of CHECK and the lock-ownership probe it uses.
 * Built in every configuration (it costs nothing unless called). */
#include "src/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

_Noreturn void
check_failed(const char *cond, const char *file, int line, const char *func)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "check failed: %s (%s:%d, %s)\n", cond, file, line, func);
    if (n > 0) {
        ssize_t rc = write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
        (void)rc; /* aborting anyway */
    }
    abort();
}

/* This thread's id. gettid is a system call: once per thread, not once per
 * probe (the lock-order check probes every class lock at each stripe lock);
 * a forked child forgets the parent's. */
static _Thread_local pid_t check_tid;
static pthread_once_t check_tid_once = PTHREAD_ONCE_INIT;

static void
check_tid_forget(void)
{
    check_tid = 0;
}

static void
check_tid_setup(void)
{
    pthread_atfork(NULL, NULL, check_tid_forget);
}

bool
check_mutex_mine(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
    if (check_tid == 0) {
        pthread_once(&check_tid_once, check_tid_setup);
        check_tid = gettid();
    }
    return m->__data.__owner == check_tid;
#else
    (void)m;
    return true; /* unknown: never fail a check on a guess */
#endif
}
