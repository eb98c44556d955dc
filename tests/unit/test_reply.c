/* test_reply: the result->line table is complete, and queued output (text
 * and zero-copy item values) reaches the socket intact, through partial
 * writes and past IOV_MAX pieces, with every item reference released. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/cache.h"
#include "net/reply.h"
#include "src/clock.h"
#include "src/log.h"

static void
setup_cache(void)
{
    clock_setup();
    struct cache_options o;
    cache_options_default(&o);
    o.manual = true;
    char err[256];
    cr_assert(cache_setup(&o, err, sizeof(err)), "%s", err);
}

static void
teardown_cache(void)
{
    cache_teardown();
}

Test(reply, every_cache_result_has_a_protocol_line)
{
    for (int r = 0; r < CACHE_RESULT_COUNT; r++) {
        const char *line = reply_result_line((enum cache_result)r);
        cr_assert_not_null(line);
        cr_assert(strncmp(line, "SERVER_ERROR unhandled", 22) != 0,
                  "%s has no line", cache_result_name((enum cache_result)r));
        cr_assert_null(strchr(line, '\r'));
    }
    cr_assert_str_eq(reply_result_line(CACHE_OK), "STORED");
    cr_assert_str_eq(reply_result_line(CACHE_MISS), "NOT_FOUND");
    cr_assert_str_eq(reply_result_line(CACHE_TOO_LARGE), "SERVER_ERROR object too large for cache");
    cr_assert_str_eq(reply_result_line(CACHE_NO_MEMORY), "SERVER_ERROR out of memory storing object");
}

Test(reply, every_reassign_result_has_memcacheds_line)
{
    for (int r = 0; r < CACHE_REASSIGN_COUNT; r++) {
        const char *line = reply_reassign_line((enum cache_reassign)r);
        cr_assert(strncmp(line, "SERVER_ERROR unhandled", 22) != 0, "reassign result %d has no line", r);
        cr_assert_null(strchr(line, '\r'));
    }
    cr_assert_str_eq(reply_reassign_line(CACHE_REASSIGN_OK), "OK");
    cr_assert_str_eq(reply_reassign_line(CACHE_REASSIGN_RUNNING), "BUSY currently processing reassign request");
    cr_assert_str_eq(reply_reassign_line(CACHE_REASSIGN_NOSPARE), "NOSPARE source class has no spare pages");
}

static struct item *
store(const char *key, const char *value, uint32_t flags)
{
    struct item *it;
    size_t vlen = strlen(value);
    cr_assert_eq(cache_alloc(&it, key, strlen(key), flags, 0, (uint32_t)vlen), CACHE_OK);
    memcpy(item_value(it), value, vlen);
    memcpy(item_value(it) + vlen, "\r\n", 2);
    cr_assert_eq(cache_store(it, CACHE_SET, 0, NULL), CACHE_OK);
    return it;
}

/* Reads everything the peer can give within a short wait. */
static size_t
drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

Test(reply, values_go_out_from_item_memory_with_their_headers, .init = setup_cache,
     .fini = teardown_cache, .timeout = 10)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct item *it = store("k", "hello", 7);
    struct reply_buf rb;
    reply_buf_init(&rb);
    reply_value(&rb, it, false);       /* the reference moves into rb */
    reply_add(&rb, "END\r\n", 5);
    uint64_t written = 0;
    cr_assert_eq(reply_send(&rb, sv[0], &written), REPLY_SENT);
    char buf[256];
    size_t n = drain(sv[1], buf, sizeof(buf));
    const char want[] = "VALUE k 7 5\r\nhello\r\nEND\r\n";
    cr_assert_eq(n, sizeof(want) - 1);
    cr_assert_eq(memcmp(buf, want, n), 0);
    cr_assert_eq(written, n);
    cr_assert(reply_empty(&rb));
    reply_buf_deinit(&rb);
    char err[256];
    cr_assert(cache_verify(err, sizeof(err)), "%s", err);
    close(sv[0]);
    close(sv[1]);
}

Test(reply, partial_writes_and_more_than_iov_max_pieces_arrive_intact,
     .init = setup_cache, .fini = teardown_cache, .timeout = 20)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    char value[REPLY_COPY_MAX + 300];  /* referenced, not copied: a piece each */
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    struct item *stored = store("big", value, 1);
    cache_release(&stored);
    struct reply_buf rb;
    reply_buf_init(&rb);
    size_t expect = 0;
    for (int i = 0; i < 3000; i++) {   /* 6000+ pieces: several writev calls */
        struct item *it = cache_get("big", 3);
        cr_assert_not_null(it);
        reply_value(&rb, it, false);
        expect += (size_t)snprintf(NULL, 0, "VALUE big 1 %zu\r\n", sizeof(value) - 1) + sizeof(value) - 1 + 2;
    }
    reply_add(&rb, "END\r\n", 5);
    expect += 5;
    size_t cap = expect + 16;
    char *got = malloc(cap);
    size_t n = 0;
    uint64_t written = 0;
    for (;;) {
        enum reply_send_result r = reply_send(&rb, sv[0], &written);
        cr_assert_neq(r, REPLY_ERROR);
        ssize_t k = read(sv[1], got + n, cap - n);
        if (k > 0)
            n += (size_t)k;
        if (r == REPLY_SENT)
            break;
    }
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    n += drain(sv[1], got + n, cap - n);
    cr_assert_eq(n, expect);
    cr_assert_eq(written, expect);
    cr_assert_eq(memcmp(got + n - 5, "END\r\n", 5), 0);
    char head[64];
    int hl = snprintf(head, sizeof(head), "VALUE big 1 %zu\r\nvvv", sizeof(value) - 1);
    cr_assert_eq(memcmp(got, head, (size_t)hl), 0);
    free(got);
    reply_buf_deinit(&rb);
    char err[256];
    cr_assert(cache_verify(err, sizeof(err)), "%s", err);
    close(sv[0]);
    close(sv[1]);
}

