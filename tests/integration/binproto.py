# The binary protocol, differentially: the same request bytes to Debian's
# memcached 1.6.18 and to the server under test, every response compared
# byte for byte (the VERSION body aside), script by script. Then what a byte
# script cannot say: a connection is binary by its first byte, malformed
# requests close it, a huge value is refused and swallowed, the counters
# move as memcached's, and real binary clients (memcslap -b, php-memcached
# in binary mode, npm memjs) work end to end.

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import fixture
from fixture import recv_until

REQ, RES = 0x80, 0x81
OP = dict(GET=0x00, SET=0x01, ADD=0x02, REPLACE=0x03, DELETE=0x04, INCR=0x05, DECR=0x06,
          QUIT=0x07, FLUSH=0x08, GETQ=0x09, NOOP=0x0a, VERSION=0x0b, GETK=0x0c, GETKQ=0x0d,
          APPEND=0x0e, PREPEND=0x0f, STAT=0x10, SETQ=0x11, ADDQ=0x12, REPLACEQ=0x13,
          DELETEQ=0x14, INCRQ=0x15, DECRQ=0x16, QUITQ=0x17, FLUSHQ=0x18, APPENDQ=0x19,
          PREPENDQ=0x1a, VERBOSITY=0x1b, TOUCH=0x1c, GAT=0x1d, GATQ=0x1e, SASL_LIST=0x20,
          SASL_AUTH=0x21, SASL_STEP=0x22, GATK=0x23, GATKQ=0x24)
NEVER = 0xffffffff   # incr/decr expiry that means "do not create"


def req(op, key=b"", ext=b"", value=b"", cas=0, opaque=0, magic=REQ, keylen=None, bodylen=None):
    op = OP[op] if isinstance(op, str) else op
    kl = len(key) if keylen is None else keylen
    bl = len(ext) + len(key) + len(value) if bodylen is None else bodylen
    return struct.pack(">BBHBBHIIQ", magic, op, kl, len(ext), 0, 0, bl, opaque, cas) + ext + key + value


def store_ext(flags=0, exptime=0):
    return struct.pack(">II", flags, exptime)


def arith_ext(delta, initial=0, exptime=NEVER):
    return struct.pack(">QQI", delta, initial, exptime)


def parse(data):
    """Splits response bytes into (header fields, extras, key, value) tuples."""
    out = []
    while len(data) >= 24:
        magic, op, kl, el, dt, status, bl, opaque, cas = struct.unpack(">BBHBBHIIQ", data[:24])
        body = data[24:24 + bl]
        out.append(dict(magic=magic, op=op, status=status, opaque=opaque, cas=cas,
                        ext=body[:el], key=body[el:el + kl], value=body[el + kl:]))
        data = data[24 + bl:]
    return out


def read_responses(sock, until_opaque, timeout=5.0):
    """Reads responses until one carries until_opaque (the sync NOOP)."""
    buf = b""
    end = time.monotonic() + timeout
    while True:
        pos, seen = 0, False
        while len(buf) - pos >= 24:
            bl, opaque = struct.unpack(">II", buf[pos + 8:pos + 16])
            if len(buf) - pos < 24 + bl:
                break
            if opaque == until_opaque:
                return buf[:pos + 24 + bl]
            pos += 24 + bl
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("no sync response, got %r" % buf[-200:])
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return buf + b"<closed>"
        buf += chunk


def read_until_closed(sock, timeout=5.0):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("not closed; got %r" % buf[:200])
        except ConnectionResetError:
            return buf
        if not chunk:
            return buf
        buf += chunk
    raise AssertionError("not closed; got %r" % buf[:200])


SYNC = 0xfeedf00d


def exchange(sock, data):
    """Sends data and a NOOP; returns every response up to the NOOP's."""
    sock.sendall(data + req("NOOP", opaque=SYNC))
    return read_responses(sock, SYNC)


