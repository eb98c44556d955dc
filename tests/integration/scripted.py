# Scripted cases: parses tests/integration/cases/*.txt and plays them against
# a server. The format is described in cases/README; in short, a case is a
# list of steps (send, recv, closed, sleep, poll, stats ...) played on one or
# more connections, and every expected reply is what memcached 1.6.18 sent.
# Reads are bounded by deadlines; a mismatch fails fast when it can.

import os
import re
import socket
import time

import fixture

RECV_TIMEOUT = 3.0
CLOSE_TIMEOUT = 3.0
MAX_SLEEP = 5.0
MAX_POLL = 8.0
STATS_TIMEOUT = 2.0

# stats that need a server of their own: lazy flushes and the LRU crawler
# make them drift on a shared one
FRESH_STATS = {"curr_items", "total_items", "bytes", "evictions", "reclaimed",
               "expired_unfetched", "evicted_unfetched", "curr_connections",
               "total_connections", "cmd_flush"}


class CaseError(Exception):
    pass


# ---------------------------------------------------------------- escapes

_ESC = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\",
        "s": b" ", "$": b"$"}


def tokenize(text):
    """Splits an escaped string into segments: ('lit', bytes), ('var', name),
    ('any',). Escapes: \\r \\n \\t \\0 \\\\ \\s (space) \\$ \\xHH;
    $[chunk*N] repeats chunk N times; ${name} is a captured number;
    ${*} is any run of bytes up to the next CR or LF."""
    segs, lit, i = [], bytearray(), 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            n = text[i + 1] if i + 1 < len(text) else ""
            if n == "x":
                lit.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            if n not in _ESC:
                raise CaseError("bad escape \\%s in %r" % (n, text))
            lit += _ESC[n]
            i += 2
            continue
        if c == "$" and text[i + 1:i + 2] == "[":
            close = text.index("]", i)
            chunk, _, count = text[i + 2:close].rpartition("*")
            piece = b"".join(s[1] for s in tokenize(chunk))
            lit += piece * int(count)
            i = close + 1
            continue
        if c == "$" and text[i + 1:i + 2] == "{":
            close = text.index("}", i)
            name = text[i + 2:close]
            if lit:
                segs.append(("lit", bytes(lit)))
                lit = bytearray()
            segs.append(("any",) if name == "*" else ("var", name))
            i = close + 1
            continue
        lit += c.encode("utf-8")
        i += 1
    if lit:
        segs.append(("lit", bytes(lit)))
    return segs


def unescape(text, env):
    out = b""
    for seg in tokenize(text):
        if seg[0] == "lit":
            out += seg[1]
        elif seg[0] == "var":
            if seg[1] not in env:
                raise CaseError("variable ${%s} used before it was captured" % seg[1])
            out += env[seg[1]]
        else:
            raise CaseError("${*} is for replies only")
    return out