Test(reply, rollback_drops_queued_values_and_their_references, .init = setup_cache,
     .fini = teardown_cache)
{
    struct item *it = store("k", "v", 0);
    cache_release(&it);
    struct reply_buf rb;
    reply_buf_init(&rb);
    reply_line(&rb, "STORED");
    struct reply_mark m;
    reply_mark(&rb, &m);
    reply_value(&rb, cache_get("k", 1), true);
    reply_add(&rb, "END\r\n", 5);
    reply_rollback(&rb, &m);
    cr_assert_eq(rb.pending, 8);
    cr_assert_eq(rb.nitems, 0);
    reply_line(&rb, "CLIENT_ERROR bad command line format");
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    uint64_t w = 0;
    cr_assert_eq(reply_send(&rb, sv[0], &w), REPLY_SENT);
    char buf[128];
    size_t n = drain(sv[1], buf, sizeof(buf));
    const char want[] = "STORED\r\nCLIENT_ERROR bad command line format\r\n";
    cr_assert_eq(n, sizeof(want) - 1);
    cr_assert_eq(memcmp(buf, want, n), 0);
    reply_buf_deinit(&rb);
    char err[256];
    cr_assert(cache_verify(err, sizeof(err)), "%s", err);
    close(sv[0]);
    close(sv[1]);
}

Test(reply, small_values_are_copied_and_released_at_once_large_ones_held_until_sent,
     .init = setup_cache, .fini = teardown_cache, .timeout = 10)
{
    char big[REPLY_COPY_MAX + 1];  /* with its "\r\n", just over the bound */
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char small[REPLY_COPY_MAX - 1]; /* with its "\r\n", exactly the bound */
    memset(small, 's', sizeof(small) - 1);
    small[sizeof(small) - 1] = '\0';
    struct item *it = store("big", big, 0);
    cache_release(&it);
    it = store("small", small, 0);
    cache_release(&it);
    struct reply_buf rb;
    reply_buf_init(&rb);
    reply_value(&rb, cache_get("small", 5), false);
    cr_expect_eq(rb.nitems, 0, "a small value holds no reference");
    cr_expect_eq(rb.nsegs, 1, "header and small value are one piece");
    reply_value(&rb, cache_get("big", 3), false);
    cr_expect_eq(rb.nitems, 1, "a large value is held until written");
    reply_add(&rb, "END\r\n", 5);
    cr_expect_eq(rb.nsegs, 3);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    uint64_t w = 0;
    cr_assert_eq(reply_send(&rb, sv[0], &w), REPLY_SENT);
    char buf[3 * REPLY_COPY_MAX];
    size_t n = drain(sv[1], buf, sizeof(buf));
    char want[3 * REPLY_COPY_MAX];
    int wl = snprintf(want, sizeof(want), "VALUE small 0 %zu\r\n%s\r\nVALUE big 0 %zu\r\n%s\r\nEND\r\n",
                      strlen(small), small, strlen(big), big);
    cr_assert_eq(n, (size_t)wl);
    cr_assert_eq(memcmp(buf, want, n), 0);
    reply_buf_deinit(&rb);
    char err[256];
    cr_assert(cache_verify(err, sizeof(err)), "%s", err);
    close(sv[0]);
    close(sv[1]);
}

/* -vv logs each reply; a command that queued nothing (noreply) on a fresh
 * connection has no text buffer yet: nothing to log, and no arithmetic on
 * a null pointer (UBSan stopped the text fuzz target there). */
Test(reply, logging_a_reply_on_a_connection_that_has_sent_nothing_logs_nothing)
{
    struct reply_buf rb;
    reply_buf_init(&rb);
    struct reply_mark m;
    reply_mark(&rb, &m);
    log_setup(LOG_DEBUG);
    reply_log_since(&rb, &m, 7);
    reply_line(&rb, "STORED");
    reply_log_since(&rb, &m, 7);
    log_setup(LOG_ERROR);
    cr_expect_eq(rb.text_len, 8);
    reply_buf_deinit(&rb);
}
