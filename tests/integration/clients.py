# Real clients against the server: memccapable -a (libmemcached-tools), one
# case per ASCII subtest, and a seeded randomized pymemcache session checked
# op by op against a model dict. pymemcache is Debian's python3-pymemcache,
# visible to /usr/bin/python3, which runs this tier.

import random
import re
import shutil
import subprocess

import fixture

MEMCCAPABLE_LINE = re.compile(r"^(ascii .*?)\s+\[(\w+)\]\s*$")


def run_memccapable(rep, ctx, skip):
    tool = shutil.which("memccapable")
    name = "clients/memccapable"
    if not tool:
        rep.case(name, lambda: (_ for _ in ()).throw(skip("memccapable not installed (libmemcached-tools)")))
        return
    out, rc, err = "", None, None
    try:
        with fixture.Server(ctx["binary"], [], name=ctx["kind"]) as srv:
            p = subprocess.run([tool, "-h", fixture.HOST, "-p", str(srv.port), "-a", "-t", "5"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
            out, rc = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace"), p.returncode
            alive = srv.alive()
            if not alive:
                err = "server died during memccapable: %s" % srv.stderr(500)
    except subprocess.TimeoutExpired:
        err = "memccapable did not finish in 90s"
    except fixture.ServerError as e:
        err = str(e)
    if err:
        rep.fail(name, err)
        return
    seen = 0
    for line in out.splitlines():
        m = MEMCCAPABLE_LINE.match(line.strip())
        if not m:
            continue
        seen += 1
        test, verdict = m.group(1), m.group(2)

        def check(v=verdict):
            if v != "pass":
                raise AssertionError("memccapable says [%s]" % v)
        rep.case("%s/%s" % (name, test.replace(" ", "_")), check)

    def overall():
        if seen < 20:
            raise AssertionError("only %d ascii subtests ran (rc %s): %s" % (seen, rc, out[-500:]))
        if rc != 0 or "All tests passed" not in out:
            raise AssertionError("exit %s: %s" % (rc, out[-300:]))
    rep.case(name + "/all", overall)


# ---------------------------------------------------------------- pymemcache

NUM_KEYS = ["n%d" % i for i in range(6)]
TEXT_KEYS = ["t%d" % i for i in range(14)]
MASK = 2 ** 64 - 1


def check(what, got, want):
    if got != want:
        raise AssertionError("%s: expected %r got %r" % (what, want, got))


def pymemcache_session(binary, kind, seed, ops):
    try:
        from pymemcache.client.base import Client
    except ImportError:
        raise SkipError("pymemcache not importable (python3-pymemcache)")
    rnd = random.Random(seed)
    model = {}          # key -> bytes
    tokens = {}         # key -> cas token seen by the last gets
    with fixture.Server(binary, [], name=kind) as srv:
        c = Client((fixture.HOST, srv.port), connect_timeout=5, timeout=5, default_noreply=False)
        try:
            for i in range(ops):
                op = rnd.choice(["set", "set", "get", "get", "get_many", "add", "replace", "append",
                                 "prepend", "delete", "incr", "decr", "cas", "gets", "touch"])
                numeric = op in ("incr", "decr") or (op in ("set", "add", "replace") and rnd.random() < 0.3)
                if numeric:
                    key = rnd.choice(NUM_KEYS)
                elif op in ("get", "gets", "delete", "touch"):
                    key = rnd.choice(NUM_KEYS + TEXT_KEYS)
                else:
                    key = rnd.choice(TEXT_KEYS)   # numbers stay numbers
                if numeric:
                    val = str(rnd.choice([0, 1, 9, 10, 100, MASK, rnd.randrange(10 ** 9)])).encode()
                else:
                    val = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 5, 50, 1000])))
                where = "op %d %s %s" % (i, op, key)
                present = key in model
                # what changes the item's CAS (a failed add or a miss does not)
                if op in ("set", "delete") or (op == "add" and not present) or \
                        (op in ("replace", "append", "prepend", "incr", "decr") and present):
                    tokens.pop(key, None)
                if op == "set":
                    check(where, c.set(key, val), True)
                    model[key] = val
                elif op == "get":
                    got = c.get(key)
                    want = model.get(key)
                    if key in NUM_KEYS and got is not None:
                        got = got.rstrip(b" ")   # a shrunken number may keep its padding
                    check(where, got, want)
                elif op == "get_many":
                    keys = rnd.sample(TEXT_KEYS, 4)
                    check(where, c.get_many(keys), {k: model[k] for k in keys if k in model})
                elif op == "add":
                    check(where, c.add(key, val), key not in model)
                    model.setdefault(key, val)
                elif op == "replace":
                    check(where, c.replace(key, val), key in model)
                    if key in model:
                        model[key] = val
                elif op in ("append", "prepend"):
                    res = getattr(c, op)(key, val)
                    check(where, res, key in model)
                    if key in model:
                        model[key] = model[key] + val if op == "append" else val + model[key]
                elif op == "delete":
                    check(where, c.delete(key), key in model)
                    model.pop(key, None)
                elif op in ("incr", "decr"):
                    delta = rnd.choice([0, 1, 7, 1000, MASK])
                    res = getattr(c, op)(key, delta)
                    cur = model.get(key)
                    if cur is None:
                        check(where, res, None)
                        continue
                    n = int(cur.strip() or b"x") if cur.strip().isdigit() else None
                    if n is None:
                        raise AssertionError("model holds non-number %r" % cur)
                    new = (n + delta) & MASK if op == "incr" else max(0, n - delta)
                    check(where, res, new)
                    model[key] = str(new).encode()
                elif op == "gets":
                    v, tok = c.gets(key)
                    want = model.get(key)
                    if key in NUM_KEYS and v is not None:
                        v = v.rstrip(b" ")
                    check(where, v, want)
                    if v is not None:
                        tokens[key] = tok
                elif op == "cas":
                    # a token is good until anything changes the key; with no
                    # fresh token, one far beyond any CAS this session makes
                    fresh = key in tokens
                    tok = tokens.pop(key, b"999999999")
                    res = c.cas(key, val, tok)
                    if key not in model:
                        check(where, res, None)
                    else:
                        check(where + " (token %r, fresh %s)" % (tok, fresh), res, fresh)
                        if res:
                            model[key] = val
                elif op == "touch":
                    check(where, c.touch(key, 10000), key in model)
            # the end state, key by key
            for key in NUM_KEYS + TEXT_KEYS:
                got = c.get(key)
                if key in NUM_KEYS and got is not None:
                    got = got.rstrip(b" ")
                check("final %s" % key, got, model.get(key))
        finally:
            c.close()


