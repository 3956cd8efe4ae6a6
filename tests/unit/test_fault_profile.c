/* test_fault_profile.c - the profile compiler: every validation error, and what valid profiles compile to */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_internal.h"

#define SRC "t.json"

#define STAGES                                                                                               \
    "connect, greeting, ehlo, starttls, tls_handshake, auth, mail, rcpt, data, data_end, rset, vrfy, noop, " \
    "help, quit, unknown"
#define ALERTS                                                                                         \
    "unexpected_message, bad_record_mac, handshake_failure, bad_certificate, certificate_expired, "    \
    "certificate_unknown, illegal_parameter, unknown_ca, access_denied, decode_error, decrypt_error, " \
    "protocol_version, insufficient_security, internal_error, user_canceled, unrecognized_name"
#define BAD_DURATION                                                                                      \
    "expected a duration: milliseconds as a number, or a string such as \"250ms\", \"1.5s\", \"2m\" (at " \
    "most 24h)"
#define BAD_SIZE "expected a size in bytes from 1 to 1099511627776 (a number, or a string such as \"10M\")"
#define BAD_CODE "a reply starts with a code from 200 to 599, then a space (\"550 5.1.1 User unknown\"), got "
#define BAD_REPLY                                                                                            \
    "expected a reply: a string such as \"550 5.1.1 User unknown\" (\\n between lines), or a list of lines " \
    "(at most 64)"
#define FALSE_FLAG "false is the same as leaving the key out: remove it"
#define LISTENER_WHEN                                                                                        \
    "refuse and blackhole act on the listener before any connection exists: their rule may only use stage, " \
    "listener, after and until"
#define WHOLE(lo, hi) "expected a whole number from " #lo " to " #hi ", got "

/* -- helpers ------------------------------------------------------------------------------------------- */

static fault_profile *compile(const char *json, fault_errors *e)
{
    memset(e, 0, sizeof(*e));
    return fault_profile_compile(json, strlen(json), SRC, e);
}

static void dump(const char *json, const fault_errors *e)
{
    print_error("profile: %s\n%zu errors:\n", json, e->n);
    for (size_t i = 0; i < e->n; i++)
        print_error("  %s\n", e->msgs[i]);
}

/* expect_errorsv - json fails to compile with exactly these messages (without the "t.json: "), in order */
static void expect_errorsv(const char *json, va_list ap)
{
    fault_errors e;
    fault_profile *p = compile(json, &e);
    if (p != NULL) {
        fault_profile_unref(p);
        print_error("profile compiled: %s\n", json);
        fail();
    }
    size_t i = 0;
    for (const char *want; (want = va_arg(ap, const char *)) != NULL; i++) {
        char full[2048];
        snprintf(full, sizeof(full), SRC ": %s", want);
        if (i >= e.n || strcmp(e.msgs[i], full) != 0) {
            dump(json, &e);
            print_error("error %zu: expected\n  %s\n", i, full);
            fault_errors_free(&e);
            fail();
        }
    }
    if (i != e.n) {
        dump(json, &e);
        print_error("expected %zu errors\n", i);
        fault_errors_free(&e);
        fail();
    }
    fault_errors_free(&e);
}

static void expect_errors(const char *json, ...)
{
    va_list ap;
    va_start(ap, json);
    expect_errorsv(json, ap);
    va_end(ap);
}

/* expect_rule_errors - the same, for a profile of one rule {"when": when, "do": act} */
static void expect_rule_errors(const char *when, const char *act, ...)
{
    char json[8192];
    snprintf(json, sizeof(json), "{\"rules\": [{\"when\": %s, \"do\": %s}]}", when, act);
    va_list ap;
    va_start(ap, act);
    expect_errorsv(json, ap);
    va_end(ap);
}

static fault_profile *expect_ok(const char *json)
{
    fault_errors e;
    fault_profile *p = compile(json, &e);
    if (p == NULL || e.n != 0) {
        dump(json, &e);
        fault_errors_free(&e);
        fault_profile_unref(p);
        fail();
    }
    return p;
}

static fault_profile *rule_ok(const char *when, const char *act)
{
    char json[8192];
    snprintf(json, sizeof(json), "{\"rules\": [{\"when\": %s, \"do\": %s}]}", when, act);
    return expect_ok(json);
}

/* compiled_reply - the reply one rule at stage mail compiles to (NULL when it does not compile) */
static char *compiled_reply(const char *reply_json, int *code)
{
    char json[8192];
    snprintf(json, sizeof(json), "{\"rules\": [{\"when\": {\"stage\": \"mail\"}, \"do\": {\"reply\": %s}}]}",
             reply_json);
    fault_errors e;
    fault_profile *p = compile(json, &e);
    fault_errors_free(&e);
    if (p == NULL)
        return NULL;
    char *r = strdup(p->rules[0].act.reply);
    assert_int_equal(strlen(r), p->rules[0].act.reply_len);
    *code = p->rules[0].act.reply_code;
    fault_profile_unref(p);
    return r;
}

static void expect_reply(const char *reply_json, int code, const char *formatted)
{
    int got = 0;
    char *r = compiled_reply(reply_json, &got);
    if (r == NULL || strcmp(r, formatted) != 0 || got != code) {
        print_error("reply %s: got \"%s\" (%d), expected \"%s\" (%d)\n", reply_json, r ? r : "(error)", got,
                    formatted, code);
        free(r);
        fail();
    }
    free(r);
}

/* -- unknown and duplicate keys ------------------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_errors("{\"nmae\": \"x\"}",
                  "nmae: unknown key (expected one of: name, description, seed, magic, server, ehlo, tls, "
                  "limits, rules, comment)",
                  NULL);
    expect_errors("{\"server\": {\"host\": \"x\"}}",
                  "server.host: unknown key (expected one of: hostname, greeting, banner, ehlo_text, size, "
                  "max_recipients, users, auth_mechanisms, comment)",
                  NULL);
    expect_errors("{\"server\": {\"users\": [{\"user\": \"a\", \"password\": \"b\", \"pw\": 1}]}}",
                  "server.users[0].pw: unknown key (expected one of: user, password)", NULL);
    expect_errors("{\"ehlo\": {\"add\": []}}", "ehlo.add: unknown key (expected one of: remove, comment)",
                  NULL);
    expect_errors("{\"tls\": {\"version\": \"1.2\"}}",
                  "tls.version: unknown key (expected one of: certificate, versions, comment)", NULL);
    expect_errors("{\"limits\": {\"connections\": 1}}",
                  "limits.connections: unknown key (expected one of: connections_per_client, "
                  "messages_per_connection, messages_per_minute, comment)",
                  NULL);
    expect_errors(
        "{\"limits\": {\"messages_per_minute\": {\"max\": 1, \"window\": 60}}}",
        "limits.messages_per_minute.window: unknown key (expected one of: max, reply, comment, at, per)",
        NULL);
    expect_errors(
        "{\"limits\": {\"messages_per_connection\": {\"max\": 1, \"per\": \"server\"}}}",
        "limits.messages_per_connection.per: unknown key (expected one of: max, reply, comment, at)", NULL);
    expect_errors("{\"rules\": [{\"whne\": {}}]}",
                  "rules[0].whne: unknown key (expected one of: name, comment, when, do)",
                  "rules[0].when: missing: every rule has a \"when\" (at least its stage)",
                  "rules[0].do: missing: every rule has a \"do\" (what to do when it fires)", NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\", \"from\": \"x\"}", "{\"close\": true}",
        "rules[0].when.from: unknown key (expected one of: stage, listener, client, helo, sender, "
        "rcpt, user, tls, auth, nth, every, times, count, probability, after, until, comment)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"close\": true, \"wait\": 5}",
        "rules[0].do.wait: unknown key (expected one of: delay, reply, raw, truncate, drip, close, "
        "hang, discard, greylist, tls_alert, tls_plaintext, certificate, versions, refuse, "
        "blackhole, comment)",
        NULL);
}

static void test_comments_everywhere(void **state)
{
    (void)state;
    fault_profile *p =
        expect_ok("{\"comment\": \"c\", \"server\": {\"comment\": \"c\"}, \"ehlo\": {\"comment\": \"c\"},"
                  " \"tls\": {\"comment\": \"c\"}, \"limits\": {\"comment\": \"c\","
                  " \"connections_per_client\": {\"max\": 1, \"comment\": \"c\"},"
                  " \"messages_per_connection\": {\"max\": 1, \"comment\": \"c\"},"
                  " \"messages_per_minute\": {\"max\": 1, \"comment\": \"c\"}},"
                  " \"rules\": [{\"comment\": \"c\", \"when\": {\"stage\": \"mail\", \"comment\": \"c\"},"
                  " \"do\": {\"close\": true, \"comment\": \"c\"}}]}");
    fault_profile_unref(p);
    expect_errors("{\"comment\": 5}", "comment: expected a string, got a number", NULL);
    expect_errors("{\"limits\": {\"messages_per_minute\": {\"max\": 1, \"comment\": 5}}}",
                  "limits.messages_per_minute.comment: expected a string, got a number", NULL);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_errors("{\"name\": \"a\", \"name\": \"b\"}", "name: duplicate key", NULL);
    expect_errors("{\"server\": {\"hostname\": \"a\", \"hostname\": \"b\"}}",
                  "server.hostname: duplicate key", NULL);
    expect_errors("{\"server\": {\"users\": [{\"user\": \"a\", \"user\": \"b\", \"password\": \"p\"}]}}",
                  "server.users[0].user: duplicate key", NULL);
    expect_errors("{\"ehlo\": {\"remove\": [\"DSN\"], \"remove\": [\"HELP\"]}}", "ehlo.remove: duplicate key",
                  NULL);
    expect_errors("{\"tls\": {\"certificate\": \"valid\", \"certificate\": \"expired\"}}",
                  "tls.certificate: duplicate key", NULL);
    expect_errors("{\"limits\": {\"messages_per_minute\": 1, \"messages_per_minute\": 2}}",
                  "limits.messages_per_minute: duplicate key", NULL);
    expect_errors("{\"limits\": {\"messages_per_minute\": {\"max\": 1, \"max\": 2}}}",
                  "limits.messages_per_minute.max: duplicate key", NULL);
    expect_errors("{\"rules\": [{\"name\": \"a\", \"name\": \"b\", \"when\": {\"stage\": \"mail\"}, \"do\": "
                  "{\"close\": true}}]}",
                  "rules[0].name: duplicate key", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"stage\": \"rcpt\"}", "{\"close\": true}",
                       "rules[0].when.stage: duplicate key", NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"close\": true, \"close\": \"reset\"}",
                       "rules[0].do.close: duplicate key", NULL);
    /* A key given three times is reported twice, at the same path. */
    expect_errors("{\"seed\": 1, \"seed\": 2, \"seed\": 3}", "seed: duplicate key", "seed: duplicate key",
                  NULL);
}

