/* log: formats into a stack buffer and writes it whole, so lines from several
 * threads never interleave mid-line. */
#include "src/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
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

static void
log_vwrite(const char *fmt, va_list ap, const char *suffix)
{
    char buf[1024];
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    if (n < 0)
        return;
    if (suffix != NULL && (size_t)n < sizeof(buf) - 2) {
        int m = snprintf(buf + n, sizeof(buf) - 1 - (size_t)n, "%s", suffix);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, buf, (size_t)n);
    (void)rc; /* nowhere left to report a failed log write */
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    if ((int)level > log_verbosity())
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(fmt, ap, NULL);
    va_end(ap);
}

bool
log_limited(struct log_limit *lim, unsigned interval_ms, enum log_level level, const char *fmt,
            ...)
{
    if ((int)level > log_verbosity())
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long next = atomic_load(&lim->next_ns);
    if (now < next ||
        !atomic_compare_exchange_strong(&lim->next_ns, &next, now + interval_ms * 1000000LL)) {
        atomic_fetch_add(&lim->held, 1);
        return false;
    }
    unsigned long held = atomic_exchange(&lim->held, 0);
    char suffix[64] = "";
    if (held > 0)
        snprintf(suffix, sizeof(suffix), " (and %lu more like it)", held);
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(fmt, ap, suffix);
    va_end(ap);
    return true;
}