class SkipError(Exception):
    pass


def pymemcache_cas_token_semantics(binary, kind):
    """A fresh gets token wins once; the second use loses; a missing key is None."""
    from pymemcache.client.base import Client
    with fixture.Server(binary, [], name=kind) as srv:
        c = Client((fixture.HOST, srv.port), connect_timeout=5, timeout=5, default_noreply=False)
        try:
            check("set", c.set("k", b"a"), True)
            v, tok = c.gets("k")
            check("gets", v, b"a")
            check("cas fresh token", c.cas("k", b"b", tok), True)
            check("cas stale token", c.cas("k", b"c", tok), False)
            check("get", c.get("k"), b"b")
            check("cas missing", c.cas("nokey", b"x", tok), None)
        finally:
            c.close()


def run(rep, ctx):
    skip = ctx["Skip"]
    run_memccapable(rep, ctx, skip)

    def wrap(fn, *a):
        try:
            fn(*a)
        except SkipError as e:
            raise skip(str(e))
        except ImportError as e:
            raise skip("pymemcache: %s" % e)
    rep.case("clients/pymemcache_cas_tokens", wrap, pymemcache_cas_token_semantics, ctx["binary"], ctx["kind"])
    rep.case("clients/pymemcache_random_5000_ops_seed_7", wrap, pymemcache_session,
             ctx["binary"], ctx["kind"], 7, 5000)
