# Differential run: the same bytes to Debian's memcached and to the server
# under test, started side by side with the same flags; the replies must be
# identical byte for byte except the version string and the time-dependent
# or memory-layout-dependent stats values listed below. Three parts: the
# scripted corpus (transcripts compared whole, CAS values included), `stats`
# key list/order and values after one script, and a seeded random session.
# Against --server memcached this compares memcached with itself, which
# proves the harness deterministic.

import random
import re
import time

import fixture
import scripted
from scripted_group import CASEDIR

# stats whose values depend on time, the build or memcached's internal layout
STATS_VOLATILE = {
    "pid", "uptime", "time", "version", "libevent", "rusage_user", "rusage_system",
    "bytes_written",          # carries the version string's length
    "conn_yields",            # depends on how TCP cut the script into reads
    "max_connections", "reserved_fds", "connection_structures",
    "response_obj_oom", "response_obj_count", "response_obj_bytes",
    "read_buf_count", "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom",
    "hash_power_level", "hash_bytes", "hash_is_expanding", "bytes",
    "total_malloced", "slab_global_page_pool", "malloc_fails",
    "lru_crawler_starts", "lru_maintainer_juggles", "lru_bumps_dropped",
    "slab_reassign_busy_items", "slab_reassign_busy_deletes", "slab_reassign_running",
    "slabs_moved", "log_worker_dropped", "log_worker_written", "log_watcher_skipped",
    "log_watcher_sent", "log_watchers", "moves_to_cold", "moves_to_warm",
    "moves_within_lru", "direct_reclaims", "unexpected_napi_ids", "round_robin_fallback",
    "expired_unfetched", "evicted_unfetched", "evicted_active", "crawler_reclaimed",
    "crawler_items_checked", "lrutail_reflocked", "reclaimed", "evictions",
}

VERSION_RX = re.compile(rb"VERSION [^\r\n]*\r\n")
RECV_DIFF_TIMEOUT = 3.0


PADDED_RX = re.compile(rb"VALUE (\S+) (\d+) \d+( \d+)?\r\n(\d+) +\r\n")


def normalize(data):
    return VERSION_RX.sub(b"VERSION <v>\r\n", data)


def normalize_padding(data):
    """memcached shrinks a number in place (space padded) only when nothing
    else holds the item; its LRU thread sometimes does, so in a random
    session "5  " and "5" are the same reply."""
    return PADDED_RX.sub(lambda m: b"VALUE %s %s %d%s\r\n%s\r\n" % (
        m.group(1), m.group(2), len(m.group(4)), m.group(3) or b"", m.group(4)), data)


