/* reply: output assembly and writev. Invariant: every item in items[] is
 * referenced exactly once by this buffer and is released only after the last
 * byte pointing into it has been written (or the connection is discarded). */
#include "net/reply.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "src/log.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define REPLY_TEXT_INIT 2048
/* A buffer that grew past this for one big reply (stats, a huge multiget)
 * is given back once drained, so idle connections stay small. */
#define REPLY_TEXT_KEEP (64 * 1024)
#define REPLY_SEGS_KEEP 256
/* First sizes of the arrays, the sizes a pool holds. */
#define REPLY_SEGS_INIT 16
#define REPLY_ITEMS_INIT 16

/* One table: each cache result's protocol line. CACHE_OK's line is the
 * storage commands' one; delete and touch say DELETED / TOUCHED instead. */
#define REPLY_RESULT_LINES(X)                                                  \
    X(CACHE_OK, "STORED")                                                      \
    X(CACHE_MISS, "NOT_FOUND")                                                 \
    X(CACHE_EXISTS, "EXISTS")                                                  \
    X(CACHE_NOT_STORED, "NOT_STORED")                                          \
    X(CACHE_TOO_LARGE, "SERVER_ERROR object too large for cache")              \
    X(CACHE_NO_MEMORY, "SERVER_ERROR out of memory storing object")            \
    X(CACHE_NOT_NUMBER, "CLIENT_ERROR cannot increment or decrement non-numeric value") \
    X(CACHE_BAD_KEY, "CLIENT_ERROR bad command line format")

static const char *const reply_lines[CACHE_RESULT_COUNT] = {
#define REPLY_LINE_ENTRY(result, line) [result] = line,
    REPLY_RESULT_LINES(REPLY_LINE_ENTRY)
#undef REPLY_LINE_ENTRY
};

const char *
reply_result_line(enum cache_result r)
{
    if ((unsigned)r >= CACHE_RESULT_COUNT || reply_lines[r] == NULL)
        return "SERVER_ERROR unhandled result";
    return reply_lines[r];
}

/* `slabs reassign` outcomes: memcached 1.6.18's lines. */
#define REPLY_REASSIGN_LINES(X)                                                \
    X(CACHE_REASSIGN_OK, "OK")                                                 \
    X(CACHE_REASSIGN_RUNNING, "BUSY currently processing reassign request")    \
    X(CACHE_REASSIGN_BADCLASS, "BADCLASS invalid src or dst class id")         \
    X(CACHE_REASSIGN_NOSPARE, "NOSPARE source class has no spare pages")       \
    X(CACHE_REASSIGN_SAME, "SAME src and dst class are identical")             \
    X(CACHE_REASSIGN_DISABLED, "CLIENT_ERROR slab reassignment disabled")

static const char *const reassign_lines[CACHE_REASSIGN_COUNT] = {
#define REPLY_LINE_ENTRY(result, line) [result] = line,
    REPLY_REASSIGN_LINES(REPLY_LINE_ENTRY)
#undef REPLY_LINE_ENTRY
};

const char *
reply_reassign_line(enum cache_reassign r)
{
    if ((unsigned)r >= CACHE_REASSIGN_COUNT || reassign_lines[r] == NULL)
        return "SERVER_ERROR unhandled result";
    return reassign_lines[r];
}

void
reply_buf_init(struct reply_buf *rb)
{
    memset(rb, 0, sizeof(*rb));
}

void
reply_buf_init_pooled(struct reply_buf *rb, struct reply_pool *pool)
{
    memset(rb, 0, sizeof(*rb));
    rb->pool = pool;
}

/* Frees an array, or gives it to the pool when it has its first size. */
static void
reply_free_array(struct reply_buf *rb, struct bufpool *pool, void *p, size_t cap, size_t init)
{
    if (rb->pool != NULL && cap == init)
        bufpool_put(pool, p);
    else
        free(p);
}

static void
reply_free_arrays(struct reply_buf *rb)
{
    struct reply_pool *pl = rb->pool;
    reply_free_array(rb, pl ? &pl->text : NULL, rb->text, rb->text_cap, REPLY_TEXT_INIT);
    reply_free_array(rb, pl ? &pl->segs : NULL, rb->segs, rb->segs_cap, REPLY_SEGS_INIT);
    reply_free_array(rb, pl ? &pl->items : NULL, rb->items, rb->items_cap, REPLY_ITEMS_INIT);
    rb->text = NULL;
    rb->segs = NULL;
    rb->items = NULL;
    rb->text_cap = rb->segs_cap = rb->items_cap = 0;
}

void
reply_buf_idle(struct reply_buf *rb)
{
    if (rb->pending != 0 || rb->nitems != 0 || rb->nsegs != 0)
        return;
    reply_free_arrays(rb);
}

void
reply_pool_drain(struct reply_pool *pool)
{
    bufpool_drain(&pool->text);
    bufpool_drain(&pool->segs);
    bufpool_drain(&pool->items);
}

static void
reply_release_items(struct reply_buf *rb)
{
    for (size_t i = 0; i < rb->nitems; i++)
        cache_release(&rb->items[i]);
    rb->nitems = 0;
}

