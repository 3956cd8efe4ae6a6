/* test_event_line.c - event stream lines (server/event_line.c) match the JSON the streams documented, byte
 * for byte: the line a reference built with log_sanitize, snprintf and cJSON's parser agrees with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "event_line.h"
#include "log.h"

/* reference - the line as the stream wrote it with snprintf before event_line */
static size_t reference(char *out, size_t outsz, const char *scope_id, uint64_t sid, const char *event,
                        const char *text, size_t len, const struct timespec *now)
{
    char clean[EVENT_TEXT_CLEAN_MAX], when[40], day[32];
    log_sanitize(text, len, clean, sizeof(clean));
    struct tm tm;
    gmtime_r(&now->tv_sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof(when), "%s.%03dZ", day, (int)(now->tv_nsec / 1000000));
    size_t n = (size_t)snprintf(out, outsz, "{\"event\":\"%s\"", event);
    if (sid != 0)
        n += (size_t)snprintf(out + n, outsz - n, ",\"session\":%llu", (unsigned long long)sid);
    n += (size_t)snprintf(out + n, outsz - n, ",\"time\":\"%s\",\"text\":\"", when);
    for (const char *p = clean; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            out[n++] = '\\';
        out[n++] = *p;
    }
    if (scope_id[0] != '\0')
        n += (size_t)snprintf(out + n, outsz - n, "\",\"scope\":\"%s\"}", scope_id);
    else
        n += (size_t)snprintf(out + n, outsz - n, "\"}");
    return n;
}

/* same - event_line and the reference agree, and the line is one valid JSON object whose text is the
 * sanitised text */
static void same(const char *scope_id, uint64_t sid, const char *event, const char *text, size_t len,
                 long nsec)
{
    struct timespec now = {1796050000 + (time_t)len, nsec}; /* another second each time: the cached prefix */
    char got[EVENT_LINE_MAX], want[EVENT_LINE_MAX];
    size_t n = event_line(got, scope_id, sid, event, text, len, &now);
    size_t m = reference(want, sizeof(want), scope_id, sid, event, text, len, &now);
    assert_true(n < EVENT_LINE_MAX);
    assert_int_equal(n, m);
    assert_memory_equal(got, want, n);
    got[n] = '\0';
    cJSON *o = cJSON_Parse(got);
    assert_non_null(o);
    char clean[EVENT_TEXT_CLEAN_MAX];
    log_sanitize(text, len, clean, sizeof(clean));
    assert_string_equal(cJSON_GetObjectItem(o, "text")->valuestring, clean);
    assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, event);
    if (sid != 0)
        assert_true(cJSON_GetObjectItem(o, "session")->valuedouble == (double)sid);
    else
        assert_null(cJSON_GetObjectItem(o, "session"));
    cJSON_Delete(o);
}

static void test_plain_texts(void **state)
{
    (void)state;
    same("", 1, "reply", "220 localhost ESMTP smtpfault", 29, 606000000);
    same("s12", 42, "command", "MAIL FROM:<a@example.com> SIZE=1024", 35, 5000000);
    same("", 7, "command", "", 0, 999999999);
    same("", 0, "connect", "127.0.0.1:46306 on smtp 127.0.0.1:2525", 38, 0);
    same("s999999", UINT64_MAX, "close", "quit", 4, 10000000);
    same("", 3, "command", "RCPT TO:<\"quoted local\"@example.com>", 36, 123456789);
}

static void test_texts_that_need_the_sanitiser(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "a\\b",       /* a backslash: shown as \\ by the log, escaped again for JSON */
        "EHLO x\r\n", /* control bytes */
        "Subject: Gr\xc3\xbc\xc3\x9f"
        "e",
        "bad \xff\xfe utf-8",
        "C1 \xc2\x85 and \xe2\x80\xa8 separators",
        "\x7f\x01\x1b[31m",
        "tab\there \"and\" quotes",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        same("s1", i + 1, "command", texts[i], strlen(texts[i]), 1000000 * (long)i);
}

static void test_long_texts_are_cut_as_the_log_cuts_them(void **state)
{
    (void)state;
    char text[4096];
    memset(text, 'x', sizeof(text));
    for (size_t len = LOG_TEXT_MAX - 1; len <= LOG_TEXT_MAX + 1; len++)
        same("", 9, "command", text, len, 0);
    same("", 9, "command", text, sizeof(text), 0);
    /* The longest line: every byte shown as an escape, and escaped again. */
    memset(text, '\\', sizeof(text));
    same("s1234567890123456789012", UINT64_MAX, "tls_handshake", text, sizeof(text), 0);
    memset(text, 0x01, sizeof(text));
    same("s1234567890123456789012", UINT64_MAX, "tls_handshake", text, sizeof(text), 0);
}

static void test_u64(void **state)
{
    (void)state;
    char out[EVENT_U64_DIGITS + 1];
    static const struct {
        uint64_t v;
        const char *text;
    } cases[] = {{0, "0"}, {9, "9"}, {10, "10"}, {1000, "1000"}, {UINT64_MAX, "18446744073709551615"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = event_u64(out, cases[i].v);
        out[n] = '\0';
        assert_string_equal(out, cases[i].text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_texts),
        cmocka_unit_test(test_texts_that_need_the_sanitiser),
        cmocka_unit_test(test_long_texts_are_cut_as_the_log_cuts_them),
        cmocka_unit_test(test_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
