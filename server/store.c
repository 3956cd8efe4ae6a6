/*
 * store.c - message objects and the bounded in-memory message store.
 */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytebuf.h"
#include "jsonutil.h"

#define STORE_BODY_INITIAL 4096 /* first body allocation; grows by doubling */

store_msg *store_msg_new(void)
{
    store_msg *m = calloc(1, sizeof(*m));
    if (m != NULL)
        m->refs = 1;
    return m;
}

store_msg *store_msg_ref(store_msg *m)
{
    m->refs++;
    return m;
}

void store_msg_unref(store_msg *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    free(m->sender);
    free(m->helo);
    free(m->auth_user);
    free(m->body);
    free(m);
}

static char *copy_text(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* replace_text - *slot becomes a copy of s; -1 (and *slot unchanged) when out of memory */
static int replace_text(char **slot, const char *s, size_t n)
{
    char *c = copy_text(s, n);
    if (c == NULL)
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

int store_msg_set_sender(store_msg *m, const char *s, size_t n)
{
    return replace_text(&m->sender, s, n);
}

int store_msg_set_helo(store_msg *m, const char *s, size_t n)
{
    return replace_text(&m->helo, s, n);
}

int store_msg_set_auth_user(store_msg *m, const char *s, size_t n)
{
    return replace_text(&m->auth_user, s, n);
}

int store_msg_add_rcpt(store_msg *m, const char *s, size_t n)
{
    if (m->nrcpts == m->rcpt_cap) {
        size_t cap = m->rcpt_cap ? m->rcpt_cap * 2 : 4;
        char **r = realloc(m->rcpts, cap * sizeof(*r));
        if (r == NULL)
            return -1;
        m->rcpts = r;
        m->rcpt_cap = cap;
    }
    char *c = copy_text(s, n);
    if (c == NULL)
        return -1;
    m->rcpts[m->nrcpts++] = c;
    return 0;
}

int store_msg_reserve(store_msg *m, size_t n)
{
    /* The body grows as a bytebuf does; its fields stay body, size and cap for the many that read them. The
     * session bounds it (the SIZE limit, the content in flight) before it asks. */
    bytebuf b = {m->body, m->size, m->cap, STORE_BODY_INITIAL, SIZE_MAX};
    if (bytebuf_reserve(&b, n) != 0)
        return -1;
    m->body = b.data;
    m->cap = b.cap;
    return 0;
}

int store_msg_append(store_msg *m, const char *data, size_t n)
{
    if (store_msg_reserve(m, n) != 0)
        return -1;
    memcpy(m->body + m->size, data, n);
    m->size += n;
    return 0;
}

void store_msg_drop_body(store_msg *m)
{
    free(m->body);
    m->body = NULL;
    m->size = m->cap = 0;
}

cJSON *store_msg_envelope_json(const store_msg *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "sender", m->sender ? m->sender : "");
    cJSON *r = cJSON_AddArrayToObject(o, "recipients");
    for (size_t i = 0; r != NULL && i < m->nrcpts; i++)
        cJSON_AddItemToArray(r, cJSON_CreateString(m->rcpts[i]));
    cJSON_AddStringToObject(o, "helo", m->helo ? m->helo : "");
    cJSON_AddStringToObject(o, "client", m->client);
    cJSON_AddStringToObject(o, "listener", m->listener);
    cJSON_AddNumberToObject(o, "session", (double)m->session_id);
    json_add_tls(o, m->tls_version, m->tls_cipher);
    json_add_string_or_null(o, "auth", m->auth_user);
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    if (m->body_type != NULL)
        cJSON_AddStringToObject(o, "body", m->body_type);
    cJSON_AddBoolToObject(o, "smtputf8", m->smtputf8);
    if (m->declared_size > 0)
        cJSON_AddNumberToObject(o, "declared_size", (double)m->declared_size);
    json_add_time(o, "started", m->started_ms);
    json_add_time(o, "received", m->received_ms);
    return o;
}

void store_pool_init(store_pool *pool, size_t max_messages, size_t max_bytes, const char *id_prefix)
{
    memset(pool, 0, sizeof(*pool));
    pool->max_messages = max_messages;
    pool->max_bytes = max_bytes;
    pool->next_seq = 1;
    TAILQ_INIT(&pool->msgs);
    snprintf(pool->id_prefix, sizeof(pool->id_prefix), "%s", id_prefix);
}

void store_init(store *st, store_pool *pool)
{
    memset(st, 0, sizeof(*st));
    st->pool = pool;
    TAILQ_INIT(&st->msgs);
}

void store_assign_id(store *st, store_msg *m)
{
    store_pool *pool = st->pool;
    m->seq = pool->next_seq++;
    /* prefix, then the sequence number as 8 hex digits (more when it outgrows them), as "%08" PRIX64 would
     * print it: done by hand, for it happens for every message */
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(pool->id_prefix), digits = 8;
    while (digits < 16 && (m->seq >> (4 * digits)) != 0)
        digits++;
    if (n + digits >= sizeof(m->id))
        n = sizeof(m->id) - 1 - digits;
    memcpy(m->id, pool->id_prefix, n);
    for (size_t i = 0; i < digits; i++)
        m->id[n + i] = hex[(m->seq >> (4 * (digits - 1 - i))) & 15];
    m->id[n + digits] = '\0';
}

/* unlink - m out of its store and the pool, its store's reference dropped */
static void unlink_msg(store_msg *m)
{
    store *st = m->owner;
    store_pool *pool = st->pool;
    TAILQ_REMOVE(&st->msgs, m, link);
    TAILQ_REMOVE(&pool->msgs, m, pool_link);
    m->owner = NULL;
    st->count--;
    st->bytes -= m->size;
    pool->count--;
    pool->bytes -= m->size;
    store_msg_unref(m);
}

void store_add(store *st, store_msg *m)
{
    store_pool *pool = st->pool;
    /* Oldest first out, whichever store keeps it, until the new message fits; a message larger than
     * max_bytes is kept alone. */
    store_msg *oldest;
    while ((oldest = TAILQ_FIRST(&pool->msgs)) != NULL &&
           (pool->count + 1 > pool->max_messages || pool->bytes + m->size > pool->max_bytes)) {
        oldest->owner->evicted++;
        oldest->owner->evicted_bytes += oldest->size;
        unlink_msg(oldest);
    }
    st->accepted++;
    m->arrival = ++pool->next_arrival;
    if (pool->max_messages == 0)
        return;
    store_msg_ref(m);
    m->owner = st;
    TAILQ_INSERT_TAIL(&st->msgs, m, link);
    TAILQ_INSERT_TAIL(&pool->msgs, m, pool_link);
    st->count++;
    st->bytes += m->size;
    pool->count++;
    pool->bytes += m->size;
}

store_msg *store_find(const store *st, const char *id)
{
    /* Newest first: tests mostly ask for what just arrived. */
    store_msg *m;
    TAILQ_FOREACH_REVERSE(m, &st->msgs, store_msgs, link)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

void store_remove(store *st, store_msg *m)
{
    (void)st; /* m knows its store */
    unlink_msg(m);
}

size_t store_clear(store *st)
{
    size_t n = st->count;
    store_msg *m;
    while ((m = TAILQ_FIRST(&st->msgs)) != NULL)
        unlink_msg(m);
    return n;
}
