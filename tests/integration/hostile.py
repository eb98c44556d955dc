# Hostile input: a 1 MB line without a newline, a flood of pipelined commands
# whose replies are never read, values cut off by a disconnect, thousands of
# connections opened and dropped, garbage bytes. After each the server must
# still answer `version`, its RSS must stay bounded and curr_connections must
# return to the baseline (every connection and its references released).
# Every loop is bounded in count and time.

import os
import random
import socket
import time

import fixture
from fixture import recv_until

RSS_LIMIT_MB = 200
RSS_LIMIT_ASAN_MB = 700   # ASan's shadow memory and quarantine ride on top


def rss_limit_mb(binary):
    env = os.environ.get("FC_RSS_LIMIT_MB")
    if env:
        return int(env)
    try:
        with open(binary, "rb") as f:
            if b"__asan_init" in f.read():
                return RSS_LIMIT_ASAN_MB
    except OSError:
        pass
    return RSS_LIMIT_MB


def healthy(srv, baseline, limit_mb, what):
    if not srv.alive():
        raise AssertionError("%s: server died (rc %s): %s" % (what, srv.proc.returncode, srv.stderr(800)))
    with srv.connect() as c:
        c.sendall(b"version\r\n")
        r = recv_until(c, b"\r\n", 5)
        if not r.startswith(b"VERSION "):
            raise AssertionError("%s: version answered %r" % (what, r[:100]))
        deadline = time.monotonic() + 8
        while True:
            st = dict(fixture.stats_on(c))
            cur = int(st["curr_connections"])
            if cur <= baseline + 1:     # +1: this connection
                break
            if time.monotonic() > deadline:
                raise AssertionError("%s: curr_connections %d, baseline %d" % (what, cur, baseline))
            time.sleep(0.05)
    rss = srv.rss_kb() // 1024
    if rss > limit_mb:
        raise AssertionError("%s: RSS %d MB over %d MB" % (what, rss, limit_mb))


def send_bounded(sock, data, seconds):
    """Sends as much of data as the server takes within seconds; returns the
    count sent and whether the server closed or reset the connection."""
    sock.setblocking(False)
    sent, end = 0, time.monotonic() + seconds
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < end:
        try:
            n = sock.send(view[sent:sent + 65536])
            sent += n
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            return sent, True
    return sent, False


def closed_within(sock, seconds):
    sock.settimeout(seconds)
    end = time.monotonic() + seconds
    got = b""
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, got
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def long_line(srv):
    with srv.connect() as c:
        sent, reset = send_bounded(c, b"x" * (1 << 20), 5)
        closed, got = (True, b"") if reset else closed_within(c, 5)
        if not closed:
            raise AssertionError("1 MB line without newline: still open after %d bytes; memcached closes"
                                 % sent)
        if got:
            raise AssertionError("1 MB line: expected a silent close (as memcached), got %r" % got[:100])


def long_get_line(srv):
    # a get line may be long (a big multiget): memcached keeps reading it
    with srv.connect() as c:
        keys = b" ".join(b"key%d" % i for i in range(100000))
        sent, reset = send_bounded(c, b"get " + keys + b"\r\n", 10)
        if reset or sent < len(keys) + 6:
            raise AssertionError("multiget of 100000 keys (%d bytes): only %d sent" % (len(keys), sent))
        c.setblocking(True)
        r = recv_until(c, b"END\r\n", 10)
        if r != b"END\r\n":
            raise AssertionError("multiget: %r" % r[:100])


def flood_unread(srv):
    with srv.connect() as c:
        c.sendall(b"set big 0 0 100000\r\n" + b"b" * 100000 + b"\r\n")
        recv_until(c, b"STORED\r\n", 5)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent, _ = send_bounded(c, b"get big\r\n" * 2000000, 4)
    # and one flood of small commands, then read only part of the replies
    with srv.connect() as c:
        send_bounded(c, b"set s 0 0 1\r\nx\r\nget s\r\n" * 500000, 4)
        c.setblocking(True)
        c.settimeout(2)
        try:
            c.recv(1000)
        except socket.timeout:
            pass
    return sent


def half_values(srv):
    socks = []
    try:
        for i in range(200):
            s = srv.connect()
            s.sendall(b"set half%d 0 0 100000\r\n" % i + b"h" * 50000)
            socks.append(s)
    finally:
        for s in socks:
            s.close()
    with srv.connect() as c:
        c.sendall(b"get half0 half199\r\n")
        r = recv_until(c, b"END\r\n", 5)
        if r != b"END\r\n":
            raise AssertionError("a half-sent value was stored: %r" % r[:80])


def many_connections(srv, total=2000, batch=250):
    opened = 0
    rnd = random.Random(5)
    deadline = time.monotonic() + 60
    while opened < total and time.monotonic() < deadline:
        socks = []
        try:
            for _ in range(batch):
                s = srv.connect()
                socks.append(s)
                opened += 1
                r = rnd.random()
                if r < 0.3:
                    s.sendall(b"get k\r\n")
                elif r < 0.5:
                    s.sendall(b"set k 0 0 10\r\nabc")        # cut off
                elif r < 0.6:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        finally:
            for s in socks:
                s.close()          # with linger 0 where set: a reset
    if opened < total:
        raise AssertionError("only %d connections in 60s" % opened)


def garbage(srv):
    rnd = random.Random(11)
    for i in range(20):
        with srv.connect() as c:
            blob = bytes(rnd.randrange(256) for _ in range(rnd.choice([10, 1000, 20000])))
            if blob[0] == 0x80:     # the binary protocol's magic: keep this to text garbage
                blob = b"x" + blob
            send_bounded(c, blob + (b"\r\n" if i % 2 else b""), 2)
            closed_within(c, 0.2)


HOSTILE = [
    ("line_of_1mb_without_newline_closes", long_line),
    ("multiget_line_of_1mb_is_served", long_get_line),
    ("flood_of_pipelined_commands_unread", flood_unread),
    ("half_sent_values_then_disconnect", half_values),
    ("2000_connections_opened_and_dropped", many_connections),
    ("garbage_bytes", garbage),
]


def run(rep, ctx):
    limit = rss_limit_mb(ctx["binary"])
    holder = {}

    def start():
        holder["srv"] = fixture.Server(ctx["binary"], ["-c", "4096"], name=ctx["kind"]).start()
        with holder["srv"].connect() as c:
            holder["base"] = int(dict(fixture.stats_on(c))["curr_connections"]) - 1

    try:
        for name, fn in HOSTILE:
            def case(fn=fn, name=name):
                if "srv" not in holder or not holder["srv"].alive():
                    start()
                srv = holder["srv"]
                fn(srv)
                healthy(srv, holder["base"], limit, name)
            rep.case("hostile/" + name, case)
    finally:
        if "srv" in holder:
            holder["srv"].stop()
