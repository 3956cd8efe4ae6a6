/*
 * client_story.h - the retry story of each client across its connections: every transaction it tried
 * (a "try"), grouped by what it was trying to deliver (sender and first recipient; or the connection itself
 * when the greeting refused it), with the replies it got and how long it waited before trying again. From
 * it come the findings no single session can show: retry-4xx, retried-5xx, hammering,
 * greylist-retry-too-soon, connections-past-limit, sent-after-rate-limit; each is also handed to the
 * session whose try made it (story_track.fresh). A client's findings also gather those of its sessions.
 *
 * Sans-I/O: fed the transcript events of each connection (story_track, one per connection) with their time;
 * the server owns one client_stories. Everything is bounded: STORY_CLIENTS_MAX clients (the least recently
 * seen is forgotten first), STORY_THREADS_MAX threads per client, STORY_TRIES_MAX tries per thread.
 */
#ifndef SMTPFAULT_CLIENT_STORY_H
#define SMTPFAULT_CLIENT_STORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <cJSON.h>

#include "findings.h"

#define STORY_CLIENTS_MAX 256 /* clients whose story is kept; the least recently seen goes first */
#define STORY_THREADS_MAX 16  /* things one client tried to deliver; the least recently tried goes first */
#define STORY_TRIES_MAX   16  /* tries kept per thread; older ones are dropped (and counted) */
#define STORY_KEY_MAX     64  /* a client address, or "scope:ID" */
#define STORY_ADDR_MAX    128 /* bytes of a sender or recipient kept */
#define STORY_REPLY_MAX   128 /* bytes of the reply that ended a try */

#define STORY_HAMMER_RETRIES                                                      \
    3 /* retries of a 4xx, each within STORY_HAMMER_DELAY_MS, without backing off \
       */
#define STORY_HAMMER_DELAY_MS 1000 /* ... is hammering */
#define STORY_BACKOFF_MIN_MS  50   /* a delay grew when it is longer by this much and by a tenth at least */

/* story_try - one transaction (or connection) and how it ended */
typedef struct story_try {
    uint64_t session;
    int64_t start_ms, end_ms; /* wall clock: MAIL (or the connection), and the reply that ended it */
    int code;                 /* the reply that ended it: 250 delivered, 4xx, 5xx */
    const char *stage;        /* "connect", "mail", "rcpt", "data", "data_end" */
    char reply[STORY_REPLY_MAX];
    uint32_t greylist_ms; /* refused by greylisting for this long */
    int rate_limited;     /* refused by a message rate limit */
    int conn_limited;     /* refused by connections_per_client */
} story_try;

/* story_thread - the tries of one thing to deliver */
typedef struct story_thread {
    int connection; /* the greeting refused: the tries are connections */
    char sender[STORY_ADDR_MAX], rcpt[STORY_ADDR_MAX];
    story_try tries[STORY_TRIES_MAX];
    size_t ntries;
    uint64_t dropped; /* older tries no longer kept */
    uint64_t seq;     /* when it was last tried, for eviction */
} story_thread;

typedef struct client_story client_story;

/* client_stories - every client's story, bounded (see the header) */
typedef struct client_stories {
    TAILQ_HEAD(client_story_list, client_story) list; /* most recently seen first */
    size_t n;
    uint64_t seq;
    uint64_t evicted; /* clients forgotten to stay within STORY_CLIENTS_MAX */
} client_stories;

typedef enum story_wait {
    STORY_WAIT_NONE,
    STORY_WAIT_GREETING,
    STORY_WAIT_MAIL,
    STORY_WAIT_RCPT,
    STORY_WAIT_OTHER_RCPT,
    STORY_WAIT_DATA,
    STORY_WAIT_DATA_END,
    STORY_WAIT_BDAT,
    STORY_WAIT_OTHER,
} story_wait;

/* story_track - one connection's part: the try in progress, read from its events */
typedef struct story_track {
    char key[STORY_KEY_MAX];
    uint64_t session;
    int64_t connected_ms;
    story_wait wait; /* what the next final reply answers */
    int open;        /* cur is a try in progress */
    story_try cur;
    char sender[STORY_ADDR_MAX], rcpt[STORY_ADDR_MAX];
    uint32_t greylist_ms; /* a greylist fault fired at the pending step */
    int rate_limited, conn_limited;
    findings fresh; /* findings this connection's tries made, not yet handed to its session */
} story_track;

/* client_stories_init - no story yet */
void client_stories_init(client_stories *st);

/*
 * story_track_start - a connection from client ("addr:port") began at ms; in the scope scope_id ("" for the
 * server's own listeners), whose connections all make one story
 */
void story_track_start(story_track *t, const char *client, const char *scope_id, uint64_t session,
                       int64_t ms);

/* story_key - the key of a scope's story ("scope:ID"), or of a client address when scope_id is "" */
void story_key(char *key, size_t size, const char *client, const char *scope_id);

/* client_story_event - one transcript event of t's connection at wall time ms */
void client_story_event(client_stories *st, story_track *t, int64_t ms, const char *event, const char *text,
                        size_t len);

/*
 * client_story_session_end - t's connection closed: its session's findings join the client's (but those of
 * the story, which the client has already: the session holds them only to show them)
 */
void client_story_session_end(client_stories *st, story_track *t, const findings *f);

/* client_story_json - the story of key, or NULL when none is kept */
cJSON *client_story_json(const client_stories *st, const char *key);

/* client_story_keys - every client address with a story (not the scopes'), most recently seen first */
cJSON *client_story_keys(const client_stories *st);

/* client_stories_forget - reset: a scope's story (scope_id), the client addresses' ("" ), or all (NULL) */
void client_stories_forget(client_stories *st, const char *scope_id);

#endif
