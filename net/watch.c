/* watch: the watcher registry and the log lines, in memcached 1.6.18's
 * formats. Locks: the registry's rwlock (read by every event, written when a
 * watcher comes or goes), then one watcher's mutex around its ring buffer;
 * both are leaves (nothing is called while holding them but memcpy and
 * ev_async_send), so a producer holding cache locks may take them. A
 * watcher's connection copies its lines out under the mutex and writes them
 * with none held. */
#include "net/watch.h"

#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "net/conn.h"
#include "src/clock.h"

/* memcached's WATCHER_LIMIT; each watcher's buffer is -o watcher_logbuf_size. */
#define WATCH_MAX 20
/* Room kept for the "skipped=N" line memcached puts before the next one. */
#define WATCH_SKIP_ROOM 128
#define WATCH_LINE_MAX 2048

struct watch {
    pthread_mutex_t lock;
    char *buf;                  /* ring of cap bytes: used bytes start at head */
    size_t cap, head, used;
    uint64_t skipped;           /* lines lost since the last one that fit */
    unsigned kinds;
    struct conn *conn;
    struct ev_loop *loop;
    ev_async wake;              /* on the connection's worker: lines arrived */
};

_Atomic unsigned watch_kinds;

static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct watch *watchers[WATCH_MAX];
static _Atomic uint64_t next_gid = 1;
static _Atomic uint64_t stat_written, stat_skipped, stat_sent;
static _Atomic unsigned stat_watchers;

unsigned
watch_kind_named(const char *word, size_t len)
{
#define WATCH_KIND_MATCH(name, w)                                   \
    if (len == sizeof(w) - 1 && memcmp(word, w, len) == 0)           \
        return WATCH_KIND(name);
    WATCH_KINDS(WATCH_KIND_MATCH)
#undef WATCH_KIND_MATCH
    return 0;
}

/* Registry write lock held. */
static void
watch_recount(void)
{
    unsigned kinds = 0, n = 0;
    for (unsigned i = 0; i < WATCH_MAX; i++)
        if (watchers[i] != NULL) {
            kinds |= watchers[i]->kinds;
            n++;
        }
    atomic_store(&watch_kinds, kinds);
    atomic_store(&stat_watchers, n);
}

static void
watch_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    struct watch *w = a->data;
    conn_kick(w->conn); /* may destroy the connection and w with it */
}

enum watch_add_result
watch_add(struct conn *c, unsigned kinds, struct watch **out)
{
    struct watch *w = calloc(1, sizeof(*w));
    size_t cap = c->w->shared->opts.watcher_logbuf_size;
    char *buf = malloc(cap > 0 ? cap : 1);
    if (w == NULL || buf == NULL) {
        free(w);
        free(buf);
        return WATCH_FAILED;
    }
    pthread_mutex_init(&w->lock, NULL);
    w->buf = buf;
    w->cap = cap;
    w->kinds = kinds;
    w->conn = c;
    w->loop = c->w->loop;
    ev_async_init(&w->wake, watch_wake_cb);
    w->wake.data = w;
    pthread_rwlock_wrlock(&reg_lock);
    unsigned slot = WATCH_MAX;
    for (unsigned i = 0; i < WATCH_MAX && slot == WATCH_MAX; i++)
        if (watchers[i] == NULL)
            slot = i;
    if (slot == WATCH_MAX) {
        pthread_rwlock_unlock(&reg_lock);
        pthread_mutex_destroy(&w->lock);
        free(buf);
        free(w);
        return WATCH_TOO_MANY;
    }
    ev_async_start(w->loop, &w->wake);
    watchers[slot] = w;
    watch_recount();
    pthread_rwlock_unlock(&reg_lock);
    *out = w;
    return WATCH_ADDED;
}

void
watch_remove(struct watch *w)
{
    if (w == NULL)
        return;
    pthread_rwlock_wrlock(&reg_lock);
    for (unsigned i = 0; i < WATCH_MAX; i++)
        if (watchers[i] == w)
            watchers[i] = NULL;
    watch_recount();
    pthread_rwlock_unlock(&reg_lock);
    /* No producer can reach w now: stop its wake-up on its own thread. */
    ev_async_stop(w->loop, &w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->buf);
    free(w);
}

/* w->lock held. */
static void
ring_put(struct watch *w, const char *s, size_t len)
{
    size_t tail = (w->head + w->used) % w->cap;
    size_t first = w->cap - tail < len ? w->cap - tail : len;
    memcpy(w->buf + tail, s, first);
    memcpy(w->buf, s + first, len - first);
    w->used += len;
}

size_t
watch_drain(struct watch *w, struct reply_buf *out, size_t max)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->used < max ? w->used : max;
    size_t first = w->cap - w->head < n ? w->cap - w->head : n;
    reply_add(out, w->buf + w->head, first);
    reply_add(out, w->buf, n - first);
    w->head = w->cap > 0 ? (w->head + n) % w->cap : 0;
    w->used -= n;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Offers one line to every watcher of kind (memcached's
 * logger_thread_write_entry: a watcher without room for the line and a
 * skipped note loses the line; the next line that fits goes after
 * "skipped=N"). */
