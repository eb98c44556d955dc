/* test_watch: the parts of watch.c that need no connection — the kinds a
 * watch command names, memcached's key encoding, and that events with no
 * watcher cost nothing and count nothing but the lines written. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/watch.h"

Test(watch, names_memcacheds_kinds)
{
    cr_expect_eq(watch_kind_named("fetchers", 8), WATCH_KIND(FETCHERS));
    cr_expect_eq(watch_kind_named("mutations", 9), WATCH_KIND(MUTATIONS));
    cr_expect_eq(watch_kind_named("evictions", 9), WATCH_KIND(EVICTIONS));
    cr_expect_eq(watch_kind_named("proxyuser", 9), WATCH_KIND(PROXYUSER));
    cr_expect_eq(watch_kind_named("fetcher", 7), 0);
    cr_expect_eq(watch_kind_named("noreply", 7), 0);
}

Test(watch, uri_encodes_keys_as_memcached)
{
    char out[64];
    cr_expect_eq(watch_uriencode("a/b:c", 5, out), 9);
    cr_expect_str_eq(out, "a%2Fb%3Ac");
    watch_uriencode("Az09-._~", 8, out);
    cr_expect_str_eq(out, "Az09-._~");
    watch_uriencode("\x01\xff ", 3, out);
    cr_expect_str_eq(out, "%01%FF%20");
}

Test(watch, nobody_watching_wants_nothing)
{
    cr_expect_not(watch_wants(WATCH_KIND(FETCHERS) | WATCH_KIND(MUTATIONS) | WATCH_KIND(EVICTIONS)));
    struct watch_stats st;
    watch_stats_get(&st);
    cr_expect_eq(st.watchers, 0);
    watch_fetch("k", 1, WATCH_FOUND, 1, 1, 5); /* formatted, offered to no one */
    watch_stats_get(&st);
    cr_expect_eq(st.sent, 0);
    cr_expect_eq(st.skipped, 0);
}
