/* test_fault_engine.c - fault_decide and the run state: rules, counters, limits, greylist, magic addresses */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_internal.h"
#include "fault_run_helper.h"

#define T0 1000000 /* when the runs start, in the engine's clock */

/* -- helpers ------------------------------------------------------------------------------------------- */

static fault_run *run_of(const char *json, int magic)
{
    return test_run(json, T0, magic);
}

static fault_run *rules_of(const char *rules)
{
    char json[4096];
    snprintf(json, sizeof(json), "{\"rules\": [%s]}", rules);
    return run_of(json, 1);
}

static fault_conn *conn_from(fault_run *r, const char *listener, const char *addr)
{
    fault_addr a;
    assert_int_equal(fault_parse_addr(addr, &a), 0);
    fault_conn *fc = fault_conn_new(r, listener, &a);
    assert_non_null(fc);
    return fc;
}

static fault_conn *conn(fault_run *r)
{
    return conn_from(r, "smtp", "192.0.2.1");
}

/* done - the connection ends, then the run */
static void done(fault_conn *fc, fault_run *r)
{
    fault_conn_free(fc);
    fault_run_unref(r);
}

/* reply_at - the reply decided at stage (NULL: none), t ms after the run started */
static const char *reply_at(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t t,
                            fault_decision *d)
{
    fault_facts none;
    memset(&none, 0, sizeof(none));
    fault_decide(fc, stage, f ? f : &none, T0 + t, d);
    return d->act != NULL ? d->act->reply : NULL;
}

/* fires - a decision was made at stage */
static int fires(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t t)
{
    fault_decision d;
    reply_at(fc, stage, f, t, &d);
    return d.act != NULL;
}

static void assert_reply(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t t, const char *want)
{
    fault_decision d;
    const char *got = reply_at(fc, stage, f, t, &d);
    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0) {
        print_error("at %s: got \"%s\", expected \"%s\"\n", fault_stage_name(stage), got ? got : "(none)",
                    want ? want : "(none)");
        fail();
    }
}

/* pattern - which of n decisions at stage fire, as a string of 0 and 1 */
static void pattern(fault_conn *fc, fault_stage stage, const fault_facts *f, char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fires(fc, stage, f, 0) ? '1' : '0';
    out[n] = '\0';
}

/* -- rules ---------------------------------------------------------------------------------------------- */

static void test_first_match_wins(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"name\": \"bob\", \"when\": {\"stage\": \"rcpt\", \"rcpt\": \"bob@*\"},"
                 " \"do\": {\"reply\": \"550 5.1.1 no bob\"}},"
                 "{\"when\": {\"stage\": [\"rcpt\", \"mail\"]}, \"do\": {\"reply\": \"451 4.3.0 all\"}},"
                 "{\"name\": \"never\", \"when\": {\"stage\": \"rcpt\"}, \"do\": {\"reply\": \"452 x\"}}");
    fault_conn *fc = conn(r);
    fault_facts f = {.sender = "a@x.test", .rcpt = "bob@y.test"};
    fault_decision d;
    assert_string_equal(reply_at(fc, FAULT_STAGE_RCPT, &f, 0, &d), "550 5.1.1 no bob\r\n");
    assert_int_equal(d.rule, 0);
    assert_string_equal(d.why, "rule 0 (bob)");
    f.rcpt = "alice@y.test";
    assert_string_equal(reply_at(fc, FAULT_STAGE_RCPT, &f, 0, &d), "451 4.3.0 all\r\n");
    assert_int_equal(d.rule, 1);
    assert_string_equal(d.why, "rule 1");
    assert_string_equal(reply_at(fc, FAULT_STAGE_MAIL, &f, 0, &d), "451 4.3.0 all\r\n");
    assert_null(reply_at(fc, FAULT_STAGE_DATA, &f, 0, &d));
    assert_int_equal(d.rule, -1);
    assert_string_equal(d.why, "");

    fault_stats st;
    fault_run_stats(r, &st);
    assert_int_equal(st.fired_total, 3);
    assert_int_equal(st.fired_by_stage[FAULT_STAGE_RCPT], 2);
    assert_int_equal(st.fired_by_stage[FAULT_STAGE_MAIL], 1);
    assert_int_equal(st.fired_by_rule[0], 1);
    assert_int_equal(st.fired_by_rule[1], 2);
    assert_int_equal(st.fired_by_rule[2], 0);
    assert_int_equal(st.connections, 1);
    done(fc, r);
}

