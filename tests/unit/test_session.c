/* test_session.c - the SMTP state machine over a fake transport (server/session.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "session.h"

#define OUT_MAX (1 << 20)

typedef struct fake {
    session *s;
    char *out;
    size_t out_len;
    int closed;
    const char *reason;
    int reset;
    int starttls;   /* the session asked for a TLS handshake */
    unsigned waits; /* wait() calls */
    uint32_t wait_ms, drip_bps;
    int64_t now;
    int async;           /* commit() leaves the answer for the test to give */
    store_msg *pending;  /* the commit waiting for an answer */
    store_msg *kept[64]; /* committed messages, in order */
    size_t nkept;
} fake;

static void fake_send(void *ctx, const char *data, size_t len)
{
    fake *f = ctx;
    assert_true(!f->closed || len > 0);
    assert_true(f->out_len + len < OUT_MAX);
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    f->out[f->out_len] = '\0';
}

static void fake_close(void *ctx, const char *reason, int reset)
{
    fake *f = ctx;
    f->closed = 1;
    f->reset = reset;
    f->reason = reason;
}

static void fake_commit(void *ctx, store_msg *m)
{
    fake *f = ctx;
    assert_true(f->nkept < 64);
    snprintf(m->id, sizeof(m->id), "ID%zu", f->nkept + 1);
    f->kept[f->nkept++] = m;
    if (f->async) {
        f->pending = m;
        return;
    }
    session_commit_done(f->s, m->id);
}

static void fake_starttls(void *ctx)
{
    fake *f = ctx;
    f->starttls = 1;
}

static void fake_wait(void *ctx, uint32_t ms)
{
    fake *f = ctx;
    f->waits++;
    f->wait_ms = ms;
}

static void fake_drip(void *ctx, uint32_t bps)
{
    fake *f = ctx;
    f->drip_bps = bps;
}

static int64_t fake_now(void *ctx)
{
    fake *f = ctx;
    return f->now;
}

static void fake_event(void *ctx, int level, const char *event, const char *text, size_t len)
{
    (void)ctx, (void)level, (void)event, (void)text, (void)len;
}

static const session_host fake_host = {fake_send, fake_close, fake_commit, fake_starttls,
                                       fake_wait, fake_drip,  fake_now,    fake_event};

static session_config cfg = {"mx.test", 1000, 100, 5, 0, 0, 0, 0, {NULL, NULL, 0}};

static fake *fake_new(void)
{
    fake *f = calloc(1, sizeof(*f));
    f->out = malloc(OUT_MAX);
    f->out[0] = '\0';
    session_info info = {1, "127.0.0.1:1234", "smtp", NULL};
    f->s = session_new(&cfg, &fake_host, f, &info);
    session_start(f->s);
    return f;
}

static void fake_free(fake *f)
{
    session_free(f->s);
    for (size_t i = 0; i < f->nkept; i++)
        store_msg_unref(f->kept[i]);
    free(f->out);
    free(f);
}

static void feed(fake *f, const char *text)
{
    session_feed(f->s, text, strlen(text));
}

/* replies - the reply codes sent so far after the greeting, as "250 250 354 ..." */
static void reply_codes(const fake *f, char *codes, size_t size)
{
    size_t o = 0;
    const char *p = strstr(f->out, "\r\n") + 2; /* skip the greeting */
    while (*p && o + 5 < size) {
        if (p[3] == ' ') { /* last line of a reply */
            memcpy(codes + o, p, 3);
            o += 3;
            codes[o++] = ' ';
        }
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        p = eol + 2;
    }
    if (o > 0)
        o--;
    codes[o] = '\0';
}

static void assert_codes(const fake *f, const char *expect)
{
    char codes[4096];
    reply_codes(f, codes, sizeof(codes));
    if (strcmp(codes, expect) != 0) {
        print_error("replies: %s\nexpected: %s\ntranscript:\n%s\n", codes, expect, f->out);
        fail();
    }
}

static void test_greeting_and_ehlo(void **state)
{
    (void)state;
    fake *f = fake_new();
    assert_true(strncmp(f->out, "220 mx.test ESMTP", 17) == 0);
    feed(f, "EHLO client.test\r\n");
    assert_non_null(strstr(f->out, "250-mx.test\r\n"));
    assert_non_null(strstr(f->out, "250-SIZE 1000\r\n"));
    assert_non_null(strstr(f->out, "250-PIPELINING\r\n"));
    assert_non_null(strstr(f->out, "250-CHUNKING\r\n"));
    assert_non_null(strstr(f->out, "250-ENHANCEDSTATUSCODES\r\n"));
    assert_non_null(strstr(f->out, "250 HELP\r\n"));
    fake_free(f);
}

