/*
 * conn.h - one client connection: the TCP handle, its idle timer, its session, and its one close path.
 */
#ifndef SMTPFAULT_CONN_H
#define SMTPFAULT_CONN_H

#include "server.h"

/* conn_accept - accept a pending connection on l and start its session */
void conn_accept(listener *l);

/* conn_shutdown - the server is stopping: 421 now if idle, or once its transaction ends (force: now) */
void conn_shutdown(conn *c, int force);

/* conn_next - the next live connection of its scope's list */
conn *conn_next(conn *c);

/* conn_view - a live session as the admin socket shows it (valid until the connection next runs) */
void conn_view(const conn *c, session_view *v);

/* conn_id, conn_bytes - the session id; bytes read and written so far */
uint64_t conn_id(const conn *c);
void conn_bytes(const conn *c, uint64_t *in, uint64_t *out);

#endif
