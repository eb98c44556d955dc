# The operator's commands where a byte script cannot say it: `watch` streams
# (line shapes, a slow watcher that loses lines without slowing anyone),
# key dumps of many keys (every key once, other clients still served), a
# live memory limit, `stats settings` following the live knobs, and the
# `stats` key set with the crawler and maintainer off, against memcached
# 1.6.18. Every wait is bounded by a deadline.

import re
import socket
import time

import fixture
from fixture import recv_until

WATCH_GET = re.compile(rb"^ts=\d+\.\d+ gid=\d+ type=item_get key=(\S+) status=(\w+) clsid=\d+ "
                       rb"cfd=\d+ size=\d+$")
WATCH_STORE = re.compile(rb"^ts=\d+\.\d+ gid=\d+ type=item_store key=(\S+) status=(\w+) cmd=(\w+) "
                         rb"ttl=\d+ clsid=\d+ cfd=\d+ size=\d+$")
WATCH_EVICT = re.compile(rb"^ts=\d+\.\d+ gid=\d+ type=eviction key=(\S+) fetch=(yes|no) "
                         rb"ttl=-?\d+ la=\d+ clsid=\d+ size=\d+$")


def expect_eq(what, got, want):
    if got != want:
        raise AssertionError("%s: expected %.200r got %.200r" % (what, want, got))


def send_recv(c, data, end=b"\r\n"):
    c.sendall(data)
    return recv_until(c, end, 5)


def read_lines(sock, want, deadline):
    """Reads watch lines until want(lines) or the deadline; returns them."""
    buf = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        lines = buf.split(b"\n")[:-1]
        if want(lines):
            return lines
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n")[:-1]


def drain_until_quiet(sock, deadline, quiet=0.5):
    """Reads until nothing came for `quiet` seconds; returns the lines that
    say how many were skipped (the rest is dropped)."""
    end = time.monotonic() + deadline
    buf, notes = b"", []
    while time.monotonic() < end:
        sock.settimeout(quiet)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        notes += [l for l in lines if l.startswith(b"skipped=")]
    return notes


def watch_lines(binary, kind):
    with fixture.Server(binary, ["-m", "2"], name=kind) as srv:
        w = srv.connect()
        expect_eq("watch", send_recv(w, b"watch fetchers mutations evictions\r\n"), b"OK\r\n")
        c = srv.connect()
        send_recv(c, b"set k 0 0 1\r\nx\r\n")
        send_recv(c, b"get k nokey\r\n", b"END\r\n")
        send_recv(c, b"add k 0 0 1\r\ny\r\n")
        send_recv(c, b"ms mk 2\r\nhi\r\n")
        send_recv(c, b"mg mk v\r\n", b"hi\r\n")

        def seen(ls):
            stores = [WATCH_STORE.match(l).groups() for l in ls if WATCH_STORE.match(l)]
            gets = [WATCH_GET.match(l).groups() for l in ls if WATCH_GET.match(l)]
            return ((b"k", b"stored", b"set") in stores and (b"k", b"not_stored", b"add") in stores
                    and (b"mk", b"stored", b"set") in stores and (b"k", b"found") in gets
                    and (b"nokey", b"not_found") in gets and (b"mk", b"found") in gets)
        lines = read_lines(w, seen, 5)
        if not seen(lines):
            raise AssertionError("watch lines for get, set, add, ms, mg: %r" % lines)
        # evictions: -m 2 holds about 2000 1000-byte items
        value = b"v" * 1000
        for i in range(4000):
            c.sendall(b"set e%05d 0 0 1000 noreply\r\n%s\r\n" % (i, value))
        send_recv(c, b"version\r\n")
        lines = read_lines(w, lambda ls: any(WATCH_EVICT.match(l) for l in ls), 5)
        if not any(WATCH_EVICT.match(l) for l in lines):
            raise AssertionError("no eviction line in %d lines" % len(lines))
        st = dict(fixture.stats_on(c))
        expect_eq("log_watchers", st.get("log_watchers"), "1")
        if int(st.get("log_watcher_sent", 0)) < 4:
            raise AssertionError("log_watcher_sent %s" % st.get("log_watcher_sent"))
        w.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and dict(fixture.stats_on(c)).get("log_watchers") != "0":
            time.sleep(0.05)
        expect_eq("log_watchers after the watcher left", dict(fixture.stats_on(c)).get("log_watchers"), "0")
        c.close()


