/* stats_text: the `stats` family as text, with memcached 1.6.18's key names
 * and order. Values come from cache_stats_get(), the per-worker counters and
 * the process (getrusage). */
#ifndef FLEETCACHE_NET_STATS_TEXT_H
#define FLEETCACHE_NET_STATS_TEXT_H

#include "net/conn.h"
#include "net/reply.h"

/* Each queues its STAT lines and the closing "END". */
void
stats_text_general(struct net_shared *sh, struct reply_buf *out);
void
stats_text_settings(struct net_shared *sh, struct reply_buf *out);
void
stats_text_items(struct reply_buf *out);
void
stats_text_slabs(struct reply_buf *out);
void
stats_text_sizes(struct net_shared *sh, struct reply_buf *out);
void
stats_text_conns(struct net_shared *sh, struct reply_buf *out);
/* `stats <name>` through the substats hook; false if nobody knows name. */
bool
stats_text_sub(struct net_shared *sh, const char *name, size_t len, struct reply_buf *out);

/* `stats reset`: zeroes the cache's and net's counters. */
void
stats_text_reset(struct net_shared *sh);

/* Listener entries for `stats conns` (listener.c provides them). */
void
listener_stats_conns(struct reply_buf *out);

#endif