static void test_listener_and_client(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"greeting\", \"listener\": [\"submission\", \"smtps\"]},"
                 " \"do\": {\"reply\": \"554 sub\"}},"
                 "{\"when\": {\"stage\": \"greeting\", \"client\": [\"10.0.0.0/8\", \"192.168.1.0/25\","
                 " \"2001:db8::/32\", \"::1\"]}, \"do\": {\"reply\": \"554 net\"}}");
    static const struct {
        const char *listener, *addr, *reply;
    } cases[] = {
        {"submission", "203.0.113.9", "554 sub\r\n"},
        {"smtps", "203.0.113.9", "554 sub\r\n"},
        {"smtp", "203.0.113.9", NULL},
        {"smtp", "10.1.2.3", "554 net\r\n"},
        {"smtp", "11.0.0.1", NULL},
        {"smtp", "::ffff:10.1.2.3", "554 net\r\n"}, /* IPv4 on a dual-stack socket */
        {"smtp", "::ffff:11.0.0.1", NULL},
        {"smtp", "192.168.1.127", "554 net\r\n"}, /* /25: the mask cuts a byte */
        {"smtp", "192.168.1.128", NULL},
        {"smtp", "2001:db8:1::1", "554 net\r\n"},
        {"smtp", "2001:db9::1", NULL},
        {"smtp", "::1", "554 net\r\n"},
        {"smtp", "::2", NULL},
        {"smtp", "::a01:203", NULL}, /* IPv4-compatible, not mapped: not 10.1.2.3 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fault_conn *fc = conn_from(r, cases[i].listener, cases[i].addr);
        fault_decision d;
        const char *got = reply_at(fc, FAULT_STAGE_GREETING, NULL, 0, &d);
        if (cases[i].reply == NULL ? got != NULL : got == NULL || strcmp(got, cases[i].reply) != 0) {
            print_error("%s from %s: got %s\n", cases[i].listener, cases[i].addr, got ? got : "(none)");
            fail();
        }
        fault_conn_free(fc);
    }
    fault_run_unref(r);

    r = rules_of(
        "{\"when\": {\"stage\": \"greeting\", \"client\": \"0.0.0.0/0\"}, \"do\": {\"reply\": \"554 all\"}}");
    fault_conn *fc = conn_from(r, "smtp", "198.51.100.7");
    assert_true(fires(fc, FAULT_STAGE_GREETING, NULL, 0));
    fault_conn_free(fc);
    fc = conn_from(r, "smtp", "2001:db8::7"); /* an IPv4 block does not match IPv6 */
    assert_false(fires(fc, FAULT_STAGE_GREETING, NULL, 0));
    done(fc, r);
}

static void test_globs(void **state)
{
    (void)state;
    fault_run *r = rules_of(
        "{\"when\": {\"stage\": \"ehlo\", \"helo\": \"mx?.EXAMPLE.org\"}, \"do\": {\"reply\": \"550 helo\"}},"
        "{\"when\": {\"stage\": \"mail\", \"sender\": [\"*@Example.COM\", \"\"]}, \"do\": {\"reply\": \"550 "
        "from\"}},"
        "{\"when\": {\"stage\": [\"rcpt\", \"data\", \"data_end\"], \"rcpt\": \"[ab]ob@*\"},"
        " \"do\": {\"reply\": \"550 rcpt\"}},"
        "{\"when\": {\"stage\": \"auth\", \"user\": \"Admin*\"}, \"do\": {\"reply\": \"535 user\"}}");
    fault_conn *fc = conn(r);
    fault_facts f = {.helo = "MX1.example.ORG"};
    assert_reply(fc, FAULT_STAGE_EHLO, &f, 0, "550 helo\r\n");
    f.helo = "mx12.example.org";
    assert_reply(fc, FAULT_STAGE_EHLO, &f, 0, NULL);
    f.helo = NULL; /* unknown fact: no match */
    assert_reply(fc, FAULT_STAGE_EHLO, &f, 0, NULL);

    f.sender = "BOB@example.com";
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, "550 from\r\n");
    f.sender = ""; /* the null sender */
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, "550 from\r\n");
    f.sender = "bob@example.com.evil";
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, NULL);

    f.rcpt = "BOB@y.test";
    assert_reply(fc, FAULT_STAGE_RCPT, &f, 0, "550 rcpt\r\n");
    f.rcpt = "cob@y.test";
    assert_reply(fc, FAULT_STAGE_RCPT, &f, 0, NULL);
    /* at data and data_end: any recipient of the message */
    const char *rcpts[] = {"x@y.test", "cob@y.test", "aob@y.test"};
    f.rcpt = NULL;
    f.rcpts = rcpts;
    f.nrcpts = 3;
    assert_reply(fc, FAULT_STAGE_DATA, &f, 0, "550 rcpt\r\n");
    assert_reply(fc, FAULT_STAGE_DATA_END, &f, 0, "550 rcpt\r\n");
    f.nrcpts = 2;
    assert_reply(fc, FAULT_STAGE_DATA_END, &f, 0, NULL);
    /* at rcpt, only this recipient counts */
    f.nrcpts = 3;
    f.rcpt = "x@y.test";
    assert_reply(fc, FAULT_STAGE_RCPT, &f, 0, NULL);

    f.user = "administrator";
    assert_reply(fc, FAULT_STAGE_AUTH, &f, 0, "535 user\r\n");
    f.user = "root";
    assert_reply(fc, FAULT_STAGE_AUTH, &f, 0, NULL);
    done(fc, r);
}

static void test_tls_and_auth(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"mail\", \"tls\": false}, \"do\": {\"reply\": \"530 tls\"}},"
                 "{\"when\": {\"stage\": \"mail\", \"auth\": false}, \"do\": {\"reply\": \"530 auth\"}},"
                 "{\"when\": {\"stage\": \"auth\", \"auth\": true}, \"do\": {\"reply\": \"454 ok\"}}");
    fault_conn *fc = conn(r);
    fault_facts f = {0};
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, "530 tls\r\n");
    f.tls = 1;
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, "530 auth\r\n");
    f.authenticated = 1;
    assert_reply(fc, FAULT_STAGE_MAIL, &f, 0, NULL);
    assert_reply(fc, FAULT_STAGE_AUTH, &f, 0, "454 ok\r\n");
    f.authenticated = 0; /* at auth: the credentials were wrong */
    assert_reply(fc, FAULT_STAGE_AUTH, &f, 0, NULL);
    done(fc, r);
}

