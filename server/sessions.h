/*
 * sessions.h - the admin socket's view of sessions: the ring of recently closed ones, and one JSON shape
 * for a live session and a closed one (sessions.list, sessions.get).
 */
#ifndef SMTPFAULT_SESSIONS_H
#define SMTPFAULT_SESSIONS_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/queue.h>

#include "findings.h"
#include "store.h"
#include "transcript.h"

#define SESSIONS_RECENT_MAX 200 /* closed sessions a scope's sessions.list and sessions.get still show */
#define SESSIONS_KEPT_MAX                                                                                  \
    2000                       /* closed sessions kept in all, every scope's: with their transcripts of up \
                                 to 32 KiB, at most about 64 MiB */
#define SESSION_REASON_MAX 160 /* a closed session's end reason, as kept */

/* session_record - a closed session, kept for the admin socket */
typedef struct session_record {
    uint64_t id;
    char client[STORE_CLIENT_MAX];
    const char *listener;
    char *helo, *user;
    const char *tls_version, *tls_cipher; /* wolfSSL's static strings */
    char end_reason[SESSION_REASON_MAX];
    int64_t started_ms, ended_ms; /* wall clock */
    uint64_t bytes_in, bytes_out, messages;
    transcript transcript;
    findings findings;
} session_record;

/* session_view - what the admin socket shows of one session, live or closed (strings may be NULL) */
typedef struct session_view {
    uint64_t id;
    const char *client, *listener, *state;
    const char *helo, *user, *tls_version, *tls_cipher;
    const char *end_reason; /* NULL while live */
    int64_t started_ms, ended_ms;
    uint64_t bytes_in, bytes_out, messages;
    const transcript *transcript;
    const findings *findings; /* NULL: none */
} session_view;

/* session_kept - a closed session kept: in its scope's ring and in the pool, both oldest first */
typedef struct session_kept {
    session_record rec;
    struct sessions_ring *ring;
    TAILQ_ENTRY(session_kept) link;      /* its ring's order */
    TAILQ_ENTRY(session_kept) pool_link; /* the pool's order */
} session_kept;

/* sessions_kept - closed sessions, oldest first: a ring's (through link) or the pool's (pool_link) */
TAILQ_HEAD(sessions_kept, session_kept);

/* sessions_pool - what every scope's ring shares: SESSIONS_KEPT_MAX, the oldest anywhere forgotten first */
typedef struct sessions_pool {
    size_t count;
    struct sessions_kept kept; /* through pool_link */
} sessions_pool;

/* sessions_ring - a scope's most recent closed sessions, at most SESSIONS_RECENT_MAX */
typedef struct sessions_ring {
    sessions_pool *pool;
    size_t count;
    struct sessions_kept kept; /* through link */
} sessions_ring;

/* sessions_pool_init - an empty pool */
void sessions_pool_init(sessions_pool *pool);

/* sessions_ring_init - an empty ring drawing on pool */
void sessions_ring_init(sessions_ring *r, sessions_pool *pool);

/* sessions_ring_add - keep *rec (taken over; *rec is emptied), forgetting the ring's oldest past
 * SESSIONS_RECENT_MAX and the pool's oldest past SESSIONS_KEPT_MAX */
void sessions_ring_add(sessions_ring *r, session_record *rec);

/* sessions_ring_free - forget every record of the ring (it may be used again) */
void sessions_ring_free(sessions_ring *r);

/* session_view_json - one session, with its transcript when asked */
cJSON *session_view_json(const session_view *v, int with_transcript);

#endif
