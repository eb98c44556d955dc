# The scripted group: every case of cases/*.txt against one server kind.
# A case marked `differs: WHY` expects what fleetcached does where it departs
# from memcached on purpose (README: known differences): against memcached it
# must fail, which keeps the mark honest, and the differential group leaves
# it out.

import os

import scripted

CASEDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def memcached_differs(pool, case):
    try:
        scripted.run_case(pool, case)
    except scripted.CaseError:
        return
    raise AssertionError("marked `differs: %s`, but memcached now passes it: drop the mark "
                         "and the README entry" % case.differs)


def run(rep, ctx):
    for fname, flags, cases in scripted.load_corpus(CASEDIR):
        group = fname[:-4]
        pool = scripted.ServerPool(ctx["binary"], flags, ctx["kind"])
        try:
            for case in cases:
                name = "scripted/%s/%s" % (group, case.name)
                if case.differs and ctx["kind"] == "memcached":
                    rep.case(name + " (differs)", memcached_differs, pool, case)
                else:
                    rep.case(name, scripted.run_case, pool, case)
        finally:
            pool.close()