/* -- types and ranges ------------------------------------------------------------------------------------ */

static void test_wrong_types(void **state)
{
    (void)state;
    expect_errors("[]", "expected an object, got an array", NULL);
    expect_errors("\"x\"", "expected an object, got a string", NULL);
    expect_errors("null", "expected an object, got null", NULL);
    expect_errors("{\"name\": 5, \"description\": [], \"magic\": \"yes\", \"server\": [], \"ehlo\": true,"
                  " \"tls\": 1, \"limits\": null, \"rules\": {}}",
                  "name: expected a string, got a number", "description: expected a string, got an array",
                  "magic: expected true or false, got a string", "server: expected an object, got an array",
                  "ehlo: expected an object, got a boolean", "tls: expected an object, got a number",
                  "limits: expected an object, got null",
                  "rules: expected a list of at most 1000 rules, got an object", NULL);
    expect_errors(
        "{\"server\": {\"hostname\": 1, \"greeting\": false, \"users\": {}, \"auth_mechanisms\": []}}",
        "server.hostname: expected a string, got a number",
        "server.greeting: expected a string, got a boolean",
        "server.users: expected a list of {\"user\": ..., \"password\": ...}, got an object",
        "server.auth_mechanisms: expected a list of 1 to 256 items", NULL);
    expect_errors("{\"server\": {\"users\": [\"a\", {\"user\": \"a\"}, {\"password\": 1}]}}",
                  "server.users[0]: expected an object, got a string", "server.users[1].password: missing",
                  "server.users[2].user: missing",
                  "server.users[2].password: expected a string, got a number", NULL);
    expect_errors(
        "{\"server\": {\"auth_mechanisms\": [5]}, \"ehlo\": {\"remove\": \"x\"}}",
        "server.auth_mechanisms[0]: expected a SASL mechanism name (one of: PLAIN, LOGIN, CRAM-MD5, "
        "XOAUTH2), got a number",
        "ehlo.remove: unknown EHLO capability \"x\" (expected one of: PIPELINING, SIZE, STARTTLS, AUTH, "
        "ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING, BINARYMIME, HELP)",
        NULL);
    expect_errors("{\"rules\": [5, {\"when\": [], \"do\": \"close\"}]}",
                  "rules[0]: expected an object, got a number",
                  "rules[1].when: expected an object, got an array",
                  "rules[1].do: expected an object, got a string", NULL);
    expect_rule_errors(
        "{\"stage\": [], \"helo\": [], \"sender\": [1], \"tls\": \"yes\", \"auth\": 1}", "{\"close\": 1}",
        "rules[0].when.stage: expected a list of 1 to 256 items",
        "rules[0].when.helo: expected a list of 1 to 256 items",
        "rules[0].when.sender[0]: expected a string, got a number",
        "rules[0].when.tls: expected true or false, got a string",
        "rules[0].when.auth: expected true or false, got a number",
        "rules[0].do.close: expected true or \"fin\" (an orderly close), or \"reset\" (an RST)", NULL);
    expect_rule_errors("{\"stage\": 3}", "{\"hang\": \"yes\"}",
                       "rules[0].when.stage: expected a stage name (one of: " STAGES "), got a number",
                       "rules[0].do.hang: expected true or false, got a string", NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"raw\": 5}",
        "rules[0].do.raw: expected the bytes to send as a non-empty string of at most 4096 bytes "
        "(\\r\\n for CRLF)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"raw\": \"\"}",
        "rules[0].do.raw: expected the bytes to send as a non-empty string of at most 4096 bytes "
        "(\\r\\n for CRLF)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\", \"client\": [\"10.0.0.0/33\", \"::1/129\", \"1.2.3.4/x\", \"foo\", "
        "\"1.2.3.4/\", 7]}",
        "{\"close\": true}",
        "rules[0].when.client[0]: expected an IP address or a CIDR block (\"127.0.0.1\", "
        "\"10.0.0.0/8\", \"::1/128\"), got \"10.0.0.0/33\"",
        "rules[0].when.client[1]: expected an IP address or a CIDR block (\"127.0.0.1\", "
        "\"10.0.0.0/8\", \"::1/128\"), got \"::1/129\"",
        "rules[0].when.client[2]: expected an IP address or a CIDR block (\"127.0.0.1\", "
        "\"10.0.0.0/8\", \"::1/128\"), got \"1.2.3.4/x\"",
        "rules[0].when.client[3]: expected an IP address or a CIDR block (\"127.0.0.1\", "
        "\"10.0.0.0/8\", \"::1/128\"), got \"foo\"",
        "rules[0].when.client[4]: expected an IP address or a CIDR block (\"127.0.0.1\", "
        "\"10.0.0.0/8\", \"::1/128\"), got \"1.2.3.4/\"",
        "rules[0].when.client[5]: expected a string, got a number", NULL);
}

static void test_numbers_out_of_range(void **state)
{
    (void)state;
    expect_errors("{\"seed\": -1}", "seed: " WHOLE(0, 9007199254740991) "a number out of range", NULL);
    expect_errors("{\"seed\": 1.5}", "seed: " WHOLE(0, 9007199254740991) "a number out of range", NULL);
    expect_errors("{\"seed\": 9007199254740992}", "seed: " WHOLE(0, 9007199254740991) "a number out of range",
                  NULL);
    expect_errors("{\"seed\": \"1\"}", "seed: " WHOLE(0, 9007199254740991) "a string", NULL);
    expect_errors("{\"server\": {\"max_recipients\": 0}}",
                  "server.max_recipients: " WHOLE(1, 1000000) "a number out of range", NULL);
    expect_errors("{\"server\": {\"max_recipients\": 1000001}}",
                  "server.max_recipients: " WHOLE(1, 1000000) "a number out of range", NULL);
    expect_errors("{\"limits\": {\"connections_per_client\": 0, \"messages_per_connection\": {\"max\": 1.5},"
                  " \"messages_per_minute\": {\"reply\": \"450 x\"}}}",
                  "limits.connections_per_client: " WHOLE(1, 1000000) "a number out of range",
                  "limits.messages_per_connection.max: " WHOLE(1, 1000000) "a number out of range",
                  "limits.messages_per_minute.max: missing", NULL);
    expect_errors("{\"limits\": {\"messages_per_minute\": \"5\"}}",
                  "limits.messages_per_minute: " WHOLE(1, 1000000) "a string", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"nth\": 0, \"every\": 1.5, \"times\": \"2\"}",
                       "{\"close\": true}",
                       "rules[0].when.nth: " WHOLE(1, 1000000000) "a number out of range",
                       "rules[0].when.every: " WHOLE(1, 1000000000) "a number out of range",
                       "rules[0].when.times: " WHOLE(1, 1000000000) "a string", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"nth\": 1000000001}", "{\"truncate\": 0, \"drip\": 1000001}",
                       "rules[0].when.nth: " WHOLE(1, 1000000000) "a number out of range",
                       "rules[0].do.truncate: " WHOLE(1, 4096) "a number out of range",
                       "rules[0].do.drip: " WHOLE(1, 1000000) "a number out of range", NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"truncate\": 4097}",
                       "rules[0].do.truncate: " WHOLE(1, 4096) "a number out of range", NULL);
    const char *bad_probabilities[] = {"1.5", "-0.1", "\"0.5\"", "true"};
    for (size_t i = 0; i < sizeof(bad_probabilities) / sizeof(bad_probabilities[0]); i++) {
        char when[100];
        snprintf(when, sizeof(when), "{\"stage\": \"mail\", \"probability\": %s}", bad_probabilities[i]);
        expect_rule_errors(when, "{\"close\": true}",
                           "rules[0].when.probability: expected a number from 0 to 1", NULL);
    }
}

