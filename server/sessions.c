/*
 * sessions.c - the admin socket's view of sessions: the recently closed ones (a ring per scope, one pool) and
 * the JSON of sessions.list and sessions.get, live sessions (conn_view) and closed ones alike.
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
    findings_free(&r->findings);
    memset(r, 0, sizeof(*r));
}

void sessions_pool_init(sessions_pool *pool)
{
    pool->count = 0;
    TAILQ_INIT(&pool->kept);
}

void sessions_ring_init(sessions_ring *r, sessions_pool *pool)
{
    memset(r, 0, sizeof(*r));
    r->pool = pool;
    TAILQ_INIT(&r->kept);
}

/* forget - k out of its ring and the pool, freed */
static void forget(session_kept *k)
{
    sessions_ring *r = k->ring;
    sessions_pool *pool = r->pool;
    TAILQ_REMOVE(&r->kept, k, link);
    TAILQ_REMOVE(&pool->kept, k, pool_link);
    r->count--;
    pool->count--;
    record_free(&k->rec);
    free(k);
}

void sessions_ring_add(sessions_ring *r, session_record *rec)
{
    sessions_pool *pool = r->pool;
    session_kept *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        record_free(rec); /* out of memory: the record is not kept */
        return;
    }
    if (r->count >= SESSIONS_RECENT_MAX)
        forget(TAILQ_FIRST(&r->kept));
    if (pool->count >= SESSIONS_KEPT_MAX)
        forget(TAILQ_FIRST(&pool->kept));
    k->rec = *rec;
    memset(rec, 0, sizeof(*rec));
    k->ring = r;
    TAILQ_INSERT_TAIL(&r->kept, k, link);
    TAILQ_INSERT_TAIL(&pool->kept, k, pool_link);
    r->count++;
    pool->count++;
}

void sessions_ring_free(sessions_ring *r)
{
    session_kept *k;
    while ((k = TAILQ_FIRST(&r->kept)) != NULL)
        forget(k);
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
        cJSON_AddItemToObject(o, "findings", findings_json(v->findings));
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
        .findings = &r->findings,
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
    for (conn *c = LIST_FIRST(&sc->conns); c != NULL; c = conn_next(c))
        cJSON_AddItemToArray(live, live_json(c, 0));
    cJSON *recent = cJSON_AddArrayToObject(out, "recent");
    const session_kept *k;
    TAILQ_FOREACH_REVERSE(k, &sc->recent.kept, sessions_kept, link) /* newest first */
        cJSON_AddItemToArray(recent, record_json(&k->rec, 0));
}

/* scope_session_json - sessions.get: one session, live or recent, with its transcript; NULL if unknown */
cJSON *scope_session_json(scope *sc, uint64_t id)
{
    for (conn *c = LIST_FIRST(&sc->conns); c != NULL; c = conn_next(c))
        if (conn_id(c) == id)
            return live_json(c, 1);
    const session_kept *k;
    TAILQ_FOREACH_REVERSE(k, &sc->recent.kept, sessions_kept, link)
        if (k->rec.id == id)
            return record_json(&k->rec, 1);
    return NULL;
}
