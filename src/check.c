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

bool
check_mutex_mine(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
    return m->__data.__owner == gettid();
#else
    (void)m;
    return true; /* unknown: never fail a check on a guess */
#endif
}