static const char transaction[] = "EHLO c\r\n"
                                  "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
                                  "RCPT TO:<b@y.test>\r\n"
                                  "RCPT TO:<c@y.test> NOTIFY=SUCCESS,FAILURE\r\n"
                                  "DATA\r\n"
                                  "Subject: t\r\n\r\n..dot\r\n\xc3\xa9\r\n.\r\n"
                                  "MAIL FROM:<>\r\n"
                                  "RCPT TO:<d@y.test>\r\n"
                                  "BDAT 4\r\n"
                                  "ab\r\n"
                                  "BDAT 3 LAST\r\n"
                                  "xyz"
                                  "NOOP\r\n"
                                  "QUIT\r\n";

static const char transaction_codes[] = "250 250 250 250 354 250 250 250 250 250 250 221";

static void check_transaction_result(fake *f)
{
    assert_codes(f, transaction_codes);
    assert_true(f->closed);
    assert_int_equal(f->nkept, 2);
    store_msg *m = f->kept[0];
    assert_string_equal(m->sender, "a@x.test");
    assert_int_equal(m->nrcpts, 2);
    assert_string_equal(m->rcpts[1], "c@y.test");
    assert_string_equal(m->helo, "c");
    assert_string_equal(m->body_type, "8BITMIME");
    const char body[] = "Subject: t\r\n\r\n.dot\r\n\xc3\xa9\r\n";
    assert_int_equal(m->size, sizeof(body) - 1);
    assert_memory_equal(m->body, body, sizeof(body) - 1);
    m = f->kept[1];
    assert_string_equal(m->sender, "");
    assert_int_equal(m->size, 7);
    assert_memory_equal(m->body, "ab\r\nxyz", 7);
}

static void test_pipelined_in_one_feed(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, transaction);
    check_transaction_result(f);
    fake_free(f);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    fake *f = fake_new();
    for (size_t i = 0; i < sizeof(transaction) - 1; i++)
        session_feed(f->s, transaction + i, 1);
    check_transaction_result(f);
    fake_free(f);
}

static void test_random_splits(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    for (int round = 0; round < 200; round++) {
        fake *f = fake_new();
        size_t off = 0, n = sizeof(transaction) - 1;
        while (off < n) {
            seed = seed * 1103515245u + 12345u;
            size_t chunk = 1 + (seed >> 16) % 40;
            if (chunk > n - off)
                chunk = n - off;
            session_feed(f->s, transaction + off, chunk);
            off += chunk;
        }
        check_transaction_result(f);
        fake_free(f);
    }
}

static void test_async_commit_holds_pipelined_input(void **state)
{
    (void)state;
    fake *f = fake_new();
    f->async = 1;
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\nQUIT\r\n");
    assert_codes(f, "250 250 250 354");
    assert_false(session_wants_input(f->s));
    assert_non_null(f->pending);
    feed(f, "RSET\r\n"); /* arrives while the commit is in flight: kept, in order, so after QUIT: ignored */
    assert_codes(f, "250 250 250 354");
    session_commit_done(f->s, f->pending->id);
    assert_codes(f, "250 250 250 354 250 250 221");
    assert_true(f->closed);
    assert_non_null(strstr(f->out, "250 2.0.0 Ok: queued as ID1\r\n"));
    fake_free(f);
}

static void test_commit_failure(void **state)
{
    (void)state;
    fake *f = fake_new();
    f->async = 1;
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n");
    session_commit_done(f->s, NULL);
    assert_codes(f, "250 250 250 354 451");
    assert_false(session_in_transaction(f->s));
    fake_free(f);
}

static void test_sequence_errors(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, "MAIL FROM:<a@x.test>\r\nHELO c\r\nRCPT TO:<b@y.test>\r\nDATA\r\nMAIL FROM:<a@x.test>\r\n"
            "DATA\r\n");
    assert_codes(f, "503 250 503 503 250 554");
    feed(f, "MAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "503 250 503 503 250 554 503 421");
    assert_true(f->closed); /* 5 errors with max_errors 5 */
    assert_non_null(strstr(f->out, "421 4.7.0 mx.test Error: too many errors"));
    feed(f, "NOOP\r\n"); /* ignored once closing */
    assert_non_null(strstr(f->out, "too many errors, closing connection\r\n"));
    assert_null(strstr(strstr(f->out, "421 4.7.0"), "250 2.0.0"));
    fake_free(f);
}

static void test_helo_disables_extensions(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, "HELO c\r\nMAIL FROM:<a@x.test> SIZE=10\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT "
            "2\r\nxy");
    assert_codes(f, "250 555 250 250 503");
    fake_free(f);
}

