/* main: fleetcached's start-up and shutdown, the only place that knows every
 * module. Order (memcached's): options, limits, identity, daemon, clock,
 * cache, bus, net (listeners bound), pid file, then the main loop (clock
 * tick, signals, acceptor) until SIGINT, SIGTERM or SIGUSR1; then net
 * drains and stops, the bus says goodbye, the cache is torn down. SIGHUP
 * is ignored, as memcached ignores it. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "cache/cache.h"
#include "l2/l2.h"
#include "net/net.h"
#include "src/clock.h"
#include "src/config.h"
#include "src/log.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

/* What `version` and `stats version` report: exactly the memcached release
 * whose protocol we speak. Clients switch features on this string and
 * parse it strictly: npm `memcached` takes the last "N.N.N" of the word
 * (a "-fleetcache-0.1.0" suffix read as 0.1.0), libmemcached (so
 * php-memcached) reads the leading numbers. fleetcache's own version is in
 * `stats` (fleetcache_version) and -V. */
#define FLEETCACHED_PROTO_VERSION "1.6.18"

/* sysexits.h values memcached uses at start-up. */
#define EXIT_USAGE 64
#define EXIT_NOUSER 67
#define EXIT_OSERR 71

static ev_timer clock_timer;
static ev_signal sig_int, sig_term, sig_usr1;
static bool stopping;

static void
clock_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    clock_update();
}

static void
net_stopped(void *arg)
{
    ev_break(arg, EVBREAK_ALL);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    if (stopping)
        return;
    stopping = true;
    /* memcached says this one without -v: SIGUSR1 is how it is told to stop
     * gracefully (for a restartable cache). */
    if (s->signum == SIGUSR1)
        log_error("Gracefully stopping");
    else
        log_info("signal %d (%s): stopping", s->signum, strsignal(s->signum));
    net_shutdown(net_stopped, loop);
}

/* memcached raises the open-file limit to fit -c; refusing start-up beats
 * failing accepts later. */
static bool
main_raise_nofile(unsigned max_conns, unsigned threads)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_conns + 20 + 3 * (rlim_t)threads;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= need)
        return true;
    rl.rlim_cur = need;
    if (rl.rlim_max < need)
        rl.rlim_max = need;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* memcached's rule: root must name the user to become (-u root is a
 * deliberate choice, not an accident of how the daemon was started). */
static int
main_switch_user(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0; /* not root: -u means nothing, as in memcached */
    if (user == NULL || *user == '\0') {
        fprintf(stderr, "can't run as root without the -u switch\n");
        return EXIT_USAGE;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "can't find the user %s to switch to\n", user);
        return EXIT_NOUSER;
    }
    if (setgroups(0, NULL) != 0) {
        /* EPERM: already without the right to, so nothing to drop. */
        int e = errno;
        fprintf(stderr, "failed to drop supplementary groups: %s\n", strerror(e));
        if (e != EPERM)
            return EXIT_OSERR;
    }
    if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "failed to assume identity of user %s\n", user);
        return EXIT_OSERR;
    }
    return 0;
}

/* -r: as memcached, unlimited core files, else the hard limit; fails only
 * when no core file could be written at all. */
static bool
main_enable_coredumps(void)
{
    struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
    if (setrlimit(RLIMIT_CORE, &rl) != 0 && getrlimit(RLIMIT_CORE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_CORE, &rl);
    }
    return getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != 0;
}

