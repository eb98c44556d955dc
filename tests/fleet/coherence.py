"""Coherence measurements shared by tests/fleet/run and tests/fleet/long.

Two instruments, both driven from outside the nodes through their client
sockets, so they measure what a client sees:
  oracle(...)   stale reads: fill the old value on every node, write the new
                one on a random node, then read it on every other node
                `settle` seconds after the write returned (0: at once). Any
                node that still answers the old value is a stale read.
  latency(...)  invalidation latency: fill on b, write on a, busy-poll b until
                the copy is gone; milliseconds from the write's return.
Neither asserts a timing: callers assert stale counts and counters, and print
the figures. Every loop is bounded in count and in time.
"""

import os
import random
import socket
import time


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


class Pipe:
    """A raw client connection for pipelined sets and multigets."""

    def __init__(self, addr, timeout=10.0):
        fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        if fam == socket.AF_INET:
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(timeout)
        self.s.connect(addr)
        self.buf = b""

    def close(self):
        self.s.close()

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise OSError("connection closed by the server")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + 2:]
                return out
            self._fill()

    def sets(self, items):
        """Pipelined sets of (key, value); returns when every STORED came back."""
        self.s.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v) for k, v in items))
        for _ in items:
            r = self.line()
            if r != b"STORED":
                raise OSError("set: %r" % r)

    def set(self, k, v):
        self.s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v))
        r = self.line()
        if r != b"STORED":
            raise OSError("set: %r" % r)

    def gets(self, keys):
        """One multiget; returns {key: value} of the hits."""
        self.s.sendall(b"get " + b" ".join(keys) + b"\r\n")
        out = {}
        while True:
            ln = self.line()
            if ln == b"END":
                return out
            parts = ln.split()
            if parts[0] != b"VALUE":
                raise OSError("get: %r" % ln)
            n = int(parts[3])
            while len(self.buf) < n + 2:
                self._fill()
            out[parts[1]] = self.buf[:n]
            self.buf = self.buf[n + 2:]


def oracle(nodes, checks, settle, rng, batch=64, seconds=600.0, tag="o"):
    """Runs rounds until `checks` reads were checked (or `seconds` passed).
    settle 0: each key is read on every other node right after its write
    returned, before the next write. Returns a dict: stale, checked, hits,
    settle_ms (a sample of the actual settles), examples."""
    pipes = [Pipe(n.addr) for n in nodes]
    stale = checked = hits = 0
    settles = []
    stale_examples = []
    deadline = time.monotonic() + seconds
    rnd = 0
    try:
        while checked < checks and time.monotonic() < deadline:
            rnd += 1
            keys = [b"%s%d.%d" % (tag.encode(), rnd, i) for i in range(batch)]
            old = b"old%d" % rnd
            for p in pipes:                 # every node holds the old value
                p.sets([(k, old) for k in keys])
            writes = []
            for k in keys:
                w = rng.randrange(len(nodes))
                new = b"new%d.%d" % (rnd, w)
                pipes[w].set(k, new)
                writes.append((time.monotonic(), k, w, new))
                if settle == 0:
                    # No settle at all: every other node is read the
                    # instant the write returned, before the next write.
                    for r, p in enumerate(pipes):
                        if r == w:
                            continue
                        checked += 1
                        v = p.gets([k]).get(k)
                        if v is not None:
                            hits += 1
                            if v != new:
                                stale += 1
                                if len(stale_examples) < 5:
                                    stale_examples.append((k, nodes[r].name, v, new))
            if settle == 0:
                continue
            # Read each key on every other node `settle` after its write:
            # in write order, each multiget takes the keys that are due.
            i = 0
            while i < len(writes):
                now = time.monotonic()
                due = writes[i][0] + settle
                if due > now:
                    time.sleep(due - now)
                    now = time.monotonic()
                j = i
                while j < len(writes) and writes[j][0] + settle <= now:
                    j += 1
                group = writes[i:j]
                if len(settles) < 2000:
                    settles.append((now - group[0][0]) * 1000)
                for r, p in enumerate(pipes):
                    ks = [k for (_, k, w, _) in group if w != r]
                    if not ks:
                        continue
                    got = p.gets(ks)
                    for (_, k, w, new) in group:
                        if w == r:
                            continue
                        checked += 1
                        v = got.get(k)
                        if v is None:
                            continue
                        hits += 1
                        if v != new:
                            stale += 1
                            if len(stale_examples) < 5:
                                stale_examples.append((k, nodes[r].name, v, new))
                i = j
    finally:
        for p in pipes:
            p.close()
    return {"stale": stale, "checked": checked, "hits": hits, "settle_ms": settles,
            "examples": stale_examples}


