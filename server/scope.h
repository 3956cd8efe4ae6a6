/*
 * scope.h - a scope: a virtual smtpfault inside the running one, with its own SMTP listeners, fault profile
 * (and so its own rule counters, greylisting and rate-limit state), captured messages and sessions.
 *
 * The server's own listeners are a scope too (server.own, id ""), so every path from a connection to the
 * state it changes goes through the connection's scope. scope.create makes more, each on new ports; what
 * they share with the server is the process: the loop, TLS (the same CA), --max-connections, the in-flight
 * byte budget and the store limits (store_pool). docs/scopes.md describes them for users.
 *
 * A created scope belongs to the admin connection that created it and ends when it closes, unless kept.
 * Ending closes its listeners and sessions at once; its memory goes when the last session has gone (its
 * listeners are embedded here, and each connection points at its listener).
 */
#ifndef SMTPFAULT_SCOPE_H
#define SMTPFAULT_SCOPE_H

#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include <cJSON.h>

#include "config.h"
#include "fault.h"
#include "session.h"
#include "sessions.h"
#include "store.h"

typedef struct server server;
typedef struct scope scope;
typedef struct conn conn;

#define SCOPE_ID_MAX 24 /* "s" and a decimal counter */
/* A scope's descriptors at most: each listener's socket, or a blackhole's socket and the connection that
 * fills its backlog. */
#define SCOPE_FDS_MAX (LISTENER_COUNT * 2)
/* Without --scope-ports: how often to ask the kernel again when it picks a port a refusing listener holds */
#define SCOPE_PORT_PICKS 4
/* After its scope ended, how long a session may take to deliver its 421 (and linger for the client's FIN)
 * before it is closed whatever its client does */
#define SCOPE_END_GRACE_MS 5000

/* listener_mode - how a listener answers a connection attempt (a profile's refuse and blackhole rules) */
typedef enum listener_mode {
    LISTENER_ACCEPT,    /* normally */
    LISTENER_REFUSE,    /* nothing listens: the client gets ECONNREFUSED */
    LISTENER_BLACKHOLE, /* a full backlog that is never accepted: SYNs are dropped, the connect times out */
} listener_mode;

typedef struct listener {
    server *srv;
    scope *sc; /* the scope whose connections it accepts */
    listener_kind kind;
    const char *name;
    int open;
    listener_mode mode;
    uv_tcp_t *tcp;         /* the accepting socket (LISTENER_ACCEPT) */
    uv_tcp_t *hole;        /* the never-accepted socket (LISTENER_BLACKHOLE) */
    uv_tcp_t *hole_filler; /* our own connection that fills its backlog */
    int implicit_tls;
    session_config cfg; /* what sessions on this listener start from */
    char bound[80];     /* "127.0.0.1:2525" or "[::1]:2525", as bound */
    char host[CONFIG_HOST_MAX];
    int port;
} listener;

/* scope_list - server.scopes or server.ended, newest first */
TAILQ_HEAD(scope_list, scope);
typedef struct scope_list scope_list;

struct scope {
    server *srv;
    char id[SCOPE_ID_MAX]; /* "" for the server's own */
    listener listeners[LISTENER_COUNT];
    fault_run *fault_run;         /* the profile in force; connections hold the one they started under */
    fault_profile *start_profile; /* what reset goes back to */
    store store;
    sessions_ring recent;             /* closed sessions, for the admin socket */
    LIST_HEAD(conn_list, conn) conns; /* live connections, newest first */
    size_t nconns;
    uint64_t sessions;            /* connections accepted since start */
    uint64_t discarded;           /* messages answered 250 and dropped by a fault */
    uint64_t bytes_in, bytes_out; /* of closed connections */
    uv_timer_t modes;             /* the next time a listener's refuse/blackhole window opens or closes */
    const void *owner;            /* the admin connection that created it (NULL: kept, or the server's own) */
    int keep;                     /* outlives its owner */
    int ending;              /* scope_end ran: no listener, no new session; freed once the last one goes */
    int64_t created_ms;      /* wall clock */
    TAILQ_ENTRY(scope) link; /* in *list */
    scope_list *list;        /* server.scopes, or server.ended once ended; NULL: neither */
};

/* scope_init - sc with profile in force (a reference is taken) and no listener yet; 0, or -1 (no memory) */
int scope_init(scope *sc, server *srv, const char *id, fault_profile *profile);

/*
 * scope_set_profile - put p in force for new connections (a reference is taken) and apply its listener
 * modes. Connections already open keep the profile they started with. 0, or -1 when out of memory.
 */
int scope_set_profile(scope *sc, fault_profile *p);

/*
 * scope_reset - the admin "reset": the start profile again with fresh counters, greylist and rate-limit
 * state, no messages, counters at zero; all in one step. *cleared says how many messages went.
 */
int scope_reset(scope *sc, size_t *cleared);

/* scope_apply_modes - each listener as the profile's refuse/blackhole rules say now */
void scope_apply_modes(scope *sc);

/* scope_close_listeners - stop accepting (server stop, scope end) */
void scope_close_listeners(scope *sc);

/* scope_listeners_json - {"smtp": {"host", "port", "address"}, ...} of the open listeners, into obj */
void scope_listeners_json(const scope *sc, cJSON *obj);

/* scope_message_stored - m was kept: the store has it; tell the admin socket */
void scope_message_stored(scope *sc, store_msg *m);

/* scope_record_session - a session closed: keep *rec (taken over) among the recent ones */
void scope_record_session(scope *sc, session_record *rec);

/* scope_event - one session event: the log, and the admin socket's subscribers of this scope */
void scope_event(scope *sc, uint64_t sid, int level, const char *event, const char *text, size_t len);

/* scope_stats_json, scope_sessions_json, scope_session_json (sessions.c) - for the admin socket */
void scope_stats_json(scope *sc, cJSON *out);
void scope_sessions_json(scope *sc, cJSON *out);
cJSON *scope_session_json(scope *sc, uint64_t id);

/* scope_shutdown_conns - ask each of the scope's sessions to end (force: at once, whatever it is doing) */
void scope_shutdown_conns(scope *sc, int force);

/* scope_conn_gone - one of the scope's connections has been freed (conn.c keeps the list) */
void scope_conn_gone(scope *sc);

/* scope_free - what the server's own scope holds, after the loop is done (created scopes free themselves) */
void scope_free(scope *sc);

/* -- created scopes ----------------------------------------------------------------------------------- */

/* scope_request - what scope.create asks for */
typedef struct scope_request {
    fault_profile *profile; /* NULL: the default profile, no rules */
    unsigned listeners;     /* bit per listener_kind; 0: those the server runs */
    int keep;
    const void *owner;
} scope_request;

/*
 * scope_create - a new scope listening on new ports, or NULL with an admin error code in *code
 * ("too_many_scopes", "unavailable", "bad_argument", "internal") and the reason in err
 */
scope *scope_create(server *srv, const scope_request *req, const char **code, char *err, size_t errsz);

/* scope_find - the live created scope with this id, or NULL */
scope *scope_find(server *srv, const char *id);

/* scope_end - close the scope's listeners and sessions, answer its waits and streams; it frees itself */
void scope_end(scope *sc, const char *why);

/* scope_owner_gone - an admin connection closed: end the scopes it created (kept ones only lose it) */
void scope_owner_gone(server *srv, const void *owner);

#endif
