/* test_smtp_parse.c - line framing, command split, paths and parameters (server/smtp_parse.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"

static void test_find_line(void **state)
{
    (void)state;
    size_t len = 0, used = 0;
    assert_int_equal(smtp_find_line("EHLO x\r\nNOOP", 12, 512, &len, &used), SMTP_LINE_DONE);
    assert_int_equal(len, 6);
    assert_int_equal(used, 8);
    /* bare LF is a terminator on the command channel */
    assert_int_equal(smtp_find_line("NOOP\n", 5, 512, &len, &used), SMTP_LINE_DONE);
    assert_int_equal(len, 4);
    assert_int_equal(used, 5);
    assert_int_equal(smtp_find_line("NOOP\r", 5, 512, &len, &used), SMTP_LINE_NEED_MORE);
    assert_int_equal(smtp_find_line("", 0, 512, &len, &used), SMTP_LINE_NEED_MORE);
    char big[600];
    memset(big, 'a', sizeof(big));
    assert_int_equal(smtp_find_line(big, 511, 512, &len, &used), SMTP_LINE_NEED_MORE);
    assert_int_equal(smtp_find_line(big, 512, 512, &len, &used), SMTP_LINE_TOO_LONG);
    big[511] = '\n'; /* exactly at the limit: 511 bytes + LF */
    assert_int_equal(smtp_find_line(big, 600, 512, &len, &used), SMTP_LINE_DONE);
    assert_int_equal(used, 512);
}

static void test_split_command(void **state)
{
    (void)state;
    smtp_command c;
    smtp_split_command("mail FROM:<a@b> SIZE=1  ", 24, &c);
    assert_true(smtp_verb_is(&c, "MAIL"));
    assert_false(smtp_verb_is(&c, "MAI"));
    assert_int_equal(c.arg_len, 17); /* trailing spaces dropped */
    assert_memory_equal(c.arg, "FROM:<a@b> SIZE=1", 17);
    smtp_split_command("QUIT", 4, &c);
    assert_true(smtp_verb_is(&c, "quit"));
    assert_int_equal(c.arg_len, 0);
    assert_int_equal(smtp_strip_keyword("from:  <x>", 10, "FROM:"), 7);
    assert_int_equal(smtp_strip_keyword("TO:<x>", 6, "FROM:"), 0);
}

static smtp_path_status parse(const char *s, int allow_null, int allow_pm, smtp_path *p)
{
    size_t used = 0;
    smtp_path_status st = smtp_parse_path(s, strlen(s), allow_null, allow_pm, p, &used);
    if (st == SMTP_PATH_OK)
        assert_int_equal(s[used - 1], '>');
    return st;
}

static void test_paths_valid(void **state)
{
    (void)state;
    smtp_path p;
    assert_int_equal(parse("<user@example.com>", 0, 0, &p), SMTP_PATH_OK);
    assert_string_equal(p.mailbox, "user@example.com");
    assert_int_equal(parse("<>", 1, 0, &p), SMTP_PATH_OK);
    assert_true(p.is_null);
    assert_string_equal(p.mailbox, "");
    assert_int_equal(parse("<\"john doe>x\"@example.com> SIZE=1", 0, 0, &p), SMTP_PATH_OK);
    assert_string_equal(p.mailbox, "\"john doe>x\"@example.com");
    assert_int_equal(parse("<@relay.one,@relay.two:u@example.com>", 0, 0, &p), SMTP_PATH_OK);
    assert_string_equal(p.mailbox, "u@example.com");
    assert_int_equal(parse("<Postmaster>", 0, 1, &p), SMTP_PATH_OK);
    assert_int_equal(parse("<u@[192.0.2.1]>", 0, 0, &p), SMTP_PATH_OK);
    assert_int_equal(parse("<u@[IPv6:2001:db8::1]>", 0, 0, &p), SMTP_PATH_OK);
    assert_int_equal(parse("<first.last+tag@sub-domain.example>", 0, 0, &p), SMTP_PATH_OK);
    assert_int_equal(parse("<j\xc3\xbcrgen@b\xc3\xbc"
                           "cher.example>",
                           0, 0, &p),
                     SMTP_PATH_OK);
    assert_true(p.has_utf8);
}

