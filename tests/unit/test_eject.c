/* Tests for l2/eject.c: when a failing L2 server is ejected and retried,
 * on a clock the test moves by hand. */
#include "l2/eject.h"

#include <criterion/criterion.h>

static const struct eject_policy policy = {.failure_limit = 2, .retry_s = 1.0};

Test(eject, allows_a_healthy_server)
{
    struct eject_state s = {0};
    cr_expect(eject_allows(&s, 100.0));
    cr_expect_not(eject_troubled(&s));
}

Test(eject, ejects_after_failure_limit_consecutive_failures)
{
    struct eject_state s = {0};
    cr_expect_not(eject_failure(&s, &policy, 10.0));
    cr_expect(eject_allows(&s, 10.0), "one failure is not enough");
    cr_expect(eject_troubled(&s));
    cr_expect(eject_failure(&s, &policy, 10.5));
    cr_expect_not(eject_allows(&s, 10.5));
    cr_expect_not(eject_allows(&s, 11.49));
    cr_expect(eject_allows(&s, 11.5), "retried once retry_s has passed");
    cr_expect_eq(s.ejections, 1);
}

Test(eject, a_success_in_between_resets_the_count)
{
    struct eject_state s = {0};
    eject_failure(&s, &policy, 1.0);
    eject_success(&s);
    cr_expect_not(eject_troubled(&s));
    cr_expect_not(eject_failure(&s, &policy, 2.0));
    cr_expect(eject_allows(&s, 2.0));
}

Test(eject, late_failures_during_an_ejection_change_nothing)
{
    struct eject_state s = {0};
    eject_failure(&s, &policy, 1.0);
    cr_assert(eject_failure(&s, &policy, 1.0));
    /* Requests sent before the ejection time out one after the other. */
    cr_expect_not(eject_failure(&s, &policy, 1.2));
    cr_expect_not(eject_failure(&s, &policy, 1.9));
    cr_expect_eq(s.ejections, 1);
    cr_expect(eject_allows(&s, 2.0), "the ejection was not extended");
}

Test(eject, on_probation_one_failure_ejects_again)
{
    struct eject_state s = {0};
    eject_failure(&s, &policy, 1.0);
    eject_failure(&s, &policy, 1.0);
    cr_assert(eject_allows(&s, 2.0));
    cr_expect(eject_failure(&s, &policy, 2.0), "first failure after the retry ejects");
    cr_expect_not(eject_allows(&s, 2.5));
    cr_expect(eject_allows(&s, 3.0));
    cr_expect_eq(s.ejections, 2);
}

Test(eject, a_success_on_probation_makes_it_healthy)
{
    struct eject_state s = {0};
    eject_failure(&s, &policy, 1.0);
    eject_failure(&s, &policy, 1.0);
    eject_success(&s);
    cr_expect_not(eject_troubled(&s));
    cr_expect_not(eject_failure(&s, &policy, 5.0), "a fresh count starts again");
    cr_expect(eject_failure(&s, &policy, 5.0));
}

Test(eject, a_limit_of_zero_never_ejects)
{
    const struct eject_policy never = {.failure_limit = 0, .retry_s = 1.0};
    struct eject_state s = {0};
    for (int i = 0; i < 100; i++)
        cr_expect_not(eject_failure(&s, &never, (double)i));
    cr_expect(eject_allows(&s, 100.0));
}

Test(eject, a_limit_of_one_ejects_at_the_first_failure)
{
    const struct eject_policy one = {.failure_limit = 1, .retry_s = 0.5};
    struct eject_state s = {0};
    cr_expect(eject_failure(&s, &one, 3.0));
    cr_expect_not(eject_allows(&s, 3.25));
    cr_expect(eject_allows(&s, 3.5));
}
