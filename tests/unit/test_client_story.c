/* test_client_story.c - the retry story read from transcript events, and its bounds (server/client_story.c)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_story.h"

/* ev - one event of t's connection at ms */
static void ev(client_stories *st, story_track *t, int64_t ms, const char *event, const char *text)
{
    client_story_event(st, t, ms, event, text, strlen(text));
}

/* one_try - a connection from client at ms whose RCPT to rcpt is answered rcpt_reply, then QUIT */
static void one_try(client_stories *st, const char *client, uint64_t sid, int64_t ms, const char *rcpt,
                    const char *rcpt_reply)
{
    story_track t;
    char line[200];
    story_track_start(&t, client, "", sid, ms);
    ev(st, &t, ms, "reply", "220 mx ESMTP");
    ev(st, &t, ms, "command", "MAIL FROM:<app@x.test>");
    ev(st, &t, ms, "reply", "250 2.1.0 Sender <app@x.test> OK");
    snprintf(line, sizeof(line), "RCPT TO:<%s>", rcpt);
    ev(st, &t, ms, "command", line);
    ev(st, &t, ms + 1, "reply", rcpt_reply);
    if (rcpt_reply[0] == '2') {
        ev(st, &t, ms + 1, "command", "DATA");
        ev(st, &t, ms + 1, "reply", "354 go on");
        ev(st, &t, ms + 2, "reply", "250 2.0.0 Ok: queued as X");
    }
    ev(st, &t, ms + 3, "command", "QUIT");
    ev(st, &t, ms + 3, "reply", "221 2.0.0 Bye");
    client_story_session_end(st, &t, NULL);
}

static cJSON *report(const client_stories *st, const char *key)
{
    cJSON *r = client_story_json(st, key);
    assert_non_null(r);
    return r;
}

static int has_finding(const cJSON *r, const char *id)
{
    const cJSON *f = cJSON_GetObjectItem(r, "findings");
    for (const cJSON *x = f->child; x != NULL; x = x->next)
        if (strcmp(cJSON_GetObjectItem(x, "id")->valuestring, id) == 0)
            return 1;
    return 0;
}

static const cJSON *summary(const cJSON *r, const char *key)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(r, "summary"), key);
}

static void test_backoff_then_delivered(void **state)
{
    (void)state;
    client_stories st;
    client_stories_init(&st);
    /* refused at 1001, retried 200, 600, 1500 ms after each refusal */
    one_try(&st, "127.0.0.1:1000", 1, 1000, "b@y.test", "421 4.3.2 busy");
    one_try(&st, "127.0.0.1:1001", 2, 1201, "b@y.test", "421 4.3.2 busy");
    one_try(&st, "127.0.0.1:1002", 3, 1802, "b@y.test", "421 4.3.2 busy");
    one_try(&st, "127.0.0.1:1003", 4, 3303, "b@y.test", "250 2.1.5 ok");
    cJSON *r = report(&st, "127.0.0.1");
    assert_true(cJSON_IsTrue(summary(r, "retried_4xx")));
    assert_true(cJSON_IsTrue(summary(r, "backoff")));
    assert_false(cJSON_IsTrue(summary(r, "hammering")));
    const cJSON *th = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "threads"), 0);
    const cJSON *d = cJSON_GetObjectItem(th, "delays_ms");
    assert_int_equal(cJSON_GetArraySize(d), 3);
    assert_int_equal(cJSON_GetArrayItem(d, 0)->valueint, 200);
    assert_int_equal(cJSON_GetArrayItem(d, 2)->valueint, 1500);
    assert_string_equal(cJSON_GetObjectItem(th, "outcome")->valuestring, "delivered");
    assert_true(has_finding(r, "retry-4xx"));
    cJSON_Delete(r);
    client_stories_forget(&st, NULL);
}

static void test_hammering_and_retried_5xx(void **state)
{
    (void)state;
    client_stories st;
    client_stories_init(&st);
    for (int i = 0; i < 4; i++) /* a fixed 10 ms, with a little jitter: not a backoff */
        one_try(&st, "10.0.0.1:1", (uint64_t)i + 1, 1000 + i * 13, "b@y.test", "451 4.3.0 later");
    one_try(&st, "10.0.0.1:1", 9, 5000, "c@y.test", "550 5.1.1 unknown");
    cJSON *r = report(&st, "10.0.0.1");
    assert_true(has_finding(r, "hammering"));
    assert_false(has_finding(r, "retried-5xx"));
    assert_true(cJSON_IsTrue(summary(r, "gave_up_after_5xx")));
    cJSON_Delete(r);
    one_try(&st, "10.0.0.1:1", 10, 6000, "c@y.test", "550 5.1.1 unknown");
    r = report(&st, "10.0.0.1");
    assert_true(has_finding(r, "retried-5xx"));
    assert_true(cJSON_IsTrue(summary(r, "retried_5xx")));
    assert_int_equal(summary(r, "violations")->valueint, 1);
    cJSON_Delete(r);
    client_stories_forget(&st, NULL);
}

