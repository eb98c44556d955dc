/* Tests for net/listener.c. At shutdown the main thread closes the listening
 * sockets while workers may be answering `stats conns`: this program
 * interposes close(2) so that, at the moment listener_close closes each
 * socket, it can ask `stats conns` what a worker would see then. */
#include <criterion/criterion.h>
#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/listener.h"
#include "net/reply.h"
#include "net/stats_text.h"
#include "src/clock.h"

static struct net_shared sh;
static bool watching;           /* inside listener_close */
static unsigned closes_seen;
static int listed_while_closing = -1;

/* listener.c hands accepted sockets here (net.c in the server). */
void
net_dispatch(int fd, const char *listen_name)
{
    (void)fd;
    (void)listen_name;
}

/* The text `stats conns` gives for the listeners right now. */
static void
listener_lines(char *buf, size_t cap)
{
    struct reply_buf out;
    reply_buf_init(&out);
    listener_stats_conns(&out);
    size_t n = out.text_len < cap - 1 ? out.text_len : cap - 1;
    if (n > 0)
        memcpy(buf, out.text, n);
    buf[n] = '\0';
    reply_buf_deinit(&out);
}

int close(int fd);

int
close(int fd)
{
    if (watching) {
        char lines[4096], mine[32];
        listener_lines(lines, sizeof(lines));
        snprintf(mine, sizeof(mine), "STAT %d:", fd);
        if (strstr(lines, mine) != NULL)
            listed_while_closing = fd;
        closes_seen++;
    }
    return (int)syscall(SYS_close, fd);
}

static struct ev_loop *
open_listeners(const char *spec)
{
    clock_setup();
    sh.opts.tcp_port = 1;               /* TCP on; the -l entries name their ports */
    sh.opts.listen = (char *)spec; /* the option row is a mutable list */
    sh.opts.backlog = 16;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    char err[256] = "";
    cr_assert(listener_open(&sh, err, sizeof(err)), "listener_open: %s", err);
    listener_start(loop);
    return loop;
}

Test(listener, stats_conns_lists_every_listening_socket, .timeout = 20)
{
    struct ev_loop *loop = open_listeners("127.0.0.1:0,127.0.0.1:0");
    char lines[4096];
    listener_lines(lines, sizeof(lines));
    unsigned n = 0;
    for (const char *p = lines; (p = strstr(p, ":state conn_listening\r\n")) != NULL; p++)
        n++;
    cr_expect_eq(n, 2, "%s", lines);
    cr_expect_not_null(strstr(lines, ":addr tcp:127.0.0.1:"), "%s", lines);
    listener_close();
    ev_loop_destroy(loop);
}

/* A worker answering `stats conns` while shutdown closes the listeners must
 * never read a listener that is being torn down. */
Test(listener, no_listener_is_listed_once_shutdown_starts_closing_them, .timeout = 20)
{
    struct ev_loop *loop = open_listeners("127.0.0.1:0,127.0.0.1:0,127.0.0.1:0");
    watching = true;
    listener_close();
    watching = false;
    cr_assert_eq(closes_seen, 3, "listener_close closed %u sockets", closes_seen);
    cr_expect_eq(listed_while_closing, -1, "stats conns listed fd %d while it was being closed",
                 listed_while_closing);
    char lines[4096];
    listener_lines(lines, sizeof(lines));
    cr_expect_str_empty(lines, "a closed listener is still listed: %s", lines);
    ev_loop_destroy(loop);
}
