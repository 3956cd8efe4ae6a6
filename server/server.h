/*
 * server.h - the server: listeners, live connections, TLS, the fault profile in force, the message store
 * and the process lifecycle.
 *
 * One libuv loop, one thread for all protocol work; the thread pool only writes --store-dir files.
 * SIGTERM/SIGINT/SIGHUP stop accepting, let transactions in flight finish for the drain period, then close
 * what is left with 421; a second signal skips the drain. SIGUSR1 logs one line of counters and changes
 * nothing.
 */
#ifndef SMTPFAULT_SERVER_H
#define SMTPFAULT_SERVER_H

#include <uv.h>

#include "config.h"
#include "fault.h"
#include "session.h"
#include "client_story.h"
#include "sessions.h"
#include "store.h"
#include "tls.h"
#include "transcript.h"

typedef struct admin admin;

#define SERVER_READ_BUFFER  (64 * 1024) /* one read; shared, since reads are handled one at a time */
#define SERVER_PLAIN_BUFFER (16 * 1024) /* one decrypted TLS record */

typedef struct conn conn;
typedef struct server server;

/*
 * Descriptors never given to SMTP connections, out of RLIMIT_NOFILE: admin connections (served and
 * refused, admin.h), --store-dir commits (a file and the directory at a time on each of libuv's 4 threads),
 * profile and certificate files, and the connection accepted only to be told 421.
 */
#define SERVER_FD_RESERVE_ADMIN (ADMIN_CLIENTS_MAX + ADMIN_REFUSED_MAX)
#define SERVER_FD_RESERVE_FILES 16
#define SERVER_FD_RESERVE_SPARE 4
#define SERVER_FD_RESERVE       (SERVER_FD_RESERVE_ADMIN + SERVER_FD_RESERVE_FILES + SERVER_FD_RESERVE_SPARE)
/* An SMTP connection's descriptors: its socket, and a duplicate watched for hang-up while the server does
 * not read the socket (peer_watch.h: delays, commits, drips). */
#define SERVER_FDS_PER_CONN 2

/* listener_mode - how a listener answers a connection attempt (a profile's refuse and blackhole rules) */
typedef enum listener_mode {
    LISTENER_ACCEPT,    /* normally */
    LISTENER_REFUSE,    /* nothing listens: the client gets ECONNREFUSED */
    LISTENER_BLACKHOLE, /* a full backlog that is never accepted: SYNs are dropped, the connect times out */
} listener_mode;

typedef struct listener {
    server *srv;
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

struct server {
    uv_loop_t *loop;
    const config *cfg;
    store store;
    tls_server *tls;         /* NULL with --no-tls */
    fault_run *fault_run;    /* the profile in force; connections hold the one they started under */
    fault_decision decision; /* scratch for connect and tls_handshake decisions, used at once */
    listener listeners[LISTENER_COUNT];
    uv_signal_t sigterm, sigint, sighup; /* stop */
    uv_signal_t sigusr1;                 /* log the counters */
    uv_timer_t drain;
    uv_timer_t modes;  /* the next time a listener's refuse/blackhole window opens or closes */
    int stopping;      /* 1: draining, 2: forced */
    int ports_written; /* --ports-file was written: it is removed when the listeners close */
    conn *conns;       /* live connections, newest first */
    size_t nconns;
    size_t conn_limit;       /* --max-connections, or fewer to keep SERVER_FD_RESERVE descriptors free */
    uint64_t refused;        /* connections answered 421 at conn_limit */
    session_budget inflight; /* --max-inflight-bytes, shared by every session */
    uint64_t next_session_id;
    uint64_t discarded;           /* messages answered 250 and dropped by a fault */
    uint64_t bytes_in, bytes_out; /* of closed connections */
    int64_t started_ms;           /* monotonic, for uptime */
    fault_profile *start_profile; /* what reset goes back to */
    admin *admin;
    sessions_ring recent;   /* closed sessions, for the admin socket */
    client_stories stories; /* each client's retry story and findings, for client.report */
    char read_buf[SERVER_READ_BUFFER];
    char plain_buf[SERVER_PLAIN_BUFFER];
};

/* server_now_ms - the monotonic clock faults are timed with */
int64_t server_now_ms(void);

/*
 * server_start - TLS, every enabled listener, the ports file, with profile in force (a reference is
 * taken); 0, or -1 after logging why
 */
int server_start(server *srv, uv_loop_t *loop, const config *cfg, fault_profile *profile);

/*
 * server_set_profile - put p in force for new connections (a reference is taken) and apply its listener
 * modes. Connections already open keep the profile they started with. 0, or -1 when out of memory.
 */
int server_set_profile(server *srv, fault_profile *p);

/*
 * server_reset - the admin "reset": the start profile again with fresh counters, greylist and rate-limit
 * state, no messages, counters at zero; all in one step. *cleared says how many messages went.
 */
int server_reset(server *srv, size_t *cleared);

/* server_message_stored - m was kept: the store has it; tell the admin socket */
void server_message_stored(server *srv, store_msg *m);

/* server_record_session - a session closed: keep *rec (taken over) among the recent ones */
void server_record_session(server *srv, session_record *rec);

/* server_event - one session event: the log, and the admin socket's subscribers */
void server_event(server *srv, uint64_t sid, int level, const char *event, const char *text, size_t len);

/* server_stats_json / server_sessions_json / server_session_json (sessions.c) - for the admin socket */
void server_stats_json(server *srv, cJSON *out);
void server_sessions_json(server *srv, cJSON *out);
cJSON *server_session_json(server *srv, uint64_t id);

/* server_stop - begin the graceful stop (what a first SIGTERM does); again to force it */
void server_stop(server *srv);

/* server_conn_gone - a connection has been freed: finish stopping when it was the last */
void server_conn_gone(server *srv);

/* server_free - release what the loop no longer references, after uv_run returned */
void server_free(server *srv);

#endif
