/* test_session.c - the SMTP state machine over a fake transport (server/session.c) */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_run_helper.h"
#include "log.h"
#include "session.h"

#define OUT_MAX      (1 << 20)
#define FAKE_WALL_MS 1700000000123 /* the host's wall clock: a message's times come from it */

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
    size_t drip_from; /* out_len when drip() was called: the output before is not dripped */
    int64_t now;
    int async;           /* commit() leaves the answer for the test to give */
    store_msg *pending;  /* the commit waiting for an answer */
    store_msg *kept[64]; /* committed messages, in order */
    size_t nkept;
    fault_run *run; /* the profile in force (NULL: no fault engine) */
    fault_conn *faults;
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
    f->drip_from = f->out_len;
}

static int64_t fake_now(void *ctx)
{
    fake *f = ctx;
    return f->now;
}

static int64_t fake_wall_ms(void *ctx)
{
    (void)ctx;
    return FAKE_WALL_MS;
}

static void fake_event(void *ctx, int level, const char *event, const char *text, size_t len)
{
    (void)ctx, (void)level, (void)event, (void)text, (void)len;
}

static const session_host fake_host = {fake_send, fake_close, fake_commit,  fake_starttls, fake_wait,
                                       fake_drip, fake_now,   fake_wall_ms, fake_event};

static session_config cfg = {"mx.test", 1000, 100, 5, 0, 0, 0, 0, {NULL, NULL, 0}, NULL};

/* fake_with - a session under config c, and under profile (JSON) when it is not NULL, on listener */
static fake *fake_with(const session_config *c, const char *profile, const char *listener)
{
    fake *f = calloc(1, sizeof(*f));
    f->out = malloc(OUT_MAX);
    f->out[0] = '\0';
    if (profile != NULL) {
        f->run = test_run(profile, 0, 1);
        fault_addr a = {4, {127, 0, 0, 1}};
        f->faults = fault_conn_new(f->run, listener, &a);
    }
    session_info info = {1, "127.0.0.1:1234", listener, f->faults};
    f->s = session_new(c, &fake_host, f, &info);
    session_start(f->s);
    return f;
}

static fake *fake_new(void)
{
    return fake_with(&cfg, NULL, "smtp");
}