def normalize(data):
    """The VERSION body names the server: blank it."""
    out, pos = b"", 0
    while len(data) - pos >= 24:
        op = data[pos + 1]
        bl = struct.unpack(">I", data[pos + 8:pos + 12])[0]
        piece = data[pos:pos + 24 + bl]
        if op == OP["VERSION"] and piece[6:8] == b"\0\0":
            piece = piece[:8] + struct.pack(">I", 1) + piece[12:24] + b"V"
        out += piece
        pos += 24 + bl
    return out + data[pos:]


# Each script is a list of request batches; every batch is followed by a
# NOOP and its responses compared whole. Opaques are distinct so that a
# response answering the wrong request shows.
SCRIPTS = {
    "get_family_on_a_miss": [
        req("GET", b"nokey", opaque=1), req("GETK", b"nokey", opaque=2),
        req("GETQ", b"nokey", opaque=3) + req("GETKQ", b"nokey", opaque=4),
    ],
    "set_then_the_get_family": [
        req("SET", b"k", store_ext(0xdeadbeef), b"hello", opaque=10),
        req("GET", b"k", opaque=11), req("GETK", b"k", opaque=12),
        req("GETQ", b"k", opaque=13) + req("GETKQ", b"k", opaque=14),
        req("SET", b"empty", store_ext(), b"", opaque=15) + req("GET", b"empty", opaque=16),
    ],
    "add_replace_and_their_quiet_forms": [
        req("ADD", b"a", store_ext(1), b"one", opaque=20), req("ADD", b"a", store_ext(), b"x", opaque=21),
        req("REPLACE", b"r", store_ext(), b"x", opaque=22),
        req("REPLACE", b"a", store_ext(2), b"two", opaque=23) + req("GET", b"a", opaque=24),
        req("ADDQ", b"q", store_ext(), b"v", opaque=25) + req("ADDQ", b"q", store_ext(), b"v", opaque=26),
        req("REPLACEQ", b"nope", store_ext(), b"v", opaque=27) + req("SETQ", b"s", store_ext(), b"v", opaque=28),
        req("GETK", b"q", opaque=29) + req("GETK", b"s", opaque=30),
    ],
    "set_with_a_cas": [
        req("SET", b"c", store_ext(), b"v1", opaque=40), req("GETK", b"c", opaque=41),
        req("SET", b"c", store_ext(), b"v2", cas=999999, opaque=42),
        req("SET", b"missing", store_ext(), b"v", cas=5, opaque=43),
        req("ADD", b"c", store_ext(), b"v", cas=999999, opaque=44),
    ],
    "append_and_prepend": [
        req("SET", b"s", store_ext(7), b"mid", opaque=50),
        req("APPEND", b"s", b"", b"-end", opaque=51), req("PREPEND", b"s", b"", b"start-", opaque=52),
        req("GET", b"s", opaque=53), req("APPEND", b"nope", b"", b"x", opaque=54),
        req("APPENDQ", b"s", b"", b"!", opaque=55) + req("PREPENDQ", b"nope", b"", b"x", opaque=56),
        req("GET", b"s", opaque=57),
    ],
    "delete_and_deleteq": [
        req("SET", b"d", store_ext(), b"v", opaque=60), req("DELETE", b"d", opaque=61),
        req("DELETE", b"d", opaque=62), req("DELETEQ", b"d", opaque=63),
        req("SET", b"d", store_ext(), b"v", opaque=64) + req("DELETEQ", b"d", opaque=65),
        req("GET", b"d", opaque=66),
    ],
    "incr_and_decr": [
        req("INCR", b"n", arith_ext(1), opaque=70),
        req("INCR", b"n", arith_ext(5, 100, 0), opaque=71),
        req("INCR", b"n", arith_ext(5, 100, 0), opaque=72),
        req("DECR", b"n", arith_ext(1000, 0, 0), opaque=73),
        req("INCR", b"n", arith_ext(2 ** 64 - 1), opaque=74),
        req("DECR", b"nope", arith_ext(1), opaque=75),
        req("SET", b"t", store_ext(), b"text", opaque=76) + req("INCR", b"t", arith_ext(1), opaque=77),
        req("INCRQ", b"n", arith_ext(10), opaque=78) + req("DECRQ", b"nope", arith_ext(1), opaque=79),
        req("GET", b"n", opaque=80),
        req("SET", b"big", store_ext(), b"18446744073709551615", opaque=81),
        req("INCR", b"big", arith_ext(1), opaque=82),
        req("DECR", b"big", arith_ext(1), opaque=83),
    ],
    "a_cas_gates_delete_incr_and_append": [
        req("SET", b"d", store_ext(), b"v", opaque=170),
        req("DELETE", b"d", cas=999, opaque=171), req("DELETE", b"d", cas=1, opaque=172),
        req("SET", b"n", store_ext(), b"5", opaque=173),
        req("INCR", b"n", arith_ext(1), cas=999, opaque=174),
        req("INCR", b"n", arith_ext(1), cas=2, opaque=175),
        req("SET", b"s", store_ext(), b"x", opaque=176),
        req("APPEND", b"s", b"", b"y", cas=999, opaque=177),
        req("APPEND", b"s", b"", b"y", cas=4, opaque=178), req("GET", b"s", opaque=179),
        req("DELETEQ", b"s", cas=999, opaque=180),
        req("INCR", b"missing", arith_ext(1, 3, 0), cas=5, opaque=181),
    ],
    "touch_and_gat": [
        req("SET", b"g", store_ext(3), b"val", opaque=90),
        req("TOUCH", b"g", struct.pack(">I", 100), opaque=91),
        req("TOUCH", b"nope", struct.pack(">I", 100), opaque=92),
        req("GAT", b"g", struct.pack(">I", 100), opaque=93),
        req("GATK", b"g", struct.pack(">I", 100), opaque=94),
        req("GAT", b"nope", struct.pack(">I", 100), opaque=95),
        req("GATK", b"nope", struct.pack(">I", 100), opaque=96),
        req("GATQ", b"nope", struct.pack(">I", 100), opaque=97) +
        req("GATKQ", b"nope", struct.pack(">I", 100), opaque=98) +
        req("GATQ", b"g", struct.pack(">I", 100), opaque=99),
        req("GAT", b"g", struct.pack(">I", 2 ** 32 - 1), opaque=100),
    ],
    "flush_and_flushq": [
        req("SET", b"f", store_ext(), b"v", opaque=110), req("FLUSH", opaque=111),
        req("GET", b"f", opaque=112),
        req("SET", b"f", store_ext(), b"v", opaque=113) + req("FLUSHQ", opaque=114) +
        req("GET", b"f", opaque=115),
        req("SET", b"f", store_ext(), b"v", opaque=116),
        req("FLUSH", ext=struct.pack(">I", 1000), opaque=117), req("GET", b"f", opaque=118),
    ],
    "version_noop_and_unknown_opcodes": [
        req("VERSION", opaque=120), req("NOOP", opaque=121),
        req(0x50, opaque=122), req("VERBOSITY", opaque=124),
        req(0xff, opaque=125),
    ],
    "sasl_without_sasl": [
        req("SASL_LIST", opaque=130),
        req("SASL_AUTH", b"PLAIN", b"", b"\0user\0pass", opaque=131),
        req("SASL_STEP", b"PLAIN", b"", b"more", opaque=132),
    ],
    "stat_sub_commands_that_answer_alike": [
        req("STAT", b"nosuchthing", opaque=140), req("STAT", b"detail on", opaque=141),
        req("STAT", b"detail off", opaque=142), req("STAT", b"detail bogus", opaque=143),
        req("STAT", b"reset", opaque=144),
    ],
    "large_values_and_a_too_large_one": [
        req("SET", b"L", store_ext(), b"x" * 200000, opaque=150), req("GET", b"L", opaque=151),
        req("SET", b"huge", store_ext(), b"y" * (2 * 1024 * 1024), opaque=152),
        req("SETQ", b"huge", store_ext(), b"y" * (2 * 1024 * 1024), opaque=153),
        req("GET", b"huge", opaque=154),
    ],
    "quiet_pipeline_then_a_get": [
        b"".join(req("SETQ", b"p%d" % i, store_ext(i), b"v%d" % i, opaque=160 + i) for i in range(50)),
        b"".join(req("GETKQ", b"p%d" % i, opaque=300 + i) for i in range(0, 60, 7)),
    ],
}

