/*
 * test_bytebuf.c - the byte buffer: doubling growth, the bound, consuming from the front, giving memory back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bytebuf.h"

static void test_grows_by_doubling_up_to_the_bound(void **state)
{
    (void)state;
    bytebuf b;
    bytebuf_init(&b, 4, 20);
    assert_null(b.data);
    assert_int_equal(bytebuf_append(&b, "abc", 3), 0);
    assert_int_equal(b.cap, 4);
    assert_int_equal(bytebuf_append(&b, "defgh", 5), 0);
    assert_int_equal(b.cap, 8);
    assert_int_equal(bytebuf_append(&b, "ijklmnop", 8), 0);
    assert_int_equal(b.cap, 16);
    assert_int_equal(bytebuf_append(&b, "qrst", 4), 0); /* 20: capped at the bound, not 32 */
    assert_int_equal(b.cap, 20);
    assert_memory_equal(b.data, "abcdefghijklmnopqrst", 20);
    assert_int_equal(bytebuf_append(&b, "u", 1), -1); /* past the bound: refused, nothing changed */
    assert_int_equal(b.len, 20);
    assert_int_equal(bytebuf_reserve(&b, SIZE_MAX), -1); /* no overflow in len + n */
    bytebuf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
}

static void test_consume_keeps_the_rest_and_frees_a_burst(void **state)
{
    (void)state;
    bytebuf b;
    bytebuf_init(&b, 8, 1024);
    assert_int_equal(bytebuf_append(&b, "hello, world", 12), 0);
    bytebuf_consume(&b, 7);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    bytebuf_consume(&b, 5); /* emptied above its first size: the burst's memory goes back */
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_int_equal(bytebuf_append(&b, "ab", 2), 0);
    bytebuf_consume(&b, 2); /* emptied within its first size: kept for the next bytes */
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    bytebuf_consume(&b, 0);
    bytebuf_release(&b);
    bytebuf_consume(&b, 0); /* an empty, released buffer: nothing to move (no memmove on NULL) */
    assert_int_equal(bytebuf_append(&b, NULL, 0), 0);
}

static void test_initial_above_max_is_the_bound(void **state)
{
    (void)state;
    bytebuf b;
    bytebuf_init(&b, 64, 16);
    assert_int_equal(bytebuf_reserve(&b, 64), 0);
    assert_int_equal(bytebuf_reserve(&b, 65), -1);
    bytebuf_release(&b);
}

static void test_take_hands_over_the_bytes(void **state)
{
    (void)state;
    bytebuf b;
    bytebuf_init(&b, 4, 64);
    size_t len = 99;
    assert_null(bytebuf_take(&b, &len)); /* empty: nothing to hand over */
    assert_int_equal(len, 0);
    assert_int_equal(bytebuf_append(&b, "hello", 5), 0);
    char *data = bytebuf_take(&b, &len);
    assert_non_null(data);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(bytebuf_append(&b, "x", 1), 0); /* usable again, with its bound */
    assert_int_equal(bytebuf_reserve(&b, 64), -1);
    bytebuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_by_doubling_up_to_the_bound),
        cmocka_unit_test(test_consume_keeps_the_rest_and_frees_a_burst),
        cmocka_unit_test(test_initial_above_max_is_the_bound),
        cmocka_unit_test(test_take_hands_over_the_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
