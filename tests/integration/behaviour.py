# Cases that a byte script cannot say: start-up flag checks, memory limits
# (-M and eviction), -c, -R, idle timeout, unix socket, daemon mode, signals
# and the shape of the stats sub-commands. Expectations are what memcached
# 1.6.18 does; where its exact numbers are an accident of its slab layout
# (how many items fit in -m 2) the case checks the rule, not the count.

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import fixture
from fixture import recv_until
from scripted import escape


def expect_eq(what, got, want):
    if got != want:
        if isinstance(got, bytes) and isinstance(want, bytes):
            raise AssertionError("%s: expected %s got %s" % (what, escape(want, 200), escape(got, 200)))
        raise AssertionError("%s: expected %.200r got %.200r" % (what, want, got))


# ---------------------------------------------------------------- start-up

BAD_FLAGS = [
    ("conn_limit_zero", ["-c", "0"]),
    ("threads_zero", ["-t", "0"]),
    ("item_size_below_1k", ["-I", "1000"]),
    ("item_size_over_half_memory", ["-m", "2", "-I", "2m"]),
    ("port_out_of_range", ["-p", "70000"]),
    ("growth_factor_below_1", ["-f", "0.5"]),
    ("min_chunk_zero", ["-n", "0"]),
    ("reqs_per_event_zero", ["-R", "0"]),
    ("unknown_protocol", ["-B", "foo"]),
    ("unknown_extended_option", ["-o", "bogus"]),
]


def refuses(binary, flags):
    argv = [binary, "-U", "0", "-l", fixture.HOST, "-p", str(fixture.free_port())] + flags
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError("still running after 5s; expected a refusal")
    out = (p.stderr + p.stdout).decode("utf-8", "replace").strip()
    if p.returncode == 0:
        raise AssertionError("exit 0; expected non-zero")
    if p.returncode < 0:
        raise AssertionError("killed by signal %d: %s" % (-p.returncode, out[-300:]))
    if not out:
        raise AssertionError("exit %d with no message" % p.returncode)


