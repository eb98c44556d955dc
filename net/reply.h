/* reply: a connection's outgoing bytes. Protocol text (result lines, VALUE
 * headers, stats) is copied into one growing text buffer; values larger
 * than REPLY_COPY_MAX are not copied: a segment points into item memory
 * and the buffer keeps the item reference until the segment has been
 * written. Smaller ones are copied into the text and their item released
 * at once: a segment, a held reference and the kernel's work per iovec cost
 * more than the copy, and a batch of small gets leaves in one piece.
 * Segments hold offsets into the text buffer, not pointers, so growing it
 * never invalidates them. Everything queued goes out with writev, at most
 * IOV_MAX pieces per call.
 *
 *   segs:  [text 0..37) [item A value] [text 37..80) [item B value] [text ..]
 *   items: A B            released together once every segment is written
 */
#ifndef FLEETCACHE_NET_REPLY_H
#define FLEETCACHE_NET_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "net/bufpool.h"

/* Values up to this many bytes ("\r\n" included) are copied. */
#define REPLY_COPY_MAX 1024

struct reply_seg {
    const char *ptr;    /* NULL: bytes live in the text buffer at off */
    size_t off;
    size_t len;
};

/* A worker's spare reply arrays at their first sizes: a connection takes
 * them for a reply and gives them back once it is idle (reply_buf_idle). */
struct reply_pool {
    struct bufpool text, segs, items;
};

struct reply_buf {
    struct reply_pool *pool;    /* NULL: plain malloc and free */
    char *text;
    size_t text_len, text_cap;
    struct reply_seg *segs;
    size_t nsegs, segs_cap;
    size_t seg_done;        /* first segment not fully written */
    size_t seg_off;         /* bytes of segs[seg_done] already written */
    struct item **items;    /* references held until everything is written */
    size_t nitems, items_cap;
    size_t pending;         /* bytes queued and not yet written */
    bool oom;               /* a queueing step failed for want of memory */
};

enum reply_send_result {
    REPLY_SENT = 0,     /* everything written; items released, buffer empty */
    REPLY_AGAIN,        /* the socket is full; call again when writable */
    REPLY_ERROR,        /* the peer is gone; discard with reply_buf_deinit */
};

void
reply_buf_init(struct reply_buf *rb);

/* As reply_buf_init, taking and giving back its arrays through pool. */
void
reply_buf_init_pooled(struct reply_buf *rb, struct reply_pool *pool);

/* Releases every held item reference and frees the buffers. */
void
reply_buf_deinit(struct reply_buf *rb);

/* An empty buffer (nothing queued) gives its arrays back, so an idle
 * connection holds no reply memory; the next reply takes them again. */
void
reply_buf_idle(struct reply_buf *rb);

/* Frees a pool's spare arrays (worker shutdown). */
void
reply_pool_drain(struct reply_pool *pool);

/* Queues len bytes of protocol text (copied). */
void
reply_add(struct reply_buf *rb, const char *s, size_t len);

/* Queues a NUL-terminated line and "\r\n" after it. */
void
reply_line(struct reply_buf *rb, const char *line);

/* Queues printf-formatted text (copied). */
void
reply_printf(struct reply_buf *rb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Room for up to max bytes of protocol text at the end of the queue, for a
 * caller that formats a line in place; reply_commit then queues the first
 * len (<= max) of them. NULL when out of memory (rb->oom is set). */
char *
reply_reserve(struct reply_buf *rb, size_t max);
void
reply_commit(struct reply_buf *rb, size_t len);

/* Queues its value and its "\r\n" (from item memory, or copied when small).
 * Takes over the caller's reference to it (released once sent, or at once). */
void
reply_item_data(struct reply_buf *rb, struct item *it);

/* Queues "VALUE key flags bytes[ cas]\r\n" and then the value, as
 * reply_item_data. Takes over the caller's reference to it. */
void
reply_value(struct reply_buf *rb, struct item *it, bool with_cas);

/* Queues len bytes at p, which lie inside it's memory (copied when at most
 * REPLY_COPY_MAX). Takes over the caller's reference to it. */
void
reply_item_bytes(struct reply_buf *rb, struct item *it, const char *p, size_t len);

/* The one protocol line for a cache result ("STORED", "NOT_FOUND", ...),
 * without "\r\n". CACHE_OK reads "STORED"; delete and touch use their own
 * success word. Never NULL. */
const char *
reply_result_line(enum cache_result r);

/* The protocol line for a `slabs reassign` outcome ("OK", "NOSPARE ..."),
 * without "\r\n". Never NULL. */
const char *
reply_reassign_line(enum cache_reassign r);

/* A point in the queue to roll back to: a multiget that fails half way
 * (a key too long) takes back the values it already queued, as memcached
 * does. Valid until the next reply_send. */
struct reply_mark {
    size_t text_len, nsegs, last_len, nitems, pending;
};

void
reply_mark(const struct reply_buf *rb, struct reply_mark *m);

/* Drops everything queued after m and releases those item references. */
void
reply_rollback(struct reply_buf *rb, const struct reply_mark *m);

/* -vv: logs the reply lines queued since m as memcached does (">fd line";
 * a value as ">fd sending key K", its bytes never; STAT lines not at all). */
void
reply_log_since(const struct reply_buf *rb, const struct reply_mark *m, int fd);

/* Writes as much as the socket takes; adds what it wrote to *written. */
enum reply_send_result
reply_send(struct reply_buf *rb, int fd, uint64_t *written);

static inline bool
reply_empty(const struct reply_buf *rb)
{
    return rb->pending == 0;
}

#endif
