/*
 * admin.h - the JSON admin socket: newline-delimited JSON requests, one response each, in order.
 *
 * Listens on TCP (127.0.0.1:2580 by default) and optionally on unix sockets. A request is one JSON object
 * on one line: {"id": any, "cmd": "messages.wait", ...}; the response echoes the id:
 * {"id": ..., "ok": true, ...} or {"id": ..., "ok": false, "error": {"code": "...", "message": "..."}}.
 * Nothing a client sends can crash or stall the server: bad lines get an error and the connection stays
 * usable; a client that does not read its responses is disconnected once too much is queued for it.
 * messages.wait defers its response (that client's later requests wait behind it, other clients do not);
 * events.subscribe turns the connection into a stream of event lines. docs/admin.md is the reference.
 */
#ifndef SMTPFAULT_ADMIN_H
#define SMTPFAULT_ADMIN_H

#include <cJSON.h>

#include "store.h"

/* The admin side's descriptors, all kept out of reach of SMTP clients (server.h's reserve): connections
 * served at once, and past those, refused ones that get a last error before they close. */
#define ADMIN_CLIENTS_MAX 64
#define ADMIN_REFUSED_MAX 16

typedef struct server server;
typedef struct scope scope;
typedef struct admin admin;
typedef struct admin_client admin_client;

/* admin_start - listen on every --admin address; NULL (after logging why) on failure, or when none is set */
admin *admin_start(server *srv, int *failed);

/* admin_stop - close the listeners and every client (the server is stopping) */
void admin_stop(admin *a);

/* admin_free - after the loop is done */
void admin_free(admin *a);

/* admin_ports_json - the bound admin addresses, for the ports file */
void admin_ports_json(const admin *a, cJSON *root);

/* admin_message_stored - a message was kept in scope sc: answer the waits on sc that it matches */
void admin_message_stored(admin *a, scope *sc, store_msg *m);

/* admin_publish - an event of a session in scope sc, for sc's subscribers (cheap when there are none) */
void admin_publish(admin *a, scope *sc, uint64_t sid, const char *event, const char *text, size_t len);

/* admin_scope_ended - sc ends: its waits answer not_found, its subscribers get a last line and are closed */
void admin_scope_ended(admin *a, scope *sc);

/* admin_has_subscribers - 1 when events.subscribe streams are open */
int admin_has_subscribers(const admin *a);

/* -- for the command handlers (admin_cmd.c) ---------------------------------------------------------- */

/* admin_filter - which captured messages messages.list and messages.wait take */
typedef struct admin_filter {
    scope *sc;              /* whose messages */
    char *to, *from;        /* globs, or NULL */
    char *subject;          /* a glob on the Subject header field as sent, or NULL */
    uint64_t since_arrival; /* only messages that arrived after this one (0: see since_seq) */
    uint64_t since_seq;     /* for a "since" message no longer kept: only messages with a later id */
} admin_filter;

/* admin_defer_wait - defer the response of c's current request until a message matches, or timeout_ms pass */
void admin_defer_wait(admin_client *c, cJSON *id, admin_filter *filter, uint64_t timeout_ms);

/* admin_subscribe - the client gets every event of scope sc from now on; -1 when ADMIN_SUBSCRIBERS_MAX
 * already do */
int admin_subscribe(admin_client *c, scope *sc);

/* admin_subscribers_max - how many clients may subscribe at once */
int admin_subscribers_max(void);

/* admin_filter_match - m passes filter */
int admin_filter_match(const admin_filter *f, const store_msg *m);

/* admin_server - the server behind the admin socket */
server *admin_server(const admin_client *c);

#endif
