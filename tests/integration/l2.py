# The l2 group: a node in two-level mode (--l2) in front of real Debian
# memcached servers started here, plus a delaying relay and a fake L2 for
# what a real one will not do (answer slowly, garbage, close mid-reply).
# Only for fleetcached (memcached has no --l2): with --server memcached
# every case is skipped.

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import fixture
import l2fixture
from l2fixture import Client, FakeL2, Pool, Relay, node, opaque_of, wait_until

NUTCRACKER = "/usr/sbin/nutcracker"


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def l2stats(srv):
    with Client(srv.port) as c:
        return c.stats(b"l2")


def l2sum(st, name):
    n = int(st.get("servers", "0"))
    return sum(int(st.get("%d:%s" % (i, name), "0")) for i in range(n))


# ----------------------------------------------------------------- reads

def read_through_fills_l1(b):
    pool = Pool(2)
    try:
        keys = ["rt:%d" % i for i in range(40)]
        for i, k in enumerate(keys):
            with pool.direct(k) as d:
                expect(d.set(k, "value-%d" % i, flags=i) == b"STORED", "direct set")
        with node(b, pool.spec()) as n, Client(n.port) as c:
            for i, k in enumerate(keys):
                v = c.get_many([k])
                expect(v.get(k) == (i, b"value-%d" % i, None), "%s read through: %r" % (k, v))
            st = l2stats(n)
            expect(int(st["fills"]) == len(keys), "fills %s" % st["fills"])
            expect(l2sum(st, "hits") == len(keys), "L2 hits %d" % l2sum(st, "hits"))
            expect(int(st["0:hits"]) > 0 and int(st["1:hits"]) > 0, "both servers used")
            gets_before = pool.total("cmd_get")
            for i, k in enumerate(keys):
                expect(c.get(k) == b"value-%d" % i, "%s from L1" % k)
            expect(pool.total("cmd_get") == gets_before, "L1 hits went to L2")
            expect(l2sum(l2stats(n), "requests") == len(keys), "L1 hits made requests")
            expect(c.get("rt:absent") is None, "a key in neither is a miss")
    finally:
        pool.stop()


def multiget_one_round_trip_per_server(b):
    pool = Pool(2)
    try:
        keys = ["mg:%02d" % i for i in range(32)]
        for k in keys:
            with pool.direct(k) as d:
                d.set(k, k.upper())
        with node(b, pool.spec()) as n, Client(n.port) as c:
            # Half of them in L1 first, so hits and misses interleave.
            c.get_many(keys[::2])
            before = l2stats(n)
            got = c.get_many(keys + ["mg:absent"])
            expect(c.order == keys, "values out of the order asked: %r" % c.order)
            for k in keys:
                expect(got[k][1] == k.upper().encode(), "value of %s" % k)
            after = l2stats(n)
            reqs = l2sum(after, "requests") - l2sum(before, "requests")
            batches = l2sum(after, "batches") - l2sum(before, "batches")
            expect(reqs == 17, "one mg per missed key: %d" % reqs)
            expect(batches <= 2, "one write per server for the whole get: %d" % batches)
    finally:
        pool.stop()


def ttl_is_capped(b):
    pool = Pool(1)
    try:
        with pool.direct("long") as d:
            d.set("long", "x", exptime=100)
            d.set("short", "y", exptime=3)
        with node(b, pool.spec(), ["--l1-ttl", "2"]) as n, Client(n.port) as c:
            expect(c.get("long") == b"x", "first read")
            base = pool.total("cmd_get")
            # The copy lives at most --l1-ttl: L2 is asked again within it.
            expect(wait_until(lambda: c.get("long") == b"x" and pool.total("cmd_get") > base, 6),
                   "the L1 copy outlived --l1-ttl")
        with node(b, pool.spec(), ["--l1-ttl", "60"]) as n, Client(n.port) as c:
            expect(c.get("short") == b"y", "short read")
            with pool.direct("short") as d:
                expect(wait_until(lambda: d.get("short") is None, 8), "L2 never expired it")
            # ... and no longer than the L2 copy had left when it was read.
            expect(wait_until(lambda: c.get("short") is None, 3),
                   "the L1 copy outlived the L2 copy by more than a clock tick")
    finally:
        pool.stop()


