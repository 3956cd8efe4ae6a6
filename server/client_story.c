/*
 * client_story.c - each client's retry story, read from its connections' transcript events, and the
 * findings that come from it (see client_story.h).
 */
#define _GNU_SOURCE /* memmem */
#include "client_story.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonutil.h"

struct client_story {
    char key[STORY_KEY_MAX];
    TAILQ_ENTRY(client_story) link;
    uint64_t sessions;
    int64_t first_ms, last_ms;
    story_thread *threads[STORY_THREADS_MAX];
    size_t nthreads;
    int rate_limited; /* a message rate limit has refused this client */
    findings findings;
};

/* -- clients and threads ------------------------------------------------------------------------------- */

void client_stories_init(client_stories *st)
{
    memset(st, 0, sizeof(*st));
    TAILQ_INIT(&st->list);
}

static void story_free(client_story *cs)
{
    for (size_t i = 0; i < cs->nthreads; i++)
        free(cs->threads[i]);
    findings_free(&cs->findings);
    free(cs);
}

static client_story *find_story(const client_stories *st, const char *key)
{
    client_story *cs;
    TAILQ_FOREACH(cs, &st->list, link)
        if (strcmp(cs->key, key) == 0)
            return cs;
    return NULL;
}

/* story_for - key's story, made the most recent; created (forgetting the least recent) when new */
static client_story *story_for(client_stories *st, const char *key, int64_t ms)
{
    client_story *cs = find_story(st, key);
    if (cs != NULL) {
        TAILQ_REMOVE(&st->list, cs, link);
        TAILQ_INSERT_HEAD(&st->list, cs, link);
        cs->last_ms = ms;
        return cs;
    }
    cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    if (st->n >= STORY_CLIENTS_MAX) {
        client_story *last = TAILQ_LAST(&st->list, client_story_list);
        TAILQ_REMOVE(&st->list, last, link);
        story_free(last);
        st->n--;
        st->evicted++;
    }
    snprintf(cs->key, sizeof(cs->key), "%s", key);
    cs->first_ms = cs->last_ms = ms;
    TAILQ_INSERT_HEAD(&st->list, cs, link);
    st->n++;
    return cs;
}

static int same_addr(const char *a, const char *b)
{
    return a[0] == '\0' || b[0] == '\0' || strcasecmp(a, b) == 0;
}

/* thread_for - the thread a try of (sender, rcpt) or of a connection belongs to; NULL: none (create: 0) */
static story_thread *thread_for(client_stories *st, client_story *cs, int connection, const char *sender,
                                const char *rcpt, int create)
{
    for (size_t i = 0; i < cs->nthreads; i++) {
        story_thread *th = cs->threads[i];
        if (th->connection == connection &&
            (connection || (strcasecmp(th->sender, sender) == 0 && same_addr(th->rcpt, rcpt)))) {
            if (th->rcpt[0] == '\0' && rcpt[0] != '\0')
                snprintf(th->rcpt, sizeof(th->rcpt), "%s", rcpt);
            th->seq = ++st->seq;
            return th;
        }
    }
    if (!create)
        return NULL;
    story_thread *th = calloc(1, sizeof(*th));
    if (th == NULL)
        return NULL;
    if (cs->nthreads == STORY_THREADS_MAX) { /* the least recently tried goes */
        size_t old = 0;
        for (size_t i = 1; i < cs->nthreads; i++)
            if (cs->threads[i]->seq < cs->threads[old]->seq)
                old = i;
        free(cs->threads[old]);
        cs->threads[old] = cs->threads[--cs->nthreads];
    }
    th->connection = connection;
    snprintf(th->sender, sizeof(th->sender), "%s", sender);
    snprintf(th->rcpt, sizeof(th->rcpt), "%s", rcpt);
    th->seq = ++st->seq;
    cs->threads[cs->nthreads++] = th;
    return th;
}

/* -- the story's judgement ----------------------------------------------------------------------------- */

static int transient(int code)
{
    return code >= 400 && code < 500;
}

/* retry_delays - the waits before each retry of a 4xx in th, into d (at most STORY_TRIES_MAX); how many */
static size_t retry_delays(const story_thread *th, int64_t *d)
{
    size_t n = 0;
    for (size_t i = 1; i < th->ntries; i++)
        if (transient(th->tries[i - 1].code))
            d[n++] = th->tries[i].start_ms - th->tries[i - 1].end_ms;
    return n;
}