static void test_time_windows(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"mail\", \"after\": \"1s\", \"until\": \"2s\"},"
                 " \"do\": {\"reply\": \"451 window\"}},"
                 "{\"when\": {\"stage\": \"mail\", \"until\": 500}, \"do\": {\"reply\": \"451 early\"}},"
                 "{\"when\": {\"stage\": \"mail\", \"after\": \"1m\"}, \"do\": {\"reply\": \"451 late\"}}");
    fault_conn *fc = conn(r);
    static const struct {
        int64_t t;
        const char *reply;
    } cases[] = {
        {0, "451 early\r\n"},     {499, "451 early\r\n"},     {500, NULL},           {999, NULL},
        {1000, "451 window\r\n"}, {1999, "451 window\r\n"},   {2000, NULL},          {59999, NULL},
        {60000, "451 late\r\n"},  {86400000, "451 late\r\n"}, {-1, "451 early\r\n"}, /* before the run
                                                                                        started: still "until"
                                                                                      */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_reply(fc, FAULT_STAGE_MAIL, NULL, cases[i].t, cases[i].reply);
    done(fc, r);
}

/* -- counters -------------------------------------------------------------------------------------------- */

static void test_counters_per_server(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"mail\", \"times\": 2}, \"do\": {\"reply\": \"421 t\"}},"
                 "{\"when\": {\"stage\": \"rcpt\", \"nth\": 3}, \"do\": {\"reply\": \"451 n\"}},"
                 "{\"when\": {\"stage\": \"data\", \"every\": 2}, \"do\": {\"reply\": \"451 e\"}},"
                 "{\"when\": {\"stage\": \"noop\", \"every\": 2, \"times\": 2}, \"do\": {\"close\": true}},"
                 "{\"when\": {\"stage\": \"data_end\", \"sender\": \"a@*\", \"nth\": 2},"
                 " \"do\": {\"reply\": \"550 v\"}}");
    /* "fail the first two, then succeed", counted across connections */
    fault_conn *a = conn(r), *b = conn(r), *c = conn(r);
    assert_true(fires(a, FAULT_STAGE_MAIL, NULL, 0));
    assert_true(fires(b, FAULT_STAGE_MAIL, NULL, 0));
    assert_false(fires(c, FAULT_STAGE_MAIL, NULL, 0));
    assert_false(fires(a, FAULT_STAGE_MAIL, NULL, 0));
    /* nth: the third match only */
    assert_false(fires(a, FAULT_STAGE_RCPT, NULL, 0));
    assert_false(fires(b, FAULT_STAGE_RCPT, NULL, 0));
    assert_true(fires(c, FAULT_STAGE_RCPT, NULL, 0));
    assert_false(fires(a, FAULT_STAGE_RCPT, NULL, 0));
    char p[16];
    pattern(a, FAULT_STAGE_DATA, NULL, p, 6);
    assert_string_equal(p, "010101");
    pattern(b, FAULT_STAGE_NOOP, NULL, p, 8);
    assert_string_equal(p, "01010000");
    /* only matches of the other conditions count */
    fault_facts other = {.sender = "b@x"}, match = {.sender = "a@x"};
    assert_false(fires(a, FAULT_STAGE_DATA_END, &other, 0));
    assert_false(fires(b, FAULT_STAGE_DATA_END, &match, 0));
    assert_false(fires(c, FAULT_STAGE_DATA_END, &other, 0));
    assert_true(fires(c, FAULT_STAGE_DATA_END, &match, 0));
    fault_conn_free(a);
    fault_conn_free(b);
    fault_conn_free(c);
    /* a new connection does not reset the server's counters */
    a = conn(r);
    assert_false(fires(a, FAULT_STAGE_MAIL, NULL, 0));
    done(a, r);

    /* a new run does */
    r = rules_of("{\"when\": {\"stage\": \"mail\", \"times\": 2}, \"do\": {\"reply\": \"421 t\"}}");
    a = conn(r);
    assert_true(fires(a, FAULT_STAGE_MAIL, NULL, 0));
    done(a, r);
}

static void test_counters_per_connection(void **state)
{
    (void)state;
    fault_run *r = rules_of("{\"when\": {\"stage\": \"mail\", \"times\": 1, \"count\": \"connection\"}, "
                            "\"do\": {\"reply\": \"451 t\"}},"
                            "{\"when\": {\"stage\": \"rcpt\", \"nth\": 2, \"count\": \"connection\"}, "
                            "\"do\": {\"reply\": \"451 n\"}},"
                            "{\"when\": {\"stage\": \"data\", \"every\": 3, \"count\": \"connection\"}, "
                            "\"do\": {\"reply\": \"451 e\"}}");
    fault_conn *a = conn(r), *b = conn(r);
    char p[16];
    pattern(a, FAULT_STAGE_MAIL, NULL, p, 3);
    assert_string_equal(p, "100");
    pattern(b, FAULT_STAGE_MAIL, NULL, p, 3);
    assert_string_equal(p, "100");
    pattern(a, FAULT_STAGE_RCPT, NULL, p, 3);
    assert_string_equal(p, "010");
    assert_false(fires(b, FAULT_STAGE_RCPT, NULL, 0));
    pattern(a, FAULT_STAGE_DATA, NULL, p, 2);
    pattern(b, FAULT_STAGE_DATA, NULL, p, 7);
    assert_string_equal(p, "0010010");
    pattern(a, FAULT_STAGE_DATA, NULL, p, 4);
    assert_string_equal(p, "1001");
    fault_stats st;
    fault_run_stats(r, &st);
    assert_int_equal(st.fired_by_rule[0], 2);
    assert_int_equal(st.fired_by_rule[1], 1);
    fault_conn_free(a);
    done(b, r);
}

