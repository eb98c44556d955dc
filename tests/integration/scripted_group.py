# The scripted group: every case of cases/*.txt against one server kind.

import os

import scripted

CASEDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def run(rep, ctx):
    for fname, flags, cases in scripted.load_corpus(CASEDIR):
        group = fname[:-4]
        pool = scripted.ServerPool(ctx["binary"], flags, ctx["kind"])
        try:
            for case in cases:
                rep.case("scripted/%s/%s" % (group, case.name), scripted.run_case, pool, case)
        finally:
            pool.close()