/* backed_off - 1 when every retry of a 4xx waited longer than the one before; -1: fewer than two retries */
static int backed_off(const story_thread *th)
{
    int64_t d[STORY_TRIES_MAX];
    size_t n = retry_delays(th, d);
    if (n < 2)
        return -1;
    for (size_t i = 1; i < n; i++) {
        int64_t grow = d[i - 1] / 10 > STORY_BACKOFF_MIN_MS ? d[i - 1] / 10 : STORY_BACKOFF_MIN_MS;
        if (d[i] < d[i - 1] + grow)
            return 0;
    }
    return 1;
}

/* hammering - STORY_HAMMER_RETRIES retries of a 4xx or more, each soon after the last, not backing off */
static int hammering(const story_thread *th)
{
    int64_t d[STORY_TRIES_MAX];
    size_t n = retry_delays(th, d);
    if (n < STORY_HAMMER_RETRIES || backed_off(th) == 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] > STORY_HAMMER_DELAY_MS)
            return 0;
    return 1;
}

/* note - a finding of the story: the client's, and the connection's whose try made it (fresh) */
static void note(client_story *cs, findings *fresh, finding_id id, const story_try *t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void note(client_story *cs, findings *fresh, finding_id id, const story_try *t, const char *fmt, ...)
{
    char line[FINDING_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    (void)findings_add(&cs->findings, id, t->end_ms, t->session, line, len);
    (void)findings_add(fresh, id, t->end_ms, t->session, line, len);
}

/* story_finding - 1 for the findings the story makes (see note) */
static int story_finding(finding_id id)
{
    switch (id) {
    case FINDING_RETRY_4XX:
    case FINDING_RETRIED_5XX:
    case FINDING_HAMMERING:
    case FINDING_GREYLIST_RETRY_TOO_SOON:
    case FINDING_CONNECTIONS_PAST_LIMIT:
    case FINDING_SENT_AFTER_RATE_LIMIT:
        return 1;
    default:
        return 0;
    }
}

/* add_try - t joins its thread; the findings it makes */
static void add_try(client_stories *st, const char *key, const story_try *t, int connection,
                    const char *sender, const char *rcpt, findings *fresh)
{
    client_story *cs = story_for(st, key, t->end_ms);
    if (cs == NULL)
        return;
    /* A connection the greeting accepted is a try only as the retry of one it refused. */
    story_thread *th = thread_for(st, cs, connection, sender, rcpt, !(connection && t->code < 400));
    if (th == NULL)
        return;
    const story_try *last = th->ntries > 0 ? &th->tries[th->ntries - 1] : NULL;
    if (connection && last == NULL && t->code < 400)
        return;
    int64_t delay = last != NULL ? t->start_ms - last->end_ms : 0;
    if (last != NULL && last->code >= 500)
        note(cs, fresh, FINDING_RETRIED_5XX, t, "tried again %lld ms after \"%.60s\"", (long long)delay,
             last->reply);
    if (last != NULL && transient(last->code))
        note(cs, fresh, FINDING_RETRY_4XX, t, "tried again %lld ms after \"%.60s\"", (long long)delay,
             last->reply);
    if (t->greylist_ms > 0)
        for (size_t i = 0; i < th->ntries; i++)
            if (th->tries[i].greylist_ms > 0) {
                note(cs, fresh, FINDING_GREYLIST_RETRY_TOO_SOON, t,
                     "back %lld ms after the first greylisting (%u ms)",
                     (long long)(t->start_ms - th->tries[i].end_ms), t->greylist_ms);
                break;
            }
    if (t->conn_limited)
        note(cs, fresh, FINDING_CONNECTIONS_PAST_LIMIT, t, "%.100s", t->reply);
    if (t->rate_limited && cs->rate_limited)
        note(cs, fresh, FINDING_SENT_AFTER_RATE_LIMIT, t, "%.100s", t->reply);
    cs->rate_limited |= t->rate_limited;
    int was_hammering = hammering(th);
    if (th->ntries == STORY_TRIES_MAX) {
        memmove(&th->tries[0], &th->tries[1], sizeof(th->tries[0]) * (STORY_TRIES_MAX - 1));
        th->ntries--;
        th->dropped++;
    }
    th->tries[th->ntries++] = *t;
    if (!was_hammering && hammering(th))
        note(cs, fresh, FINDING_HAMMERING, t, "%zu retries of a 4xx, each within %d ms", th->ntries - 1,
             STORY_HAMMER_DELAY_MS);
}

/* -- reading a connection's events ---------------------------------------------------------------------- */

#define SCOPE_KEY_PREFIX "scope:"

void story_key(char *key, size_t size, const char *client, const char *scope_id)
{
    if (scope_id[0] != '\0') {
        snprintf(key, size, SCOPE_KEY_PREFIX "%s", scope_id);
        return;
    }
    /* The address without its port: "1.2.3.4:5678" or "[::1]:5678" */
    const char *colon = strrchr(client, ':');
    size_t n = colon ? (size_t)(colon - client) : strlen(client);
    if (n >= 2 && client[0] == '[' && client[n - 1] == ']') {
        client++;
        n -= 2;
    }
    snprintf(key, size, "%.*s", (int)n, client);
}

static int scoped(const char *key)
{
    return strncmp(key, SCOPE_KEY_PREFIX, sizeof(SCOPE_KEY_PREFIX) - 1) == 0;
}

void story_track_start(story_track *t, const char *client, const char *scope_id, uint64_t session, int64_t ms)
{
    memset(t, 0, sizeof(*t));
    story_key(t->key, sizeof(t->key), client, scope_id);
    t->session = session;
    t->connected_ms = ms;
    t->wait = STORY_WAIT_GREETING;
}

/* path_of - the address between < and > after the command's keyword, into out ("" when none) */
static void path_of(const char *text, size_t len, char *out, size_t outsz)
{
    const char *lt = memchr(text, '<', len);
    const char *gt = lt ? memchr(lt, '>', len - (size_t)(lt - text)) : NULL;
    size_t n = lt && gt ? (size_t)(gt - lt - 1) : 0;
    snprintf(out, outsz, "%.*s", (int)n, lt ? lt + 1 : "");
}

static int starts_with(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && strncasecmp(text, word, n) == 0;
}

/* end_try - the try in progress ended with the reply text (code) at stage */
static void end_try(client_stories *st, story_track *t, int64_t ms, int code, const char *stage,
                    const char *text, size_t len)
{
    story_try *c = &t->cur;
    c->session = t->session;
    c->end_ms = ms;
    c->code = code;
    c->stage = stage;
    snprintf(c->reply, sizeof(c->reply), "%.*s", (int)(len < STORY_REPLY_MAX ? len : STORY_REPLY_MAX - 1),
             text);
    c->greylist_ms = t->greylist_ms;
    c->rate_limited = t->rate_limited;
    c->conn_limited = t->conn_limited;
    int connection = strcmp(stage, "connect") == 0;
    add_try(st, t->key, c, connection, connection ? "" : t->sender, connection ? "" : t->rcpt, &t->fresh);
    t->open = 0;
}

static void on_command(story_track *t, int64_t ms, const char *text, size_t len)
{
    if (starts_with(text, len, "MAIL ")) {
        memset(&t->cur, 0, sizeof(t->cur));
        t->cur.start_ms = ms;
        t->open = 1;
        path_of(text, len, t->sender, sizeof(t->sender));
        t->rcpt[0] = '\0';
        t->wait = STORY_WAIT_MAIL;
    } else if (starts_with(text, len, "RCPT ")) {
        t->wait = t->open && t->rcpt[0] == '\0' ? STORY_WAIT_RCPT : STORY_WAIT_OTHER_RCPT;
        if (t->wait == STORY_WAIT_RCPT)
            path_of(text, len, t->rcpt, sizeof(t->rcpt));
    } else if (starts_with(text, len, "DATA")) {
        t->wait = STORY_WAIT_DATA;
    } else if (starts_with(text, len, "BDAT ")) {
        t->wait = STORY_WAIT_BDAT;
    } else {
        t->wait = STORY_WAIT_OTHER;
    }
}

static void on_reply(client_stories *st, story_track *t, int64_t ms, const char *text, size_t len)
{
    if (len < 3 || (len > 3 && text[3] != ' ')) /* only the last line of a reply */
        return;
    int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
    story_wait wait = t->wait;
    t->wait = STORY_WAIT_NONE;
    if (wait == STORY_WAIT_GREETING) {
        memset(&t->cur, 0, sizeof(t->cur));
        t->cur.start_ms = t->connected_ms;
        end_try(st, t, ms, code, "connect", text, len);
    } else if (t->open) {
        const char *stage = NULL;
        if (wait == STORY_WAIT_MAIL && code >= 400)
            stage = "mail";
        else if (wait == STORY_WAIT_RCPT && code >= 400)
            stage = "rcpt";
        else if (wait == STORY_WAIT_DATA && code == 354)
            t->wait = STORY_WAIT_DATA_END;
        else if (wait == STORY_WAIT_DATA && code >= 400)
            stage = "data";
        else if (wait == STORY_WAIT_DATA_END || (wait == STORY_WAIT_BDAT && (code >= 400 || code == 250)))
            stage = "data_end";
        else if (code == 421)
            stage = "other";
        /* BDAT's 250 for a chunk that is not the last says "octets received", not "queued as" */
        if (stage != NULL && wait == STORY_WAIT_BDAT && code == 250 && memmem(text, len, "queued", 6) == NULL)
            stage = NULL;
        if (stage != NULL)
            end_try(st, t, ms, code, stage, text, len);
    }
    t->greylist_ms = 0;
    t->rate_limited = 0;
    t->conn_limited = 0;
}

static void on_fault(story_track *t, const char *text, size_t len)
{
    const char *g = memmem(text, len, "greylist for ", 13);
    if (g != NULL)
        t->greylist_ms = (uint32_t)strtoul(g + 13, NULL, 10);
    if (memmem(text, len, "limit connections_per_client", 28) != NULL)
        t->conn_limited = 1;
    if (memmem(text, len, "limit messages_per_", 19) != NULL)
        t->rate_limited = 1;
}

void client_story_event(client_stories *st, story_track *t, int64_t ms, const char *event, const char *text,
                        size_t len)
{
    if (t->key[0] == '\0')
        return;
    if (strcmp(event, "command") == 0)
        on_command(t, ms, text, len);
    else if (strcmp(event, "reply") == 0)
        on_reply(st, t, ms, text, len);
    else if (strcmp(event, "fault") == 0)
        on_fault(t, text, len);
}

void client_story_session_end(client_stories *st, story_track *t, const findings *f)
{
    if (t->key[0] == '\0')
        return;
    client_story *cs = story_for(st, t->key, t->connected_ms);
    if (cs == NULL)
        return;
    cs->sessions++;
    for (size_t i = 0; f != NULL && i < f->n; i++) {
        const finding *x = &f->items[i];
        if (story_finding(x->id))
            continue; /* counted by the story when it made it */
        for (uint32_t k = 0; k < x->count; k++)
            (void)findings_add(&cs->findings, x->id, x->first_ms, x->session, x->line, x->line_len);
    }
    findings_free(&t->fresh);
    t->key[0] = '\0';
}

/* -- the report ---------------------------------------------------------------------------------------- */

static cJSON *bool_or_null(int v)
{
    return v < 0 ? cJSON_CreateNull() : cJSON_CreateBool(v);
}

static cJSON *thread_json(const story_thread *th, int *retried_4xx, int *retried_5xx, int *gave_up_5xx)
{
    cJSON *o = cJSON_CreateObject();
    if (th->connection) {
        cJSON_AddBoolToObject(o, "connection", 1);
    } else {
        cJSON_AddStringToObject(o, "sender", th->sender);
        cJSON_AddStringToObject(o, "rcpt", th->rcpt);
    }
    cJSON *tries = cJSON_AddArrayToObject(o, "tries");
    cJSON *delays = cJSON_CreateArray();
    for (size_t i = 0; i < th->ntries; i++) {
        const story_try *t = &th->tries[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "session", (double)t->session);
        json_add_time(j, "time", t->start_ms);
        json_add_time(j, "replied", t->end_ms);
        cJSON_AddNumberToObject(j, "code", t->code);
        cJSON_AddStringToObject(j, "stage", t->stage);
        cJSON_AddStringToObject(j, "reply", t->reply);
        if (i == 0)
            cJSON_AddNullToObject(j, "delay_ms");
        else
            cJSON_AddNumberToObject(j, "delay_ms", (double)(t->start_ms - th->tries[i - 1].end_ms));
        if (t->greylist_ms > 0)
            cJSON_AddNumberToObject(j, "greylist_ms", t->greylist_ms);
        if (t->rate_limited || t->conn_limited)
            cJSON_AddBoolToObject(j, "limited", 1);
        cJSON_AddItemToArray(tries, j);
        if (i > 0 && transient(th->tries[i - 1].code)) {
            cJSON_AddItemToArray(delays, cJSON_CreateNumber((double)(t->start_ms - th->tries[i - 1].end_ms)));
            *retried_4xx = 1;
        }
        if (i > 0 && th->tries[i - 1].code >= 500)
            *retried_5xx = 1;
    }
    cJSON_AddNumberToObject(o, "dropped", (double)th->dropped);
    cJSON_AddNumberToObject(o, "retries", th->ntries > 0 ? (double)(th->ntries - 1 + th->dropped) : 0);
    cJSON_AddItemToObject(o, "delays_ms", delays);
    cJSON_AddItemToObject(o, "backoff", bool_or_null(backed_off(th)));
    cJSON_AddBoolToObject(o, "hammering", hammering(th));
    int last = th->ntries > 0 ? th->tries[th->ntries - 1].code : 0;
    cJSON_AddStringToObject(o, "outcome", last < 400 ? "delivered" : last < 500 ? "deferred" : "refused");
    if (last >= 500 && th->ntries == 1)
        *gave_up_5xx = 1;
    return o;
}

cJSON *client_story_json(const client_stories *st, const char *key)
{
    const client_story *cs = find_story(st, key);
    if (cs == NULL)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (scoped(cs->key))
        cJSON_AddStringToObject(o, "scope", cs->key + sizeof(SCOPE_KEY_PREFIX) - 1);
    else
        cJSON_AddStringToObject(o, "client", cs->key);
    cJSON_AddNumberToObject(o, "sessions", (double)cs->sessions);
    json_add_time(o, "first", cs->first_ms);
    json_add_time(o, "last", cs->last_ms);
    cJSON *summary = cJSON_AddObjectToObject(o, "summary");
    cJSON_AddItemToObject(o, "findings", findings_json(&cs->findings));
    cJSON *threads = cJSON_AddArrayToObject(o, "threads");
    int retried_4xx = 0, retried_5xx = 0, gave_up_5xx = 0, backoff = -1, hammer = 0;
    /* oldest first: threads are kept unordered, their first try says when they began */
    const story_thread *order[STORY_THREADS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < cs->nthreads; i++) {
        size_t j = n++;
        for (; j > 0 && order[j - 1]->tries[0].start_ms > cs->threads[i]->tries[0].start_ms; j--)
            order[j] = order[j - 1];
        order[j] = cs->threads[i];
    }
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(threads, thread_json(order[i], &retried_4xx, &retried_5xx, &gave_up_5xx));
        int b = backed_off(order[i]);
        if (b >= 0)
            backoff = backoff < 0 ? b : backoff && b;
        hammer |= hammering(order[i]);
    }
    size_t violations = 0;
    for (size_t i = 0; i < cs->findings.n; i++)
        violations += finding_severity_of(cs->findings.items[i].id) == FINDING_VIOLATION;
    cJSON_AddBoolToObject(summary, "retried_4xx", retried_4xx);
    cJSON_AddItemToObject(summary, "backoff", bool_or_null(backoff));
    cJSON_AddBoolToObject(summary, "hammering", hammer);
    cJSON_AddBoolToObject(summary, "retried_5xx", retried_5xx);
    cJSON_AddBoolToObject(summary, "gave_up_after_5xx", gave_up_5xx);
    cJSON_AddNumberToObject(summary, "violations", (double)violations);
    return o;
}

cJSON *client_story_keys(const client_stories *st)
{
    cJSON *a = cJSON_CreateArray();
    const client_story *cs;
    TAILQ_FOREACH(cs, &st->list, link)
        if (!scoped(cs->key))
            cJSON_AddItemToArray(a, cJSON_CreateString(cs->key));
    return a;
}

void client_stories_forget(client_stories *st, const char *scope_id)
{
    char key[STORY_KEY_MAX];
    if (scope_id != NULL && scope_id[0] != '\0')
        story_key(key, sizeof(key), "", scope_id);
    for (client_story *cs = TAILQ_FIRST(&st->list), *next; cs != NULL; cs = next) {
        next = TAILQ_NEXT(cs, link);
        if (scope_id == NULL || (scope_id[0] == '\0' ? !scoped(cs->key) : strcmp(cs->key, key) == 0)) {
            TAILQ_REMOVE(&st->list, cs, link);
            story_free(cs);
            st->n--;
        }
    }
}