def latency(nodes, samples, rng, seconds=300.0, poll_limit=3.0, tag="l"):
    """Write on a random node a, busy-poll a random other node b until its
    copy is gone. Returns the milliseconds from the write's return, one per
    sample; a sample still stale after poll_limit counts as poll_limit."""
    pipes = [Pipe(n.addr) for n in nodes]
    out = []
    deadline = time.monotonic() + seconds
    try:
        for i in range(samples):
            if time.monotonic() > deadline:
                break
            a = rng.randrange(len(nodes))
            b = rng.randrange(len(nodes) - 1)
            b += b >= a
            k = b"%s%d" % (tag.encode(), i)
            pipes[b].set(k, b"old")
            pipes[a].set(k, b"new")
            t1 = time.monotonic()
            while True:
                if not pipes[b].gets([k]):
                    out.append((time.monotonic() - t1) * 1000)
                    break
                if time.monotonic() - t1 > poll_limit:
                    out.append(poll_limit * 1000)
                    break
    finally:
        for p in pipes:
            p.close()
    return out


def hit_rate(nodes, reads, rng, keys=500, tag="h"):
    """Fills keys (one value each) on every node, then reads random keys on
    random nodes, ten to a multiget, with no writes: the share that hit.
    Under --bus-sync what misses is what the nodes' leases did not cover."""
    pipes = [Pipe(n.addr) for n in nodes]
    try:
        ks = [b"%s%d" % (tag.encode(), i) for i in range(keys)]
        for p in pipes:
            for i in range(0, keys, 100):
                p.sets([(k, b"v") for k in ks[i:i + 100]])
        time.sleep(0.2)     # the fills' invalidations keep equal copies; let them pass
        hits = done = 0
        while done < reads:
            p = pipes[rng.randrange(len(pipes))]
            want = [ks[rng.randrange(keys)] for _ in range(10)]
            hits += len(p.gets(list(dict.fromkeys(want))))
            done += len(set(want))
        return hits / max(done, 1)
    finally:
        for p in pipes:
            p.close()


def summary(lat):
    return "p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms (%d samples)" % (
        percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9),
        max(lat) if lat else float("nan"), len(lat))


# --- --bus-sync fleet tests (registered by tests/fleet/run) ------------------------------

def sync_args(n, lease_ms=None):
    a = ["--bus-sync", "--bus-sync-nodes", str(n)]
    return a + (["--bus-lease-ms", str(lease_ms)] if lease_ms else [])


def wait_leased(h, nodes, timeout=5):
    """Until every node holds a read lease from every peer."""
    def ok():
        return all(int(n.bus().get("lease_left_ms", "0")) > 0 for n in nodes)
    h.check(h.wait_until(ok, timeout), "nodes never got their leases: %r" %
            [(n.name, n.bus().get("lease_left_ms")) for n in nodes])


def set_latencies(node, count, tag):
    """Milliseconds each of count sets on node took to return."""
    p = Pipe(node.addr)
    out = []
    try:
        for i in range(count):
            t0 = time.monotonic()
            p.set(b"%s%d" % (tag.encode(), i), b"v")
            out.append((time.monotonic() - t0) * 1000)
    finally:
        p.close()
    return out