# Requests after which memcached hangs up: compared up to the close.
CLOSING = {
    "get_with_extras_is_a_protocol_error": req("GET", b"k", ext=b"1234", opaque=1),
    "set_without_extras_is_a_protocol_error": req("SET", b"k", b"", b"v", opaque=2),
    "key_over_250_bytes": req("GET", b"k" * 251, opaque=3),
    "key_longer_than_the_body": req("GET", b"kk", opaque=4, bodylen=1),
    "noop_with_a_body": req("NOOP", b"", b"", b"x", opaque=5),
    "quit_answers_then_closes": req("QUIT", opaque=6),
    "quitq_closes_quietly": req("QUITQ", opaque=7),
    "flush_with_a_key": req("FLUSH", b"k", opaque=8),
    "incr_without_extras": req("INCR", b"n", opaque=9),
    "touch_without_extras": req("TOUCH", b"n", opaque=10),
    "sasl_auth_without_a_mechanism": req("SASL_AUTH", opaque=11),
}


def transcript(binary, kind, batches, flags=()):
    out = []
    with fixture.Server(binary, list(flags), name=kind) as srv, srv.connect() as s:
        for b in batches:
            out.append(normalize(exchange(s, b)))
    return out


def closing_transcript(binary, kind, data):
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as s:
        s.sendall(data)
        return read_until_closed(s)


