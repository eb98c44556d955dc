/* l2cmd_internal: what l2cmd.c (the ops, read-through and the classic
 * writes) and l2cmd_meta.c (the meta commands) share: the op a command
 * waiting on L2 becomes, and its life cycle. An op lives on its client's
 * worker and is touched by that worker's thread only; it outlives its
 * client when it must (a write's L1 and bus side effects still happen). */
#ifndef FLEETCACHE_NET_L2CMD_INTERNAL_H
#define FLEETCACHE_NET_L2CMD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l2/l2.h"
#include "net/l2cmd.h"
#include "net/meta.h"

enum l2op_kind {
    OP_GET,         /* get gets gat gats: values in key order, then END */
    OP_STORE,       /* set add replace append prepend cas */
    OP_DELETE,
    OP_ARITH,
    OP_TOUCH,
    OP_MG,          /* an mg L1 missed: one slot, answered from the fetch */
    OP_MG_THROUGH,  /* an mg sent to L2 as it is (R, T, h, l, b ...) */
    OP_MS,
    OP_MD,
    OP_MA,
};

/* How a meta command's client wants its reply: its return flags in request
 * order and its own opaque (the L2 request carries ours instead). */
struct mplan {
    char ret[META_TOKENS_MAX];  /* f c t s k O h l, as asked */
    uint8_t nret;
    uint8_t nopaque;
    char opaque[META_OPAQUE_MAX];   /* the whole token, "O..." */
    bool value;                 /* v */
    bool quiet;                 /* q */
    bool binary;                /* b: k echoes the key in base64 */
    char mode;                  /* ms M<mode>, ma M<mode>, 0 */
    bool invalidate;            /* ms I */
};

struct l2op {
    struct worker *w;
    struct conn *c;             /* NULL once the client went away */
    enum l2op_kind kind;
    const struct cmd_row *row;
    bool noreply;
    bool started;               /* everything was sent: finish at pending 0 */
    unsigned pending;           /* answers still awaited */
    /* OP_GET */
    bool with_cas;
    struct item **slots;        /* values in key order; NULL: a miss */
    size_t nslots, cap;
    struct fetch *batch;        /* fetches this get owns, not sent yet */
    /* writes */
    struct item *it;            /* OP_STORE: the value, sent from its memory */
    enum cache_store_op store_op;
    uint64_t ticket;
    int32_t exptime;            /* OP_TOUCH */
    bool incr;                  /* OP_ARITH */
    uint8_t nkey;
    char key[CACHE_KEY_MAX];
    /* meta commands */
    struct mplan plan;
    uint8_t marks;              /* OP_MG: the lease marks of its fetch */
    bool lease;                 /* OP_MG: N given: a lease fetch */
    bool touches;               /* OP_MG_THROUGH: T given: L2's expiry changes */
    int32_t lease_ttl;
    struct item *buf;           /* OP_MG_THROUGH: the value L2 sent, unlinked */
};

/* A new op of kind for c's current command (counted on c's worker). */
struct l2op *
l2op_new(struct conn *c, enum l2op_kind kind, const struct cmd_row *row);

/* Releases what op holds and frees it; the worker may stop after its last. */
void
l2op_free(struct l2op *op);

/* op's answer is queued: its client (if any) resumes parsing; op goes. */
void
l2op_done(struct l2op *op);

/* Sends call for op to the server that owns call's key and suspends op's
 * client until its done runs; a server that cannot take it (ejected, down)
 * gets done at once with L2_DOWN. op's ticket is taken first, so a fill
 * from the answer loses to any write of the key meanwhile. */
void
l2op_send(struct l2op *op, const struct l2_call *call);

/* L2 stored op's item: keep it as this node's copy with L2's cas when keep
 * (and no write of the key came since op's ticket), else drop the copy;
 * then tell the fleet. */
void
l2op_stored(struct l2op *op, bool keep, uint64_t cas);

/* Queues line for op's client, silenced by op->noreply as cmd_out does. */
void
l2op_out(struct l2op *op, const char *line);

/* L2's own error line when it sent one, else what went wrong on the way. */
void
l2op_out_failure(struct l2op *op, const struct l2_reply *reply);

/* Tells the bus key changed (without a value hash: see l2cmd.c). */
void
l2cmd_publish(struct worker *w, const char *key, size_t nkey);

/* l2cmd_publish of op's key; under --bus-sync its client's reply (queued
 * or still to come) then waits for the fleet as any write's does: L2
 * first, then the fleet. */
void
l2op_publish(struct l2op *op);

/* An OP_MG whose fetch ended (l2cmd_meta.c): answers it, ends it. */
void
l2op_mg_finish(struct l2op *op);

#endif