/* -- durations and sizes ------------------------------------------------------------------------------- */

static int64_t delay_of(const char *value)
{
    char act[100];
    snprintf(act, sizeof(act), "{\"delay\": %s}", value);
    fault_profile *p = rule_ok("{\"stage\": \"mail\"}", act);
    int64_t ms = p->rules[0].act.delay_ms;
    fault_profile_unref(p);
    return ms;
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(delay_of("\"250ms\""), 250);
    assert_int_equal(delay_of("\"1.5s\""), 1500);
    assert_int_equal(delay_of("\"2m\""), 120000);
    assert_int_equal(delay_of("\"1h\""), 3600000);
    assert_int_equal(delay_of("\"24h\""), 86400000);
    assert_int_equal(delay_of("\"0.5ms\""), 1); /* rounded */
    assert_int_equal(delay_of("1500"), 1500);
    assert_int_equal(delay_of("0"), 0);
    assert_int_equal(delay_of("86400000"), 86400000);
    /* only plain decimals: strtod's hex and exponent forms are not durations */
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"delay\": \"0x10s\"}",
        "rules[0].do.delay: expected a duration: milliseconds as a number, or a string such as "
        "\"250ms\", \"1.5s\", \"2m\" (at most 24h)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"delay\": \"1e3ms\"}",
        "rules[0].do.delay: expected a duration: milliseconds as a number, or a string such as "
        "\"250ms\", \"1.5s\", \"2m\" (at most 24h)",
        NULL);
    expect_errors(
        "{\"server\": {\"size\": \"0x10\"}}",
        "server.size: expected a size in bytes from 1 to 1099511627776 (a number, or a string such as "
        "\"10M\")",
        NULL);

    fault_profile *p =
        rule_ok("{\"stage\": \"mail\", \"after\": \"1.5s\", \"until\": \"2m\"}", "{\"close\": true}");
    assert_int_equal(p->rules[0].after_ms, 1500);
    assert_int_equal(p->rules[0].until_ms, 120000);
    fault_profile_unref(p);
    p = rule_ok("{\"stage\": \"rcpt\"}", "{\"greylist\": \"30s\"}");
    assert_int_equal(p->rules[0].act.greylist_ms, 30000);
    fault_profile_unref(p);

    const char *bad[] = {"\"25h\"", "\"-1s\"", "\"1.5\"", "\" 1s\"",  "\"1s \"", "\"1S\"", "\"s\"", "\"1d\"",
                         "\"\"",    "\"inf\"", "\"nan\"", "86400001", "-5",      "true",   "[1]",   "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char when[100], act[100];
        snprintf(when, sizeof(when), "{\"stage\": \"mail\", \"after\": %s, \"until\": %s}", bad[i], bad[i]);
        snprintf(act, sizeof(act), "{\"delay\": %s}", bad[i]);
        expect_rule_errors(when, act, "rules[0].when.after: " BAD_DURATION,
                           "rules[0].when.until: " BAD_DURATION, "rules[0].do.delay: " BAD_DURATION, NULL);
        snprintf(act, sizeof(act), "{\"greylist\": %s}", bad[i]);
        expect_rule_errors("{\"stage\": \"rcpt\"}", act, "rules[0].do.greylist: " BAD_DURATION, NULL);
    }
    expect_rule_errors("{\"stage\": \"rcpt\"}", "{\"greylist\": 0}",
                       "rules[0].do.greylist: a greylist period must be at least 1 ms", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"after\": \"10s\", \"until\": \"5s\"}", "{\"close\": true}",
                       "rules[0].when.until: must be later than \"after\"", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"after\": \"10s\", \"until\": 10000}", "{\"close\": true}",
                       "rules[0].when.until: must be later than \"after\"", NULL);
}

static uint64_t size_of(const char *value)
{
    char json[200];
    snprintf(json, sizeof(json), "{\"server\": {\"size\": %s}}", value);
    fault_profile *p = expect_ok(json);
    uint64_t n = fault_profile_settings(p)->size;
    fault_profile_unref(p);
    return n;
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(size_of("\"10M\""), 10 * 1024 * 1024);
    assert_int_equal(size_of("\"1.5K\""), 1536);
    assert_int_equal(size_of("\"2G\""), 2ull * 1024 * 1024 * 1024);
    assert_int_equal(size_of("\"1000\""), 1000);
    assert_int_equal(size_of("35882577"), 35882577);
    assert_int_equal(size_of("1099511627776"), 1099511627776ull);
    const char *bad[] = {"\"10X\"", "\"M\"", "\"-1\"",        "\"10MB\"", "\"10m\"", "\" 10M\"", "\"\"",
                         "0",       "1.5",   "1099511627777", "-1",       "true",    "[10]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[200];
        snprintf(json, sizeof(json), "{\"server\": {\"size\": %s}}", bad[i]);
        expect_errors(json, "server.size: " BAD_SIZE, NULL);
    }
}

/* -- names ---------------------------------------------------------------------------------------------- */

static void test_unknown_names(void **state)
{
    (void)state;
    expect_rule_errors("{\"stage\": \"rpct\"}", "{\"close\": true}",
                       "rules[0].when.stage: unknown stage \"rpct\" (expected one of: " STAGES ")", NULL);
    expect_rule_errors("{\"stage\": [\"mail\", \"Rcpt\"]}", "{\"close\": true}",
                       "rules[0].when.stage[1]: unknown stage \"Rcpt\" (expected one of: " STAGES ")", NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\", \"listener\": [\"smtp\", \"pop3\"]}", "{\"close\": true}",
        "rules[0].when.listener[1]: unknown listener \"pop3\" (expected one of: smtp, submission, "
        "smtps)",
        NULL);
    expect_errors(
        "{\"tls\": {\"certificate\": \"revoked\"}}",
        "tls.certificate: unknown certificate \"revoked\" (expected one of: valid, expired, wrong_host, "
        "self_signed, untrusted)",
        NULL);
    expect_rule_errors("{\"stage\": \"tls_handshake\"}", "{\"certificate\": \"wrong-host\"}",
                       "rules[0].do.certificate: unknown certificate \"wrong-host\" (expected one of: valid, "
                       "expired, wrong_host, self_signed, untrusted)",
                       NULL);
    expect_errors("{\"tls\": {\"versions\": [\"1.0\", \"1.2\"]}}",
                  "tls.versions[0]: unknown TLS version \"1.0\" (expected one of: 1.1, 1.2, 1.3)", NULL);
    expect_errors("{\"tls\": {\"versions\": [1.2]}}",
                  "tls.versions[0]: expected a TLS version name (one of: 1.1, 1.2, 1.3), got a number", NULL);
    expect_rule_errors("{\"stage\": \"tls_handshake\"}", "{\"tls_alert\": \"bad_mac\"}",
                       "rules[0].do.tls_alert: unknown TLS alert \"bad_mac\" (expected one of: " ALERTS ")",
                       NULL);
    expect_errors(
        "{\"server\": {\"auth_mechanisms\": [\"PLAIN\", \"plain\", \"NTLM\"]}}",
        "server.auth_mechanisms[1]: unknown SASL mechanism \"plain\" (expected one of: PLAIN, LOGIN, "
        "CRAM-MD5, XOAUTH2)",
        "server.auth_mechanisms[2]: unknown SASL mechanism \"NTLM\" (expected one of: PLAIN, LOGIN, "
        "CRAM-MD5, XOAUTH2)",
        NULL);
    expect_errors("{\"ehlo\": {\"remove\": [\"STARTTLS\", \"XCLIENT\"]}}",
                  "ehlo.remove[1]: unknown EHLO capability \"XCLIENT\" (expected one of: PIPELINING, SIZE, "
                  "STARTTLS, AUTH, ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING, BINARYMIME, HELP)",
                  NULL);
    expect_errors(
        "{\"limits\": {\"messages_per_minute\": {\"max\": 1, \"per\": \"listener\"}}}",
        "limits.messages_per_minute.per: unknown scope \"listener\" (expected one of: client, server)", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"times\": 1, \"count\": \"client\"}", "{\"close\": true}",
                       "rules[0].when.count: unknown counting scope \"client\" (expected one of: server, "
                       "connection)",
                       NULL);
}