static void fake_free(fake *f)
{
    session_free(f->s);
    for (size_t i = 0; i < f->nkept; i++)
        store_msg_unref(f->kept[i]);
    fault_conn_free(f->faults);
    fault_run_unref(f->run);
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
    assert_int_equal(m->started_ms, FAKE_WALL_MS); /* the session's clock is its host's */
    assert_int_equal(m->received_ms, FAKE_WALL_MS);
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

/* An EHLO in a transaction ends it: its EHLO text no longer sees the sender (which it used to read freed). */
static void test_ehlo_text_after_a_transaction(void **state)
{
    (void)state;
    fake *f = fake_with(&cfg, "{\"server\": {\"ehlo_text\": \"mx for [{sender}]\"}}", "smtp");
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nEHLO d\r\n");
    assert_codes(f, "250 250 250");
    const char *second = strstr(f->out, "250 2.1.0");
    assert_non_null(second);
    assert_non_null(strstr(second, "250-mx for []\r\n"));
    fake_free(f);
}

/* -- fault gates: a real fault_run compiled from JSON ------------------------------------------------- */

#define TX "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"

/* fake_rule - a session whose profile is one rule at stage doing act (JSON), under config c */
static fake *fake_rule_cfg(const session_config *c, const char *stage, const char *act)
{
    char json[2048];
    snprintf(json, sizeof(json), "{\"rules\": [{\"when\": {\"stage\": \"%s\"}, \"do\": %s}]}", stage, act);
    return fake_with(c, json, "smtp");
}

static fake *fake_rule(const char *stage, const char *act)
{
    return fake_rule_cfg(&cfg, stage, act);
}

/* after_greeting - the output after the greeting line */
static const char *after_greeting(const fake *f)
{
    const char *p = strstr(f->out, "\r\n");
    assert_non_null(p);
    return p + 2;
}

static void test_fault_reply_at_each_stage(void **state)
{
    (void)state;
    static const struct {
        const char *stage, *script, *codes;
    } cases[] = {
        {"ehlo", "EHLO c\r\nMAIL FROM:<a@x.test>\r\n", "550 503"},
        {"mail", TX, "250 550 503"},
        {"rcpt", TX "DATA\r\n", "250 250 550 554"},
        {"data", TX "DATA\r\nRSET\r\n", "250 250 250 550 250"},
        {"data", TX "BDAT 2 LAST\r\nxyNOOP\r\n",
         "250 250 250 550 250"}, /* the first BDAT is the data stage */
        {"data_end", TX "DATA\r\nhi\r\n.\r\nRSET\r\n", "250 250 250 354 550 250"},
        {"rset", "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nRCPT TO:<b@y.test>\r\n", "250 250 550 250"},
        {"vrfy", "VRFY a\r\nEXPN b\r\n", "550 550"},
        {"noop", "NOOP\r\n", "550"},
        {"help", "HELP\r\n", "550"},
        {"quit", "QUIT\r\n", "550"},
        /* injected replies are not client errors: six of them do not reach max_errors */
        {"unknown", "FROB\r\nFROB\r\nFROB\r\nFROB\r\nFROB\r\nFROB\r\nNOOP\r\n",
         "550 550 550 550 550 550 250"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake *f = fake_rule(cases[i].stage, "{\"reply\": \"550 5.7.1 injected\"}");
        feed(f, cases[i].script);
        assert_codes(f, cases[i].codes);
        assert_non_null(strstr(f->out, "\r\n550 5.7.1 injected\r\n"));
        assert_int_equal(f->nkept, 0);
        assert_int_equal(f->closed, strcmp(cases[i].stage, "quit") == 0); /* QUIT ends the session anyway */
        fake_free(f);
    }
}

static void test_fault_positive_reply(void **state)
{
    (void)state;
    /* the command happens, with the injected text */
    fake *f = fake_rule("data_end", "{\"reply\": \"250 2.0.0 OK id=abc\"}");
    feed(f, TX "DATA\r\nhi\r\n.\r\nNOOP\r\n");
    assert_codes(f, "250 250 250 354 250 250");
    assert_non_null(strstr(f->out, "\r\n250 2.0.0 OK id=abc\r\n"));
    assert_null(strstr(f->out, "queued as"));
    assert_int_equal(f->nkept, 1);
    assert_false(f->kept[0]->discard);
    fake_free(f);

    f = fake_rule("ehlo", "{\"reply\": \"250 mx.custom\"}");
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "250 250");
    assert_true(strncmp(after_greeting(f), "250 mx.custom\r\n250 2.1.0", 24) ==
                0); /* one line, not the list */
    assert_string_equal(session_helo(f->s), "c");
    fake_free(f);

    f = fake_rule("rcpt", "{\"reply\": [\"250-2.1.5 fine\", \"but slow\"]}");
    feed(f, TX "DATA\r\n");
    assert_codes(f, "250 250 250 354");
    assert_non_null(strstr(f->out, "\r\n250-2.1.5 fine\r\n250 but slow\r\n354 "));
    fake_free(f);

    /* at the first BDAT (the data stage), the text of the chunk's reply */
    f = fake_rule("data", "{\"reply\": \"250 2.0.0 chunk custom\"}");
    feed(f, TX "BDAT 2\r\nxyBDAT 1 LAST\r\nz");
    assert_codes(f, "250 250 250 250 250");
    assert_non_null(strstr(f->out, "\r\n250 2.0.0 chunk custom\r\n250 2.0.0 Ok: queued as ID1\r\n"));
    assert_memory_equal(f->kept[0]->body, "xyz", 3);
    fake_free(f);

    f = fake_rule("noop", "{\"reply\": \"354 odd but allowed\"}");
    feed(f, "NOOP\r\nNOOP\r\n");
    assert_codes(f, "354 354");
    fake_free(f);
}

static void test_fault_delay(void **state)
{
    (void)state;
    /* the decision is taken once, before the delay: "times": 1 still fires after it */
    fake *f = fake_with(&cfg,
                        "{\"rules\": [{\"when\": {\"stage\": \"mail\", \"times\": 1},"
                        " \"do\": {\"delay\": 2000, \"reply\": \"451 4.3.0 later\"}}]}",
                        "smtp");
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nMAIL FROM:<b@x.test>\r\n");
    assert_codes(f, "250");
    assert_int_equal(f->waits, 1);
    assert_int_equal(f->wait_ms, 2000);
    assert_false(session_wants_input(f->s));
    feed(f, "NOOP\r\n"); /* arrives during the delay: kept, in order */
    assert_codes(f, "250");
    f->now += 2000;
    session_resume(f->s);
    assert_codes(f, "250 451 250 250");
    assert_true(session_wants_input(f->s));
    assert_int_equal(f->waits, 1);
    session_resume(f->s); /* a resume nobody asked for does nothing */
    assert_codes(f, "250 451 250 250");
    fake_free(f);

    /* a delay alone: a slow server, then the normal reply */
    f = fake_rule("greeting", "{\"delay\": \"15s\"}");
    assert_string_equal(f->out, "");
    assert_int_equal(f->wait_ms, 15000);
    feed(f, "EHLO c\r\n");
    assert_string_equal(f->out, "");
    session_resume(f->s);
    assert_true(strncmp(f->out, "220 mx.test ESMTP smtpfault\r\n", 29) == 0);
    assert_codes(f, "250");
    fake_free(f);

    f = fake_rule("data_end", "{\"delay\": 500}");
    feed(f, TX "DATA\r\nhi\r\n.\r\nNOOP\r\n");
    assert_codes(f, "250 250 250 354");
    assert_int_equal(f->nkept, 0);
    session_resume(f->s);
    assert_codes(f, "250 250 250 354 250 250");
    assert_int_equal(f->nkept, 1);
    fake_free(f);

    f = fake_rule("quit", "{\"delay\": 10}");
    feed(f, "QUIT\r\n");
    assert_false(f->closed); /* QUIT waits for its delay too */
    session_resume(f->s);
    assert_codes(f, "221");
    assert_true(f->closed);
    fake_free(f);
}

static void test_fault_drip(void **state)
{
    (void)state;
    fake *f = fake_rule("mail", "{\"drip\": 10}");
    feed(f, TX);
    assert_codes(f, "250 250"); /* the reply is out, for the host to drip */
    assert_int_equal(f->drip_bps, 10);
    /* only MAIL's reply: the EHLO reply before it in the batch goes at once */
    assert_string_equal(f->out + f->drip_from, "250 2.1.0 Sender <a@x.test> OK\r\n");
    assert_false(session_wants_input(f->s)); /* nothing read meanwhile */
    session_resume(f->s);
    assert_codes(f, "250 250 250");
    assert_int_equal(f->waits, 0);
    fake_free(f);

    /* the first BDAT: its chunk's reply is dripped */
    f = fake_rule("data", "{\"drip\": 10}");
    feed(f, TX "BDAT 2");
    feed(f, "\r\nx");
    assert_int_equal(f->drip_bps, 0);
    feed(f, "yNOOP\r\n");
    assert_codes(f, "250 250 250 250");
    assert_int_equal(f->drip_bps, 10);
    session_resume(f->s);
    assert_codes(f, "250 250 250 250 250");
    fake_free(f);

    f = fake_rule("greeting", "{\"drip\": 1, \"reply\": \"220 slow.test ESMTP\"}");
    assert_string_equal(f->out, "220 slow.test ESMTP\r\n");
    assert_int_equal(f->drip_bps, 1);
    feed(f, "EHLO c\r\n");
    assert_string_equal(f->out, "220 slow.test ESMTP\r\n");
    session_resume(f->s);
    assert_codes(f, "250");
    fake_free(f);
}

static void test_fault_truncate(void **state)
{
    (void)state;
    fake *f = fake_rule("ehlo", "{\"truncate\": 5}");
    feed(f, "EHLO c\r\nNOOP\r\n");
    assert_string_equal(after_greeting(f), "250-m");
    assert_true(f->closed);
    assert_false(f->reset);
    assert_string_equal(f->reason, "fault: reply truncated");
    fake_free(f);

    f = fake_rule("mail", "{\"reply\": \"550 5.7.1 nope\", \"truncate\": 3}");
    feed(f, TX);
    assert_string_equal(strstr(f->out, "250 HELP\r\n") + 10, "550");
    assert_true(f->closed);
    fake_free(f);

    /* at the data stage: the 354 of DATA, or the reply to the first BDAT chunk once it is read */
    f = fake_rule("data", "{\"truncate\": 5}");
    feed(f, TX "DATA\r\nxy\r\n.\r\n");
    assert_string_equal(strstr(f->out, "250 2.1.5 Recipient <b@y.test> OK\r\n") + 35, "354 E");
    assert_true(f->closed);
    fake_free(f);
    f = fake_rule("data", "{\"truncate\": 5}");
    feed(f, TX "BDAT 2\r\n");
    assert_false(f->closed);
    feed(f, "xyNOOP\r\n");
    assert_string_equal(strstr(f->out, "250 2.1.5 Recipient <b@y.test> OK\r\n") + 35, "250 2");
    assert_true(f->closed);
    fake_free(f);

    /* longer than the reply: all of it, then the close */
    f = fake_rule("noop", "{\"truncate\": 4096}");
    feed(f, "NOOP\r\nNOOP\r\n");
    assert_string_equal(after_greeting(f), "250 2.0.0 Ok\r\n");
    assert_true(f->closed);
    fake_free(f);
}

static void test_fault_hang(void **state)
{
    (void)state;
    fake *f = fake_rule("mail", "{\"hang\": true}");
    feed(f, TX "NOOP\r\n");
    assert_codes(f, "250");
    assert_false(f->closed);
    assert_true(session_discards_input(f->s));
    assert_false(session_wants_input(f->s));
    size_t len = f->out_len;
    feed(f, "QUIT\r\n");
    assert_int_equal(f->out_len, len);
    assert_false(f->closed);
    session_timeout(f->s); /* the idle timeout closes without a word */
    assert_true(f->closed);
    assert_int_equal(f->out_len, len);
    fake_free(f);

    f = fake_rule("quit", "{\"hang\": true}");
    feed(f, "QUIT\r\n");
    assert_false(f->closed); /* not even QUIT ends it */
    assert_string_equal(session_state_name(f->s), "hang");
    fake_free(f);
}

static void test_fault_discard(void **state)
{
    (void)state;
    fake *f = fake_rule("data_end", "{\"discard\": true}");
    feed(f, TX "DATA\r\nhi\r\n.\r\n"
               "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 2 LAST\r\nxy");
    assert_codes(f, "250 250 250 354 250 250 250 250");
    assert_non_null(strstr(f->out, "250 2.0.0 Ok: queued as ID1\r\n"));
    assert_non_null(strstr(f->out, "250 2.0.0 Ok: queued as ID2\r\n"));
    assert_int_equal(f->nkept, 2);
    assert_true(f->kept[0]->discard);
    assert_true(f->kept[1]->discard);
    assert_memory_equal(f->kept[1]->body, "xy", 2);
    fake_free(f);
}

static void test_fault_greeting_refusal(void **state)
{
    (void)state;
    fake *f = fake_rule("greeting", "{\"reply\": \"554 5.3.2 No service here\"}");
    assert_string_equal(f->out, "554 5.3.2 No service here\r\n");
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nNOOP\r\nQUIT\r\nNOOP\r\n");
    assert_codes(f, "503 503 503 221");
    assert_non_null(strstr(f->out, "503 5.5.1 Error: the server refused service at the greeting; only QUIT"));
    assert_true(f->closed);
    fake_free(f);

    f = fake_rule("greeting", "{\"reply\": \"421 4.3.2 Going down\"}");
    assert_string_equal(f->out, "421 4.3.2 Going down\r\n");
    assert_true(f->closed); /* a 421 closes */
    feed(f, "EHLO c\r\n");
    assert_string_equal(f->out, "421 4.3.2 Going down\r\n");
    fake_free(f);
}

static void test_fault_close(void **state)
{
    (void)state;
    fake *f = fake_rule("rcpt", "{\"reply\": \"421 4.7.0 Try again later\"}");
    feed(f, TX "DATA\r\n");
    assert_codes(f, "250 250 421");
    assert_true(f->closed);
    assert_false(f->reset);
    fake_free(f);

    f = fake_rule("rcpt", "{\"reply\": \"421 4.7.0 bye\", \"close\": \"reset\"}");
    feed(f, TX);
    assert_codes(f, "250 250 421");
    assert_true(f->reset);
    fake_free(f);

    /* a close without a reply, or after the normal one */
    f = fake_rule("mail", "{\"close\": \"reset\"}");
    feed(f, TX);
    assert_codes(f, "250");
    assert_true(f->closed);
    assert_true(f->reset);
    assert_string_equal(f->reason, "fault: connection reset");
    fake_free(f);

    f = fake_rule("data_end", "{\"reply\": \"250 2.0.0 kept\", \"close\": true}");
    feed(f, TX "DATA\r\nhi\r\n.\r\nNOOP\r\n");
    assert_codes(f, "250 250 250 354 250");
    assert_int_equal(f->nkept, 1);
    assert_true(f->closed);
    assert_false(f->reset);
    fake_free(f);

    /* raw bytes instead of a reply: the command does not happen */
    f = fake_rule("mail", "{\"raw\": \"250 no CRLF\"}");
    feed(f, TX);
    assert_non_null(strstr(f->out, "250 HELP\r\n250 no CRLF503 5.5.1 Error: need MAIL command\r\n"));
    fake_free(f);
}

static void test_fault_profile_settings(void **state)
{
    (void)state;
    fake *f = fake_with(&cfg,
                        "{\"server\": {\"hostname\": \"smtp.gmail.com\", \"greeting\": \"ESMTP a1 - gsmtp\","
                        " \"size\": \"2K\", \"max_recipients\": 1}, \"ehlo\": {\"remove\": [\"CHUNKING\"]}}",
                        "smtp");
    assert_true(strncmp(f->out, "220 smtp.gmail.com ESMTP a1 - gsmtp\r\n", 37) == 0);
    feed(f, TX "RCPT TO:<c@y.test>\r\nQUIT\r\n");
    assert_non_null(strstr(f->out, "250-smtp.gmail.com\r\n"));
    assert_non_null(strstr(f->out, "250-SIZE 2048\r\n"));
    assert_null(strstr(f->out, "CHUNKING"));
    assert_null(strstr(f->out, "BINARYMIME")); /* goes with CHUNKING */
    assert_codes(f, "250 250 250 452 221");
    assert_non_null(strstr(f->out, "221 2.0.0 smtp.gmail.com Bye"));
    fake_free(f);

    /* a rate limit, counted from the messages the session commits */
    f = fake_with(&cfg, "{\"limits\": {\"messages_per_connection\": 1}}", "smtp");
    feed(f, TX "DATA\r\nhi\r\n.\r\nMAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "250 250 250 354 250 421");
    assert_true(f->closed);
    fake_free(f);

    /* a rule on the listener: another listener is not affected */
    const char *json = "{\"rules\": [{\"when\": {\"stage\": \"mail\", \"listener\": \"submission\"},"
                       " \"do\": {\"reply\": \"550 sub\"}}]}";
    f = fake_with(&cfg, json, "submission");
    feed(f, TX);
    assert_codes(f, "250 550 503");
    fake_free(f);
    f = fake_with(&cfg, json, "smtp");
    feed(f, TX);
    assert_codes(f, "250 250 250");
    fake_free(f);
}

/* placeholders in injected replies, the banner and the EHLO text; a message limit at another stage */
static void test_fault_placeholders(void **state)
{
    (void)state;
    fake *f = fake_with(
        &cfg,
        "{\"server\": {\"banner\": \"mx.{listener} ESMTP {{ready}} for {client}\","
        " \"ehlo_text\": \"mx at your service, [{client}], {helo}\"},"
        " \"limits\": {\"messages_per_connection\": {\"max\": 1, \"at\": \"rcpt\"}},"
        " \"rules\": [{\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"bad*\"},"
        " \"do\": {\"reply\": \"550 5.1.1 <{rcpt}>: unknown (from {sender} at {hostname}{user})\"}},"
        " {\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"ok*\"},"
        " \"do\": {\"reply\": \"250 2.1.5 {rcpt} fine\"}}]}",
        "smtp");
    assert_true(strncmp(f->out, "220 mx.smtp ESMTP {ready} for 127.0.0.1\r\n", 42) == 0);
    feed(f, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<bad@y.test>\r\nRCPT TO:<ok@y.test>\r\n"
            "DATA\r\nhi\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\n");
    assert_non_null(strstr(f->out, "250-mx at your service, [127.0.0.1], c.test\r\n"));
    assert_non_null(strstr(f->out, "550 5.1.1 <bad@y.test>: unknown (from a@x.test at mx.test)\r\n"));
    assert_non_null(strstr(f->out, "250 2.1.5 ok@y.test fine\r\n"));
    /* the second message's RCPT, not its MAIL, meets the limit */
    assert_codes(f, "250 250 550 250 354 250 250 421");
    fake_free(f);
}

/* assert_reply_lines - every line of the output ends with CRLF and fits RFC 5321's 512 octets (4.5.3.1.5) */
static void assert_reply_lines(const fake *f)
{
    for (const char *p = f->out, *end = f->out + f->out_len; p < end;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(lf);
        assert_true(lf > p && lf[-1] == '\r');
        if (lf + 1 - p > 512) {
            print_error("a reply line of %zu octets: %.40s...\n", (size_t)(lf + 1 - p), p);
            fail();
        }
        p = lf + 1;
    }
}

/* count_char - occurrences of c in the output */
static size_t count_char(const fake *f, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < f->out_len; i++)
        n += f->out[i] == c;
    return n;
}

/* long placeholder values: the whole reply arrives, folded into lines of at most 512 octets */
static void test_fault_placeholders_long_values(void **state)
{
    (void)state;
    static char profile[4096], helo[520];
    size_t o = (size_t)snprintf(profile, sizeof(profile),
                                "{\"server\": {\"banner\": \"{hostname} {hostname} {hostname}\","
                                " \"ehlo_text\": \"{helo} {helo}\"},"
                                " \"rules\": [{\"when\": {\"stage\": \"mail\"}, \"do\": {\"reply\": [");
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(profile + o, sizeof(profile) - o, "\"550-5.7.1 {helo}\", ");
    snprintf(profile + o, sizeof(profile) - o, "\"550 5.7.1 {helo}{helo}\"]}}]}");
    char host[251];
    memset(host, 'm', 250);
    host[250] = '\0';
    session_config c = cfg;
    c.hostname = host;
    fake *f = fake_with(&c, profile, "smtp");
    memset(helo, 'h', 500);
    snprintf(helo + 500, sizeof(helo) - 500, "\r\n");
    feed(f, "EHLO ");
    feed(f, helo);
    feed(f, "MAIL FROM:<a@x.test>\r\nNOOP\r\n");
    assert_reply_lines(f);
    /* 3 host names in the banner; 2 + 20 + 2 values of 500 in the EHLO and the MAIL replies */
    assert_int_equal(count_char(f, 'm'), 3 * 250);
    assert_int_equal(count_char(f, 'h'), 24 * 500);
    assert_codes(f, "220 250 550 250");
    /* every piece of a folded line keeps the enhanced status code; the last line ends the reply */
    assert_non_null(strstr(f->out, "h\r\n550-5.7.1 hhh"));
    assert_non_null(strstr(f->out, "h\r\n550 5.7.1 hhh"));
    assert_non_null(strstr(f->out, "h\r\n250 2.0.0"));
    fake_free(f);
}

/* one budget shared by two sessions: content and SIZE= reservations count until dropped or committed */
static void test_inflight_budget(void **state)
{
    (void)state;
    session_budget budget = {0, 100};
    session_config c = cfg;
    c.inflight = &budget;
    fake *a = fake_with(&c, NULL, "smtp"), *b = fake_with(&c, NULL, "smtp");
    a->async = 1;
    feed(a, "EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n");
    feed(a, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n"); /* 72 */
    assert_int_equal(budget.used, 72);
    /* SIZE= over what is left: 452 at MAIL; within it, reserved at MAIL */
    feed(b, "EHLO b\r\nMAIL FROM:<b@x.test> SIZE=29\r\nMAIL FROM:<b@x.test> SIZE=28\r\n");
    assert_int_equal(budget.used, 100);
    assert_codes(b, "250 452 250");
    /* content within the reservation needs nothing more; 5 bytes past it find no room: 452 after the dot */
    feed(b, "RCPT TO:<r@y.test>\r\nDATA\r\n01234567890123456789012345\r\n");
    assert_int_equal(budget.used, 100);
    feed(b, "01234\r\n");
    assert_int_equal(budget.used, 72); /* b's message is lost: what it held goes back at once */
    feed(b, ".\r\n");
    assert_codes(b, "250 452 250 250 354 452");
    assert_int_equal(budget.used, 72);
    feed(a, "0123456789012345678901234\r\n"); /* 27 more: 99 */
    feed(b, "MAIL FROM:<b@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\nxx\r\n.\r\nRSET\r\n");
    assert_codes(b, "250 452 250 250 354 452 250 250 354 452 250");
    feed(a, ".\r\n"); /* the commit is pending: the content still counts */
    assert_int_equal(budget.used, 99);
    feed(b, "MAIL FROM:<b@x.test> SIZE=2\r\nMAIL FROM:<b@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n");
    assert_codes(b, "250 452 250 250 354 452 250 250 354 452 250 452 250 250 354");
    session_commit_done(a->s, a->pending->id);
    assert_int_equal(budget.used, 0);
    feed(b, "xx\r\n.\r\n");
    assert_int_equal(budget.used, 0);
    /* a reservation is given back with its transaction, and by a session freed mid-message */
    feed(b, "MAIL FROM:<b@x.test> SIZE=50\r\n");
    assert_int_equal(budget.used, 50);
    feed(b, "RSET\r\n");
    assert_int_equal(budget.used, 0);
    feed(a, "MAIL FROM:<a@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\nabc\r\n");
    assert_int_equal(budget.used, 5);
    fake_free(a);
    assert_int_equal(budget.used, 0);
    assert_codes(b, "250 452 250 250 354 452 250 250 354 452 250 452 250 250 354 250 250 250");
    fake_free(b);
}

static void test_fault_greylist_and_magic(void **state)
{
    (void)state;
    fake *f = fake_rule("rcpt", "{\"greylist\": \"30s\"}");
    feed(f, TX "RCPT TO:<c@y.test>\r\n");
    assert_codes(f, "250 250 450 450");
    assert_non_null(strstr(f->out,
                           "450 4.2.0 <b@y.test>: Recipient address rejected: Greylisted, try again in 30 "
                           "seconds\r\n"));
    f->now += 29999;
    feed(f, "RCPT TO:<b@y.test>\r\n");
    assert_codes(f, "250 250 450 450 450");
    f->now += 1;
    feed(f, "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n");
    assert_codes(f, "250 250 450 450 450 250 250");
    fake_free(f);

    /* magic addresses work under a profile that says nothing about them */
    f = fake_with(&cfg, "{}", "smtp");
    feed(f,
         "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<rcpt550@x.test>\r\nRCPT TO:<b@y.test>\r\n"
         "DATA\r\nhi\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<dataend554_5.7.1@y.test>\r\nDATA\r\nhi\r\n.\r\n"
         "MAIL FROM:<mail421@x.test>\r\nNOOP\r\n");
    assert_codes(f, "250 250 550 250 354 250 250 250 354 554 421");
    assert_non_null(strstr(f->out, "550 5.1.1 Recipient address rejected: User unknown\r\n"));
    assert_non_null(strstr(f->out, "554 5.7.1 Transaction failed\r\n"));
    assert_int_equal(f->nkept, 1);
    assert_true(f->closed);
    fake_free(f);
    f = fake_with(&cfg, "{\"magic\": false}", "smtp");
    feed(f, TX);
    assert_codes(f, "250 250 250");
    fake_free(f);
}

static void test_fault_delay_pipelined(void **state)
{
    (void)state;
    /* a delay at the first BDAT: the command and its chunk are taken once the delay is over */
    fake *f = fake_rule("data", "{\"delay\": 100}");
    feed(f, TX "BDAT 3 LAST\r\nabcNOOP\r\n");
    assert_codes(f, "250 250 250");
    session_resume(f->s);
    assert_codes(f, "250 250 250 250 250");
    assert_int_equal(f->nkept, 1);
    assert_memory_equal(f->kept[0]->body, "abc", 3);
    fake_free(f);

    /* a delay at rcpt with the rest of the transaction pipelined behind it */
    f = fake_rule("rcpt", "{\"delay\": 100, \"reply\": \"250 2.1.5 slowly\"}");
    feed(f, TX "DATA\r\nhi\r\n.\r\nQUIT\r\n");
    assert_codes(f, "250 250");
    session_resume(f->s);
    assert_codes(f, "250 250 250 354 250 221");
    assert_non_null(strstr(f->out, "250 2.1.5 slowly\r\n354 "));
    fake_free(f);

    /* an injected positive reply waits for an asynchronous commit */
    f = fake_rule("data_end", "{\"reply\": \"250 2.0.0 OK id=later\"}");
    f->async = 1;
    feed(f, TX "DATA\r\nhi\r\n.\r\nNOOP\r\n");
    assert_codes(f, "250 250 250 354");
    session_commit_done(f->s, f->pending->id);
    assert_codes(f, "250 250 250 354 250 250");
    assert_non_null(strstr(f->out, "250 2.0.0 OK id=later\r\n250 2.0.0 Ok\r\n"));
    fake_free(f);
}

/* -- STARTTLS and AUTH ---------------------------------------------------------------------------------- */

static const char *const user_names[] = {"tim"};
static const char *const user_passwords[] = {"pw"};

static session_config tls_cfg(int tls_required, int auth_required)
{
    session_config c = cfg;
    c.starttls = 1;
    c.tls_required = tls_required;
    c.auth_required = auth_required;
    c.auth_mechs = SASL_ALL_MECHS;
    c.users = (sasl_users){user_names, user_passwords, 1};
    return c;
}

static void test_starttls(void **state)
{
    (void)state;
    session_config c = tls_cfg(0, 0);
    fake *f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x.test>\r\n");
    assert_non_null(strstr(f->out, "250-STARTTLS\r\n"));
    assert_codes(f, "250 220");
    assert_non_null(strstr(f->out, "220 2.0.0 Ready to start TLS\r\n"));
    assert_true(f->starttls);
    assert_false(session_wants_input(f->s)); /* only TLS from now */
    /* the handshake: the pipelined plaintext is dropped, and the client starts again with EHLO */
    session_tls_established(f->s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    assert_true(session_wants_input(f->s));
    assert_null(session_helo(f->s));
    feed(f, "MAIL FROM:<a@x.test>\r\nEHLO c\r\nSTARTTLS\r\n");
    assert_codes(f, "250 220 503 250 554");
    assert_null(strstr(strstr(f->out, "220 2.0.0"), "STARTTLS")); /* not offered twice */
    feed(f, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n");
    assert_int_equal(f->nkept, 1);
    assert_string_equal(f->kept[0]->tls_version, "TLSv1.3");
    assert_string_equal(f->kept[0]->tls_cipher, "TLS_AES_128_GCM_SHA256");
    fake_free(f);

    /* STARTTLS in a transaction, with an argument, and after a fault refused it */
    f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\nSTARTTLS now\r\nMAIL FROM:<a@x.test>\r\nSTARTTLS\r\n");
    assert_codes(f, "250 501 250 503");
    assert_false(f->starttls);
    fake_free(f);
    f = fake_rule_cfg(&c, "starttls", "{\"reply\": \"454 4.7.0 TLS not available due to local problem\"}");
    feed(f, "EHLO c\r\nSTARTTLS\r\nNOOP\r\n");
    assert_codes(f, "250 454 250");
    assert_false(f->starttls);
    fake_free(f);

    /* the handshake does not happen (a fault): plain text again, where the session was */
    f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\nSTARTTLS\r\n");
    session_tls_abandoned(f->s);
    feed(f, "MAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "250 220 250");
    fake_free(f);

    /* tls_required: MAIL and plaintext AUTH wait for STARTTLS; AUTH is offered after it */
    c = tls_cfg(1, 0);
    f = fake_with(&c, NULL, "submission");
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nAUTH PLAIN AHRpbQBwdw==\r\nAUTH LOGIN\r\nSTARTTLS\r\n");
    assert_null(strstr(f->out, "AUTH PLAIN LOGIN"));
    assert_codes(f, "250 530 538 538 220");
    assert_non_null(strstr(f->out, "530 5.7.0 Must issue a STARTTLS command first\r\n"));
    assert_non_null(
        strstr(f->out, "538 5.7.11 Encryption required for requested authentication mechanism\r\n"));
    session_tls_established(f->s, "TLSv1.3", "x");
    feed(f, "EHLO c\r\nAUTH PLAIN AHRpbQBwdw==\r\nMAIL FROM:<a@x.test>\r\n");
    assert_non_null(strstr(f->out, "250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n"));
    assert_codes(f, "250 530 538 538 220 250 235 250");
    fake_free(f);
}

static void test_auth(void **state)
{
    (void)state;
    session_config c = tls_cfg(0, 1);
    fake *f = fake_with(&c, NULL, "smtp");
    /* auth_required: 530 until AUTH; wrong, then right credentials; AUTH twice */
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\nAUTH PLAIN AHRpbQB4\r\nAUTH PLAIN AHRpbQBwdw==\r\n"
            "AUTH PLAIN AHRpbQBwdw==\r\nMAIL FROM:<a@x.test>\r\n");
    assert_codes(f, "250 530 535 235 503 250");
    assert_non_null(strstr(f->out, "530 5.7.0 Authentication required\r\n"));
    assert_non_null(strstr(f->out, "535 5.7.8 Authentication credentials invalid\r\n"));
    assert_non_null(strstr(f->out, "503 5.5.1 Error: already authenticated\r\n"));
    assert_string_equal(session_user(f->s), "tim");
    feed(f, "RCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n");
    assert_string_equal(f->kept[0]->auth_user, "tim");
    fake_free(f);

    /* LOGIN in two steps; an empty challenge for PLAIN; cancel; bad base64 */
    c = tls_cfg(0, 0);
    f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\nAUTH LOGIN\r\ndGlt\r\ncHc=\r\n");
    assert_codes(f, "250 334 334 235");
    assert_non_null(
        strstr(f->out, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"));
    fake_free(f);
    f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!\r\nAUTH plain\r\nAHRpbQBwdw==\r\n");
    assert_codes(f, "250 334 501 334 501 334 235");
    assert_non_null(strstr(f->out, "\r\n334 \r\n"));
    assert_non_null(strstr(f->out, "501 5.0.0 Error: authentication cancelled\r\n"));
    assert_non_null(strstr(f->out, "501 5.5.2 Error: cannot decode the response (not base64)\r\n"));
    fake_free(f);
    f = fake_with(&c, NULL, "smtp");
    feed(f, "HELO c\r\nAUTH PLAIN AHRpbQBwdw==\r\nEHLO c\r\nAUTH NTLM\r\nMAIL FROM:<a@x.test>\r\n"
            "AUTH PLAIN AHRpbQBwdw==\r\n");
    assert_codes(f, "250 503 250 504 250 503");
    assert_null(session_user(f->s));
    fake_free(f);

    /* the profile's users replace the server's */
    f = fake_with(&c, "{\"server\": {\"users\": [{\"user\": \"ann\", \"password\": \"x\"}]}}", "smtp");
    feed(f, "EHLO c\r\nAUTH PLAIN AHRpbQBwdw==\r\nAUTH PLAIN AGFubgB4\r\n");
    assert_codes(f, "250 535 235");
    assert_string_equal(session_user(f->s), "ann");
    fake_free(f);

    /* faults at the auth stage: an injected 235 logs in whatever was sent; a 454 refuses good ones */
    f = fake_rule_cfg(&c, "auth", "{\"reply\": \"235 2.7.0 Accepted\"}");
    feed(f, "EHLO c\r\nAUTH PLAIN AHRpbQB4\r\n");
    assert_codes(f, "250 235");
    assert_non_null(strstr(f->out, "235 2.7.0 Accepted\r\n"));
    assert_string_equal(session_user(f->s), "tim");
    fake_free(f);
    f = fake_rule_cfg(&c, "auth", "{\"reply\": \"454 4.7.0 Temporary authentication failure\"}");
    feed(f, "EHLO c\r\nAUTH PLAIN AHRpbQBwdw==\r\nNOOP\r\n");
    assert_codes(f, "250 454 250");
    assert_null(session_user(f->s));
    fake_free(f);
    /* a delay at the end of a LOGIN exchange */
    f = fake_rule_cfg(&c, "auth", "{\"delay\": 3000}");
    feed(f, "EHLO c\r\nAUTH LOGIN dGlt\r\ncHc=\r\nNOOP\r\n");
    assert_codes(f, "250 334");
    assert_int_equal(f->wait_ms, 3000);
    session_resume(f->s);
    assert_codes(f, "250 334 235 250");
    fake_free(f);
}

static void test_ehlo_remove(void **state)
{
    (void)state;
    session_config c = tls_cfg(0, 0);
    fake *f = fake_with(&c, "{\"ehlo\": {\"remove\": [\"STARTTLS\", \"AUTH\", \"PIPELINING\"]}}", "smtp");
    feed(f, "EHLO c\r\nSTARTTLS\r\nAUTH PLAIN AHRpbQBwdw==\r\nNOOP\r\n");
    assert_null(strstr(f->out, "STARTTLS\r\n"));
    assert_null(strstr(f->out, "250-AUTH"));
    assert_null(strstr(f->out, "PIPELINING"));
    assert_non_null(strstr(f->out, "250-SIZE 1000\r\n"));
    /* sent anyway: refused as by a server without the extension */
    assert_codes(f, "250 502 502 250");
    assert_non_null(strstr(f->out, "502 5.5.1 Error: command not implemented\r\n"));
    assert_non_null(strstr(f->out, "502 5.5.1 Error: authentication not enabled\r\n"));
    assert_false(f->starttls);
    fake_free(f);

    /* without the profile, the same config offers all three */
    f = fake_with(&c, NULL, "smtp");
    feed(f, "EHLO c\r\n");
    assert_non_null(strstr(f->out, "250-PIPELINING\r\n"));
    assert_non_null(strstr(f->out, "250-STARTTLS\r\n"));
    assert_non_null(strstr(f->out, "250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n"));
    fake_free(f);
    /* the profile's auth_mechanisms choose among them */
    f = fake_with(&c, "{\"server\": {\"auth_mechanisms\": [\"XOAUTH2\", \"LOGIN\"]}}", "smtp");
    feed(f, "EHLO c\r\nAUTH PLAIN AHRpbQBwdw==\r\n");
    assert_non_null(strstr(f->out, "250-AUTH LOGIN XOAUTH2\r\n"));
    assert_codes(f, "250 504");
    fake_free(f);
}

/* -- findings: what the session sees the client do wrong ------------------------------------------------ */

/* feed_each - each piece in its own read, as a client that waits for every reply; NULL ends the list */
static void feed_each(fake *f, ...)
{
    va_list ap;
    va_start(ap, f);
    for (const char *text = va_arg(ap, const char *); text != NULL; text = va_arg(ap, const char *))
        feed(f, text);
    va_end(ap);
}

/* reply_profile - a profile whose one rule replies at stage */
static const char *reply_profile(const char *stage, const char *reply, char *buf, size_t size)
{
    snprintf(buf, size, "{\"rules\": [{\"when\": {\"stage\": \"%s\"}, \"do\": {\"reply\": \"%s\"}}]}", stage,
             reply);
    return buf;
}

/* assert_findings - the session's finding ids, space-separated, in the order they first happened */
static void assert_findings(fake *f, const char *expect)
{
    char ids[512] = "";
    const findings *x = session_findings(f->s);
    for (size_t i = 0; i < x->n; i++) {
        if (i > 0)
            strcat(ids, " ");
        strcat(ids, finding_name(x->items[i].id));
    }
    if (strcmp(ids, expect) != 0) {
        print_error("findings: %s\nexpected: %s\n", ids, expect);
        fail();
    }
}

static void test_findings_clean_transaction(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n",
              "Subject: t\r\n\r\nhello\r\n.\r\n", "QUIT\r\n", NULL);
    assert_codes(f, "250 250 250 354 250 221");
    assert_findings(f, "");
    fake_free(f);
}

static void test_findings_line_endings(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed_each(f, "EHLO c\n", "NOOP\n", "NOOP a\rb\r\n", NULL);
    assert_findings(f, "bare-lf bare-cr");
    assert_int_equal(session_findings(f->s)->items[0].count, 2);
    fake_free(f);
}

static void test_findings_pipelining(void **state)
{
    (void)state;
    /* before the EHLO reply, PIPELINING is not known to be offered */
    fake *f = fake_new();
    feed(f, "EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    assert_findings(f, "pipelining-not-offered");
    fake_free(f);
    /* after it, pipelining is fine */
    f = fake_new();
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", NULL);
    assert_codes(f, "250 250 250 354");
    assert_findings(f, "");
    fake_free(f);
    /* HELO offers no extension */
    f = fake_new();
    feed_each(f, "HELO c\r\n", "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n", NULL);
    assert_findings(f, "pipelining-not-offered");
    fake_free(f);
}

static void test_findings_data_after_refused_rcpts(void **state)
{
    (void)state;
    char buf[200];
    const char *profile = reply_profile("rcpt", "550 5.1.1 no", buf, sizeof(buf));
    fake *f = fake_with(&cfg, profile, "smtp");
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n", NULL);
    assert_codes(f, "250 250 550 554");
    assert_findings(f, "data-after-all-rcpt-refused");
    fake_free(f);
    f = fake_with(&cfg, profile, "smtp"); /* pipelined: DATA could not know */
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", NULL);
    assert_codes(f, "250 250 550 554");
    assert_findings(f, "");
    fake_free(f);
}

static void test_findings_content(void **state)
{
    (void)state;
    fake *f = fake_new();
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n",
              "Subject: t\r\n\r\ncaf\xc3\xa9\none\r", "two\r\n.\r\n", NULL);
    assert_codes(f, "250 250 250 354 250");
    assert_findings(f, "bare-lf bare-cr 8bit-without-8bitmime");
    /* declared: no finding */
    feed(f, "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n");
    fake_free(f);
    f = fake_new();
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n",
              "Subject: t\r\n\r\ncaf\xc3\xa9\r\n.\r\n", NULL);
    assert_findings(f, "");
    fake_free(f);
}

static void test_findings_size_and_utf8(void **state)
{
    (void)state;
    fake *f = fake_new(); /* SIZE 1000 */
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<j\xc3\xb6rg@x.test>\r\n", "MAIL FROM:<a@x.test>\r\n",
              "RCPT TO:<b@y.test>\r\n", "DATA\r\n", NULL);
    char big[1200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    feed(f, big);
    feed(f, "\r\n.\r\n");
    assert_codes(f, "250 553 250 250 354 552");
    assert_findings(f, "smtputf8-not-declared size-exceeded-anyway");
    fake_free(f);
}

static void test_findings_tls_and_auth(void **state)
{
    (void)state;
    session_config c = tls_cfg(0, 0);
    fake *f = fake_with(&c, NULL, "smtp");
    feed_each(f, "EHLO c\r\n", "AUTH PLAIN AHRpbQBwdw==\r\n", NULL);
    const findings *x = session_findings(f->s);
    assert_findings(f, "auth-before-starttls");
    assert_int_equal(x->items[0].line_len, 10); /* "AUTH PLAIN": never the credential */
    feed(f, "STARTTLS\r\n");
    session_tls_established(f->s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    feed(f, "MAIL FROM:<a@x.test>\r\n");
    assert_findings(f, "auth-before-starttls no-ehlo-after-starttls");
    fake_free(f);
    f = fake_with(&c, NULL, "smtp"); /* the right order */
    feed_each(f, "EHLO c\r\n", "STARTTLS\r\n", NULL);
    session_tls_established(f->s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    feed_each(f, "EHLO c\r\n", "AUTH PLAIN AHRpbQBwdw==\r\n", NULL);
    assert_findings(f, "");
    fake_free(f);
}

static void test_findings_never_keep_credentials(void **state)
{
    (void)state;
    session_config c = tls_cfg(0, 0);
    fake *f = fake_with(&c, "{\"ehlo\": {\"remove\": [\"PIPELINING\"]}}", "smtp");
    feed_each(f, "EHLO c\r\n", "AUTH PLAIN AHRpbQBwdw==\nNOOP\r\n", NULL); /* bare LF, pipelined */
    feed_each(f, "AUTH LOGIN\r\n", "dGlt\n", NULL);                        /* a SASL response, bare LF */
    const findings *x = session_findings(f->s);
    assert_findings(f, "bare-lf pipelining-not-offered auth-before-starttls");
    for (size_t i = 0; i < x->n; i++) {
        assert_null(memmem(x->items[i].line, x->items[i].line_len, "AHRpbQBwdw", 10));
        assert_null(memmem(x->items[i].line, x->items[i].line_len, "dGlt", 4));
    }
    assert_int_equal(x->items[0].count, 2); /* the AUTH line's and the SASL response's bare LF */
    fake_free(f);
    /* after a 421, and from the connection (an early talker): the same */
    char buf[200];
    f = fake_with(&cfg, reply_profile("mail", "421 4.3.2 bye", buf, sizeof(buf)), "smtp");
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\n", NULL);
    session_input_after_close(f->s, "AUTH PLAIN AHRpbQBwdw==\r\n", 25);
    session_finding(f->s, FINDING_EARLY_TALKER, "auth plain AHRpbQBwdw==", 23);
    assert_findings(f, "command-after-421 early-talker");
    for (size_t i = 0; i < session_findings(f->s)->n; i++)
        assert_int_equal(session_findings(f->s)->items[i].line_len, 10);
    fake_free(f);
}

static void test_findings_after_421(void **state)
{
    (void)state;
    char buf[200];
    const char *profile = reply_profile("mail", "421 4.3.2 bye", buf, sizeof(buf));
    fake *f = fake_with(&cfg, profile, "smtp");
    feed_each(f, "EHLO c\r\n", "MAIL FROM:<a@x.test>\r\n", NULL);
    assert_true(f->closed);
    session_input_after_close(f->s, "QUIT\r\n", 6);
    assert_findings(f, "");
    session_input_after_close(f->s, "QUIT\r\nRSET\r\n", 12);
    assert_findings(f, "command-after-421");
    fake_free(f);
    f = fake_new(); /* no 421: what comes after a QUIT is none of this */
    feed(f, "QUIT\r\n");
    session_input_after_close(f->s, "RSET\r\n", 6);
    assert_findings(f, "");
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
        cmocka_unit_test(test_ehlo_text_after_a_transaction),
        cmocka_unit_test(test_fault_reply_at_each_stage),
        cmocka_unit_test(test_fault_positive_reply),
        cmocka_unit_test(test_fault_delay),
        cmocka_unit_test(test_fault_drip),
        cmocka_unit_test(test_fault_truncate),
        cmocka_unit_test(test_fault_hang),
        cmocka_unit_test(test_fault_discard),
        cmocka_unit_test(test_fault_greeting_refusal),
        cmocka_unit_test(test_fault_close),
        cmocka_unit_test(test_fault_profile_settings),
        cmocka_unit_test(test_fault_placeholders),
        cmocka_unit_test(test_fault_placeholders_long_values),
        cmocka_unit_test(test_inflight_budget),
        cmocka_unit_test(test_fault_greylist_and_magic),
        cmocka_unit_test(test_fault_delay_pipelined),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_ehlo_remove),
        cmocka_unit_test(test_findings_clean_transaction),
        cmocka_unit_test(test_findings_line_endings),
        cmocka_unit_test(test_findings_pipelining),
        cmocka_unit_test(test_findings_data_after_refused_rcpts),
        cmocka_unit_test(test_findings_content),
        cmocka_unit_test(test_findings_size_and_utf8),
        cmocka_unit_test(test_findings_tls_and_auth),
        cmocka_unit_test(test_findings_never_keep_credentials),
        cmocka_unit_test(test_findings_after_421),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
