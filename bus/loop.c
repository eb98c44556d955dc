/* loop: the bus thread — one libev loop that reads both sockets
 * (receive.c), runs every timer off one timerfd armed at the earliest
 * deadline (heartbeats, the tail after DATA, the peers' NACKs, deadlines and
 * timeouts), sends the bus thread's own batches on another timerfd, has that
 * timerfd armed by senders whose DATA starts a tail, and on stop says goodbye and lingers
 * for last NACKs. Invariant: every
 * watcher and the fields marked "bus thread only" in bus_internal.h are
 * touched by this thread alone once it runs; other threads reach it only
 * through ev_async_send. */
#include <signal.h>
#include <stdint.h>
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

/* The tick is a timerfd on absolute CLOCK_MONOTONIC time (bus_now_us's
 * clock): repairs run on sub-millisecond timers, and libev's epoll backend
 * rounds its own timer waits up to whole milliseconds. Under tick_lock. */
static void
arm_tick(int64_t at_us)
{
    if (at_us <= 0)
        at_us = 1;
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(at_us / 1000000),
                                          .tv_nsec = (long)(at_us % 1000000) * 1000}};
    if (timerfd_settime(bus.tick_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        bus.tick_at_us = at_us;
}

void
bus_loop_tick_at(int64_t at_us)
{
    pthread_mutex_lock(&bus.tick_lock);
    if (at_us < bus.tick_at_us)
        arm_tick(at_us);
    pthread_mutex_unlock(&bus.tick_lock);
}

/* The bus thread, armed earlier, finds the new DATA itself when it ticks
 * (tail_run reads last_data_ns after tick_cb disarmed under the lock, and a
 * sender stores last_data_ns before it looks at the armed time, so one of
 * the two always sees the other). */
void
bus_loop_tail(int64_t sent_us, bool more_coming)
{
    /* On a steady stream the tick then comes once a millisecond, not once a
     * datagram: each wake of the bus thread costs the node a context switch. */
    int64_t at = sent_us + (bus.tail_repeat_us > 0 && !more_coming ? bus.tail_repeat_us : 1000);
    bus_loop_tick_at(at);
}

void
bus_loop_tick_within(int64_t us)
{
    bus_loop_tick_at(bus_now_us() + us);
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

/* --- the tail: after DATA, a repeat and heartbeats at growing intervals ----------- */

/* Step 0 resends the last DATA datagram tail_repeat_us after it, if nothing
 * followed it (a datagram lost alone is then lost only if both copies are);
 * steps k >= 1 are heartbeats (2^k - 1) ms after it: 1, 3, 7, 15 ... ms, so
 * a lost last datagram is noticed within about a millisecond, until the
 * regular heartbeat takes over. A new DATA datagram starts the tail again. */
static int64_t
tail_due(int step)
{
    if (step == 0)
        return bus.tail_base_us + bus.tail_first_us;
    return bus.tail_base_us + ((INT64_C(1) << step) - 1) * 1000;
}

static bool
tail_step_valid(int step)
{
    return step >= 0 && step < 40 && tail_due(step) - bus.tail_base_us < bus.heartbeat_us;
}

/* Runs the tail's due step, if any; returns when the next one is due. */
static int64_t
tail_run(int64_t now)
{
    int64_t last = atomic_load(&bus.last_data_ns) / 1000;
    if (last == 0)
        return INT64_MAX;
    if (last != bus.tail_base_us) {
        bus.tail_base_us = last;
        bus.tail_step = bus.tail_repeat_us > 0 ? 0 : 1;
        /* More DATA was coming: the repeat waits for the first heartbeat's
         * time (and is left out if the stream went on). */
        bus.tail_first_us = atomic_load(&bus.data_steady) ? 1000 : bus.tail_repeat_us;
    }
    if (!tail_step_valid(bus.tail_step))
        return INT64_MAX;
    if (now < tail_due(bus.tail_step))
        return tail_due(bus.tail_step);
    if (bus.tail_step == 0) {
        /* Keys waiting in the current batch go out within the flush delay,
         * and that DATA's sequence number shows a lost one: on a steady
         * stream (datagrams a flush delay apart) a repeat would only send
         * every datagram twice, to every peer. */
        if (!atomic_load_explicit(&bus.pending, memory_order_relaxed))
            bus_send_tail_repeat();
        bus.tail_step++;
        if (!tail_step_valid(bus.tail_step) || now < tail_due(bus.tail_step))
            return tail_step_valid(bus.tail_step) ? tail_due(bus.tail_step) : INT64_MAX;
    }
    /* Late (a busy thread): one heartbeat stands for every step that is due. */
    while (tail_step_valid(bus.tail_step + 1) && tail_due(bus.tail_step + 1) <= now)
        bus.tail_step++;
    bus_send_heartbeat(false);
    bus.next_heartbeat_us = now + bus.heartbeat_us;
    bus.tail_step++;
    return tail_step_valid(bus.tail_step) ? tail_due(bus.tail_step) : INT64_MAX;
}

/* A sender sent DATA: (re)start the tail. */
static void
wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    int64_t now = bus_now_us();
    int64_t next = tail_run(now);
    if (bus.sync) {
        /* New DATA: with no peer to wait for, its writes are done at once. */
        int64_t t = bus_sync_tick(now);
        if (t < next)
            next = t;
    }
    if (next != INT64_MAX)
        bus_loop_tick_at(next);
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
tick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    uint64_t expirations;
    ssize_t n = read(w->fd, &expirations, sizeof(expirations));
    (void)n; /* EAGAIN after a re-arm race is harmless */
    pthread_mutex_lock(&bus.tick_lock);
    bus.tick_at_us = INT64_MAX;
    pthread_mutex_unlock(&bus.tick_lock);
    int64_t now = bus_now_us();
    if (now >= bus.next_heartbeat_us) {
        bus_send_heartbeat(false);
        bus.next_heartbeat_us = now + bus.heartbeat_us;
    }
    int64_t next = bus.next_heartbeat_us;
    int64_t t = tail_run(now);
    if (t < next)
        next = t;
    t = bus_peers_tick(now);
    if (t < next)
        next = t;
    if (bus.sync) {
        t = bus_sync_tick(now);
        if (t < next)
            next = t;
    }
    bus_loop_tick_at(next);
}

static void
linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    /* ev_break still runs the events pending in this iteration: no tail or
     * timer may speak after the last goodbye. */
    ev_io_stop(loop, &bus.tick_io);
    ev_io_stop(loop, &bus.batch_io);
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
    bus.leaving = true;     /* every heartbeat from here on says goodbye */
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
    pthread_mutex_init(&bus.tick_lock, NULL);
    bus.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    bus.batch_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    bus.tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!bus.loop || bus.batch_fd < 0 || bus.tick_fd < 0)
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
    ev_io_init(&bus.tick_io, tick_cb, bus.tick_fd, EV_READ);
    ev_io_start(bus.loop, &bus.tick_io);
    bus.next_heartbeat_us = bus_now_us() + bus.heartbeat_us;
    bus.tick_at_us = INT64_MAX;
    bus.tail_base_us = 0;
    bus.tail_step = -1;
    bus_loop_tick_at(bus.next_heartbeat_us);
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
    if (bus.tick_fd >= 0)
        close(bus.tick_fd);
    bus.tick_fd = -1;
}