static void test_parameters(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, "EHLO c\r\n"
            "MAIL FROM:<a@x.test> SIZE=1001\r\n"     /* over the limit: 552 */
            "MAIL FROM:<a@x.test> FOO=bar\r\n"       /* unknown: 555 */
            "MAIL FROM:<a@x.test> BODY=9BIT\r\n"     /* bad value: 501 */
            "MAIL FROM:<a@x.test> SIZE=1 SIZE=2\r\n" /* duplicate: 501 */
            "MAIL FROM:a@x.test\r\n"                 /* no brackets: 501 */
            "MAIL FROM:<j\xc3\xbc@x.test>\r\n");     /* UTF-8 without SMTPUTF8: 553 */
    assert_codes(f, "250 552 555 501 501 501 553");
    assert_false(f->closed); /* four errors: 555 and the 501s (552 and 553 are policy, not errors) */
    fake_free(f);

    f = fake_new();
    feed(f,
         "EHLO c\r\nMAIL FROM:<j\xc3\xbc@x.test> SMTPUTF8 RET=HDRS ENVID=abc+2B\r\n"
         "RCPT TO:<\xc3\xa9@y.test> ORCPT=rfc822;e+40y.test\r\nRCPT TO:<x@y.test> NOTIFY=NEVER,SUCCESS\r\n");
    assert_codes(f, "250 250 250 501");
    fake_free(f);
}

static void test_recipient_limit(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    char line[64];
    for (int i = 0; i < 101; i++) {
        snprintf(line, sizeof(line), "RCPT TO:<r%d@y.test>\r\n", i);
        feed(f, line);
    }
    assert_non_null(strstr(f->out, "452 4.5.3 Error: too many recipients\r\n"));
    feed(f, "DATA\r\nx\r\n.\r\n");
    assert_int_equal(f->nkept, 1);
    assert_int_equal(f->kept[0]->nrcpts, 100);
    fake_free(f);
}

static void test_message_too_big(void **state)
{
    (void)state;
    fake *f = fake_new();
    char body[1200];
    memset(body, 'a', sizeof(body));
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    for (int i = 0; i < 3; i++) {
        session_feed(f->s, body, 500);
        feed(f, "\r\n");
    }
    feed(f, ".\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 900\r\n");
    session_feed(f->s, body, 900);
    feed(f, "BDAT 200 LAST\r\n");
    session_feed(f->s, body, 200);
    feed(f, "NOOP\r\n");
    assert_codes(f, "250 250 250 354 552 250 250 250 552 250");
    assert_int_equal(f->nkept, 0);
    fake_free(f);
}

static void test_long_lines(void **state)
{
    (void)state;
    fake *f = fake_new();
    static char big[20000];
    memset(big, 'x', sizeof(big));
    feed(f, "EHLO c\r\n");
    session_feed(f->s, big, sizeof(big)); /* no LF: 500 once, then skipped up to the LF */
    session_feed(f->s, big, sizeof(big));
    feed(f, "\r\nNOOP\r\n");
    char line[600] = "NOOP ";
    memset(line + 5, 'y', 520);
    strcpy(line + 525, "\r\n"); /* 527 octets: over the 512 command-line limit */
    feed(f, line);
    assert_codes(f, "250 500 250 500");
    fake_free(f);

    cfg.max_message_size = 5000;
    f = fake_new();
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    session_feed(f->s, big, 998); /* 998 + CRLF = 1000 octets: the limit */
    feed(f, "\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    session_feed(f->s, big, 999); /* 999 + CRLF = 1001 octets: over RFC 5321 4.5.3.1.6 */
    feed(f, "\r\n.\r\n");
    assert_codes(f, "250 250 250 354 250 250 250 354 554");
    fake_free(f);
    cfg.max_message_size = 1000;
}

static void test_nul_and_unknown(void **state)
{
    (void)state;
    fake *f = fake_new();
    session_feed(f->s, "NO\0OP\r\n", 7);
    feed(f, "FROB\r\nVRFY\r\nVRFY someone\r\nHELP\r\nEXPN list\r\nRSET x\r\nRSET\r\n");
    assert_codes(f, "500 500 501 252 214 502 501 250");
    fake_free(f);
}

static void test_timeout_and_shutdown(void **state)
{
    (void)state;
    fake *f = fake_new();
    session_timeout(f->s);
    assert_true(f->closed);
    assert_non_null(strstr(f->out, "421 4.4.2 mx.test"));
    fake_free(f);
    f = fake_new();
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    assert_true(session_in_transaction(f->s));
    session_shutdown(f->s);
    assert_true(f->closed);
    assert_non_null(strstr(f->out, "421 4.3.2 mx.test"));
    fake_free(f);
}

static void test_ehlo_resets_transaction(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nEHLO d\r\nRCPT TO:<b@y.test>\r\nMAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "250 250 250 503 250");
    fake_free(f);
}

int main(void)
{
    log_setup(stderr, LOG_FORMAT_TEXT, LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_and_ehlo),
        cmocka_unit_test(test_pipelined_in_one_feed),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_random_splits),
        cmocka_unit_test(test_async_commit_holds_pipelined_input),
        cmocka_unit_test(test_commit_failure),
        cmocka_unit_test(test_sequence_errors),
        cmocka_unit_test(test_helo_disables_extensions),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_recipient_limit),
        cmocka_unit_test(test_message_too_big),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_nul_and_unknown),
        cmocka_unit_test(test_timeout_and_shutdown),
        cmocka_unit_test(test_ehlo_resets_transaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
