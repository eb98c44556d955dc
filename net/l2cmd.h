/* l2cmd: the commands of a node with an L2 pool (two-level mode). Reads: a
 * key L1 holds is answered from L1 exactly as without a pool; the keys a
 * get misses are fetched from L2 (one batched request per server; a key
 * already being fetched by any worker of this node is joined, not fetched
 * again), copied into L1 and answered in the order asked. Writes go to L2
 * first; only L2's answer is the client's answer, after which L1 keeps the
 * new value (with L2's CAS) or drops its copy, and the bus is told.
 *
 * A command that waits on L2 becomes a struct l2op and suspends its
 * connection (conn_suspend): later pipelined commands stay unparsed in the
 * buffer until it is answered, so replies keep their order and a command
 * never reads around a write still in flight. The op outlives its client if
 * need be: a write's L1 and bus side effects happen whether or not anyone is
 * left to read the answer. */
#ifndef FLEETCACHE_NET_L2CMD_H
#define FLEETCACHE_NET_L2CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "net/cmd_internal.h"

struct l2op;

/* --- reads: cmd_get calls these once a key missed L1 ---------------------- */

/* The first miss of a get: returns the op that now collects the command's
 * values in order (NULL on OOM: the caller answers what it has). */
struct l2op *
l2cmd_get_begin(struct conn *c, bool with_cas);

/* A later key of the same get that L1 holds; takes over the reference. */
void
l2cmd_get_hit(struct l2op *op, struct item *it);

/* A key L1 does not hold: fetched from L2, or joined to a fetch of it. */
void
l2cmd_get_miss(struct l2op *op, const char *key, size_t nkey);

/* The get failed on a bad key: the op is dropped (fetches it started still
 * run for whoever joined them) and the caller answers the error. */
void
l2cmd_get_abort(struct l2op *op);

/* Every key is in: sends the fetches, then answers at once if nothing is
 * left to wait for, or suspends the connection until everything arrived. */
void
l2cmd_get_end(struct l2op *op);

/* --- row handlers used instead of the classic ones in two-level mode ------ */
void
l2cmd_gat(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void
l2cmd_delete(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void
l2cmd_arith(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void
l2cmd_touch(struct conn *c, struct proto_request *req, const struct cmd_row *row);

/* A storage command's data block arrived in it (the caller's reference moves
 * to the op): writes it through to L2 from item memory. exptime is the
 * client's, as given. */
void
l2cmd_store(struct conn *c, struct item *it, enum cache_store_op op, uint64_t cas,
            int32_t exptime, const struct cmd_row *row, bool noreply);

/* --- the meta commands -------------------------------------------------------- */

struct meta_request;
struct l2fwd;

/* cmd_mg, before L1 is asked: an mg that only L2 can answer (R or T: L2's
 * expiry; h, l: L2's item; b: a binary key) goes there whole and is
 * answered later: true. False: the caller goes on. */
bool
l2cmd_mg_through(struct conn *c, struct proto_request *req, const struct meta_request *m);

/* cmd_mg, after L1 missed: the key is fetched (coalesced; a lease fetch with
 * N) and the mg answered from it later: true. False on OOM (answer EN). */
bool
l2cmd_mg_miss(struct conn *c, const struct proto_request *req, const struct meta_request *m);

/* cmd_ms: what the L2 request needs, taken from the line before its data
 * block comes (the read buffer moves on). NULL on OOM or a line too long. */
struct l2fwd *
l2cmd_ms_prepare(const struct proto_request *req, const struct meta_request *m);

void
l2cmd_fwd_free(struct l2fwd **fwd);

/* The ms data block arrived in it (a reference moves to the op; fwd too). */
void
l2cmd_ms(struct conn *c, struct item *it, struct l2fwd *fwd, const struct cmd_row *row);

/* Row handlers: md and ma go to L2 whole. */
void
l2cmd_md(struct conn *c, struct proto_request *req, const struct cmd_row *row);
void
l2cmd_ma(struct conn *c, struct proto_request *req, const struct cmd_row *row);

/* --- life cycle ------------------------------------------------------------- */

/* The client of op went away: op finishes without it. */
void
l2cmd_detach(struct l2op *op);

/* On the worker's thread before its loop runs: its L2 client and the queue
 * other workers deliver joined fetches through. False on OOM. */
bool
l2cmd_worker_setup(struct worker *w);

/* After every worker thread was joined: fails what is still in flight (each
 * write still drops its L1 copy and publishes), then delivers what other
 * workers queued, so every op finishes and is freed. */
void
l2cmd_teardown(struct worker *workers, unsigned n);

/* Ops alive on w (waiting on L2, or finishing without their client). */
unsigned
l2cmd_worker_ops(const struct worker *w);

#endif