def tests(h):
    """The fleet tests of issue 12 that run in every CI run."""

    def sync_oracle(nodes, checks, label, seed):
        o = oracle(nodes, checks, 0.0, random.Random(seed), tag=label)
        h.check(o["stale"] == 0, "%s: %d stale reads of %d with no settle: %r" % (
            label, o["stale"], o["checked"], o["examples"]))
        return o

    def t_sync_loopback_reads_your_writes():
        # The oracle with no settle at all: a read on every other node the
        # instant the write returned. Without --bus-sync this reads stale
        # copies (printed for comparison); with it, never.
        plain = h.loopback_fleet(3)
        try:
            o = oracle(plain, 1500, 0.0, random.Random(41), tag="plain")
            lat_plain = set_latencies(plain[0], 300, "lp")
        finally:
            h.stop_all(plain)
        nodes = h.loopback_fleet(3, extra=sync_args(3))
        try:
            wait_leased(h, nodes)
            s = sync_oracle(nodes, 3000, "sync", 42)
            lat_sync = set_latencies(nodes[0], 300, "ls")
            h.check(h.total(nodes, "sync_writes") > 0, "no write waited for the fleet")
            h.check(h.total(nodes, "grants_received") > 0, "no leases granted")
            print("INFO loopback, no settle: stale reads %d of %d without --bus-sync, %d of %d "
                  "with it; set p50/p99 %.2f/%.2f ms without, %.2f/%.2f ms with" % (
                      o["stale"], o["checked"], s["stale"], s["checked"],
                      percentile(lat_plain, 50), percentile(lat_plain, 99),
                      percentile(lat_sync, 50), percentile(lat_sync, 99)))
        finally:
            h.stop_all(nodes)

    def t_sync_loopback_unicast():
        nodes = h.loopback_fleet(3, unicast=True, extra=["--bus-sync"])
        try:
            h.check(nodes[0].bus().get("sync_nodes") == "3", "unicast: the peers + 1")
            wait_leased(h, nodes)
            sync_oracle(nodes, 2000, "usync", 43)
        finally:
            h.stop_all(nodes)

    def t_sync_needs_the_fleet_size_in_multicast():
        args = ["--bus-group", h.new_group(), "--bus-interface", "127.0.0.1", "--bus-ttl", "0",
                "--bus-sync"] + h.keyed()
        user = ["-u", "root"] if os.geteuid() == 0 else []  # root must name its user
        r = h.subprocess.run([h.BIN, "-l", "127.0.0.1", "-p", str(h.free_port())] + user + args,
                             capture_output=True, text=True, timeout=10)
        h.check(r.returncode != 0 and "--bus-sync-nodes" in r.stderr,
                "started without a fleet size: rc %d %r" % (r.returncode, r.stderr))

    def t_sync_no_hits_until_every_peer_leases():
        # Two of three nodes up: neither may serve a hit (the third could be
        # writing without knowing them); once it joins, hits come back.
        group = h.new_group()
        mk = lambda i: h.Node("j%d" % i, ["--bus-group", group, "--bus-interface", "127.0.0.1",
                                          "--bus-ttl", "0"] + h.keyed() + sync_args(3),
                              port=h.free_port())
        a, b, c = nodes = [mk(i) for i in range(3)]
        try:
            a.start()
            b.start()
            h.wait_peers([a, b])
            a.set("k", "v")
            h.check(a.get("k") is None, "a served a hit with a third node unknown")
            h.check(a.stat("reads_refused") >= 1, "the refusal was not counted")
            c.start()
            h.wait_peers(nodes)
            wait_leased(h, nodes)
            a.set("k", "v")
            h.check(a.get("k") == "v", "no hit once every peer granted a lease")
        finally:
            h.stop_all(nodes)

    def netns_sync(n, body, lease_ms=None, unicast=False):
        h.need_netns()
        net = h.Netns(n)
        nodes = []
        try:
            net.up()
            nodes = net.fleet(extra=sync_args(n, lease_ms), unicast=unicast)
            wait_leased(h, nodes)
            body(net, nodes)
        finally:
            try:
                h.stop_all(nodes)
            finally:
                net.down()

    def sync_loss(pct, seed, checks):
        def body(net, nodes):
            for i in range(len(nodes)):
                net.nft(i, h.LOSS_RULES % pct)
            o = sync_oracle(nodes, checks, "loss%d" % pct, seed)
            lat = set_latencies(nodes[0], 200, "sl%d" % pct)
            print("INFO netns --bus-sync %d%% loss, no settle: %d stale of %d checks; set p50 "
                  "%.2f p99 %.2f ms; reads refused for want of a lease %d; writes passed by "
                  "expiry %d" % (pct, o["stale"], o["checked"], percentile(lat, 50),
                                 percentile(lat, 99), h.total(nodes, "reads_refused"),
                                 h.total(nodes, "sync_expired")))
        netns_sync(3, body)

    def t_sync_netns_loss_0():
        sync_loss(0, 51, 3000)

    def t_sync_netns_loss_10():
        sync_loss(10, 52, 3000)

    def t_sync_netns_loss_30():
        sync_loss(30, 53, 3000)

    def t_sync_netns_pause_resume():
        # b stops (SIGSTOP) holding k; a writes k: the write returns once
        # b's lease ran out. b resumes and is read the instant it runs: it
        # must check its lease before it serves anything.
        def body(net, nodes):
            a, b, c = nodes
            for round_ in range(3):
                k = "pause%d" % round_
                for n in nodes:
                    n.set(k, "old")
                b.proc.send_signal(h.signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    a.set(k, "new")
                    waited = time.monotonic() - t0
                    h.check(c.get(k) in (None, "new"), "c stale while b paused")
                finally:
                    b.proc.send_signal(h.signal.SIGCONT)
                got = b.get(k)
                h.check(got in (None, "new"), "b served %r right after resuming" % got)
            print("INFO netns --bus-sync: a write with a peer paused returned after %.0f ms "
                  "(lease %s ms)" % (waited * 1000, a.bus().get("lease_ms")))
            h.check(a.stat("sync_expired") >= 1, "no write passed a paused peer by expiry")
            wait_leased(h, nodes)
            sync_oracle(nodes, 600, "afterpause", 54)
        netns_sync(3, body)

    def t_sync_netns_partition_heals():
        # c is cut off: writes on a return once c's lease ran out; c serves
        # no hit while cut off; after healing nothing stale is served.
        def body(net, nodes):
            a, b, c = nodes
            for n in nodes:
                n.set("p", "old")
            net.nft(2, h.PARTITION_RULES)
            try:
                a.set("p", "new")
                h.check(c.get("p") in (None, "new"), "c served the old value while cut off")
                for i in range(20):
                    a.set("q%d" % i, "during")
                    b.set("q%d" % i, "during")
                h.check(c.get("q3") is None and c.stat("reads_refused") >= 1,
                        "c served hits while cut off")
            finally:
                net.nft_clear(2)
            h.wait_peers(nodes)
            wait_leased(h, nodes)
            h.check(c.get("p") in (None, "new"), "c served the old value after healing")
            sync_oracle(nodes, 600, "afterheal", 55)
        netns_sync(3, body)

    def t_meta_lease_fills_need_no_announce_rule():
        # Issue 12: once leases exist, is differs -> announce still needed?
        # The race it exists for is a fill of an old database read landing
        # after a write elsewhere. With the rule off, a plain set fill stays
        # stale (loopback_announce_window_protects_and_costs: 10 of 10); a
        # fill through a meta lease (mg N, then ms C<cas>) whose key a peer
        # invalidated meanwhile is refused (EX) and never lands.
        a, b = nodes = h.loopback_fleet(n=2, extra=["--bus-announce-window-ms", "0"])
        try:
            filler = h.Mc(b.addr)
            left = refused = 0
            for i in range(10):
                k = "mrace%d" % i
                parts, _ = filler.meta("mg %s c N30" % k)    # b misses: the win is ours
                h.check("W" in parts, "round %d: no win: %r" % (i, parts))
                cas = h.meta_flag(parts, "c")
                rb = b.stat("keys_received")
                a.set(k, "new")                              # the write, after our DB read
                h.check(h.wait_until(lambda: b.stat("keys_received") > rb, 2), "b never heard a")
                parts, _ = filler.meta("ms %s 3 C%s" % (k, cas), "old")   # the late fill
                refused += parts[0] == "EX"
                left += b.get(k) == "old"
            filler.close()
            print("INFO announce rule off: meta-lease fills landing after a write elsewhere: "
                  "%d of 10 refused (EX), %d stale copies left" % (refused, left))
            h.check(left == 0, "%d stale fills landed through meta leases" % left)
            h.check(a.stat("announces") + b.stat("announces") == 0, "the rule was on")
        finally:
            h.stop_all(nodes)

    def t_sync_with_a_pool_reads_your_writes():
        # Two-level mode (--l2) and --bus-sync compose: a write's reply
        # waits for the pool, then for the fleet; a node without a lease
        # reads through from the pool. No settle: every other node is read
        # the instant each write returned (a miss reads through, so every
        # read answers a value, and it must be the new one).
        pool = h.l2fixture.Pool(2)
        nodes = []
        try:
            nodes = h.l2_fleet(pool.spec(), extra=sync_args(3))
            wait_leased(h, nodes)
            o = sync_oracle(nodes, 900, "l2sync", 56)
            h.check(o["hits"] == o["checked"], "a read through the pool came back empty: %d of %d"
                    % (o["hits"], o["checked"]))
            h.check(h.total(nodes, "sync_writes") > 0, "no write waited for the fleet")
        finally:
            h.stop_all(nodes)
            pool.stop()

    return [
        ("loopback_sync_with_a_pool_reads_your_writes", t_sync_with_a_pool_reads_your_writes),
        ("loopback_meta_lease_fills_need_no_announce_rule", t_meta_lease_fills_need_no_announce_rule),
        ("loopback_sync_reads_your_writes", t_sync_loopback_reads_your_writes),
        ("loopback_sync_unicast", t_sync_loopback_unicast),
        ("loopback_sync_needs_the_fleet_size_in_multicast", t_sync_needs_the_fleet_size_in_multicast),
        ("loopback_sync_no_hits_until_every_peer_leases", t_sync_no_hits_until_every_peer_leases),
        ("netns_sync_loss_0", t_sync_netns_loss_0),
        ("netns_sync_loss_10", t_sync_netns_loss_10),
        ("netns_sync_loss_30", t_sync_netns_loss_30),
        ("netns_sync_pause_resume", t_sync_netns_pause_resume),
        ("netns_sync_partition_heals", t_sync_netns_partition_heals),
    ]