def prints_and_exits(binary, flag, needle):
    p = subprocess.run([binary, flag], stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    expect_eq("%s exit code" % flag, p.returncode, 0)
    out = p.stdout.decode("utf-8", "replace")
    if not out.strip() or needle not in out:
        raise AssertionError("%s output lacks %r: %r" % (flag, needle, p.stdout[:200]))


def accepts_flags(binary, kind):
    flags = ["-M", "-C", "-R", "5", "-B", "ascii", "-f", "1.5", "-n", "64", "-c", "100", "-v",
             "-o", "idle_timeout=10,hashpower=20,no_lru_crawler,no_lru_maintainer"]
    with fixture.Server(binary, flags, name=kind) as srv:
        st = dict(srv.stats(b"settings"))
        for k, v in [("maxconns", "100"), ("growth_factor", "1.50"), ("chunk_size", "64"),
                     ("cas_enabled", "no"), ("evictions", "off"), ("reqs_per_event", "5"),
                     ("idle_timeout", "10"), ("num_threads", "2")]:
            expect_eq("stats settings %s" % k, st.get(k), v)


# memcached 1.6.18's refusals, word for word, with their exit status. A
# notice line may precede (fleetcached announces accepted knobs it ignores).
REFUSALS = [
    ("conn_limit_zero", ["-c", "0"], 1, "Maximum connections must be greater than 0"),
    ("threads_zero", ["-t", "0"], 1, "Number of threads must be greater than 0"),
    ("port_70000", ["-p", "70000"], 64, "ERROR: Invalid port number 70000."),
    ("empty_delimiter", ["-D", ""], 1, "No delimiter specified"),
    ("napi_ids_zero", ["-N", "0"], 1, "Maximum number of NAPI IDs must be greater than 0"),
    ("napi_ids_over_threads", ["-N", "8"], 64,
     "Number of napi_ids(8) cannot be greater than number of threads(4)"),
    ("chunk_max_not_dividing_page", ["-I", "900000", "-o", "slab_chunk_max=300000"], 64,
     "slab_chunk_max (bytes: 300000) must divide evenly into 1048576 (slab_page_size)"),
    ("unknown_protocol_words", ["-B", "foo"], 64,
     "Invalid value for binding protocol: foo\n -- should be one of auto, binary, or ascii"),
    ("illegal_suboption_with_value", ["-o", "bogus=1"], 1, 'Illegal suboption "bogus=1"'),
    ("hashpower_33", ["-o", "hashpower=33"], 1,
     'Initial hashtable multiplier of 33 is too high\n'
     'Choose a value based on "STAT hash_power_level" from a running instance'),
    ("hashpower_without_value", ["-o", "hashpower"], 1, "Missing numeric argument for hashpower"),
    ("slab_automove_3", ["-o", "slab_automove=3"], 1, "slab_automove must be between 0 and 2"),
    ("slab_automove_ratio_2", ["-o", "slab_automove_ratio=2"], 1,
     "slab_automove_ratio must be > 0 and < 1"),
    ("slab_automove_window_2", ["-o", "slab_automove_window=2"], 1,
     "slab_automove_window must be > 2"),
    ("tail_repair_time_5", ["-o", "tail_repair_time=5"], 1,
     "Cannot set tail_repair_time to less than 10 seconds"),
    ("hash_algorithm_foo", ["-o", "hash_algorithm=foo"], 1,
     "Unknown hash_algorithm option (jenkins, murmur3, xxh3)"),
    ("lru_crawler_sleep_2s", ["-o", "lru_crawler_sleep=2000000"], 1,
     "LRU crawler sleep must be between 0 and 1 second"),
    ("hot_max_factor_0", ["-o", "hot_max_factor=0"], 1, "hot_max_factor must be > 0"),
    ("read_buf_mem_limit_without_value", ["-o", "read_buf_mem_limit"], 1,
     "Missing read_buf_mem_limit argument"),
    ("temporary_ttl_without_maintainer", ["-o", "temporary_ttl=10,no_lru_maintainer"], 64,
     "temporary_ttl requires lru_maintainer to be enabled"),
    ("hot_and_warm_over_80", ["-o", "hot_lru_pct=50,warm_lru_pct=40"], 64,
     "hot_lru_pct + warm_lru_pct cannot be more than 80% combined"),
    ("ssl_verify_mode_9", ["-o", "ssl_verify_mode=9"], 1,
     "Invalid ssl_verify_mode. Use help to see valid options."),
]


def start_argv(binary, flags, user=True):
    argv = [binary, "-U", "0", "-l", fixture.HOST, "-p", str(fixture.free_port())] + flags
    if user and os.geteuid() == 0:
        argv += ["-u", "root"]
    return argv


def refuses_with(binary, flags, code, words):
    try:
        p = subprocess.run(start_argv(binary, flags), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError("still running after 5s; expected a refusal")
    err = p.stderr.decode("utf-8", "replace").rstrip("\n")
    expect_eq("exit code", p.returncode, code)
    if not err.endswith(words):
        raise AssertionError("stderr ends %r, expected %r" % (err[-200:], words))


# Flags memcached 1.6.18 accepts (its -h), with what `stats settings` says
# then; memcached itself passes this table (tests/integration/run --server
# memcached).
ACCEPTED = [
    ("process_and_net_flags", ["-k", "-r", "-L", "-X", "-W", "-D", "#", "-b", "0"],
     [("dump_enabled", "no"), ("stat_key_prefix", "#"), ("detail_enabled", "yes"),
      ("tcp_backlog", "0")]),
    ("long_forms", ["--lock-memory", "--enable-coredumps", "--enable-largepages",
                    "--disable-dumping", "--disable-watch", "--listen-backlog=64"],
     [("dump_enabled", "no"), ("tcp_backlog", "64")]),
    ("lru_and_slab_knobs",
     ["-o", "slab_reassign,slab_automove=2,maxconns_fast,hash_algorithm=murmur3,no_hashexpand,"
            "lru_crawler_sleep=50,lru_crawler_tocrawl=5,watcher_logbuf_size=128,"
            "read_buf_mem_limit=16,tail_repair_time=20,hot_lru_pct=10,warm_lru_pct=30,"
            "hot_max_factor=0.5,warm_max_factor=1.5,temporary_ttl=30,slab_automove_ratio=0.5,"
            "slab_automove_window=10,inline_ascii_resp,modern,no_drop_privileges"],
     [("slab_reassign", "yes"), ("slab_automove", "2"), ("maxconns_fast", "yes"),
      ("lru_crawler_sleep", "50"), ("lru_crawler_tocrawl", "5"),
      ("watcher_logbuf_size", "131072"), ("read_buf_mem_limit", "16777216"),
      ("tail_repair_time", "20"), ("hot_lru_pct", "10"), ("warm_lru_pct", "30"),
      ("hot_max_factor", "0.50"), ("warm_max_factor", "1.50"), ("temp_lru", "yes"),
      ("temporary_ttl", "30"), ("slab_automove_ratio", "0.50"),
      ("slab_automove_window", "10"), ("inline_ascii_response", "no")]),
    ("extstore_and_tls_knobs",
     ["-o", "ext_page_size=8,ext_wbuf_size=8,ext_threads=2,ext_item_size=1024,ext_item_age=10,"
            "ext_low_ttl=5,ext_recache_rate=10,ext_max_frag=0.5,ext_drop_unread,"
            "slab_automove_freeratio=0.02,ssl_verify_mode=1,ssl_ciphers=x,ssl_wbuf_size=8,"
            "ssl_session_cache,ssl_min_version=3"],
     [("ext_item_size", "1024"), ("ext_item_age", "10"), ("ext_low_ttl", "5"),
      ("ext_recache_rate", "10"), ("ext_wbuf_size", "8388608"), ("ext_max_frag", "0.50"),
      ("slab_automove_freeratio", "0.020"), ("ext_drop_unread", "yes"),
      ("ssl_enabled", "no"), ("ssl_verify_mode", "1"), ("ssl_ciphers", "x"),
      ("ssl_wbuf_size", "8192"), ("ssl_session_cache", "yes"), ("ssl_min_version", "tlsv1.3")]),
    ("switching_back_off", ["-o", "no_slab_reassign,no_slab_automove,no_maxconns_fast"],
     [("slab_reassign", "no"), ("slab_automove", "0"), ("maxconns_fast", "no")]),
]


def accepts_with_settings(binary, kind, flags, want):
    with fixture.Server(binary, flags, name=kind) as srv:
        st = dict(srv.stats(b"settings"))
        for k, v in want:
            expect_eq("stats settings %s" % k, st.get(k), v)


def accepts_memory_file_and_napi_ids(binary, kind):
    # memcached's `stats settings` crashes with -N set, so this asks only `version`.
    d = tempfile.mkdtemp(prefix="fc-it-")
    try:
        with fixture.Server(binary, ["-m", "40", "-e", os.path.join(d, "mem"), "-N", "1"],
                            name=kind) as srv, srv.connect() as c:
            c.sendall(b"version\r\n")
            if not recv_until(c, b"\r\n", 3).startswith(b"VERSION "):
                raise AssertionError("no version reply")
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def repeated_listen(binary, kind):
    # the fixture's own "-l 127.0.0.1" is repeated: memcached binds it once
    with fixture.Server(binary, ["-l", fixture.HOST], name=kind) as srv:
        expect_eq("stats settings inter", dict(srv.stats(b"settings")).get("inter"), fixture.HOST)
    # the same address twice in one list is bound twice, and the second fails
    argv = start_argv(binary, ["-l", "%s,%s" % (fixture.HOST, fixture.HOST)])
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    expect_eq("exit code of -l a,a", p.returncode, 71)


def root_needs_user(binary, kind, skip):
    if os.geteuid() != 0:
        raise skip("not root")
    p = subprocess.run(start_argv(binary, [], user=False), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=5)
    expect_eq("exit code as root without -u", p.returncode, 64)
    expect_eq("stderr", p.stderr, b"can't run as root without the -u switch\n")


# npm `memcached` (lib/memcached.js) reads the version as the last N.N.N of
# the reply's second word: "1.6.18-fleetcache-0.1.0" read as 0.1.0.
NPM_VERSION = re.compile(r"(\d+)(?:\.)(\d+)(?:\.)(\d+)$")


def version_parsed_as_1_6_18(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv:
        with srv.connect() as c:
            c.sendall(b"version\r\n")
            line = recv_until(c, b"\r\n", 3)
        expect_eq("version reply", line, b"VERSION 1.6.18\r\n")
        m = NPM_VERSION.search(line.decode().split(" ")[1].strip())
        expect_eq("npm memcached's reading", m and m.group(0), "1.6.18")
        p = subprocess.run(["memcstat", "--servers=%s:%d" % (fixture.HOST, srv.port),
                            "--server-version"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=10)
        expect_eq("libmemcached's reading (memcstat --server-version)",
                  (p.stdout + p.stderr).strip(),
                  b"%s:%d 1.6.18" % (fixture.HOST.encode(), srv.port))
        r = subprocess.run(["/usr/bin/python3", "-c",
                            "import sys, pymemcache; "
                            "c = pymemcache.Client(('%s', %d)); print(c.version().decode())"
                            % (fixture.HOST, srv.port)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        expect_eq("pymemcache's version()", r.stdout.strip(), b"1.6.18")
        st = dict(srv.stats())
        expect_eq("stats version", st.get("version"), "1.6.18")
        if kind == "fleetcached" and not st.get("fleetcache_version"):
            raise AssertionError("stats lacks fleetcache_version")
        v = subprocess.run([binary, "-V"], capture_output=True, timeout=5).stdout.decode()
        if kind == "fleetcached" and st["fleetcache_version"] not in v:
            raise AssertionError("-V %r lacks %s" % (v, st["fleetcache_version"]))


def refuses_missing_features(binary, kind, skip):
    if kind != "fleetcached":
        raise skip("memcached here is built with SASL and TLS")
    for flags, words in [(["-S"], "This server is not built with SASL support."),
                         (["-Z"], "This server is not built with TLS support.")]:
        refuses_with(binary, flags, 64, words)
    # accepted knobs that change nothing here say so, once each
    p = subprocess.run(start_argv(binary, ["-o", "ext_page_size=8,ext_threads=2", "-h"]),
                       capture_output=True, timeout=5)
    expect_eq("notices", p.stderr.decode().count("extstore"), 1)


def run_startup(rep, ctx):
    b = ctx["binary"]
    for name, flags in BAD_FLAGS:
        rep.case("startup/refuses_%s" % name, refuses, b, flags)
    for name, flags, code, words in REFUSALS:
        rep.case("startup/refuses_as_memcached_%s" % name, refuses_with, b, flags, code, words)
    for name, flags, want in ACCEPTED:
        rep.case("startup/accepts_%s" % name, accepts_with_settings, b, ctx["kind"], flags, want)
    rep.case("startup/accepts_memory_file_and_napi_ids", accepts_memory_file_and_napi_ids, b,
             ctx["kind"])
    rep.case("startup/repeated_listen_binds_once", repeated_listen, b, ctx["kind"])
    rep.case("startup/root_without_u_refused", root_needs_user, b, ctx["kind"], ctx["Skip"])
    rep.case("startup/version_parsed_as_1_6_18_by_clients", version_parsed_as_1_6_18, b,
             ctx["kind"])
    rep.case("startup/refuses_features_it_lacks", refuses_missing_features, b, ctx["kind"],
             ctx["Skip"])
    # the version string itself is the one thing allowed to differ
    rep.case("startup/version_flag", prints_and_exits, b, "-V", "")
    rep.case("startup/help_flag", prints_and_exits, b, "-h", "-p")
    rep.case("startup/accepts_common_flags", accepts_flags, b, ctx["kind"])


# ---------------------------------------------------------------- behaviour

def set_cmd(key, n, fill=b"v"):
    return b"set %s 0 0 %d\r\n" % (key, n) + fill * n + b"\r\n"


def out_of_memory_with_M(binary, kind):
    with fixture.Server(binary, ["-M", "-m", "2"], name=kind) as srv, srv.connect() as c:
        failed_at = None
        for i in range(60):
            c.sendall(set_cmd(b"k%d" % i, 100000))
            r = recv_until(c, b"\r\n", 5)
            if r == b"SERVER_ERROR out of memory storing object\r\n":
                failed_at = i
                break
            expect_eq("set k%d" % i, r, b"STORED\r\n")
        if failed_at is None:
            raise AssertionError("60 sets of 100 kB in -m 2 -M all stored")
        if failed_at < 5:
            raise AssertionError("out of memory after only %d items" % failed_at)
        # the first key is still there: -M never evicts
        c.sendall(b"get k0\r\n")
        r = recv_until(c, b"END\r\n", 5)
        expect_eq("get k0 after OOM", r[:20], b"VALUE k0 0 100000\r\n" + b"v")
        # a failed set of an existing key removes its old value (no stale data)
        c.sendall(set_cmd(b"k0", 100000, b"w"))
        expect_eq("overwrite k0 when full", recv_until(c, b"\r\n", 5),
                  b"SERVER_ERROR out of memory storing object\r\n")
        c.sendall(b"get k0\r\n")
        expect_eq("get k0 after failed overwrite", recv_until(c, b"END\r\n", 5), b"END\r\n")
        st = dict(fixture.stats_on(c))
        expect_eq("evictions", st.get("evictions"), "0")
        if int(st.get("store_no_memory", 0)) < 1:
            raise AssertionError("store_no_memory %s, expected >= 2" % st.get("store_no_memory"))


def evicts_without_M(binary, kind):
    with fixture.Server(binary, ["-m", "2"], name=kind) as srv, srv.connect() as c:
        for i in range(60):
            c.sendall(set_cmd(b"k%d" % i, 100000))
            expect_eq("set k%d" % i, recv_until(c, b"\r\n", 5), b"STORED\r\n")
        c.sendall(b"get k59\r\n")
        r = recv_until(c, b"END\r\n", 5)
        expect_eq("newest key", r[:20], b"VALUE k59 0 100000\r\n")
        c.sendall(b"get k0\r\n")
        expect_eq("oldest key evicted", recv_until(c, b"END\r\n", 5), b"END\r\n")
        st = dict(fixture.stats_on(c))
        if int(st["evictions"]) < 30:
            raise AssertionError("evictions %s, expected >= 30" % st["evictions"])
        if int(st["curr_items"]) > 30:
            raise AssertionError("curr_items %s in -m 2" % st["curr_items"])


def max_connections(binary, kind):
    with fixture.Server(binary, ["-c", "30"], name=kind) as srv:
        socks = []
        try:
            for _ in range(40):
                socks.append(srv.connect())
            ok = refused = 0
            for s in socks:
                s.settimeout(3)
                try:
                    s.sendall(b"version\r\n")
                    r = recv_until(s, b"\r\n", 3)
                except (OSError, ConnectionError) as e:
                    raise AssertionError("connection gave no line: %s" % e)
                if r.startswith(b"VERSION "):
                    ok += 1
                elif r == b"ERROR Too many open connections\r\n":
                    refused += 1
                    try:
                        s.settimeout(3)
                        rest = s.recv(100)
                    except ConnectionResetError:
                        rest = b""
                    expect_eq("after the refusal", rest, b"")
                else:
                    raise AssertionError("unexpected reply %r" % r)
            if refused == 0 or ok == 0:
                raise AssertionError("40 connections with -c 30: %d served, %d refused" % (ok, refused))
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                st = dict(srv.stats())
            except (OSError, ConnectionError):
                # The server has not seen every close yet and refused this
                # connection too (and counted it): still over -c, try again.
                refused += 1
                st = {"curr_connections": "?"}
            if st["curr_connections"] == "1":
                break
            if time.monotonic() > deadline:
                raise AssertionError("curr_connections %s after all closed" % st["curr_connections"])
            time.sleep(0.05)
        expect_eq("max_connections", st["max_connections"], "30")
        if int(st["rejected_connections"]) != refused:
            raise AssertionError("rejected_connections %s, %d refused" % (st["rejected_connections"], refused))


def idle_timeout(binary, kind):
    with fixture.Server(binary, ["-o", "idle_timeout=1"], name=kind) as srv:
        with srv.connect() as busy, srv.connect() as idle:
            idle.sendall(b"version\r\n")
            recv_until(idle, b"\r\n", 3)
            deadline = time.monotonic() + 8
            while True:
                idle.settimeout(0.2)
                try:
                    if idle.recv(100) == b"":
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    break
                try:
                    busy.sendall(b"version\r\n")
                    recv_until(busy, b"\r\n", 3)
                except (OSError, ConnectionError) as e:
                    raise AssertionError("the busy connection (a command every 0.2 s) was closed "
                                         "by the idle timeout: %s" % (e or type(e).__name__))
                if time.monotonic() > deadline:
                    raise AssertionError("idle connection still open after 8s with idle_timeout=1")
            try:
                st = dict(fixture.stats_on(busy))
            except (OSError, ConnectionError) as e:
                raise AssertionError("the busy connection (a command every 0.2 s) was closed "
                                     "with the idle one: %s" % (e or type(e).__name__))
            if int(st.get("idle_kicks", 0)) < 1:
                raise AssertionError("idle_kicks %s" % st.get("idle_kicks"))


def reqs_per_event_yields(binary, kind):
    with fixture.Server(binary, ["-R", "2"], name=kind) as srv, srv.connect() as c:
        c.sendall(b"get k\r\n" * 200)
        recv_until(c, b"END\r\n" * 200, 5)
        st = dict(fixture.stats_on(c))
        if int(st["conn_yields"]) < 1:
            raise AssertionError("conn_yields %s after 200 pipelined gets with -R 2" % st["conn_yields"])


def yield_lets_others_in(binary, kind):
    """A client that pipelines without pause must not keep the worker: once
    it has had its -R requests, the other ready connections get theirs. a
    streams 400,000 `mn` on one worker (-t 1); b's `version`, sent while a
    is being served, must be answered within a fraction of a's stream, not
    after it (memcached: 1,000-3,000 of a's replies in between)."""
    n = 400000
    with fixture.Server(binary, ["-t", "1", "-R", "20"], name=kind) as srv, \
            srv.connect() as a, srv.connect() as b:
        got = [0]  # bytes of a's replies ("MN\r\n") read so far

        def drain():
            a.settimeout(20)
            try:
                while got[0] < 4 * n:
                    chunk = a.recv(1 << 20)
                    if not chunk:
                        return
                    got[0] += len(chunk)
            except socket.timeout:
                pass
        reader = threading.Thread(target=drain)
        sender = threading.Thread(target=a.sendall, args=(b"mn\r\n" * n,))
        reader.start()
        sender.start()
        try:
            deadline = time.time() + 10
            while got[0] < 4 * 2000 and time.time() < deadline:
                time.sleep(0.001)
            before = got[0] // 4
            if before >= n:
                raise AssertionError("a's whole stream was answered before b could ask")
            b.sendall(b"version\r\n")
            r = recv_until(b, b"\r\n", 10)
            between = got[0] // 4 - before
        finally:
            sender.join(20)
            reader.join(20)
        if not r.startswith(b"VERSION "):
            raise AssertionError("b: %r" % r)
        if got[0] != 4 * n:
            raise AssertionError("a got %d of %d replies" % (got[0] // 4, n))
        if between > n // 10:
            raise AssertionError("b waited while a got %d of its %d replies" % (between, n))


def unix_socket(binary, kind):
    d = tempfile.mkdtemp(prefix="fc-it-")
    path = os.path.join(d, "sock")
    try:
        with fixture.Server(binary, ["-a", "770"], name=kind, unix=path) as srv:
            mode = os.stat(path).st_mode & 0o777
            expect_eq("socket mode", oct(mode), oct(0o770))
            with srv.connect() as c:
                c.sendall(b"set k 0 0 1\r\nx\r\nget k\r\n")
                expect_eq("over unix socket", recv_until(c, b"END\r\n", 3),
                          b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n")
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(d)


def daemon_mode(binary, kind):
    d = tempfile.mkdtemp(prefix="fc-it-")
    pidfile = os.path.join(d, "pid")
    port = fixture.free_port()
    argv = [binary, "-d", "-P", pidfile, "-U", "0", "-l", fixture.HOST, "-p", str(port), "-t", "1"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    pid = None
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        expect_eq("foreground exit code with -d", p.returncode, 0)
        deadline = time.monotonic() + 5
        while pid is None and time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip() or 0) or None
            except (OSError, ValueError):
                pass
            if pid is None:
                time.sleep(0.05)
        if pid is None:
            raise AssertionError("no pid in %s after 5s" % pidfile)
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                with socket.create_connection((fixture.HOST, port), timeout=1) as c:
                    c.sendall(b"version\r\n")
                    ok = recv_until(c, b"\r\n", 2).startswith(b"VERSION ")
            except OSError:
                time.sleep(0.05)
        if not ok:
            raise AssertionError("daemon not answering on port %d" % port)
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def signal_exit(binary, kind, sig):
    srv = fixture.Server(binary, [], name=kind).start()
    try:
        with srv.connect() as c:
            c.sendall(b"set k 0 0 1\r\nx\r\n")
            recv_until(c, b"\r\n", 3)
            srv.proc.send_signal(sig)
            try:
                rc = srv.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError("still running 5s after signal %d" % sig)
            expect_eq("exit code after signal %d" % sig, rc, 0)
    finally:
        srv.stop()


def sighup_ignored(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv:
        srv.proc.send_signal(signal.SIGHUP)
        # a round trip after kill() returned: a killed process could not answer
        with srv.connect() as c:
            c.sendall(b"version\r\n")
            if not recv_until(c, b"\r\n", 3).startswith(b"VERSION "):
                raise AssertionError("no version reply after SIGHUP")
        if srv.proc.poll() is not None:
            raise AssertionError("exited with %s after SIGHUP" % srv.proc.returncode)


def sigusr1_graceful(binary, kind):
    srv = fixture.Server(binary, [], name=kind).start()
    try:
        with srv.connect() as c:
            c.sendall(b"set k 0 0 1\r\nx\r\n")
            recv_until(c, b"\r\n", 3)
            srv.proc.send_signal(signal.SIGUSR1)
            try:
                rc = srv.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError("still running 5s after SIGUSR1")
        expect_eq("exit code after SIGUSR1", rc, 0)
        if "Gracefully stopping" not in srv.stderr():
            raise AssertionError("stderr lacks 'Gracefully stopping': %r" % srv.stderr(300))
    finally:
        srv.stop()


def read_pidfile(path, deadline):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return None


def pidfile_without_daemon(binary, kind):
    d = tempfile.mkdtemp(prefix="fc-it-")
    path = os.path.join(d, "pid")
    try:
        with fixture.Server(binary, ["-P", path], name=kind) as srv:
            expect_eq("pid file of a foreground server", read_pidfile(path, 5), srv.proc.pid)
            expect_eq("files beside it", sorted(os.listdir(d)), ["pid"])
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def processes_with(needle):
    """Pids whose command line holds needle (a path unique to one case)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if needle.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def daemon_busy_port_no_pidfile(binary, kind):
    d = tempfile.mkdtemp(prefix="fc-it-")
    path = os.path.join(d, "pid")
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        busy.bind((fixture.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        argv = [binary, "-d", "-P", path, "-U", "0", "-l", fixture.HOST, "-p", str(port)]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        expect_eq("exit code of the foreground half", p.returncode, 0)
        end = time.monotonic() + 5
        while processes_with(path) and time.monotonic() < end:
            time.sleep(0.05)
        left = processes_with(path)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if left:
            raise AssertionError("the daemon still runs on a busy port")
        expect_eq("files left", os.listdir(d), [])
    finally:
        busy.close()
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


VV_SESSION = (b"set foo 0 0 5\r\nhello\r\nget foo\r\nget nope\r\ndelete foo\r\nincr x 1\r\n"
              b"bogus\r\nversion\r\n")
VV_LOG = ["<N new auto-negotiating client connection",
          "<N set foo 0 0 5", ">N STORED",
          "<N get foo", ">N sending key foo", ">N END",
          "<N get nope", ">N END",
          "<N delete foo", ">N DELETED",
          "<N incr x 1", ">N NOT_FOUND",
          "<N bogus", ">N ERROR",
          "<N version", ">N VERSION 1.6.18",
          "<N connection closed."]


def vv_logs_commands_replies_connections(binary, kind):
    with fixture.Server(binary, ["-vv"], name=kind) as srv:
        with srv.connect() as c:
            c.sendall(VV_SESSION)
            recv_until(c, b"VERSION 1.6.18\r\n", 3)
        end = time.monotonic() + 5
        while True:
            # the fixture's readiness probe is a connection of its own, logged
            # by another worker: keep the lines of the session's descriptor
            # from its "new" line on (a reused number was closed before)
            lines = srv.stderr(20000).splitlines()
            news = [i for i, ln in enumerate(lines)
                    if re.match(r"^<\d+ new auto-negotiating client connection$", ln)]
            got = []
            if news:
                fd = lines[news[-1]].split(" ")[0][1:]
                got = [re.sub(r"^([<>])\d+ ", r"\1N ", ln) for ln in lines[news[-1]:]
                       if re.match(r"^[<>]%s " % fd, ln)]
            if got == VV_LOG or time.monotonic() > end:
                break
            time.sleep(0.05)
        expect_eq("-vv log of the session", got, VV_LOG)


STATS_SUBS = [b"settings", b"items", b"slabs", b"sizes", b"conns"]


def stats_subcommands(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as c:
        c.sendall(b"set k 0 0 5\r\nhello\r\n")
        recv_until(c, b"\r\n", 3)
        for sub in STATS_SUBS:
            c.sendall(b"stats " + sub + b"\r\n")
            data = recv_until(c, b"END\r\n", 3)
            lines = data.split(b"\r\n")[:-1]
            if lines[-1] != b"END":
                raise AssertionError("stats %s: no END" % sub.decode())
            for line in lines[:-1]:
                parts = line.split(b" ")
                if parts[0] != b"STAT" or len(parts) < 3:
                    raise AssertionError("stats %s: bad line %r" % (sub.decode(), line))
        st = dict(fixture.stats_on(c, b"settings"))
        for k, v in [("maxbytes", "67108864"), ("maxconns", "1024"), ("tcpport", str(srv.port)),
                     ("num_threads", "2"), ("cas_enabled", "yes"), ("item_size_max", "1048576"),
                     ("evictions", "on"), ("growth_factor", "1.25"), ("chunk_size", "48"),
                     ("verbosity", "0"), ("flush_enabled", "yes")]:
            expect_eq("stats settings %s" % k, st.get(k), v)
        items = dict(fixture.stats_on(c, b"items"))
        if not any(k.startswith("items:") and k.endswith(":number") and v == "1" for k, v in items.items()):
            raise AssertionError("stats items has no class with number 1")
        slabs = dict(fixture.stats_on(c, b"slabs"))
        for k in ("active_slabs", "total_malloced"):
            if k not in slabs:
                raise AssertionError("stats slabs lacks %s" % k)


def stats_general(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as c:
        c.sendall(b"version\r\n")
        ver = recv_until(c, b"\r\n", 3)[len(b"VERSION "):-2].decode()
        st = dict(fixture.stats_on(c))
        expect_eq("stats pid", st.get("pid"), str(srv.proc.pid))
        expect_eq("stats version", st.get("version"), ver)
        expect_eq("stats threads", st.get("threads"), "2")
        expect_eq("stats limit_maxbytes", st.get("limit_maxbytes"), "67108864")
        expect_eq("stats max_connections", st.get("max_connections"), "1024")
        expect_eq("stats pointer_size", st.get("pointer_size"), "64")
        # The fixture's readiness probe may not have been closed on the
        # server's side yet on a loaded machine: the count must settle to 1.
        deadline = time.monotonic() + 5
        while st.get("curr_connections") != "1" and time.monotonic() < deadline:
            time.sleep(0.05)
            st = dict(fixture.stats_on(c))
        expect_eq("stats curr_connections", st.get("curr_connections"), "1")
        if abs(int(st.get("time", 0)) - time.time()) > 3:
            raise AssertionError("stats time %s, now %d" % (st.get("time"), time.time()))


def idle_connections_hold_no_read_buffers(binary, kind):
    """Connections that asked one thing and went quiet give their read
    buffers back (memcached's per-thread buffers): 400 of them cost little
    memory and hold almost no read buffer (before, each kept 16 KiB)."""
    n = 400
    with fixture.Server(binary, ["-c", "1024"], name=kind) as srv, srv.connect() as c:
        c.sendall(b"version\r\n")
        recv_until(c, b"\r\n", 3)
        base = srv.rss_kb()
        conns = []
        try:
            for _ in range(n):
                s = srv.connect()
                conns.append(s)
                s.sendall(b"version\r\n")
                recv_until(s, b"\r\n", 3)
            st = dict(fixture.stats_on(c))
            grown = srv.rss_kb() - base
        finally:
            for s in conns:
                s.close()
    held = int(st.get("read_buf_count", "0")) - int(st.get("read_buf_bytes_free", "0")) // 16384
    if held > 8:
        raise AssertionError("%d idle connections hold %d read buffers" % (n, held))
    if grown * 1024 > n * 2048:
        raise AssertionError("%d idle connections grew RSS by %d KiB (over 2 KiB each)" % (n, grown))


def run(rep, ctx):
    b, k = ctx["binary"], ctx["kind"]
    rep.case("behaviour/out_of_memory_with_M", out_of_memory_with_M, b, k)
    rep.case("behaviour/evicts_without_M", evicts_without_M, b, k)
    rep.case("behaviour/max_connections_refused_and_counted", max_connections, b, k)
    rep.case("behaviour/idle_timeout_closes", idle_timeout, b, k)
    rep.case("behaviour/reqs_per_event_yields", reqs_per_event_yields, b, k)
    rep.case("behaviour/yield_lets_others_in", yield_lets_others_in, b, k)
    rep.case("behaviour/unix_socket_and_mask", unix_socket, b, k)
    rep.case("behaviour/daemon_with_pidfile", daemon_mode, b, k)
    rep.case("behaviour/sigterm_exits_0", signal_exit, b, k, signal.SIGTERM)
    rep.case("behaviour/sigint_exits_0", signal_exit, b, k, signal.SIGINT)
    rep.case("behaviour/vv_logs_commands_replies_and_connections",
             vv_logs_commands_replies_connections, b, k)
    rep.case("behaviour/sighup_is_ignored", sighup_ignored, b, k)
    rep.case("behaviour/sigusr1_stops_gracefully", sigusr1_graceful, b, k)
    rep.case("behaviour/pidfile_without_daemon", pidfile_without_daemon, b, k)
    rep.case("behaviour/daemon_on_busy_port_leaves_no_pidfile", daemon_busy_port_no_pidfile, b, k)
    rep.case("behaviour/stats_subcommands_shape", stats_subcommands, b, k)
    rep.case("behaviour/stats_general_values", stats_general, b, k)
    rep.case("behaviour/idle_connections_hold_no_read_buffers", idle_connections_hold_no_read_buffers, b, k)
