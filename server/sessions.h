/*
 * sessions.h - the admin socket's view of sessions: the ring of recently closed ones, and one JSON shape
 * for a live session and a closed one (sessions.list, sessions.get).
 */
#ifndef SMTPFAULT_SESSIONS_H
#define SMTPFAULT_SESSIONS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "store.h"
#include "transcript.h"

#define SESSIONS_RECENT_MAX 200 /* closed sessions sessions.list and sessions.get still show */
#define SESSION_REASON_MAX  160 /* a closed session's end reason, as kept */

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
} session_view;

/* sessions_ring - the most recent closed sessions; next is the slot written next */
typedef struct sessions_ring {
    session_record *slot; /* SESSIONS_RECENT_MAX of them, or NULL before the first */
    size_t next, count;
} sessions_ring;

/* sessions_ring_add - keep *rec (taken over; *rec is emptied), dropping the oldest past the bound */
void sessions_ring_add(sessions_ring *r, session_record *rec);

/* sessions_ring_free - release every record (the ring may be used again) */
void sessions_ring_free(sessions_ring *r);

/* session_view_json - one session, with its transcript when asked */
cJSON *session_view_json(const session_view *v, int with_transcript);

#endif
