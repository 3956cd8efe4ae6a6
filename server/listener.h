/*
 * listener.h - a listening TCP socket that hands accepted connections to conn_accept().
 */
#ifndef SMTPFAULT_LISTENER_H
#define SMTPFAULT_LISTENER_H

#include "server.h"

#define LISTENER_BACKLOG 511 /* what the kernel caps somaxconn to by default; bursts of connects are common */

/* listener_open - bind and listen; 0, or -1 with a one-line reason in err */
int listener_open(listener *l, server *srv, listener_kind kind, const listen_addr *addr, char *err, size_t errsz);

/* listener_close - stop accepting; safe to call on a closed listener */
void listener_close(listener *l);

#endif
