# Helpers for the two-level tests (tests/integration/l2.py, tests/fleet/run):
# an L2 pool of real memcached processes, a text-protocol client, a
# delaying relay that counts the requests passing it, a scriptable fake L2
# server, and twemproxy's ketama placement rewritten here from its
# description (md5, 160 points per share of weight), independently of the
# C code under test. Every socket has a timeout; every thread is a daemon
# bounded by its sockets; every process is stopped by pid.

import bisect
import hashlib
import math
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import fixture

MEMCACHED = fixture.MEMCACHED
HOST = fixture.HOST


# --------------------------------------------------------------- placement

def _f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class Ring:
    """twemproxy's continuum for servers [(name, weight)] (hash: md5,
    distribution: ketama). name is "host:port", or "host" on port 11211."""

    def __init__(self, servers):
        total = sum(w for _, w in servers)
        n = len(servers)
        self.n = n
        pts = []
        for i, (name, w) in enumerate(servers):
            pct = _f32(_f32(w) / _f32(total))
            per = int(math.floor(_f32(_f32(_f32(_f32(pct * 160.0) / 4.0) * _f32(n)) + 1e-10))) * 4
            for p in range(per // 4):
                d = hashlib.md5(("%s-%d" % (name, p)).encode()).digest()
                for x in range(4):
                    pts.append((struct.unpack("<I", d[4 * x:4 * x + 4])[0], i))
        pts.sort()
        self.values = [v for v, _ in pts]
        self.index = [i for _, i in pts]

    def server_for(self, key):
        if self.n == 1 or not key:
            return 0
        if isinstance(key, str):
            key = key.encode()
        h = struct.unpack("<I", hashlib.md5(key).digest()[:4])[0]
        i = bisect.bisect_left(self.values, h)
        return self.index[0 if i == len(self.values) else i]


def ketama_name(host, port):
    return host if port == 11211 else "%s:%d" % (host, port)


# ----------------------------------------------------------------- client

class Client:
    """A blocking memcached text-protocol client with a deadline per reply."""

    def __init__(self, port, host=HOST, timeout=10.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server (have %r)" % self.buf[-100:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def data(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server in a value")
            self.buf += chunk
        value, self.buf = self.buf[:n], self.buf[n + 2:]
        return value

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.line()

    def store(self, verb, key, value, flags=0, exptime=0, cas=None, noreply=False):
        if isinstance(value, str):
            value = value.encode()
        extra = b" %d" % cas if cas is not None else b""
        nr = b" noreply" if noreply else b""
        self.send(b"%s %s %d %d %d%s%s\r\n%s\r\n" % (verb, key.encode(), flags, exptime,
                                                   len(value), extra, nr, value))
        return None if noreply else self.line()

    def set(self, key, value, flags=0, exptime=0):
        return self.store(b"set", key, value, flags, exptime)

    def values(self):
        """Reads VALUE blocks up to END: {key: (flags, value, cas or None)}."""
        out = {}
        order = []
        while True:
            line = self.line()
            if line == b"END":
                self.order = order
                return out
            parts = line.split(b" ")
            if parts[0] != b"VALUE":
                raise AssertionError("expected VALUE or END, got %r" % line)
            key = parts[1].decode()
            value = self.data(int(parts[3]))
            out[key] = (int(parts[2]), value, int(parts[4]) if len(parts) > 4 else None)
            order.append(key)

    def get_many(self, keys, verb=b"get"):
        self.send(verb + b" " + b" ".join(k.encode() for k in keys) + b"\r\n")
        return self.values()

    def get(self, key):
        v = self.get_many([key])
        return v[key][1] if key in v else None

    def gets(self, key):
        v = self.get_many([key], b"gets")
        return (v[key][1], v[key][2]) if key in v else (None, None)

    def stats(self, sub=b""):
        self.send(b"stats" + (b" " + sub if sub else b"") + b"\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            if not line.startswith(b"STAT "):
                raise AssertionError("stats %r: %r" % (sub, line))
            parts = line.decode().split(" ", 2)
            out[parts[1]] = parts[2] if len(parts) > 2 else ""

    def meta(self, line, value=None):
        """A meta command; returns (reply line, value or None)."""
        self.send(line + b"\r\n" + (value + b"\r\n" if value is not None else b""))
        head = self.line()
        if head.startswith(b"VA "):
            return head, self.data(int(head.split(b" ")[1]))
        return head, None


# ------------------------------------------------------------------- the pool

class Pool:
    """n memcached servers on free loopback ports (weights optional)."""

    def __init__(self, n=2, weights=None, extra=()):
        self.weights = list(weights or [1] * n)
        self.servers = []
        self.extra = list(extra)
        try:
            for _ in range(n):
                self.servers.append(fixture.Server(MEMCACHED, self.extra, threads=2,
                                                   name="memcached").start())
        except Exception:
            self.stop()
            raise

    @property
    def ports(self):
        return [s.port for s in self.servers]

    def spec(self, ports=None):
        ports = ports or self.ports
        return ",".join("%s:%d%s" % (HOST, p, ":%d" % w if w != 1 else "")
                        for p, w in zip(ports, self.weights))

    def ring(self, ports=None):
        ports = ports or self.ports
        return Ring([(ketama_name(HOST, p), w) for p, w in zip(ports, self.weights)])

    def owner(self, key, ports=None):
        return self.servers[self.ring(ports).server_for(key)]

    def direct(self, key):
        """A client connected to the server that owns key."""
        return Client(self.owner(key).port)

    def total(self, stat):
        n = 0
        for s in self.servers:
            if s.alive():
                n += int(dict(s.stats()).get(stat, "0"))
        return n

    def revive(self, i, deadline=10.0):
        """Starts a fresh (empty) memcached on server i's port after kill(i)."""
        old = self.servers[i]
        if old.errfile is not None:
            old.errfile.close()
            old.errfile = None
        srv = fixture.Server(MEMCACHED, self.extra, threads=2, name="memcached")
        end = time.monotonic() + deadline
        while True:
            srv.port = old.port
            srv.errfile = tempfile.TemporaryFile()
            srv.proc = subprocess.Popen(srv.argv(), stdin=subprocess.DEVNULL,
                                        stdout=srv.errfile, stderr=srv.errfile)
            try:
                srv.wait_ready(5.0)
                break
            except fixture.ServerError:
                srv.stop()
                srv.errfile.close()
                if time.monotonic() > end:
                    raise AssertionError("memcached did not come back on port %d" % old.port)
                time.sleep(0.1)  # the port may linger a moment
        self.servers[i] = srv
        return srv

    def kill(self, i):
        """SIGKILL: the server vanishes without a goodbye, and its data with it."""
        s = self.servers[i]
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(timeout=5)

    def stop(self):
        # memcached takes a second to leave after SIGTERM: signal all first.
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
        for s in self.servers:
            try:
                s.stop()
            finally:
                if s.errfile is not None:
                    s.errfile.close()
                    s.errfile = None


class Node(fixture.Server):
    """A fleetcached in two-level mode, started by node(); leaving the with
    block stops it and fails unless it exited 0 (a sanitizer report or a
    crash on the way out is a failure of the case)."""

    def __enter__(self):
        # node() started it already: fixture.Server's __enter__ would start
        # a second process and lose the first.
        return self if self.alive() else self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        err = self.stderr(1500)
        if self.errfile is not None:
            self.errfile.close()
            self.errfile = None
        if rc != 0 and exc[0] is None:
            raise AssertionError("fleetcached exited %s: %s" % (rc, err.strip()[-1200:]))
        return False


def node(binary, pool_spec, extra=(), threads=2):
    return Node(binary, ["--l2", pool_spec] + list(extra), threads=threads,
                name="fleetcached").start()


def wait_until(fn, timeout, step=0.02):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# ------------------------------------------------------------------- the relay

class Relay:
    """A TCP relay in front of one server that holds every chunk the client
    side sends for delay seconds (and every chunk of replies for delay_back)
    before passing it on, and counts the meta get lines it carries per key
    (keys given up front)."""

    def __init__(self, target_port, delay=0.3, watch=(), delay_back=0.0, gated=False):
        self.target = target_port
        self.delay = delay
        self.delay_back = delay_back
        # gated: requests wait until open() (a test opens it once every
        # client it started has sent, so their misses overlap for sure).
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.watch = [k.encode() if isinstance(k, str) else k for k in watch]
        self.counts = {k: 0 for k in self.watch}
        self.mg_lines = 0
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _count(self, data):
        with self.lock:
            for line in data.split(b"\r\n"):
                if line.startswith(b"mg "):
                    self.mg_lines += 1
                    parts = line.split(b" ")
                    if len(parts) > 1 and parts[1] in self.counts:
                        self.counts[parts[1]] += 1

    def _pipe(self, src, dst, delay, count):
        src.settimeout(0.2)
        try:
            while not self.stopping:
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if count:
                    self._count(data)
                    self.gate.wait(30)
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection((HOST, self.target), timeout=5)
            except OSError:
                c.close()
                continue
            self.socks += [c, up]
            threading.Thread(target=self._pipe, args=(c, up, self.delay, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, c, self.delay_back, False),
                             daemon=True).start()

    def close_gate(self):
        self.gate.clear()

    def open_gate(self):
        self.gate.set()

    def stop(self):
        self.stopping = True
        self.gate.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(timeout=2)


# --------------------------------------------------------------- the fake L2

class FakeL2:
    """A server that reads request lines (and ms data blocks) and answers
    each with what answer(line) returns (bytes to send, or None to close the
    connection, optionally after sending a prefix: ("close", prefix))."""

    def __init__(self, answer):
        self.answer = answer
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        self.lines = []
        self.conns = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        try:
            while not self.stopping:
                while b"\r\n" not in buf:
                    try:
                        data = c.recv(65536)
                    except socket.timeout:
                        if self.stopping:
                            return
                        continue
                    if not data:
                        return
                    buf += data
                line, buf = buf.split(b"\r\n", 1)
                parts = line.split(b" ")
                if parts[0] == b"ms" and len(parts) > 2:
                    need = int(parts[2]) + 2
                    while len(buf) < need:
                        data = c.recv(65536)
                        if not data:
                            return
                        buf += data
                    buf = buf[need:]
                self.lines.append(line)
                out = self.answer(line)
                if out is None:
                    return
                if isinstance(out, tuple):
                    c.sendall(out[1])
                    return
                c.sendall(out)
        except OSError:
            pass
        finally:
            c.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        self.thread.join(timeout=2)


def stampede(clients, request, relays=(), settle=0.3, deadline=30.0):
    """Every client sends request at once, then reads its reply: a get's
    values, or an mg's (head, value). With gated relays, their gates stay
    closed until every client has sent and settle seconds more have passed,
    so all the misses are in flight together however slow the machine.
    Returns [("ok", reply) or ("error", why)] in client order."""
    n = len(clients)
    results = [("error", "no answer")] * n
    sent = [0]
    lock = threading.Lock()
    go = threading.Barrier(n)
    for r in relays:
        r.close_gate()

    def one(i):
        c = clients[i]
        try:
            go.wait(deadline)
            c.send(request)
            with lock:
                sent[0] += 1
            if request.startswith(b"mg "):
                head = c.line()
                value = c.data(int(head.split(b" ")[1])) if head.startswith(b"VA ") else None
                results[i] = ("ok", (head, value))
            else:
                results[i] = ("ok", c.values())
        except Exception as e:  # reported by the caller
            results[i] = ("error", repr(e))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sent[0] == n, deadline)
        time.sleep(settle)
    finally:
        for r in relays:
            r.open_gate()
    for t in threads:
        t.join(deadline)
    return results


def opaque_of(line):
    """The O token of a meta request line, as bytes (b"" when absent)."""
    for tok in line.split(b" ")[2:]:
        if tok.startswith(b"O"):
            return tok
    return b""
