/* test_smtp_data.c - DATA decoding across every split of the input (server/smtp_data.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_data.h"

typedef struct sink_buf {
    char data[8192];
    size_t len;
} sink_buf;

static void sink(void *ctx, const char *data, size_t len)
{
    sink_buf *b = ctx;
    assert_true(b->len + len <= sizeof(b->data));
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* decode - feed in at the given split points; returns bytes consumed in total and whether it ended */
static size_t decode_split(const char *in, size_t n, size_t split1, size_t split2, sink_buf *out, int *done,
                           smtp_data_decoder *d)
{
    smtp_data_init(d);
    out->len = 0;
    size_t cuts[] = {0, split1, split2, n};
    size_t total = 0;
    *done = 0;
    for (int i = 0; i < 3 && !*done; i++) {
        size_t from = cuts[i] > total ? cuts[i] : total;
        size_t to = cuts[i + 1];
        if (to < from)
            continue;
        total = from + smtp_data_decode(d, in + from, to - from, sink, out, done);
    }
    return total;
}

/* check_all_splits - every pair of split points gives the same content and the same end */
static void check_all_splits(const char *in, size_t n, const char *expect, size_t expect_len, size_t end_at)
{
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            sink_buf out;
            smtp_data_decoder d;
            int done;
            size_t used = decode_split(in, n, a, b, &out, &done, &d);
            assert_true(done);
            assert_int_equal(used, end_at);
            assert_int_equal(out.len, expect_len);
            assert_memory_equal(out.data, expect, expect_len);
        }
    }
}

static void test_simple(void **state)
{
    (void)state;
    const char in[] = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    check_all_splits(in, sizeof(in) - 1, "Subject: x\r\n\r\nbody\r\n", 20, sizeof(in) - 1 - 6);
}

static void test_dot_unstuffing(void **state)
{
    (void)state;
    const char in[] = "..leading\r\n.\r\r\n...\r\nmid.dle\r\n.\r\n";
    const char expect[] = ".leading\r\n\r\r\n..\r\nmid.dle\r\n";
    check_all_splits(in, sizeof(in) - 1, expect, sizeof(expect) - 1, sizeof(in) - 1);
}

static void test_empty_body(void **state)
{
    (void)state;
    check_all_splits(".\r\n", 3, "", 0, 3);
}

static void test_bare_lf_does_not_end(void **state)
{
    (void)state;
    /* "\n.\n" must not end the message: only CRLF.CRLF does (SMTP smuggling). */
    const char in[] = "a\n.\nb\r\n.\r\n";
    check_all_splits(in, sizeof(in) - 1, "a\n.\nb\r\n", 7, sizeof(in) - 1);
    const char in2[] = "a\r\n.\nb\r\n.\r\n"; /* ".\n" is a content line starting with a stuffed dot */
    check_all_splits(in2, sizeof(in2) - 1, "a\r\n\nb\r\n", 7, sizeof(in2) - 1);
}

static void test_cr_handling(void **state)
{
    (void)state;
    const char in[] = "a\rb\r\r\nc\r\n.\r\n";
    check_all_splits(in, sizeof(in) - 1, "a\rb\r\r\nc\r\n", 9, sizeof(in) - 1);
}

static void test_binary_bytes(void **state)
{
    (void)state;
    const char in[] = "\x00\xff\xc3\xa9\x01\r\n.\r\n";
    check_all_splits(in, sizeof(in) - 1, "\x00\xff\xc3\xa9\x01\r\n", 7, sizeof(in) - 1);
}

static void test_line_length(void **state)
{
    (void)state;
    char in[2100];
    size_t n = 0;
    memset(in, 'x', 998);
    n = 998;
    memcpy(in + n, "\r\n", 2);
    n += 2;
    in[n++] = '.';
    memset(in + n, 'y', 1000);
    n += 1000;
    memcpy(in + n, "\r\n.\r\n", 5);
    n += 5;
    smtp_data_decoder d;
    static sink_buf out;
    int done;
    /* the 1000-byte content line with its stuffed dot is 1003 octets on the wire */
    decode_split(in, n, 500, 1500, &out, &done, &d);
    assert_true(done);
    assert_int_equal(d.longest_line, 1003);
    assert_int_equal(out.len, 998 + 2 + 1000 + 2);
}

static void test_not_done(void **state)
{
    (void)state;
    smtp_data_decoder d;
    sink_buf out = {.len = 0};
    int done;
    smtp_data_init(&d);
    size_t used = smtp_data_decode(&d, "abc\r\n.", 6, sink, &out, &done);
    assert_false(done);
    assert_int_equal(used, 6);
    assert_int_equal(out.len, 5);
    used = smtp_data_decode(&d, "x\r\n.\r\n", 6, sink, &out, &done);
    assert_true(done);
    assert_memory_equal(out.data, "abc\r\nx\r\n", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),      cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_empty_body),  cmocka_unit_test(test_bare_lf_does_not_end),
        cmocka_unit_test(test_cr_handling), cmocka_unit_test(test_binary_bytes),
        cmocka_unit_test(test_line_length), cmocka_unit_test(test_not_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
