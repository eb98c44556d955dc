/* log: one line per message to stderr, filtered by verbosity (-v, -vv, -vvv).
 * Safe from any thread: each message is written with a single write(2).
 * What each level says, as memcached: errors always; -v start-up, shutdown
 * and warnings; -vv every command ("<fd line"), its reply (">fd line") and
 * each connection opened and closed; -vvv internal state. An event that can
 * repeat fast (a flood of bad datagrams) goes through log_limited. */
#ifndef FLEETCACHE_LOG_H
#define FLEETCACHE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_ERROR = 0,   /* always shown */
    LOG_INFO = 1,    /* -v */
    LOG_DEBUG = 2,   /* -vv */
    LOG_TRACE = 3,   /* -vvv */
};

void
log_setup(int verbosity);

int
log_verbosity(void);

void
log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A rate limit for one kind of event: at most one line per interval; the
 * next line that gets through says how many were held back. Static storage,
 * zero-initialised (LOG_LIMIT_INIT); shared by any number of threads. */
struct log_limit {
    _Atomic long long next_ns;      /* CLOCK_MONOTONIC: the earliest next line */
    _Atomic unsigned long held;     /* lines dropped since the last one written */
};
#define LOG_LIMIT_INIT { 0, 0 }

/* Writes the line (at level, as log_write) unless one went out through lim
 * less than interval_ms ago; returns whether it was written. Lock-free: one
 * compare-and-swap decides which of racing threads writes. */
bool
log_limited(struct log_limit *lim, unsigned interval_ms, enum log_level level, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)

#endif