static void test_versions_contiguous(void **state)
{
    (void)state;
    expect_errors("{\"tls\": {\"versions\": [\"1.1\", \"1.3\"]}}",
                  "tls.versions: the versions must be contiguous (TLS allows a range, not a set)", NULL);
    expect_rule_errors(
        "{\"stage\": \"tls_handshake\"}", "{\"versions\": [\"1.3\", \"1.1\"]}",
        "rules[0].do.versions: the versions must be contiguous (TLS allows a range, not a set)", NULL);
    fault_profile *p = expect_ok("{\"tls\": {\"versions\": [\"1.3\", \"1.2\"]}}");
    assert_int_equal(fault_profile_settings(p)->tls_min, TLS_V1_2);
    assert_int_equal(fault_profile_settings(p)->tls_max, TLS_V1_3);
    fault_profile_unref(p);
    p = expect_ok("{\"tls\": {\"versions\": \"1.1\"}}");
    assert_int_equal(fault_profile_settings(p)->tls_min, TLS_V1_1);
    assert_int_equal(fault_profile_settings(p)->tls_max, TLS_V1_1);
    fault_profile_unref(p);
    p = rule_ok("{\"stage\": \"tls_handshake\"}", "{\"versions\": [\"1.1\", \"1.2\", \"1.3\"]}");
    assert_int_equal(p->rules[0].act.tls_min, TLS_V1_1);
    assert_int_equal(p->rules[0].act.tls_max, TLS_V1_3);
    fault_profile_unref(p);
}

/* -- conditions and actions ------------------------------------------------------------------------------ */

static void test_condition_unknown_at_stage(void **state)
{
    (void)state;
    /* The example of docs/profiles.md, word for word. */
    expect_rule_errors(
        "{\"stage\": \"connect\", \"rcpt\": \"*\"}", "{\"close\": true}",
        "rules[0].when.rcpt: the recipient is not known at stage connect, so the rule could never "
        "fire there (known at: rcpt, data, data_end)",
        NULL);
    expect_rule_errors(
        "{\"stage\": [\"connect\", \"mail\", \"rcpt\"], \"rcpt\": \"*\"}", "{\"close\": true}",
        "rules[0].when.rcpt: the recipient is not known at stage connect, mail, so the rule could "
        "never fire there (known at: rcpt, data, data_end)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"ehlo\", \"sender\": \"*\"}", "{\"close\": true}",
        "rules[0].when.sender: the sender is not known at stage ehlo, so the rule could never fire "
        "there (known at: mail, rcpt, data, data_end)",
        NULL);
    expect_rule_errors(
        "{\"stage\": \"greeting\", \"helo\": \"*\"}", "{\"close\": true}",
        "rules[0].when.helo: the HELO/EHLO name is not known at stage greeting, so the rule could "
        "never fire there (known at: ehlo, starttls, tls_handshake, auth, mail, rcpt, data, "
        "data_end, rset, vrfy, noop, help, quit, unknown)",
        NULL);
    expect_rule_errors(
        "{\"stage\": [\"starttls\", \"tls_handshake\"], \"user\": \"*\"}", "{\"delay\": 1}",
        "rules[0].when.user: the user name is not known at stage starttls, tls_handshake, so the "
        "rule could never fire there (known at: ehlo, auth, mail, rcpt, data, data_end, rset, vrfy, "
        "noop, help, quit, unknown)",
        NULL);
    /* Every fact where it is known. */
    fault_profile *p =
        rule_ok("{\"stage\": [\"data\", \"data_end\"], \"helo\": \"h*\", \"sender\": \"\", "
                "\"rcpt\": [\"a@*\", \"b@*\"], \"user\": \"u\", \"tls\": true, \"auth\": false}",
                "{\"close\": true}");
    const fault_rule *r = &p->rules[0];
    assert_int_equal(r->stages, (1u << FAULT_STAGE_DATA) | (1u << FAULT_STAGE_DATA_END));
    assert_int_equal(r->helo.n, 1);
    assert_string_equal(r->helo.v[0], "h*");
    assert_int_equal(r->sender.n, 1);
    assert_string_equal(r->sender.v[0], "");
    assert_int_equal(r->rcpt.n, 2);
    assert_string_equal(r->rcpt.v[1], "b@*");
    assert_int_equal(r->tls, 1);
    assert_int_equal(r->auth, 0);
    fault_profile_unref(p);
}

/* stage_case - a rule at stage (a name, or a JSON list) doing act fails with rules[0].do<msg> */
typedef struct stage_case {
    const char *stage, *act, *msg;
} stage_case;

static void expect_stage_cases(const stage_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char when[64], msg[400];
        snprintf(when, sizeof(when), cases[i].stage[0] == '[' ? "{\"stage\": %s}" : "{\"stage\": \"%s\"}",
                 cases[i].stage);
        snprintf(msg, sizeof(msg), "rules[0].do%s", cases[i].msg);
        expect_rule_errors(when, cases[i].act, msg, NULL);
    }
}

static void test_refused_combinations(void **state)
{
    (void)state;
    static const stage_case cases[] = {
        {"mail", "{\"hang\": true, \"reply\": \"550 x\"}", ": \"hang\" cannot be combined with \"reply\""},
        {"mail", "{\"hang\": true, \"close\": true}", ": \"hang\" cannot be combined with \"close\""},
        {"mail", "{\"hang\": true, \"drip\": 10}", ": \"hang\" cannot be combined with \"drip\""},
        {"mail", "{\"hang\": true, \"truncate\": 10}", ": \"hang\" cannot be combined with \"truncate\""},
        {"mail", "{\"raw\": \"x\", \"reply\": \"550 x\"}", ": \"raw\" cannot be combined with \"reply\""},
        {"rcpt", "{\"raw\": \"x\", \"greylist\": 10}", ": \"raw\" cannot be combined with \"greylist\""},
        {"data_end", "{\"discard\": true, \"close\": true}",
         ": \"discard\" cannot be combined with \"close\""},
        {"data_end", "{\"discard\": true, \"reply\": \"250 ok\"}",
         ": \"discard\" cannot be combined with \"reply\""},
        {"tls_handshake", "{\"tls_alert\": \"handshake_failure\", \"tls_plaintext\": true}",
         ": \"tls_alert\" cannot be combined with \"tls_plaintext\""},
        {"tls_handshake", "{\"tls_plaintext\": true, \"certificate\": \"expired\"}",
         ": \"tls_plaintext\" cannot be combined with \"certificate\""},
        {"tls_handshake", "{\"tls_plaintext\": true, \"versions\": [\"1.2\"]}",
         ": \"tls_plaintext\" cannot be combined with \"versions\""},
        {"connect", "{\"refuse\": true, \"delay\": 5}", ": \"refuse\" cannot be combined with \"delay\""},
        {"connect", "{\"blackhole\": true, \"close\": true}",
         ": \"blackhole\" cannot be combined with \"close\""},
    };
    expect_stage_cases(cases, sizeof(cases) / sizeof(cases[0]));
    /* refuse with blackhole: each is refused with the other */
    expect_rule_errors("{\"stage\": \"connect\"}", "{\"refuse\": true, \"blackhole\": true}",
                       "rules[0].do: \"refuse\" cannot be combined with \"blackhole\"",
                       "rules[0].do: \"blackhole\" cannot be combined with \"refuse\"", NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{}",
        "rules[0].do: no action (expected at least one of: delay, reply, raw, close, hang, ...)", NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"comment\": \"nothing\"}",
        "rules[0].do: no action (expected at least one of: delay, reply, raw, close, hang, ...)", NULL);
    /* what may go together */
    fault_profile *p =
        rule_ok("{\"stage\": \"rcpt\"}", "{\"delay\": \"1s\", \"reply\": \"451 4.3.0 x\", \"drip\": 5, "
                                         "\"truncate\": 3, \"close\": \"reset\"}");
    const fault_action *a = &p->rules[0].act;
    assert_int_equal(a->delay_ms, 1000);
    assert_int_equal(a->reply_code, 451);
    assert_int_equal(a->drip_bps, 5);
    assert_int_equal(a->truncate, 3);
    assert_int_equal(a->close, FAULT_CLOSE_RST);
    assert_int_equal(a->kinds, (1u << FAULT_ACTION_DELAY) | (1u << FAULT_ACTION_REPLY) |
                                   (1u << FAULT_ACTION_DRIP) | (1u << FAULT_ACTION_TRUNCATE) |
                                   (1u << FAULT_ACTION_CLOSE));
    fault_profile_unref(p);
}