def first_difference(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    lo = max(0, n - 60)
    return "at byte %d: memcached %s / got %s" % (
        n, scripted.escape(a[lo:n + 80], 300), scripted.escape(b[lo:n + 80], 300))


def diff_case(ref_pool, sut_pool, case):
    try:
        ref = scripted.run_case(ref_pool, case)
    except scripted.CaseError as e:
        raise AssertionError("memcached itself fails the case: %s" % e)
    try:
        got = scripted.run_case(sut_pool, case)
    except scripted.CaseError as e:
        raise AssertionError("script: %s" % e)
    ref_b = [normalize(x) for x in ref]
    got_b = [normalize(x) for x in got]
    for i, (a, b) in enumerate(zip(ref_b, got_b)):
        if a != b:
            raise AssertionError("reply %d differs %s" % (i + 1, first_difference(a, b)))
    if len(ref_b) != len(got_b):
        raise AssertionError("%d replies from memcached, %d from the server" % (len(ref_b), len(got_b)))


def timed(case):
    return any(k in ("sleep", "poll") for k, _, _ in case.steps)


def run_corpus(rep, ctx):
    for fname, flags, cases in scripted.load_corpus(CASEDIR):
        group = fname[:-4]
        ref_pool = scripted.ServerPool(fixture.MEMCACHED, flags, "memcached")
        sut_pool = scripted.ServerPool(ctx["binary"], flags, ctx["kind"])
        try:
            for case in cases:
                # timed cases are covered by the scripted group; replaying
                # their sleeps here would double the tier's run time
                if case.nodiff or case.differs or timed(case):
                    continue
                rep.case("diff/%s/%s" % (group, case.name), diff_case, ref_pool, sut_pool, case)
        finally:
            ref_pool.close()
            sut_pool.close()


# ---------------------------------------------------------------- stats

# Two batches, read in between: whether a counter is rewritten in place
# (total_items unchanged) or replaced depends on whether a reply still holds
# the item, i.e. on when each server happens to flush pipelined replies.
STATS_SCRIPTS = (
    b"set a 1 0 3\r\nabc\r\nset b 0 0 1\r\n5\r\nget a b c\r\ngets a\r\nversion\r\n",
    b"add a 0 0 1\r\nx\r\nreplace c 0 0 1\r\nx\r\nappend a 0 0 1\r\nd\r\n"
    b"incr b 2\r\nincr c 1\r\ndecr b 1\r\ndecr c 1\r\ntouch a 100\r\ntouch c 1\r\n"
    b"cas a 0 0 1 999\r\nz\r\ncas c 0 0 1 1\r\nz\r\ndelete b\r\ndelete b\r\n"
    b"gat 10 a c\r\nset big 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\n"
    b"bogus\r\nversion\r\n",
)


def stats_after_script(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv:
        with srv.connect() as c:
            for script in STATS_SCRIPTS:
                c.sendall(script)
                read_to_sync(c)
            with srv.connect() as c2:
                return fixture.stats_on(c2)


def stats_keys_and_values(binary, kind):
    ref = stats_after_script(fixture.MEMCACHED, "memcached")
    got = stats_after_script(binary, kind)
    ref_keys = [k for k, _ in ref]
    got_keys = [k for k, _ in got]
    problems = []
    if ref_keys != got_keys:
        missing = [k for k in ref_keys if k not in got_keys]
        # fleetcache's own version has a stats line of its own (the version
        # line says 1.6.18, for clients): the one key memcached lacks
        extra = [k for k in got_keys if k not in ref_keys and k != "fleetcache_version"]
        got_keys = [k for k in got_keys if k != "fleetcache_version"]
        if missing:
            problems.append("missing keys: %s" % " ".join(missing))
        if extra:
            problems.append("extra keys: %s" % " ".join(extra))
        if not missing and not extra:
            for i, (a, b) in enumerate(zip(ref_keys, got_keys)):
                if a != b:
                    problems.append("order differs at %d: memcached %s, got %s" % (i, a, b))
                    break
    gv = dict(got)
    for k, v in ref:
        if k in STATS_VOLATILE or k not in gv:
            continue
        if gv[k] != v:
            problems.append("%s: memcached %s got %s" % (k, v, gv[k]))
    if problems:
        raise AssertionError("; ".join(problems))


# ---------------------------------------------------------------- random

KEYS = [b"k%d" % i for i in range(8)]
NUM_KEYS = KEYS[:4]      # incr/decr only here
TEXT_KEYS = KEYS[4:]     # append/prepend only here: a padded number stays out


def random_value(rnd):
    kind = rnd.random()
    if kind < 0.3:
        return b"%d" % rnd.choice([0, 1, 9, 10, 99, 100, 2 ** 32, 2 ** 64 - 1, rnd.randrange(10 ** 6)])
    n = rnd.choice([0, 1, 2, 5, 10, 40])
    return bytes(rnd.choice(b"abcdefxyz0123456789") for _ in range(n))


def random_command(rnd):
    """One complete command: it never leaves the server waiting for bytes."""
    nr = b" noreply" if rnd.random() < 0.1 else b""
    key = rnd.choice(KEYS)
    r = rnd.random()
    if r < 0.25:
        cmd = rnd.choice([b"get", b"gets"])
        return cmd + b" " + b" ".join(rnd.choice(KEYS) for _ in range(rnd.randint(1, 4))) + b"\r\n"
    if r < 0.3:
        cmd = rnd.choice([b"gat", b"gats"])
        return b"%s %d %s\r\n" % (cmd, rnd.choice([0, 100, 1000]), key)
    if r < 0.55:
        cmd = rnd.choice([b"set", b"set", b"add", b"replace", b"append", b"prepend"])
        if cmd in (b"append", b"prepend"):
            key = rnd.choice(TEXT_KEYS)
        val = random_value(rnd)
        return b"%s %s %d 0 %d%s\r\n%s\r\n" % (cmd, key, rnd.choice([0, 1, 4294967295]), len(val), nr, val)
    if r < 0.6:
        val = random_value(rnd)
        return b"cas %s 0 0 %d %d%s\r\n%s\r\n" % (key, len(val), rnd.randrange(1, 60), nr, val)
    if r < 0.72:
        cmd = rnd.choice([b"incr", b"decr"])
        key = rnd.choice(NUM_KEYS)
        delta = rnd.choice([b"0", b"1", b"7", b"18446744073709551615", b"-1", b"x"])
        return b"%s %s %s%s\r\n" % (cmd, key, delta, nr)
    if r < 0.8:
        return b"delete %s%s\r\n" % (key, nr)
    if r < 0.85:
        return b"touch %s %d%s\r\n" % (key, rnd.choice([0, 100, -1]), nr)
    # error paths with a deterministic outcome
    bad = [
        b"bogus\r\n",
        b"\r\n",
        b"set %s 0 0 -1\r\n" % key,
        b"set %s 0 0 2\r\nabcd\r\n" % key,
        b"set %s abc 0 1\r\nx\r\n" % key,
        b"incr %s\r\n" % key,
        b"delete %s 5\r\n" % key,
        b"touch %s abc\r\n" % key,
        b"verbosity 0\r\n",
        b"get " + b"q" * 250 + b"\r\n",
    ]
    return rnd.choice(bad)


# Text keys only: a counter's binary-key mark would share its marks' fate.
B64_KEYS = {b"k4": b"azQ=", b"k5": b"azU=", b"k6": b"azY="}
META_PADDED_RX = re.compile(rb"VA (\d+)((?: [^\r\n]*)?)\r\n(\d+) +\r\n")


def normalize_meta_padding(data):
    """As normalize_padding, for a counter shrunk in place read by mg v."""
    return META_PADDED_RX.sub(lambda m: b"VA %d%s\r\n%s\r\n" % (
        len(m.group(3)), m.group(2), m.group(3)), data)


def random_meta_flags(rnd, pool, most=4):
    return [f for f in rnd.sample(pool, rnd.randint(0, min(most, len(pool))))]


def random_meta_command(rnd):
    """One complete meta command; no flag whose answer depends on the clock
    (t, l, me's la) and TTLs far from any second boundary, so both servers
    must answer byte for byte. No h either, nor size, win, stale mark or
    append on a counter: whether ma rewrites a counter in place (keeping its
    marks, padding a shorter number) or makes a new item depends on whether
    memcached's LRU thread held the item at that moment."""
    key = rnd.choice(KEYS)
    keytok = key
    extra = []
    if key in B64_KEYS and rnd.random() < 0.3:
        keytok = B64_KEYS[key]
        extra = [b"b"]
    opaque = [b"O%d" % rnd.randrange(100)] if rnd.random() < 0.3 else []
    r = rnd.random()
    if r < 0.35:
        pool = [b"v", b"c", b"f", b"s", b"k", b"q", b"u", b"N100", b"R50", b"R200", b"T100", b"T0"]
        if key in NUM_KEYS:  # see above: no size, no win on a counter
            for f in (b"s", b"N100", b"R50", b"R200"):
                pool.remove(f)
        flags = random_meta_flags(rnd, pool)
        return b" ".join([b"mg", keytok] + flags + opaque + extra) + b"\r\n"
    if r < 0.6:
        if key in NUM_KEYS:
            val = b"%d" % rnd.choice([0, 1, 9, 10, 99, 100, rnd.randrange(10 ** 6)])
        else:
            val = random_value(rnd)
            key = rnd.choice(TEXT_KEYS)
            keytok, extra = key, []
        modes = [b"MS", b"ME", b"MR"] + ([] if key in NUM_KEYS else [b"MA", b"MP", b"I"])
        flags = random_meta_flags(rnd, modes + [b"q", b"c", b"k", b"C%d" % rnd.randrange(1, 60),
                                                b"F%d" % rnd.choice([0, 7]), b"T0", b"T100"])
        modes = [f for f in flags if f.startswith(b"M")]
        flags = [f for f in flags if not f.startswith(b"M")] + modes[:1]
        return b" ".join([b"ms", keytok, b"%d" % len(val)] + flags + opaque + extra) + \
            b"\r\n" + val + b"\r\n"
    if r < 0.72:
        pool = [b"q", b"k", b"T100", b"C%d" % rnd.randrange(1, 60)]
        if key not in NUM_KEYS:
            pool.append(b"I")  # a stale counter may stay stale or not after ma
        flags = random_meta_flags(rnd, pool)
        return b" ".join([b"md", keytok] + flags + opaque + extra) + b"\r\n"
    if r < 0.9:
        key = rnd.choice(NUM_KEYS)
        keytok, extra = key, []
        flags = random_meta_flags(rnd, [b"N0", b"N100", b"J%d" % rnd.randrange(50), b"D%d" % rnd.choice([0, 1, 7, 1000]),
                                        b"MI", b"MD", b"M+", b"M-", b"q", b"v", b"c", b"k",
                                        b"C%d" % rnd.randrange(1, 60)], most=5)
        modes = [f for f in flags if f.startswith(b"M")]
        flags = [f for f in flags if not f.startswith(b"M")] + modes[:1]
        return b" ".join([b"ma", keytok] + flags + opaque + extra) + b"\r\n"
    if r < 0.94:
        return b"mn\r\n"
    bad = [
        b"mg %s v v\r\n" % key,
        b"mg %s x\r\n" % key,
        b"mg %s O%s\r\n" % (key, b"o" * 40),
        b"ms %s 2 Z\r\nab\r\n" % key,
        b"ms %s 2 MX\r\nab\r\n" % key,
        b"ms %s 2\r\nabc\r\n" % key,
        b"md %s Tx\r\n" % key,
        b"ma %s Mz\r\n" % key,
        b"mg azQ b b\r\n",
        b"mg\r\n",
    ]
    return rnd.choice(bad)


def random_meta_session(binary, kind, seed, batches=60, per_batch=25):
    rnd = random.Random(seed)
    with fixture.Server(fixture.MEMCACHED, [], name="memcached") as ref, \
            fixture.Server(binary, [], name=kind) as sut, \
            ref.connect() as rc, sut.connect() as sc:
        for b in range(batches):
            cmds = [random_meta_command(rnd) if rnd.random() < 0.8 else random_command(rnd)
                    for _ in range(per_batch)]
            # as in random_session: arithmetic must not race earlier replies
            segments, cur = [], []
            for cmd in cmds:
                if cmd.startswith((b"incr", b"decr", b"ma ")) and cur:
                    segments.append(cur)
                    cur = []
                cur.append(cmd)
            segments.append(cur)
            for seg in segments:
                batch = b"".join(seg) + b"version\r\n"
                rc.sendall(batch)
                sc.sendall(batch)
                ra = normalize_meta_padding(normalize_padding(normalize(read_to_sync(rc))))
                try:
                    sa = normalize_meta_padding(normalize_padding(normalize(read_to_sync(sc))))
                except AssertionError as e:
                    raise AssertionError("batch %d: %s" % (b, e))
                if ra != sa:
                    raise AssertionError("batch %d (seed %d) %s; commands were %s" % (
                        b, seed, first_difference(ra, sa), scripted.escape(batch, 600)))


def read_to_sync(sock, timeout=5.0):
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\r\n") or not VERSION_RX.search(buf[-64:]):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no reply to the closing version; got %s" % scripted.escape(buf[-200:], 200))
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise AssertionError("connection closed; got %s" % scripted.escape(buf[-200:], 200))
        buf += chunk
    return buf


def random_session(binary, kind, seed, batches=60, per_batch=25):
    rnd = random.Random(seed)
    with fixture.Server(fixture.MEMCACHED, [], name="memcached") as ref, \
            fixture.Server(binary, [], name=kind) as sut, \
            ref.connect() as rc, sut.connect() as sc:
        for b in range(batches):
            cmds = [random_command(rnd) for _ in range(per_batch)]
            # a segment ends before each incr/decr: memcached pads a shrunken
            # number in place only when no reply still holds the item, so an
            # arithmetic command must not race the previous replies
            segments, cur = [], []
            for cmd in cmds:
                if cmd.startswith((b"incr", b"decr")) and cur:
                    segments.append(cur)
                    cur = []
                cur.append(cmd)
            segments.append(cur)
            for seg in segments:
                batch = b"".join(seg) + b"version\r\n"
                rc.sendall(batch)
                sc.sendall(batch)
                ra = normalize_padding(normalize(read_to_sync(rc)))
                try:
                    sa = normalize_padding(normalize(read_to_sync(sc)))
                except AssertionError as e:
                    raise AssertionError("batch %d: %s" % (b, e))
                if ra != sa:
                    raise AssertionError("batch %d (seed %d) %s; commands were %s" % (
                        b, seed, first_difference(ra, sa), scripted.escape(batch, 600)))


def run(rep, ctx):
    run_corpus(rep, ctx)
    rep.case("diff/stats_keys_order_and_values", stats_keys_and_values, ctx["binary"], ctx["kind"])
    for seed in (1, 2, 3):
        rep.case("diff/random_session_seed_%d" % seed, random_session, ctx["binary"], ctx["kind"], seed)
    for seed in (1, 2, 3, 4):
        rep.case("diff/random_meta_session_seed_%d" % seed, random_meta_session, ctx["binary"],
                 ctx["kind"], seed)
