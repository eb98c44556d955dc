/* loop: the bus thread — one libev loop that reads both sockets
 * (receive.c), ticks the heartbeat and peer timers, sends the bus thread's
 * own batches on a timerfd, is woken by senders that owe a tail heartbeat,
 * and on stop says goodbye and lingers for last NACKs. Invariant: every
 * watcher and the fields marked "bus thread only" in bus_internal.h are
 * touched by this thread alone once it runs; other threads reach it only
 * through ev_async_send. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bus/bus_internal.h"

void
bus_loop_wake(void)
{
    ev_async_send(bus.loop, &bus.wake);
}

void
bus_loop_tick_within(int64_t us)
{
    if (bus.tick.repeat > us / 1e6) {
        bus.tick.repeat = us / 1e6;
        ev_timer_again(bus.loop, &bus.tick);
    }
}

/* The bus thread's own publications (announcements) have no worker to send
 * them: after announcing, it sets its timerfd for the batch they joined. One
 * shot is enough: when it fires that batch is due, unless someone sent it
 * already. Never re-armed for workers' batches, which their workers send. */
void
bus_loop_flush_later(void)
{
    int64_t wait = bus_flush_due(false);
    if (wait < 0)
        return;
    int64_t ns = wait > 0 ? wait * 1000 : 1; /* zero would disarm */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(ns / 1000000000),
                                          .tv_nsec = (long)(ns % 1000000000)}};
    timerfd_settime(bus.batch_fd, 0, &its, NULL);
}

/* A sender owes the peers a tail heartbeat: bring the next one forward. */
static void
wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (!atomic_load(&bus.tail_owed))
        return;
    int64_t tail = bus_now_us() + BUS_TAIL_HEARTBEAT_US;
    if (tail < bus.next_heartbeat_us) {
        bus.next_heartbeat_us = tail;
        bus_loop_tick_within(BUS_TAIL_HEARTBEAT_US);
    }
}

static void
batch_timer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    uint64_t expirations;
    ssize_t n = read(w->fd, &expirations, sizeof(expirations));
    (void)n; /* EAGAIN after a re-arm race: the flush below is harmless */
    (void)bus_flush_due(false);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    int64_t now = bus_now_us();
    if (now >= bus.next_heartbeat_us) {
        bus_send_heartbeat(false);
        bus.next_heartbeat_us = now + bus.heartbeat_us;
    }
    bool holes = bus_peers_tick(now);
    /* Fast while repairing; otherwise a quarter heartbeat is fine for timeouts,
     * unless a tail heartbeat is due sooner. */
    int64_t next = holes ? BUS_TICK_FAST_US : bus.heartbeat_us / 4;
    if (bus.next_heartbeat_us - now < next)
        next = bus.next_heartbeat_us - now;
    if (next < 1000)
        next = 1000;
    w->repeat = next / 1e6;
    ev_timer_again(loop, w);
}

static void
linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    bus_send_heartbeat(true);
    bus_send_heartbeat(true);
    ev_break(loop, EVBREAK_ALL);
}

/* Goodbyes: a peer that hears one, with nothing missing, skips the restart
 * flush when we come back. We linger a little to answer last NACKs, so a
 * datagram lost just before shutdown does not spoil the goodbye. */
static void
stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    (void)bus_flush_due(true);
    bus_send_heartbeat(true);
    ev_timer_init(&bus.linger, linger_cb, BUS_LINGER_S, 0.);
    ev_timer_start(loop, &bus.linger);
}

static void *
bus_thread(void *arg)
{
    (void)arg;
    /* Named so that top -H and the bench can tell the bus's CPU apart. */
    pthread_setname_np(pthread_self(), "fc-bus");
    /* Signals belong to the main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    bus_send_heartbeat(false);
    ev_run(bus.loop, 0);
    return NULL;
}

bool
bus_loop_create(void)
{
    bus.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    bus.batch_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!bus.loop || bus.batch_fd < 0)
        return false;
    if (bus.ep.group_fd >= 0) {
        ev_io_init(&bus.group_io, bus_read_cb, bus.ep.group_fd, EV_READ);
        ev_io_start(bus.loop, &bus.group_io);
    }
    ev_io_init(&bus.fd_io, bus_read_cb, bus.ep.fd, EV_READ);
    ev_io_start(bus.loop, &bus.fd_io);
    ev_async_init(&bus.wake, wake_cb);
    ev_async_start(bus.loop, &bus.wake);
    ev_async_init(&bus.stop, stop_cb);
    ev_async_start(bus.loop, &bus.stop);
    ev_io_init(&bus.batch_io, batch_timer_cb, bus.batch_fd, EV_READ);
    ev_io_start(bus.loop, &bus.batch_io);
    ev_init(&bus.tick, tick_cb);
    bus.tick.repeat = bus.heartbeat_us / 4e6;
    ev_timer_again(bus.loop, &bus.tick);
    bus.next_heartbeat_us = bus_now_us() + bus.heartbeat_us;
    return true;
}

bool
bus_loop_start(char *err, size_t errlen)
{
    int rc = pthread_create(&bus.thread, NULL, bus_thread, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "bus: cannot start its thread: %s", strerror(rc));
        return false;
    }
    bus.thread_started = true;
    return true;
}

void
bus_loop_stop(void)
{
    if (!bus.thread_started)
        return;
    /* Publishers are shut out (running is false), so the loop is ours alone now. */
    ev_async_send(bus.loop, &bus.stop);
    pthread_join(bus.thread, NULL);
    bus.thread_started = false;
}

void
bus_loop_destroy(void)
{
    if (bus.loop) {
        ev_loop_destroy(bus.loop);
        bus.loop = NULL;
    }
    if (bus.batch_fd >= 0)
        close(bus.batch_fd);
    bus.batch_fd = -1;
}