static void
watch_emit(unsigned kind, const char *line, size_t len)
{
    atomic_fetch_add_explicit(&stat_written, 1, memory_order_relaxed);
    pthread_rwlock_rdlock(&reg_lock);
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        struct watch *w = watchers[i];
        if (w == NULL || !(w->kinds & kind))
            continue;
        pthread_mutex_lock(&w->lock);
        bool was_empty = w->used == 0;
        if (w->cap - w->used < len + WATCH_SKIP_ROOM) {
            w->skipped++;
            atomic_fetch_add_explicit(&stat_skipped, 1, memory_order_relaxed);
        } else {
            if (w->skipped > 0) {
                char note[64];
                int n = snprintf(note, sizeof(note), "skipped=%llu\n",
                                 (unsigned long long)w->skipped);
                ring_put(w, note, (size_t)n);
                w->skipped = 0;
            }
            ring_put(w, line, len);
            atomic_fetch_add_explicit(&stat_sent, 1, memory_order_relaxed);
        }
        bool wake = was_empty && w->used > 0;
        pthread_mutex_unlock(&w->lock);
        if (wake)
            ev_async_send(w->loop, &w->wake);
    }
    pthread_rwlock_unlock(&reg_lock);
}

size_t
watch_uriencode(const char *key, size_t nkey, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < nkey; i++) {
        unsigned char ch = (unsigned char)key[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* "ts=<sec>.<usec> gid=<n> " as memcached prints it (the microseconds
 * unpadded, as it does). */
static int
watch_prefix(char *buf, size_t len)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t gid = atomic_fetch_add_explicit(&next_gid, 1, memory_order_relaxed);
    return snprintf(buf, len, "ts=%d.%d gid=%llu ", (int)tv.tv_sec, (int)tv.tv_usec,
                    (unsigned long long)gid);
}

void
watch_fetch(const char *key, size_t nkey, enum watch_found found, unsigned class_id,
            uint32_t vlen, int cfd)
{
    static const char *const found_names[] = { "not_found", "found", "flushed", "expired" };
    char line[WATCH_LINE_MAX];
    char keybuf[CACHE_KEY_MAX * 3 + 1];
    watch_uriencode(key, nkey < CACHE_KEY_MAX ? nkey : CACHE_KEY_MAX, keybuf);
    int n = watch_prefix(line, sizeof(line));
    n += snprintf(line + n, sizeof(line) - (size_t)n,
                  "type=item_get key=%s status=%s clsid=%u cfd=%d size=%u\n",
                  keybuf, found_names[found], class_id, cfd, vlen);
    if (n > 0 && (size_t)n < sizeof(line))
        watch_emit(WATCH_KIND(FETCHERS), line, (size_t)n);
}

void
watch_store(const char *key, size_t nkey, enum cache_store_op op, enum cache_result r,
            uint32_t ttl, unsigned class_id, uint32_t vlen, int cfd)
{
    static const char *const ops[] = {
        [CACHE_SET] = "set", [CACHE_ADD] = "add", [CACHE_REPLACE] = "replace",
        [CACHE_APPEND] = "append", [CACHE_PREPEND] = "prepend", [CACHE_CAS] = "cas",
        [CACHE_CAS_STALE] = "cas",
    };
    const char *status;
    switch (r) {
    case CACHE_OK: status = "stored"; break;
    case CACHE_EXISTS: status = "exists"; break;
    case CACHE_MISS: status = "not_found"; break;
    case CACHE_TOO_LARGE: status = "too_large"; break;
    case CACHE_NO_MEMORY: status = "no_memory"; break;
    default: status = "not_stored"; break;
    }
    char line[WATCH_LINE_MAX];
    char keybuf[CACHE_KEY_MAX * 3 + 1];
    watch_uriencode(key, nkey < CACHE_KEY_MAX ? nkey : CACHE_KEY_MAX, keybuf);
    int n = watch_prefix(line, sizeof(line));
    n += snprintf(line + n, sizeof(line) - (size_t)n,
                  "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%u\n",
                  keybuf, status, (unsigned)op < sizeof(ops) / sizeof(ops[0]) && ops[op] ? ops[op] : "null",
                  ttl, class_id, cfd, vlen);
    if (n > 0 && (size_t)n < sizeof(line))
        watch_emit(WATCH_KIND(MUTATIONS), line, (size_t)n);
}

void
watch_evicted(const struct cache_item_view *v)
{
    if (!watch_wants(WATCH_KIND(EVICTIONS)))
        return;
    char line[WATCH_LINE_MAX];
    char keybuf[CACHE_KEY_MAX * 3 + 1];
    watch_uriencode(v->key, v->nkey, keybuf);
    long long now = (long long)clock_process_started() + clock_now();
    long long ttl = v->exptime == 0 ? -1 : v->exptime - now;
    int n = watch_prefix(line, sizeof(line));
    n += snprintf(line + n, sizeof(line) - (size_t)n,
                  "type=eviction key=%s fetch=%s ttl=%lld la=%u clsid=%u size=%u\n",
                  keybuf, v->fetched ? "yes" : "no", ttl, v->idle, v->class_id, v->vlen);
    if (n > 0 && (size_t)n < sizeof(line))
        watch_emit(WATCH_KIND(EVICTIONS), line, (size_t)n);
}

void
watch_stats_get(struct watch_stats *out)
{
    out->written = atomic_load(&stat_written);
    out->skipped = atomic_load(&stat_skipped);
    out->sent = atomic_load(&stat_sent);
    out->watchers = atomic_load(&stat_watchers);
}