def gat_goes_through_l2(b):
    pool = Pool(1)
    try:
        with node(b, pool.spec()) as n, Client(n.port) as c:
            expect(c.set("g", "v", exptime=10) == b"STORED", "set")
            expect(c.get("g") == b"v", "in L1")
            got = c.get_many(["g", "nope"], b"gats 1000")
            expect(set(got) == {"g"} and got["g"][1] == b"v", "gats: %r" % got)
            with pool.direct("g") as d:
                head, _ = d.meta(b"mg g t c")
                ttl = int([t for t in head.split(b" ") if t.startswith(b"t")][0][1:])
                cas = int([t for t in head.split(b" ") if t.startswith(b"c")][0][1:])
                expect(ttl > 900, "L2's TTL was not extended: %r" % head)
                expect(got["g"][2] == cas, "gats CAS %r vs L2 %d" % (got["g"][2], cas))
    finally:
        pool.stop()


def too_large_for_l1_is_a_miss(b):
    pool = Pool(1)
    try:
        with pool.direct("big") as d:
            d.set("big", "z" * 5000)
        with node(b, pool.spec(), ["-I", "2k", "-o", "slab_chunk_max=2048"]) as n, \
                Client(n.port) as c:
            expect(c.get("big") is None, "a value L1 cannot hold")
            expect(c.set("small", "s") == b"STORED", "still works")
            expect(c.get("small") == b"s", "still reads")
            expect(int(l2stats(n)["fills_refused"]) >= 1, "counted")
    finally:
        pool.stop()


# ----------------------------------------------------------------- writes

def write_through(b):
    pool = Pool(2)
    try:
        with node(b, pool.spec()) as n, Client(n.port) as c:
            expect(c.set("w1", "one", flags=7, exptime=0) == b"STORED", "set")
            with pool.direct("w1") as d:
                v = d.get_many(["w1"], b"gets")
                expect(v["w1"][:2] == (7, b"one"), "L2 holds the write: %r" % v)
                l2cas = v["w1"][2]
            base = pool.total("cmd_get")
            val, cas = c.gets("w1")
            expect((val, cas) == (b"one", l2cas), "gets answers L2's CAS: %r %r" % (val, cas))
            expect(pool.total("cmd_get") == base, "the written value was kept in L1")
            expect(c.store(b"add", "w1", "x") == b"NOT_STORED", "add of an existing key")
            expect(c.store(b"replace", "w-none", "x") == b"NOT_STORED", "replace of none")
            expect(c.store(b"append", "w1", "-two") == b"STORED", "append")
            expect(c.store(b"prepend", "w1", "zero-") == b"STORED", "prepend")
            expect(c.get("w1") == b"zero-one-two", "joined value after append/prepend")
            expect(c.set("n", "10") == b"STORED", "counter")
            expect(c.cmd(b"incr n 5") == b"15", "incr")
            expect(c.cmd(b"decr n 20") == b"0", "decr floors at 0")
            expect(c.cmd(b"incr w1 1").startswith(b"CLIENT_ERROR cannot increment"), "incr text")
            expect(c.cmd(b"incr none 1") == b"NOT_FOUND", "incr of none")
            with pool.direct("n") as d:
                # memcached pads a shrunk counter in place ("0 "): L1 must agree.
                expect(c.get("n") == d.get("n"), "counter read back")
            expect(c.cmd(b"touch n 500") == b"TOUCHED", "touch")
            expect(c.cmd(b"touch none 5") == b"NOT_FOUND", "touch of none")
            with pool.direct("n") as d:
                head, _ = d.meta(b"mg n t")
                expect(b" t4" in head or b" t5" in head, "touch reached L2: %r" % head)
            expect(c.cmd(b"delete n") == b"DELETED", "delete")
            expect(c.cmd(b"delete n") == b"NOT_FOUND", "delete again")
            expect(c.get("n") is None, "deleted")
            with pool.direct("n") as d:
                expect(d.get("n") is None, "deleted in L2")
            # noreply: nothing comes back, but the next command sees the write.
            c.store(b"set", "q", "quiet", noreply=True)
            expect(c.get("q") == b"quiet", "noreply set then get")
            with pool.direct("q") as d:
                expect(d.get("q") == b"quiet", "noreply set reached L2")
    finally:
        pool.stop()