def diff_script(binary, kind, batches):
    ref = transcript(fixture.MEMCACHED, "memcached", batches)
    got = transcript(binary, kind, batches)
    for i, (a, b) in enumerate(zip(ref, got)):
        if a != b:
            raise AssertionError("batch %d: memcached %r\n    got %r" % (i + 1, parse(a), parse(b)))


def diff_closing(binary, kind, data):
    ref = closing_transcript(fixture.MEMCACHED, "memcached", data)
    got = closing_transcript(binary, kind, data)
    if ref != got:
        raise AssertionError("memcached %r\n    got %r" % (parse(ref), parse(got)))


def bad_magic_closes_silently(binary, kind):
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as s:
        s.sendall(req("NOOP", opaque=1))
        if parse(exchange(s, b""))[0]["opaque"] != 1:
            raise AssertionError("noop unanswered")
        s.sendall(req("NOOP", magic=0x81))
        got = read_until_closed(s)
        if got:
            raise AssertionError("a bad magic got %r" % got)


def unknown_opcode_skips_exactly_its_body(binary, kind, skip):
    """An unknown opcode's extras, key and value are all skipped, and the
    next request is read where it starts. (memcached skips the whole body
    length again after the extras and key it already read, eating the start
    of the next request: that is not copied.)"""
    if kind == "memcached":
        raise skip("memcached skips the body length again after the extras and key")
    with fixture.Server(binary, [], name=kind) as srv, srv.connect() as s:
        got = parse(exchange(s, req(0x50, b"key", b"ext!", b"value", opaque=1) +
                             req("GETK", b"nokey", opaque=2)))
        want = [(0x50, 0x81, 1, b"Unknown command"), (OP["GETK"], 0x01, 2, b""),
                (OP["NOOP"], 0, SYNC, b"")]
        if [(r["op"], r["status"], r["opaque"], r["value"]) for r in got] != want:
            raise AssertionError("got %r" % got)


