/* log: formats into a stack buffer and writes it whole, so lines from several
 * threads never interleave mid-line. */
#include "src/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int verbosity;

void
log_setup(int level)
{
    atomic_store(&verbosity, level);
}

int
log_verbosity(void)
{
    return atomic_load_explicit(&verbosity, memory_order_relaxed);
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    if ((int)level > log_verbosity())
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, buf, (size_t)n);
    (void)rc; /* nowhere left to report a failed log write */
}
