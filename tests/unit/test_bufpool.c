/* test_bufpool: a worker's spare buffers — what is given back is handed
 * out again, the pool keeps at most BUFPOOL_MAX, and draining frees all
 * (LeakSanitizer in the sanitizer build checks that nothing is lost). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "net/bufpool.h"

Test(bufpool, a_buffer_given_back_is_handed_out_again)
{
    struct bufpool p = {0};
    char *a = bufpool_get(&p, 4096);
    cr_assert_not_null(a);
    memset(a, 'x', 4096);
    bufpool_put(&p, a);
    cr_expect_eq(p.n, 1);
    cr_expect_eq(bufpool_get(&p, 4096), a, "the spare comes back first");
    cr_expect_eq(p.n, 0);
    bufpool_put(&p, a);
    bufpool_put(&p, NULL);
    cr_expect_eq(p.n, 1, "NULL is no buffer");
    bufpool_drain(&p);
    cr_expect_eq(p.n, 0);
}

Test(bufpool, keeps_at_most_its_bound_and_frees_the_rest)
{
    struct bufpool p = {0};
    void *b[BUFPOOL_MAX + 5];
    for (size_t i = 0; i < BUFPOOL_MAX + 5; i++)
        b[i] = bufpool_get(&p, 128);
    cr_expect_eq(p.n, 0, "an empty pool mallocs");
    for (size_t i = 0; i < BUFPOOL_MAX + 5; i++)
        bufpool_put(&p, b[i]);
    cr_expect_eq(p.n, BUFPOOL_MAX);
    bufpool_drain(&p);
    cr_expect_eq(p.n, 0);
}