def watch_slow_reader(binary, kind):
    """A watcher that stops reading loses lines, counted, and nobody waits
    for it; when it reads again it is told how many it lost."""
    with fixture.Server(binary, [], name=kind) as srv:
        w = srv.connect()
        expect_eq("watch", send_recv(w, b"watch fetchers\r\n"), b"OK\r\n")
        c = srv.connect()
        batch = b"".join(b"get %s%03d\r\n" % (b"k" * 200, i) for i in range(500))
        for _ in range(200):           # 100,000 lines of ~300 bytes, 30 MB unread
            c.sendall(batch)
            buf = b""
            while buf.count(b"END\r\n") < 500:
                buf += recv_until(c, b"END\r\n", 10)
        st = dict(fixture.stats_on(c))
        skipped = int(st.get("log_watcher_skipped", 0))
        # memcached drops in its per-worker buffers first (log_worker_dropped)
        if skipped + int(st.get("log_worker_dropped", 0)) == 0:
            raise AssertionError("a stalled watcher lost no lines: %s" % st)
        notes = drain_until_quiet(w, 30)
        c.sendall(b"get after\r\n")
        recv_until(c, b"END\r\n", 5)
        lines = read_lines(w, lambda ls: any(b"key=after " in l for l in ls), 10)
        if not any(b"key=after " in l for l in lines):
            raise AssertionError("the watcher got no line after it caught up")
        notes += [l for l in lines if l.startswith(b"skipped=")]
        if skipped and not any(re.match(rb"^skipped=\d+$", l) for l in notes):
            raise AssertionError("no skipped=N line once it read again: %r" % lines[-3:])
        w.close()
        c.close()


def watch_refusals(binary, kind):
    with fixture.Server(binary, ["-W"], name=kind) as srv, srv.connect() as c:
        expect_eq("watch with -W", send_recv(c, b"watch\r\n"),
                  b"CLIENT_ERROR watch commands not allowed\r\n")
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as c:
        expect_eq("watch bogus", send_recv(c, b"watch bogus\r\n"), b"ERROR\r\n")
        got = send_recv(c, b"version\r\nwatch\r\n", b"watch\r\n")
        if not got.startswith(b"VERSION ") or \
                not got.endswith(b"\r\nERROR cannot pipeline other commands before watch\r\n"):
            raise AssertionError("pipelined before watch: %r" % got)


def metadump_many(binary, kind):
    """50,000 keys dumped in steps: each exactly once, and a second client
    is answered while the dump streams."""
    n = 50000
    with fixture.Server(binary, ["-m", "128"], name=kind) as srv:
        c = srv.connect()
        for base in range(0, n, 1000):
            c.sendall(b"".join(b"set key:%06d 0 0 1 noreply\r\nx\r\n" % i for i in range(base, base + 1000)))
        send_recv(c, b"version\r\n")
        d = srv.connect()
        d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        d.sendall(b"lru_crawler metadump all\r\n")
        # while the dump waits on our slow reading, the other client is served
        time.sleep(0.2)
        expect_eq("get during a dump", send_recv(c, b"get key:000001\r\n", b"END\r\n"),
                  b"VALUE key:000001 0 1\r\nx\r\nEND\r\n")
        data = recv_until(d, b"END\r\n", 60)
        keys = re.findall(rb"key=key%3A(\d+) ", data)
        expect_eq("keys dumped", len(keys), n)
        expect_eq("distinct keys dumped", len(set(keys)), n)
        # the connection goes on as a normal one afterwards
        expect_eq("version after a dump", send_recv(d, b"version\r\n")[:8], b"VERSION ")


def memlimit_live(binary, kind):
    with fixture.Server(binary, ["-m", "8", "-M"], name=kind) as srv, srv.connect() as c:
        value = b"v" * 1000
        refused = 0
        for i in range(20000):
            r = send_recv(c, b"set k%05d 0 0 1000\r\n%s\r\n" % (i, value))
            if r != b"STORED\r\n":
                refused = i
                break
        if not refused:
            raise AssertionError("-m 8 -M never filled")
        expect_eq("cache_memlimit 32", send_recv(c, b"cache_memlimit 32\r\n"), b"OK\r\n")
        expect_eq("a store after raising", send_recv(c, b"set more 0 0 1000\r\n%s\r\n" % value),
                  b"STORED\r\n")
        st = dict(fixture.stats_on(c))
        expect_eq("limit_maxbytes", st.get("limit_maxbytes"), str(32 << 20))
        expect_eq("stats settings maxbytes", dict(fixture.stats_on(c, b"settings")).get("maxbytes"),
                  str(32 << 20))


