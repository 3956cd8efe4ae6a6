/*
 * listener.h - a listening TCP socket that hands accepted connections to conn_accept(), and the two
 * connection-level faults that act before any connection exists: refuse and blackhole.
 */
#ifndef SMTPFAULT_LISTENER_H
#define SMTPFAULT_LISTENER_H

#include "server.h"

#define LISTENER_BACKLOG                                                               \
    511 /* what the kernel caps somaxconn to by default; bursts of connects are common \
         */

/* listener_open - bind and listen for scope sc; 0, or a libuv error with a one-line reason in err */
int listener_open(listener *l, scope *sc, listener_kind kind, const listen_addr *addr, char *err,
                  size_t errsz);

/*
 * listener_set_mode - accept, refuse or blackhole from now on, on the same address and port. Connections
 * already accepted are not touched. 0, or -1 (logged) when the socket could not be made.
 */
int listener_set_mode(listener *l, listener_mode mode);

/* listener_close - stop accepting; safe to call on a closed listener */
void listener_close(listener *l);

#endif
