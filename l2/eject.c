/* eject: the failure counter and the ejection clock (see eject.h). */
#include "l2/eject.h"

bool
eject_allows(const struct eject_state *s, double now)
{
    return s->until == 0 || now >= s->until;
}

bool
eject_failure(struct eject_state *s, const struct eject_policy *p, double now)
{
    if (s->until != 0 && now < s->until)
        return false;           /* already out: a straggler of the same trouble */
    s->until = 0;
    s->failures++;
    if (p->failure_limit == 0)
        return false;
    if (!s->probation && s->failures < p->failure_limit)
        return false;
    s->until = now + p->retry_s;
    if (s->until <= now)
        s->until = now + 1e-9; /* a retry of 0 still ejects for the instant */
    s->failures = 0;
    s->probation = true;
    s->ejections++;
    return true;
}

void
eject_success(struct eject_state *s)
{
    s->failures = 0;
    s->until = 0;
    s->probation = false;
}

bool
eject_troubled(const struct eject_state *s)
{
    return s->failures != 0 || s->until != 0 || s->probation;
}