static void test_actions_at_wrong_stage(void **state)
{
    (void)state;
    static const stage_case cases[] = {
        {"mail", "{\"greylist\": \"30s\"}", ".greylist: does not apply at stage mail (only at: rcpt)"},
        {"[\"rcpt\", \"data\"]", "{\"greylist\": \"30s\"}",
         ".greylist: does not apply at stage data (only at: rcpt)"},
        {"rcpt", "{\"discard\": true}", ".discard: does not apply at stage rcpt (only at: data_end)"},
        {"mail", "{\"tls_alert\": \"handshake_failure\"}",
         ".tls_alert: does not apply at stage mail (only at: tls_handshake)"},
        {"starttls", "{\"tls_plaintext\": true}",
         ".tls_plaintext: does not apply at stage starttls (only at: "
         "tls_handshake)"},
        {"ehlo", "{\"certificate\": \"expired\"}",
         ".certificate: does not apply at stage ehlo (only at: "
         "tls_handshake)"},
        {"ehlo", "{\"versions\": [\"1.1\"]}",
         ".versions: does not apply at stage ehlo (only at: tls_handshake)"},
        {"greeting", "{\"refuse\": true}", ".refuse: does not apply at stage greeting (only at: connect)"},
        {"greeting", "{\"blackhole\": true}",
         ".blackhole: does not apply at stage greeting (only at: connect)"},
        {"tls_handshake", "{\"reply\": \"550 x\"}",
         ".reply: does not apply at stage tls_handshake (only at: connect, greeting, ehlo, starttls, auth, "
         "mail, "
         "rcpt, data, data_end, rset, vrfy, noop, help, quit, unknown)"},
        {"tls_handshake", "{\"drip\": 5}",
         ".drip: does not apply at stage tls_handshake (only at: connect, greeting, ehlo, starttls, auth, "
         "mail, "
         "rcpt, data, data_end, rset, vrfy, noop, help, quit, unknown)"},
    };
    expect_stage_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_listener_rules(void **state)
{
    (void)state;
    expect_rule_errors("{\"stage\": \"connect\", \"client\": \"127.0.0.1\"}", "{\"refuse\": true}",
                       "rules[0].when.client: " LISTENER_WHEN, NULL);
    expect_rule_errors("{\"stage\": \"connect\", \"nth\": 2, \"probability\": 0.5}", "{\"blackhole\": true}",
                       "rules[0].when.nth: " LISTENER_WHEN, "rules[0].when.probability: " LISTENER_WHEN,
                       NULL);
    expect_rule_errors("{\"stage\": \"connect\", \"tls\": false}", "{\"refuse\": true}",
                       "rules[0].when.tls: " LISTENER_WHEN, NULL);
    fault_profile *p =
        rule_ok("{\"stage\": \"connect\", \"listener\": [\"smtp\", \"smtps\"], \"after\": \"1s\", "
                "\"until\": \"10s\", \"comment\": \"x\"}",
                "{\"blackhole\": true}");
    const fault_rule *r = &p->rules[0];
    assert_int_equal(r->nlisteners, 2);
    assert_string_equal(r->listeners[0], "smtp");
    assert_string_equal(r->listeners[1], "smtps");
    assert_int_equal(r->after_ms, 1000);
    assert_int_equal(r->until_ms, 10000);
    assert_true(r->act.kinds & (1u << FAULT_ACTION_BLACKHOLE));
    fault_profile_unref(p);
}

static void test_count_and_flags(void **state)
{
    (void)state;
    expect_rule_errors("{\"stage\": \"mail\", \"count\": \"connection\"}", "{\"close\": true}",
                       "rules[0].when.count: only means something with nth, every or times", NULL);
    expect_rule_errors("{\"stage\": \"mail\", \"count\": \"server\", \"probability\": 0.5}",
                       "{\"close\": true}",
                       "rules[0].when.count: only means something with nth, every or times", NULL);
    fault_profile *p =
        rule_ok("{\"stage\": \"mail\", \"count\": \"connection\", \"times\": 2}", "{\"close\": true}");
    assert_int_equal(p->rules[0].per_connection, 1);
    assert_int_equal(p->rules[0].times, 2);
    fault_profile_unref(p);
    p = rule_ok("{\"stage\": \"mail\", \"count\": \"server\", \"every\": 3, \"nth\": 6}",
                "{\"close\": \"fin\"}");
    assert_int_equal(p->rules[0].per_connection, 0);
    assert_int_equal(p->rules[0].every, 3);
    assert_int_equal(p->rules[0].nth, 6);
    assert_int_equal(p->rules[0].act.close, FAULT_CLOSE_FIN);
    fault_profile_unref(p);

    expect_rule_errors("{\"stage\": \"mail\"}", "{\"hang\": false}", "rules[0].do.hang: " FALSE_FLAG, NULL);
    expect_rule_errors("{\"stage\": \"data_end\"}", "{\"discard\": false}",
                       "rules[0].do.discard: " FALSE_FLAG, NULL);
    expect_rule_errors("{\"stage\": \"tls_handshake\"}", "{\"tls_plaintext\": false}",
                       "rules[0].do.tls_plaintext: " FALSE_FLAG, NULL);
    expect_rule_errors("{\"stage\": \"connect\"}", "{\"refuse\": false}", "rules[0].do.refuse: " FALSE_FLAG,
                       NULL);
    expect_rule_errors("{\"stage\": \"connect\"}", "{\"blackhole\": false}",
                       "rules[0].do.blackhole: " FALSE_FLAG, NULL);
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"close\": false}",
        "rules[0].do.close: expected true or \"fin\" (an orderly close), or \"reset\" (an RST)", NULL);
}

/* -- replies ----------------------------------------------------------------------------------------------
 */

static void test_reply_formatting(void **state)
{
    (void)state;
    expect_reply("\"550 5.1.1 User unknown\"", 550, "550 5.1.1 User unknown\r\n");
    expect_reply("\"250\"", 250, "250\r\n");
    expect_reply("\"250-one line\"", 250, "250 one line\r\n"); /* a single line is the last line */
    expect_reply("\"451 4.3.0 Temporary\\tfailure\"", 451, "451 4.3.0 Temporary\tfailure\r\n");
    /* multi-line from "\n": the code is added to lines that lack it, '-' on all but the last */
    expect_reply("\"550 a\\nb\\nc\"", 550, "550-a\r\n550-b\r\n550 c\r\n");
    expect_reply("\"550-a\\n550 b\"", 550, "550-a\r\n550 b\r\n");
    expect_reply("\"550 a\\n550-b\\n550 c\"", 550, "550-a\r\n550-b\r\n550 c\r\n");
    expect_reply("\"550 a\\n\\nb\"", 550, "550-a\r\n550-\r\n550 b\r\n");
    expect_reply("\"550 a\\r\\nb\"", 550, "550-a\r\n550 b\r\n"); /* CRLF between lines */
    /* one reply, one code */
    expect_rule_errors(
        "{\"stage\": \"mail\"}", "{\"reply\": [\"550 a\", \"551 b\"]}",
        "rules[0].do.reply: line 2 of the reply has the code 551, line 1 has 550: a reply has one code",
        NULL);
    /* a final line break ends the last line and starts no other */
    expect_reply("\"550 5.1.1 User unknown\\r\\n\"", 550, "550 5.1.1 User unknown\r\n");
    expect_reply("\"550 a\\nb\\n\"", 550, "550-a\r\n550 b\r\n");
    expect_reply("\"550 a\\n\\n\"", 550, "550-a\r\n550\r\n");
    /* from a list, the docs' example */
    expect_reply("[\"550-5.7.26 Unauthenticated email from example.com is not accepted due to\","
                 " \"550-5.7.26 domain's DMARC policy.\","
                 " \"550 5.7.26 Learn more at https://support.google.com/mail/answer/2451690\"]",
                 550,
                 "550-5.7.26 Unauthenticated email from example.com is not accepted due to\r\n"
                 "550-5.7.26 domain's DMARC policy.\r\n"
                 "550 5.7.26 Learn more at https://support.google.com/mail/answer/2451690\r\n");
    expect_reply("[\"421 a\", \"b\", \"421\"]", 421, "421-a\r\n421-b\r\n421\r\n");
    expect_reply("[\"250 ok\\r\"]", 250, "250 ok\r\n");

    /* the code */
    const char *bad_codes[] = {"199 x", "600 x", "55 x", "550x", "x", "", " 550 x", "5a0 x", "100 x"};
    for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
        char reply[64], msg[200];
        snprintf(reply, sizeof(reply), "\"%s\"", bad_codes[i]);
        snprintf(msg, sizeof(msg), "rules[0].do.reply: " BAD_CODE "\"%s\"", bad_codes[i]);
        char act[100];
        snprintf(act, sizeof(act), "{\"reply\": %s}", reply);
        expect_rule_errors("{\"stage\": \"mail\"}", act, msg, NULL);
    }
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": [\"a\", \"550 b\"]}",
                       "rules[0].do.reply: " BAD_CODE "\"a\"", NULL);
    /* control characters, on any line */
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": \"550 a\\u0001b\"}",
                       "rules[0].do.reply: line 1 of the reply holds a control character", NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": \"550 a\\nb\\rc\"}",
                       "rules[0].do.reply: line 2 of the reply holds a control character", NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": [\"550 a\", \"b\\u001b[0m\"]}",
                       "rules[0].do.reply: line 2 of the reply holds a control character", NULL);
    /* the shape of the value */
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": []}", "rules[0].do.reply: " BAD_REPLY, NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": 550}", "rules[0].do.reply: " BAD_REPLY, NULL);
    expect_rule_errors("{\"stage\": \"mail\"}", "{\"reply\": [\"550 a\", 1]}",
                       "rules[0].do.reply: expected reply lines as strings, got a number", NULL);
}

