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


def run(rep, ctx):
    b, k, skip = ctx["binary"], ctx["kind"], ctx["Skip"]
    rep.case("tools/memcdump_lists_every_key", memcdump_lists_every_key, b, k, skip)
    rep.case("tools/php_memcached_getallkeys", php_memcached_get_all_keys, b, k, skip)
    rep.case("tools/php_memcache_cachedump", php_memcache_cachedump, b, k, skip)