/* draws - 1000 decisions of a probability rule on the first two connections of a fresh run */
static void draws(const char *json, char *out, size_t n)
{
    fault_run *r = run_of(json, 1);
    fault_conn *a = conn(r), *b = conn(r);
    pattern(a, FAULT_STAGE_MAIL, NULL, out, n / 2);
    pattern(b, FAULT_STAGE_MAIL, NULL, out + n / 2, n - n / 2);
    fault_conn_free(a);
    done(b, r);
}

static size_t ones(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '1';
    return n;
}

static void test_probability(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char first[N + 1], again[N + 1], other[N + 1];
    const char *seven = "{\"seed\": 7, \"rules\": [{\"when\": {\"stage\": \"mail\", \"probability\": 0.3},"
                        " \"do\": {\"close\": \"reset\"}}]}";
    draws(seven, first, N);
    draws(seven, again, N);
    assert_string_equal(first, again); /* the same seed: the same decisions, run after run */
    draws("{\"seed\": 8, \"rules\": [{\"when\": {\"stage\": \"mail\", \"probability\": 0.3},"
          " \"do\": {\"close\": \"reset\"}}]}",
          other, N);
    assert_string_not_equal(first, other);
    /* two connections of one run draw different streams */
    assert_memory_not_equal(first, first + N / 2, N / 2);
    /* roughly right: 600 expected, sd ~20 */
    assert_in_range(ones(first), 500, 700);
    assert_in_range(ones(other), 500, 700);

    draws("{\"rules\": [{\"when\": {\"stage\": \"mail\", \"probability\": 0}, \"do\": {\"close\": true}}]}",
          first, 100);
    assert_int_equal(ones(first), 0);
    draws("{\"rules\": [{\"when\": {\"stage\": \"mail\", \"probability\": 1}, \"do\": {\"close\": true}}]}",
          first, 100);
    assert_int_equal(ones(first), 100);
    /* with times: the first N draws that succeed fire */
    draws("{\"seed\": 3, \"rules\": [{\"when\": {\"stage\": \"mail\", \"probability\": 0.5, \"times\": 5},"
          " \"do\": {\"close\": true}}]}",
          first, 200);
    assert_int_equal(ones(first), 5);
}

/* -- limits ---------------------------------------------------------------------------------------------- */

static void test_connections_per_client(void **state)
{
    (void)state;
    fault_run *r = run_of("{\"limits\": {\"connections_per_client\": 2}}", 1);
    fault_conn *a = conn(r), *b = conn(r);
    assert_false(fires(a, FAULT_STAGE_CONNECT, NULL, 0));
    assert_false(fires(b, FAULT_STAGE_CONNECT, NULL, 0));
    fault_conn *c = conn(r);
    fault_decision d;
    assert_string_equal(reply_at(c, FAULT_STAGE_CONNECT, NULL, 0, &d),
                        "421 4.7.0 Too many connections from your IP, try again later\r\n");
    assert_int_equal(d.act->close, FAULT_CLOSE_FIN);
    assert_int_equal(d.rule, -1);
    assert_string_equal(d.why, "limit connections_per_client (2)");
    assert_false(fires(c, FAULT_STAGE_GREETING, NULL, 0)); /* only at connect */
    /* another client address is counted apart */
    fault_conn *x = conn_from(r, "smtp", "192.0.2.2");
    assert_false(fires(x, FAULT_STAGE_CONNECT, NULL, 0));
    /* connections count while their fault_conn lives */
    fault_conn_free(a);
    fault_conn_free(c);
    fault_conn *e = conn(r);
    assert_false(fires(e, FAULT_STAGE_CONNECT, NULL, 0));
    fault_conn *g = conn(r);
    assert_true(fires(g, FAULT_STAGE_CONNECT, NULL, 0));
    fault_stats st;
    fault_run_stats(r, &st);
    assert_int_equal(st.limits, 2);
    assert_int_equal(st.connections, 6);
    fault_conn_free(b);
    fault_conn_free(e);
    fault_conn_free(g);
    fault_conn_free(x);
    /* all gone: a fresh start */
    a = conn(r);
    b = conn(r);
    assert_false(fires(b, FAULT_STAGE_CONNECT, NULL, 0));
    fault_conn_free(a);
    done(b, r);

    /* a custom reply that is not a 421 does not close */
    r = run_of(
        "{\"limits\": {\"connections_per_client\": {\"max\": 1, \"reply\": \"554 5.7.1 one at a time\"}}}",
        1);
    a = conn(r);
    b = conn(r);
    assert_string_equal(reply_at(b, FAULT_STAGE_CONNECT, NULL, 0, &d), "554 5.7.1 one at a time\r\n");
    assert_int_equal(d.act->close, FAULT_CLOSE_NONE);
    fault_conn_free(a);
    done(b, r);
}

static void test_messages_per_connection(void **state)
{
    (void)state;
    fault_run *r = run_of("{\"limits\": {\"messages_per_connection\": 2}}", 1);
    fault_conn *a = conn(r), *b = conn(r);
    for (int i = 0; i < 2; i++) {
        assert_false(fires(a, FAULT_STAGE_MAIL, NULL, i));
        fault_conn_message_accepted(a, T0 + i);
    }
    fault_decision d;
    assert_string_equal(reply_at(a, FAULT_STAGE_MAIL, NULL, 10, &d),
                        "421 4.7.0 Too many messages for this session, try again later\r\n");
    assert_int_equal(d.act->close, FAULT_CLOSE_FIN);
    assert_string_equal(d.why, "limit messages_per_connection (2)");
    assert_false(fires(a, FAULT_STAGE_RCPT, NULL, 10)); /* only MAIL is refused */
    assert_false(fires(b, FAULT_STAGE_MAIL, NULL, 10)); /* per connection */
    fault_conn_free(a);
    done(b, r);
}