/* long_reply - a JSON list of n lines "550 " + len x's, or one string of them joined by \n */
static char *long_reply(size_t n, size_t len, int as_string)
{
    size_t cap = n * (len + 12) + 16;
    char *s = malloc(cap), *o = s;
    *o++ = as_string ? '"' : '[';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            o += as_string ? sprintf(o, "\\n") : sprintf(o, ", ");
        if (!as_string)
            *o++ = '"';
        o += sprintf(o, "550 ");
        memset(o, 'x', len);
        o += len;
        if (!as_string)
            *o++ = '"';
    }
    *o++ = as_string ? '"' : ']';
    *o = '\0';
    return s;
}

static void expect_long_reply(size_t n, size_t len, int as_string, const char *msg)
{
    char *reply = long_reply(n, len, as_string);
    size_t cap = strlen(reply) + 100;
    char *act = malloc(cap);
    snprintf(act, cap, "{\"reply\": %s}", reply);
    if (msg != NULL) {
        expect_rule_errors("{\"stage\": \"mail\"}", act, msg, NULL);
    } else {
        fault_profile *p = rule_ok("{\"stage\": \"mail\"}", act);
        assert_int_equal(p->rules[0].act.reply_len, n * (len + 6));
        fault_profile_unref(p);
    }
    free(act);
    free(reply);
}

static void test_reply_limits(void **state)
{
    (void)state;
    expect_long_reply(1, 506, 0, NULL); /* 506 characters after the code: a 512-octet line */
    expect_long_reply(1, 507, 0, "rules[0].do.reply: line 1 of the reply is over 506 characters");
    expect_long_reply(2, 507, 1, "rules[0].do.reply: line 1 of the reply is over 506 characters");
    expect_long_reply(3, 400, 0, NULL);
    expect_long_reply(5, 420, 0, "rules[0].do.reply: the reply is over 2048 bytes");
    expect_long_reply(64, 1, 0, NULL);
    expect_long_reply(65, 1, 0, "rules[0].do.reply: " BAD_REPLY);
    expect_long_reply(64, 1, 1, NULL);
    expect_long_reply(65, 1, 1, "rules[0].do.reply: expected a reply of at most 64 lines");
}

/* -- the whole profile -------------------------------------------------------------------------------- */

static void test_invalid_json(void **state)
{
    (void)state;
    expect_errors("", "invalid JSON at line 1, column 1", NULL);
    expect_errors("{", "invalid JSON at line 1, column 1", NULL); /* cJSON points at the last byte */
    expect_errors("{\n \"x\": [1,\n   2,,]}", "invalid JSON at line 3, column 6", NULL);
    expect_errors("{\"name\": \"a\",}", "invalid JSON at line 1, column 14", NULL);
    expect_errors("{\"name\": 'a'}", "invalid JSON at line 1, column 10", NULL);
    /* after the value: white space only */
    expect_errors("{\"name\": \"a\"} xyz", "invalid JSON at line 1, column 15", NULL);
    expect_errors("{} {\"rules\": 5}", "invalid JSON at line 1, column 4", NULL);
    expect_errors("{}\n\n  }", "invalid JSON at line 3, column 3", NULL);
    fault_profile_unref(expect_ok(" {\"name\": \"a\"}\r\n\t \n"));
    /* a profile of more than 4 MiB is refused before it is read */
    fault_errors e = {0};
    assert_null(fault_profile_compile("{}", 4 * 1024 * 1024 + 1, SRC, &e));
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0], SRC ": the profile is over 4194304 bytes");
    fault_errors_free(&e);
    /* without a source name */
    assert_null(fault_profile_compile("{\"x\": 1}", 8, NULL, &e));
    assert_int_equal(e.n, 1);
    assert_true(strncmp(e.msgs[0], "profile: x: unknown key", 23) == 0);
    fault_errors_free(&e);
    /* without an error list: still refused */
    assert_null(fault_profile_compile("{\"x\": 1}", 8, SRC, NULL));
    /* the length is what counts, not a NUL */
    fault_profile *p = fault_profile_compile("{}garbage", 2, SRC, &e);
    assert_non_null(p);
    assert_string_equal(fault_profile_source(p), "{}");
    fault_profile_unref(p);
}

static void test_all_errors_in_one_run(void **state)
{
    (void)state;
    /* The docs' example, and more of every kind: one compile reports them all, in document order. */
    expect_errors("{\"name\": 1, \"server\": {\"size\": \"10Q\"},"
                  " \"rules\": [{\"when\": {\"stage\": \"rpct\"}, \"do\": {\"reply\": \"550 x\"}},"
                  "  {\"when\": {\"stage\": \"mail\"}, \"do\": {\"greylist\": \"30s\"}},"
                  "  {\"whne\": {\"stage\": \"mail\"}, \"do\": {\"close\": true}}],"
                  " \"tls\": {\"versions\": [\"1.1\", \"1.3\"]}}",
                  "name: expected a string, got a number", "server.size: " BAD_SIZE,
                  "tls.versions: the versions must be contiguous (TLS allows a range, not a set)",
                  "rules[0].when.stage: unknown stage \"rpct\" (expected one of: " STAGES ")",
                  "rules[1].do.greylist: does not apply at stage mail (only at: rcpt)",
                  "rules[2].whne: unknown key (expected one of: name, comment, when, do)",
                  "rules[2].when: missing: every rule has a \"when\" (at least its stage)", NULL);
}

/* unknown_keys - compile a profile of n unknown top-level keys k0, k1, ...: it fails, errors in e */
static void unknown_keys(int n, fault_errors *e)
{
    char json[8192];
    size_t o = (size_t)sprintf(json, "{");
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(json + o, "%s\"k%d\": %d", i ? ", " : "", i, i);
    sprintf(json + o, "}");
    assert_null(compile(json, e));
    assert_true(strncmp(e->msgs[0], SRC ": k0: unknown key", 17) == 0);
    assert_true(strncmp(e->msgs[99], SRC ": k99: unknown key", 18) == 0);
}

static void test_error_cap(void **state)
{
    (void)state;
    fault_errors e;
    unknown_keys(150, &e);
    assert_int_equal(e.n, 101);
    assert_string_equal(e.msgs[100], SRC ": ... and 50 more errors");
    fault_errors_free(&e);
    assert_null(e.msgs);
    assert_int_equal(e.n, 0);
    unknown_keys(100, &e); /* exactly 100: no summary line */
    assert_int_equal(e.n, 100);
    fault_errors_free(&e);
}

static void test_failed_compile_leaks_nothing(void **state)
{
    (void)state;
    /* Errors after much was allocated in the arena: the ASan build checks that nothing leaks. */
    char json[65536];
    size_t o = (size_t)sprintf(json, "{\"name\": \"n\", \"server\": {\"hostname\": \"h\", \"users\": [");
    for (int i = 0; i < 200; i++)
        o += (size_t)sprintf(json + o, "%s{\"user\": \"u%d\", \"password\": \"p%d\"}", i ? ", " : "", i, i);
    o += (size_t)sprintf(json + o, "]}, \"rules\": [");
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(
            json + o,
            "%s{\"name\": \"r%d\", \"when\": {\"stage\": \"rcpt\", \"rcpt\": [\"a%d@*\", \"b@*\"], "
            "\"client\": \"10.0.0.0/8\"}, \"do\": {\"reply\": \"550 a\\nb\"}}",
            i ? ", " : "", i, i);
    sprintf(json + o, ", {\"when\": {\"stage\": \"x\"}, \"do\": {\"close\": true}}]}");
    fault_errors e;
    assert_null(compile(json, &e));
    assert_int_equal(e.n, 1);
    assert_true(strstr(e.msgs[0], "rules[300].when.stage: unknown stage \"x\"") != NULL);
    fault_errors_free(&e);
    fault_errors_free(&e); /* twice is harmless */
}

