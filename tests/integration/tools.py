# Real clients and tools an operator points at a memcached, each run against
# the server: key dumps (libmemcached's memcdump, php-memcached's
# getAllKeys(), php-memcache's cachedump), and the binary protocol (memcslap
# -b, php-memcached in binary mode, npm memjs). A tool that is not installed
# is a SKIP naming the package; CI installs them (scripts/lib.sh; memjs is
# installed by npm into a test-local folder, bounded in time).

import json
import os
import shutil
import subprocess
import tempfile

import fixture
from fixture import recv_until

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = ["plain", "with:colon", "slash/and.dot", "percent%20", "k" * 250]


def store_keys(srv, keys):
    with srv.connect() as c:
        for k in keys:
            kb = k.encode()
            c.sendall(b"set %s 0 0 5\r\nvalue\r\n" % kb)
            if recv_until(c, b"\r\n", 5) != b"STORED\r\n":
                raise AssertionError("set %r failed" % k)


def need(tool, skip, package):
    path = shutil.which(tool)
    if path is None:
        raise skip("%s not installed (%s)" % (tool, package))
    return path


def run_tool(argv, timeout=60, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def memcdump_lists_every_key(binary, kind, skip):
    tool = need("memcdump", skip, "libmemcached-tools")
    with fixture.Server(binary, [], name=kind) as srv:
        store_keys(srv, KEYS)
        rc, out, err = run_tool([tool, "--servers=%s:%d" % (fixture.HOST, srv.port)])
        if rc != 0:
            raise AssertionError("memcdump exit %d: %s" % (rc, err[-300:]))
        got = sorted(out.split())
        want = sorted(KEYS)
        if got != want:
            raise AssertionError("memcdump listed %r, stored %r" % (got, want))


PHP_GETALLKEYS = r"""
$m = new Memcached();
$m->addServer($argv[1], (int)$argv[2]);
$keys = $m->getAllKeys();
if ($keys === false) { fwrite(STDERR, "getAllKeys failed: " . $m->getResultMessage() . "\n"); exit(1); }
sort($keys);
echo json_encode($keys), "\n";
"""

PHP_CACHEDUMP = r"""
$m = new Memcache();
if (!$m->connect($argv[1], (int)$argv[2])) { fwrite(STDERR, "connect failed\n"); exit(1); }
$slabs = $m->getExtendedStats("slabs");
$keys = array();
foreach ($slabs as $server => $classes) {
    if ($classes === false) { fwrite(STDERR, "stats slabs failed\n"); exit(1); }
    foreach ($classes as $id => $meta) {
        if (!is_int($id)) continue;
        $dump = $m->getExtendedStats("cachedump", $id, 0);
        if ($dump[$server] === false) { fwrite(STDERR, "cachedump $id failed\n"); exit(1); }
        foreach ($dump[$server] as $k => $v) $keys[] = (string)$k;
    }
}
sort($keys);
echo json_encode($keys), "\n";
"""


def php_keys(script, srv, skip, module):
    php = need("php", skip, "php-cli")
    rc, out, err = run_tool([php, "-r", "if (!extension_loaded('%s')) exit(3);" % module])
    if rc == 3:
        raise skip("php extension %s not loaded (php-%s)" % (module, module))
    rc, out, err = run_tool([php, "-r", script, "--", fixture.HOST, str(srv.port)])
    if rc != 0:
        raise AssertionError("php exit %d: %s%s" % (rc, out[-300:], err[-300:]))
    return json.loads(out)


def php_memcached_get_all_keys(binary, kind, skip):
    with fixture.Server(binary, [], name=kind) as srv:
        store_keys(srv, KEYS)
        got = php_keys(PHP_GETALLKEYS, srv, skip, "memcached")
        if got != sorted(KEYS):
            raise AssertionError("getAllKeys gave %r" % got)


def php_memcache_cachedump(binary, kind, skip):
    with fixture.Server(binary, [], name=kind) as srv:
        store_keys(srv, KEYS)
        # memcached lists a class's COLD items only, which its background
        # thread fills a moment after each store: poll
        want = sorted(KEYS)
        got = None
        for _ in range(50):
            got = php_keys(PHP_CACHEDUMP, srv, skip, "memcache")
            if got == want:
                return
            import time
            time.sleep(0.1)
        raise AssertionError("cachedump listed %r" % got)


PHP_BINARY_SESSION = r"""
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->addServer($argv[1], (int)$argv[2]);
function check($what, $got, $want) { if ($got !== $want) { fwrite(STDERR, "$what: got " . var_export($got, true) . " want " . var_export($want, true) . "\n"); exit(1); } }
check("set", $m->set("a", "hello", 0), true);
check("get", $m->get("a"), "hello");
check("get miss", $m->get("nope"), false);
check("get miss code", $m->getResultCode(), Memcached::RES_NOTFOUND);
check("add existing", $m->add("a", "x"), false);
check("add new", $m->add("b", "bee"), true);
check("replace missing", $m->replace("zz", "x"), false);
check("replace", $m->replace("b", "B"), true);
check("getMulti", $m->getMulti(["a", "b", "nope"]), ["a" => "hello", "b" => "B"]);
$m->setOption(Memcached::OPT_COMPRESSION, false);
check("append", $m->append("a", "!"), true);
check("prepend", $m->prepend("a", "<"), true);
check("after concat", $m->get("a"), "<hello!");
$cas = null;
$r = $m->get("a", null, Memcached::GET_EXTENDED);
check("cas ok", $m->cas($r["cas"], "a", "swapped"), true);
check("cas stale", $m->cas($r["cas"], "a", "again"), false);
check("after cas", $m->get("a"), "swapped");
check("incr missing", $m->increment("n", 1), false);
check("incr with initial", $m->increment("n", 5, 10), 10);
check("incr", $m->increment("n", 5), 15);
check("decr", $m->decrement("n", 100), 0);
check("touch", $m->touch("a", 100), true);
check("touch missing", $m->touch("nope", 100), false);
check("delete", $m->delete("a"), true);
check("delete missing", $m->delete("a"), false);
check("set int", $m->set("i", 42), true);
check("get int", $m->get("i"), 42);
check("set array", $m->set("arr", [1, 2, 3]), true);
check("get array", $m->get("arr"), [1, 2, 3]);
$big = str_repeat("x", 500000);
check("set big", $m->set("big", $big), true);
check("get big", $m->get("big"), $big);
$v = $m->getVersion();
check("version count", count($v), 1);
$s = $m->getStats();
check("stats has pid", isset(array_values($s)[0]["pid"]), true);
check("flush", $m->flush(), true);
check("get after flush", $m->get("b"), false);
echo "ok\n";
"""


def php_memcached_binary_session(binary, kind, skip):
    with fixture.Server(binary, [], name=kind) as srv:
        php = need("php", skip, "php-cli")
        rc, _, _ = run_tool([php, "-r", "if (!extension_loaded('memcached')) exit(3);"])
        if rc == 3:
            raise skip("php extension memcached not loaded (php-memcached)")
        rc, out, err = run_tool([php, "-r", PHP_BINARY_SESSION, "--", fixture.HOST, str(srv.port)])
        if rc != 0 or out.strip() != "ok":
            raise AssertionError("php binary session exit %d: %s%s" % (rc, out[-300:], err[-300:]))


def memcslap_binary(binary, kind, skip):
    """memcslap -b sets 2,000 keys and gets them 4 x 2,000 times on 4
    threads: every get must hit."""
    tool = need("memcslap", skip, "libmemcached-tools")
    with fixture.Server(binary, [], name=kind) as srv:
        for test in ("get", "mget"):
            rc, out, err = run_tool([tool, "--servers=%s:%d" % (fixture.HOST, srv.port), "--binary",
                                     "--concurrency=4", "--execute-number=2000", "--test=" + test],
                                    timeout=120)
            if rc != 0 or "Time total" not in out + err:
                raise AssertionError("memcslap -b --test=%s exit %d: %s" % (test, rc, (out + err)[-300:]))
        st = dict(srv.stats())
        if int(st["get_misses"]) != 0 or int(st["get_hits"]) < 8000:
            raise AssertionError("memcslap -b: %s hits, %s misses" % (st["get_hits"], st["get_misses"]))


MEMJS_VERSION = "1.3.2"


def memjs_dir(skip):
    """memjs installed by npm into the build tree (or a temp dir), once; the
    install is bounded in time and a failed one is a SKIP that says why."""
    base = os.environ.get("FC_BUILD") or tempfile.gettempdir()
    where = os.path.join(base, "node-memjs-" + MEMJS_VERSION)
    if os.path.exists(os.path.join(where, "node_modules", "memjs", "package.json")):
        return where
    npm = need("npm", skip, "npm")
    os.makedirs(where, exist_ok=True)
    try:
        rc, out, err = run_tool([npm, "install", "--prefix", where, "--no-audit", "--no-fund",
                                 "--loglevel=error", "memjs@" + MEMJS_VERSION], timeout=180)
    except subprocess.TimeoutExpired:
        raise skip("npm install memjs took over 180 s")
    if rc != 0:
        raise skip("npm install memjs failed: %s" % (out + err).strip()[-200:])
    return where


def memjs_session(binary, kind, skip):
    node = need("node", skip, "nodejs")
    where = memjs_dir(skip)
    with fixture.Server(binary, [], name=kind) as srv:
        env = dict(os.environ, NODE_PATH=os.path.join(where, "node_modules"))
        rc, out, err = run_tool([node, os.path.join(HERE, "js", "memjs_session.js"), fixture.HOST,
                                 str(srv.port)], timeout=60, env=env)
        if rc != 0 or out.strip() != "ok":
            raise AssertionError("memjs exit %d: %s%s" % (rc, out[-300:], err[-300:]))


def run(rep, ctx):
    b, k, skip = ctx["binary"], ctx["kind"], ctx["Skip"]
    rep.case("tools/memcdump_lists_every_key", memcdump_lists_every_key, b, k, skip)
    rep.case("tools/php_memcached_getallkeys", php_memcached_get_all_keys, b, k, skip)
    rep.case("tools/php_memcache_cachedump", php_memcache_cachedump, b, k, skip)
    rep.case("tools/memcslap_binary", memcslap_binary, b, k, skip)
    rep.case("tools/php_memcached_binary_session", php_memcached_binary_session, b, k, skip)
    rep.case("tools/memjs_session", memjs_session, b, k, skip)
