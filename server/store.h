/*
 * store.h - accepted messages: the message object and the bounded in-memory store.
 *
 * A store_msg is built by the session from MAIL FROM onwards (envelope first, then the body streamed into
 * it) and handed to the store once the server has accepted it. The store keeps messages in arrival order
 * and evicts the oldest when a count or byte limit would be passed, counting what it evicted. Messages are
 * reference-counted so a reader (the disk writer, the admin socket) can hold one past its eviction.
 */
#ifndef SMTPFAULT_STORE_H
#define SMTPFAULT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <cJSON.h>

#define STORE_ID_MAX       32 /* message ids are short hex strings */
#define STORE_CLIENT_MAX   64 /* "[ipv6]:port" fits */
#define STORE_LISTENER_MAX 16

typedef struct store_msg {
    char id[STORE_ID_MAX];
    uint64_t seq;     /* from the id, assigned before a --store-dir write */
    uint64_t arrival; /* the order in which messages joined the store (writes may finish out of order) */
    unsigned refs;

    /* envelope */
    char *sender; /* "" for the null reverse-path */
    char **rcpts;
    size_t nrcpts, rcpt_cap;
    char *helo;
    char client[STORE_CLIENT_MAX];
    char listener[STORE_LISTENER_MAX];
    const char *body_type; /* "7BIT", "8BITMIME", "BINARYMIME", or NULL when MAIL had no BODY= */
    int smtputf8;
    int discard;             /* a fault: answer as if kept, but keep nothing */
    uint64_t declared_size;  /* MAIL FROM SIZE=, 0 when absent */
    char *auth_user;         /* NULL when the session did not authenticate */
    const char *tls_version; /* "TLSv1.3", or NULL without TLS (static strings from wolfSSL) */
    const char *tls_cipher;
    int64_t session_id;
    int64_t started_ms;  /* wall clock, ms: MAIL FROM accepted */
    int64_t received_ms; /* wall clock, ms: end of data */

    /* content, exactly as received after dot-unstuffing */
    char *body;
    size_t size, cap;

    struct store *owner;              /* the store that keeps it (NULL until added) */
    TAILQ_ENTRY(store_msg) link;      /* its store's order, oldest first */
    TAILQ_ENTRY(store_msg) pool_link; /* the pool's order, every store's messages, oldest first */
} store_msg;

/* store_msgs - a list of messages, oldest first: a store's (through link) or the pool's (pool_link) */
TAILQ_HEAD(store_msgs, store_msg);

/* store_msg_new - an empty message holding one reference; NULL when out of memory */
store_msg *store_msg_new(void);
store_msg *store_msg_ref(store_msg *m);
void store_msg_unref(store_msg *m);

/* store_msg_set_sender / add_rcpt / set_helo / set_auth_user - copy the text in; -1 when out of memory */
int store_msg_set_sender(store_msg *m, const char *s, size_t n);
int store_msg_add_rcpt(store_msg *m, const char *s, size_t n);
int store_msg_set_helo(store_msg *m, const char *s, size_t n);
int store_msg_set_auth_user(store_msg *m, const char *s, size_t n);

/* store_msg_reserve - make room for at least n more body bytes; -1 when out of memory */
int store_msg_reserve(store_msg *m, size_t n);

/* store_msg_append - append body bytes, growing geometrically; -1 when out of memory */
int store_msg_append(store_msg *m, const char *data, size_t n);

/* store_msg_drop_body - free the content (the message will not be kept) */
void store_msg_drop_body(store_msg *m);

/* store_msg_envelope_json - the envelope as a JSON object (the ID.json file, the admin socket) */
cJSON *store_msg_envelope_json(const store_msg *m);

/*
 * store_pool - what every store shares: the limits (--store-max-messages, --store-max-bytes hold for the
 * server's own store and every scope's together, so scopes add no memory bound of their own), the id
 * sequence (ids are unique server-wide), and one arrival order: past a limit, the oldest message of any
 * store goes first.
 */
typedef struct store_pool {
    size_t max_messages;
    size_t max_bytes;
    size_t count, bytes;
    uint64_t next_seq;
    uint64_t next_arrival;
    char id_prefix[STORE_ID_MAX - 12];
    struct store_msgs msgs; /* through pool_link */
} store_pool;

typedef struct store {
    store_pool *pool;
    size_t count, bytes;
    uint64_t accepted; /* messages ever added */
    uint64_t evicted, evicted_bytes;
    struct store_msgs msgs; /* through link */
} store;

/* store_pool_init - the shared limits; id_prefix makes ids unique across runs sharing a --store-dir */
void store_pool_init(store_pool *pool, size_t max_messages, size_t max_bytes, const char *id_prefix);

/* store_init - an empty store drawing on pool */
void store_init(store *st, store_pool *pool);

/* store_assign_id - give m the next id ("<prefix><seq as 8 hex digits>") */
void store_assign_id(store *st, store_msg *m);

/* store_add - keep m (takes a new reference), evicting the oldest messages to stay within the limits */
void store_add(store *st, store_msg *m);

/* store_find - the kept message with this id, or NULL */
store_msg *store_find(const store *st, const char *id);

/* store_remove - drop one kept message (not counted as an eviction) */
void store_remove(store *st, store_msg *m);

/* store_clear - drop every message (not counted as evictions); the number dropped */
size_t store_clear(store *st);

#define store_free store_clear

#endif