static void test_too_many_rules(void **state)
{
    (void)state;
    size_t cap = 1001 * 64 + 32;
    char *json = malloc(cap);
    size_t o = (size_t)sprintf(json, "{\"rules\": [");
    for (int i = 0; i < 1001; i++)
        o += (size_t)sprintf(json + o, "%s{\"when\": {\"stage\": \"mail\"}, \"do\": {\"close\": true}}",
                             i ? "," : "");
    sprintf(json + o, "]}");
    expect_errors(json, "rules: expected a list of at most 1000 rules, got more", NULL);
    free(json);
}

/* -- valid profiles ----------------------------------------------------------------------------------- */

static void test_default_profile(void **state)
{
    (void)state;
    fault_profile *p = fault_profile_default();
    const fault_settings *s = fault_profile_settings(p);
    assert_string_equal(s->name, "");
    assert_string_equal(s->description, "");
    assert_null(s->hostname);
    assert_null(s->greeting);
    assert_int_equal(s->magic, -1);
    assert_int_equal(s->certificate, -1);
    assert_int_equal(s->tls_min, -1);
    assert_int_equal(s->tls_max, -1);
    assert_int_equal(s->has_users, 0);
    assert_int_equal(fault_profile_nrules(p), 0);
    assert_string_equal(fault_profile_source(p), "{}");
    fault_profile_unref(p);

    p = expect_ok("{}");
    s = fault_profile_settings(p);
    assert_int_equal(s->magic, -1);
    assert_int_equal(s->size, 0);
    assert_int_equal(s->ehlo_remove, 0);
    assert_int_equal(s->auth_mechs, 0);
    assert_int_equal(p->conns_per_client.max, 0);
    fault_profile_unref(p);
}

static void test_placeholders(void **state)
{
    (void)state;
    expect_rule_errors(
        "{\"stage\": \"rcpt\"}", "{\"reply\": \"550 <{recipient}>\"}",
        "rules[0].do.reply: an unknown placeholder: the text may hold {client}, {sender}, {rcpt}, "
        "{helo}, {user}, {hostname} and {listener} (write {{ and }} for literal braces)",
        NULL);
    expect_errors(
        "{\"server\": {\"greeting\": \"x\", \"banner\": \"y {\"}}",
        "server.banner: an unknown placeholder: the text may hold {client}, {sender}, {rcpt}, {helo}, "
        "{user}, {hostname} and {listener} (write {{ and }} for literal braces)",
        "server.banner: give either \"greeting\" (the text after the host name) or \"banner\" (the whole "
        "text), not both",
        NULL);
    expect_errors(
        "{\"limits\": {\"messages_per_connection\": {\"max\": 1, \"at\": \"quit\"}}}",
        "limits.messages_per_connection.at: unknown stage \"quit\" (expected one of: mail, rcpt, data)",
        NULL);
    expect_errors("{\"limits\": {\"connections_per_client\": {\"max\": 1, \"at\": \"mail\"}}}",
                  "limits.connections_per_client.at: unknown key (expected one of: max, reply, comment)",
                  NULL);
    char out[200];
    fault_vars v = {{"10.0.0.1", "a@x", NULL, "h", NULL, "mx", "smtp"}};
    const char *t = "{client}|{rcpt}|{{x}}|{hostname}}}";
    assert_int_equal(fault_expand(t, strlen(t), &v, out, sizeof(out)), strlen("10.0.0.1||{x}|mx}"));
    assert_string_equal(out, "10.0.0.1||{x}|mx}");
    assert_null(fault_check_placeholders("{{ok}} {user} } x"));
    /* the length is the whole expansion's, also when out is too small (or absent) */
    assert_int_equal(fault_expand(t, strlen(t), &v, out, 4), strlen("10.0.0.1||{x}|mx}"));
    assert_string_equal(out, "10.");
    assert_int_equal(fault_expand(t, strlen(t), &v, NULL, 0), strlen("10.0.0.1||{x}|mx}"));
}

/* fault_fold_reply - lines over 512 octets become continuation lines, never cut inside UTF-8 */
static void test_fold_reply(void **state)
{
    (void)state;
    static char in[2048], out[2048];
    size_t n = (size_t)snprintf(in, sizeof(in), "550-short\r\n550 5.1.10 ");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "\xc3\xa9"); /* 600 bytes of é */
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
    size_t len = fault_fold_reply(in, n, NULL, 0);
    assert_int_equal(fault_fold_reply(in, n, out, sizeof(out)), len);
    assert_int_equal(strlen(out), len);
    /* each piece: "550-5.1.10 " and at most 499 bytes of text, whole characters only (498) */
    assert_true(strncmp(out, "550-short\r\n550-5.1.10 \xc3\xa9", 24) == 0);
    const char *second = strstr(out + 11, "\r\n") + 2;
    assert_int_equal(second - (out + 11), 4 + 7 + 498 + 2);
    assert_true(strncmp(second, "550 5.1.10 \xc3\xa9", 13) == 0);
    assert_int_equal(strlen(second), 4 + 7 + 102 + 2);
    /* a reply within the limits is left as it is */
    assert_int_equal(fault_fold_reply("250 ok\r\n", 8, out, sizeof(out)), 8);
    assert_string_equal(out, "250 ok\r\n");
}

static void test_settings(void **state)
{
    (void)state;
    const char *json =
        "{\"name\": \"gmail\", \"description\": \"like Gmail\", \"seed\": 42, \"magic\": false,\n"
        " \"server\": {\"hostname\": \"smtp.gmail.com\", \"greeting\": \"ESMTP a1 - gsmtp\",\n"
        "   \"size\": \"35M\", \"max_recipients\": 7,\n"
        "   \"users\": [{\"user\": \"app@example.com\", \"password\": \"pw\"},"
        " {\"user\": \"b\", \"password\": \"\"}],\n"
        "   \"auth_mechanisms\": [\"XOAUTH2\", \"PLAIN\"]},\n"
        " \"ehlo\": {\"remove\": [\"STARTTLS\", \"PIPELINING\"]},\n"
        " \"tls\": {\"certificate\": \"self_signed\", \"versions\": [\"1.2\"]}}";
    fault_profile *p = expect_ok(json);
    const fault_settings *s = fault_profile_settings(p);
    assert_string_equal(s->name, "gmail");
    assert_string_equal(s->description, "like Gmail");
    assert_int_equal(s->seed, 42);
    assert_int_equal(s->magic, 0);
    assert_string_equal(s->hostname, "smtp.gmail.com");
    assert_string_equal(s->greeting, "ESMTP a1 - gsmtp");
    assert_int_equal(s->size, 35 * 1024 * 1024);
    assert_int_equal(s->max_recipients, 7);
    assert_int_equal(s->has_users, 1);
    assert_int_equal(s->nusers, 2);
    assert_string_equal(s->user_names[0], "app@example.com");
    assert_string_equal(s->user_passwords[0], "pw");
    assert_string_equal(s->user_names[1], "b");
    assert_string_equal(s->user_passwords[1], "");
    assert_int_equal(s->auth_mechs, (1u << 0) | (1u << 3)); /* PLAIN, XOAUTH2 */
    assert_int_equal(s->ehlo_remove, (1u << FAULT_EHLO_STARTTLS) | (1u << FAULT_EHLO_PIPELINING));
    assert_int_equal(s->certificate, CERT_SELF_SIGNED);
    assert_int_equal(s->tls_min, TLS_V1_2);
    assert_int_equal(s->tls_max, TLS_V1_2);
    assert_string_equal(fault_profile_source(p), json);
    assert_int_equal(fault_profile_nrules(p), 0);
    fault_profile_unref(p);

    p = expect_ok("{\"magic\": true, \"server\": {\"users\": []}}");
    s = fault_profile_settings(p);
    assert_int_equal(s->magic, 1);
    assert_int_equal(s->has_users, 1); /* an empty list replaces the server's: any credentials */
    assert_int_equal(s->nusers, 0);
    fault_profile_unref(p);

    expect_errors("{\"server\": {\"hostname\": \"a b\"}}",
                  "server.hostname: expected a host name without spaces", NULL);
    expect_errors("{\"server\": {\"hostname\": \"\"}}",
                  "server.hostname: expected a host name without spaces", NULL);
    expect_errors("{\"server\": {\"greeting\": \"a\\r\\nb\"}}",
                  "server.greeting: control characters are not allowed here", NULL);
    expect_errors("{\"server\": {\"users\": [{\"user\": \"\", \"password\": \"x\"}]}}",
                  "server.users[0].user: a user name cannot be empty", NULL);
}

