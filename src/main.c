/* main: fleetcached's start-up and shutdown, the only place that knows every
 * module. Order: options, limits, identity, daemon, clock, cache, bus, net,
 * then the main loop (clock tick, signals, acceptor) until SIGINT/SIGTERM;
 * then net drains and stops, the bus says goodbye, the cache is torn down. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "cache/cache.h"
#include "net/net.h"
#include "src/clock.h"
#include "src/config.h"
#include "src/log.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

/* What `version` and `stats` report: memcached's protocol level first, so
 * clients that gate features on the server version keep working. */
#define FLEETCACHED_PROTO_VERSION "1.6.18-fleetcache-" PACKAGE_VERSION

/* sysexits.h values memcached uses at start-up. */
#define EXIT_NOUSER 67
#define EXIT_OSERR 71

static ev_timer clock_timer;
static ev_signal sig_int, sig_term;
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
    log_info("signal %d: stopping", s->signum);
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

static int
main_switch_user(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0; /* not root: -u means nothing, as in memcached */
    if (user == NULL) {
        log_info("running as root (no -u given)");
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "can't find the user %s to switch to\n", user);
        return EXIT_NOUSER;
    }
    if (pw->pw_uid == 0)
        return 0;
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "failed to assume identity of user %s\n", user);
        return EXIT_OSERR;
    }
    return 0;
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

static void
main_write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        log_error("Could not open the pid file %s for writing: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
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
    if (len != 3 || memcmp(name, "bus", 3) != 0)
        return false;
    struct main_bus_stats s = {emit, ctx};
    bus_stats(main_bus_stat, &s);
    return true;
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
        printf("fleetcached %s\n", PACKAGE_VERSION);
        config_deinit(&cfg);
        return 0;
    }
    log_setup(cfg.proc.verbose);

    if (!main_raise_nofile(cfg.net.max_conns, cfg.net.threads)) {
        fprintf(stderr, "failed to set rlimit for open files. Try starting as root or "
                        "requesting smaller maxconns value.\n");
        return EXIT_OSERR;
    }
    int rc = main_switch_user(cfg.proc.user);
    if (rc != 0)
        return rc;
    /* Before any thread exists: fork keeps only the calling thread. */
    if (cfg.proc.daemonize) {
        if (!main_daemonize(cfg.proc.verbose > 0)) {
            fprintf(stderr, "failed to daemon() in order to daemonize\n");
            return EXIT_OSERR;
        }
        if (cfg.proc.pidfile != NULL)
            main_write_pidfile(cfg.proc.pidfile);
    }
    signal(SIGPIPE, SIG_IGN);

    clock_setup();
    if (!cache_setup(&cfg.cache, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return EXIT_OSERR;
    }

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_timer_init(&clock_timer, clock_tick_cb, 1., 1.);
    ev_timer_start(loop, &clock_timer);
    ev_signal_init(&sig_int, signal_cb, SIGINT);
    ev_signal_start(loop, &sig_int);
    ev_signal_init(&sig_term, signal_cb, SIGTERM);
    ev_signal_start(loop, &sig_term);

    cfg.net.version = FLEETCACHED_PROTO_VERSION;
    cfg.net.settings = config_stats_settings;
    cfg.net.settings_arg = &cfg;
    /* Started before net/ so the first client write is published. */
    if (bus_enabled(&cfg.bus)) {
        if (!bus_setup(&cfg.bus, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            cache_teardown();
            return EXIT_OSERR;
        }
        cfg.net.on_invalidate = bus_publish_invalidate;
        cfg.net.on_stale = bus_publish_stale;
        cfg.net.on_flush = bus_publish_flush;
        cfg.net.on_poll = bus_publish_poll;
    }
    cfg.net.substats = main_substats; /* `stats bus` says "enabled 0" without a bus */
    if (!net_setup(&cfg.net, loop, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        net_teardown();
        bus_teardown();
        cache_teardown();
        return EXIT_OSERR;
    }

    ev_run(loop, 0);

    net_teardown();   /* workers joined: nobody publishes any more */
    bus_teardown();   /* sends what is pending and a goodbye; before the cache goes */
    cache_teardown();
    if (cfg.proc.daemonize && cfg.proc.pidfile != NULL)
        unlink(cfg.proc.pidfile);
    log_info("exiting");
    config_deinit(&cfg);
    return 0;
}
