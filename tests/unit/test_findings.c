/* test_findings.c - the findings vocabulary, a session's records and the scanners (server/findings.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "findings.h"

static void test_vocabulary(void **state)
{
    (void)state;
    assert_string_equal(finding_name(FINDING_BARE_LF), "bare-lf");
    assert_string_equal(finding_name(FINDING_RETRIED_5XX), "retried-5xx");
    assert_string_equal(finding_severity_name(finding_severity_of(FINDING_NO_QUIT)), "violation");
    assert_string_equal(finding_severity_name(finding_severity_of(FINDING_HAMMERING)), "risk");
    assert_string_equal(finding_severity_name(finding_severity_of(FINDING_RETRY_4XX)), "info");
    for (int i = 0; i < FINDING_COUNT; i++) { /* every finding says why */
        assert_true(strlen(finding_name((finding_id)i)) > 0);
        assert_true(strlen(finding_reference((finding_id)i)) > 10);
    }
}

static void test_one_record_per_id(void **state)
{
    (void)state;
    findings f = {0};
    assert_int_equal(findings_add(&f, FINDING_BARE_LF, 5, 7, "EHLO x", 6), 1);
    assert_int_equal(findings_add(&f, FINDING_BARE_LF, 6, 7, "NOOP", 4), 0);
    assert_int_equal(findings_add(&f, FINDING_NO_QUIT, 8, 7, "", 0), 1);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.items[0].count, 2);
    assert_memory_equal(f.items[0].line, "EHLO x", 6); /* the first line is kept */
    assert_true(findings_has(&f, FINDING_NO_QUIT));
    assert_false(findings_has(&f, FINDING_BARE_CR));
    /* however many, never more records than ids */
    char line[FINDING_LINE_MAX * 2];
    memset(line, 'x', sizeof(line));
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < FINDING_COUNT; i++)
            findings_add(&f, (finding_id)i, 9, 7, line, sizeof(line));
    assert_int_equal(f.n, FINDING_COUNT);
    assert_int_equal(f.items[FINDING_COUNT - 1].line_len, FINDING_LINE_MAX);
    findings moved;
    findings_move(&moved, &f);
    assert_int_equal(f.n, 0);
    assert_null(f.items);
    cJSON *j = findings_json(&moved);
    assert_int_equal(cJSON_GetArraySize(j), FINDING_COUNT);
    cJSON *first = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "bare-lf");
    assert_string_equal(cJSON_GetObjectItem(first, "severity")->valuestring, "violation");
    assert_int_equal(cJSON_GetObjectItem(first, "count")->valueint, 5);
    cJSON_Delete(j);
    findings_free(&moved);
}

static void test_line_ending(void **state)
{
    (void)state;
    assert_int_equal(findings_line_ending("EHLO x\r\n", 6, 8), FINDING_COUNT);
    assert_int_equal(findings_line_ending("EHLO x\n", 6, 7), FINDING_BARE_LF);
    assert_int_equal(findings_line_ending("EH\rLO x\r\n", 7, 9), FINDING_BARE_CR);
}

static void scan(findings_text_scan *t, const char *a, const char *b)
{
    findings_text_scan_init(t);
    findings_text_scan_feed(t, a, strlen(a));
    findings_text_scan_feed(t, b, strlen(b));
}

static void test_text_scan(void **state)
{
    (void)state;
    findings_text_scan t;
    scan(&t, "Subject: x\r", "\n\r\nbody\r\n.\r\n"); /* a CRLF split between two reads */
    assert_false(t.bare_lf || t.bare_cr || t.eightbit);
    scan(&t, "one\ntwo\r\n", ".\r\n");
    assert_true(t.bare_lf);
    assert_false(t.bare_cr);
    scan(&t, "one\r", "two\r\n.\r\n");
    assert_true(t.bare_cr);
    assert_false(t.bare_lf);
    scan(&t, "caf\xc3\xa9\r\n", ".\r\n");
    assert_true(t.eightbit);
    assert_false(t.bare_lf || t.bare_cr);
    scan(&t, "one\r", "\ntwo\r\n"); /* the pieces' edges: a CRLF split, then a bare CR at the very end */
    assert_false(t.bare_lf || t.bare_cr);
    scan(&t, "one\r\n", "\ntwo");
    assert_true(t.bare_lf);
    scan(&t, "0123456789abcdef0123456789abcde\x80", ""); /* 8-bit past the word-sized steps */
    assert_true(t.eightbit);
    scan(&t, "\r\n\r\n", "\r");
    assert_false(t.bare_lf || t.bare_cr); /* a CR at the end: not bare until what follows says so */
    findings_text_scan_feed(&t, "x", 1);
    assert_true(t.bare_cr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocabulary),
        cmocka_unit_test(test_one_record_per_id),
        cmocka_unit_test(test_line_ending),
        cmocka_unit_test(test_text_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