def cas_across_nodes(b):
    pool = Pool(2)
    try:
        with node(b, pool.spec()) as na, node(b, pool.spec()) as nb, \
                Client(na.port) as a, Client(nb.port) as bc:
            a.set("c", "v1")
            va, cas_a = a.gets("c")
            vb, cas_b = bc.gets("c")
            expect(cas_a == cas_b and va == vb == b"v1", "both nodes see L2's CAS")
            expect(bc.store(b"cas", "c", "v2", cas=cas_a) == b"STORED", "B's cas with A's unique")
            # A's copy is now stale (no bus here): L2 refuses A's cas, and
            # A drops its copy, so A's next gets sees the truth.
            expect(a.store(b"cas", "c", "v3", cas=cas_a) == b"EXISTS", "stale cas refused")
            v, cas2 = a.gets("c")
            expect(v == b"v2" and cas2 != cas_a, "A re-read after EXISTS: %r" % v)
            expect(a.store(b"cas", "c", "v3", cas=cas2) == b"STORED", "fresh cas")
            expect(a.store(b"cas", "none", "x", cas=1) == b"NOT_FOUND", "cas of none")
    finally:
        pool.stop()


def meta_through_l2(b):
    """The meta commands on a node with a pool: mg reads through and hits
    L1 after; ms, md and ma go to L2 first; the client's own flags and
    opaque come back in its order; leases are L2's."""
    pool = Pool(1)
    try:
        with node(b, pool.spec()) as n, Client(n.port) as c, pool.direct("m") as d:
            d.set("m", "from-l2", flags=3)
            head, val = c.meta(b"mg m v f c t s k O1")
            l2head, _ = d.meta(b"mg m c")
            cas = l2head.split(b" ")[1]
            expect(val == b"from-l2", "read through: %r %r" % (head, val))
            expect(head.startswith(b"VA 7 f3 " + cas + b" t") and head.endswith(b" s7 km O1"),
                   "flags in the client's order with L2's CAS: %r (L2 %r)" % (head, l2head))
            base = pool.total("cmd_get")
            expect(c.meta(b"mg m v")[1] == b"from-l2", "hit")
            expect(pool.total("cmd_get") == base, "an mg hit went to L2")
            expect(c.meta(b"mg absent v O2") == (b"EN O2", None), "miss")
            c.send(b"mg absent v q\r\nmn\r\n")
            expect(c.line() == b"MN", "q hides a miss")
            # writes
            head, _ = c.meta(b"ms w 2 T100 F7 c O3", b"hi")
            expect(head.startswith(b"HD c") and head.endswith(b" O3"), "ms: %r" % head)
            expect(d.get_many(["w"]).get("w", (0, b""))[:2] == (7, b"hi"), "ms reached L2")
            base = pool.total("cmd_get")
            expect(c.meta(b"mg w v f")[1] == b"hi", "ms value kept in L1")
            expect(pool.total("cmd_get") == base, "the ms value was not kept")
            expect(c.meta(b"ms w 2 ME O4", b"no")[0] == b"NS O4", "add of an existing key")
            expect(c.meta(b"ms w 2 C1 c", b"no")[0] == b"EX c0", "stale CAS")
            c.send(b"md w q\r\nmn\r\n")
            expect(c.line() == b"MN", "q hides md's HD")
            expect(d.get("w") is None, "md reached L2")
            expect(c.meta(b"md w O5") == (b"NF O5", None), "md of none")
            head, val = c.meta(b"ma ctr N0 J5 v t O6")
            expect((head, val) == (b"VA 1 t-1 O6", b"5"), "ma creates: %r %r" % (head, val))
            expect(c.meta(b"ma ctr v MD D2")[1] == b"3", "ma decrements in L2")
            expect(d.get("ctr") == b"3", "ma reached L2")
            # T goes to L2 (its expiry), and so does the mg as a whole
            d.set("t", "x", exptime=10)
            head, _ = c.meta(b"mg t v T500 t")
            expect(head.startswith(b"VA 1 t500") or head.startswith(b"VA 1 t499"), "mg T: %r" % head)
            expect(int(d.meta(b"mg t t")[0].split(b"t")[-1]) > 400, "T reached L2")
            # leases: L2's, so one win for two clients of this node
            w1, _ = c.meta(b"mg lk v c N30")
            with Client(n.port) as c2:
                w2, _ = c2.meta(b"mg lk v c N30")
            expect(w1.endswith(b" W") and w2.endswith(b" Z"), "lease: %r then %r" % (w1, w2))
            lcas = w1.split(b" c")[1].split(b" ")[0]
            expect(c.meta(b"ms lk 3 C" + lcas, b"new")[0] == b"HD", "the winner's fill")
            expect(c.meta(b"mg lk v")[1] == b"new", "filled")
    finally:
        pool.stop()


