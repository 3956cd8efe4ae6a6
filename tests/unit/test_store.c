/* test_store.c - message objects and the bounded store (server/store.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static store_msg *msg_of_size(size_t size)
{
    store_msg *m = store_msg_new();
    assert_non_null(m);
    char buf[256];
    memset(buf, 'm', sizeof(buf));
    while (m->size < size) {
        size_t n = size - m->size < sizeof(buf) ? size - m->size : sizeof(buf);
        assert_int_equal(store_msg_append(m, buf, n), 0);
    }
    return m;
}

static void add(store *st, size_t size)
{
    store_msg *m = msg_of_size(size);
    store_assign_id(st, m);
    store_add(st, m);
    store_msg_unref(m); /* the store holds its own reference */
}

static void test_ids(void **state)
{
    (void)state;
    store_pool pool;
    store st;
    store_pool_init(&pool, 10, 1000, "ABCD");
    store_init(&st, &pool);
    store_msg *a = store_msg_new(), *b = store_msg_new();
    store_assign_id(&st, a);
    store_assign_id(&st, b);
    assert_string_equal(a->id, "ABCD00000001");
    assert_string_equal(b->id, "ABCD00000002");
    store_msg_unref(a);
    store_msg_unref(b);
}

static void test_count_limit(void **state)
{
    (void)state;
    store_pool pool;
    store st;
    store_pool_init(&pool, 3, 1 << 20, "X");
    store_init(&st, &pool);
    for (int i = 0; i < 5; i++)
        add(&st, 10);
    assert_int_equal(st.count, 3);
    assert_int_equal(st.bytes, 30);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(st.accepted, 5);
    assert_string_equal(TAILQ_FIRST(&st.msgs)->id, "X00000003"); /* oldest first out */
    assert_string_equal(TAILQ_LAST(&st.msgs, store_msgs)->id, "X00000005");
    store_clear(&st);
    assert_int_equal(st.count, 0);
    assert_true(TAILQ_EMPTY(&st.msgs));
}

static void test_byte_limit(void **state)
{
    (void)state;
    store_pool pool;
    store st;
    store_pool_init(&pool, 100, 1000, "X");
    store_init(&st, &pool);
    add(&st, 400);
    add(&st, 400);
    add(&st, 300); /* 1100 > 1000: the first goes */
    assert_int_equal(st.count, 2);
    assert_int_equal(st.bytes, 700);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.evicted_bytes, 400);
    add(&st, 5000); /* larger than the whole store: kept alone */
    assert_int_equal(st.count, 1);
    assert_int_equal(st.bytes, 5000);
    store_clear(&st);
}

static void test_reference_outlives_eviction(void **state)
{
    (void)state;
    store_pool pool;
    store st;
    store_pool_init(&pool, 1, 1000, "X");
    store_init(&st, &pool);
    store_msg *m = msg_of_size(5);
    store_assign_id(&st, m);
    store_add(&st, m);
    add(&st, 5); /* evicts m from the store; our reference keeps it alive */
    assert_int_equal(m->size, 5);
    assert_memory_equal(m->body, "mmmmm", 5);
    store_msg_unref(m);
    store_clear(&st);
}

/* Two stores on one pool (the server's and a scope's): one id sequence, one pair of limits, and past
 * a limit the oldest message of either store goes first. */
static void test_pool_shared(void **state)
{
    (void)state;
    store_pool pool;
    store own, scoped;
    store_pool_init(&pool, 3, 1000, "P");
    store_init(&own, &pool);
    store_init(&scoped, &pool);
    add(&own, 10);    /* P00000001 */
    add(&scoped, 10); /* P00000002 */
    add(&scoped, 10); /* P00000003 */
    assert_string_equal(TAILQ_FIRST(&own.msgs)->id, "P00000001");
    assert_string_equal(TAILQ_FIRST(&scoped.msgs)->id, "P00000002");
    assert_int_equal(pool.count, 3);
    add(&scoped, 10); /* the pool is full: own's message, the oldest anywhere, goes */
    assert_int_equal(own.count, 0);
    assert_true(TAILQ_EMPTY(&own.msgs));
    assert_int_equal(own.evicted, 1);
    assert_int_equal(scoped.count, 3);
    assert_int_equal(scoped.evicted, 0);
    assert_int_equal(pool.count, 3);
    assert_int_equal(pool.bytes, 30);
    store_remove(&scoped, TAILQ_FIRST(&scoped.msgs)); /* out of both orders */
    assert_string_equal(TAILQ_FIRST(&pool.msgs)->id, "P00000003");
    assert_int_equal(pool.count, 2);
    assert_int_equal(store_clear(&scoped), 2);
    assert_true(TAILQ_EMPTY(&pool.msgs));
    assert_null(TAILQ_LAST(&pool.msgs, store_msgs));
    assert_int_equal(pool.bytes, 0);
}

static void test_envelope_json(void **state)
{
    (void)state;
    store_msg *m = msg_of_size(3);
    assert_int_equal(store_msg_set_sender(m, "a@x.test", 8), 0);
    assert_int_equal(store_msg_add_rcpt(m, "b@y.test", 8), 0);
    assert_int_equal(store_msg_add_rcpt(m, "c@y.test", 8), 0);
    assert_int_equal(store_msg_set_helo(m, "client", 6), 0);
    m->received_ms = 1700000000123;
    m->body_type = "8BITMIME";
    cJSON *j = store_msg_envelope_json(m);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "sender")->valuestring, "a@x.test");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "recipients")), 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "size")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "received")->valuestring,
                        "2023-11-14T22:13:20.123Z");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "body")->valuestring, "8BITMIME");
    cJSON_Delete(j);
    store_msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),         cmocka_unit_test(test_count_limit),
        cmocka_unit_test(test_byte_limit),  cmocka_unit_test(test_reference_outlives_eviction),
        cmocka_unit_test(test_pool_shared), cmocka_unit_test(test_envelope_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