void
reply_buf_deinit(struct reply_buf *rb)
{
    reply_release_items(rb);
    struct reply_pool *pool = rb->pool;
    reply_free_arrays(rb);
    memset(rb, 0, sizeof(*rb));
    rb->pool = pool;
}

static bool
reply_grow(void **p, size_t *cap, size_t need, size_t elem, size_t init, struct bufpool *pool)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : init;
    while (n < need)
        n *= 2;
    /* a first array of the first size comes from the pool */
    void *q = *cap == 0 && n == init && pool != NULL ? bufpool_get(pool, n * elem)
                                                     : realloc(*p, n * elem);
    if (q == NULL)
        return false;
    *p = q;
    *cap = n;
    return true;
}

static bool
reply_push_seg(struct reply_buf *rb, const char *ptr, size_t off, size_t len)
{
    /* Text right after text merges into one iovec. */
    if (ptr == NULL && rb->nsegs > rb->seg_done) {
        struct reply_seg *last = &rb->segs[rb->nsegs - 1];
        if (last->ptr == NULL && last->off + last->len == off) {
            last->len += len;
            rb->pending += len;
            return true;
        }
    }
    if (!reply_grow((void **)&rb->segs, &rb->segs_cap, rb->nsegs + 1,
                    sizeof(*rb->segs), REPLY_SEGS_INIT, rb->pool ? &rb->pool->segs : NULL)) {
        rb->oom = true;
        return false;
    }
    rb->segs[rb->nsegs++] = (struct reply_seg){ .ptr = ptr, .off = off, .len = len };
    rb->pending += len;
    return true;
}

char *
reply_reserve(struct reply_buf *rb, size_t len)
{
    if (!reply_grow((void **)&rb->text, &rb->text_cap, rb->text_len + len, 1,
                    REPLY_TEXT_INIT, rb->pool ? &rb->pool->text : NULL)) {
        rb->oom = true;
        return NULL;
    }
    return rb->text + rb->text_len;
}

void
reply_commit(struct reply_buf *rb, size_t len)
{
    size_t off = rb->text_len;
    rb->text_len += len;
    if (!reply_push_seg(rb, NULL, off, len))
        rb->text_len = off;
}

void
reply_add(struct reply_buf *rb, const char *s, size_t len)
{
    if (len == 0)
        return;
    char *dst = reply_reserve(rb, len);
    if (dst == NULL)
        return;
    memcpy(dst, s, len);
    reply_commit(rb, len);
}

void
reply_line(struct reply_buf *rb, const char *line)
{
    size_t len = strlen(line);
    char *dst = reply_reserve(rb, len + 2);
    if (dst == NULL)
        return;
    memcpy(dst, line, len);
    dst[len] = '\r';
    dst[len + 1] = '\n';
    reply_commit(rb, len + 2);
}