def flush_all_leaves_l2_alone(b):
    pool = Pool(1)
    try:
        with node(b, pool.spec()) as n, Client(n.port) as c:
            c.set("f", "kept")
            base = pool.total("cmd_get")
            expect(c.cmd(b"flush_all") == b"OK", "flush_all")
            with pool.direct("f") as d:
                expect(d.get("f") == b"kept", "L2 was flushed")
            expect(c.get("f") == b"kept", "read through again")
            expect(pool.total("cmd_get") > base + 1, "the L1 copy survived the flush")
    finally:
        pool.stop()


# ----------------------------------------------------------------- waiting

def command_arriving_during_an_l2_write_is_read_from_a_clean_buffer(b):
    """A noreply write waits on a slow L2; the next command arrives while it
    waits and is read when the write resumes. Once failed when the worker
    read it ahead into a buffer still marked with the write's old offsets
    (the get answered ERROR, or garbage)."""
    pool = Pool(1)
    relay = Relay(pool.ports[0], delay=0.2)
    try:
        with node(b, "127.0.0.1:%d" % relay.port) as n, Client(n.port) as c:
            for i, value in enumerate(("quiet", "q" * 300, "x")):
                key = "wq%d" % i
                c.store(b"set", key, value, noreply=True)
                time.sleep(0.05)  # the write is parsed and waits on L2
                expect(c.get(key) == value.encode(), "get after a noreply write, round %d" % i)
    finally:
        relay.stop()
        pool.stop()


def coalesces_concurrent_misses(b):
    pool = Pool(1)
    relay = Relay(pool.ports[0], delay=0.1, watch=["hot", "cold"], gated=True)
    try:
        with pool.direct("hot") as d:
            d.set("hot", "H" * 100)
        relay.open_gate()
        with node(b, "127.0.0.1:%d" % relay.port, threads=4) as n:
            for key, want in (("hot", b"H" * 100), ("cold", None)):
                clients = [Client(n.port) for _ in range(50)]
                try:
                    results = l2fixture.stampede(clients, b"get %s\r\n" % key.encode(), [relay])
                finally:
                    for cl in clients:
                        cl.close()
                got = [r[1].get(key, (0, None))[1] if r[0] == "ok" else r for r in results]
                bad = [g for g in got if g != want]
                expect(not bad, "%s: %d clients got %r" % (key, len(bad), bad[:3]))
                expect(relay.counts[key.encode()] == 1,
                       "%s: L2 saw %d gets for 50 concurrent misses" % (key, relay.counts[key.encode()]))
            st = l2stats(n)
            expect(int(st["0:coalesced"]) >= 90, "coalesced %s" % st["0:coalesced"])
    finally:
        relay.stop()
        pool.stop()


def pipelined_commands_keep_their_order(b):
    pool = Pool(1)
    relay = Relay(pool.ports[0], delay=0.2)
    try:
        with pool.direct("far") as d:
            d.set("far", "F")
        with node(b, "127.0.0.1:%d" % relay.port) as n, Client(n.port) as c:
            c.send(b"get far\r\nset a 0 0 1\r\n1\r\nget a\r\nget nothing\r\nincr a 1\r\nversion\r\n")
            want = [b"VALUE far 0 1", b"F", b"END", b"STORED", b"VALUE a 0 1", b"1", b"END",
                    b"END", b"2", b"VERSION"]
            for w in want:
                line = c.line()
                expect(line.startswith(w), "expected %r, got %r" % (w, line))
    finally:
        relay.stop()
        pool.stop()