static void test_paths_invalid(void **state)
{
    (void)state;
    smtp_path p;
    assert_int_equal(parse("user@example.com", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<user@example.com", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<Postmaster>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<.user@example.com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<us..er@example.com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<user@-example.com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<user@example..com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<user@>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<user@[300.1.1.1]>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<us er@example.com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<\"unterminated@example.com>", 0, 0, &p), SMTP_PATH_SYNTAX);
    assert_int_equal(parse("<u@\xc3(bad.example>", 0, 0, &p), SMTP_PATH_BAD_UTF8);

    char local[80], path[400];
    memset(local, 'a', 65);
    local[65] = '\0';
    snprintf(path, sizeof(path), "<%s@example.com>", local);
    assert_int_equal(parse(path, 0, 0, &p), SMTP_PATH_LOCAL_TOO_LONG);
    char label[64];
    memset(label, 'b', 63);
    label[63] = '\0';
    snprintf(path, sizeof(path), "<a@%s.%s.%s.%s>", label, label, label, label); /* 255 + "<a@>" = 259 */
    assert_int_equal(parse(path, 0, 0, &p), SMTP_PATH_TOO_LONG);
    memset(label, 'b', 63);
    snprintf(path, sizeof(path), "<a@%s.%s.%s.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb>",
             label, label, label); /* domain 250: fits */
    assert_int_equal(parse(path, 0, 0, &p), SMTP_PATH_OK);
}

static void test_params(void **state)
{
    (void)state;
    const char *text = " SIZE=1000  BODY=8BITMIME SMTPUTF8";
    const char *cur = text, *end = text + strlen(text);
    smtp_param p;
    assert_int_equal(smtp_next_param(&cur, end, &p), 1);
    assert_true(smtp_param_is(&p, "size"));
    assert_int_equal(p.value_len, 4);
    assert_int_equal(smtp_next_param(&cur, end, &p), 1);
    assert_true(smtp_value_is(&p, "8bitmime"));
    assert_int_equal(smtp_next_param(&cur, end, &p), 1);
    assert_true(smtp_param_is(&p, "SMTPUTF8"));
    assert_null(p.value);
    assert_int_equal(smtp_next_param(&cur, end, &p), 0);

    const char *bad[] = {"=x", "SIZE=", "SIZE=a=b", "-X=1", "X\x01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cur = bad[i];
        assert_int_equal(smtp_next_param(&cur, bad[i] + strlen(bad[i]), &p), -1);
    }
}

