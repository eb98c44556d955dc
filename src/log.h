/* log: one line per message to stderr, filtered by verbosity (-v, -vv, -vvv).
 * Safe from any thread: each message is written with a single write(2). */
#ifndef FLEETCACHE_LOG_H
#define FLEETCACHE_LOG_H

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

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)

#endif