static void test_messages_per_minute(void **state)
{
    (void)state;
    const char *slow = "450 4.7.1 Error: too much mail, slow down\r\n";
    fault_run *r = run_of("{\"limits\": {\"messages_per_minute\": 2}}", 1);
    fault_conn *a = conn(r), *a2 = conn(r), *b = conn_from(r, "smtp", "192.0.2.2");
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 0, NULL);
    fault_conn_message_accepted(a, T0);
    fault_conn_message_accepted(a2, T0 + 10000); /* the same client, another connection */
    fault_decision d;
    assert_string_equal(reply_at(a, FAULT_STAGE_MAIL, NULL, 20000, &d), slow);
    assert_int_equal(d.act->close, FAULT_CLOSE_NONE);
    assert_string_equal(d.why, "limit messages_per_minute (2)");
    assert_reply(a2, FAULT_STAGE_MAIL, NULL, 59999, slow);
    assert_reply(b, FAULT_STAGE_MAIL, NULL, 20000, NULL); /* per client */
    /* the window slides: 60 s after the first message, one is left in it */
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 60000, NULL);
    fault_conn_message_accepted(a, T0 + 60000);
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 60001, slow);
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 70000, NULL);
    fault_conn_free(a);
    fault_conn_free(a2);
    done(b, r);

    r = run_of("{\"limits\": {\"messages_per_minute\": {\"max\": 2, \"per\": \"server\","
               " \"reply\": \"421 4.7.0 Throttled\"}}}",
               1);
    a = conn(r);
    b = conn_from(r, "smtp", "2001:db8::2");
    fault_conn_message_accepted(a, T0);
    fault_conn_message_accepted(b, T0 + 1);
    assert_string_equal(reply_at(b, FAULT_STAGE_MAIL, NULL, 2, &d), "421 4.7.0 Throttled\r\n");
    assert_int_equal(d.act->close, FAULT_CLOSE_FIN); /* a 421 closes */
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 30000, "421 4.7.0 Throttled\r\n");
    assert_reply(a, FAULT_STAGE_MAIL, NULL, 60000, NULL);
    fault_conn_free(a);
    done(b, r);
}

static void test_rules_before_limits(void **state)
{
    (void)state;
    fault_run *r = run_of("{\"limits\": {\"messages_per_connection\": 1},"
                          " \"rules\": [{\"when\": {\"stage\": \"mail\", \"sender\": \"vip@*\"},"
                          " \"do\": {\"delay\": 10}}]}",
                          1);
    fault_conn *a = conn(r);
    fault_conn_message_accepted(a, T0);
    fault_facts vip = {.sender = "vip@x.test"}, other = {.sender = "joe@x.test"};
    fault_decision d;
    assert_null(reply_at(a, FAULT_STAGE_MAIL, &vip, 1, &d));
    assert_int_equal(d.rule, 0);
    assert_int_equal(d.act->delay_ms, 10);
    assert_non_null(reply_at(a, FAULT_STAGE_MAIL, &other, 1, &d));
    assert_int_equal(d.rule, -1);
    done(a, r);
}

/* -- greylisting ----------------------------------------------------------------------------------------- */

static void test_greylist(void **state)
{
    (void)state;
    fault_run *r = rules_of("{\"when\": {\"stage\": \"rcpt\"}, \"do\": {\"greylist\": \"30s\"}}");
    fault_conn *a = conn(r);
    fault_facts f = {.sender = "a@x.test", .rcpt = "bob@y.test"};
    fault_decision d;
    assert_string_equal(reply_at(a, FAULT_STAGE_RCPT, &f, 0, &d),
                        "450 4.2.0 <bob@y.test>: Recipient address rejected: Greylisted, try again in 30 "
                        "seconds\r\n");
    assert_int_equal(d.rule, 0);
    assert_int_equal(d.act->reply_code, 450);
    assert_int_equal(d.act->close, FAULT_CLOSE_NONE);
    /* a retry before the period: still deferred, from another connection of the same client too */
    fault_conn *a2 = conn(r);
    assert_reply(
        a2, FAULT_STAGE_RCPT, &f, 10500,
        "450 4.2.0 <bob@y.test>: Recipient address rejected: Greylisted, try again in 20 seconds\r\n");
    /* other triples are independent */
    fault_facts other_rcpt = {.sender = "a@x.test", .rcpt = "carol@y.test"};
    fault_facts other_sender = {.sender = "b@x.test", .rcpt = "bob@y.test"};
    assert_non_null(reply_at(a, FAULT_STAGE_RCPT, &other_rcpt, 20000, &d));
    assert_non_null(reply_at(a, FAULT_STAGE_RCPT, &other_sender, 20000, &d));
    fault_conn *b = conn_from(r, "smtp", "192.0.2.99");
    assert_non_null(reply_at(b, FAULT_STAGE_RCPT, &f, 29999, &d));
    assert_non_null(reply_at(a, FAULT_STAGE_RCPT, &f, 29999, &d));
    /* once the period has passed the triple passes, and keeps passing */
    assert_reply(a, FAULT_STAGE_RCPT, &f, 30000, NULL);
    assert_reply(a, FAULT_STAGE_RCPT, &f, 30001, NULL);
    fault_facts upper = {.sender = "A@X.TEST", .rcpt = "Bob@Y.Test"}; /* addresses compare without case */
    assert_reply(a2, FAULT_STAGE_RCPT, &upper, 86400000, NULL);
    /* ... while the others still wait their own time */
    assert_non_null(reply_at(a, FAULT_STAGE_RCPT, &other_rcpt, 30001, &d));
    assert_reply(a, FAULT_STAGE_RCPT, &other_rcpt, 50000, NULL);
    fault_stats st;
    fault_run_stats(r, &st);
    assert_int_equal(st.greylisted, 7);
    fault_conn_free(a);
    fault_conn_free(a2);
    done(b, r);
}