def text_and_binary_side_by_side(binary, kind):
    """The first byte decides per connection; a text connection is untouched."""
    with fixture.Server(binary, [], name=kind) as srv:
        b, t = srv.connect(), srv.connect()
        t.sendall(b"set shared 5 0 2\r\nhi\r\n")
        if recv_until(t, b"\r\n", 5) != b"STORED\r\n":
            raise AssertionError("text set")
        r = parse(exchange(b, req("GET", b"shared", opaque=7)))
        if r[0]["status"] != 0 or r[0]["value"] != b"hi" or r[0]["ext"] != struct.pack(">I", 5):
            raise AssertionError("binary get of a text set: %r" % r)
        exchange(b, req("SET", b"fromb", store_ext(9), b"xyz"))
        t.sendall(b"get fromb\r\n")
        if recv_until(t, b"END\r\n", 5) != b"VALUE fromb 9 3\r\nxyz\r\nEND\r\n":
            raise AssertionError("text get of a binary set")
        b.close()
        t.close()


def protocol_ascii_refuses_binary(binary, kind):
    """-B ascii: a binary request is just bytes that are no command."""
    with fixture.Server(binary, ["-B", "ascii"], name=kind) as srv, srv.connect() as s:
        s.sendall(req("NOOP") + b"\r\n")
        got = recv_until(s, b"\r\n", 5)
        if not got.startswith(b"ERROR"):
            raise AssertionError("-B ascii answered a binary noop with %r" % got)


