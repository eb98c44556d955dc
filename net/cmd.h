/* cmd: the text protocol's commands. One X-macro table names every command,
 * its handler and whether a success publishes an invalidation (the bus
 * hook); handlers call the cache and queue their reply on the connection. */
#ifndef FLEETCACHE_NET_CMD_H
#define FLEETCACHE_NET_CMD_H

#include "net/conn.h"
#include "net/proto.h"

/* Runs one complete request line. May switch c to CONN_NREAD (a storage
 * command whose data block follows) or CONN_SWALLOW, or set
 * c->close_after_write. */
void
cmd_dispatch(struct conn *c, struct proto_request *req);

/* The data block of the pending storage command has fully arrived in
 * c->nread_it: checks its "\r\n", stores it, replies, publishes, releases. */
void
cmd_complete_nread(struct conn *c);

/* CONN_DUMP: one bounded step of a key dump (lru_crawler metadump) into
 * c->out; true when it finished (END queued, back to CONN_PARSE). */
bool
cmd_dump_step(struct conn *c);

#endif