static void test_bounds(void **state)
{
    (void)state;
    client_stories st;
    client_stories_init(&st);
    char client[64], rcpt[64];
    /* clients: the least recently seen goes first */
    for (int i = 0; i < STORY_CLIENTS_MAX + 44; i++) {
        snprintf(client, sizeof(client), "10.1.%d.%d:25", i / 256, i % 256);
        one_try(&st, client, (uint64_t)i, i, "b@y.test", "451 later");
    }
    assert_int_equal(st.n, STORY_CLIENTS_MAX);
    assert_int_equal(st.evicted, 44);
    assert_null(client_story_json(&st, "10.1.0.0"));
    cJSON *r = client_story_json(&st, "10.1.1.43"); /* the newest */
    assert_non_null(r);
    cJSON_Delete(r);
    /* threads per client, tries per thread */
    for (int i = 0; i < STORY_THREADS_MAX + 4; i++) {
        snprintf(rcpt, sizeof(rcpt), "r%d@y.test", i);
        one_try(&st, "10.2.0.1:25", (uint64_t)i, 100000 + i, rcpt, "451 later");
    }
    for (int i = 0; i < STORY_TRIES_MAX + 4; i++)
        one_try(&st, "10.2.0.1:25", (uint64_t)i, 200000 + i * 10, "same@y.test", "451 later");
    r = report(&st, "10.2.0.1");
    const cJSON *threads = cJSON_GetObjectItem(r, "threads");
    assert_int_equal(cJSON_GetArraySize(threads), STORY_THREADS_MAX);
    const cJSON *last = cJSON_GetArrayItem(threads, STORY_THREADS_MAX - 1); /* the newest thread */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(last, "tries")), STORY_TRIES_MAX);
    assert_int_equal(cJSON_GetObjectItem(last, "dropped")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(last, "retries")->valueint, STORY_TRIES_MAX + 3);
    cJSON_Delete(r);
    client_stories_forget(&st, NULL);
    assert_int_equal(st.n, 0);
    assert_true(TAILQ_EMPTY(&st.list));
}

static void test_scopes_and_forget(void **state)
{
    (void)state;
    client_stories st;
    client_stories_init(&st);
    story_track t;
    story_track_start(&t, "127.0.0.1:4000", "s1", 1, 10);
    assert_string_equal(t.key, "scope:s1");
    ev(&st, &t, 10, "reply", "421 4.7.0 too many connections");
    client_story_session_end(&st, &t, NULL);
    one_try(&st, "[::1]:4001", 2, 20, "b@y.test", "250 ok");
    one_try(&st, "[::1]:4001", 3, 30, "c@y.test", "451 later");
    cJSON *r = report(&st, "scope:s1");
    assert_string_equal(cJSON_GetObjectItem(r, "scope")->valuestring, "s1");
    cJSON_Delete(r);
    cJSON *keys = client_story_keys(&st); /* client addresses only */
    assert_int_equal(cJSON_GetArraySize(keys), 1);
    assert_string_equal(cJSON_GetArrayItem(keys, 0)->valuestring, "::1");
    cJSON_Delete(keys);
    client_stories_forget(&st, ""); /* the server's own reset: the scope's story stays */
    assert_null(client_story_json(&st, "::1"));
    r = report(&st, "scope:s1");
    cJSON_Delete(r);
    client_stories_forget(&st, "s1");
    assert_int_equal(st.n, 0);
}

/* count_of - the count of finding id in report r (0: not there) */
static int count_of(const cJSON *r, const char *id)
{
    const cJSON *f = cJSON_GetObjectItem(r, "findings");
    for (const cJSON *x = f->child; x != NULL; x = x->next)
        if (strcmp(cJSON_GetObjectItem(x, "id")->valuestring, id) == 0)
            return cJSON_GetObjectItem(x, "count")->valueint;
    return 0;
}

static void test_findings_handed_to_the_session(void **state)
{
    (void)state;
    client_stories st = {0};
    one_try(&st, "127.0.0.1:1000", 1, 1000, "b@y.test", "550 5.1.1 no");
    story_track t;
    story_track_start(&t, "127.0.0.1:1001", "", 2, 2000);
    ev(&st, &t, 2000, "reply", "220 mx ESMTP");
    ev(&st, &t, 2000, "command", "MAIL FROM:<app@x.test>");
    ev(&st, &t, 2000, "reply", "250 ok");
    ev(&st, &t, 2000, "command", "RCPT TO:<b@y.test>");
    assert_int_equal(t.fresh.n, 0);
    ev(&st, &t, 2001, "reply", "550 5.1.1 no");
    /* the try that repeated the 5xx made retried-5xx: handed to its connection, with the story's line */
    assert_int_equal(t.fresh.n, 1);
    assert_int_equal(t.fresh.items[0].id, FINDING_RETRIED_5XX);
    assert_int_equal(t.fresh.items[0].session, 2);
    assert_memory_equal(t.fresh.items[0].line, "tried again 999 ms after", 24);
    /* the session keeps it with one of its own; at its end only its own joins the client's again */
    findings session = {0};
    findings_move(&session, &t.fresh);
    assert_int_equal(findings_add(&session, FINDING_NO_QUIT, 2002, 2, "x", 1), 1);
    client_story_session_end(&st, &t, &session);
    findings_free(&session);
    cJSON *r = report(&st, "127.0.0.1");
    assert_int_equal(count_of(r, "retried-5xx"), 1);
    assert_int_equal(count_of(r, "no-quit"), 1);
    cJSON_Delete(r);
    client_stories_forget(&st, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_then_delivered),
        cmocka_unit_test(test_hammering_and_retried_5xx),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_scopes_and_forget),
        cmocka_unit_test(test_findings_handed_to_the_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