static void test_greylist_custom_reply(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"*@grey.test\"},"
                 " \"do\": {\"greylist\": 1000, \"reply\": \"451 4.7.1 Please try again later\"}},"
                 "{\"when\": {\"stage\": \"rcpt\"}, \"do\": {\"reply\": \"250 2.1.5 second rule\"}}");
    fault_conn *a = conn(r);
    fault_facts f = {.sender = "", .rcpt = "x@grey.test"};
    fault_decision d;
    assert_string_equal(reply_at(a, FAULT_STAGE_RCPT, &f, 0, &d), "451 4.7.1 Please try again later\r\n");
    assert_int_equal(d.rule, 0);
    /* passing the greylist is as if the rule were not there: the next rule decides */
    assert_string_equal(reply_at(a, FAULT_STAGE_RCPT, &f, 1000, &d), "250 2.1.5 second rule\r\n");
    assert_int_equal(d.rule, 1);
    done(a, r);
}

static void test_greylist_delay_and_close(void **state)
{
    (void)state;
    fault_run *r = rules_of("{\"when\": {\"stage\": \"rcpt\"}, \"do\": {\"greylist\": \"1m\", \"delay\": 250,"
                            " \"close\": true}}");
    fault_conn *a = conn(r);
    fault_facts f = {.sender = "a@x", .rcpt = "b@y"};
    fault_decision d;
    assert_string_equal(
        reply_at(a, FAULT_STAGE_RCPT, &f, 0, &d),
        "450 4.2.0 <b@y>: Recipient address rejected: Greylisted, try again in 60 seconds\r\n");
    assert_int_equal(d.act->delay_ms, 250);
    assert_int_equal(d.act->close, FAULT_CLOSE_FIN);
    assert_ptr_equal(d.act, &d.own);
    done(a, r);
}

/* -- magic addresses ------------------------------------------------------------------------------------- */

/* magic_reply - the reply a default run with magic on gives at stage for sender s and recipient rc */
static void expect_magic(fault_run *r, fault_stage stage, const char *sender, const char *rc,
                         const char *want)
{
    fault_conn *fc = conn(r);
    const char *rcpts[] = {"plain@y.test", rc};
    fault_facts f = {.sender = sender};
    if (stage == FAULT_STAGE_RCPT) {
        f.rcpt = rc;
    } else if (rc != NULL) {
        f.rcpts = rcpts;
        f.nrcpts = 2;
    }
    assert_reply(fc, stage, &f, 0, want);
    fault_conn_free(fc);
}