def client_gone_while_writing(b):
    pool = Pool(1)
    relay = Relay(pool.ports[0], delay=0.3)
    try:
        with node(b, "127.0.0.1:%d" % relay.port) as n:
            c = Client(n.port)
            c.send(b"set orphan 0 0 4\r\nlost\r\nget orphan\r\n")
            c.close()
            with pool.direct("orphan") as d:
                expect(wait_until(lambda: d.get("orphan") == b"lost", 5), "the write never landed")
            with Client(n.port) as c2:
                expect(c2.get("orphan") == b"lost", "node still serves")
    finally:
        relay.stop()
        pool.stop()


# ----------------------------------------------------------------- failures

def l2_down_then_back(b):
    pool = Pool(1)
    try:
        with node(b, pool.spec(), ["--l2-timeout-ms", "300", "--l2-retry-ms", "300"]) as n, \
                Client(n.port) as c:
            expect(c.set("keep", "L1") == b"STORED", "set before")
            pool.kill(0)
            expect(c.get("keep") == b"L1", "an L1 hit is served while L2 is down")
            expect(c.get("gone") is None, "a miss is a miss")
            r = c.set("w", "x")
            expect(r.startswith(b"SERVER_ERROR"), "a write L2 did not confirm: %r" % r)
            expect(c.cmd(b"delete keep").startswith(b"SERVER_ERROR"), "delete fails too")
            expect(c.get("keep") is None, "a failed write dropped the L1 copy")
            for _ in range(5):
                c.get("x")
            st = l2stats(n)
            expect(int(st["0:ejections"]) >= 1, "never ejected: %r" % st)
            expect(int(st["0:refused"]) >= 1, "ejected server still asked")
            pool.revive(0)
            expect(wait_until(lambda: c.set("w", "back") == b"STORED", 5), "never recovered")
            expect(c.get("w") == b"back", "reads after recovery")
    finally:
        pool.stop()


def l2_restart_mid_run(b):
    """Writers and readers run while L2 is killed and restarted: a read
    never returns a value older than the last write acknowledged before it
    began, and writes acknowledged after the restart are all there."""
    pool = Pool(1)
    try:
        with node(b, pool.spec(), ["--l2-timeout-ms", "300", "--l2-retry-ms", "200"],
                  threads=2) as n:
            state = {"ack": -1, "tried": -1, "stop": False, "errors": [], "acks_after": 0,
                     "revived": False, "reads": 0}
            lock = threading.Lock()

            def writer():
                with Client(n.port) as c:
                    i = 0
                    while not state["stop"]:
                        with lock:
                            state["tried"] = i
                        r = c.set("ver", "%08d" % i)
                        if r == b"STORED":
                            with lock:
                                state["ack"] = i
                                if state["revived"]:
                                    state["acks_after"] += 1
                        elif not r.startswith(b"SERVER_ERROR"):
                            state["errors"].append("set answered %r" % r)
                        i += 1

            def reader():
                with Client(n.port) as c:
                    while not state["stop"]:
                        with lock:
                            floor = state["ack"]
                        v = c.get("ver")
                        with lock:
                            state["reads"] += 1
                            top = state["tried"]
                        if v is not None and not (floor <= int(v) <= top):
                            state["errors"].append("read %s after ack %d (tried %d)" % (v, floor, top))

            threads = [threading.Thread(target=writer)] + \
                [threading.Thread(target=reader) for _ in range(2)]
            for t in threads:
                t.start()
            try:
                time.sleep(1.0)
                pool.kill(0)
                time.sleep(1.0)
                pool.revive(0)
                with lock:
                    state["revived"] = True
                # Until writes are acknowledged again (the ejection ends,
                # the connections reopen), however slow the machine.
                wait_until(lambda: state["acks_after"] >= 20, 15)
            finally:
                state["stop"] = True
                for t in threads:
                    t.join(10)
            expect(not state["errors"], "; ".join(state["errors"][:5]))
            expect(state["acks_after"] > 0, "no write acknowledged after the restart")
            last = "%08d" % state["ack"]
            with Client(n.port) as c:
                expect(c.get("ver") == last.encode(), "node's final value")
            with pool.direct("ver") as d:
                expect(d.get("ver") == last.encode(), "L2's final value")
    finally:
        pool.stop()


