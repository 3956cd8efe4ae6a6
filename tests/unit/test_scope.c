/* test_scope.c - the bookkeeping of created scopes (server/scope.c), on a real server in this process */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "server.h"

typedef struct fixture {
    uv_loop_t loop;
    config cfg;
    server srv;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[200];
    assert_non_null(f);
    config_defaults(&f->cfg);
    log_setup(stderr, LOG_FORMAT_TEXT, LOG_ERROR);
    f->cfg.log_level = LOG_ERROR;
    f->cfg.no_tls = 1; /* the smtp and submission listeners only: smtps needs TLS */
    f->cfg.nadmin = 0;
    assert_int_equal(config_parse_addr("127.0.0.1:0", &f->cfg.listen[LISTENER_SMTP], err, sizeof(err)), 0);
    assert_int_equal(config_parse_addr("127.0.0.1:0", &f->cfg.listen[LISTENER_SUBMISSION], err, sizeof(err)),
                     0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static void start(fixture *f)
{
    fault_profile *p = fault_profile_default();
    assert_non_null(p);
    assert_int_equal(server_start(&f->srv, &f->loop, &f->cfg, p), 0);
    fault_profile_unref(p);
}

static int teardown(void **state)
{
    fixture *f = *state;
    server_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* every handle closed, every scope freed */
    server_free(&f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static scope *create(fixture *f, unsigned listeners, int keep, const void *owner)
{
    scope_request req = {NULL, listeners, keep, owner};
    const char *code = NULL;
    char err[300];
    scope *sc = scope_create(&f->srv, &req, &code, err, sizeof(err));
    if (sc == NULL)
        fail_msg("scope_create: %s: %s", code, err);
    return sc;
}

static void create_fails(fixture *f, unsigned listeners, const char *want_code, const char *want_text)
{
    scope_request req = {NULL, listeners, 0, NULL};
    const char *code = NULL;
    char err[300] = "";
    assert_null(scope_create(&f->srv, &req, &code, err, sizeof(err)));
    assert_string_equal(code, want_code);
    assert_non_null(strstr(err, want_text));
}

static void test_ids_listeners_and_find(void **state)
{
    fixture *f = *state;
    start(f);
    scope *a = create(f, 0, 0, NULL), *b = create(f, 1u << LISTENER_SMTP, 0, NULL);
    assert_string_equal(a->id, "s1");
    assert_string_equal(b->id, "s2");
    assert_int_equal(f->srv.nscopes, 2);
    /* a: every listener the server runs; b: the one it asked for */
    assert_true(a->listeners[LISTENER_SMTP].open && a->listeners[LISTENER_SUBMISSION].open);
    assert_false(a->listeners[LISTENER_SMTPS].open);
    assert_true(b->listeners[LISTENER_SMTP].open && !b->listeners[LISTENER_SUBMISSION].open);
    assert_int_not_equal(a->listeners[LISTENER_SMTP].port, f->srv.own.listeners[LISTENER_SMTP].port);
    assert_int_not_equal(a->listeners[LISTENER_SMTP].port, b->listeners[LISTENER_SMTP].port);
    /* the session settings are the server's listener's */
    assert_int_equal(a->listeners[LISTENER_SUBMISSION].cfg.auth_required, 1);
    assert_ptr_equal(scope_find(&f->srv, "s2"), b);
    assert_null(scope_find(&f->srv, "s3"));
    assert_null(scope_find(&f->srv, ""));
    scope_end(b, "test");
    assert_null(scope_find(&f->srv, "s2"));
    assert_int_equal(f->srv.nscopes, 1);
    scope_end(b, "again");           /* ending twice is nothing */
    scope_end(&f->srv.own, "never"); /* the server's own is not a created scope */
    assert_int_equal(f->srv.nscopes, 1);
    assert_string_equal(create(f, 0, 0, NULL)->id, "s3"); /* ids are never reused */
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    f->cfg.max_scopes = 2;
    start(f);
    create_fails(f, 1u << LISTENER_SMTPS, "bad_argument", "does not run a smtps listener");
    create(f, 0, 0, NULL);
    create(f, 0, 0, NULL);
    create_fails(f, 0, "too_many_scopes", "at most 2 scopes");
    scope_end(scope_find(&f->srv, "s1"), "test");
    assert_string_equal(create(f, 0, 0, NULL)->id, "s3"); /* the refusals took no id */
}

static void test_owner_gone(void **state)
{
    fixture *f = *state;
    int owner, other;
    start(f);
    scope *a = create(f, 0, 0, &owner), *kept = create(f, 0, 1, &owner), *b = create(f, 0, 0, &owner);
    scope *c = create(f, 0, 0, &other);
    assert_null(kept->owner); /* a kept scope belongs to nobody */
    assert_ptr_equal(a->owner, &owner);
    scope_owner_gone(&f->srv, &owner);
    assert_int_equal(f->srv.nscopes, 2);
    assert_ptr_equal(scope_find(&f->srv, kept->id), kept);
    assert_ptr_equal(scope_find(&f->srv, c->id), c);
    assert_null(scope_find(&f->srv, "s1"));
    assert_null(scope_find(&f->srv, "s3"));
    (void)b;
}

/* free_range - the first of n consecutive ports free on 127.0.0.1 now */
static unsigned free_range(unsigned n)
{
    for (unsigned base = 41000; base < 60000; base += 101) {
        int fds[8], ok = 1;
        unsigned i;
        for (i = 0; i < n && ok; i++) {
            struct sockaddr_in sa;
            uv_ip4_addr("127.0.0.1", (int)(base + i), &sa);
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            ok = fds[i] >= 0 && bind(fds[i], (const struct sockaddr *)&sa, sizeof(sa)) == 0;
        }
        for (unsigned j = 0; j < i; j++)
            if (fds[j] >= 0)
                close(fds[j]);
        if (ok)
            return base;
    }
    fail_msg("no free port range");
    return 0;
}

static void test_port_range(void **state)
{
    fixture *f = *state;
    unsigned base = free_range(3);
    f->cfg.scope_port_low = base;
    f->cfg.scope_port_high = base + 2;
    start(f);
    scope *a = create(f, 1u << LISTENER_SMTP, 0, NULL);
    /* two listeners take the last two ports */
    scope *b = create(f, 0, 0, NULL);
    assert_int_equal(a->listeners[LISTENER_SMTP].port, (int)base);
    assert_int_equal(b->listeners[LISTENER_SMTP].port, (int)base + 1);
    assert_int_equal(b->listeners[LISTENER_SUBMISSION].port, (int)base + 2);
    create_fails(f, 1u << LISTENER_SMTP, "unavailable", "no free port for smtp in --scope-ports");
    /* a scope that got one listener but not the second releases it, and takes no id */
    scope_end(a, "test");
    create_fails(f, 0, "unavailable", "no free port for submission");
    assert_int_equal(f->srv.nscopes, 1);
    scope *c = create(f, 1u << LISTENER_SMTP, 0, NULL);
    assert_int_equal(c->listeners[LISTENER_SMTP].port, (int)base);
    assert_string_equal(c->id, "s3");
}

static void test_messages_draw_on_one_pool(void **state)
{
    fixture *f = *state;
    f->cfg.store_max_messages = 2;
    start(f);
    scope *a = create(f, 0, 0, NULL);
    store_msg *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = store_msg_new();
        assert_non_null(m[i]);
        store *st = i == 1 ? &f->srv.own.store : &a->store;
        store_assign_id(st, m[i]);
        scope_message_stored(i == 1 ? &f->srv.own : a, m[i]);
    }
    /* the scope's first message, the oldest anywhere, made room for the third */
    assert_int_equal(a->store.count, 1);
    assert_int_equal(a->store.evicted, 1);
    assert_int_equal(f->srv.own.store.count, 1);
    assert_int_equal(f->srv.messages.count, 2);
    assert_true(m[0]->seq < m[1]->seq && m[1]->seq < m[2]->seq); /* one id sequence */
    scope_end(a, "test");                                        /* its messages go at once */
    assert_int_equal(f->srv.messages.count, 1);
    for (int i = 0; i < 3; i++)
        store_msg_unref(m[i]);
}

/* closed sessions: SESSIONS_RECENT_MAX per ring, SESSIONS_KEPT_MAX in all, the oldest anywhere first */
static void test_closed_sessions_pool(void **state)
{
    (void)state;
    sessions_pool pool;
    sessions_ring own, other[10];
    sessions_pool_init(&pool);
    sessions_ring_init(&own, &pool);
    uint64_t id = 0;
    for (int i = 0; i < SESSIONS_RECENT_MAX + 10; i++) {
        session_record rec = {.id = ++id};
        rec.helo = strdup("client.example"); /* owned by the ring from now on */
        sessions_ring_add(&own, &rec);
        assert_null(rec.helo);
    }
    assert_int_equal(own.count, SESSIONS_RECENT_MAX);
    assert_int_equal(TAILQ_FIRST(&own.kept)->rec.id, 11); /* its 10 oldest forgotten */
    for (int r = 0; r < 10; r++) {
        sessions_ring_init(&other[r], &pool);
        for (int i = 0; i < SESSIONS_RECENT_MAX; i++) {
            session_record rec = {.id = ++id};
            sessions_ring_add(&other[r], &rec);
        }
    }
    /* 200 + 10 x 200 = 2200 were added past own's: the pool kept 2000, own's 200 went first */
    assert_int_equal(pool.count, SESSIONS_KEPT_MAX);
    assert_int_equal(own.count, 0);
    assert_true(TAILQ_EMPTY(&own.kept));
    assert_int_equal(other[0].count, SESSIONS_RECENT_MAX);
    sessions_ring_free(&other[3]);
    assert_int_equal(pool.count, SESSIONS_KEPT_MAX - SESSIONS_RECENT_MAX);
    for (int r = 0; r < 10; r++)
        sessions_ring_free(&other[r]);
    sessions_ring_free(&own);
    assert_int_equal(pool.count, 0);
    assert_true(TAILQ_EMPTY(&pool.kept));
    assert_null(TAILQ_LAST(&pool.kept, sessions_kept));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_listeners_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_draw_on_one_pool, setup, teardown),
        cmocka_unit_test(test_closed_sessions_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