static void test_magic_addresses(void **state)
{
    (void)state;
    fault_profile *p = fault_profile_default();
    fault_run *r = fault_run_new(p, T0, 1);
    fault_profile_unref(p);
    static const struct {
        fault_stage stage;
        const char *sender, *rcpt, *reply;
    } cases[] = {
        /* the docs' examples */
        {FAULT_STAGE_RCPT, "a@x", "rcpt550@example.com",
         "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt452_4.5.3@example.com", "452 4.5.3 Insufficient system storage\r\n"},
        {FAULT_STAGE_MAIL, "mail421+retry1@example.com", NULL,
         "421 4.7.0 Service not available, closing transmission channel\r\n"},
        {FAULT_STAGE_DATA_END, "a@x", "dataend554_5.7.1@example.com", "554 5.7.1 Transaction failed\r\n"},
        /* stage wording */
        {FAULT_STAGE_MAIL, "mail550@x", NULL, "550 5.1.1 Sender address rejected\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt552@x", "552 5.3.4 Mailbox full\r\n"},
        {FAULT_STAGE_DATA_END, "a@x", "dataend552@x",
         "552 5.3.4 Message size exceeds fixed maximum message size\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt450@x", "450 4.2.1 Mailbox unavailable, try again later\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt555@x", "555 5.0.0 Requested action not taken\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt499@x", "499 4.0.0 Requested action not taken\r\n"},
        /* data and data_end: the sender or any recipient */
        {FAULT_STAGE_DATA, "data451@x", NULL, "451 4.3.0 Local error in processing, try again later\r\n"},
        {FAULT_STAGE_DATA, "a@x", "data554@x", "554 5.7.1 Transaction failed\r\n"},
        {FAULT_STAGE_DATA_END, "dataend451@x", "b@y",
         "451 4.3.0 Local error in processing, try again later\r\n"},
        /* the prefix names the stage */
        {FAULT_STAGE_DATA, "a@x", "dataend554@x", NULL},
        {FAULT_STAGE_DATA_END, "a@x", "data554@x", NULL},
        {FAULT_STAGE_MAIL, "rcpt550@x", NULL, NULL},
        {FAULT_STAGE_RCPT, "a@x", "mail550@x", NULL},
        {FAULT_STAGE_EHLO, "mail550@x", NULL, NULL},
        /* enhanced codes, separators, case */
        {FAULT_STAGE_RCPT, "a@x", "rcpt550_5.7.26@x",
         "550 5.7.26 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550_5.7.1+tag@x",
         "550 5.7.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550_4.1.1@x",
         "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550_5.1@x", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550-a@x", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550.b@x", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550_c@x", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "RCPT550@X", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550", "550 5.1.1 Recipient address rejected: User unknown\r\n"},
        {FAULT_STAGE_RCPT, "a@x", "rcpt550x@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "rcpt5500@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "rcpt55@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "rcpt399@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "rcpt600@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "xrcpt550@x", NULL},
        {FAULT_STAGE_RCPT, "a@x", "rcpt@x", NULL},
        {FAULT_STAGE_MAIL, "mailbox@x", NULL, NULL},
        {FAULT_STAGE_MAIL, "", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_magic(r, cases[i].stage, cases[i].sender, cases[i].rcpt, cases[i].reply);

    fault_conn *fc = conn(r);
    fault_facts f = {.sender = "mail421@x.test"};
    fault_decision d;
    reply_at(fc, FAULT_STAGE_MAIL, &f, 0, &d);
    assert_int_equal(d.act->close, FAULT_CLOSE_FIN); /* 421 closes */
    assert_int_equal(d.rule, -1);
    assert_string_equal(d.why, "magic address mail421@x.test");
    f.sender = "mail451@x.test";
    reply_at(fc, FAULT_STAGE_MAIL, &f, 0, &d);
    assert_int_equal(d.act->close, FAULT_CLOSE_NONE);
    fault_conn_free(fc);
    fault_stats st;
    fault_run_stats(r, &st);
    assert_int_equal(st.magic, 24);
    fault_run_unref(r);
}

/* expect_rcpt - the reply at rcpt on a new connection of run r, which then ends */
static void expect_rcpt(fault_run *r, const fault_facts *f, const char *want)
{
    fault_conn *fc = conn(r);
    assert_reply(fc, FAULT_STAGE_RCPT, f, 0, want);
    done(fc, r);
}

static void test_magic_off_and_precedence(void **state)
{
    (void)state;
    fault_facts f = {.sender = "a@x", .rcpt = "rcpt550@x"};
    const char *magic550 = "550 5.1.1 Recipient address rejected: User unknown\r\n";
    expect_rcpt(run_of("{\"magic\": false}", 1), &f, NULL); /* the profile says, whatever the server says */
    expect_rcpt(run_of("{}", 0), &f, NULL);                 /* the server's --no-magic, when it does not */
    fault_profile *p = fault_profile_default();
    expect_rcpt(fault_run_new(p, T0, 0), &f, NULL);
    fault_profile_unref(p);
    expect_rcpt(run_of("{\"magic\": true}", 0), &f, magic550); /* the profile's true wins over --no-magic */
    /* rules come first; a rule that does not match leaves the magic address */
    fault_run *r = rules_of(
        "{\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"rcpt5*\"}, \"do\": {\"reply\": \"451 4.3.0 rule\"}}");
    fault_conn *fc = conn(r);
    assert_reply(fc, FAULT_STAGE_RCPT, &f, 0, "451 4.3.0 rule\r\n");
    f.rcpt = "rcpt550x@x";
    assert_reply(fc, FAULT_STAGE_RCPT, &f, 0, "451 4.3.0 rule\r\n");
    done(fc, r);
    f.rcpt = "rcpt550@x";
    expect_rcpt(
        rules_of("{\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"other@*\"}, \"do\": {\"reply\": \"451 x\"}}"),
        &f, magic550);
}

/* -- listeners, descriptions, lifetimes ------------------------------------------------------------------ */

static void test_listener_mode(void **state)
{
    (void)state;
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"connect\", \"listener\": \"smtp\", \"until\": \"10s\"}, \"do\": "
                 "{\"refuse\": true}},"
                 "{\"when\": {\"stage\": \"connect\", \"after\": \"5s\", \"until\": \"20s\"}, \"do\": "
                 "{\"blackhole\": true}},"
                 "{\"when\": {\"stage\": \"connect\"}, \"do\": {\"reply\": \"554 5.7.1 go away\"}}");
    static const struct {
        const char *listener;
        int64_t t;
        int mode;
        int64_t next; /* since T0; -1: never */
    } cases[] = {
        {"smtp", 0, FAULT_ACTION_REFUSE, 5000},
        {"smtp", 4999, FAULT_ACTION_REFUSE, 5000},
        {"smtp", 5000, FAULT_ACTION_REFUSE, 10000}, /* both open: the first rule wins */
        {"smtp", 10000, FAULT_ACTION_BLACKHOLE, 20000},
        {"smtp", 20000, -1, -1},
        {"submission", 0, -1, 5000},
        {"submission", 5000, FAULT_ACTION_BLACKHOLE, 20000},
        {"smtps", 19999, FAULT_ACTION_BLACKHOLE, 20000},
        {"smtps", 25000, -1, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t next = 0;
        int mode = fault_run_listener_mode(r, cases[i].listener, T0 + cases[i].t, &next);
        int64_t want = cases[i].next < 0 ? INT64_MAX : T0 + cases[i].next;
        if (mode != cases[i].mode || next != want) {
            print_error("%s at %lld: mode %d next %lld\n", cases[i].listener, (long long)cases[i].t, mode,
                        (long long)next);
            fail();
        }
    }
    /* refuse and blackhole are not decisions of a connection: the connect rule after them is */
    fault_conn *fc = conn(r);
    fault_decision d;
    assert_string_equal(reply_at(fc, FAULT_STAGE_CONNECT, NULL, 0, &d), "554 5.7.1 go away\r\n");
    assert_int_equal(d.rule, 2);
    done(fc, r);

    r = run_of("{}", 1);
    int64_t next = 0;
    assert_int_equal(fault_run_listener_mode(r, "smtp", T0, &next), -1);
    assert_true(next == INT64_MAX);
    fault_run_unref(r);
}

/* describe - fault_decision_describe for the action of a one-rule profile at stage */
static void expect_description(const char *stage, const char *act, const char *want)
{
    char json[1024];
    snprintf(json, sizeof(json), "{\"when\": {\"stage\": \"%s\"}, \"do\": %s}", stage, act);
    fault_run *r = rules_of(json);
    fault_conn *fc = conn(r);
    fault_facts f = {.sender = "a@x", .rcpt = "b@y"};
    fault_decision d;
    fault_decide(fc, FAULT_STAGE_COUNT, &f, T0, &d); /* a stage out of range matches nothing */
    assert_null(d.act);
    char out[300] = "x";
    fault_decision_describe(&d, out, sizeof(out));
    assert_string_equal(out, "");
    for (int s = 0; s < FAULT_STAGE_COUNT && d.act == NULL; s++)
        fault_decide(fc, (fault_stage)s, &f, T0, &d);
    assert_non_null(d.act);
    fault_decision_describe(&d, out, sizeof(out));
    if (strcmp(out, want) != 0) {
        print_error("%s: \"%s\", expected \"%s\"\n", act, out, want);
        fail();
    }
    done(fc, r);
}

static void test_describe(void **state)
{
    (void)state;
    expect_description("rcpt", "{\"reply\": \"550 5.1.1 User unknown\"}", "reply 550 5.1.1 User unknown");
    expect_description("rcpt", "{\"reply\": \"550-a\\nb\", \"delay\": \"2s\"}",
                       "delay 2000 ms, then reply 550-a (multi-line)");
    expect_description("mail", "{\"delay\": 100}", "delay 100 ms");
    expect_description("mail", "{\"raw\": \"250 no CRLF\"}", "send 11 raw bytes");
    expect_description("mail", "{\"reply\": \"451 slow\", \"drip\": 10}", "reply 451 slow at 10 bytes/s");
    expect_description("mail", "{\"reply\": \"451 cut\", \"truncate\": 3}",
                       "reply 451 cut cut after 3 bytes, then close the connection");
    expect_description("mail", "{\"reply\": \"421 bye\", \"close\": \"reset\"}",
                       "reply 421 bye, then reset the connection");
    expect_description("mail", "{\"close\": true}", "close the connection");
    expect_description("quit", "{\"hang\": true, \"delay\": 5}", "delay 5 ms, then hang");
    expect_description("data_end", "{\"discard\": true}", "discard the message");
    expect_description("tls_handshake", "{\"tls_alert\": \"protocol_version\"}",
                       "TLS alert protocol_version");
    expect_description("tls_handshake", "{\"tls_plaintext\": true}", "answer in plain text");
    expect_description("tls_handshake", "{\"certificate\": \"expired\", \"versions\": [\"1.1\"]}",
                       "certificate expired, TLS 1.1-1.1 only");
    expect_description(
        "rcpt", "{\"greylist\": \"30s\"}",
        "reply 450 4.2.0 <b@y>: Recipient address rejected: Greylisted, try again in 30 seconds");

    /* a long first line is cut, and the output never passes its buffer */
    char act[700];
    snprintf(act, sizeof(act), "{\"reply\": \"550 %0300d\"}", 0);
    char want[200];
    snprintf(want, sizeof(want), "reply 550 %0116d", 0);
    expect_description("mail", act, want);
    fault_run *r =
        rules_of("{\"when\": {\"stage\": \"mail\"}, \"do\": {\"reply\": \"550 5.1.1 User unknown\"}}");
    fault_conn *fc = conn(r);
    fault_decision d;
    reply_at(fc, FAULT_STAGE_MAIL, NULL, 0, &d);
    char small[10];
    fault_decision_describe(&d, small, sizeof(small));
    assert_string_equal(small, "reply 550");
    done(fc, r);
}

static void test_refcounts(void **state)
{
    (void)state;
    const char *json = "{\"name\": \"kept\", \"rules\": [{\"when\": {\"stage\": \"mail\"},"
                       " \"do\": {\"reply\": \"451 still here\"}}]}";
    fault_errors e = {0};
    fault_profile *p = fault_profile_compile(json, strlen(json), "t.json", &e);
    assert_non_null(p);
    fault_run *r = fault_run_new(p, T0, 1);
    fault_profile_unref(p); /* the run keeps the profile */
    assert_ptr_equal(fault_run_profile(r), p);
    assert_string_equal(fault_profile_settings(fault_run_profile(r))->name, "kept");
    fault_conn *fc = conn(r);
    assert_ptr_equal(fault_conn_run(fc), r);
    assert_ptr_equal(fault_run_ref(r), r);
    fault_run_unref(r);
    fault_run_unref(r); /* the connection keeps the run (and so the profile) */
    assert_reply(fc, FAULT_STAGE_MAIL, NULL, 0, "451 still here\r\n");
    assert_string_equal(fault_profile_source(fault_run_profile(fault_conn_run(fc))), json);
    fault_conn_free(fc); /* the last reference: everything goes (the ASan build checks) */
    fault_conn_free(NULL);
    fault_run_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_listener_and_client),
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_tls_and_auth),
        cmocka_unit_test(test_time_windows),
        cmocka_unit_test(test_counters_per_server),
        cmocka_unit_test(test_counters_per_connection),
        cmocka_unit_test(test_probability),
        cmocka_unit_test(test_connections_per_client),
        cmocka_unit_test(test_messages_per_connection),
        cmocka_unit_test(test_messages_per_minute),
        cmocka_unit_test(test_rules_before_limits),
        cmocka_unit_test(test_greylist),
        cmocka_unit_test(test_greylist_custom_reply),
        cmocka_unit_test(test_greylist_delay_and_close),
        cmocka_unit_test(test_magic_addresses),
        cmocka_unit_test(test_magic_off_and_precedence),
        cmocka_unit_test(test_listener_mode),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_refcounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
