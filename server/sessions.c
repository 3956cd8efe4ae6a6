/*
 * sessions.c - the admin socket's view of sessions: the recently closed ones (a ring) and the JSON of
 * sessions.list and sessions.get, live sessions (conn_view) and closed ones alike.
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "jsonutil.h"

static void record_free(session_record *r)
{
    free(r->helo);
    free(r->user);
    transcript_free(&r->transcript);
    memset(r, 0, sizeof(*r));
}

void sessions_ring_add(sessions_ring *r, session_record *rec)
{
    /* Allocated with the first closed session: an idle scope costs no slots. */
    if (r->slot == NULL && (r->slot = calloc(SESSIONS_RECENT_MAX, sizeof(*r->slot))) == NULL) {
        record_free(rec); /* out of memory: the record is not kept */
        return;
    }
    session_record *slot = &r->slot[r->next];
    record_free(slot);
    *slot = *rec;
    memset(rec, 0, sizeof(*rec));
    r->next = (r->next + 1) % SESSIONS_RECENT_MAX;
    if (r->count < SESSIONS_RECENT_MAX)
        r->count++;
}

void sessions_ring_free(sessions_ring *r)
{
    for (size_t i = 0; r->slot != NULL && i < SESSIONS_RECENT_MAX; i++)
        record_free(&r->slot[i]);
    free(r->slot);
    r->slot = NULL;
    r->next = r->count = 0;
}

/* recent_at - the i-th most recent closed session (0: the newest) */
static const session_record *recent_at(const sessions_ring *r, size_t i)
{
    return &r->slot[(r->next + SESSIONS_RECENT_MAX - 1 - i) % SESSIONS_RECENT_MAX];
}

cJSON *session_view_json(const session_view *v, int with_transcript)
{
    int live = v->end_reason == NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)v->id);
    cJSON_AddStringToObject(o, "client", v->client);
    cJSON_AddStringToObject(o, "listener", v->listener);
    cJSON_AddBoolToObject(o, "live", live);
    cJSON_AddStringToObject(o, "state", v->state);
    json_add_string_or_null(o, "helo", v->helo);
    json_add_tls(o, v->tls_version, v->tls_cipher);
    json_add_string_or_null(o, "auth", v->user);
    json_add_time(o, "started", v->started_ms);
    if (!live) {
        json_add_time(o, "ended", v->ended_ms);
        cJSON_AddStringToObject(o, "close_reason", v->end_reason);
    }
    cJSON_AddNumberToObject(o, "bytes_in", (double)v->bytes_in);
    cJSON_AddNumberToObject(o, "bytes_out", (double)v->bytes_out);
    cJSON_AddNumberToObject(o, "messages", (double)v->messages);
    if (with_transcript) {
        cJSON_AddItemToObject(o, "transcript", transcript_json(v->transcript));
        cJSON_AddNumberToObject(o, "transcript_dropped", (double)v->transcript->dropped);
    }
    return o;
}

/* record_json - a closed session */
static cJSON *record_json(const session_record *r, int with_transcript)
{
    session_view v = {
        .id = r->id,
        .client = r->client,
        .listener = r->listener,
        .state = "closed",
        .helo = r->helo,
        .user = r->user,
        .tls_version = r->tls_version,
        .tls_cipher = r->tls_cipher,
        .end_reason = r->end_reason,
        .started_ms = r->started_ms,
        .ended_ms = r->ended_ms,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .messages = r->messages,
        .transcript = &r->transcript,
    };
    return session_view_json(&v, with_transcript);
}

/* live_json - a live session */
static cJSON *live_json(const conn *c, int with_transcript)
{
    session_view v;
    conn_view(c, &v);
    return session_view_json(&v, with_transcript);
}

/* scope_sessions_json - sessions.list: the live sessions, newest first, then the recent closed ones */
void scope_sessions_json(scope *sc, cJSON *out)
{
    cJSON *live = cJSON_AddArrayToObject(out, "live");
    for (conn *c = sc->conns; c != NULL; c = conn_next(c))
        cJSON_AddItemToArray(live, live_json(c, 0));
    cJSON *recent = cJSON_AddArrayToObject(out, "recent");
    for (size_t i = 0; i < sc->recent.count; i++)
        cJSON_AddItemToArray(recent, record_json(recent_at(&sc->recent, i), 0));
}

/* scope_session_json - sessions.get: one session, live or recent, with its transcript; NULL if unknown */
cJSON *scope_session_json(scope *sc, uint64_t id)
{
    for (conn *c = sc->conns; c != NULL; c = conn_next(c))
        if (conn_id(c) == id)
            return live_json(c, 1);
    for (size_t i = 0; i < sc->recent.count; i++)
        if (recent_at(&sc->recent, i)->id == id)
            return record_json(recent_at(&sc->recent, i), 1);
    return NULL;
}