static void test_rules_compile(void **state)
{
    (void)state;
    const char *json =
        "{\"rules\": [\n"
        " {\"name\": \"flaky\", \"when\": {\"stage\": \"rcpt\", \"rcpt\": \"*@example.com\", \"times\": 2},\n"
        "  \"do\": {\"reply\": \"451 4.3.0 Temporary failure, try again\"}},\n"
        " {\"when\": {\"stage\": [\"mail\", \"data\"], \"listener\": \"submission\", \"client\": "
        "[\"10.0.0.0/8\","
        " \"::1\"], \"probability\": 0.25, \"after\": 100, \"until\": \"1s\"},\n"
        "  \"do\": {\"raw\": \"250 no CRLF\"}},\n"
        " {\"when\": {\"stage\": \"tls_handshake\"}, \"do\": {\"tls_alert\": \"protocol_version\","
        " \"certificate\": \"expired\"}},\n"
        " {\"when\": {\"stage\": \"data_end\"}, \"do\": {\"discard\": true, \"delay\": \"2s\"}},\n"
        " {\"when\": {\"stage\": \"quit\"}, \"do\": {\"hang\": true}},\n"
        " {\"when\": {\"stage\": \"tls_handshake\"}, \"do\": {\"tls_plaintext\": true}}]}";
    fault_profile *p = expect_ok(json);
    assert_int_equal(fault_profile_nrules(p), 6);
    assert_string_equal(fault_profile_rule_name(p, 0), "flaky");
    assert_string_equal(fault_profile_rule_name(p, 1), "");
    assert_string_equal(fault_profile_rule_name(p, 99), "");

    const fault_rule *r = &p->rules[0];
    assert_int_equal(r->stages, 1u << FAULT_STAGE_RCPT);
    assert_int_equal(r->times, 2);
    assert_int_equal(r->nth, 0);
    assert_int_equal(r->tls, -1);
    assert_int_equal(r->auth, -1);
    assert_true(r->probability < 0);
    assert_true(r->after_ms == FAULT_NO_TIME && r->until_ms == FAULT_NO_TIME);
    assert_string_equal(r->act.reply, "451 4.3.0 Temporary failure, try again\r\n");
    assert_int_equal(r->act.kinds, 1u << FAULT_ACTION_REPLY);
    assert_int_equal(r->act.tls_alert, -1);
    assert_int_equal(r->act.certificate, -1);
    assert_int_equal(r->act.tls_min, -1);

    r = &p->rules[1];
    assert_int_equal(r->stages, (1u << FAULT_STAGE_MAIL) | (1u << FAULT_STAGE_DATA));
    assert_int_equal(r->nlisteners, 1);
    assert_string_equal(r->listeners[0], "submission");
    assert_int_equal(r->nclients, 2);
    assert_int_equal(r->clients[0].net.family, 4);
    assert_int_equal(r->clients[0].prefix, 8);
    assert_int_equal(r->clients[0].net.bytes[0], 10);
    assert_int_equal(r->clients[1].net.family, 6);
    assert_int_equal(r->clients[1].prefix, 128);
    assert_true(r->probability == 0.25);
    assert_int_equal(r->after_ms, 100);
    assert_int_equal(r->until_ms, 1000);
    assert_int_equal(r->act.raw_len, 11);
    assert_memory_equal(r->act.raw, "250 no CRLF", 11);
    assert_null(r->act.reply);

    r = &p->rules[2];
    assert_int_equal(r->act.tls_alert, 70);
    assert_int_equal(r->act.certificate, CERT_EXPIRED);
    r = &p->rules[3];
    assert_int_equal(r->act.discard, 1);
    assert_int_equal(r->act.delay_ms, 2000);
    assert_int_equal(p->rules[4].act.hang, 1);
    assert_int_equal(p->rules[5].act.tls_plaintext, 1);
    assert_string_equal(fault_profile_source(p), json);

    /* a reference keeps it alive */
    assert_ptr_equal(fault_profile_ref(p), p);
    fault_profile_unref(p);
    assert_int_equal(fault_profile_nrules(p), 6);
    fault_profile_unref(p);
    fault_profile_unref(NULL);
}

static void test_limits_compile(void **state)
{
    (void)state;
    fault_profile *p =
        expect_ok("{\"limits\": {\"connections_per_client\": 2, \"messages_per_connection\": 3,"
                  " \"messages_per_minute\": {\"max\": 10, \"per\": \"server\","
                  " \"reply\": \"454 Throttling failure: Maximum sending rate exceeded.\"}}}");
    assert_int_equal(p->conns_per_client.max, 2);
    assert_string_equal(p->conns_per_client.act.reply,
                        "421 4.7.0 Too many connections from your IP, try again later\r\n");
    assert_int_equal(p->conns_per_client.act.reply_code, 421);
    assert_int_equal(p->msgs_per_conn.max, 3);
    assert_string_equal(p->msgs_per_conn.act.reply,
                        "421 4.7.0 Too many messages for this session, try again later\r\n");
    assert_int_equal(p->msgs_per_minute.max, 10);
    assert_int_equal(p->msgs_per_minute.per_server, 1);
    assert_string_equal(p->msgs_per_minute.act.reply,
                        "454 Throttling failure: Maximum sending rate exceeded.\r\n");
    assert_int_equal(p->msgs_per_minute.act.reply_code, 454);
    assert_true(p->msgs_per_minute.act.kinds & (1u << FAULT_ACTION_REPLY));
    fault_profile_unref(p);

    p = expect_ok("{\"limits\": {\"messages_per_minute\": {\"max\": 5, \"per\": \"client\"}}}");
    assert_int_equal(p->msgs_per_minute.per_server, 0);
    assert_string_equal(p->msgs_per_minute.act.reply, "450 4.7.1 Error: too much mail, slow down\r\n");
    fault_profile_unref(p);

    expect_errors("{\"limits\": {\"messages_per_connection\": {\"max\": 1, \"reply\": \"bad\"}}}",
                  "limits.messages_per_connection.reply: " BAD_CODE "\"bad\"", NULL);
}

static void test_names_vocabulary(void **state)
{
    (void)state;
    assert_string_equal(fault_action_name(FAULT_ACTION_GREYLIST), "greylist");
    assert_string_equal(fault_action_name(FAULT_ACTION_COUNT), "?");
    assert_string_equal(fault_cert_name(CERT_WRONG_HOST), "wrong_host");
    assert_string_equal(fault_cert_name(-1), "?");
    assert_int_equal(fault_cert_parse("untrusted"), CERT_UNTRUSTED);
    assert_int_equal(fault_cert_parse("nope"), -1);
    assert_string_equal(fault_tls_version_name(TLS_V1_3), "1.3");
    assert_string_equal(fault_tls_version_name(7), "?");
    assert_int_equal(fault_tls_version_parse("1.1"), TLS_V1_1);
    assert_int_equal(fault_tls_version_parse("1.0"), -1);
    assert_string_equal(fault_tls_alert_name(112), "unrecognized_name");
    assert_string_equal(fault_tls_alert_name(1), "unknown");
    assert_int_equal(fault_tls_alert_parse("handshake_failure"), 40);
    assert_int_equal(fault_tls_alert_parse("x"), -1);
    assert_string_equal(fault_ehlo_cap_name(FAULT_EHLO_8BITMIME), "8BITMIME");
    assert_string_equal(fault_ehlo_cap_name(FAULT_EHLO_COUNT), "?");
    assert_string_equal(fault_stage_name(FAULT_STAGE_DATA_END), "data_end");
    assert_string_equal(fault_stage_name(FAULT_STAGE_COUNT), "?");

    fault_addr a;
    char text[64];
    assert_int_equal(fault_parse_addr("192.0.2.1", &a), 0);
    assert_int_equal(a.family, 4);
    fault_addr_text(&a, text, sizeof(text));
    assert_string_equal(text, "192.0.2.1");
    assert_int_equal(fault_parse_addr("2001:db8::1", &a), 0);
    assert_int_equal(a.family, 6);
    fault_addr_text(&a, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
    assert_int_equal(fault_parse_addr("localhost", &a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_comments_everywhere),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_numbers_out_of_range),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_versions_contiguous),
        cmocka_unit_test(test_condition_unknown_at_stage),
        cmocka_unit_test(test_refused_combinations),
        cmocka_unit_test(test_actions_at_wrong_stage),
        cmocka_unit_test(test_listener_rules),
        cmocka_unit_test(test_count_and_flags),
        cmocka_unit_test(test_reply_formatting),
        cmocka_unit_test(test_reply_limits),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_all_errors_in_one_run),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_failed_compile_leaks_nothing),
        cmocka_unit_test(test_too_many_rules),
        cmocka_unit_test(test_default_profile),
        cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_fold_reply),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_rules_compile),
        cmocka_unit_test(test_limits_compile),
        cmocka_unit_test(test_names_vocabulary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