static bool
main_daemonize(bool keep_stdio)
{
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return false;
    if (chdir("/") != 0)
        return false;
    if (!keep_stdio) {
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            return false;
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return true;
}

/* Writes path.tmp and renames it over path, as memcached 1.6.18 does, so a
 * reader never sees a half-written pid. A failure is a warning, not fatal
 * (memcached's choice). */
static void
main_write_pidfile(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        log_error("Could not open the pid file %s.tmp for writing: %s", path,
                  strerror(ENAMETOOLONG));
        return;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_error("Could not open the pid file %s for writing: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0) {
        log_error("Could not close the pid file %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return;
    }
    if (rename(tmp, path) != 0) {
        log_error("Could not rename the pid file %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
    }
}

/* -i: memcached prints its own and libevent's licenses; fleetcached names
 * the libraries it links and their licenses. */
static void
main_license(FILE *out)
{
    fprintf(out, "fleetcached %s\n\n"
                 "Linked libraries and their licenses:\n"
                 "  libev      BSD-2-Clause or GPL-2.0-or-later (Marc Lehmann)\n"
                 "  xxHash     BSD-2-Clause (Yann Collet)\n"
                 "  libsodium  ISC (Frank Denis)\n"
                 "fleetcache's own license: see the copyright file of its package or "
                 "repository.\n",
            PACKAGE_VERSION);
}

/* `stats bus`: adapts bus_stats' (name, value) lines to net's emitter. */
struct main_bus_stats {
    net_stat_emit_fn emit;
    void *ctx;
};

static void
main_bus_stat(const char *name, const char *value, void *arg)
{
    struct main_bus_stats *s = arg;
    s->emit(s->ctx, name, "%s", value);
}

static bool
main_substats(const char *name, size_t len, net_stat_emit_fn emit, void *ctx)
{
    struct main_bus_stats s = {emit, ctx};
    if (len == 3 && memcmp(name, "bus", 3) == 0) {
        bus_stats(main_bus_stat, &s);
        return true;
    }
    if (len == 2 && memcmp(name, "l2", 2) == 0) {
        l2_stats(main_bus_stat, &s); /* "servers 0" without a pool */
        return true;
    }
    return false;
}

int
main(int argc, char **argv)
{
    static struct config cfg; /* net/ reads `stats settings` from it until exit */
    char err[512];
    int code = 1;

    config_init(&cfg);
    if (!config_parse(&cfg, argc, argv, stderr, err, sizeof(err), &code)) {
        fprintf(stderr, "%s\n", err);
        config_deinit(&cfg);
        return code;
    }
    if (cfg.proc.help) {
        config_usage(stdout, PACKAGE_VERSION);
        config_deinit(&cfg);
        return 0;
    }
    if (cfg.proc.license) {
        main_license(stdout);
        config_deinit(&cfg);
        return 0;
    }
    if (cfg.proc.version) {
        printf("fleetcached %s (memcached %s protocol)\n", PACKAGE_VERSION,
               FLEETCACHED_PROTO_VERSION);
        config_deinit(&cfg);
        return 0;
    }
    log_setup(cfg.proc.verbose);

    if (!main_raise_nofile(cfg.net.max_conns, cfg.net.threads)) {
        fprintf(stderr, "failed to set rlimit for open files. Try starting as root or "
                        "requesting smaller maxconns value.\n");
        return EXIT_OSERR;
    }
    if (cfg.proc.coredumps && !main_enable_coredumps()) {
        fprintf(stderr, "failed to ensure corefile creation\n");
        return EXIT_OSERR;
    }
    int rc = main_switch_user(cfg.proc.user);
    if (rc != 0)
        return rc;
    /* Before any thread exists: fork keeps only the calling thread. */
    if (cfg.proc.daemonize && !main_daemonize(cfg.proc.verbose > 0)) {
        fprintf(stderr, "failed to daemon() in order to daemonize\n");
        return EXIT_FAILURE;
    }
    /* After the fork (memory locks are not inherited), before the cache
     * maps its memory (MCL_FUTURE covers it). */
    if (cfg.proc.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        fprintf(stderr, "warning: -k invalid, mlockall() failed: %s\n", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    /* Process-wide, so every thread ignores it too: logrotate and closed
     * terminals send it, and memcached carries on. */
    signal(SIGHUP, SIG_IGN);

    clock_setup();
    if (cfg.l2.servers != NULL) {
        /* Two-level mode: L1 items are copies carrying L2's CAS, and none
         * lives longer than --l1-ttl (fills and writes alike). */
        cfg.cache.upstream_cas = true;
        if (cfg.cache.max_ttl == 0 || cfg.cache.max_ttl > cfg.l2.l1_ttl)
            cfg.cache.max_ttl = cfg.l2.l1_ttl;
        cfg.net.l2 = true;
        cfg.net.l1_ttl = cfg.l2.l1_ttl;
        if (!l2_setup(&cfg.l2, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return EXIT_OSERR;
        }
    }
    if (!cache_setup(&cfg.cache, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        l2_teardown();
        return EXIT_OSERR;
    }

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_timer_init(&clock_timer, clock_tick_cb, 1., 1.);
    ev_timer_start(loop, &clock_timer);
    ev_signal_init(&sig_int, signal_cb, SIGINT);
    ev_signal_start(loop, &sig_int);
    ev_signal_init(&sig_term, signal_cb, SIGTERM);
    ev_signal_start(loop, &sig_term);
    ev_signal_init(&sig_usr1, signal_cb, SIGUSR1);
    ev_signal_start(loop, &sig_usr1);

    cfg.net.version = FLEETCACHED_PROTO_VERSION;
    cfg.net.product_version = PACKAGE_VERSION;
    cfg.net.settings = config_stats_settings;
    cfg.net.settings_arg = &cfg;
    /* Started before net/ so the first client write is published. */
    if (bus_enabled(&cfg.bus)) {
        cfg.bus.on_sync_progress = net_sync_progress;
        if (!bus_setup(&cfg.bus, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            l2_teardown();
            cache_teardown();
            return EXIT_OSERR;
        }
        cfg.net.on_invalidate = bus_publish_invalidate;
        cfg.net.on_stale = bus_publish_stale;
        cfg.net.on_flush = bus_publish_flush;
        cfg.net.on_poll = bus_publish_poll;
        if (bus_sync_enabled()) {
            /* --bus-sync: replies of writes wait for the fleet, and hits
             * for a read lease (the check stays in net/: cache/ knows none). */
            cfg.net.sync_ticket = bus_sync_ticket;
            cfg.net.sync_done = bus_sync_done;
            cfg.net.read_ok = bus_read_ok;
        }
    }
    cfg.net.substats = main_substats; /* `stats bus` says "enabled 0" without a bus */
    if (!net_setup(&cfg.net, loop, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        net_teardown();
        l2_teardown();
        bus_teardown();
        cache_teardown();
        return EXIT_OSERR;
    }
    /* Once listening, as memcached: a start that fails to bind leaves no
     * pid file behind, with or without -d. */
    if (cfg.proc.pidfile != NULL)
        main_write_pidfile(cfg.proc.pidfile);

    ev_run(loop, 0);

    net_teardown();   /* workers joined, L2 requests finished: nobody publishes any more */
    l2_teardown();
    bus_teardown();   /* sends what is pending and a goodbye; before the cache goes */
    cache_teardown();
    /* memcached removes the pid file only when it daemonized. */
    if (cfg.proc.daemonize && cfg.proc.pidfile != NULL)
        unlink(cfg.proc.pidfile);
    log_info("Exiting normally");
    config_deinit(&cfg);
    return 0;
}
