/* test_prefix: per-prefix counts (stats detail) — what counts as a prefix,
 * memcached's dump order and format, the bound on how many are kept. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "net/prefix.h"
#include "net/reply.h"

static void
start(void)
{
    prefix_setup(':', true);
}

static void
stop(void)
{
    prefix_teardown();
}

TestSuite(prefix, .init = start, .fini = stop, .timeout = 20);

/* The dump as one NUL-terminated string (caller frees). */
static char *
dump(void)
{
    struct reply_buf rb;
    reply_buf_init(&rb);
    prefix_dump(&rb);
    char *s = strndup(rb.text, rb.text_len);
    reply_buf_deinit(&rb);
    return s;
}

Test(prefix, counts_gets_hits_sets_and_deletes_by_the_part_before_the_delimiter)
{
    prefix_record_set("user:1", 6);
    prefix_record_get("user:1", 6, true);
    prefix_record_get("user:2", 6, false);
    prefix_record_delete("user:3", 6);
    prefix_record_get("nodelimiter", 11, true);
    char *s = dump();
    cr_expect_str_eq(s, "PREFIX user get 2 hit 1 set 1 del 1\r\nEND\r\n");
    free(s);
}

Test(prefix, dumps_in_memcacheds_order)
{
    /* recorded from memcached 1.6.18 (tests/integration/cases/admin.txt) */
    const char *keys[] = { "a:1", "b:1", "c:1", "dd:1", "eee:2", ":x", "x:" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        prefix_record_get(keys[i], strlen(keys[i]), false);
    char *s = dump();
    cr_expect_str_eq(s, "PREFIX  get 1 hit 0 set 0 del 0\r\nPREFIX b get 1 hit 0 set 0 del 0\r\n"
                        "PREFIX x get 1 hit 0 set 0 del 0\r\nPREFIX eee get 1 hit 0 set 0 del 0\r\n"
                        "PREFIX c get 1 hit 0 set 0 del 0\r\nPREFIX dd get 1 hit 0 set 0 del 0\r\n"
                        "PREFIX a get 1 hit 0 set 0 del 0\r\nEND\r\n");
    free(s);
}

Test(prefix, another_delimiter_and_clearing)
{
    prefix_setup('/', true);
    prefix_record_set("x/1", 3);
    prefix_record_set("y:1", 3);
    char *s = dump();
    cr_expect_str_eq(s, "PREFIX x get 0 hit 0 set 1 del 0\r\nEND\r\n");
    free(s);
    prefix_clear();
    s = dump();
    cr_expect_str_eq(s, "END\r\n");
    free(s);
}

Test(prefix, random_prefixes_cannot_grow_it_without_bound)
{
    char key[32];
    for (unsigned i = 0; i < PREFIX_MAX + 5000; i++) {
        int n = snprintf(key, sizeof(key), "p%u:k", i);
        prefix_record_set(key, (size_t)n);
    }
    char *s = dump();
    unsigned lines = 0;
    for (const char *p = s; (p = strstr(p, "PREFIX ")) != NULL; p++)
        lines++;
    cr_expect_eq(lines, PREFIX_MAX);
    free(s);
    /* a prefix already kept still counts */
    prefix_record_set("p0:k", 4);
    s = dump();
    cr_expect_not_null(strstr(s, "PREFIX p0 get 0 hit 0 set 2 del 0\r\n"));
    free(s);
}