void
reply_printf(struct reply_buf *rb, const char *fmt, ...)
{
    va_list ap;
    char *dst = reply_reserve(rb, 256);
    if (dst == NULL)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(dst, 256, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= 256) {
        dst = reply_reserve(rb, (size_t)n + 1);
        if (dst == NULL)
            return;
        va_start(ap, fmt);
        vsnprintf(dst, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    reply_commit(rb, (size_t)n);
}

/* Decimal digits of v written backwards ending at end; returns the start. */
static char *
reply_utoa(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

void
reply_item_data(struct reply_buf *rb, struct item *it)
{
    if (item_nbytes(it) <= REPLY_COPY_MAX) {
        reply_add(rb, item_value(it), item_nbytes(it));
        cache_release(&it);
        return;
    }
    if (!reply_grow((void **)&rb->items, &rb->items_cap, rb->nitems + 1,
                    sizeof(*rb->items), REPLY_ITEMS_INIT, rb->pool ? &rb->pool->items : NULL)) {
        rb->oom = true;
        cache_release(&it);
        return;
    }
    if (!reply_push_seg(rb, item_value(it), 0, item_nbytes(it))) {
        cache_release(&it);
        return;
    }
    rb->items[rb->nitems++] = it; /* released in reply_release_items once sent */
}

void
reply_value(struct reply_buf *rb, struct item *it, bool with_cas)
{
    uint8_t nkey = item_nkey(it);
    /* "VALUE " key " " flags " " bytes [" " cas] "\r\n" */
    char *dst = reply_reserve(rb, 6 + nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2);
    if (dst == NULL) {
        cache_release(&it);
        return;
    }
    char *p = dst;
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, item_key(it), nkey);
    p += nkey;
    char num[24];
    char *end = num + sizeof(num);
    char *s;
    *p++ = ' ';
    s = reply_utoa(end, item_flags(it));
    memcpy(p, s, (size_t)(end - s));
    p += end - s;
    *p++ = ' ';
    s = reply_utoa(end, item_nbytes(it) - 2);
    memcpy(p, s, (size_t)(end - s));
    p += end - s;
    if (with_cas) {
        *p++ = ' ';
        s = reply_utoa(end, item_cas(it));
        memcpy(p, s, (size_t)(end - s));
        p += end - s;
    }
    *p++ = '\r';
    *p++ = '\n';
    reply_commit(rb, (size_t)(p - dst));
    reply_item_data(rb, it);
}

void
reply_item_bytes(struct reply_buf *rb, struct item *it, const char *p, size_t len)
{
    if (len <= REPLY_COPY_MAX) {
        reply_add(rb, p, len);
        cache_release(&it);
        return;
    }
    if (!reply_grow((void **)&rb->items, &rb->items_cap, rb->nitems + 1,
                    sizeof(*rb->items), REPLY_ITEMS_INIT, rb->pool ? &rb->pool->items : NULL)) {
        rb->oom = true;
        cache_release(&it);
        return;
    }
    if (len > 0 && !reply_push_seg(rb, p, 0, len)) {
        cache_release(&it);
        return;
    }
    rb->items[rb->nitems++] = it; /* released in reply_release_items once sent */
}

void
reply_mark(const struct reply_buf *rb, struct reply_mark *m)
{
    m->text_len = rb->text_len;
    m->nsegs = rb->nsegs;
    m->last_len = rb->nsegs ? rb->segs[rb->nsegs - 1].len : 0;
    m->nitems = rb->nitems;
    m->pending = rb->pending;
}

void
reply_rollback(struct reply_buf *rb, const struct reply_mark *m)
{
    for (size_t i = m->nitems; i < rb->nitems; i++)
        cache_release(&rb->items[i]);
    rb->nitems = m->nitems;
    rb->nsegs = m->nsegs;
    if (m->nsegs)
        rb->segs[m->nsegs - 1].len = m->last_len; /* undo a text merge */
    rb->text_len = m->text_len;
    rb->pending = m->pending;
}

void
reply_log_since(const struct reply_buf *rb, const struct reply_mark *m, int fd)
{
    /* Every line a reply queues is in the text buffer, in order; so are
     * the values of at most REPLY_COPY_MAX bytes, right after their VALUE
     * or VA line (larger ones are segments pointing into items).
     * A command that queued nothing (noreply) may find no buffer at all yet. */
    if (rb->text_len <= m->text_len)
        return;
    const char *p = rb->text + m->text_len;
    const char *end = rb->text + rb->text_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        size_t len = (size_t)(stop - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        size_t value = 0; /* bytes of a value the line announces */
        if (len > 6 && memcmp(p, "VALUE ", 6) == 0) {
            const char *key = p + 6;
            const char *sp = memchr(key, ' ', len - 6);
            log_debug(">%d sending key %.*s", fd, (int)(sp ? (size_t)(sp - key) : len - 6), key);
            /* "VALUE key flags bytes[ cas]" */
            const char *q = sp != NULL ? memchr(sp + 1, ' ', (size_t)(p + len - sp - 1)) : NULL;
            value = q != NULL ? strtoull(q + 1, NULL, 10) + 2 : 0;
        } else if (!(len >= 5 && memcmp(p, "STAT ", 5) == 0)) {
            log_debug(">%d %.*s", fd, (int)len, p);
            if (len > 3 && memcmp(p, "VA ", 3) == 0)
                value = strtoull(p + 3, NULL, 10) + 2;
        }
        p = stop + 1;
        if (value > 0 && value <= REPLY_COPY_MAX)
            p += value <= (size_t)(end - p) ? value : (size_t)(end - p); /* the copied value */
    }
}

static void
reply_reset(struct reply_buf *rb)
{
    reply_release_items(rb);
    rb->nsegs = rb->seg_done = rb->seg_off = 0;
    rb->text_len = 0;
    rb->pending = 0;
    rb->oom = false;
    if (rb->text_cap > REPLY_TEXT_KEEP) {
        free(rb->text);
        rb->text = NULL;
        rb->text_cap = 0;
    }
    if (rb->segs_cap > REPLY_SEGS_KEEP) {
        free(rb->segs);
        rb->segs = NULL;
        rb->segs_cap = 0;
    }
}

enum reply_send_result
reply_send(struct reply_buf *rb, int fd, uint64_t *written)
{
    struct iovec iov[IOV_MAX];
    while (rb->pending > 0) {
        int n = 0;
        for (size_t i = rb->seg_done; i < rb->nsegs && n < IOV_MAX; i++, n++) {
            const struct reply_seg *sg = &rb->segs[i];
            const char *base = sg->ptr ? sg->ptr : rb->text + sg->off;
            size_t skip = i == rb->seg_done ? rb->seg_off : 0;
            iov[n].iov_base = (void *)(base + skip);
            iov[n].iov_len = sg->len - skip;
        }
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return REPLY_AGAIN;
            return REPLY_ERROR;
        }
        *written += (uint64_t)w;
        rb->pending -= (size_t)w;
        size_t left = (size_t)w;
        while (left > 0) {
            struct reply_seg *sg = &rb->segs[rb->seg_done];
            size_t rem = sg->len - rb->seg_off;
            if (left < rem) {
                rb->seg_off += left;
                left = 0;
            } else {
                left -= rem;
                rb->seg_done++;
                rb->seg_off = 0;
            }
        }
    }
    reply_reset(rb);
    return REPLY_SENT;
}