def memlimit_lowered_gives_memory_back(binary, kind, skip):
    """cache_memlimit below what is in use: pages go back to the pool, one
    at a time, until the cache fits (memcached's docs promise it with page
    moves and automove on; 1.6.18 takes longer than this test waits)."""
    if kind == "memcached":
        raise skip("memcached 1.6.18 keeps its pages for longer than this test waits")
    with fixture.Server(binary, ["-m", "64"], name=kind) as srv, srv.connect() as c:
        value = b"v" * 1000
        for base in range(0, 40000, 500):
            c.sendall(b"".join(b"set k%06d 0 0 1000 noreply\r\n%s\r\n" % (i, value)
                               for i in range(base, base + 500)))
        send_recv(c, b"version\r\n")
        expect_eq("cache_memlimit 16", send_recv(c, b"cache_memlimit 16\r\n"), b"OK\r\n")
        deadline = time.monotonic() + 30
        malloced = None
        while time.monotonic() < deadline:
            malloced = int(dict(fixture.stats_on(c, b"slabs"))["total_malloced"])
            if malloced <= 16 << 20:
                break
            time.sleep(0.2)
        if malloced > 16 << 20:
            raise AssertionError("total_malloced still %d after 30 s" % malloced)
        expect_eq("a store after shrinking", send_recv(c, b"set new 0 0 1000\r\n%s\r\n" % value),
                  b"STORED\r\n")


def settings_follow_commands(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as c:
        for cmd in (b"lru mode flat", b"lru temp_ttl 30", b"lru tune 10 30 0.3 3",
                    b"lru_crawler sleep 50", b"lru_crawler tocrawl 7", b"stats detail on",
                    b"cache_memlimit 100", b"lru_crawler disable"):
            expect_eq(cmd.decode(), send_recv(c, cmd + b"\r\n"), b"OK\r\n")
        # memcached's crawler thread notes its own stop a moment later
        deadline = time.monotonic() + 5
        st = dict(fixture.stats_on(c, b"settings"))
        while st.get("lru_crawler") != "no" and time.monotonic() < deadline:
            time.sleep(0.05)
            st = dict(fixture.stats_on(c, b"settings"))
        for k, v in [("maxbytes", "104857600"), ("detail_enabled", "yes"), ("lru_crawler", "no"),
                     ("lru_crawler_sleep", "50"), ("lru_crawler_tocrawl", "7"),
                     ("lru_segmented", "no"), ("hot_lru_pct", "10"), ("warm_lru_pct", "30"),
                     ("hot_max_factor", "0.30"), ("warm_max_factor", "3.00"), ("temp_lru", "yes"),
                     ("temporary_ttl", "30")]:
            expect_eq("stats settings %s" % k, st.get(k), v)
        general = dict(fixture.stats_on(c))
        if "lru_crawler_running" in general:
            raise AssertionError("stats lists the crawler's counters with the crawler disabled")


def stats_keys_in_every_mode(binary, kind):
    """stats' key list as memcached's with the crawler and maintainer on or off."""
    for flags in ([], ["-o", "no_lru_crawler"], ["-o", "no_lru_maintainer"],
                  ["-o", "no_lru_crawler,no_lru_maintainer"]):
        keys = []
        for b in (fixture.MEMCACHED, binary):
            with fixture.Server(b, flags, name="memcached" if b == fixture.MEMCACHED else kind) as srv:
                # fleetcache's own version line is the one key memcached lacks
                keys.append([k for k, _ in srv.stats() if k != "fleetcache_version"])
        if keys[0] != keys[1]:
            missing = [k for k in keys[0] if k not in keys[1]]
            extra = [k for k in keys[1] if k not in keys[0]]
            raise AssertionError("%s: missing %s, extra %s" % (" ".join(flags) or "default",
                                                                missing, extra))


def run(rep, ctx):
    b, k = ctx["binary"], ctx["kind"]
    rep.case("admin/watch_fetchers_mutations_evictions", watch_lines, b, k)
    rep.case("admin/watch_a_stalled_watcher_loses_lines_not_time", watch_slow_reader, b, k)
    rep.case("admin/watch_refusals", watch_refusals, b, k)
    rep.case("admin/metadump_of_50000_keys_in_steps", metadump_many, b, k)
    rep.case("admin/cache_memlimit_raises_a_full_cache", memlimit_live, b, k)
    rep.case("admin/cache_memlimit_lowered_gives_memory_back", memlimit_lowered_gives_memory_back, b,
             k, ctx["Skip"])
    rep.case("admin/stats_settings_follow_the_commands", settings_follow_commands, b, k)
    rep.case("admin/stats_keys_with_crawler_and_maintainer_on_and_off", stats_keys_in_every_mode, b, k)