def protocol_binary_only(binary, kind):
    """-B binary: binary requests are served, a text line is closed on."""
    port = fixture.free_port()
    argv = [binary, "-U", "0", "-l", fixture.HOST, "-p", str(port), "-B", "binary"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        s = None
        end = time.monotonic() + 10
        while s is None and time.monotonic() < end:
            try:
                s = socket.create_connection((fixture.HOST, port), timeout=2)
            except OSError:
                time.sleep(0.05)
        if s is None:
            raise AssertionError("-B binary: not accepting")
        r = parse(exchange(s, req("VERSION", opaque=3)))
        if not r or r[0]["op"] != OP["VERSION"] or r[0]["status"] != 0:
            raise AssertionError("binary version under -B binary: %r" % r)
        s.close()
        with socket.create_connection((fixture.HOST, port), timeout=5) as t:
            t.sendall(b"version\r\n" * 3) # a whole header's worth of text
            if read_until_closed(t):
                raise AssertionError("-B binary answered text")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


STAT_COUNTERS = ["cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "get_hits", "get_misses",
                 "delete_hits", "delete_misses", "incr_hits", "incr_misses", "decr_hits",
                 "decr_misses", "touch_hits", "touch_misses", "cas_misses", "cas_hits",
                 "cas_badval", "curr_items", "total_items"]

COUNTED = [
    req("SET", b"a", store_ext(), b"1"), req("GET", b"a"), req("GETQ", b"nope"),
    req("GETK", b"a"), req("DELETE", b"a"), req("DELETE", b"a"), req("INCR", b"n", arith_ext(1)),
    req("INCR", b"n", arith_ext(1, 5, 0)), req("DECR", b"n", arith_ext(1)),
    req("TOUCH", b"n", struct.pack(">I", 10)), req("GAT", b"zz", struct.pack(">I", 10)),
    req("SET", b"c", store_ext(), b"v", cas=12345), req("ADD", b"n", store_ext(), b"v"),
    req("FLUSH"),
]


def counters(binary, kind):
    with fixture.Server(binary, ["-o", "no_lru_crawler,no_lru_maintainer"], name=kind) as srv:
        with srv.connect() as s:
            exchange(s, b"".join(COUNTED))
        st = dict(srv.stats())
        return {k: st.get(k) for k in STAT_COUNTERS}


def counters_move_as_memcacheds(binary, kind):
    ref = counters(fixture.MEMCACHED, "memcached")
    got = counters(binary, kind)
    diff = {k: (ref[k], got[k]) for k in STAT_COUNTERS if ref[k] != got[k]}
    if diff:
        raise AssertionError("memcached vs server: %s" % diff)


def stats_packets(binary, kind):
    """stat with no key lists memcached's keys, one packet each, then an empty one."""
    def keys(b, k):
        with fixture.Server(b, [], name=k) as srv, srv.connect() as s:
            r = parse(exchange(s, req("STAT", opaque=9)))
            if r[-2]["key"] or r[-2]["value"]:
                raise AssertionError("no empty packet at the end: %r" % r[-2:])
            return [p["key"].decode() for p in r[:-2] if p["key"] != b"fleetcache_version"]
    ref = keys(fixture.MEMCACHED, "memcached")
    got = keys(binary, kind)
    if ref != got:
        raise AssertionError("memcached %s\n    got %s" % (ref, got))


def random_frames_never_hurt(binary, kind):
    """3,000 random binary frames (random opcodes, lengths that lie, huge
    claimed bodies) over many connections: the server keeps answering, its
    memory stays bounded and every connection it closed is gone."""
    import random
    rnd = random.Random(20261130)
    with fixture.Server(binary, [], name=kind) as srv:
        base = srv.rss_kb()
        for conn in range(100):
            s = srv.connect(timeout=2)
            frames = b""
            for _ in range(30):
                op = rnd.choice(list(OP.values()) + [rnd.randrange(256)])
                key = bytes(rnd.randrange(33, 127) for _ in range(rnd.choice([0, 1, 10, 250, 251])))
                ext = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 4, 8, 20, 255])))
                value = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 5, 100])))
                bodylen = rnd.choice([None, None, 0, 1, 2 ** 31, 2 ** 32 - 1])
                keylen = rnd.choice([None, None, None, 0, 65535])
                frames += req(op, key, ext, value, cas=rnd.choice([0, 1, 2 ** 64 - 1]),
                              opaque=rnd.randrange(2 ** 32), keylen=keylen, bodylen=bodylen)
            try:
                s.sendall(frames)
                s.settimeout(0.05)
                while s.recv(65536):
                    pass
            except (socket.timeout, OSError):
                pass
            s.close()
        if not srv.alive():
            raise AssertionError("server died: %s" % srv.stderr(800))
        with srv.connect() as s:
            r = parse(exchange(s, req("VERSION", opaque=1)))
            if r[0]["status"] != 0:
                raise AssertionError("version after the noise: %r" % r)
        grown = (srv.rss_kb() - base) // 1024
        if grown > 100:
            raise AssertionError("RSS grew %d MB" % grown)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and dict(srv.stats()).get("curr_connections") != "1":
            time.sleep(0.05)
        st = dict(srv.stats())
        if st.get("curr_connections") != "1":
            raise AssertionError("connections left open: %s" % st.get("curr_connections"))


def run(rep, ctx):
    b, k = ctx["binary"], ctx["kind"]
    for name, batches in SCRIPTS.items():
        rep.case("binary/diff/%s" % name, diff_script, b, k, batches)
    for name, data in CLOSING.items():
        rep.case("binary/diff/%s" % name, diff_closing, b, k, data)
    rep.case("binary/bad_magic_closes_silently", bad_magic_closes_silently, b, k)
    rep.case("binary/unknown_opcode_skips_exactly_its_body", unknown_opcode_skips_exactly_its_body, b, k,
             ctx["Skip"])
    rep.case("binary/text_and_binary_connections_side_by_side", text_and_binary_side_by_side, b, k)
    rep.case("binary/protocol_ascii_reads_binary_as_text", protocol_ascii_refuses_binary, b, k)
    rep.case("binary/protocol_binary_refuses_text", protocol_binary_only, b, k)
    rep.case("binary/counters_move_as_memcacheds", counters_move_as_memcacheds, b, k)
    rep.case("binary/stat_lists_memcacheds_keys", stats_packets, b, k)
    rep.case("binary/random_frames_never_hurt", random_frames_never_hurt, b, k)