def escape(data, limit=None):
    out = []
    for b in data:
        ch = chr(b)
        if ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append("\\x%02x" % b)
    s = "".join(out)
    if limit and len(s) > limit:
        s = s[:limit // 2] + "...(%d bytes)..." % len(data) + s[-limit // 2:]
    return s


class Pattern:
    """An expected reply: literal bytes with captured numbers and wildcards."""

    def __init__(self, text):
        self.text = text
        self.segs = tokenize(text)
        self.names = []
        self.head = self.segs[0][1] if self.segs and self.segs[0][0] == "lit" else b""
        self.literal = all(s[0] == "lit" for s in self.segs)
        if self.literal:
            self.head = b"".join(s[1] for s in self.segs)
            self.rx = None
            return
        rx = b""
        for seg in self.segs:
            if seg[0] == "lit":
                rx += re.escape(seg[1])
            elif seg[0] == "var":
                rx += rb"(\d+)"
                self.names.append(seg[1])
            else:
                rx += rb"[^\r\n]*"
                self.names.append(None)
        self.rx = re.compile(rx, re.S)

    def match(self, buf, env):
        """Returns (consumed, captures) or None; checks already-bound names."""
        if self.literal:
            return (len(self.head), {}) if buf.startswith(self.head) else None
        m = self.rx.match(buf)
        if not m:
            return None
        caps = {}
        for name, val in zip(self.names, m.groups()):
            if name is None:
                continue
            if name in env and env[name] != val:
                return None
            if name in caps and caps[name] != val:
                return None
            caps[name] = val
        return m.end(), caps

    def hopeless(self, buf):
        """True when no further bytes can make buf match: the literal head differs."""
        n = min(len(buf), len(self.head))
        if buf[:n] != self.head[:n]:
            return True
        if self.literal:
            return len(buf) >= len(self.head) and not buf.startswith(self.head)
        return False


# ---------------------------------------------------------------- parsing

class Case:
    def __init__(self, name, path, line):
        self.name = name
        self.path = path
        self.line = line
        self.steps = []          # (kind, arg, lineno)
        self.flags = None        # None: the file's flags
        self.fresh = False
        self.nosync = False
        self.nodiff = False
        self.differs = None      # why fleetcached differs from memcached on purpose

    def stats_names(self):
        names = set()
        for kind, arg, _ in self.steps:
            if kind == "stats":
                names.update(n for n, _, _ in arg)
        return names


def parse_stats(text):
    out = []
    toks = text.split()
    if len(toks) % 2:
        raise CaseError("stats: wants pairs NAME +N|-N|=N, got %r" % text)
    for name, want in zip(toks[::2], toks[1::2]):
        if want[0] not in "+-=":
            raise CaseError("stats: %s wants +N, -N or =N" % name)
        op = "=" if want[0] == "=" else "+"
        val = int(want[1:]) if op == "=" else int(want)
        out.append((name, op, val))
    return out


def parse_file(path):
    """Returns (file_flags, [Case])."""
    file_flags = []
    cases = []
    cur = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for no, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        key, sep, val = line.partition(":")
        key = key.strip()
        val = val[1:] if val.startswith(" ") else val
        where = "%s:%d" % (os.path.basename(path), no)
        if not sep and key in ("fresh", "nosync", "closed", "nodiff", "exits"):
            val = ""
        elif not sep:
            raise CaseError("%s: cannot parse %r" % (where, line))
        if key == "case":
            cur = Case(val.strip(), path, no)
            cases.append(cur)
            continue
        if key == "server" and cur is None:
            file_flags = val.split()
            continue
        if cur is None:
            raise CaseError("%s: %r before the first case" % (where, key))
        try:
            if key == "server":
                cur.flags = val.split()
            elif key == "fresh":
                cur.fresh = True
            elif key == "nosync":
                cur.nosync = True
            elif key == "nodiff":
                cur.nodiff = True
            elif key == "differs":
                if not val.strip():
                    raise CaseError("differs: wants the reason")
                cur.differs = val.strip()
            elif key in ("send", "conn", "sleep", "distinct", "comment"):
                if key == "send":
                    tokenize(val)
                cur.steps.append((key, val, no))
            elif key == "recv":
                pat = val
                if cur.steps and cur.steps[-1][0] == "recv":
                    pat = cur.steps.pop()[1] + val
                cur.steps.append(("recv", pat, no))
            elif key in ("closed", "exits"):
                cur.steps.append((key, None, no))
            elif key == "poll":
                secs, send, recv = [p.strip() for p in val.split("|", 2)]
                if float(secs) > MAX_POLL:
                    raise CaseError("poll longer than %ss" % MAX_POLL)
                cur.steps.append(("poll", (float(secs), send, recv), no))
            elif key == "stats":
                cur.steps.append(("stats", parse_stats(val), no))
            else:
                raise CaseError("unknown directive %r" % key)
        except (CaseError, ValueError) as e:
            raise CaseError("%s: %s" % (where, e))
    for c in cases:
        if c.stats_names() & FRESH_STATS:
            c.fresh = True
        if any(k == "send" and ("shutdown" in v) for k, v, _ in c.steps):
            c.fresh = True
    return file_flags, cases


def load_corpus(casedir):
    files = sorted(f for f in os.listdir(casedir) if f.endswith(".txt"))
    return [(f, *parse_file(os.path.join(casedir, f))) for f in files]


# ---------------------------------------------------------------- playing

class Conn:
    def __init__(self, srv):
        self.sock = srv.connect()
        self.buf = b""
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def fill(self, deadline):
        """One recv into buf; False on timeout; sets closed on EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(min(left, 0.5))
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return True
        except ConnectionResetError:
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True


def expect(conn, pat, env, timeout=RECV_TIMEOUT):
    """Consumes one reply matching pat from conn; returns the bytes matched."""
    deadline = time.monotonic() + timeout
    while True:
        if pat.literal and len(conn.buf) < len(pat.head) and pat.head.startswith(conn.buf):
            if conn.closed or not conn.fill(deadline):
                break
            continue
        m = pat.match(conn.buf, env)
        if m:
            used, caps = m
            env.update(caps)
            got, conn.buf = conn.buf[:used], conn.buf[used:]
            return got
        if pat.hopeless(conn.buf):
            break
        if conn.closed or not conn.fill(deadline):
            break
    why = "connection closed, " if conn.closed else ""
    raise CaseError("%sexpected %s got %s" % (
        why, escape(pat.head, 300) if pat.literal else pat.text[:300],
        escape(conn.buf, 300)))


def expect_closed(conn, timeout=CLOSE_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not conn.closed:
        if conn.buf:
            raise CaseError("expected the connection closed, got %s" % escape(conn.buf, 300))
        if not conn.fill(deadline) and not conn.closed:
            raise CaseError("expected the connection closed; still open after %.0fs" % timeout)
    if conn.buf:
        raise CaseError("expected the connection closed, got %s first" % escape(conn.buf, 300))


def stats_dict(sock):
    return dict(fixture.stats_on(sock))


class Player:
    """Plays one case on one server; returns a transcript (list of bytes) of
    every reply it matched, for the differential run."""

    def __init__(self, srv, control):
        self.srv = srv
        self.control = control
        self.conns = {}
        self.env = {}
        self.transcript = []

    def conn(self, name):
        if name not in self.conns:
            self.conns[name] = Conn(self.srv)
        return self.conns[name]

    def play(self, case):
        base = stats_dict(self.control) if case.stats_names() else {}
        cur = "a"
        try:
            for kind, arg, no in case.steps:
                try:
                    self.step(kind, arg, cur, base)
                except CaseError as e:
                    raise CaseError("line %d: %s" % (no, e))
                except OSError as e:
                    raise CaseError("line %d: %s: %s" % (no, type(e).__name__, e))
                if kind == "conn":
                    cur = arg.strip()
            if not case.nosync:
                for name, c in self.conns.items():
                    if c.closed:
                        continue
                    try:
                        c.sock.sendall(b"version\r\n")
                        expect(c, Pattern(r"VERSION ${*}\r\n"), self.env)
                    except CaseError as e:
                        raise CaseError("end of case (conn %s): unexpected reply bytes: %s" % (name, e))
                    except OSError as e:
                        raise CaseError("end of case (conn %s): %s" % (name, e))
        finally:
            for c in self.conns.values():
                c.close()
        return self.transcript

    def step(self, kind, arg, cur, base):
        if kind == "conn":
            self.conn(arg.strip())
        elif kind == "send":
            c = self.conn(cur)
            c.sock.sendall(unescape(arg, self.env))
        elif kind == "recv":
            self.transcript.append(expect(self.conn(cur), Pattern(arg), self.env))
        elif kind == "closed":
            expect_closed(self.conn(cur))
            self.transcript.append(b"<closed>")
        elif kind == "exits":
            try:
                rc = self.srv.proc.wait(timeout=5.0)
            except Exception:
                raise CaseError("server still running 5s after shutdown")
            self.transcript.append(b"<exit %d>" % rc)
        elif kind == "sleep":
            time.sleep(min(float(arg), MAX_SLEEP))
        elif kind == "comment":
            pass
        elif kind == "poll":
            secs, send, recv = arg
            pat = Pattern(recv)
            deadline = time.monotonic() + secs
            last = b""
            for _ in range(1000):
                with self.srv.connect() as s:
                    s.sendall(unescape(send, self.env))
                    c = Conn.__new__(Conn)
                    c.sock, c.buf, c.closed = s, b"", False
                    try:
                        self.transcript.append(expect(c, pat, self.env, timeout=1.0))
                        break
                    except CaseError:
                        last = c.buf
                if time.monotonic() > deadline:
                    raise CaseError("poll: %s not seen within %.1fs; last %s" % (
                        recv, secs, escape(last, 200)))
                time.sleep(0.1)
        elif kind == "distinct":
            names = arg.split()
            vals = [self.env.get(n) for n in names]
            if None in vals or len(set(vals)) != len(vals):
                raise CaseError("distinct %s: values %r" % (names, vals))
        elif kind == "stats":
            self.check_stats(arg, base)
        else:
            raise CaseError("unknown step %s" % kind)

    def check_stats(self, wants, base):
        deadline = time.monotonic() + STATS_TIMEOUT
        while True:
            now = stats_dict(self.control)
            bad = []
            for name, op, val in wants:
                if name not in now:
                    bad.append("%s missing" % name)
                    continue
                got = int(now[name])
                if op == "=":
                    if got != val:
                        bad.append("%s expected =%d got %d" % (name, val, got))
                else:
                    d = got - int(base.get(name, 0))
                    if d != val:
                        bad.append("%s expected %+d got %+d" % (name, val, d))
            if not bad:
                return
            if time.monotonic() > deadline:
                raise CaseError("stats: " + "; ".join(bad))
            time.sleep(0.05)


class ServerPool:
    """Servers for one case file: a shared one for its flags, fresh ones on demand."""

    def __init__(self, binary, flags, name):
        self.binary = binary
        self.flags = flags
        self.name = name
        self.shared = None
        self.control = None

    def get(self, case):
        flags = self.flags if case.flags is None else case.flags
        if case.fresh or case.flags is not None:
            label = "%s (%s)" % (case.name, " ".join(flags) or "default flags")
            return fixture.Server(self.binary, flags, name=self.name, label=label).start(), True
        if self.shared is None or not self.shared.alive():
            self.close()
            label = "shared server of %s" % os.path.basename(case.path)
            self.shared = fixture.Server(self.binary, flags, name=self.name, label=label).start()
        return self.shared, False

    def close(self):
        if self.shared is not None:
            self.shared.stop_async()
            self.shared = None


def run_case(pool, case):
    """Plays case on a server from pool; returns the transcript. Raises CaseError."""
    srv, own = pool.get(case)
    try:
        with srv.connect() as control:
            if not own:
                control.sendall(b"flush_all\r\n")
                fixture.recv_until(control, b"OK\r\n", 3.0)
            try:
                return Player(srv, control).play(case)
            except CaseError as e:
                if not srv.alive():
                    raise CaseError("%s; server died (rc %s): %s" % (e, srv.proc.returncode, srv.stderr(800)))
                raise
    finally:
        if own:
            srv.stop_async()