def garbage_from_l2(b):
    mode = {"how": "classic"}

    def answer(line):
        op = opaque_of(line)
        how = mode["how"]
        if line.startswith(b"ms "):
            return b"HD c7 " + op + b"\r\n" if how == "good" else b"STORED\r\n"
        if how == "classic":
            return b"VALUE k 0 1\r\nz\r\nEND\r\n"
        if how == "opaque":
            return b"VA 1 f0 c1 t-1 O99999\r\nz\r\n"
        if how == "close_mid_value":
            return ("close", b"VA 10 f0 c1 t-1 " + op + b"\r\nabc")
        if how == "no_crlf":
            return b"VA 1 f0 c1 t-1 " + op + b"\r\nzzz\r\n"
        if how == "huge":
            return b"VA 4000000000 f0 c1 t-1 " + op + b"\r\nabc"
        if how == "binary":
            return b"\x00\xff\x81garbage\r\n"
        return b"VA 1 f3 c5 t-1 " + op + b"\r\nz\r\n"

    fake = FakeL2(answer)
    try:
        with node(b, "127.0.0.1:%d" % fake.port,
                  ["--l2-timeout-ms", "300", "--l2-failure-limit", "0"]) as n, \
                Client(n.port) as c:
            for how in ("classic", "opaque", "close_mid_value", "no_crlf", "huge", "binary"):
                mode["how"] = how
                v = c.get("k%s" % how)
                expect(v is None, "%s: a garbage reply was believed: %r" % (how, v))
                r = c.set("w%s" % how, "v")
                expect(r.startswith(b"SERVER_ERROR"), "%s: write answered %r" % (how, r))
            expect(l2sum(l2stats(n), "errors") + l2sum(l2stats(n), "timeouts") >= 6, "counted")
            mode["how"] = "good"
            expect(c.get_many(["kgood"]) == {"kgood": (3, b"z", None)}, "recovered")
            expect(c.set("wgood", "v") == b"STORED", "writes recover")
    finally:
        fake.stop()


# ----------------------------------------------------------------- placement

