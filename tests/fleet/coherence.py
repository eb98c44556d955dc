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
    Returns (stale, checked, hits, settle_ms_list_sample)."""
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


def summary(lat):
    return "p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms (%d samples)" % (
        percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9),
        max(lat) if lat else float("nan"), len(lat))
