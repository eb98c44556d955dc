/* eject: when an L2 server is taken out of service and when it is tried
 * again, in the manner of twemproxy's server_failure_limit and
 * server_retry_timeout: failure_limit consecutive failures (a connect that
 * fails, a connection that breaks, a request that times out) eject the
 * server for retry seconds; while ejected no request is sent to it (reads
 * miss at once, writes fail at once) instead of each waiting out a timeout.
 * When the time is up the server is tried again on probation: its first
 * failure ejects it again at once (twemproxy would wait for failure_limit
 * more), its first success makes it healthy.
 *
 * Keys are never moved to another server while theirs is ejected: a write
 * that went to a stand-in would leave the real owner's copy stale when it
 * comes back (see docs/two-level.md).
 *
 * Pure state and arithmetic on caller-given times, so the timing logic is
 * unit-tested without sockets or clocks; the caller serializes access. */
#ifndef FLEETCACHE_L2_EJECT_H
#define FLEETCACHE_L2_EJECT_H

#include <stdbool.h>
#include <stdint.h>

struct eject_policy {
    unsigned failure_limit;     /* 0: never eject */
    double retry_s;             /* how long an ejection lasts */
};

struct eject_state {
    unsigned failures;          /* consecutive, since the last success */
    double until;               /* ejected before this time; 0: not ejected */
    bool probation;             /* ejected before: one failure is enough */
    uint64_t ejections;         /* how many times it was ejected */
};

/* Whether a request may be sent to the server at time now. */
bool
eject_allows(const struct eject_state *s, double now);

/* A request or connection failed at now. Returns true when this failure
 * ejected the server. Failures of requests sent before an ejection that
 * arrive while it lasts change nothing. */
bool
eject_failure(struct eject_state *s, const struct eject_policy *p, double now);

/* A reply arrived: the server is healthy. */
void
eject_success(struct eject_state *s);

/* True while the state differs from a healthy one (failures counted, an
 * ejection in force or on probation): a success has something to reset. */
bool
eject_troubled(const struct eject_state *s);

#endif