static void test_numbers_and_xtext(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(smtp_parse_number("12345", 5, &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(smtp_parse_number("99999999999999999999999", 23, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(smtp_parse_number("12a", 3, &v), -1);
    assert_int_equal(smtp_parse_number("", 0, &v), -1);
    assert_true(smtp_xtext_valid("abc+2Bdef", 9));
    assert_false(smtp_xtext_valid("abc+2", 5));
    assert_false(smtp_xtext_valid("a=b", 3));
    assert_false(smtp_xtext_valid("a+2b", 4)); /* hex must be upper case */
}

static void test_bdat_args(void **state)
{
    (void)state;
    uint64_t size;
    int last;
    assert_int_equal(smtp_parse_bdat("100", 3, &size, &last), 0);
    assert_int_equal(size, 100);
    assert_false(last);
    assert_int_equal(smtp_parse_bdat("0 LAST", 6, &size, &last), 0);
    assert_int_equal(size, 0);
    assert_true(last);
    assert_int_equal(smtp_parse_bdat("7 last", 6, &size, &last), 0);
    assert_true(last);
    assert_int_equal(smtp_parse_bdat("", 0, &size, &last), -1);
    assert_int_equal(smtp_parse_bdat("LAST", 4, &size, &last), -1);
    assert_int_equal(smtp_parse_bdat("5 FIRST", 7, &size, &last), -1);
    assert_int_equal(smtp_parse_bdat("5x", 2, &size, &last), -1);
    assert_int_equal(smtp_parse_bdat("123456789012345678901", 21, &size, &last), -1);
}

/* mail_params - smtp_parse_mail_params over a C string, after EHLO, SIZE limit 1000 */
static smtp_params_status mail_params(const char *text, smtp_params *out, smtp_params_error *err)
{
    return smtp_parse_mail_params(text, text + strlen(text), 1, 1000, out, err);
}

static void test_mail_params(void **state)
{
    (void)state;
    smtp_params p;
    smtp_params_error e;
    assert_int_equal(mail_params(" SIZE=500 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=a+2Bb AUTH=<>", &p, &e),
                     SMTP_PARAMS_OK);
    assert_int_equal(p.size, 500);
    assert_string_equal(p.body_type, "8BITMIME");
    assert_int_equal(p.smtputf8, 1);
    assert_int_equal(mail_params("", &p, &e), SMTP_PARAMS_OK);
    assert_int_equal(p.size, 0);
    assert_null(p.body_type);
    assert_int_equal(p.smtputf8, 0);

    /* each rule's bad value, with its reply */
    static const struct {
        const char *text, *reply;
    } bad[] = {
        {" SIZE=x", "501 5.5.4 Error: SIZE needs a number"},
        {" SIZE", "501 5.5.4 Error: SIZE needs a number"},
        {" BODY=9BIT", "501 5.5.4 Error: BODY must be 7BIT, 8BITMIME or BINARYMIME"},
        {" SMTPUTF8=yes", "501 5.5.4 Error: SMTPUTF8 takes no value"},
        {" RET=ALL", "501 5.5.4 Error: RET must be FULL or HDRS"},
        {" ENVID=a+zz", "501 5.5.4 Error: ENVID must be xtext of at most 100 characters"},
        {" AUTH", "501 5.5.4 Error: AUTH must be xtext or <>"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mail_params(bad[i].text, &p, &e), SMTP_PARAMS_BAD_VALUE);
        assert_string_equal(e.reply, bad[i].reply);
    }
    char envid[120] = " ENVID=";
    memset(envid + 7, 'e', 101);
    assert_int_equal(mail_params(envid, &p, &e), SMTP_PARAMS_BAD_VALUE); /* 101 characters */
    envid[7 + 100] = '\0';
    assert_int_equal(mail_params(envid, &p, &e), SMTP_PARAMS_OK); /* 100 */

    assert_int_equal(mail_params(" SIZE=1001", &p, &e), SMTP_PARAMS_TOO_BIG);
    assert_int_equal(mail_params(" SIZE=1000", &p, &e), SMTP_PARAMS_OK);
    assert_int_equal(mail_params(" body=7BIT BODY=7BIT", &p, &e), SMTP_PARAMS_DUPLICATE);
    assert_memory_equal(e.bad.key, "BODY", 4);
    assert_int_equal(mail_params(" NOTIFY=NEVER", &p, &e), SMTP_PARAMS_UNSUPPORTED); /* RCPT's, not MAIL's */
    assert_memory_equal(e.bad.key, "NOTIFY", 6);
    assert_int_equal(mail_params(" =x", &p, &e), SMTP_PARAMS_MALFORMED);
    /* the first failure in the order given is the answer */
    assert_int_equal(mail_params(" SIZE=2000 BODY=x", &p, &e), SMTP_PARAMS_TOO_BIG);
    assert_int_equal(mail_params(" BODY=x SIZE=2000", &p, &e), SMTP_PARAMS_BAD_VALUE);
    const char *helo = " SIZE=10";
    assert_int_equal(smtp_parse_mail_params(helo, helo + strlen(helo), 0, 1000, &p, &e),
                     SMTP_PARAMS_NEED_EHLO);
}

static smtp_params_status rcpt_params(const char *text, smtp_params_error *err)
{
    return smtp_parse_rcpt_params(text, text + strlen(text), 1, err);
}

static void test_rcpt_params(void **state)
{
    (void)state;
    smtp_params_error e;
    assert_int_equal(rcpt_params(" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;a+40b", &e), SMTP_PARAMS_OK);
    assert_int_equal(rcpt_params(" NOTIFY=never", &e), SMTP_PARAMS_OK);
    const char *bad_notify[] = {" NOTIFY", " NOTIFY=SUCCESS,", " NOTIFY=SUCCESS,SOMETIMES", " NOTIFY=,DELAY"};
    for (size_t i = 0; i < sizeof(bad_notify) / sizeof(bad_notify[0]); i++) {
        assert_int_equal(rcpt_params(bad_notify[i], &e), SMTP_PARAMS_BAD_VALUE);
        assert_string_equal(e.reply,
                            "501 5.5.4 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
    }
    const char *bad_orcpt[] = {" ORCPT=rfc822", " ORCPT=;a", " ORCPT=rfc822;a+zz", " ORCPT"};
    for (size_t i = 0; i < sizeof(bad_orcpt) / sizeof(bad_orcpt[0]); i++) {
        assert_int_equal(rcpt_params(bad_orcpt[i], &e), SMTP_PARAMS_BAD_VALUE);
        assert_string_equal(e.reply, "501 5.5.4 Error: ORCPT must be addr-type;xtext");
    }
    assert_int_equal(rcpt_params(" NOTIFY=NEVER NOTIFY=NEVER", &e), SMTP_PARAMS_DUPLICATE);
    assert_int_equal(rcpt_params(" SIZE=10", &e), SMTP_PARAMS_UNSUPPORTED);
    const char *helo = " NOTIFY=NEVER";
    assert_int_equal(smtp_parse_rcpt_params(helo, helo + strlen(helo), 0, &e), SMTP_PARAMS_NEED_EHLO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_line),   cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_paths_valid), cmocka_unit_test(test_paths_invalid),
        cmocka_unit_test(test_params),      cmocka_unit_test(test_numbers_and_xtext),
        cmocka_unit_test(test_bdat_args),   cmocka_unit_test(test_mail_params),
        cmocka_unit_test(test_rcpt_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
