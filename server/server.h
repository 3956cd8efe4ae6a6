/*
 * server.h - the server: listeners, live connections, the message store and the process lifecycle.
 *
 * One libuv loop, one thread for all protocol work; the thread pool only writes --store-dir files.
 * SIGTERM/SIGINT stop accepting, let transactions in flight finish for the drain period, then close what is
 * left with 421; a second signal skips the drain.
 */
#ifndef SMTPFAULT_SERVER_H
#define SMTPFAULT_SERVER_H

#include <uv.h>

#include "config.h"
#include "session.h"
#include "store.h"

#define SERVER_READ_BUFFER (64 * 1024) /* one read; shared, since reads are handled one at a time */

typedef struct conn conn;
typedef struct server server;

typedef struct listener {
    server *srv;
    listener_kind kind;
    const char *name;
    uv_tcp_t tcp;
    int open;
    char bound[80]; /* "127.0.0.1:2525" or "[::1]:2525", as bound */
    char host[CONFIG_HOST_MAX];
    int port;
} listener;

struct server {
    uv_loop_t *loop;
    const config *cfg;
    session_config session_cfg;
    store store;
    listener listeners[LISTENER_COUNT];
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    int stopping; /* 1: draining, 2: forced */
    conn *conns;  /* live connections, newest first */
    size_t nconns;
    uint64_t next_session_id;
    char read_buf[SERVER_READ_BUFFER];
};

/* server_start - open every enabled listener and write the ports file; 0, or -1 after logging why */
int server_start(server *srv, uv_loop_t *loop, const config *cfg);

/* server_stop - begin the graceful stop (what a first SIGTERM does); again to force it */
void server_stop(server *srv);

/* server_conn_gone - a connection has been freed: finish stopping when it was the last */
void server_conn_gone(server *srv);

/* server_free - release what the loop no longer references, after uv_run returned */
void server_free(server *srv);

#endif
