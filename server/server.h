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
#include "sessions.h"
#include "store.h"
#include "tls.h"
#include "client_story.h"
#include "scope.h"
#include "transcript.h"

typedef struct admin admin;

#define SERVER_READ_BUFFER  (64 * 1024) /* one read; shared, since reads are handled one at a time */
#define SERVER_PLAIN_BUFFER (16 * 1024) /* one decrypted TLS record */

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

struct server {
    uv_loop_t *loop;
    const config *cfg;
    store_pool messages;     /* every scope's stores draw on it: the --store-max-* limits, the id sequence */
    sessions_pool closed;    /* every scope's closed sessions: SESSIONS_KEPT_MAX in all */
    tls_server *tls;         /* NULL with --no-tls */
    fault_decision decision; /* scratch for connect and tls_handshake decisions, used at once */
    scope own;               /* the server's own listeners, profile, messages and sessions */
    scope_list scopes;       /* those scope.create made, newest first */
    scope_list ended;        /* ended ones whose sessions are still closing (scope.c's end grace) */
    size_t nscopes;
    size_t scope_fds; /* SCOPE_FDS_MAX for each created scope not yet freed */
    uint64_t next_scope_id;
    unsigned scope_port_next;            /* where the search for a free port in --scope-ports starts */
    uv_signal_t sigterm, sigint, sighup; /* stop */
    uv_signal_t sigusr1;                 /* log the counters */
    uv_timer_t drain;
    int stopping;            /* 1: draining, 2: forced */
    int ports_written;       /* --ports-file was written: it is removed when the listeners close */
    size_t nconns;           /* live connections, every scope's */
    size_t fd_budget;        /* descriptors SMTP connections and scopes may hold together (SIZE_MAX: any) */
    size_t conn_limit;       /* --max-connections, or fewer to fit fd_budget */
    uint64_t refused;        /* connections answered 421 at conn_limit */
    session_budget inflight; /* --max-inflight-bytes, shared by every session */
    uint64_t next_session_id;
    int64_t started_ms; /* monotonic, for uptime */
    admin *admin;
    client_stories stories; /* each client's (or scope's) retry story and findings, for client.report */
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

/* server_stats_json - the process-wide part of stats: uptime, capacity (scope_stats_json adds the rest) */
void server_stats_json(server *srv, cJSON *out);

/* server_conn_room - how many SMTP connections may be open now: conn_limit, less what scopes hold */
size_t server_conn_room(const server *srv);

/* server_stop - begin the graceful stop (what a first SIGTERM does); again to force it */
void server_stop(server *srv);

/* server_conn_gone - a connection has been freed: finish stopping when it was the last */
void server_conn_gone(server *srv);

/* server_free - release what the loop no longer references, after uv_run returned */
void server_free(server *srv);

#endif
