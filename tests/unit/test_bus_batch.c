/* Tests for bus/batch.c: dedupe within a batch (latest hash wins), full
 * detection, and that a batch is always a valid DATA payload. */
#include "bus/batch.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct bus_batch b;

static void
init(void)
{
    bus_batch_init(&b);
}

TestSuite(bus_batch, .init = init);

/* Reads record i of the batch. */
static struct wire_record
record(unsigned i)
{
    size_t off = 0;
    struct wire_record r;
    for (unsigned k = 0; k <= i; k++)
        cr_assert_eq(wire_next_record(b.payload, b.len, &off, &r), WIRE_OK);
    return r;
}

Test(bus_batch, same_key_merges_and_the_latest_hash_wins)
{
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, true, 1), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "b", 1, true, 2), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, true, 3), BUS_BATCH_MERGED);
    cr_assert_eq(b.nkeys, 2);
    struct wire_record r = record(0);
    cr_assert(r.has_hash && r.hash == 3);
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, false, 0), BUS_BATCH_MERGED);
    r = record(0);
    cr_assert_not(r.has_hash); /* a delete after a set: drop unconditionally */
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, true, 9), BUS_BATCH_MERGED);
    r = record(0);
    cr_assert(r.has_hash && r.hash == 9); /* a set after a delete: the new value */
    unsigned n;
    cr_assert_eq(wire_check_data(b.payload, b.len, &n), WIRE_OK);
    cr_assert_eq(n, 2);
}

Test(bus_batch, keys_are_compared_by_bytes_not_by_hash_alone)
{
    cr_assert_eq(bus_batch_add_invalidate(&b, "ab", 2, false, 0), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, false, 0), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "abc", 3, false, 0), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "ab", 2, false, 0), BUS_BATCH_MERGED);
    cr_assert_eq(b.nkeys, 3);
}

Test(bus_batch, fills_up_to_the_payload_limit_then_says_full)
{
    unsigned added = 0;
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "key:%08d", i);
        enum bus_batch_result r = bus_batch_add_invalidate(&b, key, (size_t)n, true, (uint64_t)i);
        if (r == BUS_BATCH_FULL)
            break;
        cr_assert_eq(r, BUS_BATCH_ADDED);
        added++;
    }
    cr_assert_eq(added, WIRE_PAYLOAD_MAX / (WIRE_INVALIDATE_FIXED + 12));
    cr_assert_leq(b.len, WIRE_PAYLOAD_MAX);
    unsigned n;
    cr_assert_eq(wire_check_data(b.payload, b.len, &n), WIRE_OK);
    cr_assert_eq(n, added);
    bus_batch_reset(&b);
    cr_assert(bus_batch_empty(&b));
    cr_assert_eq(bus_batch_add_invalidate(&b, "key:00000000", 12, true, 0), BUS_BATCH_ADDED);
}

Test(bus_batch, holds_the_most_records_the_dedupe_table_must_index)
{
    /* Distinct 1-byte keys: at most 256 exist, and 112 records fill a payload. */
    unsigned added = 0;
    for (int i = 0; i < 256; i++) {
        char key = (char)i;
        if (bus_batch_add_invalidate(&b, &key, 1, false, 0) != BUS_BATCH_ADDED)
            break;
        added++;
    }
    cr_assert_eq(added, WIRE_PAYLOAD_MAX / (WIRE_INVALIDATE_FIXED + 1));
    for (int i = 0; i < (int)added; i++) {
        char key = (char)i;
        cr_assert_eq(bus_batch_add_invalidate(&b, &key, 1, true, 5), BUS_BATCH_MERGED);
    }
}

Test(bus_batch, keys_after_a_flush_do_not_merge_into_records_before_it)
{
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, true, 1), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_flush(&b, 10), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "a", 1, true, 2), BUS_BATCH_ADDED);
    cr_assert_eq(record(0).hash, 1);
    cr_assert_eq(record(1).op, WIRE_OP_FLUSH);
    cr_assert_eq(record(1).delay, 10);
    cr_assert_eq(record(2).hash, 2);
}

Test(bus_batch, many_resets_keep_working)
{
    for (int round = 0; round < 5000; round++) {
        bus_batch_reset(&b);
        cr_assert_eq(bus_batch_add_invalidate(&b, "k", 1, false, 0), BUS_BATCH_ADDED);
        cr_assert_eq(bus_batch_add_invalidate(&b, "k", 1, false, 0), BUS_BATCH_MERGED);
    }
    b.gen = UINT32_MAX; /* wrap the generation */
    bus_batch_reset(&b);
    cr_assert_eq(bus_batch_add_invalidate(&b, "k", 1, false, 0), BUS_BATCH_ADDED);
}

Test(bus_batch, rejects_keys_that_cannot_be_encoded)
{
    char big[WIRE_KEY_MAX + 1];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(bus_batch_add_invalidate(&b, big, sizeof(big), false, 0), BUS_BATCH_FULL);
    cr_assert_eq(bus_batch_add_invalidate(&b, big, 0, false, 0), BUS_BATCH_FULL);
    cr_assert(bus_batch_empty(&b));
}

Test(bus_batch, stale_marks_keep_their_place_in_order)
{
    /* A drop, a stale mark, a new value: a receiver must see them in this
     * order, so nothing after the mark merges into the drop before it. */
    cr_assert_eq(bus_batch_add_invalidate(&b, "k", 1, false, 0), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_stale(&b, "k", 1, true, 30), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_invalidate(&b, "k", 1, true, 7), BUS_BATCH_ADDED);
    cr_assert_eq(bus_batch_add_stale(&b, "k", 1, false, 0), BUS_BATCH_ADDED);
    cr_assert_eq(b.nkeys, 4);
    cr_assert_eq(record(0).op, WIRE_OP_INVALIDATE);
    cr_assert_not(record(0).has_hash);
    cr_assert_eq(record(1).op, WIRE_OP_STALE);
    cr_assert_eq(record(1).exptime, 30);
    cr_assert_eq(record(2).op, WIRE_OP_INVALIDATE);
    cr_assert_eq(record(2).hash, 7);
    cr_assert_eq(record(3).op, WIRE_OP_STALE);
    cr_assert_eq(wire_data_version(b.payload, b.len), 2);
}