def ketama_agrees_with_nutcracker(b):
    if not os.access(NUTCRACKER, os.X_OK):
        raise SKIP[0]("no %s" % NUTCRACKER)
    pool = Pool(3, weights=[1, 2, 1])
    tmp = tempfile.mkdtemp(prefix="fc-nutcracker-")
    proc = None
    try:
        port = fixture.free_port()
        conf = os.path.join(tmp, "nc.yml")
        with open(conf, "w") as f:
            f.write("pool:\n  listen: 127.0.0.1:%d\n  hash: md5\n  distribution: ketama\n"
                    "  auto_eject_hosts: false\n  servers:\n" % port)
            for p, w in zip(pool.ports, pool.weights):
                f.write("    - 127.0.0.1:%d:%d\n" % (p, w))
        proc = subprocess.Popen([NUTCRACKER, "-c", conf, "-o", os.path.join(tmp, "nc.log"),
                                 "-s", str(fixture.free_port()), "-a", "127.0.0.1",
                                 "-p", os.path.join(tmp, "nc.pid")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def up():
            try:
                with Client(port, timeout=1) as c:
                    return c.set("probe", "1") == b"STORED"
            except OSError:
                return False
        expect(wait_until(up, 10), "nutcracker did not come up")
        keys = ["user:%d" % i for i in range(300)] + ["k%d" % i for i in range(100)]
        with Client(port) as t:
            for k in keys:
                expect(t.set(k, "v:" + k) == b"STORED", "set %s through nutcracker" % k)
        ring = pool.ring()
        for k in keys:
            with Client(pool.ports[ring.server_for(k)]) as d:
                expect(d.get(k) == ("v:" + k).encode(),
                       "%s is not where the test's own ring puts it" % k)
        with node(b, pool.spec()) as n, Client(n.port) as c:
            got = {}
            for i in range(0, len(keys), 40):
                got.update(c.get_many(keys[i:i + 40]))
            missing = [k for k in keys if k not in got]
            expect(not missing, "%d of %d keys read from another server than nutcracker's, "
                   "e.g. %s" % (len(missing), len(keys), missing[:3]))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        pool.stop()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def stats_l2_shape(b):
    with fixture.Server(b, [], name="fleetcached") as plain, Client(plain.port) as c:
        expect(c.stats(b"l2") == {"servers": "0"}, "without a pool")
    pool = Pool(2)
    try:
        with node(b, pool.spec()) as n, Client(n.port) as c:
            st = c.stats(b"l2")
            for name in ("servers", "timeout_ms", "fills", "write_commits", "0:address",
                         "0:requests", "0:hits", "0:misses", "0:errors", "0:timeouts",
                         "0:ejections", "0:in_flight", "0:coalesced", "0:latency_p50_us",
                         "0:latency_p99_us", "1:address"):
                expect(name in st, "stats l2 lacks %s" % name)
            expect(st["servers"] == "2", "servers")
            expect(st["0:address"] == "127.0.0.1:%d" % pool.ports[0], "address")
    finally:
        pool.stop()


def binary_protocol_is_closed(b):
    """Two-level mode serves text and meta: a binary connection (its
    commands would go around the pool) is closed before any command runs;
    text on the same node still works."""
    pool = Pool(1)
    try:
        with node(b, pool.spec()) as n:
            s = socket.create_connection((fixture.HOST, n.port), timeout=5)
            # a binary SET of k=v: magic 0x80, opcode 0x01, key 1, extras 8, body 10
            s.sendall(bytes([0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0, 10]) + bytes(12) +
                      bytes(8) + b"k" + b"v")
            s.settimeout(5)
            expect(s.recv(100) == b"", "a binary connection was answered")
            s.close()
            with Client(n.port) as c:
                expect(c.get("k") is None, "the binary set was applied")
            with pool.direct("k") as d:
                expect(d.get("k") is None, "the binary set reached L2")
    finally:
        pool.stop()


def refuses_bad_l2_flags(b):
    for flags in (["--l2", "127.0.0.1:1", "-B", "binary"], ["--l2", ""], ["--l2", "127.0.0.1"], ["--l2", "127.0.0.1:0"],
                  ["--l2", "127.0.0.1:11211:0"], ["--l2", "127.0.0.1:1,:2"],
                  ["--l2", "127.0.0.1:1", "--l1-ttl", "0"], ["--l2-timeout-ms", "0"],
                  ["--l2", "no.such.host.invalid:11211"]):
        argv = [b, "-U", "0", "-l", "127.0.0.1", "-p", str(fixture.free_port())] + flags
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        expect(p.returncode > 0, "%r started (exit %d)" % (flags, p.returncode))
        expect(p.stderr.strip(), "%r refused without a word" % flags)


SKIP = [Exception]  # the runner's Skip, set by run()

CASES = [
    ("read_through_fills_l1", read_through_fills_l1),
    ("multiget_one_round_trip_per_server", multiget_one_round_trip_per_server),
    ("ttl_capped_by_l1_ttl_and_l2", ttl_is_capped),
    ("gat_goes_through_l2", gat_goes_through_l2),
    ("too_large_for_l1_is_a_miss", too_large_for_l1_is_a_miss),
    ("write_through", write_through),
    ("cas_across_nodes", cas_across_nodes),
    ("meta_through_l2", meta_through_l2),
    ("flush_all_leaves_l2_alone", flush_all_leaves_l2_alone),
    ("coalesces_concurrent_misses", coalesces_concurrent_misses),
    ("command_arriving_during_an_l2_write_is_read_from_a_clean_buffer",
     command_arriving_during_an_l2_write_is_read_from_a_clean_buffer),
    ("pipelined_commands_keep_their_order", pipelined_commands_keep_their_order),
    ("client_gone_while_writing", client_gone_while_writing),
    ("l2_down_then_back", l2_down_then_back),
    ("l2_restart_mid_run", l2_restart_mid_run),
    ("garbage_from_l2", garbage_from_l2),
    ("ketama_agrees_with_nutcracker", ketama_agrees_with_nutcracker),
    ("stats_l2_shape", stats_l2_shape),
    ("binary_protocol_is_closed", binary_protocol_is_closed),
    ("refuses_bad_l2_flags", refuses_bad_l2_flags),
]


def run(rep, ctx):
    SKIP[0] = ctx["Skip"]
    for name, fn in CASES:
        def case(fn=fn):
            if ctx["kind"] != "fleetcached":
                raise ctx["Skip"]("two-level mode is fleetcached's")
            fn(ctx["binary"])
        rep.case("l2/" + name, case)
